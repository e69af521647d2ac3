#!/usr/bin/env bash
# Logins/s and heartbeat round trips of N players on one server node against the same N spread
# over three nodes, all on one throwaway PostgreSQL (issue 12's multi-node benchmark):
#
#   benches/fleet/nodes.sh [PLAYERS] [INTERVAL_SECS] [HOLD_SECS]      # defaults 10000 10 30
#
# Builds the release server and player simulator, starts PostgreSQL (scripts/pg.sh) and stops
# it at the end. Prints, per setup, each simulator's summary (logins/s, login latency,
# heartbeat p50/p99, failures) and the CPU seconds the server nodes and PostgreSQL used: the
# load-independent figure beside the wall-clock ones. Only loopback is used.
set -euo pipefail
cd "$(dirname "$0")/../.."
N="${1:-10000}"; INTERVAL="${2:-10}"; HOLD="${3:-30}"
cargo build --release -q -p fleetwire-server -p fleetwire-player-sim
BIN="${CARGO_TARGET_DIR:-target}/release"
eval "$(bash scripts/pg.sh start)"
work=$(mktemp -d)
cleanup() { kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; bash scripts/pg.sh stop; rm -rf "$work"; }
trap cleanup EXIT
ulimit -n "$(ulimit -Hn)"   # 10,000 players: a socket each in the simulator and the server
wait_for() { for _ in $(seq 1 600); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.5; done; echo "timeout waiting for '$2' in $1" >&2; cat "$1" >&2; return 1; }
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }          # utime + stime of one process
pg_ticks() { local t=0; for p in $(pgrep -u postgres postgres); do t=$((t + $(ticks "$p" 2>/dev/null || echo 0))); done; echo $t; }
hz=$(getconf CLK_TCK)

run() {   # run SETUP NODES
  local setup=$1 nodes=$2 db="bench_$1"
  psql "$FLEETWIRE_TEST_PG dbname=postgres" -qc "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
  local pids=() addrs=() fp=""
  for i in $(seq 1 "$nodes"); do
    mkdir -p "$work/$setup-$i"
    cat > "$work/$setup-$i/fleetwire.toml" <<TOML
[session]
listen = "127.0.0.1:0"
heartbeat_interval_secs = $INTERVAL
max_connections = 40000
max_logins_per_source = 100000
[http]
https_listen = "127.0.0.1:0"
http_listen = "127.0.0.1:0"
[sensor]
listen = "127.0.0.1:0"
[transfer]
listen = "127.0.0.1:0"
[store]
url = "$FLEETWIRE_TEST_PG dbname=$db"
TOML
  done
  "$BIN/fleetwire-server" --data-dir "$work/$setup-1" player add --approved --count "$N" --secrets-out "$work/$setup.csv" >/dev/null
  for i in $(seq 1 "$nodes"); do
    RUST_LOG=warn "$BIN/fleetwire-server" --data-dir "$work/$setup-$i" serve > "$work/$setup-$i.log" 2>&1 &
    pids+=($!)
    wait_for "$work/$setup-$i.log" "data directory"
    addrs+=("$(sed -n 's/^player sessions on \([^ ]*\).*/\1/p' "$work/$setup-$i.log")")
    fp=$(sed -n 's/^certificate fingerprint (SHA-256): //p' "$work/$setup-$i.log")
  done
  # Each node gets its share of the players (the same device identity on every node).
  local per=$(( (N + nodes - 1) / nodes )) sims=() before_srv=0 before_pg
  split -l "$per" -d "$work/$setup.csv" "$work/$setup-part-"
  for p in "${pids[@]}"; do before_srv=$((before_srv + $(ticks "$p"))); done
  before_pg=$(pg_ticks)
  local start=$(date +%s.%N) i=0
  for part in "$work/$setup-part-"[0-9][0-9]; do
    "$BIN/fleetwire-player-sim" --server "${addrs[$i]}" --fingerprint "$fp" --players "$part" --duration "$HOLD" > "$part.sim" 2>&1 &
    sims+=($!); i=$((i + 1))
  done
  for s in "${sims[@]}"; do wait "$s" || true; done
  local after_srv=0 after_pg
  for p in "${pids[@]}"; do after_srv=$((after_srv + $(ticks "$p"))); done
  after_pg=$(pg_ticks)
  echo "== $setup: $N players on $nodes node(s), heartbeat every $INTERVAL s, held $HOLD s"
  for part in "$work/$setup-part-"[0-9][0-9]; do grep -E "ramp|logins|heartbeats|failures" "$part.sim" | sed 's/^/   /'; done
  echo "   CPU: server nodes $(( (after_srv - before_srv) / hz )).$(( (after_srv - before_srv) % hz * 100 / hz )) s, PostgreSQL $(( (after_pg - before_pg) / hz )).$(( (after_pg - before_pg) % hz * 100 / hz )) s, wall $(echo "$(date +%s.%N) - $start" | bc) s"
  for p in "${pids[@]}"; do kill -INT "$p"; wait "$p" || true; done
}

echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
[ -z "${ONLY_THREE:-}" ] && run one 1
run three 3
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
