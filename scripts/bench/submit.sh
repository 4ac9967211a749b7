#!/usr/bin/env bash
# Submit benchmark (issue 3): `sweep submit` of a 200-job sweep to the development SLURM cluster
# (scripts/slurm-dev-cluster.sh start), then `sweep status` (one squeue call for all 200) and
# `sweep cancel`. The jobs are held back with --begin, so nothing runs. Submissions are
# throttled to 10 per second to spare the controller, which bounds the wall time from below.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --quiet -p sweep-cli -p sweep-runner
work=$(mktemp -d)
trap 'target/release/sweep cancel "$work/sweep" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
now() { date +%s.%N; }
t0=$(now); target/release/sweep submit scripts/bench/submit-200.yaml -o "$work/sweep" > "$work/ids" 2>/dev/null; t1=$(now)
t2=$(now); target/release/sweep status "$work/sweep" --format json > "$work/status"; t3=$(now)
t4=$(now); target/release/sweep cancel "$work/sweep" > "$work/cancelled" 2>/dev/null; t5=$(now)
pending=$(python3 -c 'import json,sys; print(sum(r["state"] == "PENDING" for r in json.load(open(sys.argv[1]))))' "$work/status")
echo "submitted $(wc -l < "$work/ids") jobs in $(awk "BEGIN {printf \"%.2f\", $t1 - $t0}") s; status of all in $(awk "BEGIN {printf \"%.3f\", $t3 - $t2}") s ($pending pending); cancelled $(wc -l < "$work/cancelled") in $(awk "BEGIN {printf \"%.2f\", $t5 - $t4}") s"
