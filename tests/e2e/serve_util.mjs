// Shared by the `crescent serve` end-to-end tests: start a live server on
// 127.0.0.1 (port 0: the server picks a free one and logs it), wait until it is
// ready, raw HTTP over sockets, a tiny check/report harness, and shutdown.
//
// Usage: node <test>.mjs --crescent BIN --source DIR --work DIR
import { spawn } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { createRequire } from 'node:module';

export function parseArgs() {
  const a = process.argv.slice(2);
  const out = {};
  for (let i = 0; i < a.length; i += 2) out[a[i].replace(/^--/, '')] = a[i + 1];
  for (const k of ['crescent', 'source', 'work']) {
    if (!out[k]) throw new Error(`missing --${k}`);
  }
  return out;
}

// The openai package from the repo's npm folder, its client on sockets that
// are not kept alive. On Debian 12 (nodejs 18.20.4+dfsg-1~deb12u3) Node's
// Agent puts a 'data' listener (freeSocketDataGuard, a security fix) on a
// socket it takes back into its pool, and node-fetch 2.7 (the openai
// package's transport) reads any data listener left at a chunked response's
// 'close' as "Premature close": every streamed request failed there, against
// any server (docs/serving.md). Node 20 from nodesource has no such guard.
export function loadOpenAI(source) {
  const require = createRequire(path.join(source, 'third_party/npm/package.json'));
  const { OpenAI } = require('openai');
  return class extends OpenAI {
    constructor(opts) {
      super({ httpAgent: new http.Agent({ keepAlive: false }), ...opts });
    }
  };
}

export const HOST = '127.0.0.1';

