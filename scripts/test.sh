#!/usr/bin/env bash
# The test command (README "Test it"; .ci/run calls it too): install the real peers the suite runs
# against, then `cargo test`. A fresh machine needs only Rust, Python and gcc to start it; on
# Debian/Ubuntu the peers come from apt (sudo when not root). A peer that is still missing after
# that is a failure, never a skipped test. Extra arguments go to `cargo test`
# (e.g. `scripts/test.sh --test canonical`).
set -euo pipefail
cd "$(dirname "$0")/.."

# command -> Debian package
peers=(curl:curl h2load:nghttp2-client haproxy:haproxy nginx:nginx-light ss:iproute2
       slowhttptest:slowhttptest openssl:openssl promtool:prometheus prometheus:prometheus)
have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }

need=()
for p in "${peers[@]}"; do
  have "${p%%:*}" || need+=("${p#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  mapfile -t need < <(printf '%s\n' "${need[@]}" | sort -u)
  echo "scripts/test.sh: installing the test peers: ${need[*]}" >&2
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "scripts/test.sh: no apt-get here; install these packages (Debian names): ${need[*]}" >&2
    exit 1
  fi
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
missing=()
for p in "${peers[@]}"; do
  have "${p%%:*}" || missing+=("${p%%:*}")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "scripts/test.sh: still missing after the install: ${missing[*]}" >&2
  exit 1
fi
command -v python3 >/dev/null || { echo "scripts/test.sh: python3 is required" >&2; exit 1; }

exec cargo test --locked "$@"
