#!/bin/bash
# The live Conductor's policies side by side (docs/cluster.md "Figures"):
# for each of random, least-loaded, local-cache and global-cache, starts
# `crescent cluster up --prefill 2 --decode 1` on the tiny dummy, replays the
# same slice of a trace with `crescent bench trace` (with --simulate: the
# simulator's prediction of the same run, the same policy and instance
# counts, from a profile measured here first) and prints one table.
#   scripts/bench_cluster_policies.sh TRACE [OUT] [extra bench trace args...]
# The slice: SLICE (default: the first 400 requests, prompts x0.05, outputs
# x0.1, arrivals x0.3 (3.3 times as fast), TTFT SLO 1 s and TBT SLO 0.1 s
# for goodput).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
crescent=${CRESCENT:-$here/build/src/cli/crescent}
trace=${1:?usage: $0 TRACE [OUT] [bench trace args]}
out=${2:-/tmp/crescent-policies}
shift $(( $# >= 2 ? 2 : 1 ))
mkdir -p "$out"
slice=${SLICE:---max-requests 400 --length-scale 0.05 --output-scale 0.1 --time-scale 0.3 --ttft-slo 1 --tbt-slo 0.1}
model=dummy:tiny-llama3
for policy in random least-loaded local-cache global-cache; do
  log="$out/cluster-$policy.out"
  "$crescent" cluster up --model "$model" --prefill 2 --decode 1 --policy "$policy" --port 0 \
    --work-dir "$out/cluster-$policy" > "$log" 2>&1 &
  pid=$!
  for _ in $(seq 600); do grep -q "ready: http" "$log" && break; sleep 0.2; done
  url=$(grep -o "ready: http://[0-9.:]*" "$log" | cut -d' ' -f2)
  [ -n "$url" ] || { echo "cluster up ($policy) did not start: $log"; kill $pid; exit 1; }
  if [ ! -f "$out/profile.json" ]; then  # the instances' engine, measured once (the cluster idles meanwhile)
    dir=$(sed -n 's/^crescent cluster: model \([^,]*\),.*/\1/p' "$log")
    OMP_WAIT_POLICY=PASSIVE "$crescent" bench engine --model "$dir" --profile-out "$out/profile.json" \
      > "$out/profile.log" 2>&1 || { echo "bench engine failed: $out/profile.log"; kill -INT $pid; exit 1; }
  fi
  inst=$(grep -o "prefill-0 on http://[0-9.:]*" "$log" | cut -d' ' -f3)
  pages=$(curl -s "$inst/metrics" | awk '/^crescent_kv_pages_total /{print $2}')
  # shellcheck disable=SC2086
  "$crescent" bench trace --url "$url" --trace "$trace" $slice --simulate "$out/profile.json" --sim-policy "$policy" --sim-prefill 2 --sim-decode 1 \
    --sim-kv-tokens $(( ${pages%.*} * 16 )) --out "$out/$policy" "$@" > "$out/$policy.txt" 2>&1 || true
  kill -INT $pid; wait $pid || true
done
/usr/bin/python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
print("| policy | TTFT mean / p90 (s), live | simulated | prefix hit rate, live / simulated | goodput (req/s) | served / rejected / failed |")
print("|---|---|---|---|---|---|")
for p in ["random", "least-loaded", "local-cache", "global-cache"]:
    try:
        r = json.load(open("%s/%s/report.json" % (out, p)))
    except OSError:
        print("| %s | (no report: see %s/%s.txt) |" % (p, out, p)); continue
    s, sim = r["summary"], r.get("simulator", {})
    t, st = s["ttft_s"], sim.get("simulated_ttft_s", {})
    print("| %s | %.3f / %.3f | %.3f / %.3f | %.1f%% / %.1f%% | %.2f | %s / %s / %s |" % (
        p, t["mean"], t["p90"], st.get("mean", 0), st.get("p90", 0), 100 * (s.get("prefix_hit_rate") or 0),
        100 * sim.get("simulated_hit_rate", 0), s["goodput_requests_per_s"], s["requests"]["ok"], s["requests"]["rejected"],
        s["requests"]["failed"]))
PY
