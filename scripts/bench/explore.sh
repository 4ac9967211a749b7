#!/usr/bin/env bash
# `sweep explore` against the full grid (issue 38): the space in explore-space.yaml (144
# deployments of the simulated engine) measured whole once, then each strategy — explore (its
# first wave a spread, and a census), random deployments, successive halving — replayed on those
# measurements at 1/10, 1/5 and 1/3 of the
# grid's GPU-hours, 5 seeds each; prints each median hypervolume ratio (reference (0, 0)), the
# GPU-hours spent (without and with engine start-up, as shares of the grid's) and how many of
# the grid's frontier points were missed. Then runs `sweep explore` itself at each budget
# (LIVE=0 skips it) and times one choice over 10,000 candidates.
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
full=$("$bin" explore "$spec" -o /nonexistent --replay "$grid" --strategy random --budget-share 1 2>/dev/null)
echo "full grid: $(jq -r .grid_spent <<<"$full") GPU-hours ($(jq -r .grid_spent_with_startup <<<"$full") with engine start-up), hypervolume $(jq -r .grid_hypervolume <<<"$full")"
median() { printf '%s\n' "$@" | sort -g | sed -n 3p; }
printf '%-8s  %-8s  %-12s  %-12s  %-12s  %-7s  %s\n' budget strategy "med. ratio" "med. spent" "+start-up" missed "ratios (seeds 0-4)"
for share in 0.1 0.2 0.333; do
  for strategy in explore census random halving; do
    ratios=() spent=() startup=() missed=()
    for seed in 0 1 2 3 4; do
      if [[ $strategy == census ]]; then how=(--strategy explore --first-wave census); else how=(--strategy "$strategy"); fi
      out=$("$bin" explore "$spec" -o /nonexistent --replay "$grid" "${how[@]}" --seed "$seed" --budget-share "$share" 2>/dev/null)
      ratios+=("$(jq -r .ratio <<<"$out")")
      spent+=("$(jq -r '.spent / .grid_spent' <<<"$out")")
      startup+=("$(jq -r '.spent_with_startup / .grid_spent_with_startup' <<<"$out")")
      missed+=("$(jq -r '.missed | length' <<<"$out")")
    done
    printf '%-8s  %-8s  %-12.4f  %-12.4f  %-12.4f  %-7s  %s\n' "$share" "$strategy" "$(median "${ratios[@]}")" \
      "$(median "${spent[@]}")" "$(median "${startup[@]}")" "$(median "${missed[@]}")" "$(printf '%.3f ' "${ratios[@]}")"
  done
done
# Live: `sweep explore` itself at each budget (its own estimate of the grid's cost), its frontier
# held against the grid's by `sweep compare` (hypervolume ratio, same reference).
if [[ ${LIVE:-1} == 1 ]]; then
  "$bin" aggregate "$grid" -o "$grid/../grid-aggregate" >/dev/null 2>&1
  for share in 0.1 0.2 0.333; do
    out=$(mktemp -d)/explore
    "$bin" explore "$spec" -o "$out" --budget-share "$share" --executor local >/dev/null 2>&1
    spent=$(jq -r '.waves[-1].spent' "$out/explore.json")
    chosen='[.waves[].decisions[] | select(.choice == "chosen")]'
    jobs="$(jq -r "$chosen | map(.job) | unique | length" "$out/explore.json") jobs at $(jq -r "$chosen | map(.measure | length) | add" "$out/explore.json") loads in $(jq -r '.waves | length' "$out/explore.json") waves"
    ratio=$("$bin" compare "$grid" "$out" --format json 2>/dev/null | jq -r '.frontiers[0].ratio' || true)
    # The grid's own measurements of the jobs it chose: the choice, apart from run-to-run noise.
    chosen=$(python3 scripts/bench/explore-chosen-hv.py "$grid/../grid-aggregate/results.csv" "$out/explore.json")
    echo "live explore at $share: $jobs, $spent GPU-hours ($(jq -n "$spent / $(jq -r .grid_spent <<<"$full")") of the grid's), hypervolume ratio $ratio (its own measurements), $chosen (the grid's measurements of its jobs)"
  done
fi
cargo bench --quiet -p sweep-explore --bench choose 2>/dev/null | tail -1
