#!/usr/bin/env bash
# Runs every cargo-fuzz target for a few seconds on stable Rust (no sanitizer), starting from the
# committed seed corpus. A crash fails the run and leaves the input in fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-4}"
if ! cargo fuzz --version 2>/dev/null | grep -q '0.13'; then
  cargo install cargo-fuzz --version 0.13.2 --locked
fi
cd fuzz
targets=$(cargo fuzz list)
cargo fuzz build --sanitizer none
failed=0
for t in $targets; do
  mkdir -p "corpus/$t"
  # Work on a scratch copy so the committed corpus stays small and reviewed.
  work=$(mktemp -d)
  cp -r "corpus/$t/." "$work/" 2>/dev/null || true
  if cargo fuzz run --sanitizer none "$t" "$work" -- -max_total_time="$seconds" -rss_limit_mb=2048 >"$work.log" 2>&1; then
    echo "fuzz $t: ok ($(grep -Eo 'Done [0-9]+ runs' "$work.log" | tail -1 || echo 'ran'))"
  else
    echo "fuzz $t: CRASH"; tail -40 "$work.log"; failed=$((failed + 1))
  fi
  rm -rf "$work" "$work.log"
done
n=$(echo "$targets" | wc -w)
echo "fuzz: $((n - failed)) passed, $failed failed"
[ "$failed" -eq 0 ]
