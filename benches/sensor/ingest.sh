#!/usr/bin/env bash
# Sensor ingest with N simulated loggers (fleetwire-sensor-sim over TLS on loopback), on the
# embedded SQLite store and on PostgreSQL, side by side in one run. For each backend: a fresh
# store, `logger add --count N`, `serve`, the simulator until its backlog is drained, then the
# CPU seconds the server (and, for PostgreSQL, every process of the cluster) spent, per 1,000
# readings stored. docs/BENCHMARKS.md records the results.
#
#   export CARGO_TARGET_DIR=…; cargo build --release -p fleetwire-server -p fleetwire-sensor-sim
#   eval "$(scripts/pg.sh start)"          # the PostgreSQL half needs a cluster
#   benches/sensor/ingest.sh               # LOGGERS=1000 DAYS=7 DURATION=40 by default
set -euo pipefail
B=${B:-${CARGO_TARGET_DIR:?set CARGO_TARGET_DIR (or B, the directory of the release binaries)}/release}
LOGGERS=${LOGGERS:-1000}
DAYS=${DAYS:-7}
DURATION=${DURATION:-40}
PORT=${PORT:-$((20000 + RANDOM % 20000))}
: "${FLEETWIRE_TEST_PG:?the PostgreSQL half needs a cluster: eval \"\$(scripts/pg.sh start)\"}"
TCK=$(getconf CLK_TCK)

# utime + stime, in clock ticks, of the given processes.
ticks() {
  local t=0 p
  for p in "$@"; do
    [ -r "/proc/$p/stat" ] && t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat")))
  done
  echo "$t"
}

# The PostgreSQL cluster's processes: the postmaster and its children.
pg_pids() {
  local pm
  pm=$(head -1 "$FLEETWIRE_PG_DIR/db/postmaster.pid")
  echo "$pm" $(cat "/proc/$pm/task/$pm/children" 2>/dev/null)
}

run() {
  local backend=$1 dir db url pid fp before_s before_pg after_s after_pg stored out
  dir=$(mktemp -d /tmp/fleetwire-ingest-$backend.XXXXXX)
  printf '[session]\nlisten = "127.0.0.1:0"\n[http]\nhttps_listen = "127.0.0.1:0"\nhttp_listen = "127.0.0.1:0"\n[transfer]\nlisten = "127.0.0.1:0"\n[sensor]\nlisten = "127.0.0.1:%s"\n' "$PORT" > "$dir/fleetwire.toml"
  if [ "$backend" = postgresql ]; then
    db=ingest_$$
    psql "$FLEETWIRE_TEST_PG dbname=postgres" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"
    url="$FLEETWIRE_TEST_PG dbname=$db"
    printf '[store]\nurl = "%s"\n' "$url" >> "$dir/fleetwire.toml"
  fi
  "$B/fleetwire-server" --data-dir "$dir" logger add --name sim --count "$LOGGERS" --secrets-out "$dir/loggers.csv" >/dev/null
  MALLOC_ARENA_MAX=2 RUST_LOG=warn "$B/fleetwire-server" --data-dir "$dir" serve > "$dir/server.out" 2> "$dir/server.err" &
  pid=$!
  until grep -q '^data directory' "$dir/server.out"; do
    kill -0 "$pid" || { cat "$dir/server.err" >&2; exit 1; }
    sleep 0.2
  done
  fp=$(sed -n 's/^certificate fingerprint (SHA-256): //p' "$dir/server.out")
  before_s=$(ticks "$pid")
  before_pg=0
  [ "$backend" = postgresql ] && before_pg=$(ticks $(pg_pids))
  "$B/fleetwire-sensor-sim" --server "127.0.0.1:$PORT" --fingerprint "$fp" --loggers "$dir/loggers.csv" \
    --backlog-days "$DAYS" --duration "$DURATION" --wake-secs 1 --cut-prob 0 --stop-when-drained > "$dir/sim.out"
  after_s=$(ticks "$pid")
  after_pg=0
  [ "$backend" = postgresql ] && after_pg=$(ticks $(pg_pids))
  stored=$("$B/fleetwire-server" --data-dir "$dir" logger list | awk '$1 ~ /^[0-9]+$/ {s += $4} END {print s}')
  kill -INT "$pid"; wait "$pid" || true
  # Storage per reading: the readings' tables with their indexes (PostgreSQL: every monthly
  # partition), or the whole SQLite file.
  local bytes
  if [ "$backend" = postgresql ]; then
    bytes=$(psql "$url" -tAc "SELECT COALESCE(SUM(pg_total_relation_size(inhrelid)), 0) FROM pg_inherits WHERE inhparent = 'sensor_readings'::regclass")
  else
    bytes=$(stat -c %s "$dir/fleetwire.db")
  fi
  echo "$backend: $bytes bytes of readings storage = $((bytes / stored)) bytes per reading" >&2
  out=$(grep -E '^initial backlog' "$dir/sim.out" || echo "backlog not drained within ${DURATION} s")
  awk -v b="$backend" -v s="$((after_s - before_s))" -v p="$((after_pg - before_pg))" -v t="$TCK" -v n="$stored" -v o="$out" 'BEGIN {
    printf "| %s | %s | %d | %.2f | %.2f | %.5f |\n", b, o, n, s / t, p / t, 1000 * (s + p) / t / n }'
  [ "$backend" = postgresql ] && psql "$FLEETWIRE_TEST_PG dbname=postgres" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)"
  rm -rf "$dir"
}

echo "load before: $(uptime)"
echo "| store | simulator | readings stored | server CPU s | PostgreSQL CPU s | CPU s per 1,000 readings |"
echo "|---|---|---|---|---|---|"
run sqlite
run postgresql
echo "load after: $(uptime)"
