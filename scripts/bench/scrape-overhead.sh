#!/usr/bin/env bash
# What scraping the servers' /metrics costs the client (issue 18): `sweep-runner profile` at
# concurrency 1,024 against the simulated engine, with and without `--server-metrics` on 64
# endpoints at 1 s intervals, alternating in each round. Each endpoint serves a real vLLM 0.32
# exposition (425 samples, 50 KB, tests/fixtures/prometheus/), so each scrape costs what a vLLM
# server's would. The engine and the 64 endpoints run on core 0, the client on core 1; the
# client's CPU (user + sys, GNU time) is compared per 1,000 streamed tokens. Target: ≤ 1 % more.
# Between a point's edges the scraper asks for the mapped gauges only (`name[]`), as it does of
# real servers.
# Usage: [ROUNDS=3] scripts/bench/scrape-overhead.sh [REQUESTS_PER_STREAM]
set -euo pipefail
cd "$(dirname "$0")/../.."
per_stream=${1:-4}
rounds=${ROUNDS:-3}
cargo build --release --quiet -p sweep-mock -p sweep-runner
ulimit -n "$(ulimit -Hn)"
# This script's own loops (the /proc sampling below) stay off the client's core.
taskset -cp 0 $$ >/dev/null
work=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; rm -rf "$work"' EXIT

# 64 endpoints in one Python process, each answering the vLLM exposition; with `name[]` query
# parameters, only those families, as prometheus_client's `/metrics` (which vLLM serves) does.
taskset -c 0 python3 - tests/fixtures/prometheus/vllm-0.32.0-cpu.metrics "$work/ports" <<'PY' &
import http.server, socketserver, sys, threading, urllib.parse
whole = open(sys.argv[1], "rb").read()
def restricted(names):
    keep = []
    for line in whole.decode().splitlines():
        parts = line.split()
        if line.startswith("# "):
            name = parts[2] if len(parts) > 2 else ""
        else:
            name = line.split("{")[0].split(" ")[0]
        if name in names:
            keep.append(line)
    return ("\n".join(keep) + "\n").encode()
class Handler(http.server.BaseHTTPRequestHandler):
    # Keep-alive, as vLLM's uvicorn answers: a new connection per scrape would be measured too.
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        names = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query).get("name[]")
        body = restricted(set(names)) if names else whole
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
servers = [socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler) for _ in range(64)]
for s in servers:
    threading.Thread(target=s.serve_forever, daemon=True).start()
with open(sys.argv[2] + ".tmp", "w") as f:
    f.write(" ".join(str(s.server_address[1]) for s in servers))
import os; os.rename(sys.argv[2] + ".tmp", sys.argv[2])
threading.Event().wait()
PY
pids+=($!)
for _ in $(seq 100); do [ -s "$work/ports" ] && break; sleep 0.1; done
scrape=()
for port in $(cat "$work/ports"); do scrape+=(--server-metrics "http://127.0.0.1:$port/metrics"); done

# A decode step of 20 ms for any batch: 1,024 streams at 50 tokens/s each.
taskset -c 0 target/release/sweep-mock-engine --port 0 --port-file "$work/port" --model tiny --threads 1 \
  --max-batch 1024 --prefill-base-ms 5 --prefill-per-token-us 0 --decode-base-ms 20 --decode-per-seq-us 0 \
  --decode-per-kv-token-ns 0 2>"$work/engine.log" &
pids+=($!)
for _ in $(seq 100); do [ -s "$work/port" ] && break; sleep 0.05; done
url="http://127.0.0.1:$(cat "$work/port")"
echo "machine: $(nproc --all) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"

results=()
for round in $(seq "$rounds"); do
  for mode in off on; do
    extra=()
    [ "$mode" = on ] && extra=("${scrape[@]}" --server-metrics-interval-ms 1000)
    sync; sleep 1
    taskset -c 1 /usr/bin/time -f "%e %U %S" -o "$work/time" target/release/sweep-runner profile --format json \
      --url "$url" --model tiny --progress off --concurrency 1024 --requests $((1024 * per_stream)) \
      --warmup 0 --isl 32 --osl 256 --artifact-dir "$work/$mode-$round" "${extra[@]}" >/dev/null &
    timed=$!
    # The scraper runs on a thread of its own, named `scrape`: its CPU (user + sys ticks, read
    # from /proc until the client exits) is what scraping costs, free of the runs' spread.
    ticks=0; runner=""
    while kill -0 "$timed" 2>/dev/null; do
      [ -z "$runner" ] && runner=$(pgrep -n -f "^target/release/sweep-runner profile" || true)
      for task in /proc/${runner:-none}/task/*; do
        if [ "$(cat "$task/comm" 2>/dev/null)" = scrape ]; then
          t=$(awk '{print $14 + $15}' "$task/stat" 2>/dev/null || echo "$ticks"); ticks=${t:-$ticks}
        fi
      done
      sleep 0.2
    done
    wait "$timed"
    tokens=$(python3 -c "import json; print(json.load(open('$work/$mode-$round/profile_export_aiperf.json'))['total_output_tokens']['avg'])")
    lines=0; [ "$mode" = on ] && lines=$(wc -l < "$work/$mode-$round/server_metrics.jsonl")
    results+=("$(awk '{print $2 + $3, $1}' "$work/time") $tokens $lines $(awk -v t="$ticks" -v hz="$(getconf CLK_TCK)" 'BEGIN {print t / hz}')")
  done
done
python3 - "${results[@]}" <<'PY'
import statistics, sys
runs = [tuple(map(float, r.split())) for r in sys.argv[1:]]
ratios, shares = [], []
print("client CPU per 1,000 streamed tokens (concurrency 1,024, OSL 256), without and with scraping 64 endpoints every 1 s")
for i in range(0, len(runs), 2):
    (c0, w0, t0, _, _), (c1, w1, t1, lines, thread) = runs[i], runs[i + 1]
    off, on = c0 / t0 * 1000, c1 / t1 * 1000
    ratios.append(on / off)
    shares.append(thread / c1)
    print(f"  round {i // 2 + 1}: off {off * 1000:.2f} ms ({c0:.2f} s CPU, {w0:.1f} s wall); "
          f"on {on * 1000:.2f} ms ({c1:.2f} s CPU, {w1:.1f} s wall, {lines:.0f} scrapes written); on/off {on / off:.4f}; "
          f"scrape thread {thread:.2f} s = {thread / c1 * 100:.2f} % of the client's CPU")
print(f"  median on/off {statistics.median(ratios):.4f}; median scrape-thread share {statistics.median(shares) * 100:.2f} % (target <= 1 %)")
PY
