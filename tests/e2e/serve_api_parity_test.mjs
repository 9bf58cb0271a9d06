// OpenAI API parity beyond the basics, against a live `crescent serve` (or,
// with --pd 1, the conductor front of a prefill/decode split) on the dummy
// tiny-llama3, with the official `openai` npm client and raw HTTP:
// logit_bias (applied and validated), echo (with the prompt's log-probs, and
// max_tokens 0 as lm-eval's log-likelihood requests send it), logprobs 0,
// CORS (--allowed-origins, preflights without the key), application/json
// only (415), /v1/models/{id}, max_model_len as a request can get it, and the
// context_length_exceeded and seed errors; structured output (json_object,
// json_schema: the output parses and matches, 400 for what cannot be honoured)
// and tool calling (required, a named function, streamed, auto).
import { Checker, loadOpenAI, parseArgs, rawExchange, request, startServer, stopServer } from './serve_util.mjs';

const args = parseArgs();
const OpenAI = loadOpenAI(args.source);
const t = new Checker('serve_api_parity');
const KEY = 'sk-parity';
const ORIGIN = 'http://app.example:3000';
const pd = args.pd === '1';
// All-in-one: a small KV pool, so the context a request can get is the pool's, not the model's.
const server = await startServer(args, ['--api-key', KEY, '--allowed-origins', `${ORIGIN},http://other.example`,
  ...(pd ? [] : ['--kv-cache-bytes', String(24 << 20)])]);
const MODEL = 'dummy:tiny-llama3';
const client = new OpenAI({ baseURL: `http://127.0.0.1:${server.port}/v1`, apiKey: KEY, maxRetries: 0, timeout: 60000 });
const AUTH = { Authorization: `Bearer ${KEY}` };
const PROMPT = 'Structured output and logit bias are what clients rely on. ';

async function status(fn) {
  try {
    await fn();
    return 200;
  } catch (e) {
    return e.status;
  }
}
async function error(fn) {
  try {
    await fn();
    return null;
  } catch (e) {
    return e;
  }
}
const raw = (bytes) => rawExchange(server.port, bytes).then((r) => r.data);

await t.section('logit_bias', async () => {
  const once = (extra) => client.completions.create({ model: MODEL, prompt: PROMPT, max_tokens: 1, temperature: 0, ...extra })
    .then((r) => r.choices[0].text);
  const plain = await once({});
  // +100 forces a token, greedy or sampled; two forced ids give two outputs.
  const x = await once({ logit_bias: { 1000: 100 } });
  const y = await once({ logit_bias: { 2000: 100 } });
  t.check(x !== y && (x !== plain || y !== plain), '+100 forces its token', JSON.stringify([plain, x, y]));
  t.check(await once({ temperature: 1.5, seed: 3, logit_bias: { 1000: 100 } }) === x, '+100 wins a sampled draw too');
  // -100 bans: the forced token banned, the next forced one wins.
  t.check(await once({ logit_bias: { 1000: -100, 2000: 99 } }) === y, '-100 bans the token that would win');
  t.check(await once({ logit_bias: { 1000: 100, 2000: 99 } }) === x, 'the larger bias wins');
  t.check(await once({ temperature: 1.5, seed: 3, logit_bias: { 1000: -100, 2000: 100 } }) === y, 'banned in a sampled draw');
  // Chat takes it too.
  const chat = (content) => client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content }],
    max_tokens: 1, temperature: 0, logit_bias: { 1000: 100 } }).then((r) => r.choices[0].message.content);
  t.check(await chat('hi') === x && await chat('bye') === x, 'chat: +100 forces the token');
  for (const [bias, what] of [[{ 128257: 1.0 }, 'beyond the vocabulary'], [{ not_a_token_id: 50 }, 'not an id'],
    [{ 5: 101 }, 'above 100'], [{ 5: -101 }, 'below -100'], [{ 5: 'x' }, 'not a number'], [[1, 2], 'not an object']]) {
    const e = await error(() => client.completions.create({ model: MODEL, prompt: 'x', max_tokens: 1, logit_bias: bias }));
    t.check(e && e.status === 400 && e.param === 'logit_bias', `logit_bias ${what}: 400 naming logit_bias`,
      e ? `${e.status} ${e.param}` : 'accepted');
  }
});

