#!/usr/bin/env bash
# User-space instructions and system calls per proxied request: vpcguard vs nginx vs HAProxy, each
# configured as in run.sh (benches/load/proxies.sh). Unlike CPU time on a shared VM, both numbers
# repeat to within about 1 % run after run, so this is the comparison to decide on; run.sh gives
# the wall-clock view.
#
# Per proxy and run: start it under `valgrind --tool=callgrind --instr-atstart=no` (nginx as a
# single process), warm up with 200 requests, switch instrumentation on, send REQUESTS requests
# with h2load over CONNS (default 4) connections, dump, and divide the instructions (Ir) by the requests. Then the
# same run without valgrind under `strace -c -f` for system calls per request. The TLS runs include
# the CONNS handshakes of the measured connections in the count (same for every proxy).
#
# Usage: benches/load/instructions.sh [REQUESTS=8000] [RULES=10] [PROXIES="vpcguard nginx-geo haproxy"] [RUNS="h1 tls-h1 tls-h2"]
# Env: CACHE_SIM=yes adds callgrind's cache and branch simulation (--cache-sim=yes
# --branch-sim=yes) and prints every simulated event per request (L1/LL misses, mispredictions);
# CONNS=32 runs with run.sh's 32 connections (more in flight: more upstream connections, less
# batching per wakeup); STREAMS (default 4) is the HTTP/2 streams per connection (issue 14's
# target is 32 connections x 10 streams).
# Loopback only, bounded by REQUESTS; everything started is stopped on exit. About 1 minute per
# proxy × run. Needs: valgrind, strace, nginx-light, haproxy, nghttp2-client, openssl, python3.
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-8000}; RULES=${2:-10}
PROXIES=${3:-"vpcguard nginx-geo haproxy"}
RUNS=${4:-"h1 tls-h1 tls-h2"}
ACCESS_LOG=false
# BIN: a vpcguard binary to measure as it is (an A/B of two builds); unset, this checkout's
# release build.
bin_given=${BIN:+yes}
BIN=${BIN:-${CARGO_TARGET_DIR:-target}/release/vpcguard}
source benches/load/lib.sh
sim=""; [ "${CACHE_SIM:-}" = yes ] && sim="--cache-sim=yes --branch-sim=yes"
source benches/load/proxies.sh
[ -n "$bin_given" ] || cargo build --release --quiet --bin vpcguard
make_tls_pair
UP=$(free_port)
start_upstream "$UP"
export NGINX_MASTER=off
RES=$work/res.tsv; : > "$RES"

start() { # proxy mode port
  case $1 in
    vpcguard) start_vpcguard "$RULES" "$2" "$3" ;;
    nginx-*) start_nginx "$1" "$RULES" "$2" "$3" ;;
    haproxy) start_haproxy "$RULES" "$2" "$3" ;;
  esac
  for _ in 1 2 3 4 5 6; do wait_port "$3" && return 0; done
  echo "$1 did not start" >&2; cat "$work"/*.log "$logs"/*.log >&2; exit 1
}
load() { # run url requests
  case $1 in
    tls-h2) h2load -n "$3" -c "${CONNS:-4}" -m "${STREAMS:-4}" "$2" ;;
    *) h2load --h1 -n "$3" -c "${CONNS:-4}" "$2" ;;
  esac
}
ok() { awk '/status codes:/ {print $3}'; }

for proxy in $PROXIES; do
  for run in $RUNS; do
    mode=plain; scheme=http
    case $run in tls-*) mode=tls; scheme=https ;; esac
    # 1. Instructions, under callgrind.
    port=$(free_port); out=$work/cg.$proxy.$run
    LAUNCH="valgrind --tool=callgrind ${sim:-} --instr-atstart=no --callgrind-out-file=$out" start "$proxy" "$mode" "$port"
    load "$run" "$scheme://127.0.0.1:$port/" 200 > /dev/null
    callgrind_control -i on "$PID" > /dev/null
    n=$(load "$run" "$scheme://127.0.0.1:$port/" "$N" | ok)
    callgrind_control -d "$PID" > /dev/null
    kill "$PID"; wait "$PID" 2>/dev/null || true
    ir=$(awk '/^summary:/ {print $2}' "$out.1")
    if [ -n "${sim:-}" ]; then   # every simulated event per request, for the cache table
      paste -d' ' <(awk '/^events:/ {for (i = 2; i <= NF; i++) print $i}' "$out.1") \
        <(awk -v n="$N" '/^summary:/ {for (i = 2; i <= NF; i++) printf "%.0f\n", $i / n}' "$out.1") |
        tr '\n' ' ' | sed "s/^/$proxy $run per request: /" >&2; echo >&2
    fi
    [ "$n" = "$N" ] || { echo "$proxy $run: $n of $N requests answered 2xx" >&2; exit 1; }
    # 2. System calls, natively under strace.
    port=$(free_port)
    LAUNCH="" start "$proxy" "$mode" "$port"
    load "$run" "$scheme://127.0.0.1:$port/" 200 > /dev/null
    strace -c -f -p "$PID" -o "$work/st" 2> /dev/null & st=$!
    sleep 1   # strace attaches to every thread
    load "$run" "$scheme://127.0.0.1:$port/" "$N" > /dev/null
    kill -INT "$st"; wait "$st" 2>/dev/null || true
    calls=$(awk '$NF=="total" {print $(NF-2)}' "$work/st")
    kill "$PID"; wait "$PID" 2>/dev/null || true
    printf '%s\t%s\t%s\t%s\n' "$proxy" "$run" "$((ir / N))" "$calls" >> "$RES"
    echo "$proxy $run: Ir/request=$((ir / N)) syscalls=$calls" >&2
  done
done

python3 - "$RES" "$N" <<'PY'
import sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
n = int(sys.argv[2])
ir = {(r[0], r[1]): int(r[2]) for r in rows}
def ratio(r, other):
    o = ir.get((other, r[1]))
    return f"{int(r[2]) / o:.2f}" if o else "-"
print("| proxy | run | user-space instructions/request | system calls/request | ÷ nginx geo | ÷ HAProxy |")
print("|---|---|---|---|---|---|")
for r in rows:
    print(f"| {r[0]} | {r[1]} | {int(r[2]):,} | {int(r[3]) / n:.2f} | {ratio(r, 'nginx-geo')} | {ratio(r, 'haproxy')} |")
PY
echo
echo "$(date -u +%F); $("$BIN" --version); $(nginx -v 2>&1); $(haproxy -v | head -1 | cut -d' ' -f1-3); $(h2load --version); $(valgrind --version)"
echo "$N requests over ${CONNS:-4} connections per run (h2: ${STREAMS:-4} streams each), $RULES rules, access logs off"
