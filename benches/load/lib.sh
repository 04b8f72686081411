# Shared helpers for the load scripts (sourced, not run): a scratch dir cleaned on exit with every
# started process, free loopback ports, and waiting for a port to accept.
work=$(mktemp -d)
# vpcguard watches its config directory ($work): logs go elsewhere, or every log write wakes its watcher.
logs=$work/logs; mkdir -p "$logs"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }
# The TLS pair every TLS listener serves (ECDSA P-256, like vpcguard's self-signed one):
# $work/cert.pem, $work/key.pem, and both in $work/combined.pem (HAProxy's `crt`).
make_tls_pair() {
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=localhost \
    -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
  cat "$work/cert.pem" "$work/key.pem" > "$work/combined.pem"
}
# The upstream: nginx, one worker, a 2-byte static body on 127.0.0.1:$1 (waits until it accepts);
# $2, if given, is the CPU to pin it to.
start_upstream() {
  mkdir -p "$work/nginx/logs"
  cat > "$work/nginx/nginx.conf" <<NGX
worker_processes 1;
pid $work/nginx/nginx.pid;
error_log $work/nginx/logs/error.log;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  server { listen 127.0.0.1:$1; location / { return 200 "ok"; } } }
NGX
  ${2:+taskset -c "$2"} nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" -g 'daemon off;' & pids+=($!)
  wait_port "$1"
}
