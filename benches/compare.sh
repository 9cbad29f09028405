#!/usr/bin/env bash
# pgdrill against the raw PostgreSQL tools, in one run on one server (DESIGN.md, Performance).
#
# Usage: benches/compare.sh [--rows N] [--jobs N] [--repeat N]
#   --rows    generated users (default 1000000, the 1M-user dataset; smaller for a quick run)
#   --jobs    pg_restore -j for the drill and for the bare pg_restore (default: cores)
#   --repeat  runs of each raw tool, the median is used (default 3)
#
# Method
#   1. One drill, `--disaster drop-db --app none --keep`: the phase durations come from its
#      report.json, and the server it leaves running holds the restored `pgdrill` database
#      (the same rows the drill seeded, dumped, restored and fingerprinted).
#   2. On that same server, the raw tools on the same data, in --repeat rounds of one run of
#      each (so that a change in the machine's load spreads over all of them), every run after
#      a CHECKPOINT (so no run inherits another's dirty buffers; the drill's phases get no such
#      help, which if anything favours the raw tools):
#        pg_dump -Fc -f FILE  (FILE beside the drill's own backup: same disk, same writes);
#        pg_restore --exit-on-error -j N into a fresh database (createdb -T template0, not
#          timed, like the drill's separate createdb phase), of the bare dump AND of the
#          drill's own archive (pgdrill streams pg_dump's stdout, so its archive has no data
#          offsets; restoring both separates archive format from pgdrill's own overhead);
#        COPY each public table TO STDOUT in one psql session, output to /dev/null;
#        pgbench -i -s S into another database, S chosen from a -s 1 calibration so that its
#          tables are about as large as the seeded ones.
#      Table bytes are sum(pg_total_relation_size) of the tables (heap, TOAST, indexes). For
#      pgdrill they are measured on the restored copy, whose indexes were built by sort and may
#      be a little smaller than the seeded ones: if anything this understates seeding speed.
#   3. Native server ready: examples/server_ready.rs times NativeBackend::provision directly,
#      once cold (initdb of the template, copy, start, first connection) and 5 times warm (a
#      copy of the template, what a drill's later servers cost), after the kept server is
#      stopped; and again with TMPDIR=/dev/shm for contrast when that is a tmpfs.
#   4. Ratios with their goals; numbers are printed as measured.
#
# Writes reports/bench/compare.md (the table) and reports/bench/compare.json (raw numbers).
# Respects CARGO_TARGET_DIR and PGDRILL_PG_BINDIR. Everything it starts is stopped on exit.
set -euo pipefail
export LC_ALL=C

rows=1000000
jobs=$(nproc)
repeat=3
usage() { sed -n '4,7p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
while [[ $# -gt 0 ]]; do
  case $1 in
    --rows) rows=${2:?--rows needs a number}; shift 2 ;;
    --jobs) jobs=${2:?--jobs needs a number}; shift 2 ;;
    --repeat) repeat=${2:?--repeat needs a number}; shift 2 ;;
    -h|--help) usage ;;
    *) echo "compare.sh: unknown argument '$1'" >&2; usage ;;
  esac
done
for v in rows jobs repeat; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || { echo "compare.sh: --$v must be a positive integer" >&2; exit 2; }
done

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
target_dir=${CARGO_TARGET_DIR:-$root/target}
bindir=${PGDRILL_PG_BINDIR:-$(pg_config --bindir)}
for p in psql pg_dump pg_restore createdb dropdb pgbench; do
  [[ -x $bindir/$p ]] || { echo "compare.sh: $bindir/$p not found; install PostgreSQL's client programs (and pgbench) or set PGDRILL_PG_BINDIR" >&2; exit 3; }
done
command -v jq >/dev/null || { echo "compare.sh: jq is needed to read report.json; install jq" >&2; exit 3; }

