#!/usr/bin/env bash
# What scraping the servers' /metrics costs the client (issue 18): `sweep-runner profile` at
# concurrency 1,024 against the simulated engine, with and without `--server-metrics` on 64
# endpoints at 1 s intervals, alternating in each round. Each endpoint serves a real vLLM 0.32
# exposition (425 samples, 50 KB, tests/fixtures/prometheus/), so each scrape costs what a vLLM
# server's would. The engine and the 64 endpoints run on core 0, the client on core 1; the
# client's CPU (user + sys, GNU time) is compared per 1,000 streamed tokens. Target: ≤ 1 % more.
# Between a point's edges the scraper asks for the mapped gauges only (`name[]`), as it does of
# real servers. The scraper's own thread reports its CPU (`scraper_cpu_s` in server_metrics.json),
# which resolves what the with/without ratio (±4 % between identical runs here) cannot.
# It also reports the thread's share of the runner's CPU while the measured requests ran
# (`scraper_cpu_measured_s` / `client_cpu_measured_s`): the edges and the summary fall outside.
# Given two lengths (`4 12`: about 21 s and 62 s a run), it also splits the cost into what each
# second of scraping costs (the rounds between a point's edges; the target's steady state) and
# what a point costs once (the two whole scrapes of every server at its edges, and its summary).
# Usage: [ROUNDS=3] scripts/bench/scrape-overhead.sh [REQUESTS_PER_STREAM ...]
set -euo pipefail
cd "$(dirname "$0")/../.."
lengths=("${@:-4}")
rounds=${ROUNDS:-3}
cargo build --release --quiet -p sweep-mock -p sweep-runner
ulimit -n "$(ulimit -Hn)"
# This script's own work stays off the client's core.
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
  for per_stream in "${lengths[@]}"; do
    for mode in off on; do
      extra=()
      [ "$mode" = on ] && extra=("${scrape[@]}" --server-metrics-interval-ms 1000)
      out="$work/$mode-$round-$per_stream"
      sync; sleep 1
      taskset -c 1 /usr/bin/time -f "%e %U %S" -o "$work/time" target/release/sweep-runner profile --format json \
        --url "$url" --model tiny --progress off --concurrency 1024 --requests $((1024 * per_stream)) \
        --warmup 0 --isl 32 --osl 256 --artifact-dir "$out" "${extra[@]}" >/dev/null
      tokens=$(python3 -c "import json; print(json.load(open('$out/profile_export_aiperf.json'))['total_output_tokens']['avg'])")
      lines=0; thread="0 0 0"
      if [ "$mode" = on ]; then
        lines=$(wc -l < "$out/server_metrics.jsonl")
        # The scraper thread's CPU, from the kernel's per-thread clock as the thread ends (the
        # summary included): what scraping costs, free of the runs' spread. Then the thread's
        # and the whole runner's CPU while the measured requests ran (between the edges).
        thread=$(python3 -c "import json; s = json.load(open('$out/server_metrics.json')); print(s['scraper_cpu_s'], s['scraper_cpu_measured_s'], s['client_cpu_measured_s'])")
      fi
      results+=("$round $per_stream $(awk '{print $2 + $3, $1}' "$work/time") $tokens $lines $thread")
    done
  done
done
python3 - "${results[@]}" <<'PY'
import statistics, sys
runs = [tuple(map(float, r.split())) for r in sys.argv[1:]]
print("client CPU per 1,000 streamed tokens (concurrency 1,024, OSL 256), without and with scraping 64 endpoints every 1 s")
by_length, steady, fixed = {}, [], []
for i in range(0, len(runs), 2):
    (rnd, length, c0, w0, t0, *_), (_, _, c1, w1, t1, lines, thread, measuring, client) = runs[i], runs[i + 1]
    off, on = c0 / t0 * 1000, c1 / t1 * 1000
    by_length.setdefault(length, []).append((on / off, thread / c1, thread, w1, c1, measuring / client))
    print(f"  round {rnd:.0f}, {length:.0f} requests a stream: off {off * 1000:.2f} ms ({c0:.2f} s CPU, {w0:.1f} s wall); "
          f"on {on * 1000:.2f} ms ({c1:.2f} s CPU, {w1:.1f} s wall, {lines:.0f} scrapes written); on/off {on / off:.4f}; "
          f"scrape thread {thread:.3f} s = {thread / c1 * 100:.2f} % of the client's CPU; while measuring "
          f"{measuring:.3f} of {client:.2f} s = {measuring / client * 100:.2f} %")
for length, rows in by_length.items():
    print(f"  {length:.0f} requests a stream: median on/off {statistics.median(r[0] for r in rows):.4f}; "
          f"median scrape-thread share {statistics.median(r[1] for r in rows) * 100:.2f} % of the whole run, "
          f"{statistics.median(r[5] for r in rows) * 100:.2f} % while measuring (target <= 1 %)")
# Two lengths: what a second of scraping costs (the rounds between the edges) and what a point
# costs once (its two whole scrapes of every server, and the summary), from the difference.
lengths = sorted(by_length)
if len(lengths) > 1:
    short, long = by_length[lengths[0]], by_length[lengths[-1]]
    for (_, _, th0, w0, *_), (_, _, th1, w1, c1, _) in zip(short, long):
        per_s = (th1 - th0) / (w1 - w0)
        steady.append(per_s / (c1 / w1))
        fixed.append(th0 - per_s * w0)
    print(f"  steady state (scraping, per second): median {statistics.median(steady) * 100:.2f} % of the client's CPU "
          f"(runs: {', '.join(f'{s * 100:.2f}' for s in steady)}); once per point (edges and summary): median "
          f"{statistics.median(fixed) * 1000:.0f} ms of CPU (runs: {', '.join(f'{f * 1000:.0f}' for f in fixed)})")
PY
