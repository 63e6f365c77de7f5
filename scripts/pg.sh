#!/usr/bin/env bash
# PostgreSQL for the scale-out store tests.  Usage: bash scripts/pg.sh install
# Installs Debian's PostgreSQL server when no server binaries are found. The tests start and stop
# their own throw-away cluster (tests/pgserver.py); nothing here runs a server.
set -euo pipefail

find_bindir() {
  for d in /usr/lib/postgresql/*/bin; do
    [ -x "$d/initdb" ] && [ -x "$d/postgres" ] && { echo "$d"; return 0; }
  done
  command -v initdb >/dev/null 2>&1 && command -v postgres >/dev/null 2>&1 && {
    dirname "$(command -v initdb)"; return 0; }
  return 1
}

case "${1:-install}" in
  install)
    if bindir=$(find_bindir); then
      echo "PostgreSQL server found in $bindir"
      exit 0
    fi
    if [ "$(id -u)" != 0 ]; then
      echo "error: no PostgreSQL server; install Debian's 'postgresql' package (needs root)" >&2
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
