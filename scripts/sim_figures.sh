#!/usr/bin/env bash
# Regenerates every figure in docs/simulator.md with `crescent simulate`.
# Usage: scripts/sim_figures.sh [CRESCENT_BINARY]   (default build/src/cli/crescent)
# Needs Mooncake's released traces in the folder CRESCENT_TRACES_DIR names
# (https://github.com/kvcache-ai/Mooncake, FAST25-release/traces). Takes ~1 minute.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-build/src/cli/crescent}
TRACES=${CRESCENT_TRACES_DIR:-}
if [ -z "$TRACES" ] || [ ! -f "$TRACES/conversation_trace.jsonl" ]; then
  echo "sim_figures: set CRESCENT_TRACES_DIR to a folder with Mooncake's conversation_trace.jsonl and synthetic_trace.jsonl" >&2
  exit 1
fi
CONV=$TRACES/conversation_trace.jsonl
PY=/usr/bin/python3
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

field() {  # field NAME... : prints the named fields of the JSON object on stdin
  $PY -c 'import json,sys; d=json.load(sys.stdin); print(" ".join(
      (f"{d[k]:.3f}" if isinstance(d[k], float) else str(d[k])) for k in sys.argv[1:]))' "$@"
}

echo "== Figure 5: conversation trace, 16 prefill + 16 decode, average TTFT =="
echo "policy ttft_avg_s ttft_p50_s ttft_p90_s ttft_p99_s cache_hit_rate prefill_compute_s transfers"
for p in random least-loaded local-cache global-cache; do
  echo "$p $("$BIN" simulate --trace "$CONV" --prefill 16 --decode 16 --policy $p --json |
    field ttft_avg_s ttft_p50_s ttft_p90_s ttft_p99_s cache_hit_rate prefill_compute_s transfers)"
done

echo "== Figure 5 sensitivity: average TTFT against the prefill MFU =="
for m in 0.20 0.25 0.30 0.50; do
  echo "{\"prefill_mfu\": $m}" > "$TMP/mfu.json"
  line="mfu=$m"
  for p in random least-loaded local-cache global-cache; do
    line="$line $p=$("$BIN" simulate --trace "$CONV" --policy $p --profile "$TMP/mfu.json" --json | field ttft_avg_s)"
  done
  echo "$line"
done

echo "== Figure 9: LRU hit rate against capacity (request order only) =="
for t in conversation synthetic; do
  echo "-- $t"
  "$BIN" simulate --trace "$TRACES/${t}_trace.jsonl" --hit-rate-curve
done

echo "== Figure 1 style: effective request ratio against the TBT SLO (TTFT SLO 30 s) =="
echo "== Mooncake 8 prefill + 8 decode (global-cache) vs 16 coupled instances =="
for s in 1 1.5; do
  echo "-- speedup $s"
  echo "tbt_slo_s global-cache coupled coupled-prefix coupled-chunked"
  for tbt in 0.1 0.2 0.3 0.4 0.5 0.6 0.7 0.8 0.9 1.0; do
    line="$tbt"
    for p in global-cache coupled coupled-prefix coupled-chunked; do
      line="$line $("$BIN" simulate --trace "$CONV" --prefill 8 --decode 8 --policy $p --speedup $s \
        --ttft-slo 30 --tbt-slo $tbt --json | field effective_request_ratio)"
    done
    echo "$line"
  done
done

echo "== Hot prefix: 400 requests sharing one 16K-token system prompt, 4 prefill instances =="
$PY - "$TMP/hot.jsonl" <<'PYEOF'
import json, sys
with open(sys.argv[1], "w") as f:
    for i in range(400):
        ts = 0 if i == 0 else 10000 + 120 * i
        keys = list(range(32)) + [1000 + 2 * i, 1001 + 2 * i]
        f.write(json.dumps({"timestamp": ts, "input_length": 17 * 1024, "output_length": 20, "hash_ids": keys}) + "\n")
PYEOF
for p in random least-loaded local-cache global-cache; do
  echo "$p $("$BIN" simulate --trace "$TMP/hot.jsonl" --prefill 4 --decode 2 --policy $p --json |
    field requests_per_instance ttft_avg_s transfers)"
done

echo "== Benchmark: whole conversation trace, global-cache =="
/usr/bin/time -f "wall %e s, max RSS %M KB" "$BIN" simulate --trace "$CONV" --policy global-cache
