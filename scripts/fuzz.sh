#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ in turn (one process, one at a time) for SECONDS each (default 60),
# and prints the executions per target. Installs cargo-fuzz when missing; needs the nightly
# toolchain (rustup toolchain install nightly). Not part of CI: tests/parsers.rs runs the same
# readers as property tests there.
#
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]
# A crash leaves its input in fuzz/artifacts/TARGET/; keep it as a regression test (see
# docs/src/development.md, "Fuzzing") once fixed.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
[[ $seconds =~ ^[1-9][0-9]*$ ]] || { echo "fuzz.sh: SECONDS must be a positive integer, not '$seconds'" >&2; exit 2; }
shift || true
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
rustup run nightly rustc --version >/dev/null 2>&1 || {
  echo "fuzz.sh: the nightly toolchain is needed (rustup toolchain install nightly)" >&2; exit 3; }
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz.sh: installing cargo-fuzz" >&2
  cargo install cargo-fuzz --locked
fi
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
  mapfile -t targets < <(cargo +nightly fuzz list)
fi
cargo +nightly fuzz build -O
logs=$(mktemp -d "${TMPDIR:-/tmp}/pgdrill-fuzz-XXXXXX")
trap 'rm -rf "$logs"' EXIT
printf '| target | seconds | executions | result |\n|---|---|---|---|\n' >"$logs/table"
failed=0
for t in "${targets[@]}"; do
  echo "fuzz.sh: $t for ${seconds}s" >&2
  rc=0
  cargo +nightly fuzz run -O "$t" -- -max_total_time="$seconds" \
    -print_final_stats=1 -max_len=65536 -timeout=10 -rss_limit_mb=2048 >"$logs/$t" 2>&1 || rc=$?
  execs=$(grep -ao 'stat::number_of_executed_units: *[0-9]*' "$logs/$t" | grep -o '[0-9]*$' | tail -n1 || true)
  [[ -n $execs ]] || execs=$(grep -ao '^#[0-9]*' "$logs/$t" | tail -n1 | tr -d '#' || true)
  if [[ $rc -eq 0 ]]; then result=ok; else result="CRASH (rc $rc), input in fuzz/artifacts/$t/"; failed=1; grep -a -A12 'panicked\|ERROR' "$logs/$t" | head -n 40 >&2; fi
  printf '| %s | %s | %s | %s |\n' "$t" "$seconds" "${execs:-?}" "$result" >>"$logs/table"
done
cat "$logs/table"
exit "$failed"
