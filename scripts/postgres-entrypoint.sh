#!/bin/bash
# Entrypoint of pgdrill/postgres:15-local (built by scripts/build-images.sh).
#
# It follows the official `postgres` image's contract so that the same client code works
# with both images: POSTGRES_PASSWORD (required unless POSTGRES_HOST_AUTH_METHOD=trust),
# POSTGRES_USER (postgres), POSTGRES_DB (= user), PGDATA (/var/lib/postgresql/data),
# POSTGRES_INITDB_ARGS, POSTGRES_INITDB_WALDIR, POSTGRES_HOST_AUTH_METHOD (scram-sha-256),
# the *_FILE variants of the first three, and /docker-entrypoint-initdb.d/.
#
# One difference on purpose: the official image always starts a temporary server during
# initialisation and so logs "ready to accept connections" twice. Here the database is
# created in single-user mode, so the server starts once, unless initdb.d holds scripts
# (they need a running server, exactly as in the official image). Clients must wait for a
# real query either way, never for the log line.
set -Eeo pipefail

# Reads VAR or VAR_FILE (Docker secrets), never both, as the official image does.
file_env() {
	local var="$1" def="${2:-}"
	local file_var="${var}_FILE"
	if [ -n "${!var:-}" ] && [ -n "${!file_var:-}" ]; then
		echo >&2 "error: both $var and $file_var are set; set only one of them"
		exit 1
	fi
	local val="$def"
	if [ -n "${!var:-}" ]; then
		val="${!var}"
	elif [ -n "${!file_var:-}" ]; then
		val="$(<"${!file_var}")"
	fi
	export "$var"="$val"
	unset "$file_var"
}

# `docker run IMAGE -c fsync=off` means `postgres -c fsync=off`, as in the official image.
if [ "${1:0:1}" = '-' ]; then
	set -- postgres "$@"
fi

want_help() {
	local arg
	for arg; do
		case "$arg" in
			-'?' | --help | --describe-config | -V | --version) return 0 ;;
		esac
	done
	return 1
}

if [ "$1" != 'postgres' ] || want_help "$@"; then
	exec "$@"
fi

file_env POSTGRES_PASSWORD
file_env POSTGRES_USER postgres
file_env POSTGRES_DB "$POSTGRES_USER"
file_env POSTGRES_INITDB_ARGS
: "${POSTGRES_HOST_AUTH_METHOD:=scram-sha-256}"
: "${PGDATA:=/var/lib/postgresql/data}"
export PGDATA POSTGRES_HOST_AUTH_METHOD

if [ "$(id -u)" = 0 ]; then
	# Volumes arrive root-owned; the server refuses a data directory it does not own.
	mkdir -p "$PGDATA" /var/run/postgresql
	chmod 00700 "$PGDATA" || :
	chmod 03775 /var/run/postgresql || :
	if [ -n "${POSTGRES_INITDB_WALDIR:-}" ]; then
		mkdir -p "$POSTGRES_INITDB_WALDIR"
		find "$POSTGRES_INITDB_WALDIR" \! -user postgres -exec chown postgres:postgres '{}' +
		chmod 00700 "$POSTGRES_INITDB_WALDIR" || :
	fi
	find "$PGDATA" /var/run/postgresql \! -user postgres -exec chown postgres:postgres '{}' +
	# Re-run this script as postgres; setpriv execs, so the server ends up as PID 1 and gets
	# docker stop's signal directly (STOPSIGNAL SIGINT = fast shutdown).
	export HOME=/var/lib/postgresql
	exec setpriv --reuid=postgres --regid=postgres --init-groups "${BASH_SOURCE[0]}" "$@"
fi

