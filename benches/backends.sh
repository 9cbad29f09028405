#!/usr/bin/env bash
# The native backend against the docker backend: same data, same run (issue 4's benchmark).
#
# Usage: benches/backends.sh [--rows N] [--runs N] [--app sample|none]
#   --rows  generated users (default 20000)
#   --runs  drills per backend, alternating native and docker (default 3)
#   --app   the application under drill (default sample: a process on native, a container
#           on docker)
#
# Method: --runs rounds of one `pgdrill drill --backend native` and one `--backend docker`
# (server loss, same --rows, --seed 42), alternating so that a change in the machine's load
# spreads over both. Every figure but the last comes from the drill's own report.json:
#   first server ready   the provision phase (native: initdb of the template + copy + start;
#                        docker: create + start + a stable answer to a query)
#   server loss          the disaster phase: destroy the source, a new empty server ready
#   backup, restore      the backup phase; the database_restore budget (stop_app … analyze)
#   app restart          the app_restart budget (start_app + app_healthy)
#   RTO clock            the total budget's use: database_restore + app_restart + verification
#   full drill           wall clock of the whole pgdrill process, provision to clean-up
# The ratio column is docker / native of the means.
#
# Writes reports/bench/backends.md and reports/bench/backends.json. Needs jq, a Docker engine
# and the images (scripts/setup.sh builds them), and a release build.
set -euo pipefail
export LC_ALL=C

rows=20000
runs=3
app=sample
usage() { sed -n '4,8p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
while [[ $# -gt 0 ]]; do
  case $1 in
    --rows) rows=${2:?--rows needs a number}; shift 2 ;;
    --runs) runs=${2:?--runs needs a number}; shift 2 ;;
    --app) app=${2:?--app needs sample or none}; shift 2 ;;
    -h|--help) usage ;;
    *) echo "backends.sh: unknown argument '$1'" >&2; usage ;;
  esac
done
for v in rows runs; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || { echo "backends.sh: --$v must be a positive integer" >&2; exit 2; }
done
[[ $app == sample || $app == none ]] || { echo "backends.sh: --app must be sample or none" >&2; exit 2; }

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
target_dir=${CARGO_TARGET_DIR:-$root/target}
pgdrill=$target_dir/release/pgdrill
command -v jq >/dev/null || { echo "backends.sh: jq is needed to read report.json; install jq" >&2; exit 3; }
[[ -x $pgdrill ]] || { echo "backends.sh: $pgdrill not found; run scripts/setup.sh (or cargo build --release --bins)" >&2; exit 3; }
docker info >/dev/null 2>&1 || { echo "backends.sh: no Docker engine answers (docker info failed); start Docker" >&2; exit 3; }

work=$(mktemp -d "${TMPDIR:-/tmp}/pgdrill-bench-backends.XXXXXX")
trap 'rm -rf "$work"' EXIT

# One drill; prints its report's figures as one JSON object.
drill() {
  local backend=$1 n=$2 out="$work/$1-$2" rc=0 t0 t1
  t0=$(date +%s%N)
  "$pgdrill" drill --backend "$backend" --rows "$rows" --seed 42 --app "$app" --out "$out" \
    >"$out.log" 2>&1 || rc=$?
  t1=$(date +%s%N)
  if [[ $rc -ne 0 ]]; then
    echo "backends.sh: the $backend drill failed (exit $rc):" >&2
    tail -20 "$out.log" >&2
    exit 1
  fi
  jq -c --arg backend "$backend" --argjson wall $(((t1 - t0) / 1000000)) '
    def phase(n): [.phases[] | select(.name == n) | .duration_ms] | add // 0;
    def budget(n): [.budgets[] | select(.name == n) | .used_ms] | add // 0;
    { backend: $backend,
      first_ready_ms: phase("provision"),
      server_loss_ms: phase("disaster"),
      backup_ms: phase("backup"),
      restore_ms: budget("database_restore"),
      app_restart_ms: budget("app_restart"),
      rto_ms: budget("total"),
      wall_ms: $wall }' "$out/report.json"
}

results=()
for ((i = 1; i <= runs; i++)); do
  for backend in native docker; do
    echo "backends.sh: round $i/$runs, $backend" >&2
    results+=("$(drill "$backend" "$i")")
  done
done

json=$(printf '%s\n' "${results[@]}" | jq -sc --argjson rows "$rows" --arg app "$app" \
  --arg when "$(date -u +%Y-%m-%dT%H:%M:%SZ)" --arg cores "$(nproc)" \
  --arg load "$(cut -d' ' -f1 /proc/loadavg)" '
  def mean(k): (map(.[k]) | add / length);
  { when: $when, rows: $rows, app: $app, cores: ($cores | tonumber), load_after: $load,
    runs: ., native: (map(select(.backend == "native"))), docker: (map(select(.backend == "docker"))) }
  | .means = ({ native: (.native | {first_ready_ms: mean("first_ready_ms"), server_loss_ms: mean("server_loss_ms"),
                                    backup_ms: mean("backup_ms"), restore_ms: mean("restore_ms"),
                                    app_restart_ms: mean("app_restart_ms"), rto_ms: mean("rto_ms"), wall_ms: mean("wall_ms")}),
                docker: (.docker | {first_ready_ms: mean("first_ready_ms"), server_loss_ms: mean("server_loss_ms"),
                                    backup_ms: mean("backup_ms"), restore_ms: mean("restore_ms"),
                                    app_restart_ms: mean("app_restart_ms"), rto_ms: mean("rto_ms"), wall_ms: mean("wall_ms")}) })')

mkdir -p "$root/reports/bench"
echo "$json" | jq . >"$root/reports/bench/backends.json"
{
  echo "native vs docker: $rows users, --app $app, server loss, $runs alternating runs each, $(nproc) cores, $(jq -r .when <<<"$json") (1-min load after: $(jq -r .load_after <<<"$json"))"
  echo
  echo "| | native (mean) | docker (mean) | docker / native |"
  echo "|---|---|---|---|"
  for k in first_ready_ms:"first server ready (provision)" server_loss_ms:"server loss: destroy + new server ready" \
    backup_ms:"backup" restore_ms:"database_restore (stop_app … analyze)" app_restart_ms:"app restart (start_app + app_healthy)" \
    rto_ms:"RTO clock (restore + app restart + verification)" wall_ms:"full drill, wall clock (provision to clean-up)"; do
    key=${k%%:*} label=${k#*:}
    jq -r --arg k "$key" --arg name "$label" '
      .means.native[$k] as $n | .means.docker[$k] as $d
      | "| \($name) | \($n / 1000 * 100 | round / 100) s | \($d / 1000 * 100 | round / 100) s | \(if $n > 0 then ($d / $n * 100 | round / 100 | tostring) + "×" else "–" end) |"' <<<"$json"
  done
} | tee "$root/reports/bench/backends.md"
