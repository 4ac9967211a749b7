#!/usr/bin/env bash
# Planning benchmark (issues 2 and 36: `sweep plan` of 1,000,000 points in under 2 s and
# 500 MB). Plans scripts/bench/plan-1m.yaml (1,048,576 points, 36,864 jobs of the planner's own
# axes) and scripts/bench/plan-1m-knobs.yaml (1,048,576 points, 16,384 jobs varying engine
# arguments and an environment variable) with the release binary, RUNS times each for the table
# and for the JSON output, and prints the median wall time and the largest peak RSS.
# Usage: scripts/bench/plan.sh [RUNS]   (default 5)
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-5}
command -v /usr/bin/time >/dev/null || { echo "needs GNU time: apt-get install -y time" >&2; exit 1; }
cargo build --release --quiet -p sweep-cli
bin=target/release/sweep
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
for spec in scripts/bench/plan-1m.yaml scripts/bench/plan-1m-knobs.yaml; do
echo "spec: $spec"
"$bin" plan "$spec" --max-points 2000000 | tail -n 1
for format in table json; do
  walls=(); peak=0
  for _ in $(seq "$runs"); do
    out=$( { /usr/bin/time -f '%e %M' "$bin" plan "$spec" --max-points 2000000 --format "$format" >/dev/null; } 2>&1 | tail -n 1)
    walls+=("${out% *}"); rss=${out#* }; (( rss > peak )) && peak=$rss
  done
  median=$(printf '%s\n' "${walls[@]}" | sort -n | sed -n "$(( (runs + 1) / 2 ))p")
  printf 'format=%-5s runs=%d median_wall_s=%s all_wall_s=%s peak_rss_mb=%d\n' \
    "$format" "$runs" "$median" "$(IFS=,; echo "${walls[*]}")" $(( peak / 1024 ))
done
done
