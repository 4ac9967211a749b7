#!/usr/bin/env bash
# A perf-CI job to copy (docs/compare.md, "sweep ci"): run the named cases, hold each against the
# history's latest run of it, publish the JUnit XML, and record the run when it is the main
# branch's, so the next build is held to it.
#
#   SWEEP_HISTORY   where the history lives: a path every CI run sees (a shared volume), since
#                   the baseline is the previous run's (default: the user's data folder)
#   CASES           the cases file (default: sweeps/ci/cases.yaml)
#   SELECT          run only the cases whose name contains this (optional, `-k`)
#   BRANCH, COMMIT  the build (default: from git); only BRANCH=main records its run
#
# Exit status: 0 passed, 17 a case regressed, 10 a case could not run; anything else is the
# job's own failure (docs/exit-codes.md). The report is in $OUT/junit.xml, and each case's
# comparison in $OUT/compare/<case>/compare.html.
set -euo pipefail
cd "$(dirname "$0")/.."
CASES=${CASES:-sweeps/ci/cases.yaml}
BRANCH=${BRANCH:-$(git rev-parse --abbrev-ref HEAD 2>/dev/null || echo unknown)}
COMMIT=${COMMIT:-$(git rev-parse HEAD 2>/dev/null || echo unknown)}
OUT=${OUT:-perf-ci/$(date -u +%Y%m%dT%H%M%SZ)-${COMMIT:0:12}}
SWEEP=${SWEEP:-sweep}

args=(ci "$CASES" -o "$OUT" --commit "$COMMIT")
[ -n "${SELECT:-}" ] && args+=(-k "$SELECT")
# The first run of a case has no baseline: it is reported as skipped, not failed.
if "$SWEEP" history list --limit 1 >/dev/null 2>&1; then
  args+=(--baseline latest)
fi
if [ "$BRANCH" = main ]; then
  args+=(--record --tag main)
fi

status=0
"$SWEEP" "${args[@]}" || status=$?
echo "perf-ci: exit $status; JUnit XML in $OUT/junit.xml" >&2
exit "$status"
