#!/usr/bin/env bash
# The long run the fuzzing issue asks for once: each target until 10 million executions or 30
# minutes, whichever comes first, release build with AddressSanitizer (cargo-fuzz's default).
# Prints one table row per target; the corpus each run grew is kept under $OUT/<target>.
#
#   fuzz/long.sh [TARGET ...]          (default: every target, one after the other)
#
# Env: RUNS (default 10000000), SECS (default 1800), OUT (default ../target/fuzz-long-corpus),
# CARGO_TARGET_DIR (default ../target/fuzz-long). Run two lanes in parallel on a 2-core machine
# by giving each lane its own target list; `nice` them if builds share the machine.
set -euo pipefail
cd "$(dirname "$0")"
runs=${RUNS:-10000000}
secs=${SECS:-1800}
root=$(cd .. && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target/fuzz-long}
out=${OUT:-$root/target/fuzz-long-corpus}
mkdir -p "$out"
cargo +nightly fuzz build >"$out/build.log" 2>&1 || { tail -n 40 "$out/build.log"; exit 1; }
targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo +nightly fuzz list)
for t in "${targets[@]}"; do
  mkdir -p "$out/$t"
  cp -n seeds/"$t"/* "$out/$t"/ 2>/dev/null || true
  log="$out/$t.log"
  start=$SECONDS
  status=clean
  cargo +nightly fuzz run "$t" "$out/$t" -- -runs="$runs" -max_total_time="$secs" \
    -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1 || status=FAILED
  n=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  cov=$(grep -Eo 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -n 1)
  files=$(find "$out/$t" -type f | wc -l)
  echo "| $t | ${n:-?} | $((SECONDS - start)) s | ${cov:-?} | $files | $status |"
  [ "$status" = clean ] || tail -n 40 "$log"
done
