#!/usr/bin/env python3
"""End-to-end checks of `crescent make-trace`, `crescent trace-stats` and
`crescent simulate` on traces crescent generates (a clone carries no third-party
data): the JSON report, Figure 9's curve, simulate without --trace, and that bad
input (missing file, bad flag, malformed trace line, unknown profile field) is
one readable line and a non-zero exit, never a crash."""
import argparse
import json
import os
import subprocess
import sys
import tempfile

p = argparse.ArgumentParser()
p.add_argument("--crescent", required=True)
p.add_argument("--source", required=True)
args = p.parse_args()
failures = []
work = tempfile.TemporaryDirectory()
trace = os.path.join(work.name, "conversation.jsonl")


def crescent(*argv):
    return subprocess.run([args.crescent, *argv], capture_output=True, text=True, timeout=120)


def run(*extra):
    return crescent("simulate", *extra)


def expect(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


# make-trace: deterministic by seed, the format parses, trace-stats reads it.
r = crescent("make-trace", "--out", trace, "--requests", "2000", "--seed", "5")
expect(r.returncode == 0, f"make-trace: exit {r.returncode}: {r.stderr}")
again = os.path.join(work.name, "again.jsonl")
crescent("make-trace", "--out", again, "--requests", "2000", "--seed", "5")
expect(open(trace).read() == open(again).read(), "make-trace: same seed, different files")
crescent("make-trace", "--out", again, "--requests", "2000", "--seed", "6")
expect(open(trace).read() != open(again).read(), "make-trace: another seed, same file")
lines = [json.loads(l) for l in open(trace)]
expect(len(lines) == 2000, f"make-trace: {len(lines)} lines")
expect(all(set(l) == {"timestamp", "input_length", "output_length", "hash_ids"} for l in lines), "make-trace: fields")
expect(all(len(l["hash_ids"]) == (l["input_length"] + 511) // 512 for l in lines), "make-trace: blocks")
syn = os.path.join(work.name, "synthetic.jsonl")
r = crescent("make-trace", "--out", syn, "--requests", "500", "--like", "synthetic")
expect(r.returncode == 0, f"make-trace synthetic: exit {r.returncode}: {r.stderr}")
r = crescent("trace-stats", trace, syn, "--json")
expect(r.returncode == 0, f"trace-stats: exit {r.returncode}: {r.stderr}")
if r.returncode == 0:
    stats = [json.loads(l) for l in r.stdout.splitlines()]
    expect([s["requests"] for s in stats] == [2000, 500], f"trace-stats: {r.stdout}")
    expect(0.2 < stats[0]["max_hit_rate"] < 0.6, f"trace-stats: hit rate {stats[0]['max_hit_rate']}")
for argv, want in [(["make-trace", "--out", trace, "--like", "chat"], "--like"),
                   (["make-trace", "--out", trace, "--requests", "0"], "--requests"),
                   (["make-trace", "--out", "/nonexistent/dir/t.jsonl"], "/nonexistent/dir"),
                   (["trace-stats", os.path.join(work.name, "missing.jsonl")], "missing.jsonl")]:
    r = crescent(*argv)
    first = r.stderr.strip().splitlines()[0] if r.stderr.strip() else ""
    expect(r.returncode > 0 and want in first, f"{argv}: exit {r.returncode}, first stderr line {first!r}")

# Without --trace, simulate replays a generated conversation-sized trace and says so.
r = run("--policy", "least-loaded", "--json")
expect(r.returncode == 0, f"simulate without --trace: exit {r.returncode}: {r.stderr}")
expect("generated conversation-like trace" in r.stderr, f"simulate without --trace says nothing: {r.stderr!r}")
if r.returncode == 0:
    expect(json.loads(r.stdout)["requests"] == 12031, "simulate without --trace: not 12031 requests")

# The JSON report carries every field the issue names.
for policy in ["random", "least-loaded", "local-cache", "global-cache", "coupled", "coupled-prefix", "coupled-chunked"]:
    r = run("--trace", trace, "--limit", "400", "--prefill", "4", "--decode", "4", "--policy", policy,
            "--ttft-slo", "20", "--tbt-slo", "0.5", "--json")
    expect(r.returncode == 0, f"{policy}: exit {r.returncode}: {r.stderr}")
    if r.returncode == 0:
        d = json.loads(r.stdout)
        for k in ["ttft_avg_s", "ttft_p50_s", "ttft_p90_s", "ttft_p99_s", "tbt_avg_s", "cache_hit_rate",
                  "effective_request_ratio", "rejected", "prefill_compute_s"]:
            expect(k in d, f"{policy}: JSON lacks {k}")
        expect(d.get("requests") == 400, f"{policy}: requests {d.get('requests')}")
        expect(0 <= d.get("effective_request_ratio", -1) <= 1, f"{policy}: ratio out of range")
        expect(d.get("ttft_p50_s", 1) <= d.get("ttft_p99_s", 0), f"{policy}: p50 > p99")

# Same seed, same output.
a = run("--trace", trace, "--limit", "300", "--policy", "random", "--seed", "3", "--json")
b = run("--trace", trace, "--limit", "300", "--policy", "random", "--seed", "3", "--json")
strip = lambda s: {k: v for k, v in json.loads(s).items() if k != "wall_s"}
expect(a.returncode == 0 and strip(a.stdout) == strip(b.stdout), "same seed gave different output")

# Figure 9: non-decreasing in capacity, bounded by the maximum.
r = run("--trace", trace, "--limit", "2000", "--hit-rate-curve", "--json")
expect(r.returncode == 0, f"hit-rate curve: exit {r.returncode}")
if r.returncode == 0:
    d = json.loads(r.stdout)
    rates = [row["hit_rate"] for row in d["curve"]]
    expect(rates == sorted(rates), f"hit rate not monotone: {rates}")
    expect(rates[-1] <= d["max_hit_rate"] + 1e-12, "hit rate above its maximum")

# Bad input: one readable line, exit 1 or CLI11's usage code, never a signal.
with tempfile.TemporaryDirectory() as tmp:
    bad = os.path.join(tmp, "bad.jsonl")
    with open(bad, "w") as f:
        f.write('{"timestamp": 0, "input_length": 5, "output_length": 1, "hash_ids": [0]}\n')
        f.write('{"timestamp": 1, "input_length": 5, "output_length": 1, "hash_ids": [0]\n')
    prof = os.path.join(tmp, "prof.json")
    with open(prof, "w") as f:
        f.write('{"prefil_mfu": 0.3}')
    cases = [
        (["--trace", os.path.join(tmp, "missing.jsonl")], "missing.jsonl"),
        (["--trace", bad], "bad.jsonl:2:"),
        (["--trace", trace, "--prefill", "x"], "--prefill"),
        (["--trace", trace, "--policy", "round-robin"], "--policy"),
        (["--trace", trace, "--speedup", "0"], "--speedup"),
        (["--trace", trace, "--profile", prof], "prefil_mfu"),
    ]
    for extra, want in cases:
        r = run(*extra)
        expect(r.returncode > 0, f"{extra}: exit {r.returncode} (want a non-zero exit, not a signal)")
        first = r.stderr.strip().splitlines()[0] if r.stderr.strip() else ""
        expect(want in first, f"{extra}: first stderr line {first!r} lacks {want!r}")

if failures:
    print(f"{len(failures)} failure(s)")
    sys.exit(1)
print("ok")
