#!/usr/bin/env python3
"""`crescent bench trace` against a real `crescent serve` (tiny dummy) and
against a misbehaving HTTP server this test runs itself.

- A 50-request trace from `crescent make-trace`, scaled down: every request
  accounted for; with prefix caching, each request that shares leading hash
  ids with an earlier one (sent after it ended) gets cached_tokens > 0 and
  one that shares none gets 0; without prefix caching, none gets any.
- report.json / requests.jsonl / the PNG plots exist and are PNG images.
- --compare of the two runs: a table and two charts.
- Bad input: a malformed trace line (its line number in one readable line,
  exit 1), an unreachable URL (exit 1), a server that answers 500 or 503 or
  closes mid-stream (failures and rejections counted, the run goes on),
  Ctrl-C (a partial report, at once).

Usage: bench_trace_test.py --crescent BIN --work DIR
"""
import argparse
import http.server
import json
import os
import signal
import socketserver
import subprocess
import sys
import threading
import time

from pd_harness import Cluster

ap = argparse.ArgumentParser()
ap.add_argument("--crescent", required=True)
ap.add_argument("--work", required=True)
a = ap.parse_args()
C = Cluster(a.crescent, a.work, "tiny-llama3")
check = C.check


def bench(*argv, timeout=300):
    return subprocess.run([a.crescent, "bench", "trace", *argv], capture_output=True, text=True, timeout=timeout)


def is_png(path):
    try:
        with open(path, "rb") as f:
            head = f.read(8)
        return head == b"\x89PNG\r\n\x1a\n" and os.path.getsize(path) > 2000
    except OSError:
        return False


trace = os.path.join(a.work, "trace.jsonl")
r = subprocess.run([a.crescent, "make-trace", "--out", trace, "--requests", "50", "--seed", "5", "--rate", "5"],
                   capture_output=True, text=True)
check(r.returncode == 0, "make-trace writes a 50-request trace")
reqs = [json.loads(line) for line in open(trace)]
SCALE = ["--length-scale", "0.05", "--output-scale", "0.05", "--time-scale", "0.2"]


def run_against(name, *serve_args):
    srv, port, _ = C.serve(name, *serve_args, kv_bytes=256 << 20)
    out = os.path.join(a.work, "run-" + name)
    # One request at a time: each one's prefix is in the cache before the next is sent.
    r = bench("--url", "http://127.0.0.1:%d" % port, "--trace", trace, *SCALE, "--max-concurrency", "1", "--out", out,
              "--json", *(SIM if name == "caching" else []))
    srv.send_signal(signal.SIGTERM)
    srv.wait(30)
    check(r.returncode == 0, "%s: bench trace exits 0 (%s)" % (name, r.stderr.strip()[-300:]))
    summary = json.loads(r.stdout) if r.returncode == 0 else {}
    recs = [json.loads(line) for line in open(os.path.join(out, "requests.jsonl"))] if r.returncode == 0 else []
    return out, summary, recs


# The measured cost profile of this model, for the simulator's prediction of the first run
# (the dummy's folder is written by the first `crescent serve` on it).
if not os.path.exists(os.path.join(C.DUMMY, "config.json")):
    first, _, _ = C.serve("write-dummy")
    first.send_signal(signal.SIGTERM)
    first.wait(30)
profile = os.path.join(a.work, "profile.json")
r = subprocess.run([a.crescent, "bench", "engine", "--model", C.DUMMY, "--ttft-prompt-len", "0", "--gen-len", "16",
                    "--profile-out", profile], capture_output=True, text=True, timeout=300)
prof = json.load(open(profile)) if r.returncode == 0 else {}
fitted = sum(prof.get(k, 0) for k in ("prefill_fixed_s", "prefill_token_s", "prefill_pair_s"))
check(r.returncode == 0 and fitted > 0 and len(prof.get("_measured", {}).get("decode", [])) >= 4,
      "bench engine --profile-out writes a fitted profile (%s)" % r.stderr.strip()[-200:])
SIM = ["--simulate", profile] if r.returncode == 0 else []

out_on, s_on, recs_on = run_against("caching")
n = s_on.get("requests", {})
check(n.get("total") == 50 and n.get("ok", 0) + n.get("rejected", 0) + n.get("failed", 0) + n.get("cancelled", 0) == 50,
      "every request accounted for (%s)" % n)
check(n.get("ok") == 50 and len(recs_on) == 50, "  all 50 answered")
shared = lambda i: any(reqs[j]["hash_ids"][:1] == reqs[i]["hash_ids"][:1] for j in range(i))
by_index = {rec["index"]: rec for rec in recs_on}
want_hit = [i for i in range(1, 50) if shared(i)]
want_miss = [i for i in range(50) if not shared(i)]
hits = [i for i in want_hit if by_index.get(i, {}).get("cached_tokens", 0) > 0]
check(len(want_hit) > 10 and len(hits) == len(want_hit),
      "with prefix caching: every request sharing leading hash ids with an earlier one hits (%d of %d)" %
      (len(hits), len(want_hit)))
check(all(by_index.get(i, {}).get("cached_tokens", -1) == 0 for i in want_miss),
      "  and one that shares none does not (%d)" % len(want_miss))
