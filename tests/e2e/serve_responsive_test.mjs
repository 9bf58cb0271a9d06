// Large prompts never stall the server's io threads: while sixteen 4 MiB prompts
// are tokenized (and refused as too long for the context, which takes the
// whole tokenization to know), another client's /health and short completions
// keep being answered, each far sooner than the large ones take, and the
// server keeps serving afterwards.
import { Checker, parseArgs, request, startServer, stopServer } from './serve_util.mjs';

const args = parseArgs();
const t = new Checker('serve_responsive');
const server = await startServer(args, ['--max-body-bytes', String(8 << 20)]);
const now = () => Number(process.hrtime.bigint() / 1000000n);

await t.section('large prompts beside /health', async () => {
  // Words that do not repeat (a tokenizer's word cache must not make it cheap).
  let seed = 12345;
  const rnd = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
  const letters = 'abcdefghijklmnopqrstuvwxyzéüßø';
  const parts = [];
  for (let n = 0; n < (4 << 20);) {
    let w = '';
    const len = 2 + Math.floor(rnd() * 9);
    for (let k = 0; k < len; ++k) w += letters[Math.floor(rnd() * letters.length)];
    parts.push(w);
    n += Buffer.byteLength(w) + 1;
  }
  const prompt = Buffer.from(parts.join(' ')).subarray(0, 4 << 20).toString('utf8').replace(/\uFFFD$/, '');
  const t0 = now();
  const big = [];
  for (let i = 0; i < 16; ++i) {
    big.push(request(server.port, 'POST', '/v1/completions', { prompt, max_tokens: 1 }).then((r) => ({ r, ms: now() - t0 })));
  }
  let done = false;
  const bigDone = Promise.all(big).then((v) => { done = true; return v; });
  const health = [];
  const short = [];
  while (!done) {
    const h0 = now();
    const h = await request(server.port, 'GET', '/health');
    health.push({ status: h.status, ms: now() - h0 });
    if (health.length % 5 === 0) {
      const s0 = now();
      const s = await request(server.port, 'POST', '/v1/completions', { prompt: 'hi', max_tokens: 2, temperature: 0 });
      short.push({ status: s.status, ms: now() - s0 });
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  const results = await bigDone;
  const slowest = Math.max(...results.map((x) => x.ms));
  const worstHealth = Math.max(...health.map((x) => x.ms));
  const worstShort = short.length ? Math.max(...short.map((x) => x.ms)) : 0;
  console.log(`  16 x 4 MiB prompts: last answered after ${slowest} ms; /health x ${health.length}: worst ${worstHealth} ms; ` +
    `short completions x ${short.length}: worst ${worstShort} ms`);
  t.check(results.every((x) => x.r.status === 400 && JSON.parse(x.r.body).error.code === 'context_length_exceeded'),
    'each large prompt: 400 context_length_exceeded', results.map((x) => x.r.status).join(','));
  t.check(health.length >= 5 && health.every((x) => x.status === 200), '/health answered 200 throughout', String(health.length));
  t.check(short.every((x) => x.status === 200), 'short completions answered 200 throughout');
  // Not serialized behind the large ones: each answer comes within a small part of their time.
  t.check(worstHealth * 4 < slowest, '/health never waited for a large prompt', `${worstHealth} ms vs ${slowest} ms`);
  const after = await request(server.port, 'POST', '/v1/completions', { prompt: 'hi', max_tokens: 2, temperature: 0 });
  t.check(after.status === 200, 'serving afterwards');
});

const { code } = await stopServer(server);
t.check(code === 0, 'exit code 0 after SIGTERM', String(code));
t.finish();
