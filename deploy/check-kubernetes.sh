#!/usr/bin/env bash
# deploy/kubernetes, both variants.
#
# The single pod (deploy/kubernetes/*.yaml, the default build): the manifests validate offline
# against a pinned Kubernetes schema and agree with each other (lint.py); the ConfigMap's
# vpcguard.yaml and policy.yaml pass `vpcguard check` in the layout the pod mounts them in; and a
# kubelet-style `..data` swap of the ConfigMap directory reaches a running `vpcguard run`, while
# the seed policy does not (README.md there).
#
# The fleet (deploy/kubernetes/fleet/*.yaml, the etcd build): the same schema and the agreement
# rules that apply (lint.py); the ConfigMap's vpcguard.yaml passes `vpcguard check` as mounted and
# the default build refuses it; the seed passes `vpcguard check` under the fleet's config; then,
# against a local etcd with TLS and client-certificate authentication, the seed Job's `policy
# push` as the Job mounts its files, three replicas as the pods mount theirs, a write through one
# enforced by all, and what fleet/README.md says about etcd down: the rules in force keep
# serving, writes get 503, a restarted container serves its cache, a new pod is not ready, all
# recover when etcd is back; and the etcd Secret's placeholders leave a pod not ready.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

K8S_VERSION=1.33.0   # the schema the manifests are checked against (kubernetes-validate ships it)
CM=deploy/kubernetes/configmap.yaml
SECRET=deploy/kubernetes/secret.yaml

setup_venv
need_vpcguard
need_etcd_vpcguard
need_commands curl:curl openssl:openssl

echo "== kubernetes: schema and agreement (lint.py, Kubernetes $K8S_VERSION)"
"$PY" deploy/kubernetes/lint.py "$K8S_VERSION"

work=$(tmpdir)

# configmap_files MANIFEST[#NAME] DIR [OVERRIDE ...]: write the data keys of the manifest's
# ConfigMap (or Secret stringData) into DIR as files; #NAME picks one object of a file that holds
# several. An override `vpcguard.yaml:a.b=VALUE` sets one key of a file (VALUE is YAML),
# `vpcguard.yaml:-a.b` removes one. Prints the overrides it applied.
configmap_files() {
  "$PY" - "$@" <<'EOF'
import os, sys, yaml
manifest, out, *overrides = sys.argv[1:]
manifest, _, want = manifest.partition("#")
docs = [d for d in yaml.safe_load_all(open(manifest)) if d and (not want or d["metadata"]["name"] == want)]
assert len(docs) == 1, f"{manifest}: {len(docs)} objects named {want!r}"
doc = docs[0]
data = doc.get("data") or doc.get("stringData")
os.makedirs(out, exist_ok=True)
for name, text in data.items():
    mine = [o for o in overrides if o.startswith(name + ":")]
    if mine:
        tree = yaml.safe_load(text)
        for o in mine:
            o = o[len(name) + 1:]
            if o.startswith("-"):
                path, value = o[1:], None
            else:
                path, value = o.split("=", 1)
            node, keys = tree, path.split(".")
            for k in keys[:-1]:
                node = node.setdefault(k, {})
            if value is None:
                del node[keys[-1]]
                print(f"   {name}: {path} removed")
            else:
                node[keys[-1]] = yaml.safe_load(value)
                print(f"   {name}: {path} = {value}")
        text = yaml.safe_dump(tree, sort_keys=False)
    with open(os.path.join(out, name), "w") as f:
        f.write(text)
EOF
}

