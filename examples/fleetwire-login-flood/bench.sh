#!/usr/bin/env bash
# Login flood against heartbeats (docs/BENCHMARKS.md): 10,000 players heartbeat while
# fleetwire-login-flood sends 200 logins/s. Run from the repository root after
#   cargo build --release -p fleetwire-server -p fleetwire-player-sim -p fleetwire-login-flood
# Usage: examples/fleetwire-login-flood/bench.sh [flood rate, 0 = no flood] [players]
set -euo pipefail
RATE=${1:-200}
PLAYERS=${2:-10000}
BIN=${CARGO_TARGET_DIR:-target}/release
DATA=$(mktemp -d /tmp/fleetwire-flood.XXXX)
cat > "$DATA/fleetwire.toml" <<TOML
[session]
listen = "127.0.0.1:24701"
heartbeat_interval_secs = 10
[http]
https_listen = "127.0.0.1:28443"
http_listen = "127.0.0.1:0"
[sensor]
listen = "127.0.0.1:0"
[transfer]
listen = "127.0.0.1:0"
[accounts]
# The flood must reach Argon2: raise the address throttles (default 10 per minute per address).
login_burst_per_source = 1000000
login_per_minute_per_source = 1000000
login_per_second_global = 1000000
TOML
"$BIN/fleetwire-server" --data-dir "$DATA" player add --approved --count "$PLAYERS" --secrets-out "$DATA/players.csv" >/dev/null
RUST_LOG=info "$BIN/fleetwire-server" --data-dir "$DATA" serve >"$DATA/server.out" 2>"$DATA/server.err" &
SERVER=$!
trap 'kill -INT $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q "^data directory" "$DATA/server.out" && break; sleep 0.1; done
FP=$(sed -n 's/^certificate fingerprint (SHA-256): //p' "$DATA/server.out")
grep "argon2" "$DATA/server.out" || true
"$BIN/fleetwire-player-sim" --server 127.0.0.1:24701 --fingerprint "$FP" --players "$DATA/players.csv" --duration 75 >"$DATA/sim.out" &
SIM=$!
# Wait for the ramp, let heartbeats settle, then flood for 60 s.
while ! grep -q "^ramp:" "$DATA/sim.out"; do sleep 0.5; done
sleep 5
if [ "$RATE" -gt 0 ]; then
  "$BIN/fleetwire-login-flood" --server 127.0.0.1:28443 --fingerprint "$FP" --rate "$RATE" --duration 60
else
  sleep 60
fi
# Still inside the players' run: nobody may have been marked offline.
echo "after the flood: players marked offline so far: $(grep -c ": offline" "$DATA/server.err" || true)"
"$BIN/fleetwire-server" --data-dir "$DATA" player list | tail -1
wait $SIM
cat "$DATA/sim.out"
kill -INT $SERVER; wait $SERVER || true
trap - EXIT
rm -rf "$DATA"
