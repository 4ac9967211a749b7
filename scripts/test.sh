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
if ! python3 -c "import openai" >/dev/null 2>&1; then
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

# End-to-end tests run the binaries of several packages (sweep, sweep-runner,
# sweep-mock-engine): build them all first, in the same dev profile the tests use.
cargo build --workspace --bins

# nextest runs each test in its own process and reports slow or leaky tests; plain `cargo test`
# is the fallback where it is not installed. Both build one dev profile for tests and binaries.
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast "$@"
else
  cargo test --workspace --no-fail-fast "$@"
fi
