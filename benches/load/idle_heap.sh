#!/usr/bin/env bash
# Live heap per idle (parked) keep-alive connection, by allocation site: vpcguard only, under
# valgrind's massif, with the system allocator (mimalloc's pages are invisible to massif).
# Per mode: start vpcguard under massif, open N client connections one after the other with one
# request answered on each (benches/load/idle_clients.py), leave them idle SETTLE seconds (default
# 6: HTTP/1.1 connections park after 1-2 s at rest), take a detailed snapshot of the live heap with
# vgdb; then the same with 2N connections. Bytes per connection are the difference divided by N,
# so the process's own base is not in them; the table lists each allocation site's share.
#
# Usage: benches/load/idle_heap.sh [N=300] [MODES="h1 tls-h1"]
# Builds `cargo build --release --no-default-features` into SYSALLOC_TARGET (default
# target/sysalloc, so that the mimalloc build is left alone), or takes BIN. Loopback only,
# bounded by N; everything started is stopped on exit. Needs valgrind, openssl, python3 (and PyPI
# `h2` for tls-h2).
#
# Result, 2026-12-02 (commit 2d1628a's code, N=300): h1 2,291 bytes per parked connection,
# tls-h1 10,002, tls-h2 (idle, not parked) 54,215; the tables by site are in BENCHMARKS.md
# "A parked connection" and "An idle HTTP/2 connection".
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-300}
MODES=${2:-"h1 tls-h1"}
ACCESS_LOG=false
if [ -z "${BIN:-}" ]; then
  target=${SYSALLOC_TARGET:-target/sysalloc}
  cargo build --release --quiet --no-default-features --bin vpcguard --target-dir "$target"
  BIN=$target/release/vpcguard
fi
source benches/load/lib.sh
source benches/load/proxies.sh
ulimit -n "$(ulimit -Hn)"
make_tls_pair
UP=$(free_port)
start_upstream "$UP"

snapshot() { # mode n out
  local tls=plain px pid fifo
  [ "$1" != h1 ] && tls=tls
  px=$(free_port)
  LAUNCH="valgrind --tool=massif --vgdb=yes --depth=40 --threshold=0.5 --massif-out-file=$work/massif.%p" \
    start_vpcguard 10 "$tls" "$px"
  pid=$PID
  for _ in $(seq 600); do (echo >/dev/tcp/127.0.0.1/"$px") 2>/dev/null && break; sleep 0.2; done
  python3 benches/load/idle_clients.py "$px" "$1" 1 < /dev/null > /dev/null
  rm -f "$work/clients.out"
  exec {fifo}> >(python3 benches/load/idle_clients.py "$px" "$1" "$2" > "$work/clients.out")
  for _ in $(seq 1200); do grep -q ready "$work/clients.out" 2>/dev/null && break; sleep 0.2; done
  grep -q ready "$work/clients.out" || { echo "clients not ready" >&2; exit 1; }
  sleep "${SETTLE:-6}"
  vgdb --pid="$pid" detailed_snapshot "$3" > /dev/null
  exec {fifo}>&-
  kill -INT "$pid"; wait "$pid" || true
}

for mode in $MODES; do
  snapshot "$mode" "$N" "$work/$mode.1"
  snapshot "$mode" "$((2 * N))" "$work/$mode.2"
  python3 - "$work/$mode.1" "$work/$mode.2" "$N" "$mode" <<'PY'
import re, sys
from collections import defaultdict

def table(path):
    """Live heap of a massif snapshot (mem_heap_B) and its top-level allocation sites, each named
    by its first two frames that name vpcguard, tokio, hyper, rustls or aws-lc (the allocator's
    own frames skipped); sites with the same name are added up."""
    total, by, cur = 0, defaultdict(int), None
    tops = []
    for line in open(path):
        t = re.match(r'^mem_heap_B=(\d+)', line)
        if t:
            total = int(t.group(1))
        m = re.match(r'^( *)n\d+: (\d+) (.*)$', line.rstrip('\n'))
        if not m:
            continue
        depth, size, desc = len(m.group(1)), int(m.group(2)), m.group(3)
        if depth == 1:
            cur = [size, []]
            tops.append(cur)
        elif depth > 1 and cur is not None and len(cur[1]) < 2:
            if re.search(r'vpcguard|tokio|hyper|rustls|aws_lc', desc):
                name = re.sub(r'^0x[0-9A-F]+: ', '', desc)
                cur[1].append(re.sub(r' \(.*\)$', '', name)[:90])
    for size, names in tops:
        by[' <- '.join(names) or '(below the threshold)'] += size
    return total, by

one, two, n, mode = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
t1, b1 = table(one)
t2, b2 = table(two)
print(f"\n{mode}: {t1} bytes of live heap with {n} connections, {t2} with {2 * n}: "
      f"{(t2 - t1) / n:,.0f} bytes per parked connection\n")
print("| bytes per connection | allocation site |\n|---|---|")
rows = sorted(((b2.get(k, 0) - b1.get(k, 0)) / n, k) for k in set(b1) | set(b2))
print("(a negative row is a site under massif's 0.5 % threshold in one snapshot and not in the"
      " other, where it is counted in the threshold row instead)")
for per, k in reversed(rows):
    if abs(per) >= 16:
        print(f"| {per:,.0f} | {k} |")
PY
done
