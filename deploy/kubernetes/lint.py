#!/usr/bin/env python3
"""Validate the manifests of one variant directory offline (deploy/kubernetes/*.yaml, the
single pod; deploy/kubernetes/fleet/*.yaml, the replicas on the etcd store), then check that they
agree with each other and with vpcguard (docs/contract.md §2, §7, §8, §10, §11).

1. Schema. Every built-in kind against the pinned Kubernetes version's OpenAPI schema
   (kubernetes-validate, strict: unknown fields fail). kubernetes-validate has no schema for
   CRDs; PodMonitor is validated against the Prometheus Operator's generated models
   (cloudcoil-models-prometheus-operator), strict by round trip: a field the model does not
   know is an error. Any other kind without a schema is a failure, never a warning.
2. Agreement, both variants. Selectors select the pod; named ports exist; the Service exposes
   only the data port; the NetworkPolicy's CIDR is the config's proxy_protocol_from; probes hit
   routes that need no token; every pod (Deployment and Job) is non-root, read-only, without
   capabilities, with requests and a memory limit, and mounts no subPath; the config is the
   ConfigMap's and the TLS paths land on the Secret; the grace period covers preStop plus
   shutdown_grace.
3. Agreement, by store. File store (policy.store absent or file): one replica, Recreate, the
   policy path on a writable emptyDir seeded by the init container. etcd store: several
   replicas, a rolling update that never goes below them, a PodDisruptionBudget that allows one
   disruption and keeps the rest, the cache on a writable emptyDir, the etcd TLS paths on a
   Secret, egress to the etcd port if the NetworkPolicy restricts egress, and the seed Job's
   `policy push` on the same config, image, etcd Secret and a ConfigMap key, selected by nothing
   that selects the replicas.

Usage: lint.py K8S_VERSION [DIR]. Prints one line per check; exits 1 on the first failed group.
No network.
"""

import glob
import os
import re
import sys
from urllib.parse import urlsplit

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


def by_name(by_kind, kind, name):
    return next((d for d in by_kind.get(kind, []) if d["metadata"]["name"] == name), None)


def pod_specs(by_kind):
    """(kind/name, pod template) of every workload of the directory."""
    for kind in ("Deployment", "Job"):
        for d in by_kind.get(kind, []):
            yield f"{kind}/{d['metadata']['name']}", d["spec"]["template"]


def arg_after(args, flag):
    return args[args.index(flag) + 1] if flag in args and args.index(flag) + 1 < len(args) else ""


def volume_source(spec, container, path):
    """(mount, volume) holding `path` in `container` of the pod `spec`, or (None, {})."""
    m = mount_for(container, path)
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    return m, (volumes.get(m["name"], {}) if m else {})


def config_of(by_kind, spec, container):
    """The -c path of `container`, its directory, and the ConfigMap mounted there (or None)."""
    cfg_path = arg_after(container.get("args", []), "-c")
    cfg_dir = os.path.dirname(cfg_path)
    m, vol = volume_source(spec, container, cfg_path)
    name = vol.get("configMap", {}).get("name")
    cm = by_name(by_kind, "ConfigMap", name) if m is not None and m["mountPath"] == cfg_dir else None
    return cfg_path, cfg_dir, cm


def check_on_secret(by_kind, spec, container, path, what):
    m, vol = volume_source(spec, container, path)
    name = vol.get("secret", {}).get("secretName")
    secret = by_name(by_kind, "Secret", name) if name else None
    check(secret is not None and os.path.basename(path) in secret.get("stringData", secret.get("data", {})),
          f"{what} {path} is a key of the Secret {name} (mounted at {m['mountPath'] if m else '-'})")


def check_writable_emptydir(spec, container, path, what):
    m, vol = volume_source(spec, container, path)
    check(m is not None and not m.get("readOnly") and "emptyDir" in vol,
          f"{what} {path} is on a writable emptyDir (vpcguard renames a temporary file beside it)")


