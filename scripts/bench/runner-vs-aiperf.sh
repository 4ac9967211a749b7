#!/usr/bin/env bash
# The load generator against aiperf 0.13.0 (PyPI), side by side in one run, against the same
# simulated engine on this machine (issue 5). The engine runs on core 0, each client on core 1.
#   A. CPU time per 1,000 streamed tokens at concurrency 1,024, OSL 256 (target: ≤ 1/10 of aiperf's)
#   B. open loop: 20,000 requests/s offered, OSL 1 — delivered rate and send lag p99 (≤ 1 %, ≤ 1 ms)
#   C. 10,000 concurrent streams: the client's peak RSS (target ≤ 300 MB)
#   D. TTFT fidelity at concurrency 1,000: each client's first-token arrival against the engine's
#      own log of when it handed the first token to the socket (target p99 ≤ 1 ms), both clients
# Usage: [ROUNDS=3] scripts/bench/runner-vs-aiperf.sh [SCALE [SECTIONS]]   (SCALE 1 = the figures
# in docs/benchmarks.md, 0.25 for a quick look; SECTIONS e.g. "A" or "BD", default ABCD; ROUNDS
# of A). Installs aiperf into /opt/aiperf-venv when missing (needs python3-venv).
set -euo pipefail
cd "$(dirname "$0")/../.."
scale=${1:-1}
sections=${2:-ABCD}
n() { python3 -c "import sys; print(max(1, int($1 * $scale)))"; }
venv=/opt/aiperf-venv
if [ ! -x "$venv/bin/aiperf" ]; then
  python3 -m venv "$venv" 2>/dev/null || { apt-get install -y -qq python3-venv >/dev/null && python3 -m venv "$venv"; }
  "$venv/bin/pip" install -q aiperf==0.13.0
fi
cargo build --release --quiet -p sweep-mock -p sweep-runner
cargo build --release --quiet -p sweep-load --example read_floor
# 10,000 streams need as many sockets in each process.
ulimit -n "$(ulimit -Hn)"
work=$(mktemp -d)
engine=""
trap '[ -n "$engine" ] && kill "$engine" 2>/dev/null; rm -rf "$work"' EXIT

# aiperf counts tokens with a tokenizer; a local word-level one (no download) matches the
# engine, which counts words.
"$venv/bin/python" - "$work/tokenizer" <<'PY' 2>/dev/null
import sys
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast
vocab = {w: i for i, w in enumerate(["<unk>"] + [f"w{i}" for i in range(32000)])}
tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>").save_pretrained(sys.argv[1])
PY

start_engine() {  # flags for the engine; sets $url
  [ -n "$engine" ] && kill "$engine" 2>/dev/null && wait "$engine" 2>/dev/null || true
  rm -f "$work/port"
  taskset -c 0 target/release/sweep-mock-engine --port 0 --port-file "$work/port" --model tiny --threads 1 \
    "$@" 2>"$work/engine.log" &
  engine=$!
  for _ in $(seq 100); do [ -s "$work/port" ] && break; sleep 0.05; done
  url="http://127.0.0.1:$(cat "$work/port")"
}
# Runs a client on core 1 under GNU time; writes "wall user sys maxrss_kb" to $work/time. GNU time
# counts the CPU of every process the client waited for (aiperf's services included).
timed() { taskset -c 1 /usr/bin/time -f "%e %U %S %M" -o "$work/time" "$@"; }
ours() { timed target/release/sweep-runner profile --format json --url "$url" --model tiny --progress off "$@"; }
# The floor: a client that only reads each token as it arrives (crates/sweep-load/examples/read_floor.rs).
floor() { timed target/release/examples/read_floor "${url#http://}" "$@" >"$work/floor.out"; }
aiperf() {
  timed "$venv/bin/aiperf" profile --model tiny --url "$url" --endpoint-type chat --endpoint /v1/chat/completions \
    --tokenizer "$work/tokenizer" --use-server-token-count --random-seed 1 --ui none "$@" >"$work/aiperf.log" 2>&1 \
    || { tail -20 "$work/aiperf.log" >&2; return 1; }
}
field() { python3 -c "import json,sys; d=json.load(open('$1')); print(eval('d' + sys.argv[1]))" "$2"; }
cpu() { awk '{printf "%.2f", $2 + $3}' "$work/time"; }
rss_mb() { awk '{printf "%.0f", $4 / 1024}' "$work/time"; }
# Each section starts on a quiet machine: earlier clients' files written out, their processes gone.
section() {
  [[ "$sections" == *"$1"* ]] || return 1
  sync
  while pgrep -f "$venv/bin/" >/dev/null; do sleep 0.5; done
  sleep 1
}
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); scale $scale"

