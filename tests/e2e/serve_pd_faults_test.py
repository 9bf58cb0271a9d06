#!/usr/bin/env python3
"""Faults in a prefill/decode split, made to happen in real processes.

--part stop (two prefill instances, one decode instance, the front):
- A prefill instance SIGSTOPped under a request: the front's prober finds it
  silent, cancels the call and the request is prefilled on the other one
  (the reference output, in bounded time); while it is stopped it is not
  picked; SIGCONT: it is picked again, and the decode instance's pages of the
  abandoned reservation are quarantined, then freed.
- A prefill instance killed (SIGKILL) mid-prefill: retried on the other one.
- The decode instance SIGSTOPped mid-generation: the stream ends with an
  error event in bounded time (never hangs), the next request gets a 503 at
  once; SIGCONT: it cancels the abandoned stream and serves again.

--part race: the fencing race (docs/disaggregation.md). A decode instance
with a 300 ms lease and a tiny pool, a prefill instance whose writes are
delayed at random (CRESCENT_FAULT_KV_WRITE_DELAY_MS) and which is SIGSTOPped
at random so its leases lapse, many concurrent requests: every answered
output equals the all-in-one reference (zero corrupted outputs), every other
answer is a clean OpenAI error, and the fenced writers are counted.

Usage: serve_pd_faults_test.py --crescent BIN --work DIR --part stop|race
"""
import argparse
import json
import random
import signal
import sys
import threading
import time

from pd_harness import Cluster, complete, metric, post

ap = argparse.ArgumentParser()
ap.add_argument("--crescent", required=True)
ap.add_argument("--work", required=True)
ap.add_argument("--model", default="tiny-llama3")
ap.add_argument("--part", required=True, choices=["stop", "race"])
ap.add_argument("--requests", type=int, default=96)
a = ap.parse_args()
C = Cluster(a.crescent, a.work, a.model)
check = C.check


def wait_until(cond, seconds):
    end = time.time() + seconds
    while time.time() < end:
        if cond():
            return True
        time.sleep(0.1)
    return cond()


def in_thread(fn):
    out = {}
    t = threading.Thread(target=lambda: out.setdefault("r", fn()), daemon=True)
    t.start()
    return t, out


