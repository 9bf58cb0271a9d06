// The official `openai` npm client against a live `crescent serve` on the dummy
// tiny-llama3 model: completions and chat, streaming and not, n=2, stop
// strings, seeds, log-probs, usage (with cached prompt tokens) and finish
// reasons; then /metrics, and a graceful SIGTERM with a stream in flight.
import { Checker, loadOpenAI, parseArgs, request, startServer, stopServer } from './serve_util.mjs';

const args = parseArgs();
const OpenAI = loadOpenAI(args.source);
const t = new Checker('serve_openai');
const server = await startServer(args, ['--api-key', 'sk-test']);
const MODEL = 'dummy:tiny-llama3';
const client = new OpenAI({ baseURL: `http://127.0.0.1:${server.port}/v1`, apiKey: 'sk-test', maxRetries: 0, timeout: 60000 });
const PROMPT = 'The quick brown fox jumps over the lazy dog. '.repeat(4);

async function collect(stream) {
  const chunks = [];
  for await (const c of stream) chunks.push(c);
  return chunks;
}

function checkUsage(u, completion, what) {
  t.check(u && u.prompt_tokens > 0, `${what}: prompt_tokens`, JSON.stringify(u));
  t.check(u && u.completion_tokens === completion, `${what}: completion_tokens == ${completion}`, JSON.stringify(u));
  t.check(u && u.total_tokens === u.prompt_tokens + u.completion_tokens, `${what}: total_tokens`);
  t.check(u && u.prompt_tokens_details && Number.isInteger(u.prompt_tokens_details.cached_tokens),
    `${what}: prompt_tokens_details.cached_tokens`);
}

let greedyText = '';
await t.section('models', async () => {
  const models = await client.models.list();
  t.check(models.data.length === 1 && models.data[0].id === MODEL, 'models.list names the served model',
    JSON.stringify(models.data));
});

await t.section('completions', async () => {
  const r = await client.completions.create({ model: MODEL, prompt: PROMPT, max_tokens: 12, temperature: 0, ignore_eos: true });
  t.check(r.object === 'text_completion' && r.id.startsWith('cmpl-') && r.model === MODEL, 'completion envelope');
  t.check(Number.isInteger(r.created) && r.created > 1.6e9, 'created is unix seconds');
  t.check(r.choices.length === 1 && r.choices[0].index === 0, 'one choice');
  t.check(r.choices[0].finish_reason === 'length', 'finish_reason length', r.choices[0].finish_reason);
  t.check(typeof r.choices[0].text === 'string' && r.choices[0].text.length > 0, 'text');
  checkUsage(r.usage, 12, 'completion');
  greedyText = r.choices[0].text;
  // The same prompt again: its full pages come from the prefix cache.
  const again = await client.completions.create({ model: MODEL, prompt: PROMPT, max_tokens: 12, temperature: 0, ignore_eos: true });
  t.check(again.choices[0].text === greedyText, 'greedy is deterministic');
  t.check(again.usage.prompt_tokens_details.cached_tokens >= 16, 'prefix cache hit reported as cached_tokens',
    JSON.stringify(again.usage));
});

await t.section('completions stream', async () => {
  const chunks = await collect(await client.completions.create({
    model: MODEL, prompt: PROMPT, max_tokens: 12, temperature: 0, ignore_eos: true, stream: true,
    stream_options: { include_usage: true },
  }));
  const text = chunks.filter((c) => c.choices.length).map((c) => c.choices[0].text).join('');
  t.check(text === greedyText, 'streamed text equals the non-streamed text', JSON.stringify([text, greedyText]));
  t.check(chunks.every((c) => c.object === 'text_completion'), 'chunk objects');
  const withChoices = chunks.filter((c) => c.choices.length);
  t.check(withChoices.at(-1).choices[0].finish_reason === 'length', 'last choice chunk has finish_reason');
  t.check(withChoices.slice(0, -1).every((c) => c.choices[0].finish_reason === null), 'earlier chunks have null finish_reason');
  const last = chunks.at(-1);
  t.check(last.choices.length === 0 && last.usage, 'include_usage: a final usage chunk');
  checkUsage(last.usage, 12, 'stream usage');
  t.check(withChoices.every((c) => c.usage === null), 'include_usage: other chunks carry usage null');
});

