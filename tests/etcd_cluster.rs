//! The etcd store on a 3-member etcd cluster on loopback (docs/contract.md §11 "Faults": a member
//! or leader loss is invisible to requests): the leader is killed while admin writes go through
//! two vpcguard instances; no acknowledged write is lost and no data-plane request fails.
//!
//! Needs `etcd` and `etcdctl` (Debian `etcd-server`, `etcd-client`); run with
//! `cargo test --features etcd --test etcd_cluster`.
#![cfg(feature = "etcd")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use reqwest::Method;
use serde_json::json;

use common::etcd::{Etcd, etcd_policy_block, eventually, seed};
use common::upstream::Upstream;
use common::{TestProxy, WRITE_TOKEN, config_plain, within};

const A: &str = "389efb76b1354e4482eabeed00000000";
const PREFIX: &str = "/fleet/";
const POLICY: &str = "tenants:\n  - enterprise_id: 389efb76b1354e4482eabeed00000000\n";
const EXTRA: &str =
    "client_ip:\n  trusted_proxies: [\"127.0.0.1/32\"]\ntenant:\n  - { header: \"x-domain-id\" }\n";

async fn instance(up: &Upstream, endpoints: &[String]) -> TestProxy {
    let cfg = config_plain(
        up.addr,
        &format!("{EXTRA}{}", etcd_policy_block(endpoints, PREFIX)),
    );
    let p = TestProxy::start(&cfg, "tenants: []\n", false).await;
    p.wait_generation(2).await;
    p
}

/// Add trusted IP `id` (10.0.x.y) for tenant A: the status and body.
async fn add_ip(p: &TestProxy, n: usize) -> (u16, String) {
    let ip = std::net::Ipv4Addr::from(0x0a00_0000u32 + n as u32 + 1);
    p.admin(
        Method::POST,
        &format!("/v4/tenant/trusted-ip-addresses?enterprise_id={A}"),
        Some(WRITE_TOKEN),
        Some(json!({"id": format!("w{n:04}"), "ip_range": ip.to_string(), "view_flag": 1})),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leader_killed_during_writes_loses_no_acknowledged_write_and_fails_no_request() {
    let mut etcd = Etcd::cluster(3).await;
    // 127.0.0.1 may do everything: the data plane must answer 200 throughout.
    let policy = format!(
        "{POLICY}    trusted_ips:\n      - {{ id: base, ip_range: \"127.0.0.1\", view_flag: 1, download_flag: 1, upload_flag: 1 }}\n"
    );
    seed(&etcd.endpoints(), PREFIX, &policy).await;
    let up = Upstream::start().await;
    let a = Arc::new(instance(&up, &etcd.endpoints()).await);
    let b = Arc::new(instance(&up, &etcd.endpoints()).await);

    // Data-plane load on both instances for the whole test.
    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicUsize::new(0));
    let mut load = Vec::new();
    for p in [a.clone(), b.clone()] {
        let (stop, served) = (stop.clone(), served.clone());
        load.push(tokio::spawn(async move {
            let client = p.client(false);
            let mut failures = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let r = client
                    .get(format!("{}/repo/x", p.base()))
                    .header("x-domain-id", A)
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status() == 200 => {
                        served.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(r) => failures.push(r.status().as_u16().to_string()),
                    Err(e) => failures.push(e.to_string()),
                }
            }
            failures
        }));
    }

    // Writes through A and B, alternating; the leader is killed a third of the way in.
    let mut acked = BTreeSet::new();
    let mut refused = 0;
    let total = 150;
    let mut killed = None;
    for n in 0..total {
        if n == total / 3 {
            let leader = etcd.leader();
            etcd.kill(leader);
            killed = Some(leader);
        }
        let p = if n % 2 == 0 { &a } else { &b };
        let (status, body) = within(30, add_ip(p, n)).await;
        match status {
            200 => {
                acked.insert(format!("w{n:04}"));
            }
            // The store was unavailable for this one (during the election): not acknowledged.
            503 | 409 => {
                eprintln!("write {n}: {status} {body}");
                refused += 1;
            }
            other => panic!("write {n}: {other}"),
        }
    }
    stop.store(true, Ordering::Relaxed);
    for t in load {
        let failures = t.await.unwrap();
        assert!(failures.is_empty(), "data-plane failures: {failures:?}");
    }
    assert!(served.load(Ordering::Relaxed) > 100);
    assert!(killed.is_some());
    assert!(
        acked.len() >= total - 20,
        "{} acknowledged, {refused} refused",
        acked.len()
    );

    // Every acknowledged write is in etcd (read from the surviving members) ...
    let keys: BTreeSet<String> = etcd
        .keys(&format!("{PREFIX}tenants/{A}/trusted_ips/"))
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    for id in &acked {
        assert!(keys.contains(id), "acknowledged {id} lost");
    }
    // ... and enforced by both instances (the entry 10.0.x.y for each write).
    for p in [&a, &b] {
        eventually(
            20,
            "both instances hold every acknowledged write",
            || async {
                let cur = p.app.shared.current();
                let t = cur
                    .policy
                    .file()
                    .tenants
                    .iter()
                    .find(|t| *t.enterprise_id.get() == A)
                    .cloned();
                t.is_some_and(|t| {
                    let ids: BTreeSet<String> =
                        t.trusted_ips.iter().map(|e| e.id.get().clone()).collect();
                    acked.iter().all(|id| ids.contains(id))
                })
            },
        )
        .await;
    }
    eprintln!(
        "{} acknowledged, {refused} refused during the election",
        acked.len()
    );
}
