#!/usr/bin/env bash
# Simulated-engine benchmark (issue 4), measured with wrk and with this project's client
# (`sweep-runner profile`) in the same run. The engine runs on core 0 (`--threads 1`, zero
# simulated delay), the load tool on core 1.
#   1. non-streaming, 1 output token, 64 connections: requests/s        (target ≥ 5,000)
#   2. streaming, 256 output tokens, 256 connections: streamed tokens/s (target ≥ 100,000)
#   3. 1,000,000 non-streaming requests: the engine's RSS sampled every 2 s (target: flat)
# Usage: scripts/bench/mock-engine.sh [SECONDS_PER_PHASE]   (default 20)
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${1:-20}
command -v wrk >/dev/null || { echo "needs wrk: apt-get install -y wrk" >&2; exit 1; }
cargo build --release --quiet -p sweep-mock -p sweep-runner
work=$(mktemp -d)
trap 'kill "$engine" 2>/dev/null || true; rm -rf "$work"' EXIT
taskset -c 0 target/release/sweep-mock-engine --port 0 --port-file "$work/port" --model tiny \
  --no-delay --threads 1 --max-batch 256 2>"$work/engine.log" &
engine=$!
for _ in $(seq 100); do [ -s "$work/port" ] && break; sleep 0.05; done
url="http://127.0.0.1:$(cat "$work/port")/v1/completions"
lua() {  # $1: max_tokens, $2: stream
  printf 'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\nwrk.body = %s\n' \
    "'{\"model\":\"tiny\",\"prompt\":\"a b c d e f g h\",\"max_tokens\":$1,\"min_tokens\":$1,\"ignore_eos\":true,\"stream\":$2}'"
}
rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$engine/status"; }
requests() { curl -s "${url%/v1/completions}/metrics" | awk '/^sweep_mock_requests_total/ {print $2}'; }
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); wrk $(wrk -v 2>&1 | head -1 | awk '{print $2}')"

lua 1 false > "$work/one.lua"
rate=$(taskset -c 1 wrk -t1 -c64 -d"${seconds}s" -s "$work/one.lua" "$url" | awk '/Requests\/sec/ {print $2}')
echo "non-streaming, 1 token, 64 connections: ${rate} requests/s"

lua 256 true > "$work/stream.lua"
rate=$(taskset -c 1 wrk -t1 -c256 -d"${seconds}s" -s "$work/stream.lua" "$url" | awk '/Requests\/sec/ {print $2}')
echo "streaming, 256 tokens, 256 connections: ${rate} requests/s = $(awk -v r="$rate" 'BEGIN {printf "%.0f", r * 256}') streamed tokens/s"

profile() {  # our client, on core 1
  taskset -c 1 target/release/sweep-runner profile --format json --url "${url%/v1/completions}" --endpoint completions \
    --model tiny --isl 8 "$@" | python3 -c '
import json, sys
r = json.load(sys.stdin)
cpu = r["client_cpu_s"]["user"] + r["client_cpu_s"]["system"]
print("%.0f requests/s, %.0f tokens/s, errors %s, client CPU %.2f s" % (
    r["request_throughput"], r["output_token_throughput"], r["errors"], cpu))'
}
echo "sweep-runner profile, non-streaming, 1 token, 64 connections: $(profile --stream false --osl 1 --concurrency 64 --requests 300000 --warmup 1000)"
echo "sweep-runner profile, streaming, 256 tokens, 256 connections: $(profile --stream true --osl 256 --concurrency 256 --requests 8192 --warmup 256)"

start=$(requests)
echo "memory over 1,000,000 requests (RSS in MB, every 2 s; ${start} requests served before):"
taskset -c 1 wrk -t1 -c64 -d600s -s "$work/one.lua" "$url" >/dev/null &
load=$!
samples=()
while :; do
  sleep 2
  served=$(( $(requests) - start ))
  samples+=("$(( $(rss_kb) / 1024 ))")
  printf '  %8d requests  %s MB\n' "$served" "${samples[-1]}"
  (( served >= 1000000 )) && break
done
kill "$load" 2>/dev/null || true
printf 'RSS min %s MB, max %s MB over %d samples\n' \
  "$(printf '%s\n' "${samples[@]}" | sort -n | head -1)" "$(printf '%s\n' "${samples[@]}" | sort -n | tail -1)" "${#samples[@]}"