let chatText = '';
await t.section('chat', async () => {
  const messages = [{ role: 'system', content: 'You are terse.' }, { role: 'user', content: 'Say hi.' }];
  const r = await client.chat.completions.create({ model: MODEL, messages, max_tokens: 10, temperature: 0, ignore_eos: true });
  t.check(r.object === 'chat.completion' && r.id.startsWith('chatcmpl-'), 'chat envelope');
  t.check(r.choices[0].message.role === 'assistant' && typeof r.choices[0].message.content === 'string', 'assistant message');
  t.check(r.choices[0].finish_reason === 'length', 'chat finish_reason');
  checkUsage(r.usage, 10, 'chat');
  chatText = r.choices[0].message.content;
  const chunks = await collect(await client.chat.completions.create({
    model: MODEL, messages, max_tokens: 10, temperature: 0, ignore_eos: true, stream: true,
  }));
  t.check(chunks.every((c) => c.object === 'chat.completion.chunk'), 'chunk objects');
  t.check(chunks[0].choices[0].delta.role === 'assistant', 'first delta carries the role');
  const text = chunks.map((c) => c.choices[0].delta.content || '').join('');
  t.check(text === chatText, 'streamed chat equals non-streamed', JSON.stringify([text, chatText]));
  t.check(chunks.at(-1).choices[0].finish_reason === 'length', 'stream ends with finish_reason');
  // max_completion_tokens is the newer spelling.
  const r2 = await client.chat.completions.create({ model: MODEL, messages, max_completion_tokens: 3, temperature: 0, ignore_eos: true });
  t.check(r2.usage.completion_tokens === 3, 'max_completion_tokens honoured');
});

await t.section('n=2', async () => {
  const r = await client.completions.create({ model: MODEL, prompt: PROMPT, max_tokens: 6, n: 2, temperature: 1, seed: 7, ignore_eos: true });
  t.check(r.choices.length === 2 && r.choices[0].index === 0 && r.choices[1].index === 1, 'two choices, indexed');
  t.check(r.usage.completion_tokens === 12, 'usage sums both choices', JSON.stringify(r.usage));
  const chunks = await collect(await client.chat.completions.create({
    model: MODEL, messages: [{ role: 'user', content: 'Hi' }], max_tokens: 5, n: 2, stream: true, ignore_eos: true,
  }));
  for (const i of [0, 1]) {
    const mine = chunks.filter((c) => c.choices.length && c.choices[0].index === i);
    t.check(mine.length >= 2 && mine.at(-1).choices[0].finish_reason === 'length', `stream choice ${i} finishes`);
  }
});

await t.section('seed', async () => {
  const req = { model: MODEL, prompt: 'Once upon a time', max_tokens: 16, temperature: 1.0, seed: 1234, ignore_eos: true };
  const a = await client.completions.create(req);
  const b = await client.completions.create(req);
  const c = await client.completions.create({ ...req, seed: 99 });
  t.check(a.choices[0].text === b.choices[0].text, 'same seed, same text');
  t.check(a.choices[0].text !== c.choices[0].text, 'another seed, another text');
});

await t.section('stop', async () => {
  const base = await client.completions.create({ model: MODEL, prompt: 'Hello world', max_tokens: 24, temperature: 0, ignore_eos: true });
  const full = base.choices[0].text;
  const stop = full.slice(6, 9);
  const expect = full.slice(0, full.indexOf(stop));
  const r = await client.completions.create({ model: MODEL, prompt: 'Hello world', max_tokens: 24, temperature: 0, ignore_eos: true, stop: [stop] });
  t.check(r.choices[0].finish_reason === 'stop', 'stop string finishes with stop', r.choices[0].finish_reason);
  t.check(r.choices[0].text === expect, 'text ends before the stop string', JSON.stringify([r.choices[0].text, expect, stop]));
  const chunks = await collect(await client.completions.create({
    model: MODEL, prompt: 'Hello world', max_tokens: 24, temperature: 0, ignore_eos: true, stop, stream: true,
  }));
  t.check(chunks.map((c) => c.choices[0].text).join('') === expect, 'streamed text never shows the stop string');
  t.check(chunks.at(-1).choices[0].finish_reason === 'stop', 'stream finish_reason stop');
});

