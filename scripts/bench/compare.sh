#!/usr/bin/env bash
# `sweep compare` and the history at scale (issue 37): two sweeps of 2,000 points measured 5 times
# each (10,000 point folders a side, written by gen-compare-data.py from a real point's summary),
# compared; one of them added to the history; the history then holding 1,000 sweeps, listed.
# Release build; wall time and peak RSS from GNU time, median of RUNS.
# Usage: scripts/bench/compare.sh [RUNS]   (default 3; needs ~1 GB free under $TMPDIR)
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-3}
cargo build --quiet --release --bins
bin=$PWD/target/release/sweep
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export SWEEP_HISTORY=$work/history.sqlite

# A real point's summary, from a one-point local run of the simulated engine.
cat >"$work/one.yaml" <<'YAML'
name: template
model: {path: /models/tiny, served_name: tiny}
engine: {kind: mock}
cluster: {gpus_per_node: 4, base_port: 27100, frontend_port: 27199}
mode: agg
agg: {tp: 1, batch: 8}
workload: {isl: 64, osl: 16, concurrency: 1, requests: 8, warmup: 1}
YAML
"$bin" submit "$work/one.yaml" -o "$work/one" --executor local 2>/dev/null
template=$(find "$work/one" -name profile_export_aiperf.json | head -1)

for side in a:1 b:2; do
  name=${side%%:*} seed=${side##*:}
  "$bin" render scripts/bench/compare-2000.yaml -o "$work/$name" >/dev/null 2>&1
  python3 scripts/bench/gen-compare-data.py "$work/$name" "$template" "$seed"
done
# Every file read once, so each run reads from the page cache.
find "$work/a" "$work/b" -name "*.json" -exec cat {} + >/dev/null

median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
measure() { # label, command...: prints "label: wall s, peak RSS MB" (medians)
  local label=$1; shift
  local walls=() rss=()
  for _ in $(seq "$runs"); do
    /usr/bin/time -f '%e %M' -o "$work/time" "$@" >/dev/null 2>"$work/err" || [ $? -eq 17 ] || { cat "$work/err"; exit 1; }
    read -r wall kb <"$work/time"
    walls+=("$wall") rss+=("$kb")
  done
  printf '%s: %s s, %s MB\n' "$label" "$(printf '%s\n' "${walls[@]}" | median)" \
    "$(printf '%s\n' "${rss[@]}" | median | awk '{ printf "%.0f", $1 / 1024 }')"
}

echo "machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo); commit $(git rev-parse --short HEAD)"
measure "compare 2 x 2,000 points x 5 repeats (-o, html)" "$bin" compare "$work/a" "$work/b" -o "$work/cmp"
"$bin" compare "$work/a" "$work/b" --format json 2>/dev/null | python3 -c "import json,sys; c=json.load(sys.stdin); print('  points compared:', len(c['points']), c['counts'])" || true
rm -f "$SWEEP_HISTORY"
measure "history add (2,000 points, 10,000 folders aggregated)" sh -c "rm -f '$SWEEP_HISTORY'; '$bin' history add '$work/a' --tag bench"
# 1,000 sweeps: the one added, copied 999 times with its tags and its first 100 points.
python3 - "$SWEEP_HISTORY" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
cols = [r[1] for r in db.execute("PRAGMA table_info(sweeps)") if r[1] != "id"]
for k in range(999):
    cur = db.execute(f"INSERT INTO sweeps ({','.join(cols)}) SELECT {','.join(cols)} FROM sweeps WHERE id = 1")
    new = cur.lastrowid
    db.execute("UPDATE sweeps SET created_at = created_at + ? WHERE id = ?", (k + 1, new))
    db.execute("INSERT INTO tags SELECT ?, tag FROM tags WHERE sweep_id = 1", (new,))
    db.execute("INSERT INTO points SELECT ?, key, point FROM points WHERE sweep_id = 1 LIMIT 100", (new,))
db.commit()
print("  history:", db.execute("SELECT count(*) FROM sweeps").fetchone()[0], "sweeps,",
      db.execute("SELECT count(*) FROM points").fetchone()[0], "points")
PY
measure "history list (1,000 sweeps)" "$bin" history list
measure "history list --format json (1,000 sweeps)" "$bin" history list --format json
measure "compare --baseline 1 (a history sweep of 2,000 points) vs a sweep" "$bin" compare --baseline 1 "$work/b"
