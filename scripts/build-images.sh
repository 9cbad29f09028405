#!/usr/bin/env bash
# Builds pgdrill's local Docker images without pulling anything from a registry:
#
#   pgdrill/debian-base:bookworm-local  Debian bookworm minbase + ca-certificates + tini
#   pgdrill/postgres:15-local           minbase + PostgreSQL 15 and pgBackRest, official-image-like entrypoint
#   pgdrill/sample-app:local            the sample-app binary on the base image
#   pgdrill/pgdrill:local               the pgdrill binary on the PostgreSQL image (its client
#                                       and server programs, git, age): drills in a container
#
# Root filesystems come from debootstrap, with the Debian mirror taken from this machine's
# apt sources; they are imported with `docker import`, and a few metadata-only `docker build`
# step (local FROM, never a pull) adds what import cannot set (STOPSIGNAL); the app image is
# a docker create/cp/commit on top of the base image.
# Every image carries the label org.pgdrill.content=<hash of its inputs>; an image whose
# label already matches is not rebuilt, and root filesystems are cached as tarballs.
set -euo pipefail

usage() {
	cat <<'EOF'
Usage: scripts/build-images.sh [--check] [--postgres-only] [--app-bin PATH] [--force]

Builds pgdrill/debian-base:bookworm-local, pgdrill/postgres:15-local,
pgdrill/sample-app:local and pgdrill/pgdrill:local from Debian packages, without pulling
any image (the last from target/release/pgdrill, or $PGDRILL_BIN).
Images whose content tag is current are skipped.

  --check          only report; exit 0 if the images are present and current, 1 if not
  --postgres-only  leave out the sample-app image
  --app-bin PATH   the sample-app binary (default: $SAMPLE_APP_BIN, else
                   target/release/sample-app); missing => app image skipped
  --force          rebuild images (not root filesystems) even when current
  -h, --help       this text

Environment: SAMPLE_APP_BIN, XDG_CACHE_HOME (cache in $XDG_CACHE_HOME/pgdrill),
PGDRILL_DEBIAN_MIRROR (overrides the mirror read from the apt sources),
PGDRILL_BUILD_TMP (scratch dir; default /dev/shm when it has room, since dpkg's fsyncs are
slow on disk).
Exit codes: 0 done/current, 1 --check found stale or missing images, 2 usage error,
3 environment error (no Docker engine, no mirror, not root when debootstrap must run).
EOF
}

SUITE=bookworm
PG_MAJOR=15
BASE_IMAGE=pgdrill/debian-base:bookworm-local
PG_IMAGE=pgdrill/postgres:15-local
APP_IMAGE=pgdrill/sample-app:local
PGDRILL_IMAGE=pgdrill/pgdrill:local
LABEL_KEY=org.pgdrill.content
BASE_PACKAGES=(ca-certificates tini)
# pgbackrest: a point-in-time recovery on the docker backend runs the restored server's
# restore_command (`pgbackrest archive-get`) inside the container.
# git and age: the pgdrill image's full drill (code rollback, encrypted configuration).
PG_PACKAGES=("postgresql-$PG_MAJOR" "postgresql-client-$PG_MAJOR" pgbackrest git age)

SCRIPT_PATH="$(readlink -f "${BASH_SOURCE[0]}")"
SCRIPT_DIR="$(dirname "$SCRIPT_PATH")"
PROJECT_DIR="$(dirname "$SCRIPT_DIR")"
ENTRYPOINT_SRC="$SCRIPT_DIR/postgres-entrypoint.sh"
CACHE_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/pgdrill"

say() { printf 'build-images: %s\n' "$*"; }
die() {
	printf 'build-images: error: %s\n' "$1" >&2
	exit "${2:-3}"
}

check_only=0 postgres_only=0 force=0 app_bin_arg=
while [ $# -gt 0 ]; do
	case "$1" in
		--check) check_only=1 ;;
		--postgres-only) postgres_only=1 ;;
		--force) force=1 ;;
		--app-bin)
			[ $# -ge 2 ] || die "--app-bin needs a path" 2
			app_bin_arg="$2"
			shift
			;;
		--app-bin=*) app_bin_arg="${1#--app-bin=}" ;;
		-h | --help) usage; exit 0 ;;
		*) usage >&2; die "unknown argument: $1" 2 ;;
	esac
	shift
