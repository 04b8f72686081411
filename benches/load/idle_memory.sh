#!/usr/bin/env bash
# Memory per idle keep-alive connection: vpcguard vs HAProxy vs nginx (configured as in run.sh,
# benches/load/proxies.sh, one worker each), HTTP/1.1 plain and over TLS, and HTTP/2 over TLS.
# Per proxy and mode: start it, open N client connections one after the other with one request
# answered on each (benches/load/idle_clients.py), leave them idle, and report the growth of the
# proxy's resident memory (VmRSS, after − before, one sample each) divided by N. The upstream
# pool stays at one connection (the requests are sequential), so the growth is the client side.
# The sample is taken SETTLE seconds (default 3) after the last connection had its answer, the
# same for every proxy: an idle connection is one that has been idle a while (vpcguard parks an
# HTTP/1.1 connection after 1-2 s at rest, README "Idle HTTP/1.1 connections park"); SETTLE=0
# samples at once.
#
# Usage: benches/load/idle_memory.sh [N=1000] [PROXIES="vpcguard haproxy nginx-geo"] [MODES="h1 tls-h1 tls-h2"]
# Loopback only, bounded by N; everything started is stopped on exit. Needs: nginx-light,
# haproxy, openssl, python3 with PyPI `h2`.
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-1000}
PROXIES=${2:-"vpcguard haproxy nginx-geo"}
MODES=${3:-"h1 tls-h1 tls-h2"}
ACCESS_LOG=false
# BIN: a vpcguard binary to measure as it is; unset, this checkout's release build.
bin_given=${BIN:+yes}
BIN=${BIN:-${CARGO_TARGET_DIR:-target}/release/vpcguard}
source benches/load/lib.sh
source benches/load/proxies.sh
ulimit -n "$(ulimit -Hn)"   # N client sockets plus the proxy's
[ -n "$bin_given" ] || cargo build --release --quiet --bin vpcguard
make_tls_pair
UP=$(free_port)
start_upstream "$UP"
export NGINX_MASTER=off
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

echo "| proxy | mode | connections | RSS before | RSS idle | KiB per idle connection |"
echo "|---|---|---|---|---|---|"
for proxy in $PROXIES; do
  for mode in $MODES; do
    tls=plain; [ "$mode" != h1 ] && tls=tls
    PX=$(free_port)
    case $proxy in
      vpcguard) start_vpcguard 10 "$tls" "$PX" ;;
      haproxy) start_haproxy 10 "$tls" "$PX" ;;
      nginx-*) start_nginx "$proxy" 10 "$tls" "$PX" ;;
    esac
    pid=$PID
    wait_port "$PX"
    # Warm up: one connection's request, so first-use allocations are not counted.
    python3 benches/load/idle_clients.py "$PX" "$mode" 1 < /dev/null > /dev/null
    before=$(rss_kib "$pid")
    exec {fifo}> >(python3 benches/load/idle_clients.py "$PX" "$mode" "$N" > "$work/clients.out")
    for _ in $(seq 600); do grep -q ready "$work/clients.out" 2>/dev/null && break; sleep 0.1; done
    grep -q "ready $N" "$work/clients.out" || { echo "clients did not get ready: $(cat "$work/clients.out")"; exit 1; }
    sleep "${SETTLE:-3}"
    after=$(rss_kib "$pid")
    exec {fifo}>&-
    python3 -c "print(f'| $proxy | $mode | $N | {$before} KiB | {$after} KiB | {($after - $before) / $N:.1f} |')"
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
done
echo
echo "$(date -u +%F); vpcguard $("$BIN" --version | awk '{print $2}'); $(nginx -v 2>&1 | sed 's/.*: //'); $(haproxy -v | head -1 | awk '{print "HAProxy", $3}'); N=$N; sampled ${SETTLE:-3} s after the last answer"
