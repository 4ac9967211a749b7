#!/usr/bin/env bash
# `sweep explore` against the full grid (issue 38): the space in explore-space.yaml (144
# deployments of the simulated engine) measured whole, then each strategy — explore (its first
# wave a spread, and a census), random deployments, successive halving — replayed on those
# measurements at 1/10, 1/5 and 1/3 of the grid's GPU-hours, 5 seeds each; prints each median
# hypervolume ratio (reference (0, 0)), the GPU-hours spent (without and with engine start-up,
# as shares of the grid's) and how many of the grid's frontier points were missed. With several
# grids (the same space measured again: each measurement has its own noise), each strategy's
# line is the median over every grid and seed, with each grid's median after it, so that no
# ranking rests on one measurement's noise. Then runs `sweep explore` itself at each budget
# against the first grid (LIVE=0 skips it) and times one choice over 10,000 candidates.
# Usage: scripts/bench/explore.sh [GRID_DIR...]   (existing full-grid folders of the same spec)
#        GRIDS=2 scripts/bench/explore.sh          (without folders: measure GRIDS grids first,
#                                                   about 10 minutes each here; default 1)
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --quiet --bins
bin=$PWD/target/debug/sweep
spec=scripts/bench/explore-space.yaml
grids=("$@")
if [[ ${#grids[@]} -eq 0 ]]; then
  for _ in $(seq "${GRIDS:-1}"); do
    grid=$(mktemp -d)/grid
    start=$(date +%s)
    "$bin" submit "$spec" -o "$grid" --executor local 2>/dev/null
    echo "full grid: $(($(date +%s) - start)) s of wall time, in $grid"
    grids+=("$grid")
  done
fi
grid=${grids[0]}
for g in "${grids[@]}"; do
  full=$("$bin" explore "$spec" -o /nonexistent --replay "$g" --strategy random --budget-share 1 2>/dev/null)
  echo "full grid $g: $(jq -r .grid_spent <<<"$full") GPU-hours ($(jq -r .grid_spent_with_startup <<<"$full") with engine start-up), hypervolume $(jq -r .grid_hypervolume <<<"$full")"
done
full=$("$bin" explore "$spec" -o /nonexistent --replay "$grid" --strategy random --budget-share 1 2>/dev/null)
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
printf '%-8s  %-8s  %-12s  %-12s  %-12s  %-7s  %s\n' budget strategy "med. ratio" "med. spent" "+start-up" missed "median per grid (ratios of the first grid's seeds 0-4)"
for share in 0.1 0.2 0.333; do
  for strategy in explore census random halving; do
    ratios=() spent=() startup=() missed=() per_grid=() first=()
    for g in "${grids[@]}"; do
      mine=()
      for seed in 0 1 2 3 4; do
        if [[ $strategy == census ]]; then how=(--strategy explore --first-wave census); else how=(--strategy "$strategy"); fi
        out=$("$bin" explore "$spec" -o /nonexistent --replay "$g" "${how[@]}" --seed "$seed" --budget-share "$share" 2>/dev/null)
        mine+=("$(jq -r .ratio <<<"$out")")
        spent+=("$(jq -r '.spent / .grid_spent' <<<"$out")")
        startup+=("$(jq -r '.spent_with_startup / .grid_spent_with_startup' <<<"$out")")
        missed+=("$(jq -r '.missed | length' <<<"$out")")
      done
      ratios+=("${mine[@]}")
      per_grid+=("$(printf '%.3f' "$(median "${mine[@]}")")")
      [[ ${#first[@]} -eq 0 ]] && first=("${mine[@]}")
    done
    printf '%-8s  %-8s  %-12.4f  %-12.4f  %-12.4f  %-7s  %s (%s)\n' "$share" "$strategy" "$(median "${ratios[@]}")" \
      "$(median "${spent[@]}")" "$(median "${startup[@]}")" "$(median "${missed[@]}")" "${per_grid[*]}" "$(printf '%.3f ' "${first[@]}")"
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
