#!/usr/bin/env bash
# New vs resumed TLS connections: vpcguard vs HAProxy vs nginx, side by side on this machine.
#
# What: the rate of NEW TLS connections (full handshake) and of RESUMED TLS sessions (abbreviated
# handshake: TLS 1.2 session ticket / session id, TLS 1.3 PSK from a NewSessionTicket), one HTTP
# request per connection, for TLS 1.2 and TLS 1.3, and the proxy CPU each connection costs.
#
# How: one upstream (nginx, 1 worker, 2-byte body) and, one at a time in front of it, each proxy
# configured exactly as run.sh configures it (benches/load/proxies.sh, mode tls, RULES entries),
# except that nginx 1.22 needs `ssl_protocols TLSv1.2 TLSv1.3;` to speak TLS 1.3 at all — added here
# only (NGINX_TLS13, below); nginx keeps its default session settings (tickets on, no session cache),
# which resume fine. The proxy is pinned to CPU 0; the upstream and the load generator share CPU 1.
# The load generator is `openssl s_time -new|-reuse -www / -tls1_2|-tls1_3`, K processes in
# parallel whose connection counts (and rates, each over its own wall-clock time) are summed.
# s_time sends `GET / HTTP/1.0` and reads the answer to EOF, so the server's TLS 1.3 tickets are
# read too, and it prints one character per connection: `r` when the session was resumed — the
# script counts them and reports the fraction actually resumed instead of trusting the mode.
# Before the timed runs, resumption is proven per proxy and version with two s_client connections
# (-sess_out, then -sess_in; the request is sent and the answer read so the TLS 1.3 ticket arrives)
# and "resumption: yes/no" printed; rows where it is "no" are marked in the table.
# Proxy CPU µs/connection = delta of utime+stime+cutime+cstime of the proxy's process tree
# (/proc/PID/stat) over the run ÷ connections. The client (OpenSSL 3.0 s_time, one core shared with
# the upstream) spends more CPU per connection than any proxy, and K sequential clients bound the
# concurrency, so connections/s says more about the client than the proxy: µs/connection ranks the
# proxies. The table also shows the client's own CPU per connection (bash `times` of the s_time
# processes) and how busy CPU 0 (proxy, and anything else) and CPU 1 were, flags rows where CPU 0
# was >15% busy outside the proxy's process tree (other processes, or softirq not charged to it),
# and warns if the machine was not idle before the runs.
#
# Usage: benches/load/tls_resume.sh [DURATION=5] [PROXIES="vpcguard haproxy nginx-geo"] [K=2]
# Env: BIN=path to the vpcguard binary (default ${CARGO_TARGET_DIR:-target}/release/vpcguard, built
#      only if missing); RULES=allowlist size (default 10); ACCESS_LOG=true turns vpcguard's access
#      log on (default off, like the others); NGINX_TLS13=off runs nginx with proxies.sh's config
#      unchanged (then its TLS 1.3 rows fail, and say so).
# Loopback only; every run is bounded (-time, timeout); all processes are stopped on exit (trap).
# With the defaults it takes about 1.5 minutes. Needs: nginx-light, haproxy, openssl, python3,
# util-linux (taskset) (Debian packages).
set -euo pipefail
cd "$(dirname "$0")/../.."
DUR=${1:-5}
PROXIES=${2:-"vpcguard haproxy nginx-geo"}
K=${3:-2}
RULES=${RULES:-10}
ACCESS_LOG=${ACCESS_LOG:-false}
BIN=${BIN:-${CARGO_TARGET_DIR:-target}/release/vpcguard}
source benches/load/lib.sh
RES=$work/results.tsv
: > "$RES"
hz=$(getconf CLK_TCK)

[ -x "$BIN" ] || cargo build --release --quiet --bin vpcguard
[ -x "$BIN" ] || { echo "no vpcguard binary at $BIN" >&2; exit 1; }

# --- certificate, upstream (nginx, one worker, CPU 1) ------------------------------------------------
make_tls_pair
UP=$(free_port)
start_upstream "$UP" 1

# --- proxies: start_vpcguard / start_nginx / start_haproxy (benches/load/proxies.sh) ---------------------
source benches/load/proxies.sh
stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

