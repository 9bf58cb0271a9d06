#!/usr/bin/env python3
"""`crescent serve` with KV offload to its in-process store (DRAM and SSD).

- A long prompt, evicted from a small engine pool by other prompts, is loaded
  back from the DRAM tier: usage.prompt_tokens_details.cached_tokens > 0 and
  the greedy output equals that of a server without offload.
- The server restarted on the same SSD directory answers it with cached
  tokens again (from SSD), same output.
- A flipped byte in an SSD record: the load fails its checksum, the prefix is
  recomputed, the output is unchanged and the failure is counted.

Usage: serve_offload_test.py --crescent BIN --work DIR
"""
import argparse
import atexit
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request

from e2e_harness import free_port

ap = argparse.ArgumentParser()
ap.add_argument("--crescent", required=True)
ap.add_argument("--work", required=True)
ap.add_argument("--part", default="local", choices=["local", "cluster"])
a = ap.parse_args()
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)


LIVE = []  # every process started, killed at exit whatever happened


@atexit.register
def _kill_leftovers():
    for p in LIVE:
        if p.poll() is None:
            p.kill()


class Server:
    def __init__(self, name, *extra, model="dummy:tiny-llama3", dummy="tiny-llama3"):
        self.log_path = os.path.join(a.work, name + ".log")
        self.log = open(self.log_path, "w")
        self.model = model
        argv = [a.crescent, "serve", "--model", model, "--dummy-dir", os.path.join(a.work, dummy),
                "--host", "127.0.0.1", "--port", "0", "--kv-cache-bytes", str(4 << 20), "--kv-chunk-tokens", "64",
                *extra]
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT,
                                     env=dict(os.environ, OMP_WAIT_POLICY="PASSIVE"))
        LIVE.append(self.proc)
        deadline = time.time() + 90
        self.port = None
        while time.time() < deadline:
            text = open(self.log_path).read()
            m = re.search(r"ready in [\d.]+ s on http://127.0.0.1:(\d+)", text)
            if m:
                self.port = int(m.group(1))
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError("server %s did not start:\n%s" % (name, open(self.log_path).read()[-3000:]))

    def complete(self, prompt):
        body = json.dumps({"model": self.model, "prompt": prompt, "max_tokens": 8, "temperature": 0}).encode()
        req = urllib.request.Request("http://127.0.0.1:%d/v1/completions" % self.port, data=body,
                                     headers={"Content-Type": "application/json"})
        r = json.load(urllib.request.urlopen(req, timeout=120))
        return r["choices"][0]["text"], r["usage"]["prompt_tokens_details"]["cached_tokens"]

    def metric(self, name, labels=""):
        """One series of /metrics, e.g. metric("x", 'tier="ssd"'); None when absent."""
        text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % self.port, timeout=30).read().decode()
        series = name + ("{%s}" % labels if labels else "")
        m = re.search(r"^%s (\S+)$" % re.escape(series), text, re.M)
        return float(m.group(1)) if m else None

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = "killed"
        check(rc == 0, "server exits 0 on SIGTERM (%s)" % rc)


os.makedirs(a.work, exist_ok=True)
A = " ".join("alpha%d" % i for i in range(300))  # 600 tokens: 9 whole 64-token chunks
others = [" ".join("beta%d_%d" % (k, i) for i in range(300)) for k in range(3)]


def local():
    ssd = os.path.join(a.work, "offload-ssd")
    shutil.rmtree(ssd, ignore_errors=True)

    ref = Server("offload-ref", "--kv-offload-dram-bytes", "0")
    want, _ = ref.complete(A)
    check(ref.metric("crescent_kv_offload_saves_total") == 0, "no offload with --kv-offload-dram-bytes 0")
    ref.stop()

    s = Server("offload-1", "--kv-offload-dram-bytes", "64M", "--kv-offload-ssd-dir", ssd)
    text, cached = s.complete(A)
    check(text == want and cached == 0, "first answer computed, as without offload")
    for p in others:  # 1,800 more tokens through a 2,048-token pool: A's pages are evicted
        s.complete(p)
    text, cached = s.complete(A)
    check(cached >= 512, "the evicted prefix is loaded back from the DRAM tier (%d cached tokens)" % cached)
    check(text == want, "same output with the prefix loaded from DRAM")
    check((s.metric("crescent_kv_offload_hits_tokens") or 0) >= 512, "loaded tokens counted")
    check((s.metric("crescent_prefix_cache_tier_hits_tokens", 'tier="dram"') or 0) >= 512,
          "the hit is counted on the DRAM tier")
    check((s.metric("crescent_kv_offload_loaded_bytes_total") or 0) > 0, "loaded bytes counted")
    check((s.metric("crescent_kv_offload_chunks_saved_total") or 0) >= 9, "saved chunks counted")
    check((s.metric("crescent_kv_store_used_bytes", 'tier="dram"') or 0) > 0, "the DRAM tier's usage is exported")
    check((s.metric("crescent_kv_offload_load_seconds_count") or 0) >= 1, "the load's latency is in the histogram")
    s.stop()

    recs = sorted(f for f in os.listdir(ssd) if f.endswith(".rec"))
    check(len(recs) >= 9, "chunks written through to the SSD tier (%d records)" % len(recs))
    s = Server("offload-2", "--kv-offload-dram-bytes", "64M", "--kv-offload-ssd-dir", ssd)
    text, cached = s.complete(A)
    check(cached >= 512, "after a restart the prefix comes from SSD (%d cached tokens)" % cached)
    check(text == want, "same output with the prefix loaded from SSD")
    check((s.metric("crescent_prefix_cache_tier_hits_tokens", 'tier="ssd"') or 0) >= 512,
          "the hit is counted on the SSD tier")
    check((s.metric("crescent_kv_store_used_bytes", 'tier="ssd"') or 0) > 0, "the SSD tier's usage is exported")
    s.stop()

    # Flip a byte in the data of every record: each load fails its checksum.
    for f in recs:
        with open(os.path.join(ssd, f), "r+b") as fh:
            fh.seek(4096 + 200)
            b = fh.read(1)
            fh.seek(4096 + 200)
            fh.write(bytes([b[0] ^ 0x10]))
    s = Server("offload-3", "--kv-offload-dram-bytes", "64M", "--kv-offload-ssd-dir", ssd)
    text, cached = s.complete(A)
    check(text == want, "same output when the stored chunks are corrupt (recomputed)")
    check(cached == 0, "nothing corrupt is used (%d cached tokens)" % cached)
    check((s.metric("crescent_kv_offload_load_failures_total") or 0) >= 1, "the failed load is counted")
    check((s.metric("crescent_kv_offload_checksum_failures_total") or 0) >= 1, "the checksum failure is counted")
    s.stop()