await t.section('logprobs', async () => {
  const r = await client.completions.create({ model: MODEL, prompt: PROMPT, max_tokens: 5, temperature: 0, logprobs: 3, ignore_eos: true });
  const lp = r.choices[0].logprobs;
  t.check(lp && lp.tokens.length === 5 && lp.token_logprobs.length === 5 && lp.text_offset.length === 5, 'completion logprobs per token');
  t.check(lp.token_logprobs.every((x) => x <= 0), 'log-probs are <= 0');
  t.check(lp.top_logprobs.length === 5 && lp.top_logprobs.every((o) => Object.keys(o).length >= 1 && Object.keys(o).length <= 3), 'top_logprobs has up to 3 each');
  t.check(lp.tokens.join('') === r.choices[0].text, 'tokens spell the text');
  const c = await client.chat.completions.create({
    model: MODEL, messages: [{ role: 'user', content: 'Hi' }], max_tokens: 4, temperature: 0, logprobs: true, top_logprobs: 2, ignore_eos: true,
  });
  const content = c.choices[0].logprobs.content;
  t.check(content.length === 4, 'chat logprobs per token', JSON.stringify(c.choices[0].logprobs).slice(0, 200));
  t.check(content.every((e) => e.top_logprobs.length === 2 && Array.isArray(e.bytes)), 'chat top_logprobs and bytes');
  t.check(content.every((e) => Math.abs(e.logprob - e.top_logprobs[0].logprob) < 1e-5), 'greedy picks the most likely token');
});

await t.section('errors through the client', async () => {
  try {
    await client.completions.create({ model: 'no-such-model', prompt: 'x', max_tokens: 1 });
    t.check(false, 'unknown model should fail');
  } catch (e) {
    t.check(e.status === 404 && e.error && e.error.code === 'model_not_found', 'unknown model: 404 model_not_found', `${e.status}`);
  }
  try {
    await client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'x' }], max_tokens: -1 });
    t.check(false, 'negative max_tokens should fail');
  } catch (e) {
    t.check(e.status === 400 && e.error.param === 'max_tokens', 'negative max_tokens: 400 naming max_tokens', `${e.status}`);
  }
  const anon = new OpenAI({ baseURL: `http://127.0.0.1:${server.port}/v1`, apiKey: 'wrong', maxRetries: 0 });
  try {
    await anon.models.list();
    t.check(false, 'a wrong key should fail');
  } catch (e) {
    t.check(e.status === 401, 'wrong API key: 401', `${e.status}`);
  }
});

await t.section('metrics', async () => {
  const m = await request(server.port, 'GET', '/metrics');
  t.check(m.status === 200 && m.headers['content-type'].startsWith('text/plain'), '/metrics is text');
  for (const name of ['crescent_http_requests_total{status="200"}', 'crescent_time_to_first_token_seconds_bucket',
    'crescent_time_between_tokens_seconds_count', 'crescent_e2e_request_latency_seconds_sum', 'crescent_requests_running',
    'crescent_requests_waiting', 'crescent_kv_cache_usage_ratio', 'crescent_prefix_cache_hit_rate',
    'crescent_prompt_tokens_total', 'crescent_generation_tokens_total']) {
    t.check(m.body.includes(name), `/metrics has ${name}`);
  }
  const gen = Number((m.body.match(/^crescent_generation_tokens_total (\S+)$/m) || [])[1]);
  t.check(gen > 50, 'generation tokens counted', String(gen));
  const hit = Number((m.body.match(/^crescent_prefix_cache_hit_rate (\S+)$/m) || [])[1]);
  t.check(hit > 0 && hit <= 1, 'prefix cache hit rate in (0, 1]', String(hit));
});

await t.section('graceful shutdown', async () => {
  const stream = await client.completions.create({ model: MODEL, prompt: 'Shutdown test', max_tokens: 200, temperature: 0, ignore_eos: true, stream: true });
  const it = stream[Symbol.asyncIterator]();
  const first = await it.next();
  t.check(!first.done, 'stream started');
  const exit = stopServer(server);
  let n = 1;
  let last = first.value;
  for (;;) {
    const x = await it.next();
    if (x.done) break;
    last = x.value;
    n++;
  }
  t.check(['length', 'abort'].includes(last.choices[0].finish_reason), 'in-flight stream ends with a finish_reason', JSON.stringify(last));
  const { code } = await exit;
  t.check(code === 0, 'exit code 0 after SIGTERM', String(code));
});

t.finish();
