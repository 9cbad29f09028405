#!/usr/bin/env bash
# The backup regime's costs (a benchmark, not a test).
#
# Usage: benches/regime.sh [--rows N] [--dumps N] [--repeat N]
#   --rows    rows of the benchmark table (default 200000; about 14 MB of dump per 100000)
#   --dumps   dumps in the synthetic repo (default 672: 7 days every 15 minutes)
#   --repeat  rounds of the backup comparison, medians used (default 3)
#
# Method
#   1. A throwaway cluster (initdb as postgres, trust on 127.0.0.1, a free port) with one table.
#   2. In --repeat rounds: bare `pg_dump -Fc -f FILE` and `pgdrill backup --repo DIR` of the
#      same database on the same disk, alternating so load changes hit both. pgdrill's backup
#      also takes S0 in the dump's snapshot, the globals, the manifest and the audit event.
#   3. A synthetic repo: one small real dump (1000 rows) copied --dumps times with manifests
#      every 15 minutes up to T (yesterday), plus a config backup. `pgdrill verify --at T`
#      (first run: every file hashed, the newest read through pg_restore), then 96 more dumps
#      (a day, up to now) and `pgdrill verify` (next day: only the new files and the newest
#      dump are read).
# Binary: $PGDRILL_BIN, default target/debug/pgdrill. Everything is removed on exit.
set -euo pipefail
export LC_ALL=C
rows=200000 dumps=672 repeat=3
while [ $# -gt 0 ]; do
  case "$1" in
    --rows) rows=$2; shift 2 ;;
    --dumps) dumps=$2; shift 2 ;;
    --repeat) repeat=$2; shift 2 ;;
    *) echo "unknown flag $1" >&2; exit 2 ;;
  esac
done
bin=$(realpath "${PGDRILL_BIN:-target/debug/pgdrill}")
bindir=${PGDRILL_PG_BINDIR:-$(pg_config --bindir)}
work=$(mktemp -d /tmp/pgdrill-bench-regime-XXXXXX)
chown postgres "$work"
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
cleanup() {
  as_pg "$bindir/pg_ctl" -D "$work/data" stop -m fast >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
as_pg "$bindir/initdb" -D "$work/data" -A trust -U postgres >/dev/null
as_pg "$bindir/pg_ctl" -D "$work/data" -l "$work/log" -w \
  -o "-p $port -k $work -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null
psql() { "$bindir/psql" -X -q -h 127.0.0.1 -p "$port" -U postgres "$@"; }
psql -c "CREATE DATABASE bench" -c "CREATE DATABASE small"
psql -d bench -c "CREATE TABLE t (id int PRIMARY KEY, v text, n numeric);
  INSERT INTO t SELECT g, md5(g::text) || ' ' || repeat('x', g % 50), g * 1.5 FROM generate_series(1, $rows) g;"
psql -d small -c "CREATE TABLE t (id int PRIMARY KEY, v text);
  INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 1000) g;"
dsn="host=127.0.0.1 port=$port user=postgres dbname=bench"
ms() { date +%s%3N; }
bare=() ours=()
for i in $(seq "$repeat"); do
  t=$(ms); "$bindir/pg_dump" -Fc -h 127.0.0.1 -p "$port" -U postgres -f "$work/bare.dump" bench; bare+=($(( $(ms) - t )))
  rm -rf "$work/repo"
  t=$(ms); "$bin" backup --source-dsn "$dsn" --repo "$work/repo" >/dev/null; ours+=($(( $(ms) - t )))
done
median() { printf '%s\n' "$@" | sort -n | sed -n "$(( ($# + 1) / 2 ))p"; }
mb=$(median "${bare[@]}") mo=$(median "${ours[@]}")
size=$(stat -c %s "$work/bare.dump")

# The synthetic repo.
"$bin" backup --source-dsn "host=127.0.0.1 port=$port user=postgres dbname=small" --repo "$work/one" >/dev/null
cat >"$work/synth.py" <<'PY'
import json, os, shutil, sys, datetime as dt
src, repo, n, end = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
dump = sorted(f for f in os.listdir(src) if f.endswith(".dump"))[0]
stem = os.path.join(src, dump[:-5])
m = json.load(open(stem + ".manifest.json"))
end = dt.datetime.strptime(end, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc)
os.makedirs(os.path.join(repo, "database"), exist_ok=True)
os.makedirs(os.path.join(repo, "config"), exist_ok=True)
for i in range(n):
    t = end - dt.timedelta(minutes=15 * i)
    name = t.strftime("backup_%Y%m%d_%H%M%S")
    base = os.path.join(repo, "database", name)
    if os.path.exists(base + ".dump"):
        continue
    shutil.copyfile(stem + ".dump", base + ".dump")
    shutil.copyfile(stem + ".globals.sql", base + ".globals.sql")
    m["file"] = name + ".dump"
    m["created_at"] = t.strftime("%Y-%m-%dT%H:%M:%SZ")
    json.dump(m, open(base + ".manifest.json", "w"))
import hashlib
body = b"age-encryption.org/v1 bench"
c = end.strftime("config_%Y%m%d_%H%M%S")
open(os.path.join(repo, "config", c + ".tar.age"), "wb").write(body)
json.dump({"manifest_version": 1, "file": c + ".tar.age", "size_bytes": len(body),
           "sha256": hashlib.sha256(body).hexdigest(), "created_at": end.strftime("%Y-%m-%dT%H:%M:%SZ"),
           "kind": "scheduled", "reason": None, "encrypted": True},
          open(os.path.join(repo, "config", c + ".manifest.json"), "w"))
PY
# Real times: verify records its verifications in the audit log at the wall clock, and a
# verification recorded after `--at` had not happened as of then. So the first day ends
# yesterday (evaluated as of then) and the next day ends now (evaluated now).
today=$(date -u -d "@$(( $(date +%s) / 900 * 900 ))" +%FT%TZ)
yesterday=$(date -u -d "$today - 1 day" +%FT%TZ)
python3 "$work/synth.py" "$work/one/database" "$work/syn" "$dumps" "$yesterday"
t=$(ms); "$bin" verify --repo "$work/syn" --at "$yesterday" --window 7d --json >"$work/v1.json" || true; v1=$(( $(ms) - t ))
python3 "$work/synth.py" "$work/one/database" "$work/syn" 96 "$today"
t=$(ms); "$bin" verify --repo "$work/syn" --window 7d --json >"$work/v2.json" || true; v2=$(( $(ms) - t ))
read1=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["files_read"], d["files_skipped"], len(d["findings"]))' "$work/v1.json")
read2=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["files_read"], d["files_skipped"], len(d["findings"]))' "$work/v2.json")
cat <<OUT
regime benchmark, $(date -u +%FT%TZ), $(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg), $("$bindir/postgres" --version)
| measure | pgdrill | bare | ratio | goal |
|---|---|---|---|---|
| backup of $rows rows ($size bytes of dump), median of $repeat | $mo ms | $mb ms (pg_dump -Fc -f) | $(python3 -c "print(f'{$mo/$mb:.3f}')") | ≤ 1.1 |
| verify, $dumps dumps, first run (files read, skipped, findings: $read1) | $v1 ms | | | |
| verify, next day with 96 more (files read, skipped, findings: $read2) | $v2 ms | | | |
OUT
