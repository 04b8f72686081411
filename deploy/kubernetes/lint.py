#!/usr/bin/env python3
"""Validate deploy/kubernetes/*.yaml offline, then check that the manifests agree with each other
and with vpcguard (docs/contract.md §2, §7, §8, §10).

1. Schema. Every built-in kind against the pinned Kubernetes version's OpenAPI schema
   (kubernetes-validate, strict: unknown fields fail). kubernetes-validate has no schema for
   CRDs; PodMonitor is validated against the Prometheus Operator's generated models
   (cloudcoil-models-prometheus-operator), strict by round trip: a field the model does not
   know is an error. Any other kind without a schema is a failure, never a warning.
2. Agreement. Selectors select the pod; named ports exist; the Service exposes only the data
   port; the NetworkPolicy's CIDR is the config's proxy_protocol_from; probes hit routes that
   need no token; no subPath on the watched volumes; the policy path lands on a writable volume
   and the TLS paths on the Secret; the grace period covers preStop plus shutdown_grace.

Usage: lint.py K8S_VERSION [DIR]. Prints one line per check; exits 1 on the first failed group.
No network.
"""

import glob
import os
import re
import sys

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
failures = []


def fail(msg):
    failures.append(msg)
    print(f"FAIL {msg}")


def ok(msg):
    print(f"ok   {msg}")


def check(cond, msg):
    (ok if cond else fail)(msg)
    return cond


# === schema ===


def unknown_fields(given, dumped, path=""):
    """Keys of `given` that the model dropped (pydantic ignores extras; we refuse them)."""
    out = []
    if isinstance(given, dict) and isinstance(dumped, dict):
        for k, v in given.items():
            if k not in dumped:
                out.append(f"{path}.{k}")
            else:
                out += unknown_fields(v, dumped[k], f"{path}.{k}")
    elif isinstance(given, list) and isinstance(dumped, list):
        for i, (g, d) in enumerate(zip(given, dumped)):
            out += unknown_fields(g, d, f"{path}[{i}]")
    return out


def validate_podmonitor(doc):
    from cloudcoil.models.prometheus_operator.v1 import PodMonitor

    model = PodMonitor.model_validate(doc)
    extra = unknown_fields(doc, model.model_dump(by_alias=True, exclude_none=True, mode="json"))
    if extra:
        raise ValueError(f"fields the PodMonitor CRD does not have: {', '.join(extra)}")


def validate_schema(docs, version):
    import kubernetes_validate.utils as kv

    for name, doc in docs:
        what = f"{name}: {doc['kind']}/{doc['metadata']['name']}"
        try:
            if doc["apiVersion"] == "monitoring.coreos.com/v1" and doc["kind"] == "PodMonitor":
                validate_podmonitor(doc)
                ok(f"{what} valid (Prometheus Operator CRD model, strict)")
            else:
                got = kv.validate(doc, version, strict=True)
                ok(f"{what} valid (Kubernetes {got} schema, strict)")
        except kv.SchemaNotFoundError as e:
            fail(f"{what}: {e.message}")
        except Exception as e:  # a validation error of either validator
            fail(f"{what}: {getattr(e, 'message', e)}")


# === agreement ===


def duration_seconds(text):
    """A docs/contract.md §2 duration (`250ms`, `10s`, `2m`, `1h`, `0`) in seconds."""
    m = re.fullmatch(r"(\d+)(ms|s|m|h)?", str(text))
    if not m or (m.group(2) is None and m.group(1) != "0"):
        raise ValueError(f"not a duration: {text!r}")
    n, unit = int(m.group(1)), m.group(2) or "s"
    return n * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]


def selects(selector, labels):
    return all(labels.get(k) == v for k, v in (selector or {}).items())


def port_of(addr):
    return int(addr.rsplit(":", 1)[1])


def mount_for(container, path):
    """The volumeMount of `container` holding `path`, the longest mountPath first."""
    best = None
    for m in container.get("volumeMounts", []):
        mp = m["mountPath"].rstrip("/")
        if (path == mp or path.startswith(mp + "/")) and (best is None or len(mp) > len(best["mountPath"])):
            best = m
    return best


def open_paths():
    """The routes that need no token, from src/admin/auth.rs."""
    src = open(os.path.join(REPO, "src/admin/auth.rs")).read()
    m = re.search(r"OPEN_PATHS: \[&str; \d+\] = \[([^\]]*)\]", src)
    return re.findall(r'"([^"]+)"', m.group(1)) if m else []


