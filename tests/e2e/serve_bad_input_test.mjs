// Bad input against a live `crescent serve`, over raw sockets: each case gets
// the right 4xx with an OpenAI error object (or the connection closed), and the
// server keeps answering /health after every one. Also: 401/404/405, a client
// that disconnects mid-stream (its request is cancelled), and 429 when the
// waiting queue is full.
import net from 'node:net';
import { Checker, HOST, parseArgs, parseSse, rawExchange, request, sleep, startServer, stopServer } from './serve_util.mjs';

const args = parseArgs();
const t = new Checker('serve_bad_input');
const server = await startServer(args, ['--api-key', 'k', '--read-timeout', '1', '--max-body-bytes', String(1 << 20),
  '--max-num-seqs', '2', '--max-waiting', '2']);
const port = server.port;
const AUTH = { Authorization: 'Bearer k' };

async function healthy(after) {
  const h = await request(port, 'GET', '/health').catch((e) => ({ status: String(e) }));
  t.check(h.status === 200, `/health still 200 after ${after}`, String(h.status));
}

function errorObject(body) {
  try {
    const e = JSON.parse(body).error;
    return e && typeof e.message === 'string' && typeof e.type === 'string' && 'param' in e && 'code' in e ? e : null;
  } catch {
    return null;
  }
}

async function expectError(what, method, path, body, status, param = undefined, headers = AUTH) {
  const r = await request(port, method, path, body, headers);
  const e = errorObject(r.body);
  t.check(r.status === status, `${what}: status ${status}`, `got ${r.status} ${r.body.slice(0, 200)}`);
  t.check(e !== null, `${what}: OpenAI error object`, r.body.slice(0, 200));
  if (param !== undefined && e) t.check(e.param === param, `${what}: param ${param}`, JSON.stringify(e));
  await healthy(what);
}

const CHAT = '/v1/chat/completions';
const msgs = [{ role: 'user', content: 'hi' }];

await t.section('routing and auth', async () => {
  await expectError('unknown route', 'GET', '/v1/nothing', null, 404);
  await expectError('GET on a POST route', 'GET', CHAT, null, 405);
  await expectError('DELETE /v1/models', 'DELETE', '/v1/models', null, 405);
  await expectError('no API key', 'POST', CHAT, { messages: msgs }, 401, undefined, {});
  await expectError('wrong API key', 'GET', '/v1/models', null, 401, undefined, { Authorization: 'Bearer nope' });
  await expectError('unknown model', 'POST', CHAT, { model: 'gpt-9', messages: msgs }, 404, 'model');
  const ok = await request(port, 'GET', '/v1/models', null, AUTH);
  t.check(ok.status === 200, 'models with the key');
});

