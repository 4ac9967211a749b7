#!/usr/bin/env bash
# Rendering benchmark (issue 3: 10,000 job scripts in under 2 s). Renders
# scripts/bench/render-10k.yaml (10,000 jobs: a script and a job.json each, in a folder each) with
# the release binary, RUNS times, into tmpfs (/dev/shm) and onto the disk under /tmp. Beside each,
# a baseline: Python creating the same 10,000 folders and 20,000 files of the same sizes, so that
# a slow filesystem is not mistaken for slow rendering.
# Usage: scripts/bench/render.sh [RUNS]   (default 5)
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-5}
command -v /usr/bin/time >/dev/null || { echo "needs GNU time: apt-get install -y time" >&2; exit 1; }
cargo build --release --quiet -p sweep-cli
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
median() { printf '%s\n' "$@" | sort -n | sed -n "$(( ($# + 1) / 2 ))p"; }
for root in /dev/shm /tmp; do
  work=$(mktemp -d -p "$root")
  walls=(); peak=0; baseline=()
  for i in $(seq "$runs"); do
    /usr/bin/time -o "$work/time" -f '%e %M' target/release/sweep render scripts/bench/render-10k.yaml -o "$work/run" >/dev/null 2>&1
    read -r wall rss < "$work/time"
    walls+=("$wall"); (( rss > peak )) && peak=$rss
    scripts=$(find "$work/run/jobs" -name job.sbatch | wc -l)
    sbatch_bytes=$(stat -c %s "$(find "$work/run/jobs" -name job.sbatch | head -1)")
    json_bytes=$(stat -c %s "$(find "$work/run/jobs" -name job.json | head -1)")
    rm -rf "$work/run"
    baseline+=("$(python3 - "$work/base" "$sbatch_bytes" "$json_bytes" <<'PY'
import os, sys, time
base, a, b = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
start = time.time()
for i in range(10000):
    d = f"{base}/jobs/job{i}"
    os.makedirs(d)
    with open(d + "/job.sbatch", "w") as f: f.write("x" * a)
    with open(d + "/job.json", "w") as f: f.write("y" * b)
print(f"{time.time() - start:.2f}")
PY
)")
    rm -rf "$work/base"
  done
  rm -rf "$work"
  echo "$root: $scripts scripts; sweep render median $(median "${walls[@]}") s (all: $(IFS=,; echo "${walls[*]}")), peak RSS $(( peak / 1024 )) MB; python file-creation baseline median $(median "${baseline[@]}") s"
done
