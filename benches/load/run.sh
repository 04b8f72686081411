#!/usr/bin/env bash
# vpcguard vs nginx vs HAProxy as allowlisting reverse proxies, side by side on this machine.
#
# One upstream (nginx, 1 worker, returns a 2-byte static body) on 127.0.0.1, then in turn, for each
# allowlist size and for plain HTTP and TLS, one proxy at a time in front of it:
#   vpcguard     trusted_ips policy (interval search), 1 tokio worker (TOKIO_WORKER_THREADS=1)
#   nginx-allow  `allow …; deny all;` (a linear list), worker_processes 1
#   nginx-geo    `geo $allowed { … }` (radix tree) + `if ($allowed = 0) { return 403; }`
#   haproxy      `acl allowed src -f FILE` (ebtree) + `http-request deny unless allowed`, nbthread 1
# Each proxy adds X-Forwarded-For, X-Forwarded-Proto and X-Request-Id, keeps upstream connections
# alive, has access logs off, and is pinned to CPU 0 (taskset); the load generator and the upstream
# share CPU 1. Every list holds N-1 networks that do not match and 127.0.0.0/8 last (gen_rules.py).
#
# Runs per proxy × rules: wrk HTTP/1.1 keep-alive plain and over TLS, h2load HTTP/2 over TLS, and at
# the smallest list a TLS handshake run (h2load, one request per connection); plus the upstream
# alone as the ceiling. Proxy CPU µs/request = (utime+stime+cutime+cstime of the proxy's process
# tree from /proc/PID/stat) over the run ÷ requests — on 2 cores the client saturates before a
# proxy does, so this, not req/s, ranks the proxies.
#
# Usage: benches/load/run.sh [DURATION=5] [RULES="10 10000 100000"] [PROXIES="vpcguard nginx-allow nginx-geo haproxy"]
# Env: ACCESS_LOG=true runs vpcguard with its access log on (default off, like the others);
#      CARGO_TARGET_DIR is honoured; RESULTS=FILE keeps the raw TSV.
# Loopback only; every run is bounded (-d / -D / -n); all processes are stopped on exit (trap).
# With the defaults it takes about 6 minutes. Needs: nginx-light, haproxy, wrk, nghttp2-client,
# openssl, python3 (Debian packages).
set -euo pipefail
cd "$(dirname "$0")/../.."
DUR=${1:-5}
RULES=${2:-"10 10000 100000"}
PROXIES=${3:-"vpcguard nginx-allow nginx-geo haproxy"}
ACCESS_LOG=${ACCESS_LOG:-false}
# BIN: a vpcguard binary to measure as it is (an A/B of two builds); unset, this checkout's
# release build.
bin_given=${BIN:+yes}
BIN=${BIN:-${CARGO_TARGET_DIR:-target}/release/vpcguard}
source benches/load/lib.sh
RES=${RESULTS:-$work/results.tsv}
: > "$RES"
hz=$(getconf CLK_TCK)
first_rules=${RULES%% *}

[ -n "$bin_given" ] || cargo build --release --quiet --bin vpcguard

# --- certificate shared by every TLS listener (ECDSA P-256, like vpcguard's self-signed one) -------
make_tls_pair

# --- upstream: nginx, one worker, CPU 1 ---------------------------------------------------------------
UP=$(free_port)
start_upstream "$UP" 1

# --- measurement helpers --------------------------------------------------------------------------------
tree_ticks() { # utime+stime+cutime+cstime of PID and all its descendants
  local p t=0
  for p in $1 $(pgrep -P "$1" || true); do
    [ -r "/proc/$p/stat" ] && t=$((t + $(awk '{print $14+$15+$16+$17}' "/proc/$p/stat")))
  done
  echo "$t"
}
record() { printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >> "$RES"; }
cpu_per() { python3 -c "print(round(($2-$1)/$hz/max($3,1)*1e6,1))"; }
run_wrk() { # proxy rules mode url pid
  local b=0 a=0 out n cpu="-"
  [ -n "$5" ] && b=$(tree_ticks "$5")
  out=$(taskset -c 1 wrk -t1 -c32 -d"${DUR}s" --latency "$4")
  [ -n "$5" ] && a=$(tree_ticks "$5")
  n=$(awk '/requests in/ {print $1}' <<<"$out")
  grep -q "Non-2xx" <<<"$out" && { echo "non-2xx answers from $1 $2 $3" >&2; exit 1; }
  [ -n "$5" ] && cpu=$(cpu_per "$b" "$a" "$n")
  record "$1" "$2" "$3" "$(awk '/Requests\/sec/ {print $2}' <<<"$out")" \
    "$(awk '$1=="50%" {print $2}' <<<"$out")" "$(awk '$1=="99%" {print $2}' <<<"$out")" "$cpu" "$n"
}
h2_pcts() { # h2load --log-file: 3rd column is µs to the end of the response
  python3 - "$1" <<'PY'
import sys
v = sorted(int(l.split()[2]) for l in open(sys.argv[1]) if l.strip())
p = lambda q: v[min(len(v) - 1, int(q * len(v)))] if v else 0
print(f"{p(0.5)}us\t{p(0.99)}us")
PY
}
run_h2() { # proxy rules mode url pid
  local b a out n lat
  b=$(tree_ticks "$5")
  out=$(taskset -c 1 h2load -c32 -m4 -D"$DUR" --log-file="$work/h2.log" "$4" 2>&1)
  a=$(tree_ticks "$5")
  n=$(awk '/requests:/ {print $8}' <<<"$out")
  lat=$(h2_pcts "$work/h2.log")
  record "$1" "$2" "$3" "$(awk '/finished in/ {print $4}' <<<"$out")" "${lat%%$'\t'*}" "${lat##*$'\t'}" \
    "$(cpu_per "$b" "$a" "$n")" "$n"
}
run_handshakes() { # proxy rules url pid: 2000 connections, one HTTP/1.1 request each
  local b a out n secs
  b=$(tree_ticks "$4")
  # h2load reuses a client's connection for its next request: 4 waves of 500 clients × 1 request
  out=$(for _ in 1 2 3 4; do taskset -c 1 h2load --h1 -c 500 -n 500 -m1 "$3" 2>&1; done)
  a=$(tree_ticks "$4")
  n=$(awk '/requests:/ {s+=$8} END {print s}' <<<"$out")
  secs=$(python3 -c 'import re,sys; u={"us":1e-6,"ms":1e-3,"s":1}; print(sum(float(v)*u[k] for v,k in re.findall(r"finished in ([0-9.]+)(us|ms|s),", sys.stdin.read())))' <<<"$out")
  record "$1" "$2" "tls-handshake" "$(python3 -c "print(round($n/$secs))")" "-" "-" "$(cpu_per "$b" "$a" "$n")" "$n"
}

