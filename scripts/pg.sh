#!/usr/bin/env bash
# PostgreSQL for the scale-out store tests.
#   bash scripts/pg.sh install   install Debian's PostgreSQL server if no server binaries are found
#   bash scripts/pg.sh bindir    print the directory holding initdb + postgres (exit 1 if none)
# The tests start and stop their own throw-away cluster (tests/pgserver.py); nothing here runs a
# server. Where the binaries are looked for, in order:
#   $EDGETRUST_PG_BINDIR                       (explicit override)
#   $EDGETRUST_PG_LIBDIR/<version>/bin         (default /usr/lib/postgresql: Debian/Ubuntu; newest
#                                               version first)
#   /usr/pgsql-<version>/bin                   (RHEL/Fedora PGDG packages; newest first)
#   initdb and postgres on PATH                (Homebrew, Arch, source builds)
set -euo pipefail

has_server() { [ -x "$1/initdb" ] && [ -x "$1/postgres" ]; }

find_bindir() {
  if [ -n "${EDGETRUST_PG_BINDIR:-}" ]; then
    has_server "$EDGETRUST_PG_BINDIR" && { echo "$EDGETRUST_PG_BINDIR"; return 0; }
    echo "error: EDGETRUST_PG_BINDIR=$EDGETRUST_PG_BINDIR has no initdb/postgres" >&2
    return 1
  fi
  local libdir=${EDGETRUST_PG_LIBDIR:-/usr/lib/postgresql} d
  local candidates=()
  if [ -d "$libdir" ]; then
    while IFS= read -r d; do candidates+=("$libdir/$d/bin"); done \
      < <(ls -1 "$libdir" 2>/dev/null | sort -rV)
  fi
  if [ -z "${EDGETRUST_PG_LIBDIR:-}" ]; then
    for d in $(ls -1d /usr/pgsql-* 2>/dev/null | sort -rV); do candidates+=("$d/bin"); done
  fi
  for d in "${candidates[@]}"; do
    has_server "$d" && { echo "$d"; return 0; }
  done
  if [ -z "${EDGETRUST_PG_LIBDIR:-}" ] && command -v initdb >/dev/null 2>&1 \
     && command -v postgres >/dev/null 2>&1; then
    dirname "$(command -v initdb)"
    return 0
  fi
  return 1
}

case "${1:-install}" in
  install)
    if bindir=$(find_bindir); then
      echo "PostgreSQL server found in $bindir"
      exit 0
    fi
    if [ "$(id -u)" != 0 ]; then
      echo "error: no PostgreSQL server; install Debian's 'postgresql' package (needs root)," \
           "or set EDGETRUST_PG_BINDIR, or EDGETRUST_TEST_PG_URL for an existing server" >&2
      exit 2
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
      echo "error: no PostgreSQL server and no apt-get; install a PostgreSQL server (initdb," \
           "postgres) with this system's package manager, or set EDGETRUST_PG_BINDIR" >&2
      exit 2
    fi
    echo "installing PostgreSQL server (Debian package postgresql)..."
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends postgresql >/dev/null
    # Debian starts a cluster on install where it can; the tests use their own, so stop it.
    service postgresql stop >/dev/null 2>&1 || true
    bindir=$(find_bindir)
    echo "PostgreSQL server installed in $bindir"
    ;;
  bindir)
    find_bindir
    ;;
  *)
    echo "usage: $0 install|bindir" >&2
    exit 2
    ;;
esac
