#!/usr/bin/env bash
# Idle TLS clients side by side: fleetwire-server holding players (login + heartbeat) versus
# mosquitto holding MQTT clients (CONNECT + keep-alive PINGREQ), both over TLS on loopback.
# Each run measures both servers, at N_LOW and at N clients (four server starts, alternating
# fleetwire and mosquitto), with one rule for both:
#
# - baseline: the server's RSS SETTLE seconds (default 5) after it started, before any client;
# - held: its RSS INTERVAL + 2 seconds after the last client connected;
# - "growth / N": (held - baseline) / N at N clients, the figure earlier runs quoted;
# - "slope": (growth at N - growth at N_LOW) / (N - N_LOW), growth = held - baseline of the
#   same server process: what one more idle connection costs, whatever fixed memory either
#   server allocates when its first clients arrive;
# - heartbeat (PINGREQ) round trip p50 / p99 at N, from the load generators;
# - server CPU per 1,000 heartbeats (PINGREQs) while idle at N: user + system time from the
#   end of the held sample to the end of the hold, divided by the heartbeats due in that time.
#
# Then the median and min-max over the runs for every figure.
#
#   benches/idle_tls/compare.sh [N] [INTERVAL_SECS] [HOLD_SECS] [RUNS] [N_LOW]
#   benches/idle_tls/compare.sh 19000 10 40 3 1000      (the defaults; about 15 min)
#
# N: one process may hold about 20,000 open files here, and the servers and the load generators
# are separate processes. Only 127.0.0.1 is used. Honours CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")/../.."
N="${1:-19000}"; INTERVAL="${2:-10}"; HOLD="${3:-40}"; RUNS="${4:-3}"; N_LOW="${5:-1000}"
SETTLE="${SETTLE:-5}"
[ "$HOLD" -gt $((INTERVAL + 2)) ] || { echo "HOLD must exceed INTERVAL + 2" >&2; exit 2; }
command -v mosquitto >/dev/null || { apt-get install -y mosquitto >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y mosquitto >/dev/null; }; }
cargo build --release -q -p fleetwire-server -p fleetwire-player-sim
cargo build --release -q -p fleetwire-benches --example mqtt_idle
BIN="${CARGO_TARGET_DIR:-target}/release"
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
ulimit -n 20000
TCK=$(getconf CLK_TCK)

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
wait_for() { for _ in $(seq 1 600); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.5; done; echo "timeout waiting for '$2' in $1" >&2; cat "$1" >&2; return 1; }

# Provisioning once per N (players are rows in the store, reused by every run).
provision() {
  local n=$1
  [ -d "$work/fw-$n" ] && return 0
  mkdir -p "$work/fw-$n"
  cat > "$work/fw-$n/fleetwire.toml" <<TOML
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
  $BIN/fleetwire-server --data-dir "$work/fw-$n" player add --approved --count "$n" \
    --secrets-out "$work/players-$n.csv" >/dev/null
}

# The mosquitto configuration: TLS 1.2+ with a P-256 certificate, as fleetwire's.
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

# measure SERVER N: sets BASE HELD (KiB), P50 P99 (ms), CPU_MS (per 1,000 heartbeats).
measure() {
  local server=$1 n=$2 pid client log
  log="$work/$server-$n.log"
  if [ "$server" = fleetwire ]; then
    provision "$n"
    RUST_LOG=warn $BIN/fleetwire-server --data-dir "$work/fw-$n" serve > "$work/srv.log" 2>&1 &
    pid=$!
    wait_for "$work/srv.log" "data directory"
    local fp; fp=$(sed -n 's/^certificate fingerprint (SHA-256): //p' "$work/srv.log")
    sleep "$SETTLE"; BASE=$(rss_kib $pid)
    $BIN/fleetwire-player-sim --server 127.0.0.1:14701 --fingerprint "$fp" \
      --players "$work/players-$n.csv" --duration "$HOLD" > "$log" 2>&1 &
    client=$!
  else
    mosquitto -c "$work/mq/mosquitto.conf" > "$work/srv.log" 2>&1 &
    pid=$!
    sleep "$SETTLE"; BASE=$(rss_kib $pid)
    $BIN/examples/mqtt_idle --broker 127.0.0.1:18883 --fingerprint "$mq_fp" --clients "$n" \
      --keepalive "$INTERVAL" --duration "$HOLD" > "$log" 2>&1 &
    client=$!
  fi
  wait_for "$log" "^ramp:"
  sleep $((INTERVAL + 2)); HELD=$(rss_kib $pid)
  local c0; c0=$(cpu_ticks $pid)
  wait $client || true
  local c1; c1=$(cpu_ticks $pid)
  local window=$((HOLD - INTERVAL - 2))
  CPU_MS=$(awk -v t=$((c1 - c0)) -v hz="$TCK" -v n="$n" -v w="$window" -v i="$INTERVAL" \
    'BEGIN { printf "%.1f", t / hz * 1000 / (n * w / i / 1000) }')
  read -r P50 P99 < <(sed -nE 's/.*round trip p50 ([0-9.]+) ms, p99 ([0-9.]+) ms.*/\1 \2/p' "$log")
  grep -E "^(ramp|failures)" "$log" | sed "s/^/    $server N=$n: /"
  if [ "$server" = fleetwire ]; then kill -INT $pid; else kill $pid; fi
  wait $pid 2>/dev/null || true
}

echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "mosquitto $(mosquitto -h 2>&1 | head -1 | awk '{print $3}'); N=$N, N_LOW=$N_LOW, interval ${INTERVAL} s, hold ${HOLD} s, $RUNS run(s)"
results="$work/results"
for run in $(seq 1 "$RUNS"); do
  order="fleetwire mosquitto"; [ $((run % 2)) -eq 0 ] && order="mosquitto fleetwire"
  for server in $order; do
    measure "$server" "$N_LOW"; low_growth=$((HELD - BASE))
    measure "$server" "$N"
    growth=$(( (HELD - BASE) * 1024 / N ))
    slope=$(( (HELD - BASE - low_growth) * 1024 / (N - N_LOW) ))
    echo "run $run $server: at N baseline $BASE KiB, held $HELD KiB; growth at N_LOW $low_growth KiB;" \
      "growth/N $growth B, slope $slope B, p50 $P50 ms, p99 $P99 ms, CPU $CPU_MS ms/1000 heartbeats" \
      "(load $(cut -d' ' -f1 /proc/loadavg))"
    echo "$server $growth $slope $P50 $P99 $CPU_MS" >> "$results"
  done
done
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "== median (min-max) over $RUNS run(s), N = $N, slope from N_LOW = $N_LOW"
python3 - "$results" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
cols = ["RSS growth / N (B)", "slope per connection (B)", "round trip p50 (ms)", "round trip p99 (ms)", "server CPU ms / 1000 heartbeats"]
print("| figure | fleetwire | mosquitto | mosquitto / fleetwire (median of per-run ratios) |")
print("|---|---|---|---|")
for i, name in enumerate(cols, start=1):
    vals = {s: [float(r[i]) for r in rows if r[0] == s] for s in ("fleetwire", "mosquitto")}
    cell = lambda v: f"{statistics.median(v):g} ({min(v):g}-{max(v):g})"
    ratios = [m / f for f, m in zip(vals["fleetwire"], vals["mosquitto"]) if f > 0]
    ratio = f"{statistics.median(ratios):.2f}" if ratios else "-"
    print(f"| {name} | {cell(vals['fleetwire'])} | {cell(vals['mosquitto'])} | {ratio} |")
PY
