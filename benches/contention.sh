#!/usr/bin/env bash
# What slows pg_dump when the integrity snapshot S0 reads the same database beside it (issue 22;
# docs/src/performance.md, "What misses its goal"). Rounds, interleaved, of a bare
# `pg_dump -Fc -f` pinned to CPU 0:
#   alone;
#   beside a shell spin loop pinned to CPU 1 at nice 19 (CPU competition only);
#   beside one psql session reading every user table with COPY TO STDOUT (what S0 does
#     besides its catalog and check queries), pinned with its backend to CPU 1 at nice 19.
# If the third is slower than the first while the second is not, the cost is not CPU time that
# a lower priority could give back but the two readers sharing the machine's memory and cache.
#
# Usage: benches/contention.sh DSN [ROUNDS]
#   DSN     a database to dump, e.g. the `pgdrill` database of a drill kept with --keep
#           (password in PGPASSWORD); nothing is written to it
#   ROUNDS  default 3
# Needs 2 or more cores, taskset and renice (util-linux), and root or the server's own user
# to move the session's backend (it must be a local server). Prints one line per round.
set -euo pipefail
export LC_ALL=C
[[ $# -ge 1 && $# -le 2 ]] || { sed -n '/^# Usage:/,/^# Needs/p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
dsn=$1
rounds=${2:-3}
[[ $rounds =~ ^[1-9][0-9]*$ ]] || { echo "contention.sh: ROUNDS must be a positive integer, not '$rounds'" >&2; exit 2; }
bindir=${PGDRILL_PG_BINDIR:-$(pg_config --bindir)}
[[ $(nproc) -ge 2 ]] || { echo "contention.sh: needs 2 or more cores" >&2; exit 3; }
for p in taskset renice; do
  command -v $p >/dev/null || { echo "contention.sh: $p not found; install util-linux" >&2; exit 3; }
done

work=$(mktemp -d)
spin=
reader=
cleanup() {
  [[ -n $spin ]] && kill "$spin" 2>/dev/null || true
  [[ -n $reader ]] && kill "$reader" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"$bindir/psql" "$dsn" -qAtX -c "SELECT format('COPY %s TO STDOUT;', c.oid::regclass)
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind = 'r' AND n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'
  ORDER BY pg_relation_size(c.oid) DESC" >"$work/read.sql"
# A pause first, so the backend can be moved before it reads.
sed -i '1i SELECT pg_sleep(0.3);' "$work/read.sql"

dump_ms() {
  local t0
  t0=$(date +%s%N)
  taskset -c 0 "$bindir/pg_dump" -Fc -f "$work/dump" -d "$dsn"
  echo $(( ($(date +%s%N) - t0) / 1000000 ))
}

for ((i = 1; i <= rounds; i++)); do
  alone=$(dump_ms)
  taskset -c 1 nice -n 19 sh -c 'while :; do :; done' &
  spin=$!
  spinning=$(dump_ms)
  kill "$spin"; wait "$spin" 2>/dev/null || true; spin=
  PGAPPNAME=pgdrill-contention taskset -c 1 "$bindir/psql" "$dsn" -qAtX -f "$work/read.sql" >/dev/null &
  reader=$!
  sleep 0.15
  pid=$("$bindir/psql" "$dsn" -qAtX -c "SELECT pid FROM pg_stat_activity WHERE application_name = 'pgdrill-contention'")
  taskset -cp 1 "$pid" >/dev/null
  renice -n 19 -p "$pid" >/dev/null
  reading=$(dump_ms)
  wait "$reader"; reader=
  printf 'round %d: pg_dump alone %d ms, beside a spin loop %d ms (%.2fx), beside a reader of every table %d ms (%.2fx)\n' \
    "$i" "$alone" "$spinning" "$(echo "$spinning / $alone" | bc -l)" "$reading" "$(echo "$reading / $alone" | bc -l)"
done
