#!/usr/bin/env python3
"""A prefill/decode split in real processes: `crescent serve --role decode`,
`crescent serve --role prefill` and `crescent conductor` in front of them.

- Equivalence: greedy outputs through the front equal those of one all-in-one
  `crescent serve` (text and token counts), for prompts of 1 to ~2,000
  tokens, streaming and not, completions and chat, and a repeated prompt
  (the decode instance then holds its prefix).
- A front of another model refuses the instances (it does not start).
- The decode instance killed (SIGKILL) mid-generation: the stream ends with
  an error event, never a silent truncation; with it gone, a request gets a
  clean 5xx OpenAI error in bounded time and the front keeps serving.
- --part etcd: instances register in etcd (Debian's, started here) and the
  front finds them there; a killed decode instance leaves when its lease
  expires, a new one joins, and requests are served again.

Usage: serve_pd_test.py --crescent BIN --work DIR [--model tiny-llama3]
"""
import argparse
import atexit
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request

from e2e_harness import start_etcd
from pd_harness import Cluster, complete, post

ap = argparse.ArgumentParser()
ap.add_argument("--crescent", required=True)
ap.add_argument("--work", required=True)
ap.add_argument("--model", default="tiny-llama3")
ap.add_argument("--part", default="static", choices=["static", "etcd", "netns"])
a = ap.parse_args()
C = Cluster(a.crescent, a.work, a.model)
failures = C.failures
check, start, serve = C.check, C.start, C.serve
MODEL, DUMMY = C.MODEL, C.DUMMY


def etcd_part():
    e, etcd = start_etcd(a.work)
    C.live.append(e)
    ref, ref_port, _ = serve("ref")
    dec, _, _ = serve("decode", "--role", "decode", "--etcd", etcd)
    pre, _, _ = serve("prefill", "--role", "prefill", "--etcd", etcd)
    front, fport, _ = start("front", "conductor", "--model", MODEL, "--dummy-dir", DUMMY, "--host", "127.0.0.1",
                            "--port", "0", "--etcd", etcd)
    check(fport is not None, "the front starts on etcd alone")
    fport = int(fport)
    flog = os.path.join(a.work, "front.log")
    deadline = time.time() + 20
    while time.time() < deadline and open(flog).read().count("joined") < 2:
        time.sleep(0.2)
    check(open(flog).read().count("joined") >= 2, "the front finds both instances in etcd")
    p = " ".join("w%d" % i for i in range(100))
    want = complete(ref_port, p, 8)
    check(complete(fport, p, 8)[1] == want[1], "served through instances found in etcd")
    dec.kill()
    t0 = time.time()
    while time.time() - t0 < 20 and "left the registry" not in open(flog).read():
        time.sleep(0.2)
    check("left the registry" in open(flog).read(),
          "a killed decode instance leaves when its lease expires (%.1f s)" % (time.time() - t0))
    status, _ = post(fport, "/v1/completions", {"prompt": p, "max_tokens": 8})
    check(status == 503, "with no decode instance: 503 (%d)" % status)
    dec2, _, _ = serve("decode2", "--role", "decode", "--etcd", etcd)
    deadline = time.time() + 20
    while time.time() < deadline and open(flog).read().count("joined") < 3:
        time.sleep(0.2)
    got = complete(fport, p, 8)
    check(got[0] == 200 and got[1] == want[1], "a new decode instance joins and serves")
    dec2.send_signal(signal.SIGTERM)
    dec2.wait(30)
    t0 = time.time()
    while time.time() - t0 < 10 and open(flog).read().count("left the registry") < 2:
        time.sleep(0.1)
    check(open(flog).read().count("left the registry") >= 2,
          "a stopped instance leaves at once (%.1f s)" % (time.time() - t0))
    C.stop(front, pre, ref, e)
    print("serve pd etcd: %d failure(s)" % len(failures), flush=True)
    sys.exit(1 if failures else 0)


def sh(*cmd):
    return subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0