def admin_routes():
    src = open(os.path.join(REPO, "src/admin/mod.rs")).read()
    return re.findall(r'\.route\("([^"]+)"', src)


def check_agreement(by_kind):
    dep = by_kind["Deployment"][0]
    cm = by_kind["ConfigMap"][0]
    secret = by_kind["Secret"][0]
    svc = by_kind["Service"][0]
    netpol = by_kind["NetworkPolicy"][0]
    pm = by_kind["PodMonitor"][0]
    pod = dep["spec"]["template"]
    spec = pod["spec"]
    labels = pod["metadata"]["labels"]
    containers = {c["name"]: c for c in spec["containers"]}
    vg = containers.get("vpcguard")
    if not check(vg is not None, "deployment has a container named vpcguard"):
        return
    app = [c for n, c in containers.items() if n != "vpcguard"]
    config = yaml.safe_load(cm["data"]["vpcguard.yaml"])
    yaml.safe_load(cm["data"]["policy.yaml"])
    ports = {p["name"]: p["containerPort"] for p in vg.get("ports", [])}

    # Selection.
    check(selects(dep["spec"]["selector"]["matchLabels"], labels), "deployment selector selects its pod template")
    check(selects(svc["spec"]["selector"], labels), "service selects the pod")
    check(selects(netpol["spec"]["podSelector"]["matchLabels"], labels), "networkpolicy selects the pod")
    check(selects(pm["spec"]["selector"]["matchLabels"], labels), "podmonitor selects the pod")

    # Ports.
    data_port, admin_port = port_of(config["listen"]["address"]), port_of(config["admin"]["address"])
    check(ports.get("https") == data_port, f"container port https = listen.address port ({data_port})")
    check(ports.get("admin") == admin_port, f"container port admin = admin.address port ({admin_port})")
    check(config["admin"]["address"].startswith(("0.0.0.0:", "[::]:")),
          "admin.address listens on the pod IP (probes and Prometheus reach it)")
    svc_targets = [p.get("targetPort") for p in svc["spec"]["ports"]]
    check(svc_targets in (["https"], [data_port]), f"service exposes only the data port (targets {svc_targets})")
    ann = pod["metadata"].get("annotations", {})
    check(ann.get("prometheus.io/port") == str(admin_port) and ann.get("prometheus.io/path") == "/metrics",
          "prometheus.io annotations point at the admin port's /metrics")
    pm_ports = [e.get("port") for e in pm["spec"]["podMetricsEndpoints"]]
    check(pm_ports == ["admin"] and pm["spec"]["podMetricsEndpoints"][0].get("path") == "/metrics",
          "podmonitor scrapes the admin port's /metrics")

    # NetworkPolicy: data port from the LB CIDR only, admin port from Prometheus pods only.
    rules = netpol["spec"]["ingress"]
    check(netpol["spec"]["policyTypes"] == ["Ingress"], "networkpolicy restricts ingress")
    by_port = {}
    for r in rules:
        for p in r.get("ports", []):
            by_port.setdefault(p["port"], []).append(r.get("from", []))
    check(set(by_port) == {"https", "admin"}, f"networkpolicy opens exactly the https and admin ports ({sorted(by_port)})")
    data_from = [f for froms in by_port.get("https", []) for f in froms]
    admin_from = [f for froms in by_port.get("admin", []) for f in froms]
    cidrs = [f["ipBlock"]["cidr"] for f in data_from if "ipBlock" in f]
    check(len(cidrs) == len(data_from) == 1 and not data_from[0]["ipBlock"].get("except"),
          "data port: one ipBlock, nothing else")
    check(cidrs == config["listen"].get("proxy_protocol_from"),
          f"data port CIDR {cidrs} = listen.proxy_protocol_from {config['listen'].get('proxy_protocol_from')}")
    check(config["listen"].get("proxy_protocol") == "required",
          "listen.proxy_protocol is required (the load balancer sends the client and endpoint)")
    check(admin_from and all("podSelector" in f and "ipBlock" not in f for f in admin_from),
          "admin port: pod selectors only (Prometheus), no ipBlock")

    # Probes on routes that exist and need no token.
    routes, opened = admin_routes(), open_paths()
    for kind, want in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz"), ("startupProbe", "/healthz")):
        probe = vg.get(kind, {}).get("httpGet", {})
        check(probe.get("path") == want and probe.get("port") == "admin" and want in routes and want in opened,
              f"{kind} GET {want} on the admin port (a route in src/admin/mod.rs, open in src/admin/auth.rs)")

    # Security and resources on every container, init containers included.
    pod_sc = spec.get("securityContext", {})
    check(pod_sc.get("runAsNonRoot") is True, "pod runs as non-root")
    for c in spec.get("initContainers", []) + spec["containers"]:
        sc = c.get("securityContext", {})
        check(sc.get("readOnlyRootFilesystem") is True and sc.get("allowPrivilegeEscalation") is False
              and sc.get("capabilities", {}).get("drop") == ["ALL"],
              f"{c['name']}: read-only root filesystem, no privilege escalation, no capabilities")
        res = c.get("resources", {})
        check(res.get("requests", {}).get("cpu") and res.get("requests", {}).get("memory")
              and res.get("limits", {}).get("memory"), f"{c['name']}: cpu/memory requests and a memory limit")

    # Volumes: the watched directories are whole-directory mounts; paths land where they must.
    volumes = {v["name"]: v for v in spec["volumes"]}
    for c in spec.get("initContainers", []) + spec["containers"]:
        subs = [m["mountPath"] for m in c.get("volumeMounts", []) if m.get("subPath") or m.get("subPathExpr")]
        check(not subs, f"{c['name']}: no subPath mounts (the kubelet never updates them)")
    args = vg.get("args", [])
    cfg_path = args[args.index("-c") + 1] if "-c" in args else ""
    cfg_dir = os.path.dirname(cfg_path)
    m = mount_for(vg, cfg_path)
    check(m is not None and m["mountPath"] == cfg_dir and volumes[m["name"]].get("configMap", {}).get("name")
          == cm["metadata"]["name"], f"-c {cfg_path}: the ConfigMap {cm['metadata']['name']} mounted at {cfg_dir}")

    def resolve(p):
        return os.path.normpath(os.path.join(cfg_dir, p))

    policy_path = resolve(config["policy"]["path"])
    m = mount_for(vg, policy_path)
    check(m is not None and not m.get("readOnly") and "emptyDir" in volumes[m["name"]],
          f"policy.path {policy_path} is on a writable emptyDir (the admin writer renames beside it)")
    init = {c["name"]: c for c in spec.get("initContainers", [])}.get("seed-policy")
    check(init is not None and policy_path in " ".join(init.get("command", [])),
          f"init container seed-policy writes {policy_path}")
    tls = config["listen"]["tls"]
    for key in ("cert", "key"):
        p = resolve(tls[key])
        m = mount_for(vg, p)
        vol = volumes.get(m["name"], {}) if m else {}
        check(vol.get("secret", {}).get("secretName") == secret["metadata"]["name"]
              and os.path.basename(p) in secret.get("stringData", secret.get("data", {})),
              f"listen.tls.{key} {p} is a key of the Secret {secret['metadata']['name']}")

    # Shutdown: preStop pause + shutdown_grace fit in the grace period; the app outlives the drain.
    grace = duration_seconds(config.get("limits", {}).get("shutdown_grace", "25s"))
    pause = vg.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
    tgps = spec.get("terminationGracePeriodSeconds", 30)
    check(tgps > pause + grace, f"terminationGracePeriodSeconds {tgps} > preStop {pause}s + shutdown_grace {grace:g}s")
    for c in app:
        s = c.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
        check(pause + grace <= s < tgps, f"{c['name']} keeps serving through the drain (preStop {s}s)")


def main():
    version = sys.argv[1]
    root = sys.argv[2] if len(sys.argv) > 2 else os.path.dirname(os.path.abspath(__file__))
    docs = []
    for path in sorted(glob.glob(os.path.join(root, "*.yaml"))):
        for doc in yaml.safe_load_all(open(path)):
            if doc:
                docs.append((os.path.basename(path), doc))
    print(f"== schema: {len(docs)} manifests, Kubernetes {version}")
    validate_schema(docs, version)
    if failures:
        sys.exit(1)
    by_kind = {}
    for _, doc in docs:
        by_kind.setdefault(doc["kind"], []).append(doc)
    print("== agreement between the manifests and vpcguard")
    check_agreement(by_kind)
    if failures:
        print(f"{len(failures)} failed")
        sys.exit(1)
    print(f"manifests: {len(docs)} validated, agreement checks passed")


if __name__ == "__main__":
    main()
