//! The etcd store against a real etcd (docs/contract.md §11): several vpcguard instances on one
//! prefix, guarded concurrent writes, pending markers across instances, hand edits with
//! `etcdctl`, etcd outages and compaction, the cache file, `policy push` / `policy pull`.
//!
//! Needs `etcd` and `etcdctl` (Debian `etcd-server`, `etcd-client`); run with
//! `cargo test --features etcd --test etcd_store`.
#![cfg(feature = "etcd")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use common::etcd::{Etcd, Relay, etcd_policy_block, eventually, seed};
use common::upstream::Upstream;
use common::{READ_TOKEN, TestProxy, WRITE_TOKEN, config_plain, within};

const A: &str = "389efb76b1354e4482eabeed00000000";
const SVC: &str = "/v1/p1/vpc-endpoint-services/svc-1";
const PREFIX: &str = "/vpcguard/";

/// Tenant A: only through its listed endpoints. svc-1 requires approval.
const POLICY: &str = r#"tenants:
  - enterprise_id: 389efb76b1354e4482eabeed00000000
    vpcep:
      enabled: true
      endpoints:
        - { vpcep_id: vpce-1 }
endpoint_services:
  - id: svc-1
    approval_required: true
"#;

const EXTRA: &str = "client_ip:\n  trusted_proxies: [\"127.0.0.1/32\"]\ntenant:\n  - { header: \"x-domain-id\" }\nlimits:\n  max_vpceps_per_tenant: 10\n";

/// An instance on `endpoints` (upstream `up`), ready: its first read of etcd is published.
async fn instance(up: &Upstream, endpoints: &[String]) -> TestProxy {
    let p = start(up, endpoints, |_| {}).await;
    p.wait_generation(2).await;
    p
}

async fn start(
    up: &Upstream,
    endpoints: &[String],
    prepare: impl FnOnce(&std::path::Path),
) -> TestProxy {
    let cfg = config_plain(
        up.addr,
        &format!("{EXTRA}{}", etcd_policy_block(endpoints, PREFIX)),
    );
    TestProxy::start_with(&cfg, "tenants: []\n", false, prepare).await
}

/// A data-plane GET for tenant A through endpoint `vpcep` (or marker): status.
async fn get(p: &TestProxy, vpcep: Option<&str>, marker: Option<u64>) -> u16 {
    let mut req = p
        .client(false)
        .get(format!("{}/repo/x", p.base()))
        .header("x-domain-id", A);
    if let Some(v) = vpcep {
        req = req.header("x-vpcep-id", v);
    }
    if let Some(m) = marker {
        req = req.header("x-vpcep-marker-id", m.to_string());
    }
    within(30, req.send()).await.unwrap().status().as_u16()
}

