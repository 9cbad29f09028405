#!/usr/bin/env bash
# End-to-end check of the images scripts/build-images.sh makes: the official-image contract
# of pgdrill/postgres:15-local (env vars, auth, initdb.d, restart, fast stop), the client
# tools inside it, and the sample-app image's stop behaviour. Talks to the servers through
# the host's psql and a port published on 127.0.0.1 only. Every container carries
# pgdrill.drill=images-selftest and is removed, with its volumes, on exit.
#
# Usage: scripts/test-images.sh [--postgres-only]      (exit 0 all passed, 1 a check failed,
#                                                       3 environment: no Docker/psql/image)
set -euo pipefail

PG_IMAGE=pgdrill/postgres:15-local
APP_IMAGE=pgdrill/sample-app:local
LABEL=pgdrill.drill=images-selftest
postgres_only=0
[ "${1:-}" = --postgres-only ] && postgres_only=1

say() { printf 'test-images: %s\n' "$*"; }
die() {
	printf 'test-images: error: %s\n' "$1" >&2
	exit 3
}
failures=0
ok() { say "ok   $*"; }
fail() {
	say "FAIL $*"
	failures=$((failures + 1))
}
check() { # check DESCRIPTION COMMAND...
	local what="$1"
	shift
	if "$@"; then ok "$what"; else fail "$what"; fi
}