await t.section('echo and log-probs', async () => {
  const plain = await client.completions.create({ model: MODEL, prompt: PROMPT, max_tokens: 5, temperature: 0, logprobs: 2 });
  const echoed = await client.completions.create({ model: MODEL, prompt: PROMPT, max_tokens: 5, temperature: 0, echo: true,
    logprobs: 2 });
  const c = echoed.choices[0];
  t.check(c.text === PROMPT + plain.choices[0].text, 'echo: the prompt, then the same completion',
    JSON.stringify([c.text.slice(0, 80), plain.choices[0].text]));
  const lp = c.logprobs;
  const n = echoed.usage.prompt_tokens;
  t.check(lp.tokens.length === n + 5, 'echo: one log-prob entry per prompt and completion token', `${lp.tokens.length} vs ${n}+5`);
  t.check(lp.token_logprobs[0] === null && lp.top_logprobs[0] === null, 'echo: the first prompt token has null log-probs');
  t.check(lp.token_logprobs.slice(1).every((x) => typeof x === 'number' && x <= 0), 'echo: the others are log-probs');
  t.check(lp.top_logprobs.slice(1).every((d) => d && Object.keys(d).length >= 2 && Object.keys(d).length <= 3),
    'echo: 2 alternatives (+ the token itself)');
  const tail = lp.token_logprobs.slice(n);
  t.check(tail.every((x, i) => Math.abs(x - plain.choices[0].logprobs.token_logprobs[i]) < 0.02),
    'echo: the completion log-probs are the plain request\'s', JSON.stringify([tail, plain.choices[0].logprobs.token_logprobs]));
  t.check(lp.text_offset.every((o, i) => i === 0 || o >= lp.text_offset[i - 1]), 'text offsets ascend');
  // lm-eval's log-likelihood request: the prompt alone, scored.
  const ll = await client.completions.create({ model: MODEL, prompt: PROMPT, max_tokens: 0, temperature: 0, echo: true,
    logprobs: 1 });
  t.check(ll.choices[0].text === PROMPT && ll.usage.completion_tokens === 0, 'max_tokens 0 with echo: the prompt only',
    JSON.stringify(ll.usage));
  t.check(JSON.stringify(ll.choices[0].logprobs.token_logprobs) === JSON.stringify(lp.token_logprobs.slice(0, n)),
    'max_tokens 0: the same prompt log-probs as with a completion');
  // Token-id prompts, and a batch of two with n = 2: each choice echoes its own prompt.
  const ids = [128000, 791, 4062, 14198, 39935];
  const two = await client.completions.create({ model: MODEL, prompt: [ids, ids.slice(0, 3)], n: 2, max_tokens: 2,
    temperature: 0, echo: true, logprobs: 0 });
  t.check(two.choices.length === 4, 'prompts x n choices');
  t.check(two.choices.every((ch) => ch.logprobs.tokens.length === (ch.index < 2 ? 5 : 3) + 2), 'each choice scores its prompt');
  // Streamed: the echo opens the stream.
  const stream = await client.completions.create({ model: MODEL, prompt: PROMPT, max_tokens: 5, temperature: 0, echo: true,
    stream: true });
  let text = '';
  let firstChunk = null;
  for await (const ch of stream) {
    if (firstChunk === null) firstChunk = ch.choices[0].text;
    text += ch.choices[0].text;
  }
  t.check(firstChunk.startsWith(PROMPT) && text === PROMPT + plain.choices[0].text, 'streamed echo', JSON.stringify(text));
  t.check(await status(() => client.completions.create({ model: MODEL, prompt: 'x', max_tokens: 0 })) === 400,
    'max_tokens 0 without echo: 400');
  // logprobs 0: the sampled token's entry (vLLM's), never null.
  const z = await client.completions.create({ model: MODEL, prompt: PROMPT, max_tokens: 3, temperature: 0, logprobs: 0 });
  const tops = z.choices[0].logprobs.top_logprobs;
  t.check(Array.isArray(tops) && tops.length === 3 && tops.every((d, i) => Object.keys(d).length === 1 &&
    d[z.choices[0].logprobs.tokens[i]] === z.choices[0].logprobs.token_logprobs[i]), 'logprobs 0: the sampled token alone',
  JSON.stringify(tops));
});

