#!/usr/bin/env bash
# Planning benchmark (issue: `sweep plan` of 1,000,000 points in under 2 s and 500 MB).
# Plans scripts/bench/plan-1m.yaml (1,048,576 points, 65,536 jobs) with the release binary,
# RUNS times each for the table and for the JSON output, and prints the median wall time and
# the largest peak RSS. Usage: scripts/bench/plan.sh [RUNS]   (default 5)
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-5}
command -v /usr/bin/time >/dev/null || { echo "needs GNU time: apt-get install -y time" >&2; exit 1; }
cargo build --release --quiet -p sweep-cli
bin=target/release/sweep
spec=scripts/bench/plan-1m.yaml
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
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
