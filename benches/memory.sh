#!/usr/bin/env bash
# pgdrill's peak memory as the data grows (DESIGN.md, Performance: "peak memory flat").
#
# Usage: benches/memory.sh [--rows N[,N…]] [--jobs N]
#   --rows    generated users per drill, comma-separated (default 100000,1000000,5000000)
#   --jobs    pg_restore -j for each drill (default: cores)
#
# Method
#   For each size, one whole drill on the native backend, as compare.sh runs it:
#   `pgdrill drill --rows N --jobs J --disaster drop-db --app none --out DIR` (seed, backup,
#   drop, precheck, restore, snapshot, compare, amcheck). While it runs, VmHWM of the pgdrill
#   process (the kernel's high-water mark of its resident set; it only grows, so the last
#   reading before exit is the peak) is read from /proc every 0.2 s. That is pgdrill's own
#   memory: PostgreSQL, pg_dump and pg_restore are other processes and are not counted.
#   The table: users, dump size, the drill's wall time, pgdrill's peak RSS, and the peak as
#   a multiple of the smallest run's. Flat means the multiple stays near 1 as rows grow
#   50-fold: nothing holds a table, a dump or a snapshot in memory. A second table: each
#   phase's seconds per million users at each size (from report.json), which stay level
#   when the phase's cost is linear in the data.
#
# Binary: $PGDRILL_BIN, default target/release/pgdrill (built here when unset). Writes
# reports/bench/memory.md. Everything the drills start is stopped by the drills themselves;
# their --out directories are removed on exit.
set -euo pipefail
export LC_ALL=C

rows=100000,1000000,5000000
jobs=$(nproc)
usage() { sed -n '4,6p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
while [[ $# -gt 0 ]]; do
  case $1 in
    --rows) rows=${2:?--rows needs a number}; shift 2 ;;
    --jobs) jobs=${2:?--jobs needs a number}; shift 2 ;;
    -h|--help) usage ;;
    *) echo "memory.sh: unknown argument '$1'" >&2; usage ;;
  esac
done
IFS=, read -r -a sizes <<<"$rows"
for n in "${sizes[@]}" "$jobs"; do
  [[ $n =~ ^[1-9][0-9]*$ ]] || { echo "memory.sh: --rows and --jobs take positive integers, not '$n'" >&2; exit 2; }
done
command -v jq >/dev/null || { echo "memory.sh: jq is needed to read report.json; install jq" >&2; exit 3; }

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
log() { printf '[memory %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
if [[ -z ${PGDRILL_BIN:-} ]]; then
  log "building (cargo build --release --bins)"
  (cd "$root" && cargo build --release --quiet --bins)
  PGDRILL_BIN=${CARGO_TARGET_DIR:-$root/target}/release/pgdrill
fi
bin=$(realpath "$PGDRILL_BIN")

work=$(mktemp -d "${TMPDIR:-/tmp}/pgdrill-memory-XXXXXX")
drill_pid=""
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  # SIGTERM lets the drill stop its own servers before the directory goes.
  if [[ -n $drill_pid ]] && kill -0 "$drill_pid" 2>/dev/null; then
    kill -TERM "$drill_pid" 2>/dev/null || true
    wait "$drill_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

kib() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status" 2>/dev/null || true; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

results=()
costs=()
phase_names=(seed backup precheck roles createdb pg_restore analyze snapshot compare amcheck)
base=""
for n in "${sizes[@]}"; do
  out=$work/drill-$n
  log "drill: --rows $n --jobs $jobs --disaster drop-db --app none"
  t0=${EPOCHREALTIME/./}
  "$bin" drill --backend native --rows "$n" --jobs "$jobs" --disaster drop-db --app none \
    --out "$out" >"$work/$n.stdout" 2>"$work/$n.stderr" &
  drill_pid=$!
  peak=0
  while kill -0 "$drill_pid" 2>/dev/null; do
    k=$(kib "$drill_pid")
    [[ -n $k && $k -gt $peak ]] && peak=$k
    sleep 0.2
  done
  rc=0
  wait "$drill_pid" || rc=$?
  drill_pid=""
  t1=${EPOCHREALTIME/./}
  if [[ $rc -ne 0 ]]; then
    echo "memory.sh: the drill with --rows $n exited $rc; its output:" >&2
    cat "$work/$n.stdout" "$work/$n.stderr" >&2
    exit 1
  fi
  dump_bytes=$(jq -e '.backup.size_bytes' "$out/report.json")
  secs=$(( (t1 - t0) / 1000000 ))
  [[ -n $base ]] || base=$peak
  ratio=$(awk -v p="$peak" -v b="$base" 'BEGIN { printf "%.2f", p / b }')
  log "rows $n: peak RSS $(mib "$peak") MiB, dump $(mib $((dump_bytes / 1024))) MiB, ${secs} s"
  results+=("| $n | $(mib $((dump_bytes / 1024))) MiB | ${secs} s | $(mib "$peak") MiB | ×$ratio |")
  row="| $n |"
  for p in "${phase_names[@]}"; do
    ms=$(jq -r --arg p "$p" '[.phases[] | select(.name == $p) | .duration_ms] | first // 0' "$out/report.json")
    row+=" $(awk -v ms="$ms" -v n="$n" 'BEGIN { printf "%.1f s (%.2f)", ms / 1000, ms / 1000 / (n / 1000000) }') |"
  done
  costs+=("$row")
  rm -rf "$out"
done

mkdir -p "$root/reports/bench"
{
  echo "## pgdrill's peak memory by data size"
  echo
  echo "$(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $("$bin" --version), \`--jobs $jobs\`"
  echo
  echo "| users | dump | drill | pgdrill peak RSS | vs smallest |"
  echo "|---:|---:|---:|---:|---:|"
  printf '%s\n' "${results[@]}"
  echo
  echo "Each phase: seconds, and (in brackets) seconds per million users."
  echo
  echo "| users | $(IFS='|'; echo "${phase_names[*]}" | sed 's/|/ | /g') |"
  echo "|---:|$(printf -- '---:|%.0s' "${phase_names[@]}")"
  printf '%s\n' "${costs[@]}"
} | tee "$root/reports/bench/memory.md"