# --- measurement helpers --------------------------------------------------------------------------------
tree_ticks() { # utime+stime+cutime+cstime of PID and all its descendants (as run.sh)
  local p t=0
  for p in $1 $(pgrep -P "$1" || true); do
    [ -r "/proc/$p/stat" ] && t=$((t + $(awk '{print $14+$15+$16+$17}' "/proc/$p/stat")))
  done
  echo "$t"
}
busy_pct() { # how busy the whole machine is over 1 s, before anything is started (other load skews all)
  python3 - <<'PY'
import time
def s():
    f = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    return sum(f) - f[3] - f[4], sum(f)
(b0, t0) = s(); time.sleep(1); (b1, t1) = s()
print(round((b1 - b0) / max(t1 - t0, 1) * 100))
PY
}
cpu_ticks() { # "busy total" jiffies of CPU 0 then CPU 1 (/proc/stat): the proxy's core, the client's
  awk '$1=="cpu0" || $1=="cpu1" {t=0; for (i=2; i<=NF; i++) t+=$i; printf "%d %d ", t-$5-$6, t}' /proc/stat
}
# The request s_time -www / sends; the proof sends the same one, so its status is what s_time gets.
REQ=$'GET / HTTP/1.0\r\n\r\n'
sclient() { # port version [s_client args…]: one connection, request sent, answer read to EOF
  local port=$1 ver=$2; shift 2
  printf '%s' "$REQ" | taskset -c 1 timeout 10 openssl s_client -connect "127.0.0.1:$port" "-tls$ver" \
    -ign_eof "$@" 2>&1 || true
}
prove_resume() { # proxy port version: sets OK=yes|no, prints what the two connections did
  local s1 s2="" st1 st2 f=$work/sess.$3.pem
  rm -f "$f"
  s1=$(sclient "$2" "$3" -sess_out "$f")
  if [ -s "$f" ]; then s2=$(sclient "$2" "$3" -sess_in "$f"); fi
  st1=$(grep -m1 -o '^HTTP/1\.[01] [0-9]*' <<<"$s1" || echo "no answer")
  st2=$(grep -m1 -o '^HTTP/1\.[01] [0-9]*' <<<"$s2" || echo "no answer")
  OK=no
  [ "$st1" = "no answer" ] && st1="no answer$(grep -m1 -o 'alert [a-z ]*' <<<"$s1" | head -n1 | sed 's/^/: /')"
  grep -q '^Reused, ' <<<"$s2" && [ "$st2" = "$st1" ] && OK=yes
  printf '%-9s TLS 1.%s: 1st connection %s, "%s"; session saved: %s; 2nd (-sess_in) %s, "%s" → resumption: %s\n' \
    "$1" "${3#1_}" "$(grep -m1 -oE '^(New|Reused), TLSv1\.[23]' <<<"$s1" || echo '?')" "$st1" \
    "$([ -s "$f" ] && echo yes || echo NO)" \
    "$(grep -m1 -oE '^(New|Reused), TLSv1\.[23]' <<<"$s2" || echo '?')" "$st2" "$OK"
}
run_stime() { # proxy version(1_2|1_3) new|reuse port pid proven
  local b a c0 c1 i cp=() rc=0
  b=$(tree_ticks "$5"); c0=$(cpu_ticks)
  for i in $(seq "$K"); do
    ( s=$(date +%s.%N)
      r=0; taskset -c 1 timeout $((DUR + 30)) openssl s_time -connect "127.0.0.1:$4" "-$3" -time "$DUR" \
        -www / "-tls$2" > "$work/st.$i" 2>&1 || r=$?
      # `times`, 2nd line: the CPU (user, sys) used by this subshell's children — the s_time process
      { echo "$s $(date +%s.%N) $r"; times; } > "$work/st.$i.t" ) & cp+=($!); pids+=($!)
  done
  wait "${cp[@]}" || rc=$?
  a=$(tree_ticks "$5"); c1=$(cpu_ticks)
  python3 - "$work" "$K" "$1" "$2" "$3" "$6" "$b" "$a" "$hz" "$c0" "$c1" >> "$RES" <<'PY'
import re, sys
work, k, proxy, ver, kind, proven, b, a, hz, c0, c1 = sys.argv[1:]
n = reused = 0; rate = client = 0.0; errs = []; bpc = set(); t0 = t1 = None
def secs(t):  # bash `times` format: 1m2.345s
    m = re.fullmatch(r"(\d+)m([\d.]+)s", t)
    return int(m.group(1)) * 60 + float(m.group(2))
for i in range(1, int(k) + 1):
    out = open(f"{work}/st.{i}").read()
    s, e, rc, _, _, cu, cs = open(f"{work}/st.{i}.t").read().split()
    client += secs(cu) + secs(cs)
    m = re.search(r"(\d+) connections in [\d.]+s;", out)
    t0 = min(t0 or float(s), float(s)); t1 = max(t1 or float(e), float(e))
    if rc != "0" or not m:
        a_ = re.search(r"alert ([a-z ]+)", out)
        errs.append(f"s_time#{i} exit {rc}" + (f" (server sent alert '{a_.group(1).strip()}')" if a_ else
                    ": " + " ".join(out.strip().splitlines()[-2:])[:120]))
    if not m:
        continue
    c = int(m.group(1)); n += c
    rate += c / (float(e) - float(s))
    # one character per timed connection: 'r' resumed, '*' / 't' / '3' a full handshake
    prog = "".join(l for l in out.splitlines() if l and set(l) <= set("rt3*"))
    reused += prog.count("r")
    m = re.search(r"(\d+) bytes read per connection", out)
    if m: bpc.add(m.group(1))
cpu = (int(a) - int(b)) / int(hz) / max(n, 1) * 1e6
wall = (t1 - t0) if t0 else 1
proxy0 = (int(a) - int(b)) / int(hz) / wall * 100           # the proxy's share of a core
c0, c1 = [int(x) for x in c0.split()], [int(x) for x in c1.split()]
busy0 = (c1[0] - c0[0]) / max(c1[1] - c0[1], 1) * 100        # CPU 0: everything on it
busy1 = (c1[2] - c0[2]) / max(c1[3] - c0[3], 1) * 100        # CPU 1: load generator + upstream
print("\t".join([proxy, ver.replace("_", "."), "new" if kind == "new" else "resumed", proven,
                 f"{rate:.1f}" if n else "-", str(n), str(reused), f"{cpu:.1f}" if n else "-",
                 f"{client / max(n, 1) * 1e6:.0f}" if n else "-",
                 f"{proxy0:.0f} / {busy0:.0f}", f"{busy1:.0f}", "/".join(sorted(bpc)) or "-",
                 "; ".join(errs) or "-"]))
PY
  return 0
}

