#!/usr/bin/env bash
# Streaming check: 1 GiB download and 1 GiB chunked upload through vpcguard (release, TLS) to
# nginx, then vpcguard's peak RSS (VmHWM). Flat memory = bodies are streamed, never buffered.
# Loopback only, bounded by curl --max-time. Needs: nginx-light, curl, python3.
set -euo pipefail
cd "$(dirname "$0")/../.."
source benches/load/lib.sh

cargo build --release --quiet --bin vpcguard
UP=$(free_port); PX=$(free_port); ADM=$(free_port)
mkdir -p "$work/nginx/logs" "$work/www"
truncate -s 1G "$work/www/big"
chmod 755 "$work" "$work/www"; chmod 644 "$work/www/big"  # nginx workers run unprivileged
cat > "$work/nginx/nginx.conf" <<NGX
worker_processes 1;
pid $work/nginx/nginx.pid;
error_log $work/nginx/logs/error.log;
events { worker_connections 64; }
http { access_log off; client_max_body_size 0;
  server { listen 127.0.0.1:$UP; root $work/www;
    location /upload { client_body_buffer_size 64k; client_body_in_file_only off; proxy_pass http://127.0.0.1:$UP/sink; }
    location /sink { return 200 "ok"; } } }
NGX
nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" -g 'daemon off;' & pids+=($!)
printf 'tenants:\n  - enterprise_id: t\n' > "$work/policy.yaml"
cat > "$work/v.yaml" <<CFG
listen:
  address: "127.0.0.1:$PX"
  tls: {}
admin:
  address: "127.0.0.1:$ADM"
upstream:
  url: "http://127.0.0.1:$UP"
tenant:
  - static: t
log:
  level: warn
CFG
target/release/vpcguard run -c "$work/v.yaml" > "$logs/v.log" 2>&1 & pids+=($!)
VG=$!
wait_port "$UP"; wait_port "$PX"
echo "baseline VmHWM: $(awk '/VmHWM/ {print $2" "$3}' /proc/$VG/status)"
t0=$(date +%s.%N)
curl -sk --max-time 300 -o /dev/null -w 'download: %{size_download} bytes, status %{http_code}\n' "https://127.0.0.1:$PX/big"
t1=$(date +%s.%N)
head -c 1073741824 /dev/zero | curl -sk --max-time 300 -o /dev/null -T - -w 'upload: %{size_upload} bytes, status %{http_code}\n' "https://127.0.0.1:$PX/upload"
t2=$(date +%s.%N)
python3 -c "print(f'download {($t1-$t0):.1f}s, upload {($t2-$t1):.1f}s')"
echo "peak VmHWM after 2 GiB streamed: $(awk '/VmHWM/ {print $2" "$3}' /proc/$VG/status)"
