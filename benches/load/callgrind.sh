#!/usr/bin/env bash
# Instructions per proxied request, repeatable on a loaded machine: runs the release vpcguard under
# `valgrind --tool=callgrind` (one tokio worker) in front of nginx, turns instrumentation on only
# after a warm-up (so startup, policy compile and the upstream pool's first connects are excluded),
# sends exactly REQUESTS HTTP/1.1 keep-alive requests with h2load, and prints Ir/request.
# The profile is kept as OUT (default ./callgrind.out.vpcguard) for `callgrind_annotate`.
#
# Usage: benches/load/callgrind.sh [REQUESTS=4000] [RULES=10] [ACCESS_LOG=false] [OUT] [PROTO=h1]
#   PROTO: h1 (plain HTTP/1.1), h2c (plain HTTP/2), tls-h1, tls-h2
# Env: EXTRA_CONFIG is appended to the config as top-level YAML (e.g. 'identity_headers: false').
# CONNS (default 4) connections and, for HTTP/2, STREAMS (default 1) streams each in the measured run.
# Loopback only, bounded. Needs: valgrind, nginx-light, nghttp2-client, python3.
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-4000}; RULES=${2:-10}; ACCESS=${3:-false}; OUT=${4:-$PWD/callgrind.out.vpcguard}; PROTO=${5:-h1}
# BIN: a vpcguard binary to measure as it is (an A/B of two builds); unset, this checkout's
# release build.
bin_given=${BIN:+yes}
BIN=${BIN:-${CARGO_TARGET_DIR:-target}/release/vpcguard}
source benches/load/lib.sh
[ -n "$bin_given" ] || cargo build --release --quiet --bin vpcguard

UP=$(free_port); PX=$(free_port); ADM=$(free_port)
start_upstream "$UP"

python3 benches/load/gen_rules.py vpcguard "$RULES" > "$work/policy.yaml"
tls=""; scheme=http
case $PROTO in tls-*) tls='  tls: {}'; scheme=https ;; esac
cat > "$work/v.yaml" <<CFG
listen:
  address: "127.0.0.1:$PX"
$tls
admin:
  address: "127.0.0.1:$ADM"
upstream:
  url: "http://127.0.0.1:$UP"
tenant:
  - static: bench
log:
  access_log: $ACCESS
  level: info
${EXTRA_CONFIG:-}
CFG
TOKIO_WORKER_THREADS=1 valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$OUT" \
  "$BIN" run -c "$work/v.yaml" > "$logs/v.log" 2>&1 & pids+=($!)
vpid=$!
for _ in $(seq 600); do grep -q "vpcguard listening" "$logs/v.log" 2>/dev/null && break; sleep 0.1; done
h2() { case $PROTO in h1|tls-h1) h2load --h1 "$@" ;; *) h2load "$@" ;; esac; }
h2 -n 200 -c 4 "$scheme://127.0.0.1:$PX/" > /dev/null   # warm-up: pool connections, lazy statics
callgrind_control -i on "$vpid" > /dev/null 2>&1
out=$(h2 -n "$N" -c "${CONNS:-4}" -m "${STREAMS:-1}" "$scheme://127.0.0.1:$PX/")
callgrind_control -d "$vpid" > /dev/null 2>&1
ok=$(awk '/status codes:/ {print $3}' <<<"$out")
kill "$vpid"; wait "$vpid" 2>/dev/null || true
mv "$OUT.1" "$OUT"   # the dump taken right after the run; the exit-time dump is discarded
ir=$(awk '/^summary:/ {print $2}' "$OUT")
echo "proto=$PROTO rules=$RULES access_log=$ACCESS requests=$N 2xx=$ok Ir=$ir Ir/request=$((ir / N))"