def stop_part():
    ref, ref_port, _ = C.serve("ref")
    dec, dec_port, dec_kv = C.serve("decode", "--role", "decode", "--kv-lease-ms", "1000", "--kv-quarantine-ms", "2000")
    p1, p1_port, p1_kv = C.serve("prefill1", "--role", "prefill")
    p2, p2_port, p2_kv = C.serve("prefill2", "--role", "prefill")
    # The first prefill instance listed is picked first when both are idle.
    front, fport = C.front("front", "--prefill", p1_kv + "," + p2_kv, "--decode", dec_kv, "--instance-timeout-ms", "3000")
    prompts = [" ".join("p%d_%d" % (k, i) for i in range(300)) for k in range(8)]
    want = [complete(ref_port, p, 12)[1] for p in prompts]

    p1.send_signal(signal.SIGSTOP)
    t0 = time.time()
    got = complete(fport, prompts[0], 12)
    dt = time.time() - t0
    check(got[0] == 200 and got[1] == want[0],
          "a prefill instance stopped under a request: prefilled on the other one (%.1f s)" % dt)
    check(dt < 15, "  in bounded time (the prober's 3 s, then the retry)")
    check("has not answered" in C.log("front"), "  the front says which instance went silent")
    t0 = time.time()
    got = complete(fport, prompts[1], 12)
    check(got[0] == 200 and got[1] == want[1] and time.time() - t0 < 10,
          "while it is stopped it is not picked (%.1f s)" % (time.time() - t0))
    p1.send_signal(signal.SIGCONT)
    check(wait_until(lambda: "answers again" in C.log("front"), 10), "SIGCONT: the front finds it answers again")
    ended = lambda: sum(metric(dec_port, 'crescent_pd_reservations_ended_total{outcome="%s"}' % o) or 0
                        for o in ("cancelled", "expired"))
    check(wait_until(lambda: ended() >= 1, 10),
          "the decode instance's reservation of the abandoned try was cancelled or expired (%d)" % ended())
    check(wait_until(lambda: metric(dec_port, "crescent_pd_quarantined_pages") == 0 and
                     (metric(dec_port, "crescent_pd_freed_after_quarantine_pages_total") or 0) > 0, 15),
          "  its pages were quarantined, then freed (%s pages)" %
          metric(dec_port, "crescent_pd_freed_after_quarantine_pages_total"))
    ok = all(complete(fport, prompts[k], 12)[1] == want[k] for k in range(2, 6))
    check(ok, "after SIGCONT every output is the reference's")
    check((metric(p1_port, "crescent_pd_prefills_total") or 0) >= 1, "  and the resumed instance serves again")

    # Killed mid-prefill: stopped with the call on it, then SIGKILLed.
    p1.send_signal(signal.SIGSTOP)
    t0 = time.time()
    t, out = in_thread(lambda: complete(fport, prompts[6], 12))
    time.sleep(0.5)
    p1.kill()
    t.join(60)
    r = out.get("r")
    check(r is not None and r[0] == 200 and r[1] == want[6],
          "a prefill instance killed mid-prefill: retried on the other one (%.1f s)" % (time.time() - t0))

    # The decode instance stopped mid-generation.
    t, out = in_thread(lambda: complete(fport, "Once upon a time", 2000, stream=True))
    check(wait_until(lambda: metric(dec_port, "crescent_requests_running") == 1, 20), "a long stream decodes")
    time.sleep(0.5)
    dec.send_signal(signal.SIGSTOP)
    t0 = time.time()
    t.join(60)
    r = out.get("r")
    check(r is not None and r[0] != 200 and "error" in r[1],
          "the decode instance stopped mid-generation: the stream ends with an error event (%.1f s): %s" %
          (time.time() - t0, r[1][:100] if r else "no answer"))
    check(time.time() - t0 < 15, "  in bounded time")
    t0 = time.time()
    status, body = post(fport, "/v1/completions", {"prompt": "hello", "max_tokens": 4})
    check(status == 503 and "error" in json.loads(body),
          "with the decode instance silent: %d at once (%.1f s)" % (status, time.time() - t0))
    dec.send_signal(signal.SIGCONT)
    check(wait_until(lambda: C.log("front").count("answers again") >= 2, 10), "SIGCONT: the decode instance is back")
    check(wait_until(lambda: metric(dec_port, "crescent_requests_running") == 0, 20),
          "  it cancelled the abandoned stream")
    got = complete(fport, prompts[7], 12)
    check(got[0] == 200 and got[1] == want[7], "  and serves the reference output again")
    C.stop(front, p2, dec, ref)


