//! Metrics seen from outside (docs/contract.md §9): exact counter lines after a scripted mix of decisions,
//! upstream errors and reloads; `promtool check metrics` on a live /metrics; a real Prometheus
//! server scraping the admin listener; the metric names documented in README.md (both ways); and no
//! per-entry series however large the policy.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use common::upstream::{Upstream, refused};
use common::{TestProxy, within};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// Tenant `a`: only through `vpce-a`, 10.1/16 view only. Tenant `b`: 10.2/16, every right.
/// Marker 5 is a rejected connection.
const POLICY: &str = r#"
tenants:
  - enterprise_id: a
    vpcep: { enabled: true, endpoints: [ { vpcep_id: vpce-a } ] }
    trusted_ips:
      - { id: "1", ip_range: "10.1.0.0/16", view_flag: 1, download_flag: 0, upload_flag: 0 }
  - enterprise_id: b
    trusted_ips:
      - { id: "2", ip_range: "10.2.0.0/16", view_flag: 1, download_flag: 1, upload_flag: 1 }
endpoint_services:
  - id: svc
    approval_required: true
    connections:
      - { id: vpce-r, marker_id: 5, status: rejected }
"#;

fn config(upstream: SocketAddr, extra: &str) -> String {
    common::config_plain(
        upstream,
        &format!(
            "client_ip:\n  trusted_proxies: [\"127.0.0.1/32\"]\n  headers: [x-forwarded-for]\nvpcep:\n  headers: [x-vpcep-id]\n  marker_headers: [x-vpcep-marker-id]\n{extra}"
        ),
    )
}

/// One request as tenant `tenant` from `ip` with extra headers; returns the status.
async fn request(
    proxy: &TestProxy,
    method: &str,
    tenant: &str,
    ip: &str,
    extra: &[(&str, &str)],
) -> u16 {
    let client = proxy.client(false);
    let mut req = client
        .request(method.parse().unwrap(), format!("{}/x", proxy.base()))
        .header("x-domain-id", tenant)
        .header("x-forwarded-for", ip);
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap().status().as_u16()
}

/// Replace the config file and wait for its generation.
async fn reload_config(proxy: &TestProxy, text: &str) {
    let g = proxy.app.shared.current().number;
    let tmp = proxy.path("vpcguard.yaml.tmp~");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, proxy.path("vpcguard.yaml")).unwrap();
    proxy.wait_generation(g + 1).await;
}

/// The sample lines of `family` in Prometheus text, sorted.
fn lines<'a>(text: &'a str, family: &str) -> Vec<&'a str> {
    let mut v: Vec<&str> = text
        .lines()
        .filter(|l| {
            !l.starts_with('#')
                && (l.starts_with(&format!("{family}{{")) || l.starts_with(&format!("{family} ")))
        })
        .collect();
    v.sort_unstable();
    v
}

