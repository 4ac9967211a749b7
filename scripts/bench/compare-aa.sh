#!/usr/bin/env bash
# `sweep compare` false alarms (issue 37, "A/A"): N+1 sweeps of the same simulated-engine
# configuration (5 repetitions a point, 2 points), each compared with the next: N comparisons in
# which nothing changed. Prints how many flagged a regression (exit 17); the nominal rate is 5 %
# per comparison. Then one A/B: the engine 5 % slower (`speedup` 1/1.05), which must be flagged.
# Usage: scripts/bench/compare-aa.sh [N]   (default 20)
set -euo pipefail
cd "$(dirname "$0")/../.."
n=${1:-20}
cargo build --quiet --bins
bin=$PWD/target/debug/sweep
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
spec() {
  cat <<YAML
name: aa
model: {path: /models/tiny, served_name: tiny}
engine: {kind: mock}
cluster: {gpus_per_node: 4, base_port: 26000, frontend_port: 26099}
mode: agg
agg: {tp: 1, batch: 8, engine_args: {decode_base_ms: 4, speedup: $1}}
workload: {isl: 64, osl: 16, concurrency: [1, 4], requests: 8, warmup: 1, repeats: 5}
YAML
}
spec 1 >"$work/a.yaml"
spec 0.952380952 >"$work/b.yaml"
for i in $(seq 0 "$n"); do
  "$bin" submit "$work/a.yaml" -o "$work/a$i" --executor local 2>/dev/null
done
"$bin" submit "$work/b.yaml" -o "$work/b" --executor local 2>/dev/null
# The tolerances tests/aggregate_cli.rs gates with: 2.5 % of a throughput or median, 5 % of a tail.
tolerances="tps_per_gpu=-2.5%,tps_per_user=-2.5%,output_token_throughput=-2.5%,ttft_p50_ms=+2.5%,itl_p50_ms=+2.5%,ttft_p99_ms=+5%,itl_p99_ms=+5%"
# count_alarms [FLAGS...]: how many of the N A/A comparisons exit 17 with these flags.
count_alarms() {
  local alarms=0 code
  for i in $(seq 1 "$n"); do
    code=0
    "$bin" compare "$work/a$((i - 1))" "$work/a$i" "$@" >/dev/null 2>&1 || code=$?
    case $code in
      0) ;;
      17) alarms=$((alarms + 1)) ;;
      *) echo "compare failed with exit $code" >&2; exit 1 ;;
    esac
  done
  echo "$alarms"
}
alarms=$(count_alarms)
tolerated=$(count_alarms --threshold "$tolerances")
code=0
"$bin" compare "$work/a0" "$work/b" >"$work/ab.txt" 2>&1 || code=$?
tcode=0
"$bin" compare "$work/a0" "$work/b" --threshold "$tolerances" >/dev/null 2>&1 || tcode=$?
echo "machine: $(nproc) cores; A/A comparisons: $n, false alarms: $alarms ($((100 * alarms / n)) %), with the test's tolerances: $tolerated; A/B (5 % slower) exit: $code, with tolerances: $tcode (17 = regressed)"
grep -o 'itl_p50_ms [^;]*' "$work/ab.txt" || true
