//! Live reload seen from outside (docs/contract.md §8): the file watcher on edits in place, rename-over and a
//! Kubernetes `..data` symlink swap; invalid versions that keep the old rules; certificate
//! rotation seen by new TLS clients; revocation on a kept-alive connection; `POST /-/reload`;
//! requests under concurrent reloads of a large policy. Every wait is on the generation (or the
//! reload-attempt counter) through a watch channel, bounded by a timeout — never a sleep.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::convert::Infallible;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use common::upstream::Upstream;
use common::{READ_TOKEN, TENANT, TestProxy, WRITE_TOKEN, error_code, read_response, within};
use reqwest::Method;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use vpcguard::admin::error::{ApiError, ErrorKind};
use vpcguard::reload::WriteError;

/// A policy for [`TENANT`] trusting `ranges` with every right.
fn policy(ranges: &[&str]) -> String {
    let mut s = format!("tenants:\n  - enterprise_id: {TENANT}\n    trusted_ips:\n");
    for (i, r) in ranges.iter().enumerate() {
        s.push_str(&format!(
            "      - {{ id: \"{i}\", ip_range: \"{r}\", view_flag: 1, download_flag: 1, upload_flag: 1 }}\n"
        ));
    }
    s
}

fn sha(text: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
}

/// Write `text` to a temporary name beside `path` and rename it over `path`, as editors do.
fn rename_over(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp~");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Wait until the policy in force hashes to `want`; returns its generation.
async fn wait_policy(proxy: &TestProxy, want: &str) -> u64 {
    let mut rx = proxy.app.shared.subscribe();
    within(30, async {
        loop {
            let cur = proxy.app.shared.current();
            if cur.policy_sha256 == want {
                return cur.number;
            }
            drop(cur);
            rx.changed().await.unwrap();
        }
    })
    .await
}

/// Run `change`, then wait until the writer has finished at least one more reload attempt.
async fn attempt(proxy: &TestProxy, change: impl FnOnce()) {
    let mut rx = proxy.app.shared.subscribe_attempts();
    rx.borrow_and_update();
    change();
    within(30, rx.changed()).await.unwrap();
}

async fn get_status(proxy: &TestProxy) -> (u16, String) {
    let r = proxy
        .client(false)
        .get(format!("{}/x", proxy.base()))
        .header("x-domain-id", TENANT)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn setup(first: &str) -> (Upstream, TestProxy) {
    let up = Upstream::start().await;
    let proxy = TestProxy::start(&common::config_plain(up.addr, ""), first, false).await;
    (up, proxy)
}

/// Each kind of write is one effective reload: after the first change the generation is g+1;
/// after a second change it is exactly g+2 (a duplicate reload of the first would make it g+3).
async fn assert_one_reload_per_change(proxy: &TestProxy, mut write: impl FnMut(&str)) {
    let g = proxy.app.shared.current().number;
    let v1 = policy(&["10.0.0.0/8"]);
    write(&v1);
    assert_eq!(wait_policy(proxy, &sha(&v1)).await, g + 1);
    assert_eq!(get_status(proxy).await.0, 403);
    let v2 = policy(&["127.0.0.0/8", "10.0.0.0/8"]);
    write(&v2);
    assert_eq!(wait_policy(proxy, &sha(&v2)).await, g + 2);
    assert_eq!(get_status(proxy).await.0, 200);
}

#[tokio::test]
async fn edit_in_place_is_one_reload() {
    let (_up, proxy) = setup(&policy(&["127.0.0.1"])).await;
    let path = proxy.path("policy.yaml");
    assert_one_reload_per_change(&proxy, |text| {
        // Truncate and write in two steps, as `>` in a shell or a naive editor does.
        use std::io::Write;
        let mut f = std::fs::File::create(&path).unwrap();
        let (a, b) = text.split_at(text.len() / 2);
        f.write_all(a.as_bytes()).unwrap();
        f.flush().unwrap();
        f.write_all(b.as_bytes()).unwrap();
    })
    .await;
}

#[tokio::test]
async fn rename_over_is_one_reload() {
    let (_up, proxy) = setup(&policy(&["127.0.0.1"])).await;
    let path = proxy.path("policy.yaml");
    assert_one_reload_per_change(&proxy, |text| rename_over(&path, text)).await;
}

#[tokio::test]
async fn kubernetes_data_symlink_swap_is_one_reload() {
    // A ConfigMap volume: cm/policy.yaml -> ..data/policy.yaml, ..data -> ..v1; an update writes
    // ..vN, points ..data_tmp at it and renames ..data_tmp over ..data.
    let up = Upstream::start().await;
    let config = common::config_plain(up.addr, "policy:\n  path: cm/policy.yaml\n");
    let first = policy(&["127.0.0.1"]);
    let first_for_prepare = first.clone();
    let proxy = TestProxy::start_with(&config, "unused: true\n", false, move |dir| {
        let cm = dir.join("cm");
        std::fs::create_dir_all(cm.join("..v0")).unwrap();
        std::fs::write(cm.join("..v0/policy.yaml"), &first_for_prepare).unwrap();
        std::os::unix::fs::symlink("..v0", cm.join("..data")).unwrap();
        std::os::unix::fs::symlink("..data/policy.yaml", cm.join("policy.yaml")).unwrap();
    })
    .await;
    assert_eq!(proxy.app.shared.current().policy_sha256, sha(&first));
    let cm = proxy.path("cm");
    let mut n = 0;
    assert_one_reload_per_change(&proxy, |text| {
        n += 1;
        let v = format!("..v{n}");
        std::fs::create_dir(cm.join(&v)).unwrap();
        std::fs::write(cm.join(&v).join("policy.yaml"), text).unwrap();
        std::os::unix::fs::symlink(&v, cm.join("..data_tmp")).unwrap();
        std::fs::rename(cm.join("..data_tmp"), cm.join("..data")).unwrap();
        std::fs::remove_dir_all(cm.join(format!("..v{}", n - 1))).unwrap();
    })
    .await;
}

#[tokio::test]
async fn polling_mode_sees_rename_over_too() {
    let up = Upstream::start().await;
    let proxy = TestProxy::start_watching(
        &common::config_plain(up.addr, ""),
        &policy(&["127.0.0.1"]),
        vpcguard::watch::WatchMode::Poll,
    )
    .await;
    let path = proxy.path("policy.yaml");
    assert_one_reload_per_change(&proxy, |text| rename_over(&path, text)).await;
}

#[tokio::test]
async fn with_watching_off_only_an_explicit_reload_applies_a_change() {
    let up = Upstream::start().await;
    let proxy = TestProxy::start_watching(
        &common::config_plain(up.addr, ""),
        &policy(&["127.0.0.1"]),
        vpcguard::watch::WatchMode::Off,
    )
    .await;
    let g = proxy.app.shared.current().number;
    let next = policy(&["10.0.0.0/8"]);
    rename_over(&proxy.path("policy.yaml"), &next);
    // Nothing watches: the old rules serve until the reload below.
    assert_eq!(get_status(&proxy).await.0, 200);
    assert_eq!(
        proxy
            .app
            .writer
            .reload(vpcguard::reload::Trigger::Signal)
            .await,
        vpcguard::reload::Outcome::Published { generation: g + 1 }
    );
    assert_eq!(get_status(&proxy).await.0, 403);
}

#[tokio::test]
async fn invalid_versions_keep_the_old_rules_and_are_reported() {
    let good = policy(&["127.0.0.1"]);
    let (_up, proxy) = setup(&good).await;
    let path = proxy.path("policy.yaml");
    let bad_cidr = policy(&["127.0.0.1"]).replace("127.0.0.1", "10.0.0.0/33");
    let reversed = policy(&["10.0.0.9-10.0.0.1"]);
    let duplicate = policy(&["127.0.0.1", "10.0.0.1"]).replace("id: \"1\"", "id: \"0\"");
    let truncated = good[..good.len() - 30].to_owned();
    let cases: [(&str, &str, &str); 6] = [
        (
            "broken yaml",
            "tenants: [\n  - {enterprise_id: x\n",
            "policy.yaml:",
        ),
        ("bad cidr", &bad_cidr, "policy.yaml:4:"),
        ("start > end", &reversed, "policy.yaml:4:"),
        ("duplicate id", &duplicate, "policy.yaml:5:"),
        ("truncated", &truncated, "policy.yaml:"),
        ("empty", "", "policy.yaml"),
    ];
    let generation = proxy.app.shared.current().number;
    for (i, (what, text, position)) in cases.iter().enumerate() {
        attempt(&proxy, || rename_over(&path, text)).await;
        let cur = proxy.app.shared.current();
        assert_eq!(cur.number, generation, "{what} was published");
        assert_eq!(cur.policy_sha256, sha(&good), "{what}");
        drop(cur);
        let last = proxy.app.shared.last_reload().unwrap();
        assert_eq!(last.result, "failure", "{what}");
        let error = last.error.unwrap();
        assert!(error.contains(position), "{what}: {error}");
        assert_eq!(
            get_status(&proxy).await.0,
            200,
            "{what}: old rules still serve"
        );
        let (_, metrics) = proxy.admin_get("/metrics").await;
        let want = format!(
            "vpcguard_config_reloads_total{{file=\"policy\",result=\"failure\"}} {}",
            i + 1
        );
        assert!(metrics.contains(&want), "{what}: {want}");
        assert!(metrics.contains("vpcguard_config_last_reload_successful 0"));
    }
    // A valid version after all that is taken.
    let fixed = policy(&["10.0.0.0/8"]);
    rename_over(&path, &fixed);
    assert_eq!(wait_policy(&proxy, &sha(&fixed)).await, generation + 1);
    assert_eq!(get_status(&proxy).await.0, 403);
}

#[tokio::test]
async fn config_file_changes_are_reloaded_too() {
    let (up, proxy) = setup(&policy(&["10.0.0.0/8"])).await;
    assert_eq!(get_status(&proxy).await.0, 403);
    let g = proxy.app.shared.current().number;
    let report = common::config_plain(up.addr, "policy:\n  mode: report\n");
    rename_over(&proxy.path("vpcguard.yaml"), &report);
    assert_eq!(proxy.wait_generation(g + 1).await, g + 1);
    assert_eq!(get_status(&proxy).await.0, 200, "report mode forwards");
    // An unknown key keeps the last good config and names its position.
    attempt(&proxy, || {
        rename_over(&proxy.path("vpcguard.yaml"), &format!("{report}bogus: 1\n"))
    })
    .await;
    let last = proxy.app.shared.last_reload().unwrap();
    assert!(last.error.unwrap().contains("vpcguard.yaml:"), "position");
    assert_eq!(proxy.app.shared.current().number, g + 1);
    let (_, metrics) = proxy.admin_get("/metrics").await;
    assert!(
        metrics.contains("vpcguard_config_reloads_total{file=\"config\",result=\"failure\"} 1")
    );
    assert!(
        metrics.contains("vpcguard_config_reloads_total{file=\"config\",result=\"success\"} 1")
    );
}

#[tokio::test]
async fn file_rewritten_twice_within_the_debounce_window_ends_on_the_last_version() {
    let (_up, proxy) = setup(&policy(&["127.0.0.1"])).await;
    let path = proxy.path("policy.yaml");
    let v1 = policy(&["10.0.0.0/8"]);
    let v2 = policy(&["10.0.0.0/8", "127.0.0.0/8"]);
    std::fs::write(&path, &v1).unwrap();
    std::fs::write(&path, &v2).unwrap();
    wait_policy(&proxy, &sha(&v2)).await;
    assert_eq!(get_status(&proxy).await.0, 200);
}

#[tokio::test]
async fn removed_range_denies_the_next_request_on_a_kept_alive_connection() {
    let (_up, proxy) = setup(&policy(&["127.0.0.0/8"])).await;
    let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
    let req = format!("GET /a HTTP/1.1\r\nHost: svc\r\nX-Domain-Id: {TENANT}\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    assert_eq!(within(10, read_response(&mut s)).await.0, 200);
    let g = proxy.app.shared.current().number;
    rename_over(&proxy.path("policy.yaml"), &policy(&["10.0.0.0/8"]));
    proxy.wait_generation(g + 1).await;
    s.write_all(req.as_bytes()).await.unwrap();
    let (status, body) = within(10, read_response(&mut s)).await;
    assert_eq!(status, 403);
    assert_eq!(error_code(&body), "VG.00040302");
}

#[tokio::test]
async fn admin_reload_needs_a_write_token_and_reports_the_outcome() {
    let (_up, proxy) = setup(&policy(&["127.0.0.1"])).await;
    let call = |token| proxy.admin(Method::POST, "/-/reload", token, None);
    let (status, body) = call(None).await;
    assert_eq!((status, error_code(&body).as_str()), (401, "UC.00010002"));
    assert_eq!(call(Some("wrong")).await.0, 401);
    assert_eq!(call(Some(READ_TOKEN)).await.0, 401);
    let g = proxy.app.shared.current().number;
    let (status, body) = call(Some(WRITE_TOKEN)).await;
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["result"], "unchanged");
    assert_eq!(v["generation"], g);

    // Invalid: 400 with the position; the watcher may have failed it first, the answer is the same.
    std::fs::write(proxy.path("policy.yaml"), policy(&["10.0.0.0/99"])).unwrap();
    let (status, body) = call(Some(WRITE_TOKEN)).await;
    assert_eq!(status, 400, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error_code"], "UC.00011002");
    assert!(
        v["error_msg"].as_str().unwrap().contains("policy.yaml:4:"),
        "{body}"
    );
    let (status, body) = proxy.admin_get("/status").await;
    assert_eq!(status, 200);
    let st: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(st["last_reload"]["result"], "failure", "{body}");
    assert_eq!(st["generation"], g);

    let fixed = policy(&["10.0.0.0/8"]);
    std::fs::write(proxy.path("policy.yaml"), &fixed).unwrap();
    let (status, body) = call(Some(WRITE_TOKEN)).await;
    assert_eq!(status, 200, "{body}");
    // Either this call or the watcher published it; the rules are the fixed ones now.
    assert_eq!(wait_policy(&proxy, &sha(&fixed)).await, g + 1);
    assert_eq!(proxy.admin(Method::GET, "/status", None, None).await.0, 401);
}

/// The served leaf certificate of a fresh TLS handshake, DER.
async fn served_cert(proxy: &TestProxy) -> Vec<u8> {
    let pki = proxy.pki.as_ref().unwrap();
    let mut roots = rustls::RootCertStore::empty();
    use rustls_pki_types::pem::PemObject;
    roots
        .add(rustls_pki_types::CertificateDer::from_pem_slice(pki.ca_pem.as_bytes()).unwrap())
        .unwrap();
    let cfg = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    let tcp = TcpStream::connect(proxy.addr()).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let tls = within(10, connector.connect(name, tcp)).await.unwrap();
    tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

#[tokio::test]
async fn certificate_rotation_is_seen_by_new_tls_clients_and_a_mismatch_keeps_the_old_pair() {
    let up = Upstream::start().await;
    let proxy = TestProxy::start(
        &common::config_tls(up.addr, ""),
        &policy(&["127.0.0.1"]),
        true,
    )
    .await;
    let pki = proxy.pki.as_ref().unwrap();
    let first = served_cert(&proxy).await;
    use rustls_pki_types::pem::PemObject;
    let original = rustls_pki_types::CertificateDer::from_pem_slice(pki.cert_pem.as_bytes())
        .unwrap()
        .to_vec();
    assert_eq!(first, original);

    // An existing connection keeps working across the rotation.
    let client = proxy.client(true);
    let r = client
        .get(format!("{}/x", proxy.base()))
        .header("x-domain-id", TENANT)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let (cert, key, der) = pki.leaf(0x0102_0304);
    let g = proxy.app.shared.current().number;
    rename_over(&proxy.path("tls/key.pem"), &key);
    rename_over(&proxy.path("tls/cert.pem"), &cert);
    proxy.wait_generation(g + 1).await;
    assert_eq!(
        served_cert(&proxy).await,
        der,
        "new handshakes get serial 0x01020304"
    );
    let r = client
        .get(format!("{}/x", proxy.base()))
        .header("x-domain-id", TENANT)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // A certificate without its key: refused, the rotated pair keeps serving.
    let (cert2, _key2, _) = pki.leaf(0x0506);
    attempt(&proxy, || rename_over(&proxy.path("tls/cert.pem"), &cert2)).await;
    let last = proxy.app.shared.last_reload().unwrap();
    assert_eq!(last.result, "failure");
    assert!(last.error.unwrap().contains("cert.pem"));
    assert_eq!(served_cert(&proxy).await, der);
    let (_, metrics) = proxy.admin_get("/metrics").await;
    assert!(metrics.contains("vpcguard_config_reloads_total{file=\"tls\",result=\"failure\"} 1"));
}

/// A policy of `n` single IPv4 addresses in 11.0.0.0/8 (never the client) plus `client` last,
/// with a per-version tag in the first id so versions hash differently.
fn big_policy(n: u32, tag: u32, client: &str) -> String {
    let mut s = String::with_capacity(n as usize * 100);
    s.push_str(&format!(
        "tenants:\n  - enterprise_id: {TENANT}\n    trusted_ips:\n"
    ));
    for i in 0..n {
        let ip = std::net::Ipv4Addr::from(0x0b00_0000 + i);
        s.push_str(&format!(
            "      - {{ id: \"v{tag}-{i}\", ip_range: \"{ip}\", view_flag: 1, download_flag: 0, upload_flag: 0 }}\n"
        ));
    }
    s.push_str(&format!(
        "      - {{ id: \"client\", ip_range: \"{client}\", view_flag: 1, download_flag: 1, upload_flag: 1 }}\n"
    ));
    s
}

/// Concurrent clients keep requesting while the policy (of `VPCGUARD_TEST_RELOAD_ENTRIES`
/// entries, default 5,000; `benches/load/reload_under_load.sh` runs 100,000 on the release build) is replaced
/// `VPCGUARD_TEST_RELOADS` times (default 10): no request fails, and every one is judged by a
/// complete generation (the client's entry is always the last one written, so a half-built table
/// would deny it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_never_fail_across_reloads_of_a_large_policy() {
    let env = |k: &str, d: u32| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let entries = env("VPCGUARD_TEST_RELOAD_ENTRIES", 5_000);
    let reloads = env("VPCGUARD_TEST_RELOADS", 10);
    let (_up, proxy) = setup(&big_policy(entries, 0, "127.0.0.1")).await;
    let proxy = Arc::new(proxy);
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut clients = Vec::new();
    for h2 in [false, false, true, true] {
        let (proxy, stop, ok, failed) = (proxy.clone(), stop.clone(), ok.clone(), failed.clone());
        clients.push(tokio::spawn(async move {
            let client = proxy.client(h2);
            while !stop.load(Ordering::Relaxed) {
                let r = client
                    .post(format!("{}/upload", proxy.base()))
                    .header("x-domain-id", TENANT)
                    .body("x")
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status() == 200 => ok.fetch_add(1, Ordering::Relaxed),
                    _ => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    let path = proxy.path("policy.yaml");
    let started = std::time::Instant::now();
    for tag in 1..=reloads {
        let text = big_policy(entries, tag, "127.0.0.1");
        let g = proxy.app.shared.current().number;
        rename_over(&path, &text);
        assert_eq!(wait_policy(&proxy, &sha(&text)).await, g + 1);
    }
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        within(30, c).await.unwrap();
    }
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    eprintln!(
        "{reloads} reloads of {entries} entries in {elapsed:?} ({:?} each); {ok} requests ok, {failed} failed",
        elapsed / reloads
    );
    assert_eq!(failed, 0);
    assert!(ok > 0);
}

#[tokio::test]
async fn a_mutation_is_on_disk_when_it_returns_and_is_not_reloaded_again() {
    use vpcguard::policy::{Located, TrustedIp};
    let (_up, proxy) = setup(&policy(&["10.0.0.0/8"])).await;
    assert_eq!(get_status(&proxy).await.0, 403);
    let g = proxy.app.shared.current().number;
    let entry = |id: &str, range: &str| TrustedIp {
        id: Located::new(id.to_owned()),
        ip_range: Located::new(range.to_owned()),
        view_flag: Located::new(1),
        download_flag: Located::new(1),
        upload_flag: Located::new(1),
        remark: None,
    };
    let added = proxy
        .app
        .writer
        .mutate(move |f| {
            f.tenants[0].trusted_ips.push(entry("api", "127.0.0.1"));
            Ok::<_, Infallible>(f.tenants[0].trusted_ips.len())
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(added, 2);
    assert_eq!(proxy.app.shared.current().number, g + 1);
    let on_disk = std::fs::read_to_string(proxy.path("policy.yaml")).unwrap();
    assert!(on_disk.contains("127.0.0.1"), "{on_disk}");
    assert_eq!(proxy.app.shared.current().policy_sha256, sha(&on_disk));
    assert_eq!(get_status(&proxy).await.0, 200);

    // An invalid result is refused and changes nothing.
    let err = proxy
        .app
        .writer
        .mutate(move |f| {
            f.tenants[0].trusted_ips.push(entry("bad", "10.0.0.0/40"));
            Ok::<_, Infallible>(())
        })
        .await
        .unwrap_err();
    assert!(matches!(err, WriteError::Invalid(_)), "{err}");
    assert_eq!(ApiError::from(err).kind, ErrorKind::BadParam);
    assert_eq!(
        std::fs::read_to_string(proxy.path("policy.yaml")).unwrap(),
        on_disk
    );

    // A hand edit, then a mutation right away: the mutation is applied on top of the hand edit.
    let hand = format!(
        "{}  - enterprise_id: hand-edited\n    trusted_ips: []\n",
        policy(&["127.0.0.1"])
    );
    rename_over(&proxy.path("policy.yaml"), &hand);
    proxy
        .app
        .writer
        .mutate(move |f| {
            f.tenants[0].trusted_ips.push(entry("api2", "192.0.2.1"));
            Ok::<_, Infallible>(())
        })
        .await
        .unwrap()
        .unwrap();
    let after = std::fs::read_to_string(proxy.path("policy.yaml")).unwrap();
    assert!(
        after.contains("hand-edited") && after.contains("192.0.2.1"),
        "{after}"
    );
    // Our own write is not reloaded as a change: the next external edit is exactly one more.
    let g = proxy.app.shared.current().number;
    let next = policy(&["127.0.0.0/8"]);
    rename_over(&proxy.path("policy.yaml"), &next);
    assert_eq!(wait_policy(&proxy, &sha(&next)).await, g + 1);

    // A broken hand edit is never overwritten: the mutation is refused with 409.
    let broken = format!("{next}  - {{ broken\n");
    rename_over(&proxy.path("policy.yaml"), &broken);
    let err = proxy
        .app
        .writer
        .mutate(|_| Ok::<_, Infallible>(()))
        .await
        .unwrap_err();
    assert!(matches!(err, WriteError::EditedInvalid(_)), "{err}");
    assert_eq!(ApiError::from(err).kind, ErrorKind::Conflict);
    assert_eq!(
        std::fs::read_to_string(proxy.path("policy.yaml")).unwrap(),
        broken
    );
}

#[tokio::test]
async fn config_emptied_on_reload_keeps_the_last_good_generation_and_counts_a_failure() {
    // docs/contract.md §2, §8: an empty config is an invalid version, never "every key at its
    // default" (which would wipe the admin tokens and reset the tenant rules).
    let up = Upstream::start().await;
    let config = common::config_plain(up.addr, common::STATIC_TENANT);
    let proxy = TestProxy::start(&config, &policy(&["127.0.0.1"]), false).await;
    let generation = proxy.app.shared.current().number;
    for (i, text) in ["", "# emptied by a truncated write\n", "- listen: {}\n"]
        .iter()
        .enumerate()
    {
        attempt(&proxy, || rename_over(&proxy.path("vpcguard.yaml"), text)).await;
        assert_eq!(proxy.app.shared.current().number, generation, "{text:?}");
        let last = proxy.app.shared.last_reload().unwrap();
        assert_eq!(last.result, "failure", "{text:?}");
        assert!(
            last.error.unwrap().contains("vpcguard.yaml"),
            "{text:?}: the error names the file"
        );
        // The tokens still answer, and the static tenant rule still judges (no x-domain-id).
        let (status, metrics) = proxy.admin_get("/metrics").await;
        assert_eq!(status, 200);
        let want = format!(
            "vpcguard_config_reloads_total{{file=\"config\",result=\"failure\"}} {}",
            i + 1
        );
        assert!(metrics.contains(&want), "{text:?}: {want}");
        assert_eq!(
            proxy.admin_get("/status").await.0,
            200,
            "{text:?}: tokens kept"
        );
        let r = proxy
            .client(false)
            .get(format!("{}/x", proxy.base()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{text:?}: the static tenant still applies");
    }
}

#[tokio::test]
async fn certificate_files_deleted_during_rotation_keep_the_old_pair_and_count_a_tls_failure() {
    // docs/contract.md §8: the self-signed certificate is generated only at startup; on a reload,
    // missing certificate files are an invalid version.
    let up = Upstream::start().await;
    let proxy = TestProxy::start(
        &common::config_tls(up.addr, ""),
        &policy(&["127.0.0.1"]),
        true,
    )
    .await;
    let first = served_cert(&proxy).await;
    let generation = proxy.app.shared.current().number;
    std::fs::remove_file(proxy.path("tls/cert.pem")).unwrap();
    std::fs::remove_file(proxy.path("tls/key.pem")).unwrap();
    // The watcher may try first (and fail the same way); this reload is the one asserted on.
    let outcome = proxy
        .app
        .writer
        .reload(vpcguard::reload::Trigger::Signal)
        .await;
    match outcome {
        vpcguard::reload::Outcome::Failed { error } => {
            assert!(error.contains("cert.pem"), "{error}")
        }
        other => panic!("deleted certificate files were accepted: {other:?}"),
    }
    assert_eq!(proxy.app.shared.current().number, generation);
    assert_eq!(
        served_cert(&proxy).await,
        first,
        "the old pair keeps serving"
    );
    let (_, metrics) = proxy.admin_get("/metrics").await;
    let failures: u64 = metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix("vpcguard_config_reloads_total{file=\"tls\",result=\"failure\"} ")
        })
        .unwrap()
        .parse()
        .unwrap();
    assert!(failures >= 1, "{metrics}");
    assert!(
        metrics.contains("vpcguard_config_reloads_total{file=\"tls\",result=\"success\"} 0"),
        "{metrics}"
    );

    // The rotation completes: the new pair is taken.
    let (cert, key, der) = proxy.pki.as_ref().unwrap().leaf(0x0a0b);
    std::fs::write(proxy.path("tls/key.pem"), &key).unwrap();
    std::fs::write(proxy.path("tls/cert.pem"), &cert).unwrap();
    let outcome = proxy
        .app
        .writer
        .reload(vpcguard::reload::Trigger::Signal)
        .await;
    assert!(
        !matches!(outcome, vpcguard::reload::Outcome::Failed { .. }),
        "{outcome:?}"
    );
    assert_eq!(served_cert(&proxy).await, der);
}

#[tokio::test]
async fn mutation_whose_file_is_hand_edited_before_its_rename_is_refused_and_keeps_the_edit() {
    // docs/contract.md §7: the writer re-checks, just before the rename, that the file still
    // holds what the mutation read; a hand edit saved in between is never overwritten.
    let (_up, proxy) = setup(&policy(&["10.0.0.0/8"])).await;
    let path = proxy.path("policy.yaml");
    let hand = policy(&["127.0.0.1"]);
    let (edit_path, edit_text) = (path.clone(), hand.clone());
    let generation = proxy.app.shared.current().number;
    // The mutation runs after the writer read the file and before it renames its own over it:
    // a hand edit saved from inside it lands exactly in that window.
    let err = proxy
        .app
        .writer
        .mutate(move |f| {
            std::fs::write(&edit_path, &edit_text).unwrap();
            f.tenants.clear();
            Ok::<_, Infallible>(())
        })
        .await
        .unwrap_err();
    assert!(matches!(err, WriteError::Edited { .. }), "{err}");
    assert_eq!(ApiError::from(err).kind, ErrorKind::Conflict);
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        hand,
        "the edit is kept"
    );
    // Nothing was published by the refused write; the watcher then loads the hand edit.
    assert_eq!(wait_policy(&proxy, &sha(&hand)).await, generation + 1);
}