log() { printf '[compare %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/pgdrill-compare-XXXXXX")
ready_id="bench$$"
port="" password="" server_pid="" server_dir=""

# The drill's stderr names the server it kept: "server kept running: postgresql://postgres:***@
# 127.0.0.1:PORT/postgres (password in PGPASSWORD=…). Stop it with: kill -INT PID; rm -rf DIR".
read_keep_line() {
  local line re='@127\.0\.0\.1:([0-9]+)/.*PGPASSWORD=([^)]*)\)\. Stop it with: kill -INT ([0-9]+); rm -rf (.+)$'
  line=$(grep -m1 'server kept running:' "$work/drill.stderr" 2>/dev/null || true)
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

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  # A signal during the drill lands here once pgdrill has exited, maybe with a kept server.
  [[ -n $server_pid ]] || read_keep_line
  stop_server
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

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
json_array() { printf '%s\n' "$@" | jq -sc .; }
calc() { awk "BEGIN { printf \"%.${2:-3}f\", $1 }"; }

# ---------------------------------------------------------------------------------------------
log "building (cargo build --release --bins --example server_ready)"
(cd "$root" && cargo build --release --quiet --bins --example server_ready)
pgdrill=$target_dir/release/pgdrill
server_ready=$target_dir/release/examples/server_ready

# Other work on the machine skews both sides of every ratio, unevenly: record it.
load_before=$(cut -d' ' -f1 /proc/loadavg)
if [[ $(awk -v l="$load_before" -v c="$(nproc)" 'BEGIN { print (l > c / 4) }') == 1 ]]; then
  log "warning: load average $load_before on $(nproc) cores before measuring; timings will be noisy"
fi

# ---------------------------------------------------------------------------------------------
out=$work/drill
log "drill: --rows $rows --jobs $jobs --disaster drop-db --app none --keep"
drill_rc=0
"$pgdrill" drill --rows "$rows" --jobs "$jobs" --disaster drop-db --app none --keep --out "$out" \
  >"$work/drill.stdout" 2>"$work/drill.stderr" || drill_rc=$?

# The kept server must be stopped whatever the drill's verdict, so read its line first.
read_keep_line
if [[ $drill_rc -ne 0 ]]; then
  echo "compare.sh: the drill exited $drill_rc; its output:" >&2
  cat "$work/drill.stdout" >&2
  grep -v 'PGPASSWORD=' "$work/drill.stderr" >&2 || true
  exit 1
fi
if [[ -z $server_pid ]]; then
  echo "compare.sh: the drill passed but printed no 'server kept running: …' line; did --keep change its wording (src/env/native.rs keep())?" >&2
  exit 1
fi
[[ $server_pid -gt 0 ]] || { echo "compare.sh: the keep line has no server pid" >&2; exit 1; }
report=$out/report.json
phase_ms() { jq -e --arg n "$1" '.phases[] | select(.name == $n and .status == "pass") | .duration_ms' "$report"; }
seed_ms=$(phase_ms seed)
backup_ms=$(phase_ms backup)
provision_ms=$(phase_ms provision)
restore_step_ms=$(phase_ms pg_restore)
snapshot_ms=$(phase_ms snapshot)
db_restore_ms=$(jq -e '.budgets[] | select(.name == "database_restore") | .used_ms' "$report")
db_restore_phases=$(jq -c '[.phases[] | select(.budget == "database_restore") | {(.name): .duration_ms}] | add' "$report")
copy_bytes_sent=$(jq -e '.source.generated.bytes_sent' "$report")
drill_dump=$(find "$out/backup" -maxdepth 1 -name 'backup_*.dump' | head -n1)
[[ -f $drill_dump ]] || { echo "compare.sh: no backup_*.dump in $out/backup" >&2; exit 1; }
# The backup phase's own breakdown (pg_dump+hash, S0 alongside it, globals), from the manifest.
backup_timings=$(jq -c '.timings // null' "${drill_dump%.dump}.manifest.json" 2>/dev/null || echo null)
log "drill passed: seed ${seed_ms} ms, backup ${backup_ms} ms, pg_restore ${restore_step_ms} ms, database_restore ${db_restore_ms} ms, snapshot ${snapshot_ms} ms"

export PGHOST=127.0.0.1 PGPORT=$port PGUSER=postgres PGPASSWORD=$password
unset PGDATABASE PGSERVICE PGOPTIONS
sql() { "$bindir/psql" -X -q -At -v ON_ERROR_STOP=1 -d "$1" -c "$2"; }
checkpoint() { sql postgres 'CHECKPOINT' >/dev/null; }
table_bytes() {
  sql "$1" "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND c.relname LIKE '$2'"
}
server_version=$(sql postgres 'SHOW server_version')
seed_bytes=$(table_bytes pgdrill '%')

# ---------------------------------------------------------------------------------------------
raw_dump=$out/backup/bare.dump
restore() { # $1 archive; the database is created before and dropped after, untimed
  local t
  "$bindir/createdb" -T template0 bench_restore
  checkpoint
  timed t "$bindir/pg_restore" --exit-on-error --no-password -j "$jobs" -d bench_restore "$1"
  "$bindir/dropdb" bench_restore
  restored_ms=$t
}
copy_script=$(sql pgdrill "SELECT string_agg(format('COPY %I.%I TO STDOUT;', schemaname, tablename), E'\n' ORDER BY tablename) FROM pg_tables WHERE schemaname = 'public'")
copy_tables=$(sql pgdrill "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
copy_all() { "$bindir/psql" -X -q -v ON_ERROR_STOP=1 -d pgdrill -f - <<<"$copy_script" >/dev/null; }
"$bindir/createdb" bench_pgbench
pgbench_init() { "$bindir/pgbench" -i -q -s "$1" bench_pgbench >>"$work/pgbench.log" 2>&1; }
pgbench_init 1
scale1_bytes=$(table_bytes bench_pgbench 'pgbench%')
scale=$(awk -v a="$seed_bytes" -v b="$scale1_bytes" 'BEGIN { s = int(a / b + 0.5); print (s < 1) ? 1 : s }')

# Rounds rather than one tool after the other, so that a change in the machine's load
# during the run spreads over every tool instead of landing on one of them.
dump_runs=() restore_bare_runs=() restore_drill_runs=() copy_runs=() pgbench_runs=()
for ((i = 1; i <= repeat; i++)); do
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
  timed t pgbench_init "$scale"
  pgbench_runs+=("$t")
  log "round $i/$repeat: pg_dump -Fc ${dump_runs[-1]} ms, pg_restore -j $jobs bare dump ${restore_bare_runs[-1]} ms, drill's dump ${restore_drill_runs[-1]} ms, COPY ${copy_runs[-1]} ms, pgbench -i -s $scale ${pgbench_runs[-1]} ms"
done
pgbench_bytes=$(table_bytes bench_pgbench 'pgbench%')
"$bindir/dropdb" bench_pgbench
bare_dump_bytes=$(stat -c %s "$raw_dump")
drill_dump_bytes=$(stat -c %s "$drill_dump")

log "stopping the kept server"
stop_server

# ---------------------------------------------------------------------------------------------
log "server ready: 1 cold + 5 warm provisions"
ready_json=$("$server_ready" 5 "$ready_id")
first_ready_ms=$(jq -r '.first_ready_ms | floor' <<<"$ready_json")
# Where the temp dirs live matters: on this kind of VM disk creating a file costs about a
# millisecond, and a cluster is about a thousand files. Measured on tmpfs too, for contrast.
ready_shm_json=null
if [[ $(stat -f -c %T /dev/shm 2>/dev/null) == tmpfs ]]; then
  ready_shm_json=$(TMPDIR=/dev/shm "$server_ready" 5 "$ready_id")
fi
mapfile -t warm_runs < <(jq -r '.ready_ms[] | floor' <<<"$ready_json")
warm_ready_ms=$(median "${warm_runs[@]}")

# ---------------------------------------------------------------------------------------------
dump_ms=$(median "${dump_runs[@]}")
restore_bare_ms=$(median "${restore_bare_runs[@]}")
restore_drill_ms=$(median "${restore_drill_runs[@]}")
copy_ms=$(median "${copy_runs[@]}")
pgbench_ms=$(median "${pgbench_runs[@]}")
seed_bps=$(calc "$seed_bytes / ($seed_ms / 1000)" 0)
pgbench_bps=$(calc "$pgbench_bytes / ($pgbench_ms / 1000)" 0)

ratios='[]'
# name, pgdrill, raw, ratio, goal text, comparison (le/ge/lt), goal value
add_ratio() {
  local met
  met=$(awk -v r="$4" -v g="$7" -v op="$6" 'BEGIN { m = (op == "ge") ? r >= g : (op == "le") ? r <= g : r < g; print m ? "true" : "false" }')
  ratios=$(jq -c --arg name "$1" --arg ours "$2" --arg raw "$3" --argjson ratio "$4" --arg goal "$5" --argjson met "$met" \
    '. + [{name: $name, pgdrill: $ours, raw: $raw, ratio: $ratio, goal: $goal, met: $met}]' <<<"$ratios")
}
mib() { calc "$1 / 1048576" 1; }
add_ratio "seeding, table bytes/s" "$(mib "$seed_bps") MiB/s" "$(mib "$pgbench_bps") MiB/s (pgbench -i -s $scale)" \
  "$(calc "$seed_bps / $pgbench_bps")" "≥ 1.0" ge 1.0
add_ratio "backup phase" "$backup_ms ms" "$dump_ms ms (pg_dump -Fc -f)" "$(calc "$backup_ms / $dump_ms")" "≤ 1.1" le 1.1
add_ratio "pg_restore step" "$restore_step_ms ms" "$restore_bare_ms ms (pg_restore -j $jobs of the bare dump)" \
  "$(calc "$restore_step_ms / $restore_bare_ms")" "≤ 1.05" le 1.05
add_ratio "pg_restore step, same archive" "$restore_step_ms ms" "$restore_drill_ms ms (pg_restore -j $jobs of the drill's dump)" \
  "$(calc "$restore_step_ms / $restore_drill_ms")" "≤ 1.05" le 1.05
add_ratio "database_restore group (precheck…analyze)" "$db_restore_ms ms" "$restore_bare_ms ms (pg_restore -j $jobs of the bare dump)" \
  "$(calc "$db_restore_ms / $restore_bare_ms")" "≤ 1.05" le 1.05
add_ratio "snapshot phase (fingerprint)" "$snapshot_ms ms" "$copy_ms ms (COPY $copy_tables tables TO STDOUT > /dev/null)" \
  "$(calc "$snapshot_ms / $copy_ms")" "≤ 1.2" le 1.2
add_ratio "native server ready, copy of template (median of 5)" "$warm_ready_ms ms" "–" "$(calc "$warm_ready_ms / 1000")" "< 1.5 s" lt 1.5
add_ratio "native server ready, cold (initdb, copy, start)" "$first_ready_ms ms" "–" "$(calc "$first_ready_ms / 1000")" "< 1.5 s" lt 1.5

pgdrill_version=$(jq -r '.environment.pgdrill_version' "$report")
measured_at=$(date -u +%Y-%m-%dT%H:%M:%SZ)
load_after=$(cut -d' ' -f1 /proc/loadavg)
mkdir -p "$root/reports/bench"
jq -n \
  --arg measured_at "$measured_at" --arg host "$(hostname)" --argjson cores "$(nproc)" \
  --argjson load_before "$load_before" --argjson load_after "$load_after" \
  --arg server_version "$server_version" --arg pgdrill_version "$pgdrill_version" \
  --argjson rows "$rows" --argjson jobs "$jobs" --argjson repeat "$repeat" \
  --argjson seed_ms "$seed_ms" --argjson backup_ms "$backup_ms" --argjson provision_ms "$provision_ms" \
  --argjson restore_step_ms "$restore_step_ms" --argjson db_restore_ms "$db_restore_ms" \
  --argjson db_restore_phases "$db_restore_phases" --argjson backup_timings "$backup_timings" --argjson snapshot_ms "$snapshot_ms" \
  --argjson seed_bytes "$seed_bytes" --argjson copy_bytes_sent "$copy_bytes_sent" \
  --argjson drill_dump_bytes "$drill_dump_bytes" --argjson bare_dump_bytes "$bare_dump_bytes" \
  --argjson dump "$(json_array "${dump_runs[@]}")" \
  --argjson restore_bare "$(json_array "${restore_bare_runs[@]}")" \
  --argjson restore_drill "$(json_array "${restore_drill_runs[@]}")" \
  --argjson copy "$(json_array "${copy_runs[@]}")" --argjson copy_tables "$copy_tables" \
  --argjson scale "$scale" --argjson scale1_bytes "$scale1_bytes" \
  --argjson pgbench "$(json_array "${pgbench_runs[@]}")" --argjson pgbench_bytes "$pgbench_bytes" \
  --argjson ready "$ready_json" --argjson ready_shm "$ready_shm_json" --argjson ratios "$ratios" \
  '{measured_at: $measured_at, host: $host, cores: $cores, server_version: $server_version,
    loadavg_1min: {before: $load_before, after: $load_after},
    pgdrill_version: $pgdrill_version, rows: $rows, jobs: $jobs, repeat: $repeat,
    drill: {phases_ms: {provision: $provision_ms, seed: $seed_ms, backup: $backup_ms,
              pg_restore: $restore_step_ms, snapshot: $snapshot_ms},
            backup_timings_ms: $backup_timings, database_restore_ms: $db_restore_ms, database_restore_phases_ms: $db_restore_phases,
            seed_table_bytes: $seed_bytes, seed_copy_bytes_sent: $copy_bytes_sent,
            dump_bytes: $drill_dump_bytes},
    raw: {pg_dump_fc_ms: $dump, bare_dump_bytes: $bare_dump_bytes,
          pg_restore_bare_dump_ms: $restore_bare, pg_restore_drill_dump_ms: $restore_drill,
          copy_to_devnull_ms: $copy, copy_tables: $copy_tables,
          pgbench_scale: $scale, pgbench_scale1_table_bytes: $scale1_bytes,
          pgbench_init_ms: $pgbench, pgbench_table_bytes: $pgbench_bytes},
    server_ready: $ready, server_ready_tmpfs: $ready_shm,
    ratios: $ratios}' >"$root/reports/bench/compare.json"

{
  echo "## pgdrill vs raw PostgreSQL tools"
  echo
  echo "$rows users, -j $jobs, PostgreSQL $server_version, $(nproc) cores (1-min load $load_before before, $load_after after), $measured_at; raw timings: median of $repeat."
  echo
  echo "| measure | pgdrill | raw tool | ratio | goal | met |"
  echo "|---|---|---|---|---|---|"
  jq -r '.[] | "| \(.name) | \(.pgdrill) | \(.raw) | \(.ratio) | \(.goal) | \(if .met then "yes" else "**no**" end) |"' <<<"$ratios"
  echo
  echo "Seeded tables: $(mib "$seed_bytes") MiB (pg_total_relation_size) in $seed_ms ms; pgbench tables: $(mib "$pgbench_bytes") MiB."
  if [[ $backup_timings != null ]]; then
    echo "backup phase parts (ms, from the manifest; S0 runs alongside pg_dump): $(jq -r 'to_entries | map("\(.key) \(.value)") | join(", ")' <<<"$backup_timings")."
  fi
  echo "database_restore phases (ms): $(jq -r 'to_entries | map("\(.key) \(.value)") | join(", ")' <<<"$db_restore_phases")."
  echo "Native ratios are seconds (no raw tool). The drill's own provision phase took $provision_ms ms."
  if [[ $ready_shm_json != null ]]; then
    echo "Same with TMPDIR=/dev/shm (tmpfs, not the default): cold $(jq -r '.first_ready_ms | floor' <<<"$ready_shm_json") ms, copy of template $(jq -r '[.ready_ms[] | floor] | sort | .[length / 2 | floor]' <<<"$ready_shm_json") ms (median of 5)."
  fi
} | tee "$root/reports/bench/compare.md"
log "wrote reports/bench/compare.md and reports/bench/compare.json"
