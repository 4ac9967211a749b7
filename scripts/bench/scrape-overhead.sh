#!/usr/bin/env bash
# What scraping the servers' /metrics costs the client (issue 18): `sweep-runner profile` at
# concurrency 1,024 against the simulated engine, with and without `--server-metrics` on 64
# endpoints at 1 s intervals, alternating in each round. Each endpoint serves a real vLLM 0.32
# exposition (425 samples, 50 KB, tests/fixtures/prometheus/), so each scrape costs what a vLLM
# server's would. The engine and the 64 endpoints run on core 0, the client on core 1; the
# client's CPU (user + sys, GNU time) is compared per 1,000 streamed tokens. Target: ≤ 1 % more.
# Usage: [ROUNDS=3] scripts/bench/scrape-overhead.sh [REQUESTS_PER_STREAM]
set -euo pipefail
cd "$(dirname "$0")/../.."
per_stream=${1:-4}
rounds=${ROUNDS:-3}
cargo build --release --quiet -p sweep-mock -p sweep-runner
ulimit -n "$(ulimit -Hn)"
work=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; rm -rf "$work"' EXIT

# 64 endpoints in one Python process, each answering the vLLM exposition.
taskset -c 0 python3 - tests/fixtures/prometheus/vllm-0.32.0-cpu.metrics "$work/ports" <<'PY' &
import http.server, socketserver, sys, threading
body = open(sys.argv[1], "rb").read()
class Handler(http.server.BaseHTTPRequestHandler):
    # Keep-alive, as vLLM's uvicorn answers: a new connection per scrape would be measured too.
    protocol_version = "HTTP/1.1"
    def do_GET(self):
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
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"

results=()
for round in $(seq "$rounds"); do
  for mode in off on; do
    extra=()
    [ "$mode" = on ] && extra=("${scrape[@]}" --server-metrics-interval-ms 1000)
    sync; sleep 1
    taskset -c 1 /usr/bin/time -f "%e %U %S" -o "$work/time" target/release/sweep-runner profile --format json \
      --url "$url" --model tiny --progress off --concurrency 1024 --requests $((1024 * per_stream)) \
      --warmup 0 --isl 32 --osl 256 --artifact-dir "$work/$mode-$round" "${extra[@]}" >/dev/null
    tokens=$(python3 -c "import json; print(json.load(open('$work/$mode-$round/profile_export_aiperf.json'))['total_output_tokens']['avg'])")
    lines=0; [ "$mode" = on ] && lines=$(wc -l < "$work/$mode-$round/server_metrics.jsonl")
    results+=("$(awk '{print $2 + $3, $1}' "$work/time") $tokens $lines")
  done
done
python3 - "${results[@]}" <<'PY'
import statistics, sys
runs = [tuple(map(float, r.split())) for r in sys.argv[1:]]
ratios = []
print("client CPU per 1,000 streamed tokens (concurrency 1,024, OSL 256), without and with scraping 64 endpoints every 1 s")
for i in range(0, len(runs), 2):
    (c0, w0, t0, _), (c1, w1, t1, lines) = runs[i], runs[i + 1]
    off, on = c0 / t0 * 1000, c1 / t1 * 1000
    ratios.append(on / off)
    print(f"  round {i // 2 + 1}: off {off * 1000:.2f} ms ({c0:.2f} s CPU, {w0:.1f} s wall); "
          f"on {on * 1000:.2f} ms ({c1:.2f} s CPU, {w1:.1f} s wall, {lines:.0f} scrapes written); on/off {on / off:.4f}")
print(f"  median on/off {statistics.median(ratios):.4f} (target <= 1.01)")
PY