#[tokio::test]
async fn a_scripted_mix_gives_exact_counter_lines() {
    let up = Upstream::start().await;
    let proxy = TestProxy::start(&config(up.addr, ""), POLICY, false).await;
    let vpce_a = [("x-vpcep-id", "vpce-a")];
    type Step<'a> = (&'a str, &'a str, &'a str, &'a [(&'a str, &'a str)], u16);
    let script: [Step; 9] = [
        ("GET", "b", "10.2.0.1", &[], 200),
        ("POST", "b", "10.2.0.1", &[], 200),
        ("GET", "a", "10.1.0.1", &vpce_a, 200),
        ("GET", "nobody", "10.2.0.1", &[], 403), // unknown_tenant
        ("GET", "a", "10.1.0.1", &[], 403),      // vpcep_not_authorized
        ("GET", "b", "192.0.2.1", &[], 403),     // ip_not_trusted
        ("POST", "a", "10.1.0.1", &vpce_a, 403), // right_not_granted
        ("GET", "a", "10.1.0.1", &[("x-vpcep-marker-id", "5")], 403), // vpcep_not_accepted
        ("GET", "b", "not-an-ip", &[], 403),     // bad_forwarding_header
    ];
    for (method, tenant, ip, extra, want) in script {
        assert_eq!(
            request(&proxy, method, tenant, ip, extra).await,
            want,
            "{method} {tenant} {ip} {extra:?}"
        );
    }
    assert_eq!(
        request(
            &proxy,
            "GET",
            "b",
            "10.2.0.1",
            &[("x-vpcep-id", "NOT VALID!")]
        )
        .await,
        403
    );

    // Reload 1: report mode. A denial is forwarded and counted as report_deny.
    reload_config(&proxy, &config(up.addr, "policy:\n  mode: report\n")).await;
    assert_eq!(request(&proxy, "GET", "b", "192.0.2.1", &[]).await, 200);
    // Reload 2: an upstream that refuses connections. An allowed request gets 502.
    let gone = refused().await;
    reload_config(&proxy, &config(gone, "")).await;
    assert_eq!(request(&proxy, "GET", "b", "10.2.0.1", &[]).await, 502);
    // A failed reload (bad policy) is counted too and changes nothing.
    let mut attempts = proxy.app.shared.subscribe_attempts();
    attempts.borrow_and_update();
    std::fs::write(
        proxy.path("policy.yaml"),
        "tenants: [ { enterprise_id: \"bad id!\" } ]\n",
    )
    .unwrap();
    within(30, attempts.changed()).await.unwrap();

    let (status, text) = proxy.admin_get("/metrics").await;
    assert_eq!(status, 200);
    let nonzero: Vec<&str> = lines(&text, "vpcguard_requests_total")
        .into_iter()
        .filter(|l| !l.ends_with(" 0"))
        .collect();
    assert_eq!(
        nonzero,
        [
            r#"vpcguard_requests_total{decision="allow",reason="none"} 4"#,
            r#"vpcguard_requests_total{decision="deny",reason="bad_forwarding_header"} 1"#,
            r#"vpcguard_requests_total{decision="deny",reason="bad_vpcep_header"} 1"#,
            r#"vpcguard_requests_total{decision="deny",reason="ip_not_trusted"} 1"#,
            r#"vpcguard_requests_total{decision="deny",reason="right_not_granted"} 1"#,
            r#"vpcguard_requests_total{decision="deny",reason="unknown_tenant"} 1"#,
            r#"vpcguard_requests_total{decision="deny",reason="vpcep_not_accepted"} 1"#,
            r#"vpcguard_requests_total{decision="deny",reason="vpcep_not_authorized"} 1"#,
            r#"vpcguard_requests_total{decision="report_deny",reason="ip_not_trusted"} 1"#,
        ]
    );
    assert_eq!(
        lines(&text, "vpcguard_upstream_errors_total"),
        [
            r#"vpcguard_upstream_errors_total{kind="connect"} 1"#,
            r#"vpcguard_upstream_errors_total{kind="protocol"} 0"#,
            r#"vpcguard_upstream_errors_total{kind="timeout"} 0"#,
        ]
    );
    let reloads = lines(&text, "vpcguard_config_reloads_total");
    assert!(
        reloads.contains(&r#"vpcguard_config_reloads_total{file="config",result="success"} 2"#),
        "{reloads:?}"
    );
    assert!(
        reloads.contains(&r#"vpcguard_config_reloads_total{file="policy",result="failure"} 1"#),
        "{reloads:?}"
    );
    assert!(
        reloads.contains(&r#"vpcguard_config_reloads_total{file="policy",result="success"} 0"#),
        "{reloads:?}"
    );
    assert_eq!(
        lines(&text, "vpcguard_policy_generation"),
        ["vpcguard_policy_generation 3"]
    );
    assert_eq!(
        lines(&text, "vpcguard_config_last_reload_successful"),
        ["vpcguard_config_last_reload_successful 0"]
    );
    // 12 requests in all, each on its own connection (a new reqwest client per request).
    assert_eq!(
        lines(&text, "vpcguard_connections_total"),
        ["vpcguard_connections_total 12"]
    );
    assert_eq!(
        lines(&text, "vpcguard_request_duration_seconds_count"),
        ["vpcguard_request_duration_seconds_count 12"]
    );
    // Upstream exchanges that got a response are timed: three allowed and one report_deny; the
    // refused connection is an error, not a duration.
    assert_eq!(
        lines(&text, "vpcguard_upstream_duration_seconds_count"),
        ["vpcguard_upstream_duration_seconds_count 4"]
    );
    assert!(text.contains(&format!(
        "vpcguard_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    )));
    // The admin calls themselves are counted by route and status (this scrape is the first; the
    // other pre-created series stay at zero).
    let (_, again) = proxy.admin_get("/metrics").await;
    let counted: Vec<&str> = lines(&again, "vpcguard_admin_requests_total")
        .into_iter()
        .filter(|l| !l.ends_with(" 0"))
        .collect();
    assert_eq!(
        counted,
        [r#"vpcguard_admin_requests_total{route="metrics",status="200"} 1"#]
    );
}

#[tokio::test]
async fn promtool_finds_nothing_on_a_live_metrics_page() {
    let up = Upstream::start().await;
    let proxy = TestProxy::start(&config(up.addr, ""), POLICY, false).await;
    assert_eq!(request(&proxy, "GET", "b", "10.2.0.1", &[]).await, 200);
    assert_eq!(request(&proxy, "GET", "b", "192.0.2.1", &[]).await, 403);
    let (_, text) = proxy.admin_get("/metrics").await;
    let mut child = tokio::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package `prometheus`) must be installed; .ci/run installs it");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .await
        .unwrap();
    let out = within(30, child.wait_with_output()).await.unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{said}");
    assert_eq!(said.trim(), "", "promtool reported something");
}

/// The scraped admin listener is bound (port 0, never released) by the test harness; Prometheus
/// binds port 0 for its own listener and the test reads the port it got from its log line
/// `msg="Listening on" address=…`, so no port is chosen, released and handed over.
#[tokio::test]
async fn a_real_prometheus_scrapes_the_admin_listener() {
    let up = Upstream::start().await;
    let proxy = TestProxy::start(&config(up.addr, ""), POLICY, false).await;
    for _ in 0..3 {
        assert_eq!(request(&proxy, "GET", "b", "10.2.0.1", &[]).await, 200);
    }
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("prometheus.yml");
    std::fs::write(
        &cfg,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: vpcguard\n    static_configs:\n      - targets: [\"{}\"]\n",
            proxy.app.admin_addr
        ),
    )
    .unwrap();
    let mut prom = tokio::process::Command::new("prometheus")
        .arg(format!("--config.file={}", cfg.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg("--web.listen-address=127.0.0.1:0")
        .arg("--log.format=logfmt")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("prometheus (Debian package `prometheus`) must be installed; .ci/run installs it");
    let mut log = BufReader::new(prom.stderr.take().unwrap()).lines();
    let mut said = String::new();
    let port = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let Some(line) = log.next_line().await.unwrap() else {
                panic!("prometheus exited before listening:\n{said}");
            };
            if let Some(addr) = listening_on(&line) {
                return addr.port();
            }
            said.push_str(&line);
            said.push('\n');
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no `Listening on` line from prometheus in 30 s:\n{said}"));
    // Keep reading its log so that a full pipe never blocks it.
    tokio::spawn(async move { while let Ok(Some(_)) = log.next_line().await {} });
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let query = |q: &'static str| {
        let http = http.clone();
        async move {
            let mut url =
                reqwest::Url::parse(&format!("http://127.0.0.1:{port}/api/v1/query")).ok()?;
            url.query_pairs_mut().append_pair("query", q);
            let r = http.get(url).send().await.ok()?;
            let v: serde_json::Value = r.json().await.ok()?;
            let first = v["data"]["result"].as_array()?.first()?.clone();
            first["value"][1].as_str().map(str::to_owned)
        }
    };
    // Prometheus scrapes every second; poll its query API (an external process: there is no
    // event to wait on) under a bound.
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let (upv, requests) = within(60, async {
        loop {
            tick.tick().await;
            let upv = query("up{job=\"vpcguard\"}").await;
            let req = query("sum(vpcguard_requests_total{decision=\"allow\"})").await;
            if let (Some(u), Some(r)) = (upv, req) {
                return (u, r);
            }
        }
    })
    .await;
    assert_eq!(upv, "1");
    assert_eq!(requests, "3");
}

/// docs/contract.md §7, §9: `admin_requests_total` has a series for every route from the start —
/// each route with the statuses it answers (its success, its refusals), at zero — so that a rate,
/// an error ratio or an `increase(…{status="401"}) > 0` alert works before the first call.
#[tokio::test]
async fn admin_requests_total_before_any_admin_call_has_every_route_at_zero() {
    let up = Upstream::start().await;
    let proxy = TestProxy::start(&config(up.addr, ""), POLICY, false).await;
    let text = vpcguard::metrics::render(&proxy.app.shared.registry);
    let got = lines(&text, "vpcguard_admin_requests_total");
    let routes: &[(&str, &[&str])] = &[
        ("connections", &["200", "400", "401", "404"]),
        (
            "connections_action",
            &["200", "400", "401", "404", "409", "500"],
        ),
        ("healthz", &["200"]),
        ("metrics", &["200"]),
        ("other", &["401", "404"]),
        (
            "project_permission",
            &["200", "400", "401", "404", "409", "500"],
        ),
        ("readyz", &["200", "503"]),
        ("reload", &["200", "400", "401"]),
        ("status", &["200", "401"]),
        (
            "trusted_ip_addresses",
            &["200", "400", "401", "404", "409", "500"],
        ),
        ("vpcep_authorization", &["200", "400", "401"]),
        ("vpceps", &["200", "400", "401", "404", "409", "500"]),
        (
            "vpceps_settings",
            &["200", "400", "401", "404", "409", "500"],
        ),
    ];
    let mut want: Vec<String> = routes
        .iter()
        .flat_map(|(route, statuses)| {
            statuses.iter().map(move |status| {
                format!(r#"vpcguard_admin_requests_total{{route="{route}",status="{status}"}} 0"#)
            })
        })
        .collect();
    want.sort_unstable();
    assert_eq!(got, want);
}

/// The startup load counts as a successful load: `config_last_reload_successful` is 1 and its
/// timestamp set before any reload, so `== 0` alerts only after a refused reload.
#[tokio::test]
async fn last_reload_successful_is_1_from_the_start() {
    let up = Upstream::start().await;
    let proxy = TestProxy::start(&config(up.addr, ""), POLICY, false).await;
    let m = &proxy.app.shared.metrics;
    assert_eq!(m.config_last_reload_successful.get(), 1);
    let started = m.config_last_reload_success_timestamp_seconds.get();
    let now = i64::try_from(vpcguard::time::unix_now()).unwrap();
    assert!(
        (now - 60..=now).contains(&started),
        "timestamp {started}, now {now}"
    );
}

/// The address in Prometheus's (exporter-toolkit's) `msg="Listening on" … address=HOST:PORT` log
/// line, which is the bound address (the line before it repeats the configured `:0`).
fn listening_on(line: &str) -> Option<SocketAddr> {
    if !line.contains("msg=\"Listening on\"") {
        return None;
    }
    line.split_whitespace()
        .find_map(|field| field.strip_prefix("address="))
        .and_then(|addr| addr.parse().ok())
}

/// Every metric family the registry exports is named in README.md, and every `vpcguard_*` or
/// `process_*` name README.md mentions exists.
#[tokio::test]
async fn metric_names_in_code_and_readme_agree() {
    let up = Upstream::start().await;
    let proxy = TestProxy::start(&config(up.addr, ""), POLICY, false).await;
    // Every family has series from the start (a labelled family without any is not exported).
    let mut code: BTreeSet<String> = proxy
        .app
        .shared
        .registry
        .gather()
        .iter()
        .map(|f| f.name().to_owned())
        .collect();
    // The etcd store's families, exported only with `policy.store: etcd` (docs/contract.md §9).
    let reg = prometheus::Registry::new();
    let m = vpcguard::metrics::Metrics::register(&reg).unwrap();
    m.store.register(&reg).unwrap();
    let store: Vec<String> = reg
        .gather()
        .iter()
        .map(|f| f.name().to_owned())
        .filter(|n| n.starts_with("vpcguard_policy_store_"))
        .collect();
    assert_eq!(store.len(), 3, "{store:?}");
    code.extend(store);
    assert!(code.contains("vpcguard_requests_total") && code.contains("process_cpu_seconds_total"));
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let mut documented = BTreeSet::new();
    for word in readme.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
        if word.starts_with("vpcguard_") || word.starts_with("process_") {
            documented.insert(word.to_owned());
        }
    }
    // Histogram series suffixes are part of their family.
    let documented: BTreeSet<String> = documented
        .into_iter()
        .map(|w| {
            for s in ["_bucket", "_sum", "_count"] {
                if let Some(base) = w.strip_suffix(s) {
                    if code.contains(base) {
                        return base.to_owned();
                    }
                }
            }
            w
        })
        .collect();
    let undocumented: Vec<_> = code.difference(&documented).collect();
    let unknown: Vec<_> = documented.difference(&code).collect();
    assert!(
        undocumented.is_empty(),
        "in code, not in README.md: {undocumented:?}"
    );
    assert!(unknown.is_empty(), "in README.md, not in code: {unknown:?}");
}

/// The page has the same series whatever the policy size: nothing is labelled per entry.
#[tokio::test]
async fn a_large_policy_adds_no_series() {
    let up = Upstream::start().await;
    let series = |text: &str| {
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| l.rsplit_once(' ').unwrap().0.to_owned())
            .collect::<BTreeSet<_>>()
    };
    let small = TestProxy::start(&config(up.addr, ""), POLICY, false).await;
    let mut big_policy = String::from("tenants:\n  - enterprise_id: b\n    trusted_ips:\n");
    for i in 0..20_000u32 {
        let ip = std::net::Ipv4Addr::from(0x0b00_0000 + i);
        big_policy.push_str(&format!(
            "      - {{ id: \"{i}\", ip_range: \"{ip}\", view_flag: 1, download_flag: 0, upload_flag: 0 }}\n"
        ));
    }
    let big = TestProxy::start(&config(up.addr, ""), &big_policy, false).await;
    let (_, a) = small.admin_get("/metrics").await;
    let (_, b) = big.admin_get("/metrics").await;
    assert_eq!(series(&a), series(&b));
    assert!(b.contains("vpcguard_policy_entries{kind=\"ip_range\"} 20000"));
}
