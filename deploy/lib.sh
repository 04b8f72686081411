# Shared by deploy/check-*.sh (sourced, not run). Sets ROOT (the repository), VPCGUARD_BIN
# (absolute), PY (the pinned tools' python) and helpers for processes on 127.0.0.1 that are
# cleaned up on exit. A tool that cannot be installed, or a peer that does not start, is a
# failure: nothing here skips.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

VPCGUARD_BIN=${VPCGUARD_BIN:-target/debug/vpcguard}
case $VPCGUARD_BIN in /*) ;; *) VPCGUARD_BIN=$ROOT/$VPCGUARD_BIN ;; esac

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

need_vpcguard() {
  [ -x "$VPCGUARD_BIN" ] || die "VPCGUARD_BIN=$VPCGUARD_BIN is not an executable (cargo build first)"
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

# start_vpcguard CONFIG ADMIN_PORT LOG: `vpcguard run` in the background until /readyz answers
# 200; sets VG_PID. A process that exits first is a failure, with its log.
start_vpcguard() {
  local config=$1 admin=$2 log=$3
  "$VPCGUARD_BIN" run -c "$config" >"$log" 2>&1 &
  VG_PID=$!
  _pids+=("$VG_PID")
  local deadline=$((SECONDS + 20))
  until curl -sf "http://127.0.0.1:$admin/readyz" >/dev/null 2>&1; do
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