done
APP_BIN="${app_bin_arg:-${SAMPLE_APP_BIN:-$PROJECT_DIR/target/release/sample-app}}"
# The pgdrill binary beside the sample app's (target/release/pgdrill after a release build).
PGDRILL_BIN="${PGDRILL_BIN:-$(dirname "$APP_BIN")/pgdrill}"

WORK=''
APP_BUILD_CTR=''
PARTIAL=''
cleanup() {
	local rc=$?
	if [ -n "$PARTIAL" ]; then
		rm -rf "$PARTIAL"
	fi
	if [ -n "$APP_BUILD_CTR" ]; then
		docker rm -f "$APP_BUILD_CTR" >/dev/null 2>&1 || true
	fi
	if [ -n "$WORK" ] && [ -d "$WORK" ]; then
		# An interrupted debootstrap can leave its /proc and /sys mounts in the tree.
		awk -v w="$WORK/" 'index($2, w) == 1 { print $2 }' /proc/self/mounts | sort -r |
			while read -r m; do umount -l "$m" 2>/dev/null || true; done
		rm -rf --one-file-system "$WORK"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

work_dir() {
	if [ -z "$WORK" ]; then
		local base="${PGDRILL_BUILD_TMP:-}"
		if [ -z "$base" ]; then
			base="${TMPDIR:-/tmp}"
			# tmpfs turns dpkg's thousands of fsyncs into no-ops: about half the debootstrap time.
			if [ -d /dev/shm ] && [ -w /dev/shm ] &&
				[ "$(df -Pk /dev/shm | awk 'NR==2{print $4}')" -gt $((3 * 1024 * 1024)) ]; then
				base=/dev/shm
			fi
		fi
		WORK="$(mktemp -d "$base/pgdrill-images.XXXXXX")"
	fi
}

sha() { sha256sum | cut -c1-16; }

# The first deb source for $SUITE in the machine's apt sources (one-line and deb822 formats).
find_mirror() {
	local f uri
	if [ -n "${PGDRILL_DEBIAN_MIRROR:-}" ]; then
		MIRROR="${PGDRILL_DEBIAN_MIRROR%/}"
		MIRROR_FROM="PGDRILL_DEBIAN_MIRROR"
		return
	fi
	shopt -s nullglob
	local files=(/etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources)
	shopt -u nullglob
	for f in "${files[@]}"; do
		[ -r "$f" ] || continue
		case "$f" in
			*.sources)
				uri="$(grep -v '^[[:space:]]*#' "$f" | awk -v suite="$SUITE" '
					BEGIN { RS = ""; FS = "\n" }
					{
						delete val; key = ""
						for (i = 1; i <= NF; i++) {
							line = $i
							if (line ~ /^[ \t]/) { val[key] = val[key] " " line; continue }
							k = line; sub(/:.*/, "", k); v = line; sub(/^[^:]*:/, "", v)
							key = tolower(k); val[key] = v
						}
						if (val["types"] !~ /(^|[ \t])deb([ \t]|$)/) next
						if (tolower(val["enabled"]) ~ /no/) next
						n = split(val["suites"], s, /[ \t]+/); ok = 0
						for (j = 1; j <= n; j++) if (s[j] == suite) ok = 1
						if (!ok) next
						n = split(val["uris"], u, /[ \t]+/)
						for (j = 1; j <= n; j++) if (u[j] ~ /^(https?|ftp|file):/) { print u[j]; exit }
					}')"
				;;
			*)
				uri="$(awk -v suite="$SUITE" '
					$1 == "deb" {
						i = 2
						if ($2 ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
						if ($(i + 1) == suite && $i ~ /^(https?|ftp|file):/) { print $i; exit }
					}' "$f")"
				;;
		esac
		if [ -n "$uri" ]; then
			MIRROR="${uri%/}"
			MIRROR_FROM="$f"
			return
		fi
	done
	die "no '$SUITE' deb source in /etc/apt/sources.list{,.d/*.list,.d/*.sources}; add one, or set PGDRILL_DEBIAN_MIRROR to a Debian mirror URL"
}

