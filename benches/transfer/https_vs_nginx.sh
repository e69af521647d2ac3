#!/usr/bin/env bash
# Benchmark (b): a 256 MiB file over HTTPS on loopback with per-chunk verification
# (fleetwire-server → fleetwire-fetch), side by side in the same run with nginx serving the same
# file over HTTPS. Everything listens on 127.0.0.1 only, in a temporary directory.
# Usage: benches/transfer/https_vs_nginx.sh [RUNS=5] [MIB=256]
#
# Every round runs five downloads of the same file, back to back, and the script prints three
# comparisons, each the median of per-round ratios:
#   two connections each, one server core: fleetwire-fetch on 2 connections (--window 32
#       --per-request 16) vs aria2c on 2 (-x2 -s2, one file, preallocated) against nginx with
#       one worker. The like-for-like row. (One connection each is not possible: fleetwire-fetch
#       opens window / chunks-per-request connections and a request covers at most half the
#       window, so its fewest with a window is 2; window 1 is lock-step, benchmark (c).)
#   parallel, every core: fleetwire-fetch with its defaults (4 connections) vs aria2c -x4 -s4
#       against nginx with as many workers as cores (worker_processes auto);
#   each tool's defaults: fleetwire-fetch's defaults (4 connections) vs curl (1 connection)
#       against nginx with one worker: the row earlier runs quoted, not like for like.
# nginx has `sendfile on`, which does nothing here: without kernel TLS, nginx encrypts in user
# space and copies like fleetwire-server. CPU seconds per download (client + server) are printed
# for every row. WINDOW=… PER_REQUEST=… override the defaults of the 4-connection fetch.
set -euo pipefail
RUNS=${1:-5}
MIB=${2:-256}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
if ! command -v nginx >/dev/null || ! command -v curl >/dev/null || ! command -v aria2c >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx-light curl openssl aria2 >/dev/null
fi
cargo build -q --release -p fleetwire-server -p fleetwire-fetch --manifest-path "$ROOT/Cargo.toml"
BIN=$CARGO_TARGET_DIR/release
T=$(mktemp -d /tmp/fw-bench-b.XXXXXX)
cleanup() { [ -n "${SRV:-}" ] && kill -INT "$SRV" 2>/dev/null; for p in "$T"/nginx1.pid "$T"/nginxn.pid; do [ -f "$p" ] && kill "$(cat "$p")" 2>/dev/null; done; rm -rf "$T"; }
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
NGINX_PORT_N=$((NGINX_PORT + 1))
# Two nginx instances on the same file: one worker, and one worker per core.
nginx_conf() { # NAME WORKERS PORT
  cat > "$T/$1.conf" <<NGX
worker_processes $2;
pid $T/$1.pid;
error_log $T/$1-error.log;
events { worker_connections 64; }
http {
  access_log off; sendfile on; tcp_nopush on;
  client_body_temp_path $T; proxy_temp_path $T; fastcgi_temp_path $T; uwsgi_temp_path $T; scgi_temp_path $T;
  server {
    listen 127.0.0.1:$3 ssl;
    ssl_certificate $T/cert.pem; ssl_certificate_key $T/key.pem;
    ssl_protocols TLSv1.3 TLSv1.2;
    root $T;
  }
}
NGX
  nginx -c "$T/$1.conf" -p "$T"
}
nginx_conf nginx1 1 "$NGINX_PORT"
nginx_conf nginxn auto "$NGINX_PORT_N"
for _ in $(seq 50); do [ -f "$T/nginx1.pid" ] && [ -f "$T/nginxn.pid" ] && break; sleep 0.1; done

now() { date +%s.%N; }
# CPU seconds (user + system) of running processes, and a wrapper that records a command's own.
cpu_of() { local sum=0 p; for p in "$@"; do sum=$(awk -v s="$sum" -v t="$(getconf CLK_TCK)" '{printf "%.3f", s + ($14 + $15) / t}' "/proc/$p/stat"); done; echo "$sum"; }
timed() { out=$1; shift; /usr/bin/time -f "%U %S" -o "$out" "$@"; }
NG1=$(pgrep -P "$(cat "$T/nginx1.pid")" | head -1)
read -r -a NGN <<< "$(pgrep -P "$(cat "$T/nginxn.pid")" | tr '\n' ' ')"
echo "nginx: 1 worker, and ${#NGN[@]} workers (cores: $(nproc)); aria2c $(aria2c --version | head -1 | awk '{print $3}'), curl $(curl --version | head -1 | awk '{print $2}'); load $(cut -d' ' -f1-3 /proc/loadavg)"
FETCH=("$BIN/fleetwire-fetch" --quiet --server "https://$FW_HTTPS" --fingerprint "$FP" --key "$KEY"
  --player "$PID_" --secret "$SECRET" --content 1)
