#!/usr/bin/env bash
# Run every fuzz target for a short, bounded time on a scratch copy of its seed corpus; exit
# non-zero on the first crash or failed property (the input is saved under fuzz/artifacts/).
#
#   fuzz/smoke.sh [SECONDS]        (default 20; .ci/run calls it after the tests)
#
# Env: CARGO_TARGET_DIR (default: the repo's target/fuzz), FUZZ_BUILD_FLAGS (default
# "--dev --sanitizer none"; set it empty for the release + AddressSanitizer default; see
# fuzz/README.md).
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-20}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$(cd .. && pwd)/target/fuzz}
read -r -a flags <<<"${FUZZ_BUILD_FLAGS---dev --sanitizer none}"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

start=$SECONDS
cargo +nightly fuzz build "${flags[@]}" 2>"$scratch/build.log" || { cat "$scratch/build.log"; exit 1; }
echo "fuzz: built $(cargo +nightly fuzz list | wc -l) targets in $((SECONDS - start)) s"

for t in $(cargo +nightly fuzz list); do
  mkdir -p "$scratch/$t"
  cp seeds/"$t"/* "$scratch/$t"/
  log="$scratch/$t.log"
  if ! cargo +nightly fuzz run "${flags[@]}" "$t" "$scratch/$t" -- \
      -max_total_time="$secs" -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1; then
    echo "fuzz $t: FAILED"
    tail -n 60 "$log"
    exit 1
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  cov=$(grep -Eo 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -n 1)
  echo "fuzz $t: ${runs:-?} execs in ${secs} s, ${cov:-no coverage line}"
done
echo "fuzz: all targets clean in $((SECONDS - start)) s"
