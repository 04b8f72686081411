#!/usr/bin/env python3
"""Equivalent allowlists for the load scripts, one format per proxy.

usage: gen_rules.py FORMAT N
  FORMAT: vpcguard (policy.yaml) | nginx-allow (allow/deny lines) | nginx-geo (geo block body)
          | haproxy (one network per line, for `acl ... src -f FILE`)

N entries in total: N-1 deterministic pseudo-random networks that never contain 127.0.0.1
(90% IPv4 CIDRs /16-/32, 10% IPv6 /48-/128), then 127.0.0.0/8 LAST, so that a linear
scan (nginx `allow`) walks the whole list before the load generator's address matches.
"""
import ipaddress
import random
import sys


def networks(n):
    rng = random.Random(0x5EED)
    seen = set()
    out = []
    while len(out) < n - 1:
        if rng.random() < 0.9:
            first = rng.choice([o for o in range(1, 224) if o != 127])
            addr = (first << 24) | rng.getrandbits(24)
            net = ipaddress.ip_network((addr, rng.randint(16, 32)), strict=False)
        else:
            addr = (0x20010DB8 << 96) | (rng.getrandbits(64) << 32)
            net = ipaddress.ip_network((addr, rng.randint(48, 128)), strict=False)
        s = str(net)
        if s not in seen:
            seen.add(s)
            out.append(s)
    out.append("127.0.0.0/8")
    return out


def main():
    fmt, n = sys.argv[1], int(sys.argv[2])
    nets = networks(n)
    w = sys.stdout.write
    if fmt == "vpcguard":
        w("tenants:\n  - enterprise_id: bench\n    trusted_ips:\n")
        for i, net in enumerate(nets):
            w(f'      - {{ id: "{i}", ip_range: "{net}", view_flag: 1, download_flag: 1, upload_flag: 1 }}\n')
    elif fmt == "nginx-allow":
        for net in nets:
            w(f"allow {net};\n")
        w("deny all;\n")
    elif fmt == "nginx-geo":
        w("default 0;\n")
        for net in nets:
            w(f"{net} 1;\n")
    elif fmt == "haproxy":
        for net in nets:
            w(f"{net}\n")
    else:
        sys.exit(f"unknown format {fmt}")


if __name__ == "__main__":
    main()