def check_agreement(by_kind):
    deps = by_kind.get("Deployment", [])
    if not check(len(deps) == 1, f"one Deployment ({len(deps)})"):
        return
    dep = deps[0]
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
    cfg_path, cfg_dir, cm = config_of(by_kind, spec, vg)
    if not check(cm is not None and os.path.basename(cfg_path) in cm.get("data", {}),
                 f"-c {cfg_path}: a key of the ConfigMap {cm['metadata']['name'] if cm else '-'} mounted at {cfg_dir}"):
        return
    config = yaml.safe_load(cm["data"][os.path.basename(cfg_path)])
    ports = {p["name"]: p["containerPort"] for p in vg.get("ports", [])}
    store = config.get("policy", {}).get("store", "file")

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
    rules = netpol["spec"].get("ingress", [])
    check("Ingress" in netpol["spec"]["policyTypes"], "networkpolicy restricts ingress")
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

    # Security, resources and mounts on every container of every workload, init containers included.
    for what, template in pod_specs(by_kind):
        s = template["spec"]
        check(s.get("securityContext", {}).get("runAsNonRoot") is True, f"{what}: pod runs as non-root")
        for c in s.get("initContainers", []) + s["containers"]:
            sc = c.get("securityContext", {})
            check(sc.get("readOnlyRootFilesystem") is True and sc.get("allowPrivilegeEscalation") is False
                  and sc.get("capabilities", {}).get("drop") == ["ALL"],
                  f"{what} {c['name']}: read-only root filesystem, no privilege escalation, no capabilities")
            res = c.get("resources", {})
            check(res.get("requests", {}).get("cpu") and res.get("requests", {}).get("memory")
                  and res.get("limits", {}).get("memory"), f"{what} {c['name']}: cpu/memory requests and a memory limit")
            subs = [m["mountPath"] for m in c.get("volumeMounts", []) if m.get("subPath") or m.get("subPathExpr")]
            check(not subs, f"{what} {c['name']}: no subPath mounts (the kubelet never updates them)")

    def resolve(p):
        return os.path.normpath(os.path.join(cfg_dir, p))

    tls = config["listen"]["tls"]
    for key in ("cert", "key"):
        check_on_secret(by_kind, spec, vg, resolve(tls[key]), f"listen.tls.{key}")

    # Shutdown: preStop pause + shutdown_grace fit in the grace period; the app outlives the drain.
    grace = duration_seconds(config.get("limits", {}).get("shutdown_grace", "25s"))
    pause = vg.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
    tgps = spec.get("terminationGracePeriodSeconds", 30)
    check(tgps > pause + grace, f"terminationGracePeriodSeconds {tgps} > preStop {pause}s + shutdown_grace {grace:g}s")
    for c in app:
        s = c.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
        check(pause + grace <= s < tgps, f"{c['name']} keeps serving through the drain (preStop {s}s)")

    if store == "etcd":
        check_etcd_store(by_kind, dep, vg, cm, config, cfg_path, resolve)
    else:
        check_file_store(by_kind, dep, vg, config, resolve)


def check_file_store(by_kind, dep, vg, config, resolve):
    """One pod holds the policy file: one replica, its copy on a writable volume, seeded."""
    print("-- file store (the policy file in the pod)")
    spec = dep["spec"]["template"]["spec"]
    check(dep["spec"].get("replicas", 1) == 1 and dep["spec"].get("strategy", {}).get("type") == "Recreate",
          "replicas 1, strategy Recreate (each pod holds its own policy copy)")
    policy_path = resolve(config["policy"]["path"])
    check_writable_emptydir(spec, vg, policy_path, "policy.path")
    init = {c["name"]: c for c in spec.get("initContainers", [])}.get("seed-policy")
    check(init is not None and policy_path in " ".join(init.get("command", [])),
          f"init container seed-policy writes {policy_path}")


