#!/usr/bin/env bash
# New TLS connections in 500-connection bursts: vpcguard vs HAProxy (vs nginx), with the
# certificate key that decides which side of the handshake is the expensive one.
#
# What: the rate of new TLS connections (full TLS 1.3 handshake, one HTTP/1.1 request each) that
# each proxy sustains in bursts of C simultaneous connections, and the proxy CPU per handshake.
#
# Why two keys: with an ECDSA P-256 certificate (run.sh's, like vpcguard's self-signed one) the
# client's half of the handshake (OpenSSL 3.0's ECDSA verify and key share, in h2load) costs more
# than the server's, so on this 2-core machine the client saturates its core first and the burst
# rate measures the client: run.sh's "tls-handshake" row moved between 0.84x and 1.36x of HAProxy
# from run to run. With an RSA-2048 certificate the server signs (the expensive half) and the
# client only verifies, so the proxy's core is the one that saturates and the rate ranks the
# proxies. Both are reported, with how busy each core was, so a reader can see which it was.
#
# How: one upstream (nginx, 1 worker, 2-byte body) and, one at a time in front of it, each proxy
# configured exactly as run.sh configures it (benches/load/proxies.sh, mode tls, 10 rules),
# serving a certificate of the key type under test. The proxy is pinned to CPU 0; the upstream and
# the load generator share CPU 1. Per proxy and key: a warm-up burst, then WAVES bursts of
# `h2load --h1 -c C -n C -m1` (h2load reuses a client's connection for its next request, so one
# request per client is one connection each); the rate is connections over the sum of h2load's
# own "finished in" times. Repeated R times, alternating proxies, medians reported.
# Proxy CPU us/handshake = delta of utime+stime (+children) of the proxy's process tree
# (/proc/PID/stat) over the bursts / connections; client CPU the same for the h2load processes
# (bash `times`); CPU 0 / CPU 1 busy = /proc/stat over the bursts' wall-clock time.
#
# Usage: benches/load/handshakes.sh [R=3] [KEYS="ec rsa"] [PROXIES="vpcguard haproxy"]
# Env: WAVES (default 8), C (default 500), BIN (default ${CARGO_TARGET_DIR:-target}/release/vpcguard,
#      built only if missing). Loopback only; every burst is bounded (-n); all processes are stopped
#      on exit (trap). With the defaults it takes about 3 minutes. Needs: nginx-light, haproxy,
#      nghttp2-client, openssl, python3, util-linux (taskset) (Debian packages).
set -euo pipefail
cd "$(dirname "$0")/../.."
R=${1:-3}
KEYS=${2:-"ec rsa"}
PROXIES=${3:-"vpcguard haproxy"}
WAVES=${WAVES:-8}
C=${C:-500}
ACCESS_LOG=false
BIN=${BIN:-${CARGO_TARGET_DIR:-target}/release/vpcguard}
source benches/load/lib.sh
source benches/load/proxies.sh
[ -x "$BIN" ] || cargo build --release --quiet --bin vpcguard
hz=$(getconf CLK_TCK)
res=$work/handshakes.tsv
: > "$res"

make_key() { # ec | rsa: $work/cert.pem, key.pem, combined.pem
  case $1 in
    ec) make_tls_pair ;;
    rsa)
      openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost \
        -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
      cat "$work/cert.pem" "$work/key.pem" > "$work/combined.pem" ;;
    *) echo "unknown key type $1 (ec | rsa)" >&2; exit 2 ;;
  esac
}
tree_ticks() { # utime+stime+cutime+cstime of PID and its children
  local p t=0
  for p in $1 $(pgrep -P "$1" || true); do
    [ -r "/proc/$p/stat" ] && t=$((t + $(awk '{print $14+$15+$16+$17}' "/proc/$p/stat")))
  done
  echo "$t"
}
cpu_busy() { awk -v c="cpu$1" '$1==c {print $2+$3+$4+$7+$8}' /proc/stat; }