def netns_part():
    """Prefill (and the front) in one network namespace, decode in another,
    joined by a veth pair this test makes (10.214.x.0/24, private to it):
    KV over UCX TCP on the veth, control over gRPC on it."""
    check(os.geteuid() == 0, "network namespaces need root: run the tests as root")
    tag = str(os.getpid() % 100000)
    ns_a, ns_b, va, vb = "crp%sa" % tag, "crp%sb" % tag, "vpa" + tag, "vpb" + tag
    subnet = 1 + os.getpid() % 250
    ip_a, ip_b = "10.214.%d.1" % subnet, "10.214.%d.2" % subnet
    made = sh("ip", "netns", "add", ns_a)
    made = made and sh("ip", "netns", "add", ns_b) and sh("ip", "link", "add", va, "type", "veth", "peer", "name", vb)
    made = made and sh("ip", "link", "set", va, "netns", ns_a) and sh("ip", "link", "set", vb, "netns", ns_b)
    for ns, dev, ip in ((ns_a, va, ip_a), (ns_b, vb, ip_b)):
        made = made and sh("ip", "-n", ns, "addr", "add", ip + "/24", "dev", dev)
        made = made and sh("ip", "-n", ns, "link", "set", dev, "up") and sh("ip", "-n", ns, "link", "set", "lo", "up")
    atexit.register(lambda: (sh("ip", "netns", "del", ns_a), sh("ip", "netns", "del", ns_b)))
    check(made, "two network namespaces and a veth pair (ip netns add, ip link add; in a chroot / must be a mount)")
    if not made:
        print("serve pd netns: %d failure(s)" % len(failures), flush=True)
        sys.exit(1)
    ref, ref_port, _ = serve("ref")
    in_a, in_b = ("ip", "netns", "exec", ns_a), ("ip", "netns", "exec", ns_b)
    dec, _, dec_kv = serve("decode", "--role", "decode", "--instance-listen", ip_b + ":0", "--kv-transports", "tcp",
                           "--kv-net-devices", vb, prefix=in_b)
    pre, _, pre_kv = serve("prefill", "--role", "prefill", "--instance-listen", ip_a + ":0", "--kv-transports", "tcp",
                           "--kv-net-devices", va, prefix=in_a)
    check(dec_kv.startswith(ip_b) and pre_kv.startswith(ip_a), "the instances listen on their veth addresses")
    front, fport = C.front("front", "--prefill", pre_kv, "--decode", dec_kv, prefix=in_a)

    def through_front(prompt, n, stream):  # the front is reachable inside namespace A only
        code = ("import json, sys; from pd_harness import complete; "
                "print(json.dumps(complete(%d, sys.argv[1], %d, %s)))" % (fport, n, stream))
        r = subprocess.run([*in_a, sys.executable, "-c", code, prompt], capture_output=True, text=True, timeout=180,
                           env=dict(os.environ, PYTHONPATH=os.path.dirname(os.path.abspath(__file__))))
        return json.loads(r.stdout) if r.returncode == 0 else [None, r.stderr[-300:], None]

    for i, p in enumerate(["Hi", " ".join("net%d" % k for k in range(600))]):
        for stream in (False, True):
            want = complete(ref_port, p, 12, stream)
            got = through_front(p, 12, stream)
            check(got[0] == 200 and got[1] == want[1],
                  "across two namespaces over TCP: prompt %d (stream=%s) equals one engine's" % (i, stream))
    text = open(os.path.join(a.work, "prefill.log")).read()
    check("failed" not in text.lower(), "  the prefill instance logged no failed write")
    C.stop(front, pre, dec, ref)
    print("serve pd netns: %d failure(s)" % len(failures), flush=True)
    sys.exit(1 if failures else 0)


if a.part == "etcd":
    etcd_part()
if a.part == "netns":
    netns_part()

ref, ref_port, _ = serve("ref")
dec, dec_port, dec_kv = serve("decode", "--role", "decode")
pre, pre_port, pre_kv = serve("prefill", "--role", "prefill")
check(dec_kv is not None and pre_kv is not None, "the instances report their KV service addresses")
front, fport, ftext = start("front", "conductor", "--model", MODEL, "--dummy-dir", DUMMY, "--host", "127.0.0.1",
                            "--port", "0", "--prefill", pre_kv, "--decode", dec_kv)
check(fport is not None, "the conductor front starts on the two instances")
fport = int(fport)

