#!/usr/bin/env python3
"""Check that PromQL expressions name only metrics, labels and label values that live vpcguard
instances expose (docs/contract.md §9: every family has its series from startup, so a name
missing from a fresh process's /metrics does not exist).

Usage: metric_names.py (alerts|grafana) FILE METRICS.txt [METRICS.txt ...]

- alerts: every `expr` of a Prometheus rule file;
- grafana: every target `expr` and templating `query` of a dashboard JSON.

Each METRICS.txt is one live instance's /metrics; what the expressions may name is their union
(the default build with the file store, and the etcd build with the etcd store, whose
`policy_store_*` families only it exports). An expression that names a metric only some of them
expose says which.

Checked: each `vpcguard_*` / `process_*` name is a series name of an exposition; each label
matcher on it names a label that metric has; an `=` matcher's value, and each literal of an
`=~"a|b"` matcher, is a value that label takes; each `by (…)`/`without (…)` label is a label of a
metric in the expression, or a target label Prometheus adds. Values holding a Grafana variable
(`$…`) are not checked. Prints one line per expression; exits 1 if any fails.
"""

import json
import os
import re
import sys

import yaml

TARGET_LABELS = {"instance", "job", "namespace", "pod", "container", "service", "endpoint"}
NAME = re.compile(r"\b((?:vpcguard|process)_[A-Za-z0-9_]+)\b(\{[^}]*\})?")
MATCHER = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"([^"]*)"')
GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")


def exposition(path, out):
    """Add path's series to out: series name -> {label -> set of values}."""
    for line in open(path):
        if not line.strip() or line.startswith("#"):
            continue
        m = re.match(r"([A-Za-z_:][A-Za-z0-9_:]*)(\{(.*)\})?\s", line)
        if not m:
            continue
        labels = out.setdefault(m.group(1), {})
        for k, v in re.findall(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"', m.group(3) or ""):
            labels.setdefault(k, set()).add(v)
    return out


def series_names(path):
    return set(exposition(path, {}))


def problems(expr, live):
    found, names = [], []
    for name, selector in NAME.findall(expr):
        if name not in live:
            found.append(f"{name} is not in /metrics")
            continue
        names.append(name)
        for label, op, value in MATCHER.findall(selector or ""):
            if label in TARGET_LABELS:
                continue
            if label not in live[name]:
                found.append(f"{name} has no label {label}")
                continue
            if "$" in value or op in ("!=", "!~"):
                continue
            literals = [value] if op == "=" else value.split("|")
            if op == "=~" and any(re.search(r"[.*+?()\[\]\\^]", v) for v in literals):
                continue  # a real regex: not a list of values
            for v in literals:
                if v not in live[name][label]:
                    found.append(f'{name}{{{label}="{v}"}} is not a value /metrics has')
    for group in GROUPING.findall(expr):
        for label in (x.strip() for x in group.split(",") if x.strip()):
            if label not in TARGET_LABELS and not any(label in live[n] for n in names):
                found.append(f"grouping label {label} is on none of {', '.join(names) or 'no metric'}")
    if not names:
        found.append("names no vpcguard metric")
    return found


def expressions(kind, path):
    if kind == "alerts":
        doc = yaml.safe_load(open(path))
        for g in doc["groups"]:
            for r in g["rules"]:
                yield r.get("alert") or r.get("record"), r["expr"]
    else:
        dash = json.load(open(path))

        def panels(ps):
            for p in ps:
                yield p
                yield from panels(p.get("panels", []))

        for p in panels(dash["panels"]):
            for t in p.get("targets", []):
                yield f"panel {p['id']} {p.get('title', '')!r} {t['refId']}", t["expr"]
        for v in dash.get("templating", {}).get("list", []):
            if v.get("type") == "query":
                q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
                yield f"variable {v['name']}", q


def main():
    kind, path, sources = sys.argv[1], sys.argv[2], sys.argv[3:]
    if kind not in ("alerts", "grafana") or not sources:
        sys.exit(__doc__)
    live = {}
    for s in sources:
        exposition(s, live)
    names = {s: series_names(s) for s in sources}
    short = {s: os.path.basename(s) for s in sources}
    bad = 0
    n = 0
    for where, expr in expressions(kind, path):
        n += 1
        p = problems(expr, live)
        if p:
            bad += 1
            print(f"FAIL {where}: " + "; ".join(p))
            continue
        partial = sorted({m for m, _ in NAME.findall(expr) if not all(m in names[s] for s in sources)})
        where_from = "; ".join(f"{m} only from {', '.join(short[s] for s in sources if m in names[s])}" for m in partial)
        print(f"ok   {where}" + (f" ({where_from})" if where_from else ""))
    print(f"{n} expressions, {n - bad} name only what the live /metrics of {' + '.join(short.values())} expose, {bad} do not")
    sys.exit(1 if bad or not n else 0)


if __name__ == "__main__":
    main()
