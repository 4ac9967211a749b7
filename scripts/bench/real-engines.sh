#!/usr/bin/env bash
# Times the real engines' install and their end-to-end tests, as docs/benchmarks.md reports them.
#
#   scripts/bench/real-engines.sh            # the tests only (engines installed as test.sh does)
#   FRESH=1 scripts/bench/real-engines.sh    # also a fresh install of each engine into a new cache
#
# Needs the dev cluster (scripts/slurm-dev-cluster.sh start) and network access to PyPI for FRESH.
set -euo pipefail
cd "$(dirname "$0")/../.."

if [ "${FRESH:-0}" = 1 ]; then
  cache=$(mktemp -d)
  trap 'rm -rf "$cache"' EXIT
  for engine in dynamo vllm; do
    start=$(date +%s.%N)
    SWEEP_ENGINE_CACHE=$cache scripts/install-engines.sh "$engine" 2>/dev/null
    end=$(date +%s.%N)
    printf 'install %-7s %6.1f s  %s\n' "$engine" "$(echo "$end - $start" | bc)" "$(du -sh "$cache" | cut -f1)"
  done
  export SWEEP_ENGINE_CACHE=$cache
else
  scripts/install-engines.sh
fi

cargo build --workspace --bins --quiet
# nextest prints each test's time; the TTFT lines are the client-vs-engine cross-check.
cargo nextest run --workspace --no-fail-fast -E 'binary(real_engines)' --no-capture 2>&1 \
  | grep -E '^\s+(PASS|FAIL) |TTFT client|Summary'
