// 1,000 concurrent streaming clients against a live `crescent serve`: every
// stream must be complete and correct — chunked framing intact, each chat
// stream opening with the role, greedy text equal to the non-streamed answer,
// one finish_reason, the usage chunk, and `data: [DONE]` last; the server's
// peak resident memory is printed and bounded, and nothing is left running.
import fs from 'node:fs';
import { Checker, parseArgs, parseSse, request, startServer, stopServer } from './serve_util.mjs';

const args = parseArgs();
const t = new Checker('serve_concurrency');
const server = await startServer(args, ['--max-num-seqs', '64']);
const port = server.port;
const CLIENTS = 1000;
const TOKENS = 8;

const completionBody = (i) => ({ prompt: `Client number ${i % 4} says hello`, max_tokens: TOKENS, temperature: 0, ignore_eos: true });
const chatBody = (i) => ({ messages: [{ role: 'user', content: `Client ${i % 4}` }], max_tokens: TOKENS, temperature: 0, ignore_eos: true });

await t.section(`${CLIENTS} concurrent streams`, async () => {
  // References, one at a time, not streamed.
  const ref = { completion: [], chat: [] };
  for (let k = 0; k < 4; ++k) {
    const a = await request(port, 'POST', '/v1/completions', completionBody(k));
    ref.completion.push(JSON.parse(a.body).choices[0].text);
    const b = await request(port, 'POST', '/v1/chat/completions', chatBody(k));
    ref.chat.push(JSON.parse(b.body).choices[0].message.content);
  }
  const t0 = Date.now();
  const results = await Promise.all(Array.from({ length: CLIENTS }, async (_, i) => {
    const chat = i % 2 === 1;
    const body = { ...(chat ? chatBody(i) : completionBody(i)), stream: true, stream_options: { include_usage: true } };
    const r = await request(port, 'POST', chat ? '/v1/chat/completions' : '/v1/completions', body);
    return { i, chat, r };
  }));
  const elapsed = Date.now() - t0;
  let complete = 0;
  for (const { i, chat, r } of results) {
    const problems = [];
    if (r.status !== 200) problems.push(`status ${r.status}`);
    if (r.headers['content-type'] !== 'text/event-stream') problems.push('content-type');
    let sse = { events: [], done: false };
    try {
      sse = parseSse(r.body);
    } catch (e) {
      problems.push(String(e));
    }
    if (!sse.done) problems.push('no [DONE]');
    const withChoices = sse.events.filter((e) => e.choices.length);
    const text = withChoices.map((e) => (chat ? e.choices[0].delta.content || '' : e.choices[0].text)).join('');
    const want = chat ? ref.chat[i % 4] : ref.completion[i % 4];
    if (text !== want) problems.push(`text ${JSON.stringify(text)} != ${JSON.stringify(want)}`);
    if (chat && withChoices[0]?.choices[0].delta.role !== 'assistant') problems.push('no role delta');
    const finishes = withChoices.filter((e) => e.choices[0].finish_reason !== null);
    if (finishes.length !== 1 || finishes[0].choices[0].finish_reason !== 'length' || finishes[0] !== withChoices.at(-1)) {
      problems.push('finish_reason');
    }
    const usage = sse.events.at(-1)?.usage;
    if (!usage || usage.completion_tokens !== TOKENS) problems.push('usage');
    const ids = new Set(sse.events.map((e) => e.id));
    if (ids.size !== 1) problems.push('ids differ within a stream');
    if (problems.length === 0) {
      complete++;
    } else if (complete + 5 > i) {
      console.log(`client ${i}: ${problems.join('; ')}`);
    }
  }
  t.check(complete === CLIENTS, `all ${CLIENTS} streams complete and correct`, `${complete} of ${CLIENTS}`);
  console.log(`  ${CLIENTS} streams x ${TOKENS} tokens in ${elapsed} ms`);
  const h = await request(port, 'GET', '/health');
  t.check(h.status === 200, 'healthy afterwards');
  // Peak resident memory of the server (VmHWM): a stream costs a connection and its buffers, not more.
  const status = fs.readFileSync(`/proc/${server.proc.pid}/status`, 'utf8');
  const peakMiB = Number((status.match(/^VmHWM:\s+(\d+) kB/m) || [])[1]) / 1024;
  console.log(`  server peak RSS ${peakMiB.toFixed(0)} MiB`);
  t.check(peakMiB > 0 && peakMiB < 1536, 'peak RSS bounded (under 1.5 GiB with a 256 MB KV pool)', `${peakMiB} MiB`);
  const m = await request(port, 'GET', '/metrics');
  const running = Number((m.body.match(/^crescent_requests_running (\S+)$/m) || [])[1]);
  t.check(running === 0, 'nothing left running', String(running));
});

const { code } = await stopServer(server);
t.check(code === 0, 'exit 0 on SIGTERM', String(code));
t.finish();
