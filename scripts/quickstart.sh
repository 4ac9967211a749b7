#!/usr/bin/env bash
# The project's main job on a fresh machine: builds sweep and runs the quickstart sweep of the
# simulated engine through the local executor (every role a process on this machine, no GPU, no
# SLURM), then writes the results table, Pareto frontiers, plots and the HTML report. Results go to
# a new folder under runs/ (never over an earlier run); pass `-o DIR` to choose it.
set -euo pipefail
cd "$(dirname "$0")/.."
# The plots are drawn with DejaVu Sans; Debian's package has it (run as root to install it).
if [ ! -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] && [ -z "${SWEEP_FONT:-}" ]; then
  echo "installing fonts-dejavu-core for the plots" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fonts-dejavu-core >/dev/null 2>&1 \
    || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fonts-dejavu-core >/dev/null; }
fi
cargo build --quiet --bins
out=""
prev=""
for arg in "$@"; do
  case "$prev" in -o|--output) out="$arg" ;; esac
  case "$arg" in --output=*) out="${arg#--output=}" ;; esac
  prev="$arg"
done
args=("$@")
if [ -z "$out" ]; then
  out="runs/quickstart-$(date +%Y%m%d-%H%M%S)"
  args+=(-o "$out")
fi
target/debug/sweep plan sweeps/quickstart.yaml >&2
# A failed point is in the report with its reason, so the report is written either way.
status=0
target/debug/sweep submit sweeps/quickstart.yaml "${args[@]}" || status=$?
if [ -f "$out/manifest.json" ]; then
  target/debug/sweep status "$out" >&2
  target/debug/sweep report "$out" --min-tps-user 50,100
fi
exit "$status"