if [ ! -s "$PGDATA/PG_VERSION" ]; then
	if [ -z "$POSTGRES_PASSWORD" ] && [ "$POSTGRES_HOST_AUTH_METHOD" != 'trust' ]; then
		cat >&2 <<-'EOM'
			error: the database is uninitialised and POSTGRES_PASSWORD is not set.
			       Set POSTGRES_PASSWORD (e.g. -e POSTGRES_PASSWORD=secret), or allow
			       connections without a password with -e POSTGRES_HOST_AUTH_METHOD=trust.
		EOM
		exit 1
	fi

	# Like the official image: local socket and loopback trusted (only reachable from inside
	# the container, e.g. `docker exec … pg_dump`), every other host by the chosen method.
	initdb_args=(--username="$POSTGRES_USER" --auth-local=trust --auth-host=trust)
	if [ -n "${POSTGRES_INITDB_WALDIR:-}" ]; then
		initdb_args+=(--waldir="$POSTGRES_INITDB_WALDIR")
	fi
	# The password goes through a pipe, never a file or the command line; the process
	# substitution must sit on initdb's own command line to stay open while it runs.
	# shellcheck disable=SC2086 # POSTGRES_INITDB_ARGS is a word list, as in the official image
	if [ -n "$POSTGRES_PASSWORD" ]; then
		initdb "${initdb_args[@]}" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") $POSTGRES_INITDB_ARGS
	else
		initdb "${initdb_args[@]}" $POSTGRES_INITDB_ARGS
	fi

	{
		echo
		echo "# added by the pgdrill entrypoint"
		echo "listen_addresses = '*'"
	} >>"$PGDATA/postgresql.conf"
	{
		echo
		if [ "$POSTGRES_HOST_AUTH_METHOD" = 'trust' ]; then
			echo "# warning: trust is enabled for all connections (POSTGRES_HOST_AUTH_METHOD=trust)"
		fi
		echo "host all all all $POSTGRES_HOST_AUTH_METHOD"
	} >>"$PGDATA/pg_hba.conf"

	if [ "$POSTGRES_DB" != 'postgres' ]; then
		# Single-user mode: creates the database without a network-visible server start.
		quoted_db="\"${POSTGRES_DB//\"/\"\"}\""
		if ! out="$(printf 'CREATE DATABASE %s\n' "$quoted_db" |
			postgres --single -D "$PGDATA" postgres 2>&1)" ||
			grep -qE '(ERROR|FATAL|PANIC):' <<<"$out"; then
			printf '%s\n' "$out" >&2
			echo >&2 "error: could not create database $quoted_db (POSTGRES_DB)"
			exit 1
		fi
		echo "entrypoint: created database $quoted_db"
	fi

	shopt -s nullglob
	init_files=(/docker-entrypoint-initdb.d/*)
	shopt -u nullglob
	if [ ${#init_files[@]} -gt 0 ]; then
		# A temporary socket-only server, as in the official image; its "ready" line is
		# followed by a second one from the final start.
		pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start
		export PGUSER="$POSTGRES_USER" PGDATABASE="$POSTGRES_DB" PGPASSWORD="${POSTGRES_PASSWORD:-}"
		psql_run=(psql -v ON_ERROR_STOP=1 --no-password --no-psqlrc)
		for f in "${init_files[@]}"; do
			case "$f" in
				*.sh)
					if [ -x "$f" ]; then
						echo "entrypoint: running $f"
						"$f"
					else
						echo "entrypoint: sourcing $f"
						# shellcheck disable=SC1090
						. "$f"
					fi
					;;
				*.sql) echo "entrypoint: running $f"; "${psql_run[@]}" -f "$f" ;;
				*.sql.gz) echo "entrypoint: running $f"; gunzip -c "$f" | "${psql_run[@]}" ;;
				*) echo "entrypoint: ignoring $f" ;;
			esac
		done
		unset PGPASSWORD
		pg_ctl -D "$PGDATA" -m fast -w stop
	fi
	echo "entrypoint: initialisation complete; starting the server"
else
	echo "entrypoint: $PGDATA already holds a cluster; initialisation skipped"
fi

exec "$@"
