#!/usr/bin/env bash
# Benchmark (c): what the window buys at 20 ms round trip. The same file, in 512-byte parts,
# through the same userspace delay proxy (10 ms each way): fleetwire over HTTP in lock-step
# (window 1: one part per request, the request for the next part is the acknowledgement),
# fleetwire with a window, and tftp-hpa (RFC 1350 lock-step, 512-byte blocks).
# Loopback only (127.0.0.1, fixed high ports). Usage: lockstep_vs_tftp.sh [MIB=1] [RUNS=3]
set -euo pipefail
MIB=${1:-1}
RUNS=${2:-3}
DELAY_MS=10
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
command -v in.tftpd >/dev/null && command -v tftp >/dev/null ||
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q tftpd-hpa tftp-hpa >/dev/null
cargo build -q --release -p fleetwire-server -p fleetwire-fetch --manifest-path "$ROOT/Cargo.toml"
BIN=$CARGO_TARGET_DIR/release
T=$(mktemp -d /tmp/fw-bench-c.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; kill -INT "${SRV:-0}" 2>/dev/null || true; rm -rf "$T"; }
trap cleanup EXIT
head -c $((MIB << 20)) /dev/urandom > "$T/file.bin"

D=$T/data; mkdir -p "$D"
FW_HTTP_PORT=${FW_HTTP_PORT:-18101}; PROXY_TCP=${PROXY_TCP:-18102}
TFTP_PORT=${TFTP_PORT:-18169}; PROXY_UDP=${PROXY_UDP:-18170}
printf '[session]\nlisten = "127.0.0.1:0"\n[http]\nhttps_listen = "127.0.0.1:0"\nhttp_listen = "127.0.0.1:%s"\n[sensor]\nlisten = "127.0.0.1:0"\n[transfer]\nlisten = "127.0.0.1:0"\n' "$FW_HTTP_PORT" > "$D/fleetwire.toml"
"$BIN/fleetwire-server" --data-dir "$D" player add --approved --secrets-out "$D/p.csv" >/dev/null
IFS=, read -r PID_ SECRET < "$D/p.csv"
"$BIN/fleetwire-server" --data-dir "$D" content add "$T/file.bin" --to "$PID_" --chunk-size 512 >/dev/null
KEY=$("$BIN/fleetwire-server" --data-dir "$D" content key)
"$BIN/fleetwire-server" --data-dir "$D" serve > "$T/serve.log" 2>/dev/null & SRV=$!
for _ in $(seq 100); do grep -q "^data directory" "$T/serve.log" && break; sleep 0.1; done

mkdir -p "$T/tftp"; cp "$T/file.bin" "$T/tftp/file.bin"; chmod -R a+rX "$T"
in.tftpd --foreground --address "127.0.0.1:$TFTP_PORT" --secure "$T/tftp" & PIDS+=($!)
python3 "$ROOT/benches/transfer/delay_proxy.py" tcp "$PROXY_TCP" "$FW_HTTP_PORT" "$DELAY_MS" & PIDS+=($!)
python3 "$ROOT/benches/transfer/delay_proxy.py" udp "$PROXY_UDP" "$TFTP_PORT" "$DELAY_MS" & PIDS+=($!)
sleep 0.5

now() { date +%s.%N; }
fetch() { rm -f "$T/fw.out"*; "$BIN/fleetwire-fetch" --quiet --server "http://127.0.0.1:$PROXY_TCP" --key "$KEY" \
  --player "$PID_" --secret "$SECRET" --content 1 --out "$T/fw.out" --window "$1" --per-request "$2" >/dev/null
  cmp -s "$T/fw.out" "$T/file.bin"; }
echo "run lockstep_s window64_s tftp_s"
for i in $(seq "$RUNS"); do
  a=$(now); fetch 1 1; b=$(now); fetch 64 32; c=$(now)
  rm -f "$T/tftp.out"; (cd "$T" && tftp -m binary 127.0.0.1 "$PROXY_UDP" -c get file.bin tftp.out); d=$(now)
  cmp -s "$T/tftp.out" "$T/file.bin" || { echo "tftp content differs"; exit 1; }
  echo "$i $(echo "$b - $a" | bc) $(echo "$c - $b" | bc) $(echo "$d - $c" | bc)"
done | tee "$T/times.txt"
python3 - "$T/times.txt" "$MIB" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l[0].isdigit()]
mib = float(sys.argv[2])
for col, name in ((1, "fleetwire lock-step (window 1)"), (2, "fleetwire window 64"), (3, "tftp-hpa (RFC 1350)")):
    v = [float(r[col]) for r in rows]
    print(f"{name}: median {statistics.median(v):.2f} s = {mib*1024/statistics.median(v):.0f} KiB/s (min {min(v):.2f}, max {max(v):.2f})")
PY
