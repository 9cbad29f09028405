#!/usr/bin/env bash
# shellcheck disable=SC2317  # cleanup and the timed functions are called through trap and timed
# pgdrill against the raw PostgreSQL tools, side by side in one run (issue 22; DESIGN.md, Performance).
#
# Usage: benches/compare.sh [--rows N] [--jobs N] [--repeat N] [--check]
#   --rows    generated users (default 1000000, the 1M-user dataset; smaller for a quick run)
#   --jobs    pg_restore -j for the drill and for the bare pg_restore (default: cores)
#   --repeat  rounds: drills, each followed by the raw tools on its server (default 3)
#   --check   exit 1 when a ratio misses its goal (after writing the results)
#
# Method: --repeat rounds, interleaved, so that a change in the machine's load spreads over
# both sides of every ratio instead of landing on one of them. Round i:
#   1. One drill, `--disaster drop-db --app none --keep`, timed by this script (wall clock of
#      the process); its phase durations come from its report.json. The server it leaves
#      running holds the restored `pgdrill` database (the rows the drill seeded, dumped,
#      restored and fingerprinted).
#   2. On that server, the raw tools on the same data, each after a CHECKPOINT (so no run
#      inherits another's dirty buffers; the drill's phases get no such help, which if anything
#      favours the raw tools):
#        initdb + pg_ctl start -w of a new cluster (initdb flags as pgdrill's: --no-sync,
#          UTF8, C locale; unix socket only), stopped and removed untimed;
#        pg_dump -Fc -f FILE (FILE beside the drill's own backup: same disk, same writes);
#        pg_restore --exit-on-error -j N into a fresh database (createdb -T template0, not
#          timed, like the drill's separate createdb phase) of the bare dump AND of the drill's
#          own archive (restoring both separates archive format from pgdrill's own overhead);
#        COPY each public table TO STDOUT in one psql session, output to /dev/null;
#        the seeding's physical limit: what the seed phase does (roles, CREATE DATABASE, the
#          fixtures schema, then in one transaction: keys and indexes dropped, TRUNCATE, COPY
#          FREEZE of the four tables, keys/indexes/foreign keys re-created from the catalog
#          with maintenance_work_mem 256MB, setval, ANALYZE) with the generator replaced by a
#          server-side `COPY … FROM 'file' (FORMAT binary, FREEZE)` of the same rows, written
#          in id order by `COPY … TO 'file'` in round 1 (untimed), in one psql session;
#        pgbench -i -s S into another database (a reference, no goal), S chosen from a -s 1
#          calibration so that its tables are about as large as the seeded ones.
#   3. The kept server is stopped (and `sync` waits for the disk to be written back, untimed),
#      then examples/server_ready.rs times NativeBackend::provision
#      directly: once cold (initdb of the template, copy, start, first connection) and 5 times
#      warm (a copy of the template, what a drill's later servers cost).
# At the end, once, server_ready with TMPDIR=/dev/shm for contrast when that is a tmpfs.
# Every ratio is of medians; the per-round ratios and each side's min–max are kept too.
# "The sum of the raw tools" a whole drill wraps, per round: initdb+start + the seeding's
# physical limit + pg_dump + pg_restore of the bare dump + COPY TO /dev/null.
#
# Writes benches/results/<UTC time>.json (every run, median, spread, ratio, goal, load average)
# and reports/bench/compare.md (the table, printed too) and reports/bench/compare.json (the
# same JSON). Respects CARGO_TARGET_DIR and PGDRILL_PG_BINDIR. Everything it starts is stopped
# on exit, on INT and on TERM, and its temporary directories are removed.
set -euo pipefail
export LC_ALL=C

rows=1000000
jobs=$(nproc)
repeat=3
check=0
usage() { sed -n '/^# Usage:/,/^#$/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }
value() { [[ $# -ge 2 ]] || { echo "compare.sh: $1 needs a number" >&2; exit 2; }; }
while [[ $# -gt 0 ]]; do
  case $1 in
    --rows) value "$@"; rows=$2; shift 2 ;;
    --jobs) value "$@"; jobs=$2; shift 2 ;;
    --repeat) value "$@"; repeat=$2; shift 2 ;;
    --check) check=1; shift ;;
    -h|--help) usage ;;
    *) echo "compare.sh: unknown argument '$1'" >&2; usage ;;
  esac
done
for v in rows jobs repeat; do
  [[ ${!v} =~ ^[1-9][0-9]{0,9}$ ]] || { echo "compare.sh: --$v must be a positive integer, not '${!v}'" >&2; exit 2; }