# nginx 1.22's default `ssl_protocols` is TLSv1 TLSv1.1 TLSv1.2 (TLS 1.3 is default only from 1.23.4),
# so with proxies.sh's config it refuses TLS 1.3. NGINX_TLS13=on (default) adds, for this script
# only, `ssl_protocols TLSv1.2 TLSv1.3;` to the server block proxies.sh writes, through LAUNCH (the
# command prefix proxies.sh runs nginx with); nothing else of its TLS config changes (session
# tickets on by default, no session cache). NGINX_TLS13=off runs proxies.sh's config unchanged.
NGINX_TLS13=${NGINX_TLS13:-on}
cat > "$work/nginx_tls13.sh" <<'SH'
#!/bin/sh
# LAUNCH wrapper: add TLS 1.3 to the nginx.conf given by -c, then run nginx pinned to CPU 0
conf=; prev=
for a in "$@"; do [ "$prev" = -c ] && conf=$a; prev=$a; done
sed -i 's|ssl_certificate_key [^;]*;|& ssl_protocols TLSv1.2 TLSv1.3;|' "$conf"
exec taskset -c 0 "$@"
SH
chmod +x "$work/nginx_tls13.sh"
nginx_launch=""; [ "$NGINX_TLS13" = on ] && nginx_launch=$work/nginx_tls13.sh