# The label value of an image, empty when it is absent.
image_tag() {
	docker image inspect --format "{{ index .Config.Labels \"$LABEL_KEY\" }}" "$1" 2>/dev/null || true
}

is_current() { [ "$force" = 0 ] && [ "$(image_tag "$1")" = "$2" ]; }

# Docker builds here only add metadata on top of a local image: legacy builder (identical on
# every client, never resolves FROM remotely), no pull, no leftover containers.
docker_build() {
	local ctx="$1" name="$2" log="$WORK/build.log" id
	if ! id="$(DOCKER_BUILDKIT=0 docker build --pull=false --rm --force-rm -q -t "$name" "$ctx" 2>"$log")"; then
		cat "$log" >&2
		die "docker build of $name failed (output above)"
	fi
	printf '%s' "$id"
}

# Removes the images rebuilds replaced: untagged, childless, with our label. Removing an old
# app image also removes the old base image it was the last child of.
remove_replaced() {
	local id
	for id in $(docker images -q --no-trunc --filter dangling=true --filter "label=$LABEL_KEY"); do
		docker image rm "$id" >/dev/null 2>&1 ||
			say "note: replaced image ${id:7:12} is still used by a container; not removed"
	done
}

ensure_debootstrap() {
	command -v debootstrap >/dev/null && return
	say "installing debootstrap with apt-get"
	if ! apt-get install -y -qq debootstrap >/dev/null 2>&1; then
		apt-get update -qq >/dev/null || die "apt-get update failed; install debootstrap by hand"
		apt-get install -y -qq debootstrap >/dev/null || die "could not install debootstrap; install it by hand"
	fi
}

