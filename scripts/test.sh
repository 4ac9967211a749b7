#!/usr/bin/env bash
# Runs every test of the project: unit, property, snapshot and end-to-end tests of the binaries.
# This is the README's test command, and `.ci/run` calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
  echo "error: cargo is not on PATH; install Rust (rustup) first" >&2
  exit 1
fi

# Python packages some tests drive the project with (the official OpenAI client).
if ! python3 -c "import openai, junitparser" >/dev/null 2>&1; then
  echo "installing the test suite's Python packages (tests/requirements.txt)" >&2
  pip=(python3 -m pip install --quiet --disable-pip-version-check -r tests/requirements.txt)
  # Debian's own python3 refuses system-wide installs unless told (PEP 668).
  "${pip[@]}" || "${pip[@]}" --break-system-packages
fi

# The report test opens report.html in a real browser (Debian's chromium); plots need a font.
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || missing+=(fonts-dejavu-core)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]} from Debian's packages" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The end-to-end tests submit to a real SLURM cluster on this host (needs root to start).
if ! scripts/slurm-dev-cluster.sh status >/dev/null 2>&1; then
  scripts/slurm-dev-cluster.sh start
fi

# The real engines the end-to-end tests run (Dynamo's frontend and mocker, vLLM's CPU build and
# vllm-router), in venvs under ~/.cache/sweep/engines: installed when missing, while Cargo
# builds (the install waits on the network, the build on the cores).
engines_log=$(mktemp)
scripts/install-engines.sh >"$engines_log" 2>&1 &
engines=$!

# End-to-end tests run the binaries of several packages (sweep, sweep-runner,
# sweep-mock-engine): build them all first, in the same dev profile the tests use.
cargo build --workspace --bins

if ! wait "$engines"; then
  cat "$engines_log" >&2
  echo "error: installing the real engines failed (scripts/install-engines.sh)" >&2
  exit 1
fi
cat "$engines_log" >&2
rm -f "$engines_log"

# Engines and servers the tests start must all be stopped by the tests: remember what runs now,
# and check after the tests that nothing new is left.
leftover_pattern='sweep-mock-engine|sweep-runner|dynamo\.(frontend|mocker)|vllm serve|VLLM::|vllm-router'
before=$(pgrep -f "$leftover_pattern" | sort || true)

# nextest runs each test in its own process and reports slow or leaky tests; plain `cargo test`
# is the fallback where it is not installed. Both build one dev profile for tests and binaries.
status=0
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast "$@" || status=$?
else
  cargo test --workspace --no-fail-fast "$@" || status=$?
fi

# A stopped engine may take its grace period to go: wait up to 30 s before calling it left over.
for _ in $(seq 30); do
  left=$(comm -13 <(echo "$before") <(pgrep -f "$leftover_pattern" | sort) || true)
  [ -z "$left" ] && break
  sleep 1
done
if [ -n "$left" ]; then
  echo "error: the tests left these processes running:" >&2
  # shellcheck disable=SC2086
  ps -o pid,ppid,etime,args -p $(echo $left | tr ' ' ',') >&2 || true
  exit 1
fi
exit "$status"
