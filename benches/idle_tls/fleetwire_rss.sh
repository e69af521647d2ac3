#!/usr/bin/env bash
# The fleetwire half of compare.sh, with the server's RSS sampled every 4 s after the ramp, for
# comparing two server binaries or allocator settings:
#
#   benches/idle_tls/fleetwire_rss.sh [N] [INTERVAL_SECS] [HOLD_SECS]
#   SRV=/path/to/other/fleetwire-server MALLOC_ARENA_MAX=1 benches/idle_tls/fleetwire_rss.sh 19000 10 40
#
# Builds nothing: run compare.sh (or cargo build --release -p fleetwire-server -p
# fleetwire-player-sim) first. Only 127.0.0.1 is used.
set -euo pipefail
cd "$(dirname "$0")/../.."
N="${1:-19000}"; INTERVAL="${2:-10}"; HOLD="${3:-40}"
BIN="${CARGO_TARGET_DIR:-target}/release"
SRV="${SRV:-$BIN/fleetwire-server}"
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
ulimit -n 20000
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
wait_for() { for _ in $(seq 1 600); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.5; done; echo "timeout waiting for '$2' in $1" >&2; cat "$1" >&2; return 1; }
mkdir -p "$work/fw"
cat > "$work/fw/fleetwire.toml" <<TOML
[session]
listen = "127.0.0.1:14711"
heartbeat_interval_secs = $INTERVAL
max_connections = 20000
[http]
https_listen = "127.0.0.1:0"
http_listen = "127.0.0.1:0"
[sensor]
listen = "127.0.0.1:0"
[transfer]
listen = "127.0.0.1:0"
TOML
"$SRV" --data-dir "$work/fw" player add --approved --count "$N" --secrets-out "$work/players.csv" >/dev/null
RUST_LOG=warn "$SRV" --data-dir "$work/fw" serve > "$work/fw.log" 2>&1 &
fw_pid=$!
wait_for "$work/fw.log" "data directory"
fp=$(sed -n 's/^certificate fingerprint (SHA-256): //p' "$work/fw.log")
sleep 5; base=$(rss_kib $fw_pid)
"$BIN/fleetwire-player-sim" --server 127.0.0.1:14711 --fingerprint "$fp" --players "$work/players.csv" --duration "$HOLD" > "$work/sim.log" 2>&1 &
sim_pid=$!
wait_for "$work/sim.log" "^ramp:"
for t in 0 4 8 12 16 20 24; do
  r=$(rss_kib $fw_pid)
  echo "ramp + ${t} s: RSS $base KiB -> $r KiB = $(( (r - base) * 1024 / N )) bytes/player"
  sleep 4
done
wait $sim_pid || true
grep -E "ramp|logins|heartbeats|failures" "$work/sim.log"
kill -INT $fw_pid; wait $fw_pid || true
