#!/usr/bin/env bash
# The long fuzz run, with AddressSanitizer (not part of CI; the CI smoke is fuzz-smoke.sh):
# every cargo-fuzz target (or the ones named) for SECONDS each, from a scratch copy of the
# committed seed corpus, then one Markdown table row per target for docs/BENCHMARKS.md
# ("Fuzzing"): executions, executions per second, libFuzzer's coverage counters, corpus size
# reached, and the verdict. A crash leaves its input in fuzz/artifacts/<target>/ and the script
# exits non-zero after the other targets ran.
#
#   scripts/fuzz-long.sh [SECONDS] [TARGET ...]      (default 600 s per target, every target)
#
# AddressSanitizer needs nightly-only flags, so the cargo-fuzz commands run with
# RUSTC_BOOTSTRAP=1 (on stable Rust; scoped to those commands only). Honours CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-600}"
shift || true
if ! cargo fuzz --version 2>/dev/null | grep -q '0.13'; then
  cargo install cargo-fuzz --version 0.13.2 --locked
fi
cd fuzz
targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo fuzz list)
# Build every target first, so a build error shows before the first long run.
RUSTC_BOOTSTRAP=1 cargo fuzz build >/dev/null
failed=0
rows=()
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg); $seconds s per target, AddressSanitizer"
for t in "${targets[@]}"; do
  work=$(mktemp -d)
  cp -r "corpus/$t/." "$work/" 2>/dev/null || true
  log="$work.log"
  if RUSTC_BOOTSTRAP=1 cargo fuzz run "$t" "$work" -- -max_total_time="$seconds" \
      -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1; then
    verdict="no crash"
  else
    verdict="CRASH (fuzz/artifacts/$t/)"
    failed=$((failed + 1))
    tail -40 "$log"
  fi
  runs=$(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -Eo '[0-9]+$' || echo '?')
  rate=$(grep -Eo 'stat::average_exec_per_sec: *[0-9]+' "$log" | grep -Eo '[0-9]+$' || echo '?')
  cov=$(grep -Eo 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+' "$log" | tail -1 || echo '?')
  rows+=("| $t | $runs | $rate | $cov | $verdict |")
  echo "fuzz $t: $verdict, $runs runs ($rate/s), $cov"
  rm -rf "$work" "$log"
done
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| target | executions | per second | libFuzzer coverage at the end | result |"
echo "|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
[ "$failed" -eq 0 ]