# --- proxies: start_vpcguard / start_nginx / start_haproxy (benches/load/proxies.sh) ---------------------
source benches/load/proxies.sh
stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

# --- the runs ---------------------------------------------------------------------------------------------
run_wrk upstream - plain "http://127.0.0.1:$UP/" ""
for rules in $RULES; do
  for proxy in $PROXIES; do
    for mode in plain tls; do
      port=$(free_port)
      case $proxy in
        vpcguard) start_vpcguard "$rules" "$mode" "$port" ;;
        nginx-*) start_nginx "$proxy" "$rules" "$mode" "$port" ;;
        haproxy) start_haproxy "$rules" "$mode" "$port" ;;
      esac
      wait_port "$port" || wait_port "$port" || wait_port "$port" || { echo "$proxy did not start" >&2; cat "$work"/*.log "$logs"/*.log >&2; exit 1; }
      if [ "$mode" = plain ]; then
        url="http://127.0.0.1:$port/"
        taskset -c 1 wrk -t1 -c32 -d1s "$url" > /dev/null   # warm-up: upstream pool, caches
        run_wrk "$proxy" "$rules" h1 "$url" "$PID"
      else
        url="https://127.0.0.1:$port/"
        taskset -c 1 wrk -t1 -c32 -d1s "$url" > /dev/null
        run_wrk "$proxy" "$rules" tls-h1 "$url" "$PID"
        run_h2 "$proxy" "$rules" tls-h2 "$url" "$PID"
        [ "$rules" = "$first_rules" ] && run_handshakes "$proxy" "$rules" "$url" "$PID"
      fi
      stop "$PID"
    done
  done
done

# --- the table --------------------------------------------------------------------------------------------
python3 - "$RES" <<'PY'
import sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
def us(s):
    if s in ("-", ""): return None
    for suf, f in (("us", 1), ("ms", 1e3), ("s", 1e6)):
        if s.endswith(suf): return float(s[: -len(suf)]) * f
    return float(s)
cpu = {(r[0], r[1], r[2]): (float(r[6]) if r[6] != "-" else None) for r in rows}
def ratio(r, other):
    o = cpu.get((other, r[1], r[2])); c = cpu.get((r[0], r[1], r[2]))
    return f"{c / o:.2f}" if c and o else "-"
def fmt_us(s):
    v = us(s)
    return "-" if v is None else (f"{v:.0f} µs" if v < 10000 else f"{v/1000:.1f} ms")
hdr = ["proxy", "rules", "run", "req/s (hs/s)", "p50", "p99", "proxy CPU µs/req", "÷ nginx allow", "÷ nginx geo", "÷ HAProxy"]
print("| " + " | ".join(hdr) + " |")
print("|" + "---|" * len(hdr))
for r in rows:
    print("| " + " | ".join([r[0], r[1], r[2], f"{float(r[3]):,.0f}", fmt_us(r[4]), fmt_us(r[5]),
          r[6], ratio(r, "nginx-allow"), ratio(r, "nginx-geo"), ratio(r, "haproxy")]) + " |")
PY
echo
echo "$(date -u +%F), $(nproc) cores, $(uname -r); $("$BIN" --version); $(nginx -v 2>&1); $(haproxy -v | head -1 | cut -d' ' -f1-3); wrk $(wrk --version 2>&1 | awk 'NR==1 {print $2}'); $(h2load --version)"
echo "proxy on CPU 0 (1 worker), upstream nginx + load generator on CPU 1; wrk -t1 -c32 ${DUR}s; h2load -c32 -m4 ${DUR}s; handshakes: 4 × 500 new TLS connections, 1 request each; vpcguard access_log: $ACCESS_LOG"
