#!/usr/bin/env bash
# Reloads under load (issue: live reload): vpcguard (release, plain HTTP, 1 worker) in front of
# nginx, a 100,000-entry policy replaced RELOADS times (default 50) by rename-over while wrk keeps
# 16 keep-alive connections busy. The client's own entry is the *last* of the file, so a request
# judged by a half-built table would be denied; the script counts every non-2xx and socket error
# and prints the time from rename to the new generation being served.
# Loopback only, bounded (about 2 minutes). Needs: nginx-light, wrk, python3, curl.
# Usage: benches/load/reload_under_load.sh [RELOADS] [ENTRIES]
set -euo pipefail
cd "$(dirname "$0")/../.."
RELOADS=${1:-50}; ENTRIES=${2:-100000}
source benches/load/lib.sh

cargo build --release --quiet --bin vpcguard
UP=$(free_port); PORT=$(free_port); ADM=$(free_port)
start_upstream "$UP"

gen() { # tag -> file
  python3 - "$ENTRIES" "$1" > "$2" <<'PY'
import sys, ipaddress
n, tag = int(sys.argv[1]), sys.argv[2]
out = ["tenants:", "  - enterprise_id: bench", "    trusted_ips:"]
base = int(ipaddress.IPv4Address("11.0.0.0"))
for i in range(n):
    out.append(f'      - {{ id: "v{tag}-{i}", ip_range: "{ipaddress.IPv4Address(base + i)}", view_flag: 1, download_flag: 0, upload_flag: 0 }}')
out.append('      - { id: "client", ip_range: "127.0.0.1", view_flag: 1, download_flag: 1, upload_flag: 1 }')
print("\n".join(out))
PY
}
gen a "$work/a.yaml"; gen b "$work/b.yaml"
cp "$work/a.yaml" "$work/policy.yaml"
cat > "$work/vpcguard.yaml" <<CFG
listen: { address: "127.0.0.1:$PORT" }
admin: { address: "127.0.0.1:$ADM" }
upstream: { url: "http://127.0.0.1:$UP" }
tenant: [ { static: bench } ]
log: { access_log: false, level: info }
CFG
TOKIO_WORKER_THREADS=1 taskset -c 0 target/release/vpcguard run -c "$work/vpcguard.yaml" > "$work/vg.log" 2>&1 & pids+=($!)
wait_port "$UP"; wait_port "$PORT"; wait_port "$ADM"
generation() { curl -s "http://127.0.0.1:$ADM/metrics" | awk '/^vpcguard_policy_generation / {print $2}'; }

# The reload loop runs in the background and records each reload's latency.
(
  for i in $(seq "$RELOADS"); do
    src=$([ $((i % 2)) = 1 ] && echo b || echo a)
    cp "$work/$src.yaml" "$work/policy.yaml.tmp"
    want=$(( $(generation) + 1 )); t0=$(date +%s%N)
    mv "$work/policy.yaml.tmp" "$work/policy.yaml"
    until [ "$(generation)" = "$want" ]; do sleep 0.005; done
    echo $(( ($(date +%s%N) - t0) / 1000000 )) >> "$work/reload_ms"
  done
  touch "$work/reloads_done"
) & pids+=($!)

total=0; bad=0; errs=0; rounds=0
while [ ! -e "$work/reloads_done" ] && [ $rounds -lt 60 ]; do
  out=$(taskset -c 1 wrk -t1 -c16 -d3s "http://127.0.0.1:$PORT/")
  n=$(awk '/requests in/ {print $1}' <<<"$out")
  b=$(awk '/Non-2xx/ {print $NF}' <<<"$out"); b=${b:-0}
  e=$(awk '/Socket errors/ {gsub(",",""); print $4+$6+$8+$10}' <<<"$out"); e=${e:-0}
  total=$((total + n)); bad=$((bad + b)); errs=$((errs + e)); rounds=$((rounds + 1))
done
[ -e "$work/reloads_done" ] || { echo "reloads did not finish" >&2; exit 1; }
python3 - "$work/reload_ms" <<PY
import statistics, sys
ms = [int(l) for l in open(sys.argv[1])]
print(f"reloads: {len(ms)} of $ENTRIES entries; rename -> served: median {statistics.median(ms)} ms, max {max(ms)} ms")
PY
echo "requests: $total, non-2xx: $bad, socket errors: $errs"
grep -c '"reloaded"\|reloaded' "$work/vg.log" | sed 's/^/log lines "reloaded": /'
[ "$bad" = 0 ] && [ "$errs" = 0 ]
