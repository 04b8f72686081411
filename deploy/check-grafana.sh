#!/usr/bin/env bash
# deploy/grafana/vpcguard.json: well formed (unique panel ids, grid positions that do not
# overlap, every query on the dashboard's data source variable), every query names only what
# live vpcguard instances expose (the default build, and the etcd build with its policy in a real
# local etcd, the only one with policy_store_*), and every query evaluates to data in a real
# Prometheus that scrapes both while they serve allowed, denied and admin traffic.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

DASH=deploy/grafana/vpcguard.json
setup_venv
need_vpcguard
need_etcd_vpcguard
need_commands prometheus:prometheus curl:curl

echo "== dashboard structure"
"$PY" - "$DASH" <<'PYEOF'
import json, sys
d = json.load(open(sys.argv[1]))
def panels(ps):
    for p in ps:
        yield p
        yield from panels(p.get("panels", []))
ps = list(panels(d["panels"]))
ids = [p["id"] for p in ps]
assert len(ids) == len(set(ids)), f"duplicate panel ids {ids}"
cells = {}
for p in ps:
    g = p["gridPos"]
    assert g["x"] + g["w"] <= 24, f"panel {p['id']} is wider than the grid"
    for x in range(g["x"], g["x"] + g["w"]):
        for y in range(g["y"], g["y"] + g["h"]):
            assert (x, y) not in cells, f"panels {cells[(x, y)]} and {p['id']} overlap"
            cells[(x, y)] = p["id"]
queries = 0
for p in ps:
    if p["type"] == "row":
        continue
    assert p["datasource"]["uid"] == "${datasource}", f"panel {p['id']} has its own data source"
    refs = [t["refId"] for t in p["targets"]]
    assert refs and len(refs) == len(set(refs)), f"panel {p['id']} refIds {refs}"
    for t in p["targets"]:
        assert t["expr"].strip() and t["datasource"]["uid"] == "${datasource}", f"panel {p['id']} {t['refId']}"
        queries += 1
names = [v["name"] for v in d["templating"]["list"]]
assert names[0] == "datasource", names
print(f"   {len(ps)} panels, {queries} queries, variables {', '.join(names)}")
PYEOF

work=$(tmpdir)
cat > "$work/fixture.yaml" <<'YAML'
tenants:
  - enterprise_id: grafana-check
    trusted_ips:
      - { id: "1", ip_range: "127.0.0.0/8", view_flag: 1, download_flag: 1, upload_flag: 1 }
YAML
start_upstream "$work"
start_local_vpcguard "$work" "$work/fixture.yaml"
mkdir -p "$work/etcd-vg"
start_etcd "$work/etcd"
start_local_etcd_vpcguard "$work/etcd-vg" "$work/fixture.yaml"
echo "   default build on :$ADMIN_PORT; etcd build on :$ETCD_ADMIN_PORT, store $ETCD_ENDPOINT"

echo "== the queries name only what live instances expose: the default build, and the etcd build on a real etcd"
curl -sf "http://127.0.0.1:$ADMIN_PORT/metrics" > "$work/default-build.txt"
curl -sf "http://127.0.0.1:$ETCD_ADMIN_PORT/metrics" > "$work/etcd-build.txt"
"$PY" deploy/metric_names.py grafana "$DASH" "$work/default-build.txt" "$work/etcd-build.txt" | sed 's/^/   /'

echo "== every query has data in a real Prometheus scraping vpcguard"
prom=$(free_port)
cat > "$work/prometheus.yml" <<YAML
global: { scrape_interval: 1s, evaluation_interval: 1s }
scrape_configs:
  - job_name: vpcguard
    static_configs: [{ targets: ["127.0.0.1:$ADMIN_PORT", "127.0.0.1:$ETCD_ADMIN_PORT"] }]
YAML
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" \
  --web.listen-address="127.0.0.1:$prom" --log.level=warn >"$work/prometheus.log" 2>&1 &
_pids+=($!)
wait_for 20 "prometheus ready" curl -sf "http://127.0.0.1:$prom/-/ready"
# Traffic for the panels: allowed (forwarded upstream), denied (unknown tenant), refused before
# judging (TRACE), admin calls; spread over the scrapes so rate() has samples on both sides.
for _ in $(seq 8); do
  for port in "$DATA_PORT" "$ETCD_DATA_PORT"; do
    curl -s -o /dev/null -H 'X-Domain-Id: grafana-check' "http://127.0.0.1:$port/a"
    curl -s -o /dev/null -H 'X-Domain-Id: nobody' "http://127.0.0.1:$port/b"
    curl -s -o /dev/null -X TRACE "http://127.0.0.1:$port/c"
  done
  curl -s -o /dev/null -H "X-Auth-Token: $TOKEN" "http://127.0.0.1:$ADMIN_PORT/status"
  curl -s -o /dev/null -H "X-Auth-Token: $TOKEN" "http://127.0.0.1:$ETCD_ADMIN_PORT/status"
  sleep 0.5
done
scraped() {
  curl -sf "http://127.0.0.1:$prom/api/v1/query" --data-urlencode 'query=count(count_over_time(vpcguard_build_info[1m]) >= 5) == 2' \
    | grep -q '"result":\[{'
}
wait_for 20 "five scrapes of both instances" scraped
"$PY" - "$DASH" "$prom" <<'PYEOF'
import json, sys, urllib.parse, urllib.request
dash, port = json.load(open(sys.argv[1])), sys.argv[2]
def get(path, **params):
    url = f"http://127.0.0.1:{port}{path}?" + urllib.parse.urlencode(params, doseq=True)
    return json.load(urllib.request.urlopen(url, timeout=10))
def subst(q):
    for var, val in (("$__rate_interval", "1m"), ("$__range", "1h"), ("$job", ".*"), ("$instance", ".*")):
        q = q.replace(var, val)
    return q
def panels(ps):
    for p in ps:
        yield p
        yield from panels(p.get("panels", []))
bad = n = 0
for p in panels(dash["panels"]):
    for t in p.get("targets", []):
        n += 1
        r = get("/api/v1/query", query=subst(t["expr"]))
        ok = r["status"] == "success" and r["data"]["result"]
        bad += not ok
        print(f"   {'ok  ' if ok else 'FAIL'} panel {p['id']} {t['refId']}: {len(r['data']['result'])} series")
for v in dash["templating"]["list"]:
    if v["type"] != "query":
        continue
    n += 1
    q = subst(v["query"]["query"])
    metric, label = q[len("label_values("):-1].rsplit(",", 1)
    r = get(f"/api/v1/label/{label.strip()}/values", **{"match[]": metric.strip()})
    ok = r["status"] == "success" and r["data"]
    bad += not ok
    print(f"   {'ok  ' if ok else 'FAIL'} variable {v['name']}: {r['data']}")
print(f"   {n} queries evaluated, {n - bad} with data, {bad} without")
sys.exit(1 if bad else 0)
PYEOF
echo "grafana: ok"
