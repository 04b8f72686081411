#!/usr/bin/env bash
# The operator kit's checks, in one entry (CI: .ci/run calls this after the tests):
#   check-kubernetes.sh  both variants (single pod; fleet on etcd): manifests vs Kubernetes
#                        schema, agreement, vpcguard check; the single pod's ..data replay; the
#                        fleet's seed Job, replicas and etcd outage against a local etcd over TLS
#   check-prometheus.sh  promtool check rules, promtool test rules, names vs two live /metrics
#   check-grafana.sh     dashboard layout, names vs two live /metrics, every query in Prometheus
#   check-admin-api.sh   openapi-spec-validator, schemathesis against a live instance
# Each installs what it lacks (pinned Python tools in a venv, Debian packages) and fails, never
# skips, when a tool or a peer is missing. Two binaries (deploy/lib.sh): VPCGUARD_BIN, the
# default build (default target/debug/vpcguard), and VPCGUARD_ETCD_BIN, the --features etcd
# build (default target/vpcguard-etcd); each is refused if it is the other build. Every check
# runs; the exit status is 1 if any failed.
set -euo pipefail
cd "$(dirname "$0")/.."

checks=(kubernetes prometheus grafana admin-api)
passed=0
failed=()
for c in "${checks[@]}"; do
  echo "=== deploy/check-$c.sh"
  start=$SECONDS
  if bash "deploy/check-$c.sh"; then
    passed=$((passed + 1))
    echo "=== $c passed in $((SECONDS - start))s"
  else
    failed+=("$c")
    echo "=== $c FAILED after $((SECONDS - start))s"
  fi
done
[ ${#failed[@]} -eq 0 ] || echo "failed: ${failed[*]}"
echo "deploy checks: ${passed} of ${#checks[@]} passed"
[ ${#failed[@]} -eq 0 ]