# --- the runs ---------------------------------------------------------------------------------------------
idle=$(busy_pct)
echo "machine busy before the runs: ${idle}% of $(nproc) cores$( [ "$idle" -gt 10 ] && echo " — WARNING: other load, every number below is skewed")"
echo "resumption check (s_client -sess_out, then -sess_in; request '${REQ%%$'\r'*}', answer read to EOF):"
proof=()
for proxy in $PROXIES; do
  port=$(free_port)
  case $proxy in
    vpcguard) start_vpcguard "$RULES" tls "$port" ;;
    nginx-*) LAUNCH=${nginx_launch:-${LAUNCH:-taskset -c 0}} start_nginx "$proxy" "$RULES" tls "$port" ;;
    haproxy) start_haproxy "$RULES" tls "$port" ;;
    *) echo "unknown proxy $proxy" >&2; exit 1 ;;
  esac
  wait_port "$port" || wait_port "$port" || wait_port "$port" || { echo "$proxy did not start" >&2; cat "$work"/*.log "$logs"/*.log >&2; exit 1; }
  if [ "$proxy" != "${proxy#nginx-}" ] && [ -n "$nginx_launch" ]; then
    grep -q 'ssl_protocols TLSv1.2 TLSv1.3;' "$work/px/nginx.conf" || { echo "nginx TLS 1.3 override not applied" >&2; exit 1; }
    echo "$proxy: proxies.sh config + local override 'ssl_protocols TLSv1.2 TLSv1.3;' (NGINX_TLS13=on)"
  fi
  taskset -c 1 timeout 30 openssl s_time -connect "127.0.0.1:$port" -new -time 1 -www / > /dev/null 2>&1 || true # warm-up
  for ver in 1_2 1_3; do
    prove_resume "$proxy" "$port" "$ver"
    proof+=("$proxy TLS 1.${ver#1_}: resumption: $OK")
    for kind in new reuse; do
      run_stime "$proxy" "$ver" "$kind" "$port" "$PID" "$OK"
    done
  done
  stop "$PID"
done

# --- the table --------------------------------------------------------------------------------------------
echo
for p in "${proof[@]}"; do echo "- $p"; done
echo
python3 - "$RES" <<'PY'
import sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
by = {(r[0], r[1], r[2]): r for r in rows}
def ratio(r, col):
    h = by.get(("haproxy", r[1], r[2]))
    try:
        return f"{float(r[col]) / float(h[col]):.2f}" if h and float(h[col]) else "-"
    except ValueError:
        return "-"
hdr = ["proxy", "TLS", "handshake", "resumption proven", "conn/s", "resumed by s_time",
       "proxy CPU µs/conn", "conn/s ÷ HAProxy", "CPU µs ÷ HAProxy", "s_time CPU µs/conn",
       "CPU 0 busy % (proxy / all)", "CPU 1 busy (s_time+upstream) %",
       "bytes/conn", "notes"]
print("| " + " | ".join(hdr) + " |")
print("|" + "---|" * len(hdr))
for r in rows:
    proxy, ver, kind, proven, rate, n, reused, cpu, ccpu, busy0, busy1, bpc, errs = r
    n, reused = int(n), int(reused)
    frac = f"{reused}/{n} ({100 * reused / n:.0f}%)" if n else "-"
    notes = []
    if proven != "yes":
        notes.append("**resumption NOT proven (s_client)**")
    if kind == "resumed" and n and reused < n:
        notes.append("**s_time did not resume (full handshakes)**" if reused == 0
                     else f"**only {100 * reused / n:.0f}% resumed**")
    if kind == "new" and reused:
        notes.append(f"{reused} resumed in a 'new' run?")
    p0, a0 = (float(x) for x in busy0.split(" / "))
    if a0 - p0 > 15:
        notes.append(f"**CPU 0 busy {a0 - p0:.0f}% outside the proxy (other processes, softirq)**")
    if errs != "-":
        notes.append("errors: " + errs)
    print("| " + " | ".join([proxy, ver, kind, "yes" if proven == "yes" else "**NO**",
          f"{float(rate):,.0f}" if rate != "-" else "-", frac, cpu, ratio(r, 4), ratio(r, 7), ccpu, busy0, busy1,
          bpc, "; ".join(notes) or "-"]) + " |")
PY
echo
echo "$(date -u +%F), $(nproc) cores, $(uname -r); $("$BIN" --version); $(nginx -v 2>&1); $(haproxy -v | head -1 | cut -d' ' -f1-3); $(openssl version | cut -d' ' -f1-2)"
echo "proxy on CPU 0 (1 worker), upstream nginx + $K × openssl s_time on CPU 1; ${DUR}s per row, 1 request (GET / HTTP/1.0) per connection; $RULES rules; ECDSA P-256 cert; vpcguard access_log: $ACCESS_LOG; nginx TLS 1.3 override: $NGINX_TLS13"