echo "run fetch2_s aria2x2_s fetch4_s aria2x4_s curl_s | cpu: fetch2 server2 aria2x2 nginx1 fetch4 server4 aria2x4 nginxN curl nginx1"
for i in $(seq "$RUNS"); do
  rm -f "$T"/f2.out* "$T"/f4.out* "$T/curl.out" "$T"/aria2.out* "$T"/aria4.out*
  aria() { timed "$1" aria2c -q -x"$2" -s"$2" -k1M --check-certificate=false --file-allocation=falloc \
    --allow-overwrite=true -d "$T" -o "$3" "https://127.0.0.1:$4/file.bin"; }
  s0=$(cpu_of "$SRV"); a=$(now)
  timed "$T/f2.cpu" "${FETCH[@]}" --out "$T/f2.out" --window 32 --per-request 16 >/dev/null
  b=$(now); s1=$(cpu_of "$SRV"); n0=$(cpu_of "$NG1")
  aria "$T/a2.cpu" 2 aria2.out "$NGINX_PORT"
  c=$(now); n1=$(cpu_of "$NG1"); s2=$(cpu_of "$SRV")
  timed "$T/f4.cpu" "${FETCH[@]}" --out "$T/f4.out" ${WINDOW:+--window "$WINDOW"} ${PER_REQUEST:+--per-request "$PER_REQUEST"} >/dev/null
  d=$(now); s3=$(cpu_of "$SRV"); m0=$(cpu_of "${NGN[@]}")
  aria "$T/a4.cpu" 4 aria4.out "$NGINX_PORT_N"
  e=$(now); m1=$(cpu_of "${NGN[@]}"); k0=$(cpu_of "$NG1")
  timed "$T/curl.cpu" curl -sk -o "$T/curl.out" "https://127.0.0.1:$NGINX_PORT/file.bin"
  f=$(now); k1=$(cpu_of "$NG1")
  for o in f2.out aria2.out f4.out aria4.out curl.out; do cmp -s "$T/$o" "$T/file.bin" || { echo "content differs: $o"; exit 1; }; done
  cpu() { awk '{print $1 + $2}' "$1"; }
  echo "$i $(echo "$b - $a" | bc) $(echo "$c - $b" | bc) $(echo "$d - $c" | bc) $(echo "$e - $d" | bc) $(echo "$f - $e" | bc) |" \
    "$(cpu "$T/f2.cpu") $(echo "$s1 - $s0" | bc) $(cpu "$T/a2.cpu") $(echo "$n1 - $n0" | bc)" \
    "$(cpu "$T/f4.cpu") $(echo "$s3 - $s2" | bc) $(cpu "$T/a4.cpu") $(echo "$m1 - $m0" | bc)" \
    "$(cpu "$T/curl.cpu") $(echo "$k1 - $k0" | bc)"
done | tee "$T/times.txt"
echo "load at end: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$T/times.txt" "$MIB" <<'PY'
import statistics, sys
med = statistics.median
rows = [l.replace("|", " ").split() for l in open(sys.argv[1]) if l[0].isdigit()]
mib = int(sys.argv[2])
t = {k: [float(r[i]) for r in rows] for i, k in enumerate(["f2", "a2", "f4", "a4", "curl"], start=1)}
c = {k: [float(r[i]) for r in rows] for i, k in enumerate(
    ["f2", "s2", "a2", "n1", "f4", "s4", "a4", "nn", "curl", "k1"], start=6)}
def side(name, key):
    v = t[key]
    return f"{name}: median {med(v):.3f} s = {mib / med(v):.0f} MiB/s ({min(v):.3f}-{max(v):.3f})"
def row(title, fw, peer, fw_name, peer_name, fw_cpu, peer_cpu):
    ratios = [p / f for f, p in zip(t[fw], t[peer])]
    print(f"== {title}")
    print("  " + side(fw_name, fw))
    print("  " + side(peer_name, peer))
    print(f"  speed ratio fleetwire / peer, median of per-round ratios: {med(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f})")
    fc = [med(c[k]) for k in fw_cpu]; pc = [med(c[k]) for k in peer_cpu]
    print(f"  CPU seconds per download (median): fleetwire {fc[0]:.2f} client + {fc[1]:.2f} server = {sum(fc):.2f}; "
          f"peer {pc[0]:.2f} client + {pc[1]:.2f} server = {sum(pc):.2f}")
row("two connections each, one server worker (like for like)", "f2", "a2", "fleetwire-fetch, 2 connections", "aria2c -x2 -> nginx, 1 worker", ["f2", "s2"], ["a2", "n1"])
row("parallel, every core", "f4", "a4", "fleetwire-fetch defaults, 4 connections", "aria2c -x4 -> nginx, workers = cores", ["f4", "s4"], ["a4", "nn"])
row("each tool's defaults (not like for like: 4 connections vs 1)", "f4", "curl", "fleetwire-fetch defaults, 4 connections", "curl -> nginx, 1 worker", ["f4", "s4"], ["curl", "k1"])
PY