await t.section('CORS and content types', async () => {
  const pre = await request(server.port, 'OPTIONS', '/v1/chat/completions', null,
    { Origin: ORIGIN, 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'authorization,content-type' });
  t.check(pre.status === 204, 'preflight from an allowed origin: 204 without the key', String(pre.status));
  t.check(pre.headers['access-control-allow-origin'] === ORIGIN, 'preflight echoes the origin');
  t.check((pre.headers['access-control-allow-methods'] || '').includes('POST'), 'preflight allows POST');
  t.check((pre.headers['access-control-allow-headers'] || '').includes('authorization'), 'preflight allows the asked headers');
  const bad = await request(server.port, 'OPTIONS', '/v1/chat/completions', null,
    { Origin: 'http://evil.example', 'Access-Control-Request-Method': 'POST' });
  t.check(bad.status === 403 && !bad.headers['access-control-allow-origin'], 'preflight from another origin: 403, no CORS header');
  const post = await request(server.port, 'POST', '/v1/completions', { model: MODEL, prompt: 'x', max_tokens: 1 },
    { ...AUTH, Origin: ORIGIN });
  t.check(post.status === 200 && post.headers['access-control-allow-origin'] === ORIGIN && post.headers.vary === 'Origin',
    'an allowed origin\'s POST carries Access-Control-Allow-Origin');
  const evil = await request(server.port, 'POST', '/v1/completions', { model: MODEL, prompt: 'x', max_tokens: 1 },
    { ...AUTH, Origin: 'http://evil.example' });
  t.check(!evil.headers['access-control-allow-origin'], 'another origin gets no CORS header');
  const sse = await request(server.port, 'POST', '/v1/completions', { model: MODEL, prompt: 'x', max_tokens: 2, stream: true },
    { ...AUTH, Origin: ORIGIN });
  t.check(sse.headers['access-control-allow-origin'] === ORIGIN, 'a stream carries it too');
  const opts = await request(server.port, 'OPTIONS', '/v1/models');
  t.check(opts.status === 204 && (opts.headers.allow || '').includes('GET'), 'OPTIONS without a preflight: 204 with Allow');
  // A browser's "simple" POST (no preflight) is refused: 415.
  const body = JSON.stringify({ model: MODEL, prompt: 'x', max_tokens: 1 });
  for (const [ct, what] of [['text/plain;charset=UTF-8', 'text/plain'], ['application/x-www-form-urlencoded', 'a form'],
    [null, 'no Content-Type']]) {
    const r = await raw(`POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEY}\r\nConnection: close\r\n` +
      (ct ? `Content-Type: ${ct}\r\n` : '') + `Content-Length: ${body.length}\r\n\r\n${body}`);
    t.check(r.startsWith('HTTP/1.1 415') && r.includes('"unsupported_media_type"'), `${what}: 415`, r.slice(0, 60));
  }
  const ok = await raw(`POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEY}\r\nConnection: close\r\n` +
    `Content-Type: Application/JSON; charset=utf-8\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
  t.check(ok.startsWith('HTTP/1.1 200'), 'application/json with a charset: 200', ok.slice(0, 60));
});

await t.section('models and limits', async () => {
  const m = await client.models.retrieve(MODEL);
  t.check(m.id === MODEL && m.object === 'model', 'GET /v1/models/{id}', JSON.stringify(m));
  const unknown = await request(server.port, 'GET', '/v1/models/nope', null, AUTH);
  t.check(unknown.status === 404 && JSON.parse(unknown.body).error.code === 'model_not_found', 'an unknown id: 404 model_not_found');
  const list = await client.models.list();
  const maxLen = list.data[0].max_model_len;
  t.check(m.max_model_len === maxLen, 'the same max_model_len');
  if (!pd) t.check(maxLen < 131072, 'max_model_len is the KV pool\'s when it is smaller', String(maxLen));
  const long = new Array(maxLen).fill(791);
  const e = await error(() => client.completions.create({ model: MODEL, prompt: long, max_tokens: 1 }));
  t.check(e && e.status === 400 && e.code === 'context_length_exceeded', 'a prompt of max_model_len tokens: context_length_exceeded',
    e ? `${e.status} ${e.code}` : 'accepted');
  const e2 = await error(() => client.completions.create({ model: MODEL, prompt: 'x', max_tokens: maxLen }));
  t.check(e2 && e2.status === 400 && e2.code === 'context_length_exceeded' && e2.param === 'max_tokens',
    'max_tokens past the context: context_length_exceeded', e2 ? `${e2.status} ${e2.code} ${e2.param}` : 'accepted');
  if (!pd) {
    const fits = await client.completions.create({ model: MODEL, prompt: long.slice(1), max_tokens: 1, temperature: 0 });
    t.check(fits.usage.prompt_tokens === maxLen - 1 && fits.usage.completion_tokens === 1, 'max_model_len - 1 + 1 token fits');
  }
  for (const seed of ['9223372036854775808', '18446744073709551615']) {
    const b = `{"prompt":"x","max_tokens":1,"seed":${seed}}`;
    const r = await raw(`POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEY}\r\nConnection: close\r\n` +
      `Content-Type: application/json\r\nContent-Length: ${b.length}\r\n\r\n${b}`);
    t.check(r.startsWith('HTTP/1.1 400') && r.includes('"param":"seed"'), `seed ${seed}: 400`, r.slice(0, 200));
  }
  const neg = await client.completions.create({ model: MODEL, prompt: 'x', max_tokens: 1, seed: -5 });
  t.check(neg.choices.length === 1, 'a negative seed is a signed 64-bit seed');
});

await t.section('structured output', async () => {
  const chat = (extra) => client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'Give JSON.' }],
    ...extra });
  const parses = (text) => {
    try {
      return JSON.parse(text);
    } catch {
      return undefined;
    }
  };
  // A random-weight model under the grammar: the text always parses, also when max_tokens cuts it short.
  for (const [max_tokens, temperature] of [[8, 0], [40, 0], [40, 1.0], [200, 0.7]]) {
    const r = await chat({ response_format: { type: 'json_object' }, max_tokens, temperature, seed: 11 });
    const v = parses(r.choices[0].message.content);
    t.check(v !== undefined && typeof v === 'object' && !Array.isArray(v) && v !== null,
      `json_object (max_tokens ${max_tokens}, T ${temperature}): an object`, r.choices[0].message.content);
    t.check(r.usage.completion_tokens <= max_tokens, `json_object: within max_tokens ${max_tokens}`);
  }
  const schema = {
    type: 'object', additionalProperties: false, required: ['name', 'age', 'tags'],
    properties: {
      name: { type: 'string', minLength: 1, maxLength: 10 },
      age: { type: 'integer', minimum: 0, maximum: 150 },
      tags: { type: 'array', items: { enum: ['red', 'green', 'blue'] }, maxItems: 3 },
      ok: { type: 'boolean' },
    },
  };
  const fmt = { type: 'json_schema', json_schema: { name: 'person', strict: true, schema } };
  for (const temperature of [0, 1.2]) {
    for (let seed = 1; seed <= 3; ++seed) {
      const r = await chat({ response_format: fmt, max_tokens: 120, temperature, seed });
      const text = r.choices[0].message.content;
      const v = parses(text);
      const fits = v && typeof v.name === 'string' && [...v.name].length >= 1 && [...v.name].length <= 10 &&
        Number.isInteger(v.age) && v.age >= 0 && v.age <= 150 && Array.isArray(v.tags) && v.tags.length <= 3 &&
        v.tags.every((x) => ['red', 'green', 'blue'].includes(x)) && (v.ok === undefined || typeof v.ok === 'boolean') &&
        Object.keys(v).every((k) => k in schema.properties);
      t.check(fits, `json_schema (T ${temperature}, seed ${seed}): matches the schema`, text);
      if (temperature === 0 && seed === 1) t.check(r.choices[0].finish_reason === 'stop', 'a complete value stops', r.choices[0].finish_reason);
    }
  }
  // Streamed: the deltas join into the same value as the whole response.
  const whole = await chat({ response_format: fmt, max_tokens: 120, temperature: 0 });
  let joined = '';
  for await (const c of await chat({ response_format: fmt, max_tokens: 120, temperature: 0, stream: true })) {
    joined += c.choices[0]?.delta?.content ?? '';
  }
  t.check(joined === whole.choices[0].message.content, 'streamed deltas join into the same value');
  // Completions take it too.
  const c = await client.completions.create({ model: MODEL, prompt: PROMPT, max_tokens: 30, temperature: 0,
    response_format: { type: 'json_object' } });
  t.check(parses(c.choices[0].text) !== undefined, 'completions: json_object parses', c.choices[0].text);
  // What cannot be honoured is a 400 naming response_format.
  for (const [rf, what] of [[{ type: 'sound' }, 'an unknown type'], [{ type: 'json_schema' }, 'no json_schema'],
    [{ type: 'json_schema', json_schema: { name: 'x', schema: { type: 'string', pattern: '^a+$' } } }, 'pattern'],
    [{ type: 'json_schema', json_schema: { name: 'x', schema: { type: 'strng' } } }, 'a misspelt type'],
    [{ type: 'json_schema', json_schema: { name: 'x', schema: { $ref: '#/$defs/Missing' } } }, 'a dangling $ref']]) {
    const e = await error(() => chat({ response_format: rf, max_tokens: 5 }));
    t.check(e && e.status === 400 && e.param === 'response_format', `${what}: 400 response_format`,
      e ? `${e.status} ${e.param} ${e.message}` : 'accepted');
  }
});

await t.section('tool calling', async () => {
  const tools = [
    { type: 'function', function: { name: 'get_weather', description: 'The weather in a city',
      parameters: { type: 'object', additionalProperties: false, required: ['city'],
        properties: { city: { type: 'string', maxLength: 12 }, unit: { enum: ['c', 'f'] } } } } },
    { type: 'function', function: { name: 'get_time', description: 'The time now' } },
  ];
  const messages = [{ role: 'user', content: 'What is the weather in Oslo?' }];
  const okCall = (c) => {
    if (c.type !== 'function' || !c.id || !['get_weather', 'get_time'].includes(c.function.name)) return false;
    const a = JSON.parse(c.function.arguments);
    return c.function.name === 'get_time' ? Object.keys(a).length === 0
      : typeof a.city === 'string' && [...a.city].length <= 12 && (a.unit === undefined || ['c', 'f'].includes(a.unit)) &&
        Object.keys(a).every((k) => k === 'city' || k === 'unit');
  };
  for (const temperature of [0, 1.0]) {
    const r = await client.chat.completions.create({ model: MODEL, messages, tools, tool_choice: 'required', max_tokens: 150,
      temperature, seed: 5 });
    const m = r.choices[0].message;
    t.check(m.content === null && Array.isArray(m.tool_calls) && m.tool_calls.length >= 1 && m.tool_calls.every(okCall),
      `required (T ${temperature}): calls of declared functions with valid arguments`, JSON.stringify(m));
    t.check(r.choices[0].finish_reason === 'tool_calls', 'required: finish_reason tool_calls', r.choices[0].finish_reason);
  }
  const one = await client.chat.completions.create({ model: MODEL, messages, tools, tool_choice: 'required',
    parallel_tool_calls: false, max_tokens: 150, temperature: 1.0, seed: 9 });
  t.check(one.choices[0].message.tool_calls?.length === 1, 'parallel_tool_calls false: one call');
  const named = await client.chat.completions.create({ model: MODEL, messages, tools, max_tokens: 100, temperature: 0,
    tool_choice: { type: 'function', function: { name: 'get_weather' } } });
  const nc = named.choices[0].message.tool_calls;
  t.check(nc?.length === 1 && nc[0].function.name === 'get_weather' && okCall(nc[0]) && named.choices[0].finish_reason === 'stop',
    'a named function: one call of it, finish_reason stop', JSON.stringify(named.choices[0]));
  // Streamed: the call arrives as a tool_calls delta.
  let streamed = null;
  let finish = null;
  for await (const c of await client.chat.completions.create({ model: MODEL, messages, tools, max_tokens: 100, temperature: 0,
    tool_choice: { type: 'function', function: { name: 'get_weather' } }, stream: true })) {
    const d = c.choices[0]?.delta;
    if (d?.tool_calls) streamed = d.tool_calls;
    if (c.choices[0]?.finish_reason) finish = c.choices[0].finish_reason;
  }
  t.check(streamed?.length === 1 && streamed[0].index === 0 && streamed[0].function.arguments === nc[0].function.arguments &&
    finish === 'stop', 'streamed: the same call in one tool_calls delta', JSON.stringify(streamed));
  // auto: the model's choice (a random model writes text), the tools reach the template.
  const auto = await client.chat.completions.create({ model: MODEL, messages, tools, max_tokens: 8, temperature: 0 });
  t.check(typeof auto.choices[0].message.content === 'string' || auto.choices[0].message.tool_calls, 'auto: text or calls');
  for (const [extra, param] of [[{ tool_choice: { type: 'function', function: { name: 'launch' } } }, 'tool_choice'],
    [{ tool_choice: 'sometimes' }, 'tool_choice'], [{ tools: [{ type: 'function', function: { name: 'bad name' } }] }, 'tools'],
    [{ tool_choice: 'required', response_format: { type: 'json_object' } }, 'tool_choice']]) {
    const e = await error(() => client.chat.completions.create({ model: MODEL, messages, tools, max_tokens: 5, ...extra }));
    t.check(e && e.status === 400 && e.param === param, `400 ${param}: ${JSON.stringify(extra).slice(0, 60)}`,
      e ? `${e.status} ${e.param} ${e.message}` : 'accepted');
  }
});

const { code } = await stopServer(server);
t.check(code === 0, 'exit code 0 after SIGTERM', String(code));
t.finish();
