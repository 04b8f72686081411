#!/usr/bin/env bash
# deploy/kubernetes: the manifests validate offline against a pinned Kubernetes schema and agree
# with each other (lint.py); the ConfigMap's vpcguard.yaml and policy.yaml pass `vpcguard check`
# in the layout the pod mounts them in; and a kubelet-style `..data` swap of the ConfigMap
# directory reaches a running `vpcguard run`, while the seed policy does not (README.md there).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

K8S_VERSION=1.33.0   # the schema the manifests are checked against (kubernetes-validate ships it)
CM=deploy/kubernetes/configmap.yaml
SECRET=deploy/kubernetes/secret.yaml

setup_venv
need_vpcguard
need_commands curl:curl openssl:openssl

echo "== kubernetes: schema and agreement (lint.py, Kubernetes $K8S_VERSION)"
"$PY" deploy/kubernetes/lint.py "$K8S_VERSION"

work=$(tmpdir)

# configmap_files MANIFEST DIR [KEY=YAML-OVERRIDE ...]: write the data keys of the manifest's
# ConfigMap (or Secret stringData) into DIR as files. Overrides `vpcguard.yaml:a.b=VALUE` set one
# key of a file (VALUE is YAML). Prints the overrides it applied.
configmap_files() {
  "$PY" - "$@" <<'EOF'
import os, sys, yaml
manifest, out, *overrides = sys.argv[1:]
doc = yaml.safe_load(open(manifest))
data = doc.get("data") or doc.get("stringData")
os.makedirs(out, exist_ok=True)
for name, text in data.items():
    mine = [o for o in overrides if o.startswith(name + ":")]
    if mine:
        tree = yaml.safe_load(text)
        for o in mine:
            path, value = o[len(name) + 1:].split("=", 1)
            node, keys = tree, path.split(".")
            for k in keys[:-1]:
                node = node.setdefault(k, {})
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
echo "kubernetes: ok"
