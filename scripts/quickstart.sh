#!/usr/bin/env bash
# The project's main job on a fresh machine: builds `sweep` and runs the quickstart sweep of the
# simulated engine. Today that is `sweep plan`; it grows into a full local sweep (submit through
# the local executor, aggregate, report) as those commands land.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet --bin sweep
exec target/debug/sweep plan sweeps/quickstart.yaml "$@"
