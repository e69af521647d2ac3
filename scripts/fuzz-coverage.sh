#!/usr/bin/env bash
# Runs one fuzz target for SECONDS (no sanitizer, from a scratch copy of the committed corpus)
# with FLEETWIRE_FUZZ_COVERAGE=1 and prints how many distinct states, events and message kinds
# it reached (see fuzz/fuzz_targets/common/coverage.rs), then the tags themselves.
#   scripts/fuzz-coverage.sh session_server 60
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
target=${1:?target}
seconds=${2:-60}
work=$(mktemp -d)
cp -r "corpus/$target/." "$work/" 2>/dev/null || true
FLEETWIRE_FUZZ_COVERAGE=1 cargo fuzz run --sanitizer none "$target" "$work" -- \
  -max_total_time="$seconds" -rss_limit_mb=2048 >"$work.log" 2>&1 || { tail -40 "$work.log"; exit 1; }
tags=$(grep -o 'fuzz-coverage: .*' "$work.log" | sort -u | sed 's/^fuzz-coverage: //')
runs=$(grep -Eo 'Done [0-9]+ runs' "$work.log" | tail -1)
echo "$target: $(echo "$tags" | grep -c . || true) distinct tags in ${seconds} s ($runs)"
echo "$tags" | sed 's/^/  /'
rm -rf "$work" "$work.log"
