#!/usr/bin/env bash
# Multi-turn replay memory benchmark (issue 17: 10,000 concurrent sessions, client RSS ≤ 400 MB).
# A dataset of SESSIONS sessions of TURNS turns (each turn 200 words, 200 ms of think time
# before every turn after the first), replayed by `sweep-runner profile` at a concurrency of
# SESSIONS against the simulated engine answering at once (--no-delay), so every session is in
# flight together and each turn carries the whole history so far. Prints the client's peak RSS
# (GNU time's %M), its wall time, and the requests and errors from the run's summary.
# Usage: scripts/bench/sessions-rss.sh [SESSIONS] [TURNS]   (default 10000 4)
set -euo pipefail
cd "$(dirname "$0")/../.."
sessions=${1:-10000}
turns=${2:-4}
command -v /usr/bin/time >/dev/null || { echo "needs GNU time: apt-get install -y time" >&2; exit 1; }
# Each session holds a connection in each process.
ulimit -n $(( sessions + 1024 ))
cargo build --release --quiet -p sweep-runner -p sweep-mock
work=$(mktemp -d)
mock_pid=
trap '[ -n "$mock_pid" ] && kill "$mock_pid" 2>/dev/null; rm -rf "$work"' EXIT
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
python3 - "$work/sessions.jsonl" "$sessions" "$turns" <<'PY'
import json, random, sys
path, sessions, turns = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
words = "the of and to in is that for it as was with be by on not he this are or his from at which".split()
rng = random.Random(7)
with open(path, "w") as out:
    for s in range(sessions):
        session = {"session_id": f"s{s}", "turns": []}
        for t in range(turns):
            turn = {"text": " ".join(rng.choice(words) for _ in range(200))}
            if t > 0:
                turn["delay"] = 200
            session["turns"].append(turn)
        out.write(json.dumps(session) + "\n")
PY
echo "dataset: $sessions sessions × $turns turns, $(( $(stat -c %s "$work/sessions.jsonl") / 1048576 )) MB"
target/release/sweep-mock-engine --port 0 --port-file "$work/port" --no-delay --max-batch $(( sessions * 2 )) \
  --kv-capacity-tokens 100000000000 --threads 1 >"$work/mock.log" 2>&1 &
mock_pid=$!
for _ in $(seq 100); do [ -s "$work/port" ] && break; sleep 0.1; done
port=$(cat "$work/port")
out=$( { /usr/bin/time -f '%e %M' target/release/sweep-runner profile --url "http://127.0.0.1:$port" \
  --model mock --input-file "$work/sessions.jsonl" --input-format multi_turn --concurrency "$sessions" \
  --requests $(( sessions * turns )) --osl 16 --threads 2 --request-timeout 600 --progress off \
  --artifact-dir "$work/out" --format json >"$work/summary.json"; } 2>&1)
read -r wall rss_kb < <(echo "$out" | tail -n 1)
python3 - "$work/summary.json" "$sessions" "$turns" "$wall" "$rss_kb" <<'PY'
import json, sys
summary = json.load(open(sys.argv[1]))
sessions, turns, wall, rss_kb = sys.argv[2], sys.argv[3], float(sys.argv[4]), int(sys.argv[5])
count = summary["request_count"]["avg"]
errors = summary["error_request_count"]["avg"]
isl = summary["input_sequence_length"]
print(f"sessions={sessions} turns={turns} requests={count:.0f} errors={errors:.0f} wall_s={wall:.1f} "
      f"client_peak_rss_mb={rss_kb / 1024:.0f} isl_avg={isl['avg']:.0f} isl_max={isl['max']:.0f}")
PY