check(s_on.get("prefix_hit_rate", 0) > 0, "  the report's hit rate: %.3f" % (s_on.get("prefix_hit_rate") or 0))
check(s_on.get("ttft_s", {}).get("n") == 50 and s_on["ttft_s"]["p99"] > 0, "  TTFT measured for every request")
check(s_on.get("tbt_s", {}).get("n", 0) > 0 and s_on.get("itl_s", {}).get("n", 0) > 0, "  TBT and ITL measured")
sim = s_on.get("simulator", {})
check(sim.get("simulated_ttft_s", {}).get("n") == 50 and sim["simulated_ttft_s"]["mean"] > 0 and
      sim.get("kv_capacity_tokens", 0) > 0,
      "--simulate: the simulator's TTFT for the same requests beside the measured (mean error %+.0f%%, p90 %+.0f%%)" %
      (100 * sim.get("mean_error", 0), 100 * sim.get("p90_error", 0)))
report = json.load(open(os.path.join(out_on, "report.json")))
check("metrics_before" in report and "crescent_generation_tokens_total" in report["metrics_after"],
      "report.json holds the server's /metrics before and after")
for png in ("ttft_cdf", "tbt_cdf", "ttft_over_time", "throughput_over_time"):
    check(is_png(os.path.join(out_on, png + ".png")), "  %s.png is a PNG image" % png)

out_off, s_off, recs_off = run_against("nocache", "--no-enable-prefix-caching")
check(len(recs_off) == 50 and all(rec["cached_tokens"] == 0 for rec in recs_off),
      "without prefix caching no request gets cached tokens")

cmp_dir = os.path.join(a.work, "compare")
r = bench("--compare", out_on, out_off, "--out", cmp_dir)
check(r.returncode == 0 and "run-caching" in r.stdout and "run-nocache" in r.stdout,
      "--compare prints the runs side by side")
check(is_png(os.path.join(cmp_dir, "compare_ttft_cdf.png")) and is_png(os.path.join(cmp_dir, "compare_tbt_cdf.png")),
      "  and draws their CDFs on one chart each")

# Bad input.
bad = os.path.join(a.work, "bad.jsonl")
with open(bad, "w") as f:
    f.write(open(trace).readline() + open(trace).readline() + '{"timestamp": 5, "input_length": "x"}\n')
r = bench("--url", "http://127.0.0.1:1", "--trace", bad)
check(r.returncode == 1 and ":3" in r.stderr and len(r.stderr.strip().splitlines()) == 1,
      "a malformed trace line: one readable line naming it (%s)" % r.stderr.strip()[:120])
r = bench("--url", "http://127.0.0.1:1", "--trace", trace, timeout=60)
check(r.returncode == 1 and "does not answer" in r.stderr, "an unreachable URL: %s" % r.stderr.strip()[:120])


class Bad(http.server.BaseHTTPRequestHandler):
    """500, 503, a stream cut after one token, a stream that stalls, a good stream: in turn."""
    protocol_version = "HTTP/1.1"
    n = 0
    lock = threading.Lock()

    def log_message(self, *args):
        pass

    def reply(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/v1/models":
            self.reply(200, {"object": "list", "data": [{"id": "bad-model", "object": "model"}]})
        else:
            self.reply(404, {"error": {"message": "no such route"}})

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with Bad.lock:
            k = Bad.n % (5 if STALL else 4)
            Bad.n += 1
        if k == 0:
            return self.reply(500, {"error": {"message": "boom", "type": "server_error"}})
        if k == 1:
            return self.reply(503, {"error": {"message": "busy", "type": "server_error"}})
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        ev = lambda t: self.wfile.write(("data: " + json.dumps({"choices": [{"index": 0, "text": t}]}) + "\n\n").encode())
        ev("a")
        self.wfile.flush()
        if k == 2:  # cut mid-stream
            self.connection.shutdown(2)
            return
        if k == 4:  # stalls
            time.sleep(60)
            return
        ev("b")
        self.wfile.write(b'data: {"choices":[],"usage":{"completion_tokens":2,"prompt_tokens":3}}\n\ndata: [DONE]\n\n')
        self.wfile.flush()
        self.close_connection = True


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


STALL = False
srv = Server(("127.0.0.1", 0), Bad)
threading.Thread(target=srv.serve_forever, daemon=True).start()
url = "http://127.0.0.1:%d" % srv.server_address[1]
r = bench("--url", url, "--trace", trace, "--max-requests", "20", "--time-scale", "0.05", "--json", timeout=120)
s = json.loads(r.stdout) if r.returncode == 0 else {}
n = s.get("requests", {})
check(r.returncode == 0 and n.get("total") == 20, "a misbehaving server: the run goes on to the end (%s)" % n)
check(n.get("failed") == 10 and n.get("rejected") == 5 and n.get("ok") == 5,
      "  500s and cut streams counted as failures, 503s as rejections, the rest ok")

STALL = True
Bad.n = 0
p = subprocess.Popen([a.crescent, "bench", "trace", "--url", url, "--trace", trace, "--time-scale", "0.05"],
                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
time.sleep(3)
t0 = time.time()
p.send_signal(signal.SIGINT)
try:
    out, err = p.communicate(timeout=15)
except subprocess.TimeoutExpired:
    p.kill()
    out, err = p.communicate()
check(time.time() - t0 < 10 and "interrupted" in out and " 10 cancelled" in out,
      "Ctrl-C: a partial report at once (%.1f s): %s" % (time.time() - t0, out.strip().splitlines()[:2]))
srv.shutdown()
print("bench trace: %d failure(s)" % len(C.failures), flush=True)
sys.exit(1 if C.failures else 0)