CONTAINERS=()
a="" b="" c="" e="" f=""
TMP=''
cleanup() {
	local rc=$?
	if [ ${#CONTAINERS[@]} -gt 0 ]; then
		docker rm -f -v "${CONTAINERS[@]}" >/dev/null 2>&1 || true
	fi
	[ -n "$TMP" ] && rm -rf "$TMP"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

command -v psql >/dev/null || die "psql is needed on the host (Debian: postgresql-client)"
docker info >/dev/null 2>&1 || die "cannot reach the Docker engine"
docker image inspect "$PG_IMAGE" >/dev/null 2>&1 || die "$PG_IMAGE is missing; run scripts/build-images.sh"
TMP="$(mktemp -d)"

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }

# start VAR docker-run-args... : starts a detached container into $VAR, remembered for cleanup.
start() {
	local var="$1" id
	shift
	id="$(docker run -d --label "$LABEL" "$@")"
	CONTAINERS+=("$id")
	printf -v "$var" '%s' "$id"
}
port_of() { docker port "$1" 5432/tcp | head -n1 | sed 's/.*://'; }

# Readiness is a real query, never the log line (the official image logs it twice).
wait_ready() { # wait_ready CTR USER DB PASSWORD
	local port
	port="$(port_of "$1")"
	for _ in $(seq 1 600); do
		if PGPASSWORD="$4" PGCONNECT_TIMEOUT=2 psql -h 127.0.0.1 -p "$port" -U "$2" -d "$3" \
			-XAtc 'select 1' >/dev/null 2>&1; then
			return 0
		fi
		[ "$(docker inspect -f '{{.State.Running}}' "$1")" = true ] || return 1
		sleep 0.05
	done
	return 1
}
q() { # q CTR USER DB PASSWORD SQL
	PGPASSWORD="$4" psql -h 127.0.0.1 -p "$(port_of "$1")" -U "$2" -d "$3" -XAtq -v ON_ERROR_STOP=1 -c "$5"
}
ready_lines() { docker logs "$1" 2>&1 | grep -c 'database system is ready to accept connections' || true; }

say "A: defaults (POSTGRES_PASSWORD only)"
t0="$(now)"
start a --rm -e POSTGRES_PASSWORD=x -p 127.0.0.1::5432 "$PG_IMAGE"
if wait_ready "$a" postgres postgres x; then
	ok "ready (a real query answered) after $(elapsed "$t0") s"
else
	docker logs "$a" 2>&1 | tail -n 20
	die "the default container never answered a query"
fi
check "citext, pgcrypto, amcheck extensions" \
	q "$a" postgres postgres x 'CREATE EXTENSION citext; CREATE EXTENSION pgcrypto; CREATE EXTENSION amcheck'
say "     $(q "$a" postgres postgres x 'select version()')"
check "listen_addresses = '*' and UTF8" test "$(q "$a" postgres postgres x "select current_setting('listen_addresses') || ' ' || pg_encoding_to_char(encoding) from pg_database where datname = 'postgres'")" = "* UTF8"
check "a wrong password is refused" \
	bash -c "! PGPASSWORD=wrong psql -h 127.0.0.1 -p $(port_of "$a") -U postgres -d postgres -XAtc 'select 1' >/dev/null 2>&1"
for tool in pg_dump pg_restore pg_amcheck psql; do
	if v="$(docker exec "$a" "$tool" --version 2>&1)"; then ok "docker exec $tool --version: $v"; else fail "docker exec $tool --version: $v"; fi
done
check "pg_dump inside the container over the trusted socket" \
	bash -c "docker exec $a pg_dump -U postgres -d postgres --schema-only | grep -q 'CREATE EXTENSION IF NOT EXISTS citext'"
check "pg_amcheck --all inside the container" docker exec "$a" pg_amcheck -U postgres -d postgres
check "the readiness line logged once" test "$(ready_lines "$a")" = 1

# A client holding a connection: SIGTERM would wait for it (smart), STOPSIGNAL SIGINT does not.
PGPASSWORD=x psql -h 127.0.0.1 -p "$(port_of "$a")" -U postgres -d postgres -XAtqc 'select pg_sleep(120)' >/dev/null 2>&1 &
sleeper=$!
sleep 0.5
t0="$(now)"
docker stop "$a" >/dev/null
stop_s="$(elapsed "$t0")"
wait "$sleeper" 2>/dev/null || true
check "docker stop with a client connected took $stop_s s (< 3)" awk -v s="$stop_s" 'BEGIN { exit !(s < 3) }'

say "B: POSTGRES_USER/POSTGRES_DB/POSTGRES_INITDB_ARGS and server arguments"
t0="$(now)"
start b -e POSTGRES_PASSWORD='p w"q' -e POSTGRES_USER=drill -e POSTGRES_DB='drill db' \
	-e POSTGRES_INITDB_ARGS='--locale=C -E UTF8 --no-sync' -p 127.0.0.1::5432 "$PG_IMAGE" -c fsync=off
if wait_ready "$b" drill 'drill db' 'p w"q'; then
	ok "ready after $(elapsed "$t0") s (--no-sync, fsync=off)"
	check "user drill owns database 'drill db', collation C, fsync off" \
		test "$(q "$b" drill 'drill db' 'p w"q' "select current_user || '|' || datcollate || '|' || current_setting('fsync') from pg_database where datname = current_database()")" = "drill|C|off"
else
	docker logs "$b" 2>&1 | tail -n 20
	fail "custom user/db container never answered"
fi
docker stop "$b" >/dev/null
docker start "$b" >/dev/null
if wait_ready "$b" drill 'drill db' 'p w"q'; then
	check "restart keeps the cluster and skips initialisation" \
		bash -c "docker logs $b 2>&1 | grep -q 'already holds a cluster; initialisation skipped'"
else
	fail "the restarted container never answered"
fi

say "C: POSTGRES_HOST_AUTH_METHOD=trust without a password"
start c -e POSTGRES_HOST_AUTH_METHOD=trust -p 127.0.0.1::5432 "$PG_IMAGE"
if wait_ready "$c" postgres postgres ''; then ok "connects without a password"; else fail "trust container never answered"; fi

say "D: no password, no trust"
set +e
d_out="$(docker run --rm --label "$LABEL" "$PG_IMAGE" 2>&1)"
d_rc=$?
set -e
check "exits with $d_rc (not 0)" test "$d_rc" -ne 0
check "the message names POSTGRES_PASSWORD" grep -q POSTGRES_PASSWORD <<<"$d_out"

say "E: /docker-entrypoint-initdb.d"
mkdir -p "$TMP/initdb.d"
echo 'CREATE TABLE seeded (id int); INSERT INTO seeded VALUES (42);' >"$TMP/initdb.d/01-seed.sql"
printf '#!/bin/sh\npsql -v ON_ERROR_STOP=1 -c "INSERT INTO seeded VALUES (43)"\n' >"$TMP/initdb.d/02-more.sh"
chmod -R a+rX "$TMP"
chmod +x "$TMP/initdb.d/02-more.sh"
start e -e POSTGRES_PASSWORD=x -e POSTGRES_DB=app -v "$TMP/initdb.d:/docker-entrypoint-initdb.d:ro" -p 127.0.0.1::5432 "$PG_IMAGE"
if wait_ready "$e" postgres app x; then
	check ".sql and .sh scripts ran in POSTGRES_DB" test "$(q "$e" postgres app x 'select sum(id) from seeded')" = 85
	check "two readiness lines, as in the official image" test "$(ready_lines "$e")" = 2
else
	docker logs "$e" 2>&1 | tail -n 20
	fail "initdb.d container never answered"
fi

if [ "$postgres_only" = 0 ]; then
	say "F: $APP_IMAGE"
	if docker image inspect "$APP_IMAGE" >/dev/null 2>&1; then
		start f "$APP_IMAGE"
		sleep 1
		docker logs "$f" 2>&1 | head -n 3 | sed 's/^/     /'
		t0="$(now)"
		docker stop "$f" >/dev/null
		stop_s="$(elapsed "$t0")"
		check "docker stop of the app took $stop_s s (< 3; tini forwards SIGTERM)" awk -v s="$stop_s" 'BEGIN { exit !(s < 3) }'
	else
		say "skip $APP_IMAGE is not built"
	fi
fi

docker rm -f -v "${CONTAINERS[@]}" >/dev/null 2>&1 || true
CONTAINERS=()
a="" b="" c="" e="" f=""
sleep 0.5
check "no container or network with $LABEL left" \
	test -z "$(docker ps -aq --filter "label=$LABEL")$(docker network ls -q --filter "label=$LABEL")"

if [ "$failures" -gt 0 ]; then
	say "$failures check(s) failed"
	exit 1
fi
say "all checks passed"
