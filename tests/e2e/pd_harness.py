"""What the prefill/decode e2e scripts share: a Cluster that starts
`crescent serve` / `crescent conductor` processes (killed at exit), posts
OpenAI requests and collects greedy outputs, and a check() that counts
failures."""
import atexit
import json
import os
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request


class Cluster:
    def __init__(self, crescent, work, model, env=None):
        self.crescent, self.work, self.model = crescent, work, model
        self.MODEL = "dummy:" + model
        self.DUMMY = os.path.join(work, model)
        self.env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE", **(env or {}))
        self.live = []
        self.failures = []
        os.makedirs(work, exist_ok=True)
        atexit.register(self.kill_all)

    def kill_all(self):
        for p in self.live:
            if p.poll() is None:
                p.kill()

    def stop(self, *procs):
        """SIGTERM to each, then waits (SIGKILL after 30 s)."""
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def check(self, cond, what):
        print(("ok   " if cond else "FAIL ") + what, flush=True)
        if not cond:
            self.failures.append(what)

    def log(self, name):
        return open(os.path.join(self.work, name + ".log")).read()

    def start(self, name, *argv, wait=r"ready in [\d.]+ s on http://127.0.0.1:(\d+)", env=None, prefix=()):
        log_path = os.path.join(self.work, name + ".log")
        log = open(log_path, "w")
        p = subprocess.Popen([*prefix, self.crescent, *argv], stdout=log, stderr=subprocess.STDOUT,
                             env=dict(self.env, **(env or {})))
        self.live.append(p)
        deadline = time.time() + 90
        while time.time() < deadline:
            text = open(log_path).read()
            m = re.search(wait, text)
            if m:
                return p, m.group(1), text
            if p.poll() is not None:
                return p, None, text
            time.sleep(0.1)
        return p, None, open(log_path).read()

    def serve(self, name, *extra, env=None, prefix=(), kv_bytes=16 << 20):
        """`crescent serve` on the dummy; returns (process, HTTP port, KV service address or None)."""
        p, port, text = self.start(name, "serve", "--model", self.MODEL, "--dummy-dir", self.DUMMY, "--host",
                                   "127.0.0.1", "--port", "0", "--kv-cache-bytes", str(kv_bytes),
                                   "--kv-offload-dram-bytes", "0", *extra, env=env, prefix=prefix)
        if port is None:
            raise RuntimeError("%s did not start:\n%s" % (name, text[-3000:]))
        kv = re.search(r"KV service on ([\d.]+:\d+)", text)
        return p, int(port), kv.group(1) if kv else None

    def front(self, name, *extra, prefix=()):
        p, port, text = self.start(name, "conductor", "--model", self.MODEL, "--dummy-dir", self.DUMMY, "--host",
                                   "127.0.0.1", "--port", "0", *extra, prefix=prefix)
        if port is None:
            raise RuntimeError("%s did not start:\n%s" % (name, text[-3000:]))
        return p, int(port)


def post(port, path, body, timeout=120):
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def complete(port, prompt, max_tokens=8, stream=False, chat=False, timeout=120):
    """A greedy request; (status, text, completion tokens) — a stream's error event gives status 500."""
    body = {"max_tokens": max_tokens, "temperature": 0, "stream": stream}
    if chat:
        body["messages"] = [{"role": "user", "content": prompt}]
    else:
        body["prompt"] = prompt
    status, text = post(port, "/v1/chat/completions" if chat else "/v1/completions", body, timeout)
    if status != 200:
        return status, text, None
    if not stream:
        j = json.loads(text)
        c = j["choices"][0]
        return status, c["message"]["content"] if chat else c["text"], j["usage"]["completion_tokens"]
    out, n = "", 0
    for line in text.splitlines():
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue
        j = json.loads(line[6:])
        if "error" in j:
            return 500, line, None
        c = j["choices"][0]
        piece = (c.get("delta") or {}).get("content") if chat else c.get("text")
        if piece:
            out += piece
            n += 1
    return status, out, n


def metric(port, name):
    """The value of one /metrics series (name with its labels), or None."""
    text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=10).read().decode()
    m = re.search(r"^%s (\S+)$" % re.escape(name), text, re.M)
    return float(m.group(1)) if m else None