if section A; then
# A. CPU per 1,000 streamed tokens. A decode step of 20 ms for any batch: 1,024 streams at
# 50 tokens/s each, one SSE event per token. Each client runs with N and 2N requests: the
# whole-run figure (N) includes each tool's start-up and exports; the marginal one (2N − N) is
# the steady-state cost of a streamed token, without them. This machine's noise (±20 % between
# identical runs) is larger than the margin to the target, so the two tools alternate for
# ROUNDS rounds (default 3) and the ratios are reported per round and as the median.
requests=$(n 2048)
rounds=${ROUNDS:-3}
slow=(--max-batch 1024 --prefill-base-ms 5 --prefill-per-token-us 0 --decode-base-ms 20 --decode-per-seq-us 0 --decode-per-kv-token-ns 0)
a_results=()
for round in $(seq "$rounds"); do
  for size in 1 2; do
    start_engine "${slow[@]}"
    ours --concurrency 1024 --requests $((requests * size)) --isl 32 --osl 256 --artifact-dir "$work/a-ours-$round-$size" >/dev/null
    a_results+=("$(cpu)" "$(field "$work/a-ours-$round-$size/profile_export_aiperf.json" '["total_output_tokens"]["avg"]')")
    start_engine "${slow[@]}"
    aiperf --streaming --concurrency 1024 --request-count $((requests * size)) --synthetic-input-tokens-mean 32 \
      --output-tokens-mean 256 --extra-inputs max_tokens:256 --extra-inputs min_tokens:256 --extra-inputs ignore_eos:true \
      --artifact-dir "$work/a-aiperf-$round-$size"
    a_results+=("$(cpu)" "$(field "$work/a-aiperf-$round-$size/profile_export_aiperf.json" '["total_output_tokens"]["avg"]')")
    # The next run starts with aiperf's processes gone.
    while pgrep -f "$venv/bin/" >/dev/null; do sleep 0.5; done
    start_engine "${slow[@]}"
    floor 1024 $((requests * size))
    a_results+=("$(cpu)" "$(cut -d' ' -f2 "$work/floor.out")")
  done
done
python3 - "${a_results[@]}" <<'PY'
import statistics, sys
values = list(map(float, sys.argv[1:]))
def per_token(c1, t1, c2, t2):  # ms per 1,000 tokens: whole run (N), marginal (2N − N)
    return c1 / t1 * 1e6, (c2 - c1) / (t2 - t1) * 1e6