# kubelet_dir DIR VERSION SRC: lay SRC's files out in DIR as the kubelet's atomic writer does:
# DIR/..VERSION/<files>, DIR/..data -> ..VERSION, DIR/<file> -> ..data/<file>. When DIR already
# holds a version, swap to the new one the kubelet's way: a new timestamped directory, a
# `..data_tmp` symlink to it renamed over `..data` (one rename(2)), then the old directory removed.
kubelet_dir() {
  local dir=$1 version=$2 src=$3 old=""
  mkdir -p "$dir"
  [ -L "$dir/..data" ] && old=$(readlink "$dir/..data")
  mkdir "$dir/..$version"
  cp "$src"/* "$dir/..$version/"
  ln -s "..$version" "$dir/..data_tmp"
  mv -T "$dir/..data_tmp" "$dir/..data"
  local f
  for f in "$src"/*; do
    f=$(basename "$f")
    [ -L "$dir/$f" ] || ln -s "..data/$f" "$dir/$f"
  done
  if [ -n "$old" ]; then rm -rf "${dir:?}/$old"; fi
}

# The pod's layout: /etc/vpcguard/{config (ConfigMap), tls (Secret), policy (emptyDir, seeded)}.
lay_out_pod() {
  local etc=$1 configsrc=$2 tlssrc=$3
  kubelet_dir "$etc/config" "2026_01_01_00_00_00.000000001" "$configsrc"
  kubelet_dir "$etc/tls" "2026_01_01_00_00_00.000000001" "$tlssrc"
  mkdir -p "$etc/policy"
  # What the seed-policy init container does.
  cp "$etc/config/policy.yaml" "$etc/policy/.seed.tmp" && mv "$etc/policy/.seed.tmp" "$etc/policy/policy.yaml"
}

echo "== vpcguard check on the ConfigMap's vpcguard.yaml and policy.yaml, as mounted in the pod"
configmap_files "$CM" "$work/cm"
mkdir -p "$work/tls"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost \
  -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
  -keyout "$work/tls/tls.key" -out "$work/tls/tls.crt" 2>/dev/null
lay_out_pod "$work/pod/etc/vpcguard" "$work/cm" "$work/tls"
"$VPCGUARD_BIN" check -c "$work/pod/etc/vpcguard/config/vpcguard.yaml" | sed 's/^/   /'

echo "== the Secret's placeholders are refused (vpcguard check exits 78)"
configmap_files "$SECRET" "$work/placeholder-tls"
lay_out_pod "$work/placeholder/etc/vpcguard" "$work/cm" "$work/placeholder-tls"
rc=0
"$VPCGUARD_BIN" check -c "$work/placeholder/etc/vpcguard/config/vpcguard.yaml" >"$work/placeholder.out" 2>&1 || rc=$?
[ "$rc" = 78 ] || { cat "$work/placeholder.out"; die "placeholder Secret: vpcguard check exited $rc, want 78"; }
echo "   exit 78: $(tail -n1 "$work/placeholder.out")"

echo "== kubelet ..data swap of the ConfigMap directory against vpcguard run"
start_upstream "$work"
data=$(free_port)
admin=$(free_port)
new_token
# The ConfigMap's files with only what a test on 127.0.0.1 needs changed.
local_keys=(
  "vpcguard.yaml:listen.address=\"127.0.0.1:$data\""
  "vpcguard.yaml:admin.address=\"127.0.0.1:$admin\""
  "vpcguard.yaml:listen.proxy_protocol_from=[127.0.0.1/32]"
  "vpcguard.yaml:upstream.url=\"http://127.0.0.1:$UPSTREAM_PORT\""
  "vpcguard.yaml:admin.tokens=[{name: check, role: write, hash: \"$TOKEN_HASH\"}]"
  "vpcguard.yaml:log={level: warn, access_log: false}"
)
echo "   version 1: the ConfigMap, with these keys changed for 127.0.0.1:"
configmap_files "$CM" "$work/v1" "${local_keys[@]}"
etc=$work/run/etc/vpcguard
lay_out_pod "$etc" "$work/v1" "$work/tls"
start_vpcguard "$etc/config/vpcguard.yaml" "$admin" "$work/vpcguard.log"

adm() { curl -sS -H "X-Auth-Token: $TOKEN" "$@"; }
status_field() { adm "http://127.0.0.1:$admin/status" | "$PY" -c "import json,sys; d=json.load(sys.stdin); print(eval('d' + sys.argv[1]))" "$1"; }
# A request from 127.0.0.1 through the PROXY header the load balancer would send.
ask() { curl -sk --haproxy-protocol -o "$work/answer" -w '%{http_code}' -H "X-Domain-Id: $1" "https://127.0.0.1:$data/hello"; }

unknown=tenant-not-in-the-policy
code=$(ask "$unknown")
[ "$code" = 403 ] && grep -q VG.00040305 "$work/answer" \
  || die "version 1: unknown tenant answered $code $(cat "$work/answer"), want 403 VG.00040305"
echo "   version 1: unknown tenant -> 403 VG.00040305 (policy.unknown_tenant: deny)"

# The admin API writes the pod's copy of the policy (the emptyDir), which the seed design exists for.
tenant=$("$PY" -c 'import sys,yaml; print(yaml.safe_load(open(sys.argv[1]))["tenants"][0]["enterprise_id"])' "$etc/policy/policy.yaml")
code=$(adm -o "$work/write" -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
  "http://127.0.0.1:$admin/v4/tenant/trusted-ip-addresses?enterprise_id=$tenant" \
  -d '{"id":"check-sh","ip_range":"192.0.2.0/24","view_flag":1,"remark":"written by check.sh"}')
[ "$code" = 200 ] || die "admin write to the policy copy: $code $(cat "$work/write")"
grep -q 'check-sh' "$etc/policy/policy.yaml" || die "the admin write is not in $etc/policy/policy.yaml"
echo "   admin API write -> 200, on disk in the writable policy copy"

config_ok='vpcguard_config_reloads_total{file="config",result="success"}'
policy_ok='vpcguard_config_reloads_total{file="policy",result="success"}'
config_before=$(metric "$admin" "$config_ok")
policy_before=$(metric "$admin" "$policy_ok")
gen_before=$(status_field "['generation']")
sha_before=$(status_field "['policy_sha256']")

echo "   version 2: unknown_tenant allow, and a seed policy with one more tenant:"
configmap_files "$CM" "$work/v2" "${local_keys[@]}" "vpcguard.yaml:policy.unknown_tenant=allow" >/dev/null
"$PY" - "$work/v2/policy.yaml" <<'EOF'
import sys, yaml
p = yaml.safe_load(open(sys.argv[1]))
p["tenants"].append({"enterprise_id": "seed-only-tenant"})
yaml.safe_dump(p, open(sys.argv[1], "w"), sort_keys=False)
EOF
echo "   vpcguard.yaml: policy.unknown_tenant = allow; policy.yaml: + tenant seed-only-tenant"
kubelet_dir "$etc/config" "2026_01_01_00_01_00.000000002" "$work/v2"
has_reloaded() { [ "$(metric "$admin" "$config_ok")" -gt "$config_before" ]; }
wait_for 15 "config_reloads_total{file=config,result=success} to count the swap" has_reloaded

[ "$(metric "$admin" "$config_ok")" = $((config_before + 1)) ] || die "the swap was counted more than once"
gen_after=$(status_field "['generation']")
[ "$gen_after" = $((gen_before + 1)) ] || die "generation $gen_before -> $gen_after, want +1"
[ "$(status_field "['last_reload']['result']")" = success ] || die "last_reload is not a success"
echo "   reload seen: config_reloads_total{file=config,result=success} $config_before -> $((config_before + 1)), generation $gen_before -> $gen_after, trigger $(status_field "['last_reload']['trigger']")"

code=$(ask "$unknown")
[ "$code" = 200 ] && grep -q 'upstream ok' "$work/answer" \
  || die "version 2: unknown tenant answered $code $(cat "$work/answer"), want 200 from the upstream"
echo "   version 2: unknown tenant -> 200 from the upstream"

# The seed changed in the ConfigMap, but the running pod keeps its own policy copy.
[ "$(metric "$admin" "$policy_ok")" = "$policy_before" ] || die "a policy reload was counted for the seed change"
[ "$(status_field "['policy_sha256']")" = "$sha_before" ] || die "policy_sha256 changed"
grep -q check-sh "$etc/policy/policy.yaml" || die "the admin write was lost"
! grep -q seed-only-tenant "$etc/policy/policy.yaml" || die "the seed reached the running copy"
echo "   seed policy change not applied to the running pod (policy_sha256 unchanged, admin write kept)"

kill "$VG_PID"
wait "$VG_PID" || die "vpcguard exited $? after SIGTERM, want 0"

# === the fleet variant: deploy/kubernetes/fleet, the replicas on the etcd store ===

FLEET=deploy/kubernetes/fleet
fw=$work/fleet
mkdir -p "$fw"

echo "== fleet: schema and agreement (lint.py $FLEET, Kubernetes $K8S_VERSION)"
"$PY" deploy/kubernetes/lint.py "$K8S_VERSION" "$FLEET"

# The fleet pod's layout: /etc/vpcguard/{config (ConfigMap), tls (Secret vpcguard-tls), etcd
# (Secret vpcguard-etcd-client), cache (emptyDir)}.
lay_out_fleet_pod() {
  local etc=$1 configsrc=$2 tlssrc=$3 etcdsrc=$4
  kubelet_dir "$etc/config" "2026_01_01_00_00_00.000000001" "$configsrc"
  kubelet_dir "$etc/tls" "2026_01_01_00_00_00.000000001" "$tlssrc"
  kubelet_dir "$etc/etcd" "2026_01_01_00_00_00.000000001" "$etcdsrc"
  mkdir -p "$etc/cache"
}
# The key of ConfigMap vpcguard the pods' -c names.
cfg_key() { "$PY" -c 'import sys,yaml; print(yaml.safe_load(sys.stdin)["policy"]["etcd"][sys.argv[1]])' "$1" < "$fw/cm/vpcguard.yaml"; }

# The etcd client Secret as the operator creates it: the three keys of secret.yaml, from a
# throwaway CA that also signs the test etcd's server certificate.
make_pki "$fw/pki"
mkdir -p "$fw/etcd-secret"
cp "$fw/pki/ca.crt" "$fw/etcd-secret/ca.crt"
cp "$fw/pki/client.crt" "$fw/etcd-secret/tls.crt"
cp "$fw/pki/client.key" "$fw/etcd-secret/tls.key"
configmap_files "$FLEET/secret.yaml#vpcguard-etcd-client" "$fw/etcd-placeholder"
[ "$(ls "$fw/etcd-placeholder")" = "$(ls "$fw/etcd-secret")" ] \
  || die "secret.yaml's vpcguard-etcd-client keys ($(ls "$fw/etcd-placeholder" | xargs)) are not ca.crt tls.crt tls.key"

echo "== fleet: vpcguard check on the ConfigMap's vpcguard.yaml, as mounted in the pod (etcd build)"
configmap_files "$FLEET/configmap.yaml" "$fw/cm"
lay_out_fleet_pod "$fw/pod/etc/vpcguard" "$fw/cm" "$work/tls" "$fw/etcd-secret"
"$VPCGUARD_ETCD_BIN" check -c "$fw/pod/etc/vpcguard/config/vpcguard.yaml" | sed 's/^/   /'
rc=0
"$VPCGUARD_BIN" check -c "$fw/pod/etc/vpcguard/config/vpcguard.yaml" >"$fw/default.out" 2>&1 || rc=$?
[ "$rc" = 78 ] && grep -q 'this build has no etcd store' "$fw/default.out" \
  || { cat "$fw/default.out"; die "the default build on the fleet config: exit $rc, want 78 'this build has no etcd store'"; }
echo "   the default build refuses it: exit 78, $(grep -o 'this build has no etcd store' "$fw/default.out")"

echo "== fleet: the seed policy (seed.yaml) passes vpcguard check under the fleet's config"
# The same config with the file store reading the seed where the Job mounts it: what `policy push`
# validates (the config's limits apply), with the counts `check` prints.
configmap_files "$FLEET/seed.yaml#vpcguard-seed-policy" "$fw/seed"
configmap_files "$FLEET/configmap.yaml" "$fw/cm-file" "vpcguard.yaml:policy.store=file" \
  "vpcguard.yaml:-policy.etcd" 'vpcguard.yaml:policy.path="../seed/policy.yaml"' | sed 's/^ */   as a file store: /'
kubelet_dir "$fw/seedcheck/etc/vpcguard/config" "2026_01_01_00_00_00.000000001" "$fw/cm-file"
kubelet_dir "$fw/seedcheck/etc/vpcguard/tls" "2026_01_01_00_00_00.000000001" "$work/tls"
kubelet_dir "$fw/seedcheck/etc/vpcguard/seed" "2026_01_01_00_00_00.000000001" "$fw/seed"
"$VPCGUARD_ETCD_BIN" check -c "$fw/seedcheck/etc/vpcguard/config/vpcguard.yaml" > "$fw/seed.check"
sed 's/^/   /' "$fw/seed.check"
counts() { grep -E '^  (tenants|endpoints|ip entries|connections|projects):' "$1"; }

echo "== fleet: etcd with TLS and client certificates; the seed Job's policy push, as the Job mounts its files"
start_etcd "$fw/etcd" "$fw/pki"
prefix=$(cfg_key prefix)
echo "   etcd at $ETCD_ENDPOINT (--client-cert-auth); prefix $prefix from the ConfigMap"
endpoint_key="vpcguard.yaml:policy.etcd.endpoints=[\"$ETCD_ENDPOINT\"]"
configmap_files "$FLEET/configmap.yaml" "$fw/job-cm" "$endpoint_key" | sed 's/^ */   /'
job=$fw/job/etc/vpcguard
kubelet_dir "$job/config" "2026_01_01_00_00_00.000000001" "$fw/job-cm"
kubelet_dir "$job/etcd" "2026_01_01_00_00_00.000000001" "$fw/etcd-secret"
kubelet_dir "$job/seed" "2026_01_01_00_00_00.000000001" "$fw/seed"
# The Job's args, from seed.yaml, with the Job's paths under $job.
mapfile -t job_args < <("$PY" -c '
import sys, yaml
job = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d["kind"] == "Job"][0]
for a in job["spec"]["template"]["spec"]["containers"][0]["args"]:
    print(a.replace("/etc/vpcguard", sys.argv[2]))' "$FLEET/seed.yaml" "$job")
"$VPCGUARD_ETCD_BIN" "${job_args[@]}" 2>"$fw/push.out" || { cat "$fw/push.out"; die "the Job's vpcguard ${job_args[*]}"; }
echo "   Job: vpcguard ${job_args[*]//$job//etc/vpcguard}"
echo "     -> $(cat "$fw/push.out")"
pushed=$(sed -n 's/.*pushed, \([0-9]*\) records changed.*/\1/p' "$fw/push.out")
keys=$("${ETCDCTL[@]}" get --prefix "$prefix" --keys-only | grep -c . || true)
[ -n "$pushed" ] && [ "$pushed" -gt 0 ] && [ "$keys" = "$pushed" ] || die "pushed $pushed records, etcd holds $keys keys under $prefix"
echo "   etcdctl get --prefix $prefix: $keys keys, one per record"
"$VPCGUARD_ETCD_BIN" "${job_args[@]}" 2>"$fw/push2.out" || { cat "$fw/push2.out"; die "the Job run again"; }
grep -q 'pushed, 0 records changed' "$fw/push2.out" || die "the Job run again changed records: $(cat "$fw/push2.out")"
echo "   the Job run again (a retry): 0 records changed"
"$VPCGUARD_ETCD_BIN" policy pull -c "$job/config/vpcguard.yaml" > "$fw/pulled.yaml" || die "vpcguard policy pull"
cp "$fw/pulled.yaml" "$fw/seedcheck/etc/vpcguard/seed/..2026_01_01_00_00_00.000000001/policy.yaml"
"$VPCGUARD_ETCD_BIN" check -c "$fw/seedcheck/etc/vpcguard/config/vpcguard.yaml" > "$fw/pulled.check"
[ "$(counts "$fw/pulled.check")" = "$(counts "$fw/seed.check")" ] \
  || { counts "$fw/seed.check"; counts "$fw/pulled.check"; die "policy pull differs from the seed"; }
echo "   policy pull: the seed's counts again ($(counts "$fw/pulled.check" | sed 's/^ *//; s/  */ /g' | paste -sd, | sed 's/,/, /g'))"

echo "== fleet: three replicas on that etcd, each in the pod's layout (etcd build)"
declare -A FDATA FADMIN FPID
# fleet_replica NAME [ETCD_SECRET_DIR] [ROUTE]: a replica's pod layout from the ConfigMap (with the
# 127.0.0.1 changes and the test etcd's endpoint) and `vpcguard run` until ROUTE answers 200.
fleet_replica() {
  local r=$1 secret=${2:-$fw/etcd-secret} route=${3:-/readyz}
  FDATA[$r]=$(free_port)
  FADMIN[$r]=$(free_port)
  configmap_files "$FLEET/configmap.yaml" "$fw/$r-cm" "$endpoint_key" \
    "vpcguard.yaml:listen.address=\"127.0.0.1:${FDATA[$r]}\"" \
    "vpcguard.yaml:admin.address=\"127.0.0.1:${FADMIN[$r]}\"" \
    "vpcguard.yaml:listen.proxy_protocol_from=[127.0.0.1/32]" \
    "vpcguard.yaml:upstream.url=\"http://127.0.0.1:$UPSTREAM_PORT\"" \
    "vpcguard.yaml:admin.tokens=[{name: check, role: write, hash: \"$TOKEN_HASH\"}]" \
    "vpcguard.yaml:log={level: warn, access_log: false}" >/dev/null
  [ -d "$fw/$r/etc/vpcguard/config" ] || lay_out_fleet_pod "$fw/$r/etc/vpcguard" "$fw/$r-cm" "$work/tls" "$secret"
  # A container restart keeps the pod's volumes: only the ports of this run change.
  cp "$fw/$r-cm/vpcguard.yaml" "$fw/$r/etc/vpcguard/config/..data/vpcguard.yaml"
  start_vpcguard "$fw/$r/etc/vpcguard/config/vpcguard.yaml" "${FADMIN[$r]}" "$fw/$r.log" "$VPCGUARD_ETCD_BIN" "$route"
  FPID[$r]=$VG_PID
}
fadm() { shift; curl -sS -H "X-Auth-Token: $TOKEN" "$@"; }
fstatus() { fadm "$1" "http://127.0.0.1:${FADMIN[$1]}/status" | "$PY" -c "import json,sys; d=json.load(sys.stdin); print(eval('d' + sys.argv[1]))" "$2"; }
fask() { curl -sk --haproxy-protocol -o "$fw/answer" -w '%{http_code}' -H "X-Domain-Id: $2" "https://127.0.0.1:${FDATA[$1]}/hello"; }
store_up() { metric "${FADMIN[$1]}" vpcguard_policy_store_up; }
is_up() { [ "$(store_up "$1")" = "$2" ]; }
answers() { [ "$(fask "$1" "$2")" = "$3" ]; }

for r in a b c; do fleet_replica "$r"; done
for r in a b c; do
  [ "$(fstatus "$r" "['store']['serving']")" = etcd ] && [ "$(store_up "$r")" = 1 ] \
    || die "replica $r: store $(fadm "$r" "http://127.0.0.1:${FADMIN[$r]}/status")"
done
echo "   a, b, c ready: store serving etcd, vpcguard_policy_store_up 1, revision $(fstatus a "['store']['revision']")"

tenant=$("$PY" -c 'import sys,yaml; print(yaml.safe_load(open(sys.argv[1]))["tenants"][0]["enterprise_id"])' "$fw/seed/policy.yaml")
code=$(fask b "$tenant")
[ "$code" = 403 ] || die "b: the seed tenant from 127.0.0.1 answered $code $(cat "$fw/answer"), want 403"
echo "   b: the seed tenant from 127.0.0.1 -> 403 $(grep -o 'VG\.[0-9]*' "$fw/answer")"
# Two writes through a's admin API: VPC endpoint enforcement off, 127.0.0.1 trusted.
code=$(fadm a -o "$fw/write" -w '%{http_code}' -X PUT -H 'Content-Type: application/json' \
  "http://127.0.0.1:${FADMIN[a]}/v2/vpceps/settings" -d "{\"enterprise_id\":\"$tenant\",\"enabled\":false}")
[ "$code" = 200 ] || die "a: PUT /v2/vpceps/settings -> $code $(cat "$fw/write")"
code=$(fadm a -o "$fw/write" -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
  "http://127.0.0.1:${FADMIN[a]}/v4/tenant/trusted-ip-addresses?enterprise_id=$tenant" \
  -d '{"id":"check-fleet","ip_range":"127.0.0.1","view_flag":1,"remark":"written through replica a"}')
[ "$code" = 200 ] || die "a: POST trusted-ip-addresses -> $code $(cat "$fw/write")"
for r in b c a; do wait_for 10 "replica $r to allow the seed tenant" answers "$r" "$tenant" 200; done
echo "   two admin writes through a (vpcep settings off, 127.0.0.1 trusted) -> b, c and a answer 200"
for r in a b c; do
  grep -q check-fleet "$fw/$r/etc/vpcguard/cache/policy.cache.yaml" || die "replica $r: the write is not in its cache"
done
echo "   each replica's cache (emptyDir) holds the write: $(head -n1 "$fw/c/etc/vpcguard/cache/policy.cache.yaml")"

echo "== fleet: etcd down"
stop_etcd
for r in a b c; do wait_for 15 "replica $r to see etcd down" is_up "$r" 0; done
for r in a b c; do
  curl -sf "http://127.0.0.1:${FADMIN[$r]}/readyz" >/dev/null || die "replica $r: /readyz not 200 with etcd down"
  [ "$(fask "$r" "$tenant")" = 200 ] || die "replica $r: the seed tenant answered $(cat "$fw/answer") with etcd down"
done
echo "   a, b, c: vpcguard_policy_store_up 0, /readyz 200, the rules in force serve (seed tenant 200)"
code=$(fadm a -o "$fw/write" -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
  "http://127.0.0.1:${FADMIN[a]}/v4/tenant/trusted-ip-addresses?enterprise_id=$tenant" \
  -d '{"id":"check-fleet-2","ip_range":"192.0.2.7","view_flag":1}')
[ "$code" = 503 ] && grep -q UC.00010005 "$fw/write" || die "a: an admin write with etcd down -> $code $(cat "$fw/write"), want 503 UC.00010005"
echo "   a: an admin write -> 503 UC.00010005"
kill "${FPID[c]}"
wait "${FPID[c]}" || die "replica c exited $? after SIGTERM, want 0"
fleet_replica c
[ "$(fstatus c "['store']['serving']")" = cache ] || die "c restarted: store serving $(fstatus c "['store']['serving']"), want cache"
[ "$(fask c "$tenant")" = 200 ] || die "c restarted on its cache: the seed tenant answered $(cat "$fw/answer")"
echo "   c's container restarted (same emptyDir): ready on its cache (store serving cache), seed tenant 200"
fleet_replica d "$fw/etcd-secret" /healthz
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:${FADMIN[d]}/readyz")
[ "$code" = 503 ] || die "d (a new pod, no cache): /readyz $code, want 503"
code=$(fask d "$tenant")
[ "$code" = 503 ] && grep -q VG.00050301 "$fw/answer" || die "d: the data plane answered $code $(cat "$fw/answer"), want 503 VG.00050301"
echo "   d, a new pod (empty cache): /healthz 200, /readyz 503, requests 503 VG.00050301"

echo "== fleet: etcd back"
restart_etcd
for r in a b c d; do wait_for 20 "replica $r to see etcd again" is_up "$r" 1; done
wait_for 10 "d ready" curl -sf "http://127.0.0.1:${FADMIN[d]}/readyz"
[ "$(fstatus c "['store']['serving']")" = etcd ] || die "c still serves its cache"
[ "$(fask d "$tenant")" = 200 ] || die "d: the seed tenant answered $(cat "$fw/answer") once etcd is back"
echo "   a, b, c, d: vpcguard_policy_store_up 1; d ready without a restart, c serving etcd"

echo "== fleet: the etcd client Secret's placeholders"
fleet_replica e "$fw/etcd-placeholder" /healthz
errors_total() { metric "${FADMIN[e]}" 'vpcguard_policy_store_errors_total{op="range"}'; }
has_errors() { [ "$(errors_total)" -gt 0 ]; }
wait_for 10 "e to count a failed read" has_errors
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:${FADMIN[e]}/readyz")
[ "$code" = 503 ] && [ "$(store_up e)" = 0 ] || die "e (placeholder etcd Secret): /readyz $code, store_up $(store_up e)"
echo "   e: starts (/healthz 200), /readyz 503, vpcguard_policy_store_up 0, store_errors_total{op=range} $(errors_total): $(fstatus e "['store']['error']" | cut -c1-100)"

for r in a b c d e; do
  kill "${FPID[$r]}"
  wait "${FPID[$r]}" || die "replica $r exited $? after SIGTERM, want 0"
done
echo "   a, b, c, d, e: exit 0 after SIGTERM"
echo "kubernetes: ok (single pod and fleet)"
