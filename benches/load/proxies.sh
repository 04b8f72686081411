# The three proxies of the comparison, configured identically (sourced, not run): an allowlist of
# N rules (gen_rules.py), X-Forwarded-For, X-Forwarded-Proto and X-Request-Id added, upstream
# keep-alive, access logs off, one worker. Each start_* leaves the process id in PID.
# Needs from the caller: $work, $UP (upstream port), $BIN (vpcguard), $ACCESS_LOG, and the TLS pair
# $work/cert.pem, $work/key.pem, $work/combined.pem for mode "tls".
# LAUNCH (default `taskset -c 0`) prefixes each command: instructions.sh runs them under callgrind.
# NGINX_MASTER=off runs nginx as a single process (needed under valgrind).
# EXTRA_CONFIG is appended to vpcguard's config as top-level YAML (e.g. 'identity_headers: false').
start_vpcguard() { # rules mode port
  local tls=""
  [ "$2" = tls ] && tls="  tls: { cert: $work/cert.pem, key: $work/key.pem }"
  python3 benches/load/gen_rules.py vpcguard "$1" > "$work/policy.yaml"
  cat > "$work/v.yaml" <<CFG
listen:
  address: "127.0.0.1:$3"
$tls
admin:
  address: "127.0.0.1:$(free_port)"
upstream:
  url: "http://127.0.0.1:$UP"
tenant:
  - static: bench
log:
  access_log: $ACCESS_LOG
  level: warn
${EXTRA_CONFIG:-}
CFG
  TOKIO_WORKER_THREADS=1 ${LAUNCH:-taskset -c 0} "$BIN" run -c "$work/v.yaml" > "$logs/v.log" 2>&1 & pids+=($!)
  PID=$!
}
start_nginx() { # kind rules mode port
  local acl="" listen="listen 127.0.0.1:$4;"
  mkdir -p "$work/px/logs"
  if [ "$1" = nginx-allow ]; then
    python3 benches/load/gen_rules.py nginx-allow "$2" > "$work/px/acl.conf"
    acl="include $work/px/acl.conf;"
  else
    { echo 'geo $allowed {'; python3 benches/load/gen_rules.py nginx-geo "$2"; echo '}'; } > "$work/px/geo.conf"
    acl='if ($allowed = 0) { return 403; }'
  fi
  [ "$3" = tls ] && listen="listen 127.0.0.1:$4 ssl http2; ssl_certificate $work/cert.pem; ssl_certificate_key $work/key.pem;"
  cat > "$work/px/nginx.conf" <<NGX
worker_processes 1;
master_process ${NGINX_MASTER:-on};
pid $work/px/nginx.pid;
error_log $work/px/logs/error.log;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  $( [ "$1" = nginx-geo ] && echo "include $work/px/geo.conf;" )
  upstream up { server 127.0.0.1:$UP; keepalive 64; }
  server { $listen
    location / { $acl
      proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto \$scheme; proxy_set_header X-Request-Id \$request_id; } } }
NGX
  ${LAUNCH:-taskset -c 0} nginx -p "$work/px" -c "$work/px/nginx.conf" -g 'daemon off;' & pids+=($!)
  PID=$!
}
start_haproxy() { # rules mode port
  local bind="bind 127.0.0.1:$3"
  python3 benches/load/gen_rules.py haproxy "$1" > "$work/hap.acl"
  [ "$2" = tls ] && bind="$bind ssl crt $work/combined.pem alpn h2,http/1.1"
  cat > "$work/haproxy.cfg" <<HAP
global
  nbthread 1
  maxconn 8000
defaults
  mode http
  timeout connect 2s
  timeout client 60s
  timeout server 60s
  option http-keep-alive
  http-reuse always
frontend fe
  $bind
  acl allowed src -f $work/hap.acl
  http-request deny deny_status 403 unless allowed
  option forwardfor
  http-request set-header X-Forwarded-Proto https if { ssl_fc }
  http-request set-header X-Forwarded-Proto http unless { ssl_fc }
  unique-id-format %{+X}o%ci%cp%fi%fp%Ts%rt
  unique-id-header X-Request-Id
  default_backend be
backend be
  server up 127.0.0.1:$UP
HAP
  ${LAUNCH:-taskset -c 0} haproxy -db -f "$work/haproxy.cfg" > "$work/haproxy.log" 2>&1 & pids+=($!)
  PID=$!
}
