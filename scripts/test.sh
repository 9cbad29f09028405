#!/usr/bin/env bash
# The whole test suite, from a fresh machine: set-up, then every test against real PostgreSQL
# servers the tests start themselves (and containers, when Docker is present).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# The sample app setup.sh built (and put into the image); tests use it instead of building it again.
export PGDRILL_SAMPLE_APP="${PGDRILL_SAMPLE_APP:-$PWD/target/release/sample-app}"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --all-targets --no-fail-fast "$@"
  cargo test --doc
else
  cargo test --workspace --all-targets --no-fail-fast "$@"
fi