prompts = ["Hi", " ".join("word%d" % i for i in range(30)), " ".join("tok%d" % i for i in range(700)),
           " ".join("tok%d" % i for i in range(700))]  # the last one again: the decode instance holds its prefix
for i, p in enumerate(prompts):
    for stream in (False, True):
        want = complete(ref_port, p, 12, stream)
        got = complete(fport, p, 12, stream)
        check(got[0] == 200 and got[1] == want[1],
              "prompt %d (%d chars, stream=%s): the split gives one engine's output" % (i, len(p), stream))
        if not stream:
            check(got[2] == want[2] == 12, "  12 completion tokens")
want = complete(ref_port, "Tell me about the sea", 10, chat=True)
got = complete(fport, "Tell me about the sea", 10, chat=True)
check(got[0] == 200 and got[1] == want[1], "chat through the split equals one engine's")
status, body = post(fport, "/v1/completions", {"prompt": "x", "max_tokens": 10 ** 7})
check(status == 400 and "error" in json.loads(body), "an oversize request is a 400 OpenAI error at the front")

# A front of another model refuses the instances: it exits with a readable line.
OTHER = "tiny-qwen3" if a.model != "tiny-qwen3" else "tiny-llama3"
other, oport, otext = start("front-other", "conductor", "--model", "dummy:" + OTHER, "--dummy-dir",
                            os.path.join(a.work, OTHER), "--host", "127.0.0.1", "--port", "0",
                            "--prefill", pre_kv, "--decode", dec_kv, wait=r"(cannot start: .*)")
try:
    other.wait(60)
except subprocess.TimeoutExpired:
    other.kill()
check(other.returncode not in (0, None) and "another model" in open(os.path.join(a.work, "front-other.log")).read(),
      "a front of another model refuses the instances and exits non-zero")

import threading
result = {}


def running(port):
    text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=10).read().decode()
    m = re.search(r"^crescent_requests_running (\S+)$", text, re.M)
    return float(m.group(1)) if m else None


# A front killed mid-stream: the instances cancel the request whose client is gone.
front2, f2port, _ = start("front2", "conductor", "--model", MODEL, "--dummy-dir", DUMMY, "--host", "127.0.0.1",
                          "--port", "0", "--prefill", pre_kv, "--decode", dec_kv)
def doomed_stream():
    try:
        complete(int(f2port), "Once upon a time", 4000, stream=True)
    except Exception:  # noqa: BLE001  (its front is killed under it)
        pass


threading.Thread(target=doomed_stream, daemon=True).start()
t0 = time.time()
while time.time() - t0 < 20 and not running(dec_port):
    time.sleep(0.1)
check(running(dec_port) == 1, "a long request decodes on the decode instance")
front2.kill()
t0 = time.time()
while time.time() - t0 < 20 and running(dec_port):
    time.sleep(0.1)
check(running(dec_port) == 0, "the front killed: the decode instance cancels its request (%.1f s)" % (time.time() - t0))

# The decode instance dies mid-generation: the stream ends with an error event.


def long_stream():
    result["r"] = complete(fport, "Once upon a time", 4000, stream=True)


t = threading.Thread(target=long_stream)
t.start()
time.sleep(2.0)
dec.kill()
t.join(120)
r = result.get("r")
check(r is not None and r[0] != 200, "a stream whose decode instance died ends with an error event (%s)" %
      (r[1][:120] if r else "no answer"))
t0 = time.time()
status, body = post(fport, "/v1/completions", {"prompt": "hello", "max_tokens": 4})
check(status == 503 and "error" in json.loads(body),
      "with the decode instance gone a request gets a %d OpenAI error in %.1f s" % (status, time.time() - t0))
check(time.time() - t0 < 30, "  in bounded time")
status, _ = post(fport, "/v1/completions", {"prompt": "hello", "max_tokens": 1})
check(status == 200, "a one-token request is still answered by the prefill instance alone")

C.stop(front, pre, ref)
check(front.returncode == 0, "the front exits 0 on SIGTERM")
print("serve pd: %d failure(s)" % len(failures), flush=True)
sys.exit(1 if failures else 0)