def check_etcd_store(by_kind, dep, vg, cm, config, cfg_path, resolve):
    """The replicas share etcd: scale, disruptions, cache, etcd TLS, egress, the seed Job."""
    print("-- etcd store (the policy in etcd, shared by the replicas)")
    spec = dep["spec"]["template"]["spec"]
    labels = dep["spec"]["template"]["metadata"]["labels"]
    etcd = config["policy"].get("etcd") or {}
    replicas = dep["spec"].get("replicas", 1)
    check(replicas >= 2, f"replicas {replicas} >= 2 (one policy for all of them)")
    strategy = dep["spec"].get("strategy", {})
    check(strategy.get("type", "RollingUpdate") == "RollingUpdate"
          and str(strategy.get("rollingUpdate", {}).get("maxUnavailable", "25%")) in ("0", "0%"),
          "rolling update with maxUnavailable 0 (a new pod that cannot read etcd stops the rollout)")

    pdbs = [p for p in by_kind.get("PodDisruptionBudget", []) if selects(p["spec"]["selector"]["matchLabels"], labels)]
    if check(len(pdbs) == 1, f"one PodDisruptionBudget selects the pod ({len(pdbs)})"):
        p = pdbs[0]["spec"]
        mu, ma = p.get("maxUnavailable"), p.get("minAvailable")
        allowed = (isinstance(mu, int) and 1 <= mu < replicas) or (isinstance(ma, int) and 1 <= ma < replicas)
        check(allowed, f"the budget (maxUnavailable {mu}, minAvailable {ma}) allows a disruption and keeps a replica of {replicas}")

    prefix = etcd.get("prefix", "/vpcguard/")
    check(isinstance(prefix, str) and prefix.endswith("/") and len(prefix) > 1,
          f"policy.etcd.prefix {prefix!r} ends with '/' (contract §11)")
    endpoints = etcd.get("endpoints") or []
    check(len(endpoints) >= 1, f"policy.etcd.endpoints names the members ({len(endpoints)})")
    cache = etcd.get("cache", "policy.cache.yaml")
    if check(cache is not None, "policy.etcd.cache is on (a restarted container serves it while etcd is down)"):
        check_writable_emptydir(spec, vg, resolve(cache), "policy.etcd.cache")
    tls = etcd.get("tls")
    schemes = {urlsplit(e).scheme for e in endpoints}
    check((tls is not None) == (schemes == {"https"}),
          f"policy.etcd.tls given exactly when the endpoints are https ({', '.join(sorted(schemes))})")
    tls_paths = {k: resolve(v) for k, v in (tls or {}).items() if v}
    for key, path in tls_paths.items():
        check_on_secret(by_kind, spec, vg, path, f"policy.etcd.tls.{key}")

    # Egress: none restricted, or the etcd port let out.
    netpol = by_kind["NetworkPolicy"][0]["spec"]
    etcd_ports = sorted({urlsplit(e).port or 2379 for e in endpoints})
    if "Egress" in netpol["policyTypes"]:
        open_ports = {p.get("port") for r in netpol.get("egress", []) for p in r.get("ports", [])}
        check(all(p in open_ports for p in etcd_ports), f"networkpolicy egress lets out the etcd port(s) {etcd_ports}")
    else:
        ok(f"networkpolicy does not restrict egress (etcd port(s) {etcd_ports} reachable)")

    # The seed: a Job running `policy push` with the replicas' config.
    jobs = by_kind.get("Job", [])
    if not check(len(jobs) == 1, f"one Job seeds etcd ({len(jobs)})"):
        return
    job = jobs[0]
    jspec = job["spec"]["template"]["spec"]
    jlabels = job["spec"]["template"]["metadata"].get("labels", {})
    c = jspec["containers"][0]
    args = c.get("args", [])
    check(args[:2] == ["policy", "push"], f"the Job runs `vpcguard policy push` ({' '.join(args[:2])})")
    check(c.get("image") == vg.get("image"), "the Job runs the replicas' image")
    jcfg, jdir, jcm = config_of(by_kind, jspec, c)
    check(jcm is not None and jcfg == cfg_path and jcm["metadata"]["name"] == cm["metadata"]["name"],
          f"the Job reads the replicas' config ({jcfg}, ConfigMap {cm['metadata']['name']})")
    seed = args[-1] if len(args) > 4 else ""
    m, vol = volume_source(jspec, c, seed)
    seed_cm = by_name(by_kind, "ConfigMap", vol.get("configMap", {}).get("name"))
    check(seed_cm is not None and os.path.basename(seed) in seed_cm.get("data", {}),
          f"the pushed file {seed} is a key of the ConfigMap {seed_cm['metadata']['name'] if seed_cm else '-'}")
    if seed_cm is not None:
        check(isinstance(yaml.safe_load(seed_cm["data"][os.path.basename(seed)]), dict), "the seed policy is a YAML mapping")
    for key, path in tls_paths.items():
        check_on_secret(by_kind, jspec, c, path, f"Job: policy.etcd.tls.{key}")
    check(jspec.get("restartPolicy") in ("Never", "OnFailure"), "the Job's pod does not restart forever")
    check("ttlSecondsAfterFinished" not in job["spec"],
          "the Job has no ttlSecondsAfterFinished (a finished Job stays: applying it again does not push again)")
    for what, sel in (("deployment", dep["spec"]["selector"]["matchLabels"]),
                      ("service", by_kind["Service"][0]["spec"]["selector"]),
                      ("networkpolicy", netpol["podSelector"]["matchLabels"]),
                      ("podmonitor", by_kind["PodMonitor"][0]["spec"]["selector"]["matchLabels"])):
        check(not selects(sel, jlabels), f"{what} does not select the Job's pod")
    for p in by_kind.get("PodDisruptionBudget", []):
        check(not selects(p["spec"]["selector"]["matchLabels"], jlabels), "the budget does not select the Job's pod")


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