def cluster():
    """Two instances on one store master: B reuses what A computed; an
    instance of another model is refused the store's KV; a killed master
    fails no request."""
    ref = Server("cluster-ref", "--kv-offload-dram-bytes", "0")
    want, _ = ref.complete(A)
    ref_outputs = {p: ref.complete(p)[0] for p in others[:2]}
    ref.stop()
    port = free_port()
    mlog = open(os.path.join(a.work, "cluster-master.log"), "w")
    master = subprocess.Popen([a.crescent, "store-master", "--listen", "127.0.0.1:%d" % port], stdout=mlog,
                              stderr=subprocess.STDOUT)
    LIVE.append(master)
    addr = "127.0.0.1:%d" % port
    time.sleep(0.5)
    try:
        sa = Server("cluster-a", "--store-master", addr, "--kv-offload-dram-bytes", "64M")
        sb = Server("cluster-b", "--store-master", addr, "--kv-offload-dram-bytes", "64M")
        text, cached = sa.complete(A)
        check(text == want and cached == 0, "instance A computes the prompt")
        time.sleep(0.5)  # A's saves end asynchronously
        text, cached = sb.complete(A)
        check(cached >= 512, "instance B reuses the prefix A computed (%d cached tokens)" % cached)
        check(text == want, "same output on B with A's KV")
        check((sb.metric("crescent_prefix_cache_tier_hits_tokens", 'tier="remote"') or 0) +
              (sb.metric("crescent_prefix_cache_tier_hits_tokens", 'tier="dram"') or 0) >= 512,
              "B's hit is counted by tier")
        # Another model (another seed: other weights) on the same master is refused its KV.
        sc = Server("cluster-c", "--store-master", addr, "--kv-offload-dram-bytes", "64M", model="dummy:tiny-qwen3",
                    dummy="tiny-qwen3")
        short = " ".join("alpha%d" % i for i in range(40))  # whole chunks, within its small pool
        _, cached = sc.complete(short)
        check(cached == 0, "an instance of another model gets none of the store's KV")
        _, cached = sc.complete(short)
        check(cached > 0, "it still caches in its own pool")
        sc.stop()
        # A store node dies (SIGKILL, its DRAM segment with it) while B serves:
        # B's requests still succeed, loads that named A's copies recompute.
        wants = []
        for p in others[:2]:
            wants.append(ref_outputs[p])
            sa.complete(p)
        time.sleep(0.5)
        sa.proc.kill()
        sa.proc.wait()
        for p, w in zip(others[:2], wants):
            try:
                text, _ = sb.complete(p)
                check(text == w, "same output on B after store node A was killed")
            except Exception as e:  # noqa: BLE001
                check(False, "a request failed after store node A was killed: %s" % e)
        # The master dies: requests still succeed (recomputed), none fails or hangs.
        master.kill()
        master.wait()
        t0 = time.time()
        ok = 0
        for p in [A] + others[:2]:
            try:
                text, _ = sb.complete(p)
                ok += 1
                if p == A:
                    check(text == want, "same output with the store gone")
            except Exception as e:  # noqa: BLE001
                check(False, "a request failed with the master dead: %s" % e)
        check(ok == 3, "every request answered with the master dead (%.1f s)" % (time.time() - t0))
        sb.stop()
    finally:
        if master.poll() is None:
            master.kill()


local() if a.part == "local" else cluster()
print("serve offload: %d failure(s)" % len(failures), flush=True)
sys.exit(1 if failures else 0)