UP=$(free_port)
start_upstream "$UP" 1
for key in $KEYS; do
  make_key "$key"
  for run in $(seq "$R"); do
    for proxy in $PROXIES; do
      port=$(free_port)
      case $proxy in
        vpcguard) start_vpcguard 10 tls "$port" ;;
        haproxy) start_haproxy 10 tls "$port" ;;
        nginx-*) start_nginx "$proxy" 10 tls "$port" ;;
        *) echo "unknown proxy $proxy" >&2; exit 2 ;;
      esac
      wait_port "$port" || wait_port "$port" || { echo "$proxy did not start" >&2; exit 1; }
      url="https://127.0.0.1:$port/"
      taskset -c 1 h2load --h1 -c "$C" -n "$C" -m1 "$url" > /dev/null 2>&1   # warm-up
      b=$(tree_ticks "$PID"); c0=$(cpu_busy 0); c1=$(cpu_busy 1); t0=$(date +%s.%N)
      out=$(for _ in $(seq "$WAVES"); do taskset -c 1 h2load --h1 -c "$C" -n "$C" -m1 "$url" 2>&1; done; times)
      t1=$(date +%s.%N); a=$(tree_ticks "$PID"); d0=$(cpu_busy 0); d1=$(cpu_busy 1)
      n=$(awk '/requests:/ {s+=$8} END {print s}' <<<"$out")
      bad=$(awk '/requests:/ {s+=$10+$12} END {print s}' <<<"$out")
      [ "$bad" = 0 ] || { echo "$proxy $key: $bad failed or errored requests" >&2; exit 1; }
      OUT=$out python3 - "$proxy" "$key" "$n" "$((a - b))" "$((d0 - c0))" "$((d1 - c1))" "$t0" "$t1" "$hz" <<'PY' >> "$res"
import os, re, sys
proxy, key, n, ticks, b0, b1, t0, t1, hz = sys.argv[1:]
n, ticks, b0, b1, hz = int(n), int(ticks), int(b0), int(b1), int(hz)
out = os.environ["OUT"]
u = {"us": 1e-6, "ms": 1e-3, "s": 1}
secs = sum(float(v) * u[k] for v, k in re.findall(r"finished in ([0-9.]+)(us|ms|s),", out))
# bash `times`: the shell's own line, then its children's (the h2load processes)
cu, cs = re.findall(r"(\d+)m([0-9.]+)s", out.strip().splitlines()[-1])
client = int(cu[0]) * 60 + float(cu[1]) + int(cs[0]) * 60 + float(cs[1])
wall = float(t1) - float(t0)
print("\t".join(map(str, [proxy, key, n, round(n / secs), round(ticks / hz / n * 1e6),
      round(client / n * 1e6), round(b0 / hz / wall * 100), round(b1 / hz / wall * 100)])))
PY
      kill "$PID"; wait "$PID" 2>/dev/null || true
    done
  done
done

python3 - "$res" "$PROXIES" <<'PY'
import statistics as st, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
proxies = sys.argv[2].split()
keys = list(dict.fromkeys(r[1] for r in rows))
med = lambda xs: st.median(xs) if xs else float("nan")
print("| key | proxy | handshakes/s per run | median | ÷ HAProxy | proxy CPU µs/handshake | client CPU µs/handshake | CPU 0 (proxy) busy | CPU 1 (client + upstream) busy |")
print("|---|---|---|---|---|---|---|---|---|")
for k in keys:
    hap = med([int(r[3]) for r in rows if r[1] == k and r[0] == "haproxy"])
    for p in proxies:
        rs = [r for r in rows if r[1] == k and r[0] == p]
        rate = med([int(r[3]) for r in rs])
        ratio = f"{rate / hap:.2f}" if hap == hap and hap else "-"
        print(f"| {k} | {p} | {', '.join(r[3] for r in rs)} | {rate:.0f} | {ratio} | "
              f"{med([int(r[4]) for r in rs]):.0f} | {med([int(r[5]) for r in rs]):.0f} | "
              f"{med([int(r[6]) for r in rs]):.0f} % | {med([int(r[7]) for r in rs]):.0f} % |")
PY
echo
echo "$(date -u +%F), $(nproc) cores, $(uname -r); $("$BIN" --version); $(haproxy -v | head -1 | cut -d' ' -f1-3); $(h2load --version); $(openssl version)"
echo "proxy on CPU 0 (1 worker), upstream nginx + h2load on CPU 1; per proxy, key and run: 1 warm-up + $WAVES bursts of $C new TLS connections, 1 HTTP/1.1 request each"
