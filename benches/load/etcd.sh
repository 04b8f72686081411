#!/usr/bin/env bash
# The etcd store under load (docs/contract.md §11), loopback only, bounded:
#   1. propagation: time from a 200 on instance A's admin API to enforcement on instance B's data
#      plane (p50/p99 over $WRITES writes, default 1,000; each write toggles vpcep.enabled of a
#      tenant, and B's self check flips between Allow and Deny);
#   2. cold start: time and peak RSS (VmHWM) for an instance to load a $ENTRIES-entry policy
#      (default 100,000) from etcd and become ready; plus `policy push` / `policy pull` times;
#   3. catch-up: instance C is cut off from etcd (a TCP relay stops) for $OUTAGE seconds (default
#      60) while $WRITES writes go through B; time from the relay's return to C holding them all.
#
# Needs: etcd, etcdctl (Debian etcd-server, etcd-client), python3, protoc (to build). Builds the
# release binary with --features etcd (LTO off to keep the build short: the store's costs are in
# etcd round trips, validation and YAML, not in the request path LTO speeds up).
#
#   benches/load/etcd.sh            # WRITES=1000 ENTRIES=100000 OUTAGE=60
#   WRITES=200 ENTRIES=20000 OUTAGE=10 benches/load/etcd.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

WRITES=${WRITES:-1000}
ENTRIES=${ENTRIES:-100000}
OUTAGE=${OUTAGE:-60}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
CARGO_PROFILE_RELEASE_LTO=off CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
  cargo build --release --features etcd --bin vpcguard >&2
BIN="$CARGO_TARGET_DIR/release/vpcguard"

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

ec=$(port); ep=$(port)
etcd --name b1 --data-dir "$work/etcd" \
  --listen-client-urls "http://127.0.0.1:$ec" --advertise-client-urls "http://127.0.0.1:$ec" \
  --listen-peer-urls "http://127.0.0.1:$ep" --initial-advertise-peer-urls "http://127.0.0.1:$ep" \
  --initial-cluster "b1=http://127.0.0.1:$ep" --quota-backend-bytes 4294967296 \
  >"$work/etcd.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
  ETCDCTL_API=3 etcdctl --endpoints="127.0.0.1:$ec" endpoint health >/dev/null 2>&1 && break
  sleep 0.1
done

token=bench-token
hash=$(printf %s "$token" | "$BIN" hash-token)
relay=$(port)

# config NAME DATA ADMIN ENDPOINT PREFIX
config() {
  mkdir -p "$work/$1"
  cat >"$work/$1/vpcguard.yaml" <<YAML
listen: { address: "127.0.0.1:$2" }
admin:
  address: "127.0.0.1:$3"
  tokens: [{ name: bench, hash: "$hash", role: write }]
upstream: { url: "http://127.0.0.1:9" }
tenant: [{ header: "x-domain-id" }]
log: { level: warn, access_log: false }
policy:
  store: etcd
  etcd: { endpoints: ["$4"], prefix: "$5", dial_timeout: 1s, request_timeout: 10s }
YAML
}
da=$(port); aa=$(port); db=$(port); ab=$(port); dc=$(port); ac=$(port); dd=$(port); ad=$(port)
config a "$da" "$aa" "http://127.0.0.1:$ec" /bench/
config b "$db" "$ab" "http://127.0.0.1:$ec" /bench/
config c "$dc" "$ac" "http://127.0.0.1:$relay" /bench/
config d "$dd" "$ad" "http://127.0.0.1:$ec" /big/

python3 - "$BIN" "$work" "$ec" "$relay" "$token" "$WRITES" "$ENTRIES" "$OUTAGE" \
  "$da" "$aa" "$db" "$ab" "$dc" "$ac" "$ad" <<'PY'
import http.client, json, os, socket, subprocess, sys, threading, time

BIN, WORK, EC, RELAY, TOKEN = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
WRITES, ENTRIES, OUTAGE = int(sys.argv[6]), int(sys.argv[7]), int(sys.argv[8])
DA, AA, DB, AB, DC, AC, AD = map(int, sys.argv[9:16])
T = "389efb76b1354e4482eabeed00000000"
procs = []

def conn(port):
    return http.client.HTTPConnection("127.0.0.1", port, timeout=30)

def call(c, method, path, body=None):
    h = {"X-Auth-Token": TOKEN}
    if body is not None:
        h["Content-Type"] = "application/json"
        body = json.dumps(body)
    c.request(method, path, body=body, headers=h)
    r = c.getresponse()
    return r.status, r.read(), r

def start(name):
    p = subprocess.Popen([BIN, "run", "-c", f"{WORK}/{name}/vpcguard.yaml"],
                         stdout=subprocess.DEVNULL, stderr=open(f"{WORK}/{name}.log", "w"))
    procs.append(p)
    return p

def wait_ready(admin, deadline=600):
    t0 = time.monotonic()
    while time.monotonic() - t0 < deadline:
        try:
            c = conn(admin); s, _, _ = call(c, "GET", "/readyz"); c.close()
            if s == 200:
                return time.monotonic() - t0
        except OSError:
            pass
        time.sleep(0.005)
    raise SystemExit(f"instance on {admin} not ready")

def hwm_mib(p):
    for line in open(f"/proc/{p.pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0

def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]

