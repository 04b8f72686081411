#!/usr/bin/env bash
# Plain proxying cost on this machine: nginx (one worker, static 2-byte body) alone, then through
# vpcguard (release build, plain HTTP and TLS), driven by wrk (HTTP/1.1 keep-alive) and h2load
# (HTTP/2). Also records vpcguard's CPU time per request from /proc/PID/stat.
# Loopback only, bounded: each run is DURATION seconds (default 10). Needs: nginx-light, wrk,
# nghttp2-client, python3. Usage: benches/load/proxy_vs_upstream.sh [DURATION]
set -euo pipefail
cd "$(dirname "$0")/../.."
DUR=${1:-10}
source benches/load/lib.sh
cpu_ticks() { awk '{print $14+$15+$16+$17}' "/proc/$1/stat"; }

cargo build --release --quiet --bin vpcguard
UP=$(free_port); PLAIN=$(free_port); TLS=$(free_port); ADM1=$(free_port); ADM2=$(free_port)

start_upstream "$UP"

printf 'tenants:\n  - enterprise_id: bench\n    trusted_ips:\n      - { id: "1", ip_range: "127.0.0.0/8", view_flag: 1, download_flag: 1, upload_flag: 1 }\n' > "$work/policy.yaml"
for mode in plain tls; do
  port=$PLAIN; adm=$ADM1; tls=""
  if [ "$mode" = tls ]; then port=$TLS; adm=$ADM2; tls='  tls: {}'; fi
  cat > "$work/$mode.yaml" <<CFG
listen:
  address: "127.0.0.1:$port"
$tls
admin:
  address: "127.0.0.1:$adm"
upstream:
  url: "http://127.0.0.1:$UP"
tenant:
  - static: bench
log:
  access_log: false
  level: warn
CFG
  TOKIO_WORKER_THREADS=1 taskset -c 0 target/release/vpcguard run -c "$work/$mode.yaml" > "$work/$mode.log" 2>&1 & pids+=($!)
  eval "PID_$mode=$!"
  wait_port "$port"
done

hz=$(getconf CLK_TCK)
row() { printf '| %-34s | %10s | %8s | %8s | %10s |\n' "$@"; }
echo "| target | req/s | p50 | p99 | proxy CPU µs/req |"
echo "|---|---|---|---|---|"
run_wrk() { # name url pid
  local before after out rps n p50 p99 cpu="-"
  [ -n "$3" ] && before=$(cpu_ticks "$3")
  out=$(taskset -c 1 wrk -t1 -c32 -d"${DUR}s" --latency "$2")
  [ -n "$3" ] && after=$(cpu_ticks "$3")
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  n=$(awk '/requests in/ {print $1}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out"); p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  [ -n "$3" ] && cpu=$(python3 -c "print(round(($after-$before)/$hz/$n*1e6,1))")
  row "$1" "$rps" "$p50" "$p99" "$cpu"
}
run_h2load() { # name url pid [extra h2load flag]
  local before after out rps n cpu="-" lat
  [ -n "$3" ] && before=$(cpu_ticks "$3")
  out=$(taskset -c 1 h2load ${4:-} -c32 -m4 -D"$DUR" "$2" 2>&1)
  [ -n "$3" ] && after=$(cpu_ticks "$3")
  rps=$(awk '/finished in/ {print $4}' <<<"$out")
  n=$(awk '/requests:/ {print $8}' <<<"$out")
  lat=$(awk '/time for request:/ {print $6}' <<<"$out")
  [ -n "$3" ] && cpu=$(python3 -c "print(round(($after-$before)/$hz/max($n,1)*1e6,1))")
  row "$1" "$rps" "mean $lat" "-" "$cpu"
}
run_wrk "nginx alone, h1" "http://127.0.0.1:$UP/" ""
run_wrk "vpcguard plain h1 -> nginx" "http://127.0.0.1:$PLAIN/" "$PID_plain"
run_wrk "vpcguard TLS h1 -> nginx" "https://127.0.0.1:$TLS/" "$PID_tls"
run_h2load "nginx alone (h2load --h1)" "http://127.0.0.1:$UP/" "" --h1
run_h2load "vpcguard h2c -> nginx" "http://127.0.0.1:$PLAIN/" "$PID_plain"
run_h2load "vpcguard TLS h2 -> nginx" "https://127.0.0.1:$TLS/" "$PID_tls"
echo
echo "machine: $(nproc) cores, $(uname -r); vpcguard pinned to CPU 0 with 1 tokio worker, load generator on CPU 1"
