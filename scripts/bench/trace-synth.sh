#!/usr/bin/env bash
# Trace synthesis benchmark (issue 17: 1,000,000 requests in under 2 s).
# `sweep-runner trace sin` with sin_synth's ISL/OSL pairs and mix, at a rate swinging between
# 9,000 and 11,000 requests/s for 100 s (about 1,000,000 requests), RUNS times with the release
# binary; prints the requests written, the median wall time and the file's size.
# Usage: scripts/bench/trace-synth.sh [RUNS]   (default 5)
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-5}
command -v /usr/bin/time >/dev/null || { echo "needs GNU time: apt-get install -y time" >&2; exit 1; }
cargo build --release --quiet -p sweep-runner
bin=target/release/sweep-runner
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
walls=()
for i in $(seq "$runs"); do
  out=$( { /usr/bin/time -f '%e %M' "$bin" trace sin --time-duration 100 --request-rate-min 9000 \
    --request-rate-max 11000 --request-rate-period 20 --seed "$i" -o "$work/trace-$i.jsonl"; } 2>&1)
  walls+=("$(echo "$out" | tail -n 1 | cut -d' ' -f1)")
  echo "$out" | head -n 1
  size=$(stat -c %s "$work/trace-$i.jsonl")
  rm -f "$work/trace-$i.jsonl"
done
median=$(printf '%s\n' "${walls[@]}" | sort -n | sed -n "$(( (runs + 1) / 2 ))p")
printf 'runs=%d median_wall_s=%s all_wall_s=%s file_mb=%d\n' "$runs" "$median" "$(IFS=,; echo "${walls[*]}")" $(( size / 1048576 ))
