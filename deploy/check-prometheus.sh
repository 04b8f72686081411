#!/usr/bin/env bash
# deploy/prometheus: the rules load (promtool check rules), every alert fires and stays quiet
# where it should (promtool test rules), and every metric, label and label value the rules name
# is one a live vpcguard /metrics exposes.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

setup_venv
need_vpcguard
need_commands prometheus:promtool curl:curl

echo "== promtool check rules"
promtool check rules deploy/prometheus/alerts.yaml
echo "== promtool test rules"
promtool test rules deploy/prometheus/alerts_test.yaml
tests=$("$PY" -c 'import sys,yaml; d=yaml.safe_load(open(sys.argv[1])); print(sum(len(t["alert_rule_test"]) for t in d["tests"]), len(d["tests"]))' deploy/prometheus/alerts_test.yaml)
alerts=$("$PY" -c 'import sys,yaml; print(sum(len(g["rules"]) for g in yaml.safe_load(open(sys.argv[1]))["groups"]))' deploy/prometheus/alerts.yaml)
echo "   $alerts alerts; ${tests% *} alert_rule_test cases in ${tests#* } groups"

echo "== the rules name only what a live /metrics exposes"
work=$(tmpdir)
start_local_vpcguard "$work"
curl -sf "http://127.0.0.1:$ADMIN_PORT/metrics" > "$work/metrics.txt"
"$PY" deploy/metric_names.py "$work/metrics.txt" alerts deploy/prometheus/alerts.yaml | sed 's/^/   /'
echo "prometheus: ok"
