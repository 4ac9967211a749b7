#!/usr/bin/env bash
# The project's main job on a fresh machine: builds sweep and runs the quickstart sweep of the
# simulated engine through the local executor (every role a process on this machine, no GPU, no
# SLURM). Results go to a new folder under runs/ (never over an earlier run); pass `-o DIR` to
# choose it. The aggregate table and HTML report join this when `sweep aggregate`/`report` land.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet --bins
out="runs/quickstart-$(date +%Y%m%d-%H%M%S)"
for arg in "$@"; do
  if [ "$arg" = "-o" ] || [ "$arg" = "--output" ]; then out=""; fi
done
target/debug/sweep plan sweeps/quickstart.yaml >&2
if [ -n "$out" ]; then
  target/debug/sweep submit sweeps/quickstart.yaml -o "$out" "$@"
  target/debug/sweep status "$out"
else
  exec target/debug/sweep submit sweeps/quickstart.yaml "$@"
fi
