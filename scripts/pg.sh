#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the tests: on a Unix socket in a temporary directory, no
# TCP, trust authentication, removed on stop. Installs PostgreSQL where it is missing.
#
#   eval "$(scripts/pg.sh start)"   # prints export FLEETWIRE_TEST_PG=… FLEETWIRE_PG_DIR=…
#   scripts/pg.sh stop              # stops the cluster in $FLEETWIRE_PG_DIR and removes it
#
# FLEETWIRE_TEST_PG is a libpq-style connection string ("host=/tmp/… port=… user=postgres");
# every test creates its own database in the cluster.
set -euo pipefail

bindir() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
  if [ -z "$d" ] || [ ! -x "$d/initdb" ]; then
    echo "installing postgresql (apt)" >&2
    export DEBIAN_FRONTEND=noninteractive
    (apt-get update -qq && apt-get install -y -qq postgresql) >&2
    d=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  fi
  echo "$d"
}

# Runs a PostgreSQL program as the cluster's owner (postgres refuses to run as root).
as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

start() {
  local bin dir port
  bin=$(bindir)
  dir=$(mktemp -d /tmp/fleetwire-pg.XXXXXX)
  chmod 0755 "$dir"
  [ "$(id -u)" = 0 ] && chown postgres: "$dir"
  port=${FLEETWIRE_PG_PORT:-$((50000 + RANDOM % 10000))}
  as_owner "$bin/initdb" -D "$dir/db" -A trust -U postgres --no-sync >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; exit 1; }
  cat >>"$dir/db/postgresql.conf" <<EOF
listen_addresses = ''
unix_socket_directories = '$dir'
port = $port
max_connections = 300
fsync = on
shared_buffers = 128MB
EOF
  as_owner "$bin/pg_ctl" -D "$dir/db" -l "$dir/log" -w -t 60 start >&2
  echo "export FLEETWIRE_TEST_PG='host=$dir port=$port user=postgres'"
  echo "export FLEETWIRE_PG_DIR='$dir'"
  echo "export FLEETWIRE_PG_BIN='$bin'"
}

stop() {
  local dir=${FLEETWIRE_PG_DIR:?FLEETWIRE_PG_DIR is not set}
  local bin
  bin=$(bindir)
  if [ -d "$dir/db" ]; then
    as_owner "$bin/pg_ctl" -D "$dir/db" -m fast -w stop >&2 || true
  fi
  rm -rf "$dir"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