// Starts `crescent serve --model dummy:tiny-llama3` with extra flags; resolves
// once /health answers 200. The dummy model is written once under work/.
// Spawns `crescent argv...`; resolves with the process and the first match of
// `pattern` in its log.
async function spawnUntil(args, argv, pattern, what) {
  const proc = spawn(args.crescent, argv, {
    stdio: ['ignore', 'inherit', 'pipe'],
    env: { ...process.env, OMP_WAIT_POLICY: 'PASSIVE' },
  });
  let log = '';
  const m = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what} did not start:\n` + log)), 60000);
    proc.stderr.on('data', (d) => {
      process.stderr.write(d);
      log += d.toString();
      const found = log.match(pattern);
      if (found) {
        clearTimeout(timer);
        resolve(found);
      }
    });
    proc.on('exit', (code) => reject(new Error(`${what} exited (${code}) before listening:\n${log}`)));
  });
  return { proc, m };
}

// `crescent serve` on the dummy tiny-llama3; with `--pd 1` in the test's
// arguments, a prefill/decode split instead (a decode and a prefill instance
// and `crescent conductor` in front: the same API, what the test talks to).
export async function startServer(args, extra = []) {
  const dummy = ['--model', 'dummy:tiny-llama3', '--dummy-dir', path.join(args.work, 'tiny-llama3')];
  const instance = ['serve', ...dummy, '--host', HOST, '--port', '0',
    ...(extra.includes('--kv-cache-bytes') ? [] : ['--kv-cache-bytes', String(256 << 20)])];
  const helpers = [];
  let front;
  if (args.pd === '1') {
    const kv = /KV service on ([\d.]+:\d+)/;
    const d = await spawnUntil(args, [...instance, '--role', 'decode'], kv, 'decode instance');
    helpers.push(d.proc);
    const p = await spawnUntil(args, [...instance, '--role', 'prefill'], kv, 'prefill instance');
    helpers.push(p.proc);
    front = await spawnUntil(args, ['conductor', ...dummy, '--host', HOST, '--port', '0', '--prefill', p.m[1],
      '--decode', d.m[1], ...extra], /listening on http:\/\/[^:]+:(\d+)/, 'conductor');
  } else {
    front = await spawnUntil(args, [...instance, ...extra], /listening on http:\/\/[^:]+:(\d+)/, 'server');
  }
  const proc = front.proc;
  const server = { proc, helpers, port: Number(front.m[1]),
    exited: new Promise((r) => proc.on('exit', (code, sig) => r({ code, sig }))) };
  const deadline = Date.now() + 60000;
  while (Date.now() < deadline) {
    const r = await request(server.port, 'GET', '/health').catch(() => null);
    if (r && r.status === 200) return server;
    await sleep(50);
  }
  throw new Error('server not ready in 60 s');
}

// SIGTERM; resolves with the exit code (must be 0).
export async function stopServer(server) {
  server.proc.kill('SIGTERM');
  const t = setTimeout(() => server.proc.kill('SIGKILL'), 20000);
  const r = await server.exited;
  clearTimeout(t);
  for (const h of server.helpers || []) {  // the instances of a split, after their front
    h.kill('SIGTERM');
    const k = setTimeout(() => h.kill('SIGKILL'), 20000);
    await new Promise((res) => (h.exitCode !== null ? res() : h.on('exit', res)));
    clearTimeout(k);
  }
  return r;
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Sends raw bytes; resolves with everything the server sent until it closed
// the connection or `timeoutMs` passed ({data, closed, error}).
export function rawExchange(port, bytes, { timeoutMs = 5000, endAfterWrite = false, keepOpenMs = 0 } = {}) {
  return new Promise((resolve) => {
    const chunks = [];
    let settled = false;
    const sock = net.connect(port, HOST);
    const finish = (closed, error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      resolve({ data: Buffer.concat(chunks).toString('latin1'), closed, error });
    };
    const timer = setTimeout(() => finish(false, null), timeoutMs);
    sock.on('connect', () => {
      if (bytes != null) sock.write(bytes);
      if (endAfterWrite) sock.end();
    });
    sock.on('data', (d) => chunks.push(d));
    sock.on('end', () => finish(true, null));
    sock.on('close', () => finish(true, null));
    sock.on('error', (e) => finish(true, e));
  });
}

// One HTTP/1.1 request on its own connection: {status, headers, body}.
export function request(port, method, pathname, body = null, headers = {}) {
  return new Promise((resolve, reject) => {
    const data = body == null ? null : Buffer.isBuffer(body) ? body : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
    let head = `${method} ${pathname} HTTP/1.1\r\nHost: ${HOST}\r\nConnection: close\r\n`;
    for (const [k, v] of Object.entries(headers)) head += `${k}: ${v}\r\n`;
    if (data) head += `Content-Type: application/json\r\nContent-Length: ${data.length}\r\n`;
    head += '\r\n';
    const sock = net.connect(port, HOST);
    const chunks = [];
    // No half-close: the server reads EOF as the client leaving.
    sock.on('connect', () => sock.write(data ? Buffer.concat([Buffer.from(head), data]) : Buffer.from(head)));
    sock.on('data', (d) => chunks.push(d));
    sock.on('error', reject);
    sock.on('close', () => {
      // Headers are ASCII; the body stays bytes until it is de-chunked, because
      // chunk sizes count bytes, not UTF-16 units.
      const raw = Buffer.concat(chunks);
      const i = raw.indexOf('\r\n\r\n');
      if (i < 0) return reject(new Error('no HTTP response: ' + JSON.stringify(raw.toString('utf8').slice(0, 200))));
      const lines = raw.subarray(0, i).toString('latin1').split('\r\n');
      const status = Number(lines[0].split(' ')[1]);
      const hdrs = {};
      for (const l of lines.slice(1)) {
        const j = l.indexOf(':');
        hdrs[l.slice(0, j).toLowerCase()] = l.slice(j + 1).trim();
      }
      let payload = raw.subarray(i + 4);
      if (hdrs['transfer-encoding'] === 'chunked') payload = dechunk(payload);
      resolve({ status, headers: hdrs, body: payload.toString('utf8') });
    });
  });
}

// Chunked transfer coding -> body bytes (a Buffer in, a Buffer out; a string
// is taken as its UTF-8 bytes).
export function dechunk(input) {
  const s = Buffer.isBuffer(input) ? input : Buffer.from(input, 'utf8');
  const parts = [];
  let i = 0;
  while (i < s.length) {
    const j = s.indexOf('\r\n', i);
    if (j < 0) break;
    const n = parseInt(s.subarray(i, j).toString('latin1'), 16);
    if (!(n > 0)) break;
    parts.push(s.subarray(j + 2, j + 2 + n));
    i = j + 2 + n + 2;
  }
  const out = Buffer.concat(parts);
  return Buffer.isBuffer(input) ? out : out.toString('utf8');
}

// SSE payload -> list of parsed JSON events and whether [DONE] ended it.
export function parseSse(text) {
  const events = [];
  let done = false;
  for (const block of text.split('\n\n')) {
    if (!block) continue;
    if (!block.startsWith('data: ')) throw new Error('bad SSE block: ' + JSON.stringify(block));
    const payload = block.slice(6);
    if (payload === '[DONE]') {
      done = true;
      continue;
    }
    if (done) throw new Error('event after [DONE]');
    events.push(JSON.parse(payload));
  }
  return { events, done };
}

export class Checker {
  constructor(name) {
    this.name = name;
    this.failures = 0;
    this.passes = 0;
  }
  check(cond, what, detail = '') {
    if (cond) {
      this.passes++;
    } else {
      this.failures++;
      console.log(`FAIL: ${what} ${detail}`);
    }
  }
  async section(title, fn) {
    const t0 = Date.now();
    try {
      await fn();
    } catch (e) {
      this.failures++;
      console.log(`FAIL: ${title} threw: ${e && e.stack ? e.stack : e}`);
    }
    console.log(`  ${title} (${Date.now() - t0} ms)`);
  }
  finish() {
    console.log(`${this.name}: ${this.passes} checks passed, ${this.failures} failed`);
    process.exit(this.failures ? 1 : 0);
  }
}