await t.section('malformed bodies', async () => {
  await expectError('malformed JSON', 'POST', CHAT, '{"messages": [', 400);
  await expectError('not an object', 'POST', CHAT, '[1,2]', 400);
  await expectError('empty body', 'POST', '/v1/completions', '', 400);
  await expectError('max_tokens of the wrong type', 'POST', CHAT, { messages: msgs, max_tokens: 'ten' }, 400, 'max_tokens');
  await expectError('messages of the wrong type', 'POST', CHAT, { messages: 'hi' }, 400, 'messages');
  await expectError('temperature of the wrong type', 'POST', CHAT, { messages: msgs, temperature: 'hot' }, 400, 'temperature');
  await expectError('temperature out of range', 'POST', CHAT, { messages: msgs, temperature: 7 }, 400, 'temperature');
  await expectError('n out of range', 'POST', CHAT, { messages: msgs, n: 0 }, 400, 'n');
  await expectError('stop of the wrong type', 'POST', CHAT, { messages: msgs, stop: 5 }, 400, 'stop');
  await expectError('negative max_tokens', 'POST', CHAT, { messages: msgs, max_tokens: -5 }, 400, 'max_tokens');
  await expectError('enormous max_tokens', 'POST', CHAT, { messages: msgs, max_tokens: 1e15 }, 400, 'max_tokens');
  await expectError('max_tokens beyond int64', 'POST', '/v1/completions', '{"prompt":"x","max_tokens":99999999999999999999999}', 400, 'max_tokens');
  await expectError('empty messages', 'POST', CHAT, { messages: [] }, 400, 'messages');
  await expectError('unknown role', 'POST', CHAT, { messages: [{ role: 'wizard', content: 'x' }] }, 400, 'messages[0].role');
  await expectError('message without content', 'POST', CHAT, { messages: [{ role: 'user' }] }, 400, 'messages[0].content');
  await expectError('image content', 'POST', CHAT, { messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'x' } }] }] }, 400);
  await expectError('prompt missing', 'POST', '/v1/completions', { max_tokens: 3 }, 400, 'prompt');
  await expectError('token id outside the vocabulary', 'POST', '/v1/completions', { prompt: [1, 2, 99999999] }, 400, 'prompt');
  await expectError('deeply nested JSON', 'POST', CHAT, '['.repeat(10000) + ']'.repeat(10000), 400);
  const bad = Buffer.concat([Buffer.from('{"model":"dummy:tiny-llama3","prompt":"a'), Buffer.from([0xff, 0xfe, 0xc3]), Buffer.from('","max_tokens":2}')]);
  await expectError('invalid UTF-8', 'POST', '/v1/completions', bad, 400);
});

await t.section('oversized and broken HTTP', async () => {
  const big = Buffer.alloc(10 << 20, 0x61);
  const r = await rawExchange(port, Buffer.concat([
    Buffer.from(`POST ${CHAT} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer k\r\nContent-Type: application/json\r\nContent-Length: ${big.length}\r\n\r\n`), big]),
  { timeoutMs: 10000 });
  t.check(r.data.startsWith('HTTP/1.1 413') || (r.data === '' && r.closed), '10 MB body: 413 or closed', r.data.slice(0, 80));
  t.check(r.closed, '10 MB body: connection closed');
  await healthy('10 MB body');
  // Chunked upload over the limit is caught while reading.
  const chunked = await rawExchange(port, `POST ${CHAT} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n` +
    `200000\r\n${'b'.repeat(0x200000)}\r\n0\r\n\r\n`, { timeoutMs: 10000 });
  t.check(chunked.data.startsWith('HTTP/1.1 413'), 'chunked body over the limit: 413', chunked.data.slice(0, 80));
  await healthy('chunked body over the limit');
  const garbage = await rawExchange(port, 'THIS IS NOT HTTP\r\n\r\n');
  t.check(garbage.data.startsWith('HTTP/1.1 400') && garbage.closed, 'garbage request line: 400 and close', garbage.data.slice(0, 80));
  await healthy('garbage');
  const huge = await rawExchange(port, `GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ${'h'.repeat(64 << 10)}\r\n\r\n`);
  t.check(huge.data.startsWith('HTTP/1.1 431'), 'oversized header: 431', huge.data.slice(0, 80));
  await healthy('oversized header');
});