# Deletes what a container never reads: docs (copyright files kept), man pages, message
# catalogues, apt caches and lists; tells dpkg to skip them in derived images too.
strip_rootfs() {
	local r="$1"
	find "$r/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
	find "$r/usr/share/doc" -mindepth 1 -type d -empty -delete
	rm -rf "$r"/usr/share/man/* "$r"/usr/share/info/* "$r"/usr/share/lintian
	find "$r/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
	rm -rf "$r"/var/lib/apt/lists/* "$r"/var/cache/apt/*.bin "$r"/var/cache/apt/archives/*.deb \
		"$r"/var/cache/debconf/*-old "$r"/var/lib/dpkg/*-old "$r"/var/log/* "$r"/tmp/* "$r"/var/tmp/*
	# Docker mounts its own; the host's must not leak into the image.
	rm -f "$r/etc/resolv.conf" "$r/etc/hostname"
	cat >"$r/etc/dpkg/dpkg.cfg.d/pgdrill-excludes" <<-'EOF'
		path-exclude /usr/share/doc/*
		path-include /usr/share/doc/*/copyright
		path-exclude /usr/share/man/*
		path-exclude /usr/share/info/*
		path-exclude /usr/share/locale/*
		path-include /usr/share/locale/locale.alias
	EOF
	cat >"$r/etc/apt/apt.conf.d/pgdrill-clean" <<-'EOF'
		DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/*.bin || true"; };
		Acquire::Languages "none";
		APT::Install-Recommends "false";
	EOF
}

pack_rootfs() {
	tar --numeric-owner --one-file-system -C "$1" --exclude='./dev/*' --exclude='./proc/*' \
		--exclude='./sys/*' -cf "$2.part" . && mv "$2.part" "$2"
}

# debootstrap once, then PostgreSQL on a copy of the same tree (apt's lists are still there),
# so both tarballs come from one package snapshot.
build_rootfs() {
	local out="$1" t0=$SECONDS r log="$WORK/rootfs.log"
	[ "$(id -u)" = 0 ] || die "the root filesystems must be built (debootstrap, chroot): run as root, e.g. with sudo"
	ensure_debootstrap
	work_dir
	PARTIAL="$out.part"
	mkdir -p "$CACHE_DIR/debs" "$PARTIAL"
	r="$WORK/base"
	say "debootstrap $SUITE minbase (+${BASE_PACKAGES[*]}) from the mirror in $MIRROR_FROM, in $(dirname "$WORK") (about 45 s, more on a first download)"
	if ! debootstrap --variant=minbase --include="$(
		IFS=,
		echo "${BASE_PACKAGES[*]}"
	)" --cache-dir="$CACHE_DIR/debs" "$SUITE" "$r" "$MIRROR" >"$log" 2>&1; then
		tail -n 30 "$log" >&2
		die "debootstrap failed (last lines above; full log: $log, kept until exit)"
	fi
	say "  debootstrap done in $((SECONDS - t0)) s"

	t0=$SECONDS
	cp -a "$r" "$WORK/pg"
	local p="$WORK/pg"
	# The official image's uid/gid, so data directories are interchangeable between the two.
	chroot "$p" groupadd -r --gid=999 postgres
	chroot "$p" useradd -r -g postgres --uid=999 --home-dir=/var/lib/postgresql --shell=/bin/bash postgres
	mkdir -p "$p/etc/postgresql-common" "$p/var/lib/postgresql"
	echo 'create_main_cluster = false' >"$p/etc/postgresql-common/createcluster.conf"
	printf '#!/bin/sh\nexit 101\n' >"$p/usr/sbin/policy-rc.d"
	chmod 755 "$p/usr/sbin/policy-rc.d"
	cp -L /etc/resolv.conf "$p/etc/resolv.conf"
	find "$CACHE_DIR/debs" -maxdepth 1 -name '*.deb' -exec cp -n -t "$p/var/cache/apt/archives/" {} +
	say "apt-get install ${PG_PACKAGES[*]} in a copy of it"
	if ! chroot "$p" env DEBIAN_FRONTEND=noninteractive LC_ALL=C apt-get install -y -q \
		--no-install-recommends -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
		"${PG_PACKAGES[@]}" >"$log" 2>&1; then
		tail -n 30 "$log" >&2
		die "apt-get install of PostgreSQL in the chroot failed (last lines above)"
	fi
	find "$p/var/cache/apt/archives" -maxdepth 1 -name '*.deb' -exec cp -n -t "$CACHE_DIR/debs/" {} +
	chroot "$p" chown -R postgres:postgres /var/lib/postgresql
	# The official image's default locale.
	chroot "$p" localedef -i en_US -c -f UTF-8 -A /usr/share/locale/locale.alias en_US.UTF-8
	# shellcheck disable=SC2016 # a dpkg-query format, not a shell expansion
	chroot "$p" dpkg-query -W -f '${Version}' "postgresql-$PG_MAJOR" >"$out.part/postgres.version"
	# JIT only: PostgreSQL runs without it when llvmjit.so is absent (153 MB saved).
	rm -rf "$p/usr/lib/postgresql/$PG_MAJOR/lib/bitcode" "$p/usr/lib/postgresql/$PG_MAJOR/lib/llvmjit"*
	rm -f "$p"/usr/lib/x86_64-linux-gnu/libLLVM-*.so* "$p"/usr/lib/x86_64-linux-gnu/libz3.so*
	# Only localedef reads these; en_US.UTF-8 is compiled already.
	rm -rf "$p/usr/share/i18n/locales" "$p/usr/share/i18n/charmaps"
	rm -f "$p/etc/ssl/private/ssl-cert-snakeoil.key" "$p/etc/ssl/certs/ssl-cert-snakeoil.pem"
	strip_rootfs "$p"
	strip_rootfs "$r"
	pack_rootfs "$r" "$out.part/base.tar"
	pack_rootfs "$p" "$out.part/postgres.tar"
	rm -rf "$r" "$p"
	# Only the newest rootfs pair is worth keeping.
	find "$CACHE_DIR" -mindepth 1 -maxdepth 1 -name 'rootfs-*' ! -name "$(basename "$out")" \
		! -name "$(basename "$out").part" -exec rm -rf {} +
	mv "$out.part" "$out"
	PARTIAL=''
	say "  PostgreSQL installed and both trees packed in $((SECONDS - t0)) s ($(du -sh "$out" | cut -f1) cached in $out)"
}

# Imports a rootfs tarball with the given --change options, as image $2 when it is not
# empty; prints the image id.
import_rootfs() {
	local tarball="$1" name="$2" msg
	shift 2
	if ! msg="$(docker import "$@" "$tarball" ${name:+"$name"} 2>&1)"; then
		die "docker import of $tarball failed: $msg"
	fi
	printf '%s' "${msg##*$'\n'}"
}

build_base_image() {
	local t0=$SECONDS
	import_rootfs "$ROOTFS/base.tar" "$BASE_IMAGE" --change 'ENV LANG=C.UTF-8' \
		--change 'CMD ["bash"]' --change "LABEL $LABEL_KEY=$BASE_TAG" >/dev/null
	say "built $BASE_IMAGE ($LABEL_KEY=$BASE_TAG) in $((SECONDS - t0)) s"
}

build_pg_image() {
	local t0=$SECONDS ctx="$WORK/ctx-pg" tarball="$WORK/postgres.tar" id version
	version="$(cat "$ROOTFS/postgres.version")"
	# The entrypoint joins a copy of the cached tree, so editing it never re-runs debootstrap.
	mkdir -p "$ctx/usr/local/bin"
	install -m 0755 "$ENTRYPOINT_SRC" "$ctx/usr/local/bin/docker-entrypoint.sh"
	cp "$ROOTFS/postgres.tar" "$tarball"
	tar --numeric-owner --owner=0 --group=0 -C "$ctx" -rf "$tarball" ./usr/local/bin/docker-entrypoint.sh
	id="$(import_rootfs "$tarball" "" \
		--change "ENV PATH=/usr/lib/postgresql/$PG_MAJOR/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
		--change "ENV PG_MAJOR=$PG_MAJOR PG_VERSION=$version LANG=en_US.utf8 PGDATA=/var/lib/postgresql/data" \
		--change 'VOLUME /var/lib/postgresql/data' \
		--change 'EXPOSE 5432' \
		--change 'ENTRYPOINT ["docker-entrypoint.sh"]' \
		--change 'CMD ["postgres"]' \
		--change "LABEL $LABEL_KEY=$PG_TAG org.pgdrill.postgres-version=$version")"
	rm -f "$tarball"
	# import --change cannot set STOPSIGNAL, and SIGTERM would be a "smart" shutdown that
	# waits for every client to disconnect: one metadata-only build step adds SIGINT (fast).
	printf 'FROM %s\nSTOPSIGNAL SIGINT\n' "$id" >"$ctx/Dockerfile"
	docker_build "$ctx" "$PG_IMAGE" >/dev/null
	say "built $PG_IMAGE (PostgreSQL $version, $LABEL_KEY=$PG_TAG) in $((SECONDS - t0)) s"
}

# create + cp + commit on top of the base image: one layer, no build steps, no pull.
build_app_image() {
	local t0=$SECONDS ctx="$WORK/ctx-app" out
	mkdir -p "$ctx"
	install -m 0755 "$APP_BIN" "$ctx/sample-app"
	APP_BUILD_CTR="$(docker create --label pgdrill.build=build-images "$BASE_IMAGE")"
	docker cp "$ctx/sample-app" "$APP_BUILD_CTR:/usr/local/bin/sample-app"
	# The app's own LISTEN_ADDR default, 127.0.0.1:0, is unreachable from outside a container.
	# tini (PID 1) forwards docker stop's SIGTERM to the app, which shuts down on it.
	docker commit \
		--change 'ENV LISTEN_ADDR=0.0.0.0:8080' \
		--change 'EXPOSE 8080' \
		--change 'ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/sample-app"]' \
		--change 'CMD []' \
		--change "LABEL $LABEL_KEY=$APP_TAG" \
		--change "LABEL org.pgdrill.sample-app.sha256=$(sha256sum "$ctx/sample-app" | cut -d' ' -f1)" \
		"$APP_BUILD_CTR" "$APP_IMAGE" >/dev/null
	docker rm "$APP_BUILD_CTR" >/dev/null
	APP_BUILD_CTR=
	# A binary linked against a newer glibc, or against a library minbase lacks, fails here
	# rather than in the middle of a drill.
	if ! out="$(docker run --rm --entrypoint ldd "$APP_IMAGE" /usr/local/bin/sample-app 2>&1)" ||
		grep -q 'not found' <<<"$out"; then
		printf '%s\n' "$out" >&2
		docker image rm "$APP_IMAGE" >/dev/null 2>&1 || true
		die "$APP_BIN does not load in $APP_IMAGE (ldd above); build it on a glibc no newer than $SUITE's, without extra shared libraries"
	fi
	say "built $APP_IMAGE ($LABEL_KEY=$APP_TAG) in $((SECONDS - t0)) s"
}

# The pgdrill binary on the PostgreSQL image, as the app image is made: one layer, no pull.
# Labels: the OCI version (pgdrill --version) and revision (the commit it was built from).
build_pgdrill_image() {
	local t0=$SECONDS ctx="$WORK/ctx-pgdrill" version revision ctr out
	mkdir -p "$ctx"
	install -m 0755 "$PGDRILL_BIN" "$ctx/pgdrill"
	version="$("$ctx/pgdrill" --version | awk '{print $2}')"
	revision="$(git -C "$PROJECT_DIR" rev-parse HEAD 2>/dev/null || echo unknown)"
	ctr="$(docker create --label pgdrill.build=build-images "$PG_IMAGE")"
	docker cp "$ctx/pgdrill" "$ctr:/usr/local/bin/pgdrill"
	# tini (PID 1) hands docker stop's SIGTERM to pgdrill, which cancels the drill and cleans up.
	docker commit \
		--change 'ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/pgdrill"]' \
		--change 'CMD ["--help"]' \
		--change 'WORKDIR /var/lib/pgdrill' \
		--change "LABEL $LABEL_KEY=$PGDRILL_TAG" \
		--change "LABEL org.opencontainers.image.title=pgdrill org.opencontainers.image.version=$version org.opencontainers.image.revision=$revision" \
		"$ctr" "$PGDRILL_IMAGE" >/dev/null
	docker rm "$ctr" >/dev/null
	if ! out="$(docker run --rm "$PGDRILL_IMAGE" --version 2>&1)"; then
		printf '%s\n' "$out" >&2
		docker image rm "$PGDRILL_IMAGE" >/dev/null 2>&1 || true
		die "$PGDRILL_BIN does not run in $PGDRILL_IMAGE (above); build it on a glibc no newer than $SUITE's"
	fi
	say "built $PGDRILL_IMAGE ($out, commit ${revision:0:12}, $LABEL_KEY=$PGDRILL_TAG) in $((SECONDS - t0)) s"
}

main() {
	local start=$SECONDS want_app=1 stale=0
	command -v docker >/dev/null || die "the docker CLI is not installed; install Docker to build the images"
	docker info >/dev/null 2>&1 || die "cannot reach the Docker engine (docker info failed); start dockerd or check DOCKER_HOST and permissions"
	[ -r "$ENTRYPOINT_SRC" ] || die "$ENTRYPOINT_SRC is missing; it belongs next to this script"

	find_mirror
	local script_sum entry_sum rootfs_key
	script_sum="$(sha256sum "$SCRIPT_PATH" | cut -d' ' -f1)"
	entry_sum="$(sha256sum "$ENTRYPOINT_SRC" | cut -d' ' -f1)"
	rootfs_key="$(printf 'rootfs\n%s\n%s\n%s\n%s\n%s\n' "$script_sum" "$SUITE" "$MIRROR" \
		"${BASE_PACKAGES[*]}" "${PG_PACKAGES[*]}" | sha)"
	BASE_TAG="$(printf 'base\n%s\n' "$rootfs_key" | sha)"
	PG_TAG="$(printf 'postgres\n%s\n%s\n' "$rootfs_key" "$entry_sum" | sha)"
	ROOTFS="$CACHE_DIR/rootfs-$rootfs_key"

	if [ "$postgres_only" = 1 ]; then
		want_app=0
	elif [ ! -f "$APP_BIN" ]; then
		want_app=0
		say "no sample-app binary at $APP_BIN: app image $([ "$check_only" = 1 ] && echo "cannot be checked" || echo skipped) (build it with 'cargo build --release -p sample-app', or pass --app-bin PATH / SAMPLE_APP_BIN)"
		stale=$check_only
	else
		APP_TAG="$(printf 'app\n%s\n%s\n' "$BASE_TAG" "$(sha256sum "$APP_BIN" | cut -d' ' -f1)" | sha)"
	fi

	local images=("$BASE_IMAGE" "$PG_IMAGE") tags=("$BASE_TAG" "$PG_TAG") i have
	if [ "$want_app" = 1 ]; then
		images+=("$APP_IMAGE")
		tags+=("$APP_TAG")
	fi
	local want_pgdrill=0
	if [ "$postgres_only" = 0 ] && [ -f "$PGDRILL_BIN" ]; then
		want_pgdrill=1
		PGDRILL_TAG="$(printf 'pgdrill\n%s\n%s\n%s\n' "$PG_TAG" "$(sha256sum "$PGDRILL_BIN" | cut -d' ' -f1)" \
			"$(git -C "$PROJECT_DIR" rev-parse HEAD 2>/dev/null || echo unknown)" | sha)"
		images+=("$PGDRILL_IMAGE")
		tags+=("$PGDRILL_TAG")
	elif [ "$postgres_only" = 0 ]; then
		say "no pgdrill binary at $PGDRILL_BIN: pgdrill image skipped (build it with 'cargo build --release', or set PGDRILL_BIN)"
	fi

	if [ "$check_only" = 1 ]; then
		for i in "${!images[@]}"; do
			have="$(image_tag "${images[$i]}")"
			if [ "$have" = "${tags[$i]}" ]; then
				say "${images[$i]}: current"
			elif [ -z "$have" ]; then
				say "${images[$i]}: missing"
				stale=1
			else
				say "${images[$i]}: stale (content $have, want ${tags[$i]})"
				stale=1
			fi
		done
		exit "$stale"
	fi

	local need_base=1 need_pg=1 need_app=$want_app
	if is_current "$BASE_IMAGE" "$BASE_TAG"; then
		need_base=0
		say "$BASE_IMAGE is current; skipped"
	fi
	if is_current "$PG_IMAGE" "$PG_TAG"; then
		need_pg=0
		say "$PG_IMAGE is current; skipped"
	fi
	if [ "$want_app" = 1 ] && [ "$need_base" = 0 ] && is_current "$APP_IMAGE" "$APP_TAG"; then
		need_app=0
		say "$APP_IMAGE is current; skipped"
	fi

	if [ "$need_base" = 1 ] || [ "$need_pg" = 1 ]; then
		work_dir
		if [ -f "$ROOTFS/base.tar" ] && [ -f "$ROOTFS/postgres.tar" ]; then
			say "root filesystems cached in $ROOTFS"
		else
			build_rootfs "$ROOTFS"
		fi
		if [ "$need_base" = 1 ]; then build_base_image; fi
		if [ "$need_pg" = 1 ]; then build_pg_image; fi
	fi
	if [ "$need_app" = 1 ]; then
		work_dir
		build_app_image
	fi
	if [ "$want_pgdrill" = 1 ] && { [ "$need_pg" = 1 ] || ! is_current "$PGDRILL_IMAGE" "$PGDRILL_TAG"; }; then
		work_dir
		build_pgdrill_image
	elif [ "$want_pgdrill" = 1 ]; then
		say "$PGDRILL_IMAGE is current; skipped"
	fi
	remove_replaced
	say "done in $((SECONDS - start)) s"
}

main