done

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
target_dir=${CARGO_TARGET_DIR:-$root/target}
bindir=${PGDRILL_PG_BINDIR:-$(pg_config --bindir)}
for p in psql pg_dump pg_restore createdb dropdb pgbench initdb pg_ctl; do
  [[ -x $bindir/$p ]] || { echo "compare.sh: $bindir/$p not found; install PostgreSQL's server and client programs (and pgbench) or set PGDRILL_PG_BINDIR" >&2; exit 3; }
done
command -v jq >/dev/null || { echo "compare.sh: jq is needed to read report.json; install jq" >&2; exit 3; }

log() { printf '[compare %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/pgdrill-compare-XXXXXX")
# The servers may run as another user (pgdrill runs them as `postgres` when it is root): they
# write the seed files and the raw cluster below $work, so it must be traversable.
chmod 711 "$work"
ready_id="bench$$"
port="" password="" server_pid="" server_dir="" drill_stderr="" pg_user=""
raw_dir=$work/raw

# The drill's stderr names the server it kept: "server kept running: postgresql://postgres:***@
# 127.0.0.1:PORT/postgres (password in PGPASSWORD=…). Stop it with: kill -INT PID; rm -rf DIR".
read_keep_line() {
  local line re='@127\.0\.0\.1:([0-9]+)/.*PGPASSWORD=([^)]*)\)\. Stop it with: kill -INT ([0-9]+); rm -rf (.+)$'
  [[ -n $drill_stderr ]] || return 0
  line=$(grep -m1 'server kept running:' "$drill_stderr" 2>/dev/null || true)
  [[ $line =~ $re ]] || return 0
  port=${BASH_REMATCH[1]}
  password=${BASH_REMATCH[2]}
  server_pid=${BASH_REMATCH[3]}
  server_dir=${BASH_REMATCH[4]}
}

stop_server() {
  [[ -n $server_pid ]] || return 0
  # Only that postmaster: a recycled pid running something else is left alone.
  if [[ $server_pid -gt 0 ]] && grep -qF -- "$server_dir" "/proc/$server_pid/cmdline" 2>/dev/null; then
    kill -INT "$server_pid" 2>/dev/null || true
    local i
    for ((i = 0; i < 300; i++)); do
      kill -0 "$server_pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$server_pid" 2>/dev/null; then
      log "server $server_pid ignored SIGINT for 30 s; SIGKILL"
      kill -KILL "$server_pid" 2>/dev/null || true
      sleep 0.5
    fi
  fi
  if [[ $server_dir == */pgdrill-* && -d $server_dir ]]; then
    rm -rf "$server_dir"
  fi
  server_pid=""
  server_dir=""
}

# Runs a server program as the user the drill's servers run as (initdb refuses root).
as_pg() {
  if [[ -n $pg_user && $pg_user != "$(id -un)" ]]; then
    (cd / && runuser -u "$pg_user" -- "$@")
  else
    "$@"
  fi
}

stop_raw_cluster() {
  if [[ -f $raw_dir/data/postmaster.pid ]]; then
    as_pg "$bindir/pg_ctl" -D "$raw_dir/data" -m "${1:-fast}" -w -s stop >/dev/null 2>&1 || true
  fi
  rm -rf "$raw_dir/data"
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  # A signal during a drill lands here once pgdrill has exited, maybe with a kept server.
  [[ -n $server_pid ]] || read_keep_line
  stop_server
  stop_raw_cluster immediate
  # Left only if server_ready was killed before dropping its backend.
  rm -rf "${TMPDIR:-/tmp}/pgdrill-$ready_id-"* "/dev/shm/pgdrill-$ready_id-"*
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Wall time of a command in ms, into the variable named by $1.
timed() {
  local var=$1
  shift
  local t0=${EPOCHREALTIME/./}
  "$@"
  local t1=${EPOCHREALTIME/./}
  printf -v "$var" '%d' $(((t1 - t0) / 1000))
}
json_array() { printf '%s\n' "$@" | jq -sc .; }
loadavg() { cut -d' ' -f1 /proc/loadavg; }

# ---------------------------------------------------------------------------------------------
log "building (cargo build --release --bins --example server_ready)"
(cd "$root" && cargo build --release --quiet --bins --example server_ready)
pgdrill=$target_dir/release/pgdrill
server_ready=$target_dir/release/examples/server_ready

# Other work on the machine skews both sides of every ratio, unevenly: record it.
load_before=$(loadavg)
if [[ $(awk -v l="$load_before" -v c="$(nproc)" 'BEGIN { print (l > c / 4) }') == 1 ]]; then
  log "warning: load average $load_before on $(nproc) cores before measuring; timings will be noisy"
fi

sql() { "$bindir/psql" -X -q -At -v ON_ERROR_STOP=1 -d "$1" -c "$2"; }
checkpoint() { sql postgres 'CHECKPOINT' >/dev/null; }
table_bytes() {
  sql "$1" "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND c.relname LIKE '$2'"
}
restore() { # $1 archive; the database is created before and dropped after, untimed
  local t
  "$bindir/createdb" -T template0 bench_restore
  checkpoint
  timed t "$bindir/pg_restore" --exit-on-error --no-password -j "$jobs" -d bench_restore "$1"
  "$bindir/dropdb" bench_restore
  restored_ms=$t
}
raw_server() { # initdb + pg_ctl start -w, as pgdrill's native backend initdbs (--no-sync, UTF8, C)
  as_pg "$bindir/initdb" -D "$raw_dir/data" -U postgres -A trust -E UTF8 --locale=C --no-sync --no-instructions >/dev/null
  as_pg "$bindir/pg_ctl" -D "$raw_dir/data" -l "$raw_dir/postgres.log" -w -s \
    -o "-p 5432 -k $raw_dir -c listen_addresses='' -c logging_collector=off" start >/dev/null
}
copy_all() { "$bindir/psql" -X -q -v ON_ERROR_STOP=1 -d pgdrill -f - <<<"$copy_script" >/dev/null; }
seed_limit() { "$bindir/psql" -X -q -v ON_ERROR_STOP=1 -d postgres -f "$work/seed_limit.sql" >/dev/null; }
phase_ms() { jq -e --arg n "$1" '.phases[] | select(.name == $n and .status == "pass") | .duration_ms' "$report"; }
pgbench_init() { "$bindir/pgbench" -i -q -s "$1" bench_pgbench >>"$work/pgbench.log" 2>&1; }

# The seeder's COPY column lists (src/seed/generate.rs, Table::copy_statement), in load order.
seed_tables=(plans users subscriptions payments)
declare -A seed_columns=(
  [plans]="id, code, name, price_cents, currency, vat_rate, billing_interval"
  [users]="id, email, full_name, country, created_at, deleted_at, profile"
  [subscriptions]="id, user_id, plan_id, status, started_at, current_period_end, cancelled_at, metadata, updated_at"
  [payments]="id, subscription_id, amount_cents, currency, status, period_start, paid_at, refunded_at, provider_ref, details"
)

# Writes the seed files and the physical-limit script, from round 1's restored database.
prepare_seed_limit() {
  local t deferred="ARRAY['users', 'subscriptions', 'payments']::regclass[]" drops creates
  install -d -m 700 ${pg_user:+-o "$pg_user"} "$work/seed"
  for t in "${seed_tables[@]}"; do
    sql pgdrill "COPY (SELECT ${seed_columns[$t]} FROM $t ORDER BY id) TO '$work/seed/$t.bin' (FORMAT binary)"
  done
  # As src/seed/load.rs DeferredKeys: foreign keys on or referencing the loaded tables, then
  # primary-key/unique/exclusion constraints, then the indexes that back no constraint;
  # dropped in that order, re-created keys, indexes, foreign keys.
  local fks="SELECT DISTINCT conrelid::regclass::text AS t, conname AS n,
               format('ALTER TABLE %s DROP CONSTRAINT %I', conrelid::regclass, conname) AS d,
               format('ALTER TABLE %s ADD CONSTRAINT %I %s', conrelid::regclass, conname, pg_get_constraintdef(oid)) AS c
             FROM pg_constraint WHERE contype = 'f' AND (conrelid = ANY($deferred) OR confrelid = ANY($deferred))"
  local keys="SELECT conrelid::regclass::text AS t, conname AS n,
               format('ALTER TABLE %s DROP CONSTRAINT %I', conrelid::regclass, conname) AS d,
               format('ALTER TABLE %s ADD CONSTRAINT %I %s', conrelid::regclass, conname, pg_get_constraintdef(oid)) AS c
             FROM pg_constraint WHERE contype IN ('p', 'u', 'x') AND conrelid = ANY($deferred)"
  local idx="SELECT i.indexrelid::regclass::text AS t, '' AS n,
               format('DROP INDEX %s', i.indexrelid::regclass) AS d, pg_get_indexdef(i.indexrelid) AS c
             FROM pg_index i WHERE i.indrelid = ANY($deferred)
               AND NOT EXISTS (SELECT FROM pg_constraint c WHERE c.conrelid = i.indrelid AND c.conindid = i.indexrelid)"
  drops=$(sql pgdrill "SELECT string_agg(d || ';', E'\n' ORDER BY k, t, n) FROM (SELECT 1 AS k, * FROM ($fks) f UNION ALL SELECT 2, * FROM ($keys) p UNION ALL SELECT 3, * FROM ($idx) i) s")
  creates=$(sql pgdrill "SELECT string_agg(c || ';', E'\n' ORDER BY k, t, n) FROM (SELECT 1 AS k, * FROM ($keys) p UNION ALL SELECT 2, * FROM ($idx) i UNION ALL SELECT 3, * FROM ($fks) f) s")
  [[ -n $drops && -n $creates ]] || { echo "compare.sh: found no keys or indexes to defer in the restored database" >&2; exit 1; }
  {
    cat "$root/fixtures/roles.sql"
    echo "CREATE DATABASE bench_seed;"
    echo '\connect bench_seed'
    cat "$root/fixtures/schema.sql"
    echo "BEGIN;"
    echo "$drops"
    echo "TRUNCATE plans, users, subscriptions, payments;"
    for t in "${seed_tables[@]}"; do
      echo "COPY $t (${seed_columns[$t]}) FROM '$work/seed/$t.bin' (FORMAT binary, FREEZE);"
    done
    echo "SET LOCAL maintenance_work_mem = '256MB';"
    echo "$creates"
    for t in users subscriptions payments; do
      echo "SELECT setval(pg_get_serial_sequence('$t', 'id'), coalesce(max(id), 0) + 1, false) FROM $t;"
    done
    echo "ANALYZE plans, users, subscriptions, payments;"
    echo "COMMIT;"
  } >"$work/seed_limit.sql"
  seed_files_bytes=$(cat "$work/seed/"*.bin | wc -c)
}

# ---------------------------------------------------------------------------------------------
drill_wall=() drill_total=() drill_seed=() drill_backup=() drill_provision=() drill_restore_step=()
drill_db_restore=() drill_snapshot=()
raw_server_runs=() dump_runs=() restore_bare_runs=() restore_drill_runs=() copy_runs=()
seed_limit_runs=() pgbench_runs=() ready_cold=() ready_warm=() round_load=()
db_restore_phases="" backup_timings="" server_version="" pgdrill_version="" seed_bytes=""
copy_bytes_sent="" copy_tables="" table_rows="" scale="" scale1_bytes="" pgbench_bytes="" seed_files_bytes=""
drill_dump_bytes="" bare_dump_bytes=""
for ((i = 1; i <= repeat; i++)); do
  round_load+=("$(loadavg)")
  out=$work/drill$i
  drill_stderr=$work/drill$i.stderr
  log "round $i/$repeat: drill --rows $rows --jobs $jobs --disaster drop-db --app none --keep"
  drill_rc=0
  t0=${EPOCHREALTIME/./}
  "$pgdrill" drill --rows "$rows" --jobs "$jobs" --disaster drop-db --app none --keep --out "$out" \
    >"$work/drill$i.stdout" 2>"$drill_stderr" || drill_rc=$?
  t1=${EPOCHREALTIME/./}
  drill_wall+=($(((t1 - t0) / 1000)))

  # The kept server must be stopped whatever the drill's verdict, so read its line first.
  read_keep_line
  if [[ $drill_rc -ne 0 ]]; then
    echo "compare.sh: the drill exited $drill_rc; its output:" >&2
    cat "$work/drill$i.stdout" >&2
    grep -v 'PGPASSWORD=' "$drill_stderr" >&2 || true
    exit 1
  fi
  if [[ -z $server_pid ]]; then
    echo "compare.sh: the drill passed but printed no 'server kept running: …' line; did --keep change its wording (src/env/native.rs keep())?" >&2
    exit 1
  fi
  [[ $server_pid -gt 0 ]] || { echo "compare.sh: the keep line has no server pid" >&2; exit 1; }
  report=$out/report.json
  drill_seed+=("$(phase_ms seed)")
  drill_backup+=("$(phase_ms backup)")
  drill_provision+=("$(phase_ms provision)")
  drill_restore_step+=("$(phase_ms pg_restore)")
  drill_snapshot+=("$(phase_ms snapshot)")
  drill_db_restore+=("$(jq -e '.budgets[] | select(.name == "database_restore") | .used_ms' "$report")")
  drill_total+=("$(jq -e '((.finished_at | sub("\\.[0-9]+"; "") | fromdate) - (.started_at | sub("\\.[0-9]+"; "") | fromdate)) * 1000
      + ((.finished_at | capture("\\.(?<f>[0-9]{3})").f // "0" | tonumber) - (.started_at | capture("\\.(?<f>[0-9]{3})").f // "0" | tonumber))' "$report")")
  db_restore_phases+=$(jq -c '[.phases[] | select(.budget == "database_restore") | {(.name): .duration_ms}] | add' "$report")$'\n'
  drill_dump=$(find "$out/backup" -maxdepth 1 -name 'backup_*.dump' | head -n1)
  [[ -f $drill_dump ]] || { echo "compare.sh: no backup_*.dump in $out/backup" >&2; exit 1; }
  # The backup phase's own breakdown (pg_dump+hash, S0 alongside it, globals), from the manifest.
  backup_timings+=$(jq -c '.timings // null' "${drill_dump%.dump}.manifest.json" 2>/dev/null || echo null)$'\n'
  log "round $i/$repeat: drill passed in ${drill_wall[-1]} ms: seed ${drill_seed[-1]}, backup ${drill_backup[-1]}, pg_restore ${drill_restore_step[-1]}, database_restore ${drill_db_restore[-1]}, snapshot ${drill_snapshot[-1]} ms"

  export PGHOST=127.0.0.1 PGPORT=$port PGUSER=postgres PGPASSWORD=$password
  unset PGDATABASE PGSERVICE PGOPTIONS
  if [[ $i -eq 1 ]]; then
    pg_user=$(stat -c %U "/proc/$server_pid")
    pgdrill_version=$(jq -r '.environment.pgdrill_version' "$report")
    copy_bytes_sent=$(jq -e '.source.generated.bytes_sent' "$report")
    server_version=$(sql postgres 'SHOW server_version')
    seed_bytes=$(table_bytes pgdrill '%')
    copy_script=$(sql pgdrill "SELECT string_agg(format('COPY %I.%I TO STDOUT;', schemaname, tablename), E'\n' ORDER BY tablename) FROM pg_tables WHERE schemaname = 'public'")
    copy_tables=$(sql pgdrill "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
    table_rows=$(sql pgdrill "SELECT json_object_agg(t, n) FROM (SELECT 'plans' AS t, count(*) AS n FROM plans UNION ALL SELECT 'users', count(*) FROM users UNION ALL SELECT 'subscriptions', count(*) FROM subscriptions UNION ALL SELECT 'payments', count(*) FROM payments) c")
    prepare_seed_limit
    "$bindir/createdb" bench_pgbench
    pgbench_init 1
    scale1_bytes=$(table_bytes bench_pgbench 'pgbench%')
    scale=$(awk -v a="$seed_bytes" -v b="$scale1_bytes" 'BEGIN { s = int(a / b + 0.5); print (s < 1) ? 1 : s }')
    "$bindir/dropdb" bench_pgbench
    install -d -m 700 ${pg_user:+-o "$pg_user"} "$raw_dir"
  fi

  # The raw tools, on the same server and the same data.
  timed t raw_server
  raw_server_runs+=("$t")
  stop_raw_cluster fast
  raw_dump=$out/backup/bare.dump
  rm -f "$raw_dump"
  checkpoint
  timed t "$bindir/pg_dump" -Fc --no-password -f "$raw_dump" pgdrill
  dump_runs+=("$t")
  restore "$raw_dump"
  restore_bare_runs+=("$restored_ms")
  restore "$drill_dump"
  restore_drill_runs+=("$restored_ms")
  checkpoint
  timed t copy_all
  copy_runs+=("$t")
  checkpoint
  timed t seed_limit
  seed_limit_runs+=("$t")
  if [[ $i -eq 1 ]]; then # the files hold the drill's rows, all of them
    for t in "${seed_tables[@]}"; do
      [[ $(sql bench_seed "SELECT count(*) FROM $t") == "$(sql pgdrill "SELECT count(*) FROM $t")" ]] ||
        { echo "compare.sh: the load from files has another number of rows in $t than the drill's database" >&2; exit 1; }
    done
  fi
  "$bindir/dropdb" bench_seed
  "$bindir/createdb" bench_pgbench
  checkpoint
  timed t pgbench_init "$scale"
  pgbench_runs+=("$t")
  [[ -n $pgbench_bytes ]] || pgbench_bytes=$(table_bytes bench_pgbench 'pgbench%')
  "$bindir/dropdb" bench_pgbench
  bare_dump_bytes=$(stat -c %s "$raw_dump")
  drill_dump_bytes=$(stat -c %s "$drill_dump")
  log "round $i/$repeat: initdb+start ${raw_server_runs[-1]} ms, pg_dump -Fc ${dump_runs[-1]} ms, pg_restore -j $jobs bare dump ${restore_bare_runs[-1]} ms, drill's dump ${restore_drill_runs[-1]} ms, COPY TO ${copy_runs[-1]} ms, seed from files ${seed_limit_runs[-1]} ms, pgbench -i -s $scale ${pgbench_runs[-1]} ms"

  stop_server
  rm -rf "$out/backup"
  # Untimed, as the CHECKPOINT before each raw tool: start-up is timed on a disk at rest, not
  # while the kernel still writes back the stopped server's shutdown checkpoint and the round's
  # removed files (on this kind of VM that alone made a warm start 5-8 times slower).
  sync

  ready_json=$("$server_ready" 5 "$ready_id")
  ready_cold+=("$(jq -r '.first_ready_ms | round' <<<"$ready_json")")
  mapfile -t -O "${#ready_warm[@]}" ready_warm < <(jq -r '.ready_ms[] | round' <<<"$ready_json")
  log "round $i/$repeat: server ready cold ${ready_cold[-1]} ms, warm $(jq -c '[.ready_ms[] | round]' <<<"$ready_json") ms"
done
unset PGHOST PGPORT PGUSER PGPASSWORD

# Where the temp dirs live matters: on this kind of VM disk creating a file costs about a
# millisecond, and a cluster is about a thousand files. Measured on tmpfs too, for contrast.
ready_shm_json=null
if [[ $(stat -f -c %T /dev/shm 2>/dev/null) == tmpfs ]]; then
  ready_shm_json=$(TMPDIR=/dev/shm "$server_ready" 5 "$ready_id")
fi

# ---------------------------------------------------------------------------------------------
measured_at=$(date -u +%Y-%m-%dT%H:%M:%SZ)
stamp=$(date -u -d "$measured_at" +%Y-%m-%dT%H%MZ)
load_after=$(loadavg)
data=$(jq -n \
  --argjson wall "$(json_array "${drill_wall[@]}")" --argjson total "$(json_array "${drill_total[@]}")" \
  --argjson seed "$(json_array "${drill_seed[@]}")" --argjson backup "$(json_array "${drill_backup[@]}")" \
  --argjson provision "$(json_array "${drill_provision[@]}")" --argjson restore_step "$(json_array "${drill_restore_step[@]}")" \
  --argjson db_restore "$(json_array "${drill_db_restore[@]}")" --argjson snapshot "$(json_array "${drill_snapshot[@]}")" \
  --argjson db_restore_phases "$(jq -sc . <<<"$db_restore_phases")" --argjson backup_timings "$(jq -sc . <<<"$backup_timings")" \
  --argjson raw_server "$(json_array "${raw_server_runs[@]}")" --argjson dump "$(json_array "${dump_runs[@]}")" \
  --argjson restore_bare "$(json_array "${restore_bare_runs[@]}")" --argjson restore_drill "$(json_array "${restore_drill_runs[@]}")" \
  --argjson copy "$(json_array "${copy_runs[@]}")" --argjson seed_limit "$(json_array "${seed_limit_runs[@]}")" \
  --argjson pgbench "$(json_array "${pgbench_runs[@]}")" \
  --argjson cold "$(json_array "${ready_cold[@]}")" --argjson warm "$(json_array "${ready_warm[@]}")" \
  '{drill: {wall_ms: $wall, report_started_to_finished_ms: $total, seed_ms: $seed, backup_ms: $backup,
            provision_ms: $provision, pg_restore_ms: $restore_step, database_restore_ms: $db_restore,
            snapshot_ms: $snapshot, database_restore_phases_ms: $db_restore_phases, backup_timings_ms: $backup_timings},
    raw: {initdb_start_ms: $raw_server, pg_dump_fc_ms: $dump, pg_restore_bare_dump_ms: $restore_bare,
          pg_restore_drill_dump_ms: $restore_drill, copy_to_devnull_ms: $copy, seed_from_files_ms: $seed_limit,
          pgbench_init_ms: $pgbench,
          sum_of_raw_tools_ms: [range(0; $raw_server | length) | $raw_server[.] + $seed_limit[.] + $dump[.] + $restore_bare[.] + $copy[.]]},
    server_ready: {cold_ms: $cold, warm_ms: $warm}}')

results=$(jq -n --argjson d "$data" \
  --argjson seed_bytes "$seed_bytes" --argjson pgbench_bytes "$pgbench_bytes" --argjson jobs "$jobs" \
  --argjson scale "$scale" --argjson copy_tables "$copy_tables" '
  def med: sort | if length == 0 then null elif length % 2 == 1 then .[(length - 1) / 2] else (.[length / 2 - 1] + .[length / 2]) / 2 end;
  def r3: . * 1000 | round / 1000;
  def stats: {runs: ., median: med, min: min, max: max,
              relative_spread: (med as $m | if $m > 0 then ((max - min) / $m | r3) else null end)};
  def goal($op; $v; $text): {op: $op, value: $v, text: $text};
  def met($x; $g): if $g == null then null elif $g.op == "ge" then $x >= $g.value else $x <= $g.value end;
  # ours/raw, or raw/ours (a throughput ratio) when $inverse; times $factor.
  def ratio($o; $r; $inverse; $factor): if $inverse then $factor * $r / $o else $factor * $o / $r end | r3;
  def measure($name; $ours_what; $ours; $raw_what; $raw; $inverse; $factor; $goal):
    ratio($ours | med; $raw | med; $inverse; $factor) as $x
    | [range(0; [($ours | length), ($raw | length)] | min) | ratio($ours[.]; $raw[.]; $inverse; $factor)] as $per
    | {name: $name, pgdrill: ({what: $ours_what} + ($ours | stats)), raw: ({what: $raw_what} + ($raw | stats)),
       ratio: $x, ratio_runs: $per, ratio_min: ($per | min), ratio_max: ($per | max),
       goal: $goal, met: met($x; $goal)};
  def seconds($name; $what; $runs; $limit_s):
    ($runs | med / 1000 | r3) as $x
    | {name: $name, pgdrill: ({what: $what} + ($runs | stats)), raw: null, seconds: $x,
       goal: {op: "le", value: $limit_s, text: "≤ \($limit_s) s"}, met: ($x <= $limit_s)};
  $d | [
    measure("seeding vs its physical limit (COPY FROM files), throughput";
      "seed phase"; .drill.seed_ms;
      "server-side COPY FROM files, binary, FREEZE, keys and indexes after"; .raw.seed_from_files_ms; true; 1; goal("ge"; 0.9; "≥ 0.9×")),
    measure("seeding vs `pgbench -i -s \($scale)`, table bytes/s";
      "seed phase"; .drill.seed_ms; "pgbench -i -s \($scale)"; .raw.pgbench_init_ms; true; $seed_bytes / $pgbench_bytes; null),
    measure("backup phase vs `pg_dump -Fc -f`";
      "backup phase"; .drill.backup_ms; "pg_dump -Fc -f"; .raw.pg_dump_fc_ms; false; 1; goal("le"; 1.05; "≤ 1.05×")),
    measure("drill'"'"'s archive vs bare dump, each `pg_restore -j \($jobs)`";
      "pg_restore -j \($jobs) of the drill'"'"'s archive"; .raw.pg_restore_drill_dump_ms;
      "pg_restore -j \($jobs) of the bare dump"; .raw.pg_restore_bare_dump_ms; false; 1; goal("le"; 1.02; "≤ 1.02×")),
    measure("pg_restore step vs bare `pg_restore -j \($jobs)`";
      "pg_restore step"; .drill.pg_restore_ms; "pg_restore -j \($jobs) of the bare dump"; .raw.pg_restore_bare_dump_ms; false; 1; null),
    measure("database_restore group vs bare `pg_restore -j \($jobs)`";
      "precheck … analyze"; .drill.database_restore_ms; "pg_restore -j \($jobs) of the bare dump"; .raw.pg_restore_bare_dump_ms; false; 1; goal("le"; 1.15; "≤ 1.15×")),
    measure("snapshot vs `COPY … TO /dev/null`, one session";
      "snapshot phase"; .drill.snapshot_ms; "COPY \($copy_tables) tables TO STDOUT > /dev/null"; .raw.copy_to_devnull_ms; false; 1; goal("le"; 1.0; "≤ 1.0×")),
    measure("whole `--app none` drill vs the sum of the raw tools";
      "drill, wall clock"; .drill.wall_ms;
      "initdb+start + COPY FROM load + pg_dump + pg_restore + COPY TO"; .raw.sum_of_raw_tools_ms; false; 1; goal("le"; 1.25; "≤ 1.25×")),
    seconds("server ready, warm (copy of the template)"; "NativeBackend::provision, 5 per round"; .server_ready.warm_ms; 0.15),
    seconds("server ready, cold (initdb, copy, start)"; "NativeBackend::provision, 1 per round"; .server_ready.cold_ms; 0.5)
  ]')

result_json=$(jq -n \
  --arg measured_at "$measured_at" --arg host "$(hostname)" --argjson cores "$(nproc)" \
  --argjson load_before "$load_before" --argjson load_after "$load_after" \
  --argjson round_load "$(json_array "${round_load[@]}")" \
  --arg server_version "$server_version" --arg pgdrill_version "$pgdrill_version" \
  --arg commit "$(git -C "$root" describe --always --dirty 2>/dev/null || echo unknown)" \
  --arg pg_dump_version "$("$bindir/pg_dump" --version)" \
  --argjson rows "$rows" --argjson table_rows "$table_rows" --argjson jobs "$jobs" --argjson repeat "$repeat" \
  --argjson seed_bytes "$seed_bytes" --argjson copy_bytes_sent "$copy_bytes_sent" \
  --argjson seed_files_bytes "$seed_files_bytes" \
  --argjson drill_dump_bytes "$drill_dump_bytes" --argjson bare_dump_bytes "$bare_dump_bytes" \
  --argjson copy_tables "$copy_tables" --argjson scale "$scale" --argjson scale1_bytes "$scale1_bytes" \
  --argjson pgbench_bytes "$pgbench_bytes" \
  --argjson data "$data" --argjson ready_shm "$ready_shm_json" --argjson ratios "$results" \
  '{measured_at: $measured_at, host: $host, cores: $cores,
    loadavg_1min: {before: $load_before, rounds: $round_load, after: $load_after},
    versions: {pgdrill: $pgdrill_version, commit: $commit, server: $server_version, pg_dump: $pg_dump_version},
    rows: $rows, table_rows: $table_rows, jobs: $jobs, repeat: $repeat,
    bytes: {seeded_tables: $seed_bytes, seed_copy_sent: $copy_bytes_sent, seed_files: $seed_files_bytes,
            drill_dump: $drill_dump_bytes, bare_dump: $bare_dump_bytes, pgbench_tables: $pgbench_bytes,
            pgbench_scale1_tables: $scale1_bytes},
    copy_tables: $copy_tables, pgbench_scale: $scale,
    runs: $data, server_ready_tmpfs: $ready_shm,
    ratios: $ratios,
    all_met: ([$ratios[] | select(.met != null) | .met] | all)}')

mkdir -p "$root/benches/results" "$root/reports/bench"
results_file=$root/benches/results/$stamp.json
printf '%s\n' "$result_json" >"$results_file"
printf '%s\n' "$result_json" >"$root/reports/bench/compare.json"

mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }
{
  echo "## pgdrill vs raw PostgreSQL tools"
  echo
  echo "$rows users, -j $jobs, PostgreSQL $server_version, $(nproc) cores, 1-min load average $load_before before, $(IFS=/; echo "${round_load[*]}") at each round's start, $load_after after; $measured_at."
  echo "Each side: median of $repeat interleaved rounds (min–max); ratio of the medians (per-round ratios min–max)."
  echo
  echo "| measure | pgdrill | raw tool | ratio | goal | |"
  echo "|---|---|---|---|---|---|"
  jq -r '
    def side: if . == null then "–" else "\(.median | round) ms (\(.min | round)–\(.max | round))" end;
    .[] | "| \(.name) | \(.pgdrill | side) | \(.raw | side) | "
      + (if .seconds != null then "\(.seconds) s" else "\(.ratio)× (\(.ratio_min)–\(.ratio_max))" end)
      + " | \(if .goal == null then "reference" else .goal.text end) | "
      + (if .met == null then "" elif .met then "✅" else "❌" end) + " |"' <<<"$results"
  echo
  echo "- Seeded tables: $(mib "$seed_bytes") MiB (pg_total_relation_size, on the restored copy); seed files $(mib "$seed_files_bytes") MiB; pgbench tables: $(mib "$pgbench_bytes") MiB at -s $scale."
  echo "- Dumps: the drill's $(mib "$drill_dump_bytes") MiB, the bare one $(mib "$bare_dump_bytes") MiB."
  echo "- Raw sum per round (initdb+start, COPY FROM load, pg_dump, pg_restore, COPY TO): $(jq -r '[.raw.initdb_start_ms, .raw.seed_from_files_ms, .raw.pg_dump_fc_ms, .raw.pg_restore_bare_dump_ms, .raw.copy_to_devnull_ms] | transpose | map(map(tostring) | join("+")) | join(", ")' <<<"$data") ms."
  echo "- database_restore phases (ms, round 1): $(jq -r '.drill.database_restore_phases_ms[0] | to_entries | map("\(.key) \(.value)") | join(", ")' <<<"$data")."
  if [[ $(jq -r '.drill.backup_timings_ms[0]' <<<"$data") != null ]]; then
    echo "- backup phase parts (ms, round 1, from the manifest; S0 runs alongside pg_dump): $(jq -r '.drill.backup_timings_ms[0] | to_entries | map("\(.key) \(.value)") | join(", ")' <<<"$data")."
  fi
  if [[ $ready_shm_json != null ]]; then
    echo "- Server ready with TMPDIR=/dev/shm (tmpfs, not the default; once): cold $(jq -r '.first_ready_ms | round' <<<"$ready_shm_json") ms, warm $(jq -r '[.ready_ms[] | round] | sort | .[length / 2 | floor]' <<<"$ready_shm_json") ms (median of 5)."
  fi
} | tee "$root/reports/bench/compare.md"
log "wrote ${results_file#"$root"/}, reports/bench/compare.md and reports/bench/compare.json"

missed=$(jq -r '[.[] | select(.met == false) | .name] | join("; ")' <<<"$results")
if [[ -n $missed ]]; then
  log "missed: $missed"
  [[ $check -eq 0 ]] || exit 1
fi
exit 0