whole, marginal, floor_whole = [], [], []
print("A. CPU per 1,000 streamed tokens (c=1024, OSL 256), ms: sweep-runner vs aiperf, and the floor (read_floor)")
for r in range(len(values) // 12):
    oc1, ot1, ac1, at1, fc1, ft1, oc2, ot2, ac2, at2, fc2, ft2 = values[r * 12:(r + 1) * 12]
    o, om = per_token(oc1, ot1, oc2, ot2)
    a, am = per_token(ac1, at1, ac2, at2)
    f, fm = per_token(fc1, ft1, fc2, ft2)
    whole.append(o / a)
    marginal.append(om / am)
    floor_whole.append(f / a)
    print(f"   round {r + 1}: whole run {o:.1f} vs {a:.1f} = {o/a:.3f} ({oc1:.2f} s, {ac1:.2f} s for {ot1:.0f} tokens); "
          f"marginal (2N − N) {om:.1f} vs {am:.1f} = {om/am:.3f}; floor {f:.1f} = {f/a:.3f} of aiperf")
print(f"   median ratio: whole run {statistics.median(whole):.3f}, marginal {statistics.median(marginal):.3f} (target <= 0.1); "
      f"floor {statistics.median(floor_whole):.3f}")
PY
fi

if section B; then
# B. Open loop, OSL 1, non-streaming: the engine answers at once. 20,000 requests/s is the
# target; 5,000 and 10,000 show where the client's one core stops keeping up.
for rate in 5000 10000 20000; do
  start_engine --no-delay --max-batch 4096
  ours --arrival constant --request-rate "$rate" --concurrency 0 --requests "$(n $((rate * 5)))" --osl 1 --isl 8 \
    --stream false --artifact-dir "$work/b-ours-$rate" >/dev/null
  python3 - "$work/b-ours-$rate/profile_export_aiperf.json" "$(cpu)" "$rate" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
rate = float(sys.argv[3])
delivered = d["request_count"]["avg"] / d["benchmark_duration"]["avg"]
lag = d["credit_to_start_latency"]
print(f"B. open loop, {rate:,.0f} req/s offered: sweep-runner delivered {delivered:,.0f} req/s ({(delivered/rate-1)*100:+.2f} %), "
      f"{d['error_request_count']['avg']:.0f} errors, send lag p50 {lag['p50']:.3f} ms p99 {lag['p99']:.3f} ms, "
      f"client CPU {float(sys.argv[2]):.1f} s for {d['request_count']['avg']:.0f} requests")
PY
done
start_engine --no-delay --max-batch 4096
aiperf_rate_requests=$(n 40000)
if aiperf --request-rate 20000 --request-count "$aiperf_rate_requests" --synthetic-input-tokens-mean 8 \
  --output-tokens-mean 1 --extra-inputs max_tokens:1 --extra-inputs min_tokens:1 --extra-inputs ignore_eos:true \
  --artifact-dir "$work/b-aiperf"; then
  python3 - "$work/b-aiperf/profile_export_aiperf.json" "$(cpu)" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
delivered = d["request_count"]["avg"] / d["benchmark_duration"]["avg"]
lag = d.get("credit_to_start_latency", {})
print(f"   aiperf, same offer: delivered {delivered:,.0f} req/s ({(delivered/20000-1)*100:+.2f} %), "
      f"credit-to-start p99 {lag.get('p99', float('nan')):.3f} ms, client CPU {float(sys.argv[2]):.1f} s")
PY
fi
fi

if section C; then
# C. 10,000 concurrent streams: every stream open at once, 64 tokens each at 10 tokens/s.
streams=$(n 10000)
start_engine --max-batch "$streams" --prefill-base-ms 5 --prefill-per-token-us 0 --decode-base-ms 100 \
  --decode-per-seq-us 0 --decode-per-kv-token-ns 0 --kv-capacity-tokens 4000000
ours --concurrency "$streams" --requests "$streams" --isl 16 --osl 64 --request-timeout 300 --artifact-dir "$work/c-ours" >/dev/null
echo "C. $streams concurrent streams: sweep-runner peak RSS $(rss_mb) MB, $(field "$work/c-ours/profile_export_aiperf.json" '["request_count"]["avg"]') requests completed, $(field "$work/c-ours/profile_export_aiperf.json" '["error_request_count"]["avg"]') errors"
fi

if section D; then
# D. TTFT fidelity at concurrency 1,000: client first-token arrival − engine's first-token send.
fidelity=(--max-batch 1000 --prefill-base-ms 5 --prefill-per-token-us 0 --decode-base-ms 20 --decode-per-seq-us 0 --decode-per-kv-token-ns 0)
requests=$(n 3000)
start_engine "${fidelity[@]}" --token-log "$work/d-ours.log"
ours --concurrency 1000 --requests "$requests" --warmup 1000 --isl 32 --osl 16 --artifact-dir "$work/d-ours" >/dev/null
start_engine "${fidelity[@]}" --token-log "$work/d-aiperf.log"
aiperf --streaming --concurrency 1000 --request-count "$requests" --warmup-request-count 1000 \
  --synthetic-input-tokens-mean 32 --output-tokens-mean 16 --extra-inputs max_tokens:16 --extra-inputs min_tokens:16 \
  --extra-inputs ignore_eos:true --artifact-dir "$work/d-aiperf"
sleep 0.5  # the engine's log flushes once the load pauses
python3 - "$work" <<'PY'
import json, sys
work = sys.argv[1]
def errors(tool):
    sent = {}
    for line in open(f"{work}/d-{tool}.log"):
        r = json.loads(line)
        sent[r["x_request_id"]] = r["first_token_ns"]
    out = []
    for line in open(f"{work}/d-{tool}/profile_export.jsonl"):
        r = json.loads(line)
        m, meta = r["metrics"], r["metadata"]
        if r.get("error") or meta.get("benchmark_phase") != "profiling" or "time_to_first_token" not in m:
            continue
        arrival = meta["request_start_ns"] + m["time_to_first_token"]["value"] * 1e6
        if meta["x_request_id"] in sent:
            out.append((arrival - sent[meta["x_request_id"]]) / 1e6)
    out.sort()
    q = lambda p: out[min(len(out) - 1, int(p * len(out)))]
    return len(out), q(0.5), q(0.99), out[-1]
for tool in ["ours", "aiperf"]:
    n, p50, p99, worst = errors(tool)
    name = "sweep-runner" if tool == "ours" else "aiperf"
    print(f"D. TTFT error vs the engine's log (c=1000, {n} requests): {name} p50 {p50:.3f} ms, p99 {p99:.3f} ms, max {worst:.3f} ms")
PY
fi
