#!/usr/bin/env bash
# Runs one criterion bench RUNS times and prints, for every benchmark, the median over the runs
# of criterion's median time per iteration, its min–max over the runs, the rate per second of
# the bench's throughput unit, and within each group the ratio of every benchmark to the
# group's first one, taken within each run (median and range over the runs). The load average
# is printed before and after: quote figures with it.
#
#   benches/criterion.sh PACKAGE BENCH [RUNS] [-- criterion args]
#   benches/criterion.sh fleetwire-codes generate 3
#   benches/criterion.sh fleetwire-benches framing 3
#   benches/criterion.sh fleetwire-benches session 3 -- 'login'
#
# Criterion's time per iteration is one thread's wall time for one unit of work; on an idle core
# it is its CPU time (a loaded machine adds preemption to it, which is why the spread and the
# load are printed). Honours CARGO_TARGET_DIR. Criterion's per-run output goes to
# $OUT/run-N.log (OUT defaults to a temporary directory, printed at the end).
set -euo pipefail
cd "$(dirname "$0")/.."
pkg=${1:?package}
bench=${2:?bench}
runs=${3:-3}
shift $(($# < 3 ? $# : 3))
[ "${1:-}" = "--" ] && shift
extra=("$@")
out=${OUT:-$(mktemp -d)}
mkdir -p "$out"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
cargo bench -q -p "$pkg" --bench "$bench" --no-run
for i in $(seq 1 "$runs"); do
  home="$out/criterion-$i"
  rm -rf "$home"
  CRITERION_HOME="$home" cargo bench -q -p "$pkg" --bench "$bench" -- \
    --warm-up-time "${WARMUP:-1}" --measurement-time "${MEASURE:-3}" "${extra[@]}" \
    >"$out/run-$i.log" 2>&1 || { tail -30 "$out/run-$i.log"; exit 1; }
  # Lines the bench prints itself (memory, CPU per decision) start with "report: ".
  grep -E '^report: ' "$out/run-$i.log" | sed "s/^report: /run $i: /" || true
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 benches/criterion_summary.py "$out" "$runs"
echo "(criterion output: $out)"