# --- a TCP relay to etcd for C, which can be cut ---
cut = threading.Event()
def relay():
    srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", RELAY)); srv.listen(64)
    live = []
    def pump(a, b):
        try:
            while True:
                d = a.recv(65536)
                if not d: break
                b.sendall(d)
        except OSError:
            pass
        for s in (a, b):
            try: s.close()
            except OSError: pass
    def closer():
        while True:
            cut.wait()
            for s in list(live):
                try: s.shutdown(socket.SHUT_RDWR); s.close()
                except OSError: pass
            live.clear()
            while cut.is_set(): time.sleep(0.01)
    threading.Thread(target=closer, daemon=True).start()
    while True:
        a, _ = srv.accept()
        if cut.is_set():
            a.close(); continue
        b = socket.create_connection(("127.0.0.1", EC))
        live.extend([a, b])
        threading.Thread(target=pump, args=(a, b), daemon=True).start()
        threading.Thread(target=pump, args=(b, a), daemon=True).start()
threading.Thread(target=relay, daemon=True).start()

try:
    with open(f"{WORK}/small.yaml", "w") as f:
        f.write(f"tenants:\n  - enterprise_id: {T}\n")
    subprocess.run([BIN, "policy", "push", "-c", f"{WORK}/a/vpcguard.yaml", f"{WORK}/small.yaml"],
                   check=True, stderr=subprocess.DEVNULL)
    a = start("a"); wait_ready(AA)
    b = start("b"); wait_ready(AB)
    c = start("c"); wait_ready(AC)

    # --- 1. propagation A -> B ---
    ca, cb = conn(AA), conn(DB)
    lat = []
    for i in range(WRITES):
        enabled = i % 2 == 0
        s, body, _ = call(ca, "PUT", "/v2/vpceps/settings", {"enterprise_id": T, "enabled": enabled})
        if s != 200:
            raise SystemExit(f"write {i}: {s} {body!r}")
        t0 = time.monotonic()
        want = "Deny" if enabled else "Allow"
        while True:
            cb.request("GET", f"/v1/vpcep-authorization?enterprise_id={T}", headers={"x-domain-id": T})
            r = cb.getresponse(); d = r.read()
            if json.loads(d)["data"]["result"] == want:
                break
        lat.append(time.monotonic() - t0)
    ms = lambda x: f"{x * 1000:.1f} ms"
    print(f"propagation A->B over {WRITES} writes: p50 {ms(pct(lat, .5))}, p99 {ms(pct(lat, .99))}, max {ms(max(lat))}")

    # --- 3. catch-up after an outage of C ---
    cut.set()
    cc = conn(AC)
    time.sleep(2)
    cbw = conn(AB)
    t_out = time.monotonic()
    for i in range(WRITES):
        s, body, _ = call(cbw, "POST", f"/v4/tenant/trusted-ip-addresses?enterprise_id={T}",
                          {"id": f"o{i:05}", "ip_range": f"192.168.{i >> 8}.{i & 255}", "view_flag": 1})
        if s != 200:
            raise SystemExit(f"outage write {i}: {s} {body!r}")
    wrote_s = time.monotonic() - t_out
    time.sleep(max(0.0, OUTAGE - (time.monotonic() - t_out)))
    cut.clear()
    t0 = time.monotonic()
    while True:
        s, _, r = call(cc, "GET", f"/v4/tenant/trusted-ip-addresses?enterprise_id={T}&limit=1")
        if s == 200 and int(r.getheader("X-Total", "0")) >= WRITES:
            break
        time.sleep(0.005)
    catch = time.monotonic() - t0
    print(f"catch-up: {WRITES} writes made during a {OUTAGE} s outage (written in {wrote_s:.1f} s) applied {catch:.2f} s after etcd came back")
    # --- 2. a big policy: push, pull, cold start ---
    with open(f"{WORK}/big.yaml", "w") as f:
        f.write(f"tenants:\n  - enterprise_id: {T}\n  - enterprise_id: big\n    trusted_ips:\n")
        for i in range(ENTRIES):
            ip = f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"
            f.write(f'      - {{ id: "{i:06}", ip_range: "{ip}", view_flag: 1, download_flag: 0, upload_flag: 0 }}\n')
    t0 = time.monotonic()
    subprocess.run([BIN, "policy", "push", "-c", f"{WORK}/d/vpcguard.yaml", f"{WORK}/big.yaml"],
                   check=True, stderr=subprocess.DEVNULL)
    push_s = time.monotonic() - t0
    t0 = time.monotonic()
    subprocess.run([BIN, "policy", "pull", "-c", f"{WORK}/d/vpcguard.yaml"], check=True,
                   stdout=subprocess.DEVNULL)
    pull_s = time.monotonic() - t0
    d = start("d")
    load_s = wait_ready(AD)
    a_rss = hwm_mib(d)
    print(f"cold start: {ENTRIES} entries from etcd ready in {load_s:.2f} s, peak RSS {a_rss:.0f} MiB")
    print(f"policy push {ENTRIES} entries: {push_s:.2f} s; policy pull: {pull_s:.2f} s")

finally:
    for p in procs:
        p.terminate()
    for p in procs:
        p.wait(timeout=30)
PY
