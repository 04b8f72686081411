# Shared by deploy/check-*.sh (sourced, not run). Sets ROOT (the repository), VPCGUARD_BIN and
# VPCGUARD_ETCD_BIN (absolute), PY (the pinned tools' python) and helpers for processes on 127.0.0.1
# that are cleaned up on exit. A tool that cannot be installed, or a peer that does not start, is a
# failure: nothing here skips.
#
# Two builds, named explicitly because one cargo target directory holds only one of them at a time
# (`cargo build --features etcd` and `cargo build` both write target/debug/vpcguard):
#   VPCGUARD_BIN       the default build (no etcd store); default target/debug/vpcguard
#   VPCGUARD_ETCD_BIN  the build with `--features etcd`; default target/vpcguard-etcd, a copy:
#                        cargo build --features etcd --bin vpcguard && cp target/debug/vpcguard target/vpcguard-etcd
#                        cargo build --bin vpcguard
# need_vpcguard and need_etcd_vpcguard refuse a binary that is the other build (.ci/run sets both).

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

VPCGUARD_BIN=${VPCGUARD_BIN:-target/debug/vpcguard}
case $VPCGUARD_BIN in /*) ;; *) VPCGUARD_BIN=$ROOT/$VPCGUARD_BIN ;; esac
VPCGUARD_ETCD_BIN=${VPCGUARD_ETCD_BIN:-target/vpcguard-etcd}
case $VPCGUARD_ETCD_BIN in /*) ;; *) VPCGUARD_ETCD_BIN=$ROOT/$VPCGUARD_ETCD_BIN ;; esac

# === cleanup ===

_pids=()
# Every temporary directory lives under this one, removed on exit. (tmpdir runs in the subshell
# of `$(tmpdir)`, so it cannot add to a list the exit trap would see.)
_tmp=$(mktemp -d)
_cleanup() {
  local p
  for p in "${_pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${_pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$_tmp"
}
trap _cleanup EXIT

die() { echo "FAIL $*" >&2; exit 1; }

# A temporary directory removed on exit.
tmpdir() { mktemp -d -p "$_tmp"; }

# === tools ===

# The pinned Python tools (deploy/requirements.txt) in a private venv, reinstalled when the pins
# change. Needs python3 with venv; installs the Debian package when it is missing.
setup_venv() {
  local venv=${VPCGUARD_DEPLOY_VENV:-$ROOT/target/deploy-venv}
  local stamp="$venv/.requirements.sha256" want
  want=$(sha256sum deploy/requirements.txt | cut -d' ' -f1)
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    python3 -m venv --help >/dev/null 2>&1 || apt_install python3-venv
    rm -rf "$venv"
    python3 -m venv "$venv" || die "python3 -m venv $venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r deploy/requirements.txt \
      || die "pip install -r deploy/requirements.txt"
    echo "$want" > "$stamp"
  fi
  PY=$venv/bin/python
  VENV_BIN=$venv/bin
}

apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "$@" >/dev/null \
    || die "apt-get install $*"
}

# The Debian packages behind the commands given as pkg:command pairs.
need_commands() {
  local want=() pair
  for pair in "$@"; do command -v "${pair#*:}" >/dev/null || want+=("${pair%%:*}"); done
  if [ ${#want[@]} -gt 0 ]; then apt_install "${want[@]}"; fi
  for pair in "$@"; do command -v "${pair#*:}" >/dev/null || die "${pair#*:} not found after installing ${pair%%:*}"; done
}

# build_of BIN: `etcd` if BIN accepts `policy.store: etcd`, `default` if it refuses it as the
# default build does (exit 78, "this build has no etcd store"), else what happened.
build_of() {
  local d rc=0
  d=$(tmpdir)
  printf 'listen: { address: "127.0.0.1:1" }\nadmin: { address: "127.0.0.1:2" }\npolicy: { store: etcd }\n' > "$d/vpcguard.yaml"
  "$1" check -c "$d/vpcguard.yaml" >"$d/out" 2>&1 || rc=$?
  if [ "$rc" = 0 ]; then echo etcd
  elif [ "$rc" = 78 ] && grep -q 'this build has no etcd store' "$d/out"; then echo default
  else echo "unknown build (check exited $rc: $(tail -n1 "$d/out"))"
  fi
}

need_vpcguard() {
  [ -x "$VPCGUARD_BIN" ] || die "VPCGUARD_BIN=$VPCGUARD_BIN is not an executable (cargo build --bin vpcguard)"
  local b; b=$(build_of "$VPCGUARD_BIN")
  [ "$b" = default ] || die "VPCGUARD_BIN=$VPCGUARD_BIN is the $b build, not the default one (cargo build --bin vpcguard; see deploy/lib.sh)"
}

need_etcd_vpcguard() {
  [ -x "$VPCGUARD_ETCD_BIN" ] || die "VPCGUARD_ETCD_BIN=$VPCGUARD_ETCD_BIN is not an executable (cargo build --features etcd --bin vpcguard && cp target/debug/vpcguard target/vpcguard-etcd; see deploy/lib.sh)"
  local b; b=$(build_of "$VPCGUARD_ETCD_BIN")
  [ "$b" = etcd ] || die "VPCGUARD_ETCD_BIN=$VPCGUARD_ETCD_BIN is the $b build, not the --features etcd one (see deploy/lib.sh)"
  need_commands etcd-server:etcd etcd-client:etcdctl
}

# === processes on 127.0.0.1 ===

# A free TCP port on 127.0.0.1 (bound and released: vpcguard's config needs the number up front).
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# wait_for SECONDS DESCRIPTION COMMAND...: poll COMMAND every 0.1 s. Polling, because these are
# events inside another process that a script cannot subscribe to.
wait_for() {
  local secs=$1 what=$2; shift 2
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || die "timed out after ${secs}s waiting for $what"
    sleep 0.1
  done
}

# start_upstream DIR: an HTTP/1.1 upstream on 127.0.0.1 answering every request 200 "upstream
# ok". It binds port 0 itself and reports the port in DIR/upstream.port; sets UPSTREAM_PORT.
start_upstream() {
  local dir=$1
  python3 - "$dir/upstream.port" <<'EOF' &
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def answer(self):
        n = int(self.headers.get("content-length") or 0)
        if n: self.rfile.read(n)
        body = b"upstream ok\n"
        self.send_response(200)
        self.send_header("content-type", "text/plain")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD": self.wfile.write(body)
    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = answer
    def log_message(self, *a): pass
s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
open(sys.argv[1] + ".tmp", "w").write(str(s.server_address[1]))
import os; os.rename(sys.argv[1] + ".tmp", sys.argv[1])
s.serve_forever()
EOF
  _pids+=($!)
  wait_for 10 "the test upstream" test -s "$dir/upstream.port"
  UPSTREAM_PORT=$(cat "$dir/upstream.port")
}

# start_vpcguard CONFIG ADMIN_PORT LOG [BIN [ROUTE]]: `BIN run` (default VPCGUARD_BIN) in the
# background until ROUTE (default /readyz) answers 200; sets VG_PID. A process that exits first is
# a failure, with its log.
start_vpcguard() {
  local config=$1 admin=$2 log=$3 bin=${4:-$VPCGUARD_BIN} route=${5:-/readyz}
  "$bin" run -c "$config" >"$log" 2>&1 &
  VG_PID=$!
  _pids+=("$VG_PID")
  local deadline=$((SECONDS + 20))
  until curl -sf "http://127.0.0.1:$admin$route" >/dev/null 2>&1; do
    if ! kill -0 "$VG_PID" 2>/dev/null; then cat "$log" >&2; die "vpcguard run -c $config exited"; fi
    [ $SECONDS -lt $deadline ] || { cat "$log" >&2; die "vpcguard not ready on :$admin"; }
    sleep 0.1
  done
}

# metric ADMIN_PORT 'name{labels}': the value of one series of a live /metrics (exact match).
metric() {
  curl -sf "http://127.0.0.1:$1/metrics" | awk -v s="$2" '$1 == s { print $2; found=1 } END { exit !found }'
}

# A random admin token and its admin.tokens hash.
new_token() {
  TOKEN=$(python3 -c 'import secrets; print(secrets.token_hex(32))')
  TOKEN_HASH=$(printf %s "$TOKEN" | "$VPCGUARD_BIN" hash-token)
}

# start_local_vpcguard DIR [POLICY] [EXTRA_YAML]: vpcguard run on 127.0.0.1 (plain HTTP) with DIR/
# vpcguard.yaml, the policy POLICY (default `tenants: []`), a write token (new_token) and the
# upstream of start_upstream when one runs. Sets DATA_PORT, ADMIN_PORT, VG_PID, TOKEN.
start_local_vpcguard() {
  local dir=$1 policy=${2:-} extra=${3:-}
  DATA_PORT=$(free_port)
  ADMIN_PORT=$(free_port)
  new_token
  if [ -n "$policy" ]; then cp "$policy" "$dir/policy.yaml"; else printf 'tenants: []\n' > "$dir/policy.yaml"; fi
  {
    printf 'listen: { address: "127.0.0.1:%s" }\n' "$DATA_PORT"
    printf 'admin:\n  address: "127.0.0.1:%s"\n  tokens: [{ name: check, role: write, hash: "%s" }]\n' "$ADMIN_PORT" "$TOKEN_HASH"
    [ -z "${UPSTREAM_PORT:-}" ] || printf 'upstream: { url: "http://127.0.0.1:%s" }\n' "$UPSTREAM_PORT"
    printf 'log: { level: warn, access_log: false }\n'
    printf '%s\n' "$extra"
  } > "$dir/vpcguard.yaml"
  start_vpcguard "$dir/vpcguard.yaml" "$ADMIN_PORT" "$dir/vpcguard.log"
}

# === etcd ===

# start_etcd DIR [PKI]: one etcd member (Debian etcd-server) on 127.0.0.1, its data in DIR; with
# PKI (a directory holding ca.crt, server.crt, server.key, client.crt, client.key, see make_pki),
# its client URL is https and it requires a client certificate signed by ca.crt. Waits until
# `etcdctl endpoint health` answers. Sets ETCD_ENDPOINT, ETCD_PID and ETCDCTL (an etcdctl command
# line for it, as an array); stop_etcd and restart_etcd stop it and start it again on the same
# port and data.
start_etcd() {
  local dir=$1 pki=${2:-} scheme=http client peer
  mkdir -p "$dir"
  client=$(free_port)
  peer=$(free_port)
  [ -z "$pki" ] || scheme=https
  ETCD_ENDPOINT=$scheme://127.0.0.1:$client
  ETCD_ARGS=(--name check --data-dir "$dir/data"
    --listen-client-urls "$ETCD_ENDPOINT" --advertise-client-urls "$ETCD_ENDPOINT"
    --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer"
    --initial-cluster "check=http://127.0.0.1:$peer")
  ETCDCTL=(env ETCDCTL_API=3 etcdctl --endpoints="$ETCD_ENDPOINT" --dial-timeout=2s --command-timeout=5s)
  if [ -n "$pki" ]; then
    ETCD_ARGS+=(--cert-file "$pki/server.crt" --key-file "$pki/server.key"
      --trusted-ca-file "$pki/ca.crt" --client-cert-auth)
    ETCDCTL+=(--cacert "$pki/ca.crt" --cert "$pki/client.crt" --key "$pki/client.key")
  fi
  ETCD_LOG=$dir/etcd.log
  restart_etcd
}

restart_etcd() {
  etcd "${ETCD_ARGS[@]}" >>"$ETCD_LOG" 2>&1 &
  ETCD_PID=$!
  _pids+=("$ETCD_PID")
  local deadline=$((SECONDS + 20))
  until "${ETCDCTL[@]}" endpoint health >/dev/null 2>&1; do
    if ! kill -0 "$ETCD_PID" 2>/dev/null; then tail -n 20 "$ETCD_LOG" >&2; die "etcd exited"; fi
    [ $SECONDS -lt $deadline ] || { tail -n 20 "$ETCD_LOG" >&2; die "etcd not healthy at $ETCD_ENDPOINT"; }
    sleep 0.1
  done
}

stop_etcd() {
  kill "$ETCD_PID"
  wait "$ETCD_PID" 2>/dev/null || true
}

# make_pki DIR: a throwaway CA and, signed by it, a server certificate for 127.0.0.1 (serverAuth)
# and a client certificate (clientAuth, CN vpcguard): DIR/{ca,server,client}.{crt,key}.
make_pki() {
  local d=$1 name
  mkdir -p "$d"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=check-etcd-ca \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
    -keyout "$d/ca.key" -out "$d/ca.crt" 2>/dev/null || die "openssl: CA"
  for name in server client; do
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=${name/client/vpcguard}" \
      -keyout "$d/$name.key" -out "$d/$name.csr" 2>/dev/null || die "openssl: $name key"
    if [ "$name" = server ]; then
      printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' > "$d/$name.ext"
    else
      printf 'extendedKeyUsage=clientAuth\n' > "$d/$name.ext"
    fi
    openssl x509 -req -in "$d/$name.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -set_serial "0x$(openssl rand -hex 8)" \
      -days 2 -extfile "$d/$name.ext" -out "$d/$name.crt" 2>/dev/null || die "openssl: $name certificate"
  done
}

# start_local_etcd_vpcguard DIR [POLICY]: the etcd build (VPCGUARD_ETCD_BIN) on 127.0.0.1 (plain
# HTTP) with its policy in the etcd of start_etcd (plain http) under the prefix /check/, seeded with
# `vpcguard policy push` of POLICY (default `tenants: []`), the write token of new_token (the one
# already made, if any) and the upstream of start_upstream when one runs. Sets ETCD_DATA_PORT,
# ETCD_ADMIN_PORT and ETCD_VG_PID.
start_local_etcd_vpcguard() {
  local dir=$1 policy=${2:-}
  ETCD_DATA_PORT=$(free_port)
  ETCD_ADMIN_PORT=$(free_port)
  [ -n "${TOKEN_HASH:-}" ] || new_token
  if [ -n "$policy" ]; then cp "$policy" "$dir/seed.yaml"; else printf 'tenants: []\n' > "$dir/seed.yaml"; fi
  {
    printf 'listen: { address: "127.0.0.1:%s" }\n' "$ETCD_DATA_PORT"
    printf 'admin:\n  address: "127.0.0.1:%s"\n  tokens: [{ name: check, role: write, hash: "%s" }]\n' "$ETCD_ADMIN_PORT" "$TOKEN_HASH"
    [ -z "${UPSTREAM_PORT:-}" ] || printf 'upstream: { url: "http://127.0.0.1:%s" }\n' "$UPSTREAM_PORT"
    printf 'log: { level: warn, access_log: false }\n'
    printf 'policy:\n  store: etcd\n  etcd: { endpoints: ["%s"], prefix: "/check/", dial_timeout: 1s }\n' "$ETCD_ENDPOINT"
  } > "$dir/vpcguard.yaml"
  "$VPCGUARD_ETCD_BIN" policy push -c "$dir/vpcguard.yaml" "$dir/seed.yaml" 2>"$dir/push.log" \
    || { cat "$dir/push.log" >&2; die "vpcguard policy push to $ETCD_ENDPOINT"; }
  start_vpcguard "$dir/vpcguard.yaml" "$ETCD_ADMIN_PORT" "$dir/vpcguard.log" "$VPCGUARD_ETCD_BIN"
  ETCD_VG_PID=$VG_PID
}