def race_part():
    ref, ref_port, _ = C.serve("ref")
    # A tiny pool: 256 pages of 16 tokens, a few prompts' worth, so pages are reused at once.
    dec, dec_port, dec_kv = C.serve("decode", "--role", "decode", "--kv-lease-ms", "300", "--kv-quarantine-ms",
                                    "1500", kv_bytes=8 << 20)
    pre, pre_port, pre_kv = C.serve("prefill", "--role", "prefill", env={"CRESCENT_FAULT_KV_WRITE_DELAY_MS": "40"})
    front, fport = C.front("front", "--prefill", pre_kv, "--decode", dec_kv, "--instance-timeout-ms", "60000")
    rng = random.Random(7)
    prompts = [" ".join("r%d_%d" % (k, i) for i in range(rng.randrange(20, 600))) for k in range(12)]
    lengths = [rng.randrange(4, 24) for _ in prompts]
    want = [complete(ref_port, p, n)[1] for p, n in zip(prompts, lengths)]

    stop = threading.Event()

    def stopper():  # pauses the prefill instance at random: its leases lapse under it
        r = random.Random(11)
        while not stop.is_set():
            time.sleep(r.uniform(0.2, 0.6))
            pre.send_signal(signal.SIGSTOP)
            time.sleep(r.uniform(0.1, 0.5))
            pre.send_signal(signal.SIGCONT)
        pre.send_signal(signal.SIGCONT)

    counts = {"ok": 0, "wrong": 0, "error": 0, "unclean": 0, "retried": 0}
    lock = threading.Lock()
    todo = list(range(a.requests))

    def client(seed):
        r = random.Random(seed)
        while True:
            with lock:
                if not todo:
                    return
                todo.pop()
            k = r.randrange(len(prompts))
            stream = r.random() < 0.5
            for attempt in range(40):  # as an OpenAI client does: a 503 (no room on the decode instance) is retried
                status, text, _ = complete(fport, prompts[k], lengths[k], stream=stream, timeout=120)
                if status != 503:
                    break
                with lock:
                    counts["retried"] += 1
                time.sleep(0.1 + 0.1 * r.random())
            with lock:
                if status == 200:
                    counts["ok" if text == want[k] else "wrong"] += 1
                else:
                    try:
                        body = json.loads(text[6:] if text.startswith("data: ") else text)
                        clean = "error" in body
                    except ValueError:
                        clean = False
                    counts["error" if clean else "unclean"] += 1

    st = threading.Thread(target=stopper, daemon=True)
    st.start()
    t0 = time.time()
    clients = [threading.Thread(target=client, args=(s,)) for s in range(8)]
    for c in clients:
        c.start()
    for c in clients:
        c.join(600)
    stop.set()
    st.join(5)
    elapsed = time.time() - t0
    fenced = metric(pre_port, "crescent_pd_leases_lost_total") or 0
    expired = metric(dec_port, 'crescent_pd_reservations_ended_total{outcome="expired"}') or 0
    refused = metric(dec_port, "crescent_pd_refused_commits_total") or 0
    sums = metric(dec_port, "crescent_pd_checksum_failures_total") or 0
    print("race: %d requests in %.1f s: %d ok, %d wrong, %d clean errors, %d unclean (%d 503s retried); "
          "fenced writers %d, reservations expired %d, commits refused %d, checksum failures %d" %
          (a.requests, elapsed, counts["ok"], counts["wrong"], counts["error"], counts["unclean"], counts["retried"],
           fenced, expired, refused, sums), flush=True)
    check(counts["wrong"] == 0, "zero corrupted outputs (%d answered, each the reference's)" % counts["ok"])
    check(counts["unclean"] == 0, "every failed request is a clean OpenAI error (%d)" % counts["error"])
    check(sum(counts.values()) - counts["retried"] == a.requests, "every request ended (none hung)")
    check(counts["ok"] >= a.requests // 4, "most requests are served despite the faults (%d)" % counts["ok"])
    check(expired + fenced + refused > 0, "the faults were provoked: leases lapsed under writers")
    check(wait_until(lambda: metric(dec_port, "crescent_pd_quarantined_pages") == 0, 10),
          "after the quarantine every page is free again")
    for k in range(3):
        # As the storm's clients (and an OpenAI client) do, a 503 (no room on
        # the decode instance yet) is asked again; any answer must be the reference's.
        for attempt in range(40):
            got = complete(fport, prompts[k], lengths[k])
            if got[0] != 503:
                break
            time.sleep(0.2)
        check(got[0] == 200 and got[1] == want[k], "after the storm: prompt %d is the reference's (%d%s)" %
              (k, got[0], "" if got[0] == 200 and got[1] == want[k] else ": " + got[1][:200]))
    C.stop(front, pre, dec, ref)


stop_part() if a.part == "stop" else race_part()
print("serve pd faults (%s): %d failure(s)" % (a.part, len(C.failures)), flush=True)
sys.exit(1 if C.failures else 0)
