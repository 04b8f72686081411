#!/usr/bin/env bash
# deploy/prometheus: the rules load (promtool check rules), every alert fires and stays quiet
# where it should (promtool test rules), and every metric, label and label value the rules name
# is one that live vpcguard instances expose: the default build (file store) and the etcd build
# with its policy in a real local etcd, whose policy_store_* families only it has. Both /metrics
# pass `promtool check metrics`.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

setup_venv
need_vpcguard
need_etcd_vpcguard
need_commands prometheus:promtool curl:curl

echo "== promtool check rules"
promtool check rules deploy/prometheus/alerts.yaml
echo "== promtool test rules"
promtool test rules deploy/prometheus/alerts_test.yaml
tests=$("$PY" -c 'import sys,yaml; d=yaml.safe_load(open(sys.argv[1])); print(sum(len(t["alert_rule_test"]) for t in d["tests"]), len(d["tests"]))' deploy/prometheus/alerts_test.yaml)
alerts=$("$PY" -c 'import sys,yaml; print(sum(len(g["rules"]) for g in yaml.safe_load(open(sys.argv[1]))["groups"]))' deploy/prometheus/alerts.yaml)
echo "   $alerts alerts; ${tests% *} alert_rule_test cases in ${tests#* } groups"

echo "== the rules name only what live instances expose: the default build, and the etcd build on a real etcd"
work=$(tmpdir)
mkdir -p "$work/default" "$work/etcd" "$work/etcd-vg"
start_local_vpcguard "$work/default"
start_etcd "$work/etcd"
start_local_etcd_vpcguard "$work/etcd-vg"
echo "   default build on :$ADMIN_PORT; etcd build on :$ETCD_ADMIN_PORT, store $ETCD_ENDPOINT"
curl -sf "http://127.0.0.1:$ADMIN_PORT/metrics" > "$work/default-build.txt"
curl -sf "http://127.0.0.1:$ETCD_ADMIN_PORT/metrics" > "$work/etcd-build.txt"
! grep -q '^vpcguard_policy_store_' "$work/default-build.txt" || die "the default build exports policy_store_* series"
[ "$(metric "$ETCD_ADMIN_PORT" vpcguard_policy_store_up)" = 1 ] || die "the etcd build's vpcguard_policy_store_up is not 1"
for f in default-build etcd-build; do
  out=$(promtool check metrics < "$work/$f.txt" 2>&1) || { echo "$out"; die "promtool check metrics: $f"; }
  [ -z "$out" ] || { echo "$out"; die "promtool check metrics: $f"; }
done
echo "   promtool check metrics: both clean; vpcguard_policy_store_up 1 on the etcd build, absent from the default build"
"$PY" deploy/metric_names.py alerts deploy/prometheus/alerts.yaml "$work/default-build.txt" "$work/etcd-build.txt" | sed 's/^/   /'
echo "prometheus: ok"
