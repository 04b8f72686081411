#!/usr/bin/env bash
# Where a proxy's CPU per request goes under load: user space against kernel, with its system calls
# and context switches per request. vpcguard vs HAProxy (configured as in run.sh,
# benches/load/proxies.sh), HTTP/2 over TLS (`h2load -cC -mM`, run.sh's 32 x 4 by default) or
# HTTP/1.1 (`wrk`), the proxy pinned to CPU 0 and the client and upstream on CPU 1.
#
# Per proxy and round: start it, warm up with 20,000 requests, then one DURATION-second run while
# `perf stat -e raw_syscalls:sys_enter` counts the proxy's system calls; user and system time from
# /proc/PID/stat (utime, stime), minor page faults from the same (minflt), context switches from
# /proc/PID/status. The proxies alternate
# ROUNDS times, so that a noisy stretch of the machine falls on both.
#
# Usage: benches/load/cpu_split.sh [DURATION=5] [ROUNDS=3] [RUN=tls-h2|tls-h1|h1] [PROXIES="vpcguard haproxy"]
# Env: C (default 32) connections, M (default 4) HTTP/2 streams each; BIN a vpcguard binary to
# measure as it is (unset: this checkout's release build).
# Loopback only, bounded by DURATION; everything started is stopped on exit. Needs: haproxy,
# nginx-light, nghttp2-client, wrk, perf (linux-perf), openssl, python3; root or
# perf_event_paranoid <= -1 for the tracepoint.
#
# Result, 2026-12-02 (commit 2d1628a's code; BENCHMARKS.md "Where the CPU goes, user space and
# kernel"): HTTP/2 vpcguard 17.2-20.5 us/request against HAProxy's 14.7-16.5 (user space 1.28-1.44x,
# kernel 0.99-1.13x); HTTP/1.1 19.1-19.9 against 15.6-18.2.
set -euo pipefail
cd "$(dirname "$0")/../.."
DUR=${1:-5}; ROUNDS=${2:-3}; RUN=${3:-tls-h2}
PROXIES=${4:-"vpcguard haproxy"}
C=${C:-32}; M=${M:-4}
ACCESS_LOG=false
bin_given=${BIN:+yes}
BIN=${BIN:-${CARGO_TARGET_DIR:-target}/release/vpcguard}
source benches/load/lib.sh
source benches/load/proxies.sh
[ -n "$bin_given" ] || cargo build --release --quiet --bin vpcguard
command -v perf >/dev/null || { echo "cpu_split.sh: needs perf (Debian linux-perf)" >&2; exit 1; }
make_tls_pair
UP=$(free_port)
start_upstream "$UP" 1
hz=$(getconf CLK_TCK)
mode=tls; scheme=https
[ "$RUN" = h1 ] && { mode=plain; scheme=http; }

load() { # url seconds-or-requests kind
  case $RUN in
    tls-h2) taskset -c 1 h2load -c"$C" -m"$M" "$2" "$1" ;;
    *) taskset -c 1 wrk -t1 -c"$C" "$2" "$1" ;;
  esac
}
requests() { # the load's output -> requests done
  case $RUN in
    tls-h2) awk '/requests:/ {print $8}' ;;
    *) awk '/requests in/ {print $1}' ;;
  esac
}

echo "| round | proxy | run | req/s | user µs/req | kernel µs/req | total µs/req | syscalls/req | voluntary / involuntary switches per 1,000 req | minor page faults per 1,000 req |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for round in $(seq "$ROUNDS"); do
  for proxy in $PROXIES; do
    port=$(free_port)
    case $proxy in
      vpcguard) start_vpcguard 10 "$mode" "$port" ;;
      haproxy) start_haproxy 10 "$mode" "$port" ;;
      *) echo "unknown proxy $proxy" >&2; exit 2 ;;
    esac
    wait_port "$port"
    url="$scheme://127.0.0.1:$port/"
    case $RUN in
      tls-h2) load "$url" -n20000 > /dev/null ;;
      *) load "$url" -d2s > /dev/null ;;
    esac
    read -r f0 u0 s0 < <(awk '{print $10, $14, $15}' "/proc/$PID/stat")
    v0=$(awk '/^voluntary_ctxt/ {print $2}' "/proc/$PID/status")
    i0=$(awk '/^nonvoluntary_ctxt/ {print $2}' "/proc/$PID/status")
    perf stat -e raw_syscalls:sys_enter -p "$PID" -o "$work/perf.txt" -- sleep "$((DUR + 1))" &
    pp=$!
    case $RUN in
      tls-h2) out=$(load "$url" -D"$DUR" 2>&1) ;;
      *) out=$(load "$url" -d"${DUR}s" 2>&1) ;;
    esac
    wait "$pp" || true
    read -r f1 u1 s1 < <(awk '{print $10, $14, $15}' "/proc/$PID/stat")
    v1=$(awk '/^voluntary_ctxt/ {print $2}' "/proc/$PID/status")
    i1=$(awk '/^nonvoluntary_ctxt/ {print $2}' "/proc/$PID/status")
    n=$(requests <<<"$out")
    sc=$(awk '/raw_syscalls/ {gsub(",", "", $1); print $1}' "$work/perf.txt")
    python3 - "$round" "$proxy" "$RUN" "$DUR" "$n" "$hz" "$u0" "$u1" "$s0" "$s1" "$sc" "$v0" "$v1" "$i0" "$i1" "$f0" "$f1" <<'PY'
import sys
r, proxy, run, dur, n, hz, u0, u1, s0, s1, sc, v0, v1, i0, i1, f0, f1 = sys.argv[1:]
n = max(int(n), 1); hz = int(hz)
user = (int(u1) - int(u0)) / hz / n * 1e6
sys_ = (int(s1) - int(s0)) / hz / n * 1e6
print(f"| {r} | {proxy} | {run} | {n / float(dur):,.0f} | {user:.1f} | {sys_:.1f} | {user + sys_:.1f} | "
      f"{int(sc) / n:.2f} | {(int(v1) - int(v0)) * 1000 / n:.1f} / {(int(i1) - int(i0)) * 1000 / n:.1f} | "
      f"{(int(f1) - int(f0)) * 1000 / n:.1f} |")
PY
    kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true
  done
done
echo
echo "$(date -u +%F), $(nproc) cores, $(uname -r); $("$BIN" --version); $(haproxy -v | head -1 | cut -d' ' -f1-3); $(h2load --version); C=$C M=$M, ${DUR} s per run"