await t.section('clients that stop or crawl', async () => {
  // A body that stops half way and the client hangs up.
  const half = await rawExchange(port, `POST ${CHAT} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{"messages":`, { endAfterWrite: true, timeoutMs: 3000 });
  t.check(half.closed, 'half a body then EOF: closed');
  await healthy('half body then EOF');
  // A body that stops half way and the client stays: closed at the read deadline.
  const t0 = Date.now();
  const stalled = await rawExchange(port, `POST ${CHAT} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{"messages":`, { timeoutMs: 6000 });
  t.check(stalled.closed && Date.now() - t0 < 4000, 'stalled body: closed at the deadline', `${Date.now() - t0} ms`);
  await healthy('stalled body');
  // Slow header-only client (slowloris): a header line every 200 ms, never done.
  const slow = await new Promise((resolve) => {
    const sock = net.connect(port, HOST);
    const start = Date.now();
    let timer;
    sock.on('connect', () => {
      sock.write('GET /health HTTP/1.1\r\n');
      timer = setInterval(() => sock.write(`X-Slow-${Date.now()}: 1\r\n`), 200);
    });
    sock.on('error', () => {});
    sock.on('close', () => {
      clearInterval(timer);
      resolve(Date.now() - start);
    });
    setTimeout(() => sock.destroy(), 8000);
  });
  t.check(slow < 4000, 'slow header-only client closed at the read deadline', `${slow} ms`);
  await healthy('slow header client');
  // Keep-alive: two requests on one connection.
  const two = await rawExchange(port, 'GET /health HTTP/1.1\r\nHost: x\r\n\r\nGET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
  t.check((two.data.match(/HTTP\/1\.1 200/g) || []).length === 2, 'two pipelined requests on one connection', two.data.slice(0, 120));
});

async function runningRequests() {
  const m = await request(port, 'GET', '/metrics');
  return Number((m.body.match(/^crescent_requests_running (\S+)$/m) || [])[1]) +
    Number((m.body.match(/^crescent_requests_waiting (\S+)$/m) || [])[1]);
}

function openStream(body) {
  // Resolves with {sock, first} once the first SSE bytes arrive, or {status} for a refusal.
  return new Promise((resolve) => {
    const data = JSON.stringify(body);
    const sock = net.connect(port, HOST);
    let buf = '';
    sock.on('connect', () => sock.write(`POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer k\r\n` +
      `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(data)}\r\n\r\n${data}`));
    sock.on('data', (d) => {
      buf += d.toString();
      if (buf.includes('\r\n\r\n')) {
        const status = Number(buf.split(' ')[1]);
        if (status !== 200 || buf.includes('data: ')) resolve({ sock, status, buf });
      }
    });
    sock.on('error', () => resolve({ sock, status: 0, buf }));
  });
}

await t.section('disconnect cancels, and 429 when the queue is full', async () => {
  const body = { prompt: 'cancel me', max_tokens: 3000, ignore_eos: true, stream: true, temperature: 0 };
  const s = await openStream(body);
  t.check(s.status === 200, 'long stream started', s.buf.slice(0, 80));
  s.sock.destroy();
  let busy = 1;
  for (let i = 0; i < 100 && busy > 0; ++i) {
    await sleep(50);
    busy = await runningRequests();
  }
  t.check(busy === 0, 'a disconnected client frees its engine request', String(busy));
  // max-num-seqs 2, max-waiting 2: eight at once cannot all be admitted.
  const all = await Promise.all(Array.from({ length: 8 }, () => openStream(body)));
  const statuses = all.map((x) => x.status);
  t.check(statuses.includes(429), 'a full waiting queue answers 429', JSON.stringify(statuses));
  const refused = all.find((x) => x.status === 429);
  if (refused) t.check(refused.buf.includes('rate_limit'), '429 carries a rate_limit error object');
  for (const x of all) x.sock.destroy();
  busy = 1;
  for (let i = 0; i < 100 && busy > 0; ++i) {
    await sleep(50);
    busy = await runningRequests();
  }
  t.check(busy === 0, 'all cancelled after the clients left', String(busy));
  await healthy('disconnects');
  const m = await request(port, 'GET', '/metrics');
  t.check(/crescent_http_requests_total\{status="429"\} [1-9]/.test(m.body), '429s counted in /metrics');
});

await t.section('server still serves', async () => {
  const r = await request(port, 'POST', '/v1/completions', { prompt: 'still alive', max_tokens: 3, stream: true }, AUTH);
  const sse = parseSse(r.body);
  t.check(r.status === 200 && sse.done && sse.events.length >= 2, 'a normal stream after all that', `${r.status} ${r.body.slice(0, 300)}`);
});

const { code } = await stopServer(server);
t.check(code === 0, 'exit 0 on SIGTERM', String(code));
t.finish();
