//! Crash safety of admin writes (docs/contract.md §7: "a 200 means it is on disk"): 200 concurrent mutations
//! against the real binary, SIGKILL part-way, restart, and every mutation that was answered 200 is
//! in a policy file that still validates (never torn).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::upstream::Upstream;
use common::{TENANT, WRITE_TOKEN, within};
use tokio::sync::Notify;

const BIN: &str = env!("CARGO_BIN_EXE_vpcguard");

/// Start the binary on `config`; returns it and its admin address (read from the startup log).
async fn start(config: &std::path::Path) -> (Child, std::net::SocketAddr) {
    let mut child = Command::new(BIN)
        .args(["run", "-c", config.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let admin = within(
        30,
        tokio::task::spawn_blocking(move || {
            let mut lines = BufReader::new(stdout).lines();
            let admin = loop {
                let line = lines.next().expect("binary exited").unwrap();
                let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
                if v["message"] == "vpcguard listening" {
                    break v["admin"].as_str().unwrap().parse().unwrap();
                }
            };
            // Keep draining the log so the child never blocks on a full pipe.
            std::thread::spawn(move || for _ in lines {});
            admin
        }),
    )
    .await
    .unwrap();
    (child, admin)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_concurrent_mutations_loses_no_acknowledged_write() {
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("vpcguard.yaml");
    let base = common::config_plain(
        up.addr,
        "listen:\n  address: \"127.0.0.1:0\"\nlimits:\n  max_vpceps_per_tenant: 1000\n",
    );
    // The harness's admin block carries the tokens; bind the admin listener to a free port too.
    let base = base.replace("admin:\n", "admin:\n  address: \"127.0.0.1:0\"\n");
    std::fs::write(&config, &base).unwrap();
    std::fs::write(
        dir.path().join("policy.yaml"),
        format!("tenants:\n  - enterprise_id: {TENANT}\n"),
    )
    .unwrap();
    let (mut child, admin) = start(&config).await;

    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let acked = Arc::new(std::sync::Mutex::new(Vec::new()));
    let done = Arc::new(AtomicUsize::new(0));
    let enough = Arc::new(Notify::new());
    let mut tasks = Vec::new();
    for i in 0..200 {
        let (http, acked, done, enough) =
            (http.clone(), acked.clone(), done.clone(), enough.clone());
        tasks.push(tokio::spawn(async move {
            let id = format!("vpce-crash-{i}");
            let body = serde_json::json!({
                "enterprise_id": TENANT,
                "vpceps": [{"vpcep_id": id, "region": "r1", "description": "crash test"}],
            });
            let r = http
                .post(format!("http://{admin}/v2/vpceps"))
                .header("X-Auth-Token", WRITE_TOKEN)
                .json(&body)
                .send()
                .await;
            if let Ok(r) = r
                && r.status() == 200
            {
                acked.lock().unwrap().push(id);
                if done.fetch_add(1, Ordering::SeqCst) + 1 == 50 {
                    enough.notify_one();
                }
            }
        }));
    }
    // Kill -9 once 50 writes have been acknowledged, with the rest still in flight.
    within(120, enough.notified()).await;
    child.kill().unwrap();
    child.wait().unwrap();
    for t in tasks {
        within(60, t).await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= 50 && acked.len() < 200,
        "{} acked",
        acked.len()
    );

    // The file validates exactly as a reload would, and holds every acknowledged write.
    let out = Command::new(BIN)
        .args(["check", "-c", config.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(dir.path().join("policy.yaml")).unwrap();
    let file = vpcguard::policy::parse_policy(&text).unwrap();
    let on_disk: std::collections::BTreeSet<String> = file.tenants[0]
        .vpcep
        .endpoints
        .iter()
        .map(|e| e.vpcep_id.get().clone())
        .collect();
    for id in &acked {
        assert!(
            on_disk.contains(id),
            "{id} was acknowledged but is not on disk"
        );
    }
    eprintln!(
        "{} of 200 acknowledged before SIGKILL; {} on disk",
        acked.len(),
        on_disk.len()
    );

    // And the restarted proxy serves it, having removed any temporary file the kill left.
    let (mut child, admin) = start(&config).await;
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let r = http
        .get(format!(
            "http://{admin}/v2/vpceps?enterprise_id={TENANT}&limit=100"
        ))
        .header("X-Auth-Token", WRITE_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["total"].as_u64().unwrap() as usize, on_disk.len(), "{v}");
    child.kill().unwrap();
    child.wait().unwrap();
}