async fn write(p: &TestProxy, method: Method, path: &str, body: Value) -> (u16, Value) {
    let (status, text) = p.admin(method, path, Some(WRITE_TOKEN), Some(body)).await;
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn add_vpcep(p: &TestProxy, id: &str) -> (u16, Value) {
    write(
        p,
        Method::POST,
        "/v2/vpceps",
        json!({"enterprise_id": A, "vpceps": [{"vpcep_id": id}]}),
    )
    .await
}

async fn del_vpcep(p: &TestProxy, id: &str) -> (u16, Value) {
    write(
        p,
        Method::DELETE,
        "/v2/vpceps",
        json!({"enterprise_id": A, "vpceps": [{"vpcep_id": id}]}),
    )
    .await
}

async fn status_json(p: &TestProxy) -> Value {
    let (_, body) = p.admin_get("/status").await;
    serde_json::from_str(&body).unwrap()
}

async fn metrics(p: &TestProxy) -> String {
    p.admin(Method::GET, "/metrics", None, None).await.1
}

// === fleet ===

#[tokio::test]
async fn fleet_write_through_a_is_enforced_by_a_at_once_and_by_b_and_c() {
    let etcd = Etcd::start().await;
    seed(&etcd.endpoints(), PREFIX, POLICY).await;
    let up = Upstream::start().await;
    let a = instance(&up, &etcd.endpoints()).await;
    let b = instance(&up, &etcd.endpoints()).await;
    let c = instance(&up, &etcd.endpoints()).await;
    for p in [&a, &b, &c] {
        assert_eq!(get(p, Some("vpce-1"), None).await, 200);
        assert_eq!(get(p, Some("vpce-new"), None).await, 403);
    }
    let (status, body) = add_vpcep(&a, "vpce-new").await;
    assert_eq!(status, 200, "{body}");
    // Read-your-writes: the instance that answered 200 enforces it already.
    assert_eq!(get(&a, Some("vpce-new"), None).await, 200);
    for p in [&b, &c] {
        eventually(10, "B and C enforce A's write", || async {
            get(p, Some("vpce-new"), None).await == 200
        })
        .await;
    }
    // One key per record, readable by etcdctl.
    let keys = etcd.keys(PREFIX);
    assert!(
        keys.iter()
            .any(|(k, _)| k == &format!("tenants/{A}/vpceps/vpce-new")),
        "{keys:?}"
    );
    let st = status_json(&b).await;
    assert_eq!(st["store"]["kind"], "etcd", "{st}");
    assert_eq!(st["store"]["up"], true, "{st}");
    assert!(metrics(&b).await.contains("vpcguard_policy_store_up 1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fleet_concurrent_creates_and_deletes_lose_nothing_and_never_exceed_the_quota() {
    const MAX: usize = 10;
    const WORKERS: usize = 4; // per instance
    const IDS: usize = 4; // per worker: 2 instances x 4 workers x 4 = 32 ids for a quota of 10
    const OPS: usize = 40; // per worker: 320 writes in all
    let etcd = Etcd::start().await;
    seed(&etcd.endpoints(), PREFIX, POLICY).await;
    let start_rev = etcd.revision();
    let up = Upstream::start().await;
    let a = Arc::new(instance(&up, &etcd.endpoints()).await);
    let b = Arc::new(instance(&up, &etcd.endpoints()).await);
    let mut tasks = Vec::new();
    for (n, p) in [a.clone(), b.clone()].into_iter().enumerate() {
        for w in 0..WORKERS {
            let p = p.clone();
            tasks.push(tokio::spawn(async move {
                // The acknowledged state of this worker's own ids: (id, present?).
                let mut present = BTreeSet::new();
                let mut statuses = Vec::new();
                for op in 0..OPS {
                    let id = format!("vpce-{n}-{w}-{}", (op * 7 + w) % IDS);
                    let create = (op / IDS) % 2 == 0;
                    let (status, body) = if create {
                        add_vpcep(&p, &id).await
                    } else {
                        del_vpcep(&p, &id).await
                    };
                    match (create, status) {
                        (true, 200) => {
                            present.insert(id);
                        }
                        (false, 200) => {
                            present.remove(&id);
                        }
                        // Quota full, already there, already gone: nothing changed.
                        (true, 400 | 409) | (false, 404) => {}
                        other => panic!("{other:?} {body}"),
                    }
                    statuses.push(status);
                }
                (present, statuses)
            }));
        }
    }
    let mut want: BTreeSet<String> = ["vpce-1".to_owned()].into();
    let mut counts = std::collections::BTreeMap::<u16, usize>::new();
    for t in tasks {
        let (present, statuses) = within(300, t).await.unwrap();
        want.extend(present);
        for s in statuses {
            *counts.entry(s).or_default() += 1;
        }
    }
    // Nothing lost: etcd holds exactly the acknowledged state.
    let got: BTreeSet<String> = etcd
        .keys(&format!("{PREFIX}tenants/{A}/vpceps/"))
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(got, want, "statuses {counts:?}");
    // Enough writes went through to contend (how many hit the quota instead depends on timing:
    // 94 of 320 on a loaded CI run, so the floor is a sanity check, not a rate).
    assert!(counts.get(&200).copied().unwrap_or(0) >= 50, "{counts:?}");
    assert!(
        counts.contains_key(&400),
        "the quota was reached: {counts:?}"
    );
    // Never over the quota, at any revision: replay the history.
    let max_seen = history_max(&etcd, start_rev).await;
    assert!(max_seen <= MAX, "{max_seen} endpoints at once");
    // Both instances enforce the final state.
    for p in [&a, &b] {
        for id in &want {
            let id = id.clone();
            eventually(10, "final state enforced", || {
                let id = id.clone();
                async move { get(p, Some(&id), None).await == 200 }
            })
            .await;
        }
    }
}

/// The most endpoints tenant A had at any revision after `start_rev`, from etcd's history.
async fn history_max(etcd: &Etcd, start_rev: i64) -> usize {
    let client = etcd_client::Client::connect(etcd.endpoints(), None)
        .await
        .unwrap();
    let prefix = format!("{PREFIX}tenants/{A}/vpceps/");
    let mut kv = client.kv_client();
    let mut count = kv
        .get(
            prefix.clone(),
            Some(
                etcd_client::GetOptions::new()
                    .with_prefix()
                    .with_count_only()
                    .with_revision(start_rev),
            ),
        )
        .await
        .unwrap()
        .count() as usize;
    let end = etcd.revision();
    let mut wc = client.watch_client();
    let mut stream = wc
        .watch(
            prefix,
            Some(
                etcd_client::WatchOptions::new()
                    .with_prefix()
                    .with_start_revision(start_rev + 1),
            ),
        )
        .await
        .unwrap();
    let mut max = count;
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(2), stream.message()).await;
        let Ok(Ok(Some(resp))) = msg else { break };
        let mut rev = 0;
        for ev in resp.events() {
            let kv = ev.kv().unwrap();
            rev = kv.mod_revision();
            match ev.event_type() {
                etcd_client::EventType::Put if kv.create_revision() == kv.mod_revision() => {
                    count += 1
                }
                etcd_client::EventType::Put => {}
                etcd_client::EventType::Delete => count -= 1,
            }
            max = max.max(count);
        }
        if rev >= end {
            break;
        }
    }
    max
}

#[tokio::test]
async fn fleet_pending_marker_seen_by_b_is_listed_by_a_and_accepting_it_through_a_admits_b() {
    let etcd = Etcd::start().await;
    seed(&etcd.endpoints(), PREFIX, POLICY).await;
    let up = Upstream::start().await;
    let a = instance(&up, &etcd.endpoints()).await;
    let b = instance(&up, &etcd.endpoints()).await;
    assert_eq!(get(&b, None, Some(999)).await, 403);
    let listed = || async {
        let (_, body) = a
            .admin(
                Method::GET,
                &format!("{SVC}/connections?status=pendingAcceptance&marker_id=999"),
                Some(READ_TOKEN),
                None,
            )
            .await;
        let v: Value = serde_json::from_str(&body).unwrap();
        v["connections"][0]["id"] == "marker-999"
    };
    eventually(10, "A lists B's pending marker", listed).await;
    // Created if absent, once: etcd holds one record for it.
    let key = format!("{PREFIX}services/svc-1/connections/marker-999");
    let rec: Value = serde_json::from_str(&etcd.ctl(&["get", "--print-value-only", &key])).unwrap();
    assert_eq!(rec["status"], "pendingAcceptance");
    assert_eq!(rec["domain_id"], A);
    let (status, body) = write(
        &a,
        Method::POST,
        &format!("{SVC}/connections/action"),
        json!({"action": "receive", "endpoints": ["marker-999"]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // The connection is accepted, but tenant A still needs the endpoint in its own list.
    let (status, body) = add_vpcep(&a, "marker-999").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(get(&a, None, Some(999)).await, 200);
    eventually(10, "B admits the accepted marker", || async {
        get(&b, None, Some(999)).await == 200
    })
    .await;
}

#[tokio::test]
async fn etcdctl_invalid_record_changes_nothing_is_reported_and_a_fix_recovers() {
    let etcd = Etcd::start().await;
    seed(&etcd.endpoints(), PREFIX, POLICY).await;
    let up = Upstream::start().await;
    let a = instance(&up, &etcd.endpoints()).await;
    let generation = a.app.shared.current().number;
    let key = format!("{PREFIX}tenants/{A}/trusted_ips/hand");
    let mut attempts = a.app.shared.subscribe_attempts();
    let before = *attempts.borrow_and_update();
    etcd.ctl(&[
        "put",
        &key,
        r#"{"id":"hand","ip_range":"10.0.0.0/40","view_flag":1}"#,
    ]);
    within(10, attempts.wait_for(|n| *n > before))
        .await
        .unwrap();
    assert_eq!(
        a.app.shared.current().number,
        generation,
        "nothing published"
    );
    let st = status_json(&a).await;
    assert_eq!(st["last_reload"]["result"], "failure", "{st}");
    assert_eq!(st["last_reload"]["trigger"], "store", "{st}");
    let err = st["store"]["error"].as_str().unwrap_or_default().to_owned();
    assert!(err.contains("10.0.0.0/40"), "{st}");
    assert!(
        metrics(&a)
            .await
            .contains("vpcguard_config_reloads_total{file=\"policy\",result=\"failure\"} 1")
    );
    // The last good rules keep serving (no whitelist yet: any address).
    assert_eq!(get(&a, Some("vpce-1"), None).await, 200);
    // A record outside the layout is refused the same way, naming its key.
    let before = *attempts.borrow_and_update();
    etcd.ctl(&["put", &format!("{PREFIX}nonsense/x"), "{}"]);
    within(10, attempts.wait_for(|n| *n > before))
        .await
        .unwrap();
    let st = status_json(&a).await;
    assert!(
        st["store"]["error"]
            .as_str()
            .unwrap_or_default()
            .contains("nonsense/x"),
        "{st}"
    );
    etcd.ctl(&["del", &format!("{PREFIX}nonsense/x")]);
    // Admin writes are refused while the store is invalid, and nothing is written.
    let (status, _) = add_vpcep(&a, "vpce-2").await;
    assert_eq!(status, 409);
    // The fix: a whitelist that does not hold 127.0.0.1 now applies.
    etcd.ctl(&[
        "put",
        &key,
        r#"{"id":"hand","ip_range":"10.0.0.0/8","view_flag":1}"#,
    ]);
    a.wait_generation(generation + 1).await;
    assert_eq!(get(&a, Some("vpce-1"), None).await, 403);
    let st = status_json(&a).await;
    assert!(st["store"]["error"].is_null(), "{st}");
}

// === faults ===

#[tokio::test]
async fn etcd_lost_serves_last_rules_refuses_writes_then_resumes_with_writes_made_meanwhile() {
    let etcd = Etcd::start().await;
    seed(&etcd.endpoints(), PREFIX, POLICY).await;
    let up = Upstream::start().await;
    let relay = Relay::start(etcd.addr(0)).await;
    let a = instance(&up, &[relay.endpoint()]).await;
    let b = instance(&up, &etcd.endpoints()).await;
    relay.cut();
    eventually(15, "A sees etcd down", || async {
        metrics(&a).await.contains("vpcguard_policy_store_up 0")
    })
    .await;
    assert_eq!(get(&a, Some("vpce-1"), None).await, 200, "last rules serve");
    let (status, body) = add_vpcep(&a, "vpce-a").await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (503, Some("UC.00010005"))
    );
    let (code, _) = a.admin(Method::GET, "/readyz", None, None).await;
    assert_eq!(code, 200, "still ready");
    assert!(
        metrics(&a)
            .await
            .contains("vpcguard_policy_store_errors_total{op=\"watch\"}")
    );
    // Meanwhile B writes.
    let (status, body) = add_vpcep(&b, "vpce-b").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(get(&a, Some("vpce-b"), None).await, 403);
    relay.restore();
    eventually(15, "A resumes and applies B's write", || async {
        get(&a, Some("vpce-b"), None).await == 200
    })
    .await;
    assert!(metrics(&a).await.contains("vpcguard_policy_store_up 1"));
    let (status, body) = add_vpcep(&a, "vpce-a").await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn etcd_stopped_and_restarted_the_fleet_serves_throughout_and_resumes() {
    let mut etcd = Etcd::start().await;
    seed(&etcd.endpoints(), PREFIX, POLICY).await;
    let up = Upstream::start().await;
    let a = instance(&up, &etcd.endpoints()).await;
    etcd.kill(0);
    eventually(15, "A sees etcd down", || async {
        metrics(&a).await.contains("vpcguard_policy_store_up 0")
    })
    .await;
    assert_eq!(get(&a, Some("vpce-1"), None).await, 200);
    let (status, body) = add_vpcep(&a, "vpce-x").await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (503, Some("UC.00010005"))
    );
    etcd.restart(0).await;
    etcd.ctl(&[
        "put",
        &format!("{PREFIX}tenants/{A}/vpceps/vpce-hand"),
        r#"{"vpcep_id":"vpce-hand"}"#,
    ]);
    eventually(20, "A resumes", || async {
        get(&a, Some("vpce-hand"), None).await == 200
    })
    .await;
    let (status, body) = add_vpcep(&a, "vpce-x").await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn watch_compacted_past_its_revision_rereads() {
    let etcd = Etcd::start().await;
    seed(&etcd.endpoints(), PREFIX, POLICY).await;
    let up = Upstream::start().await;
    let relay = Relay::start(etcd.addr(0)).await;
    let a = instance(&up, &[relay.endpoint()]).await;
    let b = instance(&up, &etcd.endpoints()).await;
    relay.cut();
    eventually(15, "A sees etcd down", || async {
        metrics(&a).await.contains("vpcguard_policy_store_up 0")
    })
    .await;
    for i in 0..5 {
        let (status, _) = add_vpcep(&b, &format!("vpce-c{i}")).await;
        assert_eq!(status, 200);
    }
    let (status, _) = del_vpcep(&b, "vpce-c0").await;
    assert_eq!(status, 200);
    etcd.ctl(&["compact", &etcd.revision().to_string()]);
    relay.restore();
    eventually(15, "A re-reads after compaction", || async {
        get(&a, Some("vpce-c4"), None).await == 200
    })
    .await;
    assert_eq!(
        get(&a, Some("vpce-c0"), None).await,
        403,
        "the delete is seen too"
    );
}

#[tokio::test]
async fn restart_with_etcd_down_serves_the_cache_and_without_cache_is_not_ready() {
    let mut etcd = Etcd::start().await;
    seed(&etcd.endpoints(), PREFIX, POLICY).await;
    let up = Upstream::start().await;
    let a = instance(&up, &etcd.endpoints()).await;
    let (status, _) = add_vpcep(&a, "vpce-cached").await;
    assert_eq!(status, 200);
    let cache = a.path("policy.cache.yaml");
    eventually(10, "cache written", || async {
        std::fs::read_to_string(&cache).is_ok_and(|t| t.contains("vpce-cached"))
    })
    .await;
    let cached = std::fs::read_to_string(&cache).unwrap();
    a.app.shutdown();
    etcd.kill(0);
    // A new instance with the cache beside its config, etcd down.
    let a2 = start(&up, &etcd.endpoints(), |dir| {
        std::fs::write(dir.join("policy.cache.yaml"), &cached).unwrap();
    })
    .await;
    a2.wait_generation(2).await;
    assert_eq!(get(&a2, Some("vpce-cached"), None).await, 200);
    assert_eq!(get(&a2, Some("vpce-other"), None).await, 403);
    let st = status_json(&a2).await;
    assert_eq!(
        (st["store"]["serving"].as_str(), st["store"]["up"].as_bool()),
        (Some("cache"), Some(false)),
        "{st}"
    );
    // And one with no cache: not ready, 503 on the data plane.
    let a3 = start(&up, &etcd.endpoints(), |_| {}).await;
    let t0 = Instant::now();
    let r = a3
        .client(false)
        .get(format!("{}/repo/x", a3.base()))
        .header("x-domain-id", A)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 503);
    assert_eq!(common::error_code(&r.text().await.unwrap()), "VG.00050301");
    assert_eq!(a3.admin(Method::GET, "/readyz", None, None).await.0, 503);
    // etcd back: a3 becomes ready without a restart.
    etcd.restart(0).await;
    a3.wait_generation(2).await;
    assert_eq!(a3.admin(Method::GET, "/readyz", None, None).await.0, 200);
    assert_eq!(get(&a3, Some("vpce-cached"), None).await, 200);
    assert!(t0.elapsed() < Duration::from_secs(60));
}

// === policy push / pull ===

/// A policy with `n` trusted IP entries over a few tenants, ids in key order, so that a pull
/// (which lists records in key order) renders it identically.
fn big_policy(n: usize) -> String {
    let mut s = String::from("tenants:\n");
    let tenants = 10;
    for t in 0..tenants {
        s.push_str(&format!(
            "  - enterprise_id: tenant-{t:02}\n    trusted_ips:\n"
        ));
        for i in (t..n).step_by(tenants) {
            let ip = std::net::Ipv4Addr::from(0x0a00_0000u32 + i as u32);
            s.push_str(&format!(
                "      - {{ id: \"{i:06}\", ip_range: \"{ip}\", view_flag: 1, download_flag: 0, upload_flag: 1 }}\n"
            ));
        }
    }
    s
}

fn vpcguard(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_vpcguard"))
        .args(args)
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_push_of_100k_entries_and_pull_round_trip_to_the_same_policy() {
    let etcd = Etcd::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("vpcguard.yaml");
    std::fs::write(&cfg, etcd_policy_block(&etcd.endpoints(), PREFIX)).unwrap();
    let policy = dir.path().join("big.yaml");
    let text = big_policy(100_000);
    std::fs::write(&policy, &text).unwrap();
    let cfg_s = cfg.display().to_string();
    let pol_s = policy.display().to_string();
    let t0 = Instant::now();
    let out = tokio::task::spawn_blocking({
        let (c, p) = (cfg_s.clone(), pol_s.clone());
        move || vpcguard(&["policy", "push", "-c", &c, &p])
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let push_time = t0.elapsed();
    let t0 = Instant::now();
    let out = tokio::task::spawn_blocking({
        let c = cfg_s.clone();
        move || vpcguard(&["policy", "pull", "-c", &c])
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pull_time = t0.elapsed();
    let pulled = String::from_utf8(out.stdout).unwrap();
    let want = vpcguard::policy::parse_policy(&text).unwrap();
    let got = vpcguard::policy::parse_policy(&pulled).unwrap();
    assert!(got == want, "the pulled policy differs");
    assert_eq!(pulled, vpcguard::policy::render_policy(&want).unwrap());
    eprintln!("push 100k: {push_time:?}, pull: {pull_time:?}");
    // Pushing a smaller policy deletes what it lacks; pushing the same one changes nothing.
    std::fs::write(&policy, big_policy(10)).unwrap();
    let out = vpcguard(&["policy", "push", "-c", &cfg_s, &pol_s]);
    assert!(out.status.success());
    assert_eq!(etcd.keys(PREFIX).len(), 10 + 10);
    let out = vpcguard(&["policy", "push", "-c", &cfg_s, &pol_s]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("0 records changed"));
    // Invalid: 78; unreachable: 69.
    std::fs::write(&policy, "tenants:\n  - enterprise_id: \"bad id\"\n").unwrap();
    assert_eq!(
        vpcguard(&["policy", "push", "-c", &cfg_s, &pol_s])
            .status
            .code(),
        Some(78)
    );
    std::fs::write(
        &cfg,
        etcd_policy_block(&["http://127.0.0.1:1".to_owned()], PREFIX),
    )
    .unwrap();
    assert_eq!(
        vpcguard(&["policy", "pull", "-c", &cfg_s]).status.code(),
        Some(69)
    );
}
