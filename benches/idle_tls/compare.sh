#!/usr/bin/env bash
# Idle TLS clients side by side: fleetwire-server holding N players (login + heartbeat) versus
# mosquitto holding N MQTT clients (CONNECT + keep-alive PINGREQ), both over TLS on loopback,
# in one run. Reports resident memory per connection (server RSS growth / N) and heartbeat
# (PINGREQ) round-trip p50/p99 under that load.
#
#   benches/idle_tls/compare.sh [N] [INTERVAL_SECS] [HOLD_SECS]
#
# N defaults to 19000: one process may hold about 20,000 open files here, and the server and
# the load generator are separate processes. Only 127.0.0.1 is used.
set -euo pipefail
cd "$(dirname "$0")/../.."
N="${1:-19000}"; INTERVAL="${2:-10}"; HOLD="${3:-60}"
command -v mosquitto >/dev/null || { apt-get install -y mosquitto >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y mosquitto >/dev/null; }; }
cargo build --release -q -p fleetwire-server -p fleetwire-player-sim
cargo build --release -q -p fleetwire-benches --example mqtt_idle
BIN="${CARGO_TARGET_DIR:-target}/release"
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
ulimit -n 20000

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
wait_for() { for _ in $(seq 1 600); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.5; done; echo "timeout waiting for '$2' in $1" >&2; cat "$1" >&2; return 1; }

echo "== fleetwire-server: $N players, heartbeat every ${INTERVAL}s"
mkdir -p "$work/fw"
cat > "$work/fw/fleetwire.toml" <<TOML
[session]
listen = "127.0.0.1:14701"
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
$BIN/fleetwire-server --data-dir "$work/fw" player add --approved --count "$N" --secrets-out "$work/players.csv" >/dev/null
RUST_LOG=warn $BIN/fleetwire-server --data-dir "$work/fw" serve > "$work/fw.log" 2>&1 &
fw_pid=$!
wait_for "$work/fw.log" "data directory"
fp=$(sed -n 's/^certificate fingerprint (SHA-256): //p' "$work/fw.log")
sleep 5; fw_base=$(rss_kib $fw_pid)
$BIN/fleetwire-player-sim --server 127.0.0.1:14701 --fingerprint "$fp" --players "$work/players.csv" --duration "$HOLD" > "$work/sim.log" 2>&1 &
sim_pid=$!
wait_for "$work/sim.log" "^ramp:"
sleep $((INTERVAL + 2)); fw_held=$(rss_kib $fw_pid)
wait $sim_pid || true
cat "$work/sim.log"
kill -INT $fw_pid; wait $fw_pid || true

echo "== mosquitto $(mosquitto -h 2>&1 | head -1 | awk '{print $3}'): $N MQTT clients, keep-alive ${INTERVAL}s"
mkdir -p "$work/mq"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -subj "/CN=fleetwire.local" -keyout "$work/mq/key.pem" -out "$work/mq/cert.pem" 2>/dev/null
mq_fp=$(openssl x509 -in "$work/mq/cert.pem" -noout -fingerprint -sha256 | sed 's/.*=//')
cat > "$work/mq/mosquitto.conf" <<CONF
per_listener_settings false
allow_anonymous true
persistence false
log_dest none
# The key sits in a private temp dir: keep root instead of dropping to the mosquitto user.
user root
max_connections -1
listener 18883 127.0.0.1
certfile $work/mq/cert.pem
keyfile $work/mq/key.pem
tls_version tlsv1.2
CONF
mosquitto -c "$work/mq/mosquitto.conf" > "$work/mq.log" 2>&1 &
mq_pid=$!
sleep 1; mq_base=$(rss_kib $mq_pid)
$BIN/examples/mqtt_idle --broker 127.0.0.1:18883 --fingerprint "$mq_fp" --clients "$N" --keepalive "$INTERVAL" --duration "$HOLD" > "$work/mqtt.log" 2>&1 &
mqtt_pid=$!
wait_for "$work/mqtt.log" "^ramp:"
sleep $((INTERVAL + 2)); mq_held=$(rss_kib $mq_pid)
wait $mqtt_pid || true
cat "$work/mqtt.log"
kill $mq_pid; wait $mq_pid 2>/dev/null || true

fw_per=$(( (fw_held - fw_base) * 1024 / N ))
mq_per=$(( (mq_held - mq_base) * 1024 / N ))
echo
echo "== resident memory per idle TLS connection (server RSS growth / $N)"
printf '%-16s %8s KiB -> %8s KiB  = %6d bytes/conn\n' fleetwire "$fw_base" "$fw_held" "$fw_per"
printf '%-16s %8s KiB -> %8s KiB  = %6d bytes/conn\n' mosquitto "$mq_base" "$mq_held" "$mq_per"
awk -v a="$fw_per" -v b="$mq_per" 'BEGIN { if (a > 0) printf "mosquitto / fleetwire = %.2f\n", b / a }'
