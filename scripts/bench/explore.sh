#!/usr/bin/env bash
# `sweep explore` against the full grid (issue 38): the space in explore-space.yaml (144
# deployments of the simulated engine) measured whole once, then each strategy — explore, random
# deployments, successive halving — replayed on those measurements at 1/10, 1/5 and 1/3 of the
# grid's GPU-hours, 5 seeds each; prints each median hypervolume ratio (reference (0, 0)) and
# GPU-hours spent. Then times one choice over 10,000 candidates.
# Usage: scripts/bench/explore.sh [GRID_DIR]   (an existing full-grid folder of the same spec)
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --quiet --bins
bin=$PWD/target/debug/sweep
spec=scripts/bench/explore-space.yaml
grid=${1:-}
if [[ -z $grid ]]; then
  grid=$(mktemp -d)/grid
  start=$(date +%s)
  "$bin" submit "$spec" -o "$grid" --executor local 2>/dev/null
  echo "full grid: $(($(date +%s) - start)) s of wall time, in $grid"
fi
printf '%-8s  %-8s  %-14s  %-14s  %s\n' budget strategy "median ratio" "median spent" "ratios (seeds 0-4)"
for share in 0.1 0.2 0.333; do
  for strategy in explore random halving; do
    ratios=() spent=()
    for seed in 0 1 2 3 4; do
      out=$("$bin" explore "$spec" -o /nonexistent --replay "$grid" --strategy "$strategy" --seed "$seed" --budget-share "$share" 2>/dev/null)
      ratios+=("$(jq -r .ratio <<<"$out")")
      spent+=("$(jq -r '.spent / .budget * '"$share" <<<"$out")")
    done
    median() { printf '%s\n' "$@" | sort -g | sed -n 3p; }
    printf '%-8s  %-8s  %-14.4f  %-14.4f  %s\n' "$share" "$strategy" "$(median "${ratios[@]}")" "$(median "${spent[@]}")" "$(printf '%.3f ' "${ratios[@]}")"
  done
done
cargo bench --quiet -p sweep-explore --bench choose 2>/dev/null | tail -1
