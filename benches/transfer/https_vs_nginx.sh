#!/usr/bin/env bash
# Benchmark (b): a 256 MiB file over HTTPS on loopback with per-chunk verification
# (fleetwire-server → fleetwire-fetch), side by side in the same run with nginx serving the same
# file to curl over HTTPS. Everything listens on 127.0.0.1 only, in a temporary directory.
# Usage: benches/transfer/https_vs_nginx.sh [RUNS=5] [MIB=256]
# fleetwire-fetch runs with its defaults; WINDOW=… PER_REQUEST=… override them.
set -euo pipefail
RUNS=${1:-5}
MIB=${2:-256}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
if ! command -v nginx >/dev/null || ! command -v curl >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx-light curl openssl >/dev/null
fi
cargo build -q --release -p fleetwire-server -p fleetwire-fetch --manifest-path "$ROOT/Cargo.toml"
BIN=$CARGO_TARGET_DIR/release
T=$(mktemp -d /tmp/fw-bench-b.XXXXXX)
cleanup() { [ -n "${SRV:-}" ] && kill -INT "$SRV" 2>/dev/null; [ -f "$T/nginx.pid" ] && kill "$(cat "$T/nginx.pid")" 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT
head -c $((MIB << 20)) /dev/urandom > "$T/file.bin"

# fleetwire-server on ephemeral loopback ports.
D=$T/data; mkdir -p "$D"
printf '[session]\nlisten = "127.0.0.1:0"\n[sensor]\nlisten = "127.0.0.1:0"\n[http]\nhttps_listen = "127.0.0.1:0"\nhttp_listen = "127.0.0.1:0"\n' > "$D/fleetwire.toml"
"$BIN/fleetwire-server" --data-dir "$D" player add --approved --secrets-out "$D/p.csv" >/dev/null
IFS=, read -r PID_ SECRET < "$D/p.csv"
"$BIN/fleetwire-server" --data-dir "$D" content add "$T/file.bin" --to "$PID_" >/dev/null
KEY=$("$BIN/fleetwire-server" --data-dir "$D" content key)
"$BIN/fleetwire-server" --data-dir "$D" serve > "$T/serve.log" 2>/dev/null & SRV=$!
for _ in $(seq 100); do grep -q "^data directory" "$T/serve.log" && break; sleep 0.1; done
FW_HTTPS=$(sed -n 's/^https api on \([^ ]*\).*/\1/p' "$T/serve.log")
FP=$(sed -n 's/^certificate fingerprint (SHA-256): //p' "$T/serve.log")

# nginx on a fixed high loopback port, self-signed ECDSA P-256 (same kind as fleetwire's).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=fleetwire.local \
  -keyout "$T/key.pem" -out "$T/cert.pem" 2>/dev/null
NGINX_PORT=${NGINX_PORT:-18444}
cat > "$T/nginx.conf" <<NGX
worker_processes 1;
pid $T/nginx.pid;
error_log $T/nginx-error.log;
events { worker_connections 64; }
http {
  access_log off; sendfile on; tcp_nopush on;
  client_body_temp_path $T; proxy_temp_path $T; fastcgi_temp_path $T; uwsgi_temp_path $T; scgi_temp_path $T;
  server {
    listen 127.0.0.1:$NGINX_PORT ssl;
    ssl_certificate $T/cert.pem; ssl_certificate_key $T/key.pem;
    ssl_protocols TLSv1.3 TLSv1.2;
    root $T;
  }
}
NGX
nginx -c "$T/nginx.conf" -p "$T"

now() { date +%s.%N; }
# CPU seconds (user + system) of a running process, and a wrapper that records a command's own.
cpu_of() { awk -v t="$(getconf CLK_TCK)" '{printf "%.3f", ($14 + $15) / t}' "/proc/$1/stat"; }
timed() { out=$1; shift; if [ -x /usr/bin/time ]; then /usr/bin/time -f "%U %S" -o "$out" "$@"; else "$@"; echo "0 0" > "$out"; fi; }
NGW=$(pgrep -P "$(cat "$T/nginx.pid")" | head -1)
echo "run fleetwire_s nginx_curl_s fetch_cpu server_cpu curl_cpu nginx_cpu"
for i in $(seq "$RUNS"); do
  rm -f "$T/fw.out" "$T/fw.out.part" "$T/fw.out.part.state" "$T/curl.out"
  s0=$(cpu_of "$SRV"); a=$(now)
  timed "$T/fw.cpu" "$BIN/fleetwire-fetch" --quiet --server "https://$FW_HTTPS" --fingerprint "$FP" --key "$KEY" \
    --player "$PID_" --secret "$SECRET" --content 1 --out "$T/fw.out" ${WINDOW:+--window "$WINDOW"} ${PER_REQUEST:+--per-request "$PER_REQUEST"} >/dev/null
  b=$(now); s1=$(cpu_of "$SRV"); n0=$(cpu_of "$NGW")
  timed "$T/curl.cpu" curl -sk -o "$T/curl.out" "https://127.0.0.1:$NGINX_PORT/file.bin"
  c=$(now); n1=$(cpu_of "$NGW")
  cmp -s "$T/fw.out" "$T/file.bin" && cmp -s "$T/curl.out" "$T/file.bin" || { echo "content differs"; exit 1; }
  echo "$i $(echo "$b - $a" | bc) $(echo "$c - $b" | bc) $(awk '{print $1 + $2}' "$T/fw.cpu") $(echo "$s1 - $s0" | bc) $(awk '{print $1 + $2}' "$T/curl.cpu") $(echo "$n1 - $n0" | bc)"
done | tee "$T/times.txt"
python3 - "$T/times.txt" "$MIB" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l[0].isdigit()]
mib = int(sys.argv[2])
med = statistics.median
fw = [float(r[1]) for r in rows]; ng = [float(r[2]) for r in rows]
ratios = [n / f for f, n in zip(fw, ng)]
print(f"fleetwire HTTPS: median {med(fw):.3f} s = {mib/med(fw):.0f} MiB/s (min {min(fw):.3f}, max {max(fw):.3f})")
print(f"nginx + curl:    median {med(ng):.3f} s = {mib/med(ng):.0f} MiB/s (min {min(ng):.3f}, max {max(ng):.3f})")
print(f"speed ratio fleetwire/nginx (same run, median of per-run ratios): {med(ratios):.2f} (min {min(ratios):.2f}, max {max(ratios):.2f})")
c = [[float(x) for x in r[3:7]] for r in rows]
fc, sc, cc, nc = (med([r[k] for r in c]) for k in range(4))
print(f"CPU per run (median, s): fleetwire-fetch {fc:.2f} + fleetwire-server {sc:.2f} = {fc + sc:.2f}; curl {cc:.2f} + nginx {nc:.2f} = {cc + nc:.2f}")
PY
