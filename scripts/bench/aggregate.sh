#!/usr/bin/env bash
# Aggregation benchmark (issue 6): 2,000 points × 1,000 requests (2 million per-request records)
# aggregated in under 10 s and 2 GB, and `aiperf plot` side by side on the same exports.
#
# 1. scripts/bench/gen-aggregate-data.py writes the exports once (Dynamo's layout, records as
#    sweep-runner writes them: ≈1.35 KB a line, OSL 64), into $DATA (default /tmp/sweep-bench-agg).
# 2. The files are read once (`cat > /dev/null`), so every tool below reads from the page cache.
# 3. With the release build, RUNS times each: `sweep aggregate` (summaries) and
#    `sweep aggregate --from-records` (every record scanned by polars); wall time and peak RSS
#    from GNU time; the median is reported.
# 4. Side by side, in this run, on the first $SUBSET points (all by default): `sweep report`,
#    `sweep report --from-records` and `aiperf plot` (aiperf 0.13.0 from PyPI, installed by
#    runner-vs-aiperf.sh into /opt/aiperf-venv) on exactly the same run folders; ratios of wall
#    time and peak RSS. Given several runs, aiperf plot reads each run's summary only (its
#    multi-run mode skips the per-request JSONL), like `sweep report` without --from-records.
# Usage: scripts/bench/aggregate.sh [RUNS] [SUBSET]   (defaults 3 and 2000)
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-3}
subset=${2:-2000}
data=${DATA:-/tmp/sweep-bench-agg}
aiperf=/opt/aiperf-venv/bin/aiperf
command -v /usr/bin/time >/dev/null || { echo "needs GNU time: apt-get install -y time" >&2; exit 1; }
[ -x "$aiperf" ] || { echo "needs aiperf in /opt/aiperf-venv: run scripts/bench/runner-vs-aiperf.sh once" >&2; exit 1; }
cargo build --release --quiet -p sweep-cli
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(free -g | awk '/Mem:/ {print $2}') GiB"
if [ ! -f "$data/.complete" ]; then
  rm -rf "$data"
  python3 scripts/bench/gen-aggregate-data.py "$data" --points 2000 --requests 1000
  touch "$data/.complete"
fi
records=$(find "$data" -name profile_export.jsonl | wc -l)
echo "data: $records points, $(du -sh --apparent-size "$data" | cut -f1) in $data"
find "$data" -type f -exec cat {} + > /dev/null

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
median() { printf '%s\n' "$@" | sort -n | sed -n "$(( ($# + 1) / 2 ))p"; }
measure() { # label, command...: runs it RUNS times, prints the median wall and the peak RSS
  local label=$1; shift
  local walls=() peak=0
  for _ in $(seq "$runs"); do
    rm -rf "$work/out"
    /usr/bin/time -o "$work/time" -f '%e %M' "$@" >/dev/null 2>"$work/err" || { cat "$work/err" >&2; exit 1; }
    read -r wall rss < "$work/time"
    walls+=("$wall"); (( rss > peak )) && peak=$rss
  done
  printf '%s: wall %s s (median of %s), peak RSS %d MB\n' "$label" "$(median "${walls[@]}")" "$runs" $(( peak / 1024 ))
}
measure "sweep aggregate, summaries" target/release/sweep aggregate "$data" -o "$work/out"
measure "sweep aggregate --from-records, 2,000,000 records" target/release/sweep aggregate "$data" -o "$work/out" --from-records
rows=$(($(wc -l < "$work/out/results.csv") - 1))
echo "rows in results.csv: $rows"

# Side by side on the same run folders.
mapfile -t dirs < <(find "$data" -type d -name 'concurrency_*' | sort | head -n "$subset")
mkdir -p "$work/subset"
for d in "${dirs[@]}"; do
  rel=${d#"$data"/}
  mkdir -p "$work/subset/$(dirname "$rel")"
  ln -s "$d" "$work/subset/$rel"
  cfg="$(dirname "$d")/deployment_config.json"
  [ -f "$work/subset/$(dirname "$rel")/deployment_config.json" ] || ln -s "$cfg" "$work/subset/$(dirname "$rel")/"
done
echo "side by side on ${#dirs[@]} run folders:"
/usr/bin/time -o "$work/t-sweep" -f '%e %M' target/release/sweep report "$work/subset" -o "$work/sweep-report" >/dev/null 2>"$work/err-sweep" \
  || { cat "$work/err-sweep" >&2; exit 1; }
/usr/bin/time -o "$work/t-records" -f '%e %M' target/release/sweep report "$work/subset" -o "$work/sweep-report-records" --from-records >/dev/null 2>"$work/err-records" \
  || { cat "$work/err-records" >&2; exit 1; }
/usr/bin/time -o "$work/t-aiperf" -f '%e %M' "$aiperf" plot "${dirs[@]}" --output "$work/aiperf-plots" >"$work/aiperf.log" 2>&1 \
  || { tail -20 "$work/aiperf.log" >&2; exit 1; }
read -r sw sr < "$work/t-sweep"
read -r rw rr < "$work/t-records"
read -r aw ar < "$work/t-aiperf"
echo "  sweep report:                wall $sw s, peak RSS $((sr / 1024)) MB ($(find "$work/sweep-report" -name '*.png' | wc -l) PNG charts + HTML)"
echo "  sweep report --from-records: wall $rw s, peak RSS $((rr / 1024)) MB"
echo "  aiperf plot:                 wall $aw s, peak RSS $((ar / 1024)) MB ($(find "$work/aiperf-plots" -name '*.png' | wc -l) PNG charts)"
python3 -c "import sys; sw,rw,aw,sr,rr,ar=map(float,sys.argv[1:]); print(f'  ratio to aiperf plot: sweep report wall {sw/aw:.3f}, peak RSS {sr/ar:.3f}; with --from-records wall {rw/aw:.3f}, peak RSS {rr/ar:.3f}')" "$sw" "$rw" "$aw" "$sr" "$rr" "$ar"
