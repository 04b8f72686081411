//! Access decisions seen from outside (docs/contract.md §4, §5 403 rows, §7.1): PROXY v1 from curl and raw,
//! PROXY v2 with each cloud TLV, HAProxy `send-proxy-v2` with CRC32c and unique id, trusted
//! headers, spoofing from untrusted peers, per-request judgement on keep-alive connections.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::process::Command;

use common::upstream::Upstream;
use common::{TestProxy, error_code, read_response, within};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use vpcguard::proxy_protocol::builder::{V2Builder, v1};

use common::{TENANT as A, TENANT_B as B};

/// Tenant A: only via endpoint `vpce-0aws1` or the marker-resolved `705290f3-…`; IPs 10.1/16
/// (view+download) and 192.0.2.0/24 (everything). Tenant B: no vpcep requirement, 198.51.100.7
/// view only. Marker 111 accepted, 222 rejected; service requires approval.
const POLICY: &str = r#"
tenants:
  - enterprise_id: 389efb76b1354e4482eabeed00000000
    vpcep:
      enabled: true
      endpoints:
        - { vpcep_id: vpce-0aws1, region: r1, description: aws }
        - { vpcep_id: 705290f3-0d00-41f2-aedc-71f09844e879, region: r1, description: marker }
    trusted_ips:
      - { id: "1", ip_range: "10.1.0.0/16", view_flag: 1, download_flag: 1, upload_flag: 0 }
      - { id: "2", ip_range: "192.0.2.0/24", view_flag: 1, download_flag: 1, upload_flag: 1 }
  - enterprise_id: tenant-b
    trusted_ips:
      - { id: "3", ip_range: "198.51.100.7", view_flag: 1, download_flag: 0, upload_flag: 0 }
endpoint_services:
  - id: svc-1
    approval_required: true
    connections:
      - { id: 705290f3-0d00-41f2-aedc-71f09844e879, marker_id: 111, domain_id: 389efb76b1354e4482eabeed00000000, status: accepted }
      - { id: vpce-rejected, marker_id: 222, domain_id: 389efb76b1354e4482eabeed00000000, status: rejected }
"#;

fn config(up: SocketAddr, extra: &str) -> String {
    format!(
        r#"upstream:
  url: "http://{up}"
listen:
  proxy_protocol: optional
  proxy_protocol_from: ["127.0.0.1/32"]
vpcep:
  tlv:
    - {{ kind: aws }}
    - {{ kind: azure }}
    - {{ kind: gcp }}
    - {{ kind: custom, type: 0xE2, encoding: u64_le, yields: marker }}
tenant:
  - {{ header: "x-domain-id" }}
{}{extra}"#,
        common::admin_block(extra)
    )
}

/// Send `prefix` (a PROXY header or nothing) then one HTTP/1.1 request per `requests` entry on
/// the same connection; return (status, body) per request.
async fn exchange(addr: SocketAddr, prefix: &[u8], requests: &[String]) -> Vec<(u16, String)> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(prefix).await.unwrap();
    let mut out = Vec::new();
    for req in requests {
        s.write_all(req.as_bytes()).await.unwrap();
        out.push(within(10, read_response(&mut s)).await);
    }
    out
}

/// Read one response with a Content-Length body.
fn get(path: &str, tenant: &str, extra: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: svc\r\nX-Domain-Id: {tenant}\r\n{extra}\r\n")
}

fn post(path: &str, tenant: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: svc\r\nX-Domain-Id: {tenant}\r\nContent-Length: 2\r\n\r\nhi"
    )
}

/// An upstream and a proxy with the default test config and [`POLICY`].
async fn setup() -> (Upstream, TestProxy) {
    let up = Upstream::start().await;
    let proxy = TestProxy::start(&config(up.addr, ""), POLICY, false).await;
    (up, proxy)
}

/// A PROXY v2 header from `ip` through the listed AWS endpoint.
fn via_aws(proxy: &TestProxy, ip: &str) -> Vec<u8> {
    V2Builder::proxy(src(ip), local(proxy.addr().port()))
        .aws_vpce("vpce-0aws1")
        .build()
}

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn src(ip: &str) -> SocketAddr {
    SocketAddr::new(ip.parse().unwrap(), 40000)
}

#[tokio::test]
async fn proxy_v2_cloud_tlvs_identify_the_endpoint() {
    let (_up, proxy) = setup().await;
    let dst = local(proxy.addr().port());
    // (name, header, expected status, expected error code)
    let cases: Vec<(&str, Vec<u8>, u16, Option<&str>)> = vec![
        (
            "aws listed",
            V2Builder::proxy(src("10.1.2.3"), dst)
                .aws_vpce("vpce-0aws1")
                .build(),
            200,
            None,
        ),
        (
            "aws unlisted",
            V2Builder::proxy(src("10.1.2.3"), dst)
                .aws_vpce("vpce-other")
                .build(),
            403,
            Some("VG.00040301"),
        ),
        (
            "azure accepted marker",
            V2Builder::proxy(src("10.1.2.3"), dst)
                .azure_link_id(111)
                .build(),
            200,
            None,
        ),
        (
            "gcp rejected marker",
            V2Builder::proxy(src("10.1.2.3"), dst)
                .gcp_psc_id(222)
                .build(),
            403,
            Some("VG.00040304"),
        ),
        (
            "custom tlv marker",
            V2Builder::proxy(src("10.1.2.3"), dst)
                .tlv(0xE2, &111u64.to_le_bytes())
                .build(),
            200,
            None,
        ),
        (
            "unknown marker pending",
            V2Builder::proxy(src("10.1.2.3"), dst)
                .azure_link_id(999)
                .build(),
            403,
            Some("VG.00040304"),
        ),
        (
            "no endpoint",
            V2Builder::proxy(src("10.1.2.3"), dst).build(),
            403,
            Some("VG.00040301"),
        ),
        (
            "crc verified",
            V2Builder::proxy(src("10.1.2.3"), dst)
                .aws_vpce("vpce-0aws1")
                .crc32c(true)
                .build(),
            200,
            None,
        ),
        (
            "source not trusted",
            V2Builder::proxy(src("10.2.0.1"), dst)
                .aws_vpce("vpce-0aws1")
                .build(),
            403,
            Some("VG.00040302"),
        ),
    ];
    for (name, header, status, code) in cases {
        let got = exchange(proxy.addr(), &header, &[get("/x", A, "")]).await;
        assert_eq!(got[0].0, status, "case {name}: {}", got[0].1);
        if let Some(code) = code {
            assert_eq!(error_code(&got[0].1), code, "case {name}");
        }
    }
    // The unknown marker is persisted as pendingAcceptance (one write, one new generation).
    let mut generations = proxy.app.shared.subscribe();
    within(30, generations.wait_for(|g| *g >= 2)).await.unwrap();
    let file = std::fs::read_to_string(proxy.path("policy.yaml")).unwrap();
    let line = file.lines().find(|l| l.contains("marker_id: 999")).unwrap();
    assert!(
        line.contains("id: marker-999") && line.contains("status: pendingAcceptance"),
        "{line}"
    );
}

#[tokio::test]
async fn proxy_header_bad_crc_or_untrusted_peer_closes_connection() {
    let (up, proxy) = setup().await;
    let dst = local(proxy.addr().port());
    let bad_crc = V2Builder::proxy(src("10.1.2.3"), dst)
        .crc32c(true)
        .corrupt_crc()
        .build();
    assert!(closed_after(proxy.addr(), &bad_crc).await, "bad crc");
    let garbage = b"PROXY TCP4 1.2.3.4\r\n".to_vec();
    assert!(closed_after(proxy.addr(), &garbage).await, "malformed v1");
    let (_, metrics) = proxy.admin_get("/metrics").await;
    assert!(
        metrics.contains("vpcguard_connection_rejects_total{reason=\"proxy_header\"} 2"),
        "{metrics}"
    );
    // A peer outside proxy_protocol_from may not send a header at all.
    let strict = TestProxy::start(
        &config(up.addr, "").replace("[\"127.0.0.1/32\"]", "[\"10.9.9.9/32\"]"),
        POLICY,
        false,
    )
    .await;
    let hdr = V2Builder::proxy(src("192.0.2.1"), dst).build();
    assert!(closed_after(strict.addr(), &hdr).await, "untrusted peer");
}

async fn closed_after(addr: SocketAddr, bytes: &[u8]) -> bool {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let _ = s.write_all(get("/", A, "").as_bytes()).await;
    let mut buf = [0u8; 256];
    within(10, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return true,
                Ok(n) if buf[..n].starts_with(b"HTTP/") => return false,
                Ok(_) => {}
            }
        }
    })
    .await
}

#[tokio::test]
async fn proxy_v1_source_replaces_peer_and_local_keeps_socket() {
    let (_up, proxy) = setup().await;
    let dst = local(proxy.addr().port());
    let got = exchange(
        proxy.addr(),
        &v1(src("198.51.100.7"), dst),
        &[get("/", B, "")],
    )
    .await;
    assert_eq!(got[0].0, 200, "{}", got[0].1);
    let echo: serde_json::Value = serde_json::from_str(&got[0].1).unwrap();
    assert_eq!(echo["headers"]["x-vpcguard-client-ip"][0], "198.51.100.7");
    // LOCAL (health check): the socket address (127.0.0.1) is the client, not in B's list.
    let local_hdr = V2Builder::unspec().local().build();
    let got = exchange(proxy.addr(), &local_hdr, &[get("/", B, "")]).await;
    assert_eq!(got[0].0, 403);
    assert_eq!(error_code(&got[0].1), "VG.00040302");
}

#[tokio::test]
async fn each_deny_reason_has_its_status_and_exact_body() {
    let (_up, proxy) = setup().await;
    let dst = local(proxy.addr().port());
    let via_aws = |ip: &str| {
        V2Builder::proxy(src(ip), dst)
            .aws_vpce("vpce-0aws1")
            .build()
    };
    let cases: Vec<(&str, Vec<u8>, String, &str, &str)> = vec![
        (
            "40301",
            V2Builder::proxy(src("10.1.2.3"), dst).build(),
            get("/", A, ""),
            "VG.00040301",
            "Access denied: the request did not come through an authorized VPC endpoint.",
        ),
        (
            "40302",
            via_aws("10.9.9.9"),
            get("/", A, ""),
            "VG.00040302",
            "Access denied: the source IP address is not in the trusted IP address whitelist.",
        ),
        (
            "40303",
            via_aws("10.1.2.3"),
            post("/", A),
            "VG.00040303",
            "Access denied: the source IP address may not perform this operation.",
        ),
        (
            "40304",
            V2Builder::proxy(src("10.1.2.3"), dst)
                .azure_link_id(222)
                .build(),
            get("/", A, ""),
            "VG.00040304",
            "Access denied: the VPC endpoint connection has not been accepted.",
        ),
        (
            "40305",
            via_aws("10.1.2.3"),
            get("/", "nobody", ""),
            "VG.00040305",
            "Access denied: unknown tenant.",
        ),
    ];
    for (name, header, req, code, msg) in cases {
        let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
        s.write_all(&header).await.unwrap();
        s.write_all(req.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        within(10, async {
            let mut buf = [0u8; 4096];
            loop {
                let n = s.read(&mut buf).await.unwrap();
                raw.extend_from_slice(&buf[..n]);
                if n == 0 || raw.windows(4).any(|w| w == b"\r\n\r\n") && raw.ends_with(b"}") {
                    break;
                }
            }
        })
        .await;
        let text = String::from_utf8(raw).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 403"), "case {name}: {head}");
        let lower = head.to_ascii_lowercase();
        assert!(
            lower.contains("content-type: application/json"),
            "case {name}"
        );
        assert!(lower.contains("x-request-id: "), "case {name}");
        let want = serde_json::json!({"error_code": code, "error_msg": msg});
        let got: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(got, want, "case {name}");
    }
}

#[tokio::test]
async fn spoofed_headers_from_untrusted_peer_change_nothing() {
    let up = Upstream::start().await;
    // Trusted proxies: 10.0.0.0/8 only; the test connects from 127.0.0.1 (untrusted).
    let cfg = config(
        up.addr,
        "client_ip:\n  trusted_proxies: [\"10.0.0.0/8\"]\n  headers: [x-forwarded-for, forwarded, x-real-ip]\n",
    )
    .replace("proxy_protocol: optional", "proxy_protocol: off");
    let proxy = TestProxy::start(&cfg, POLICY, false).await;
    let spoof = "X-Forwarded-For: 198.51.100.7\r\nForwarded: for=198.51.100.7\r\nX-Real-IP: 198.51.100.7\r\nX-Vpcep-Id: vpce-0aws1\r\nX-Vpcep-Marker-Id: 111\r\nX-Vpcguard-Client-Ip: 198.51.100.7\r\n";
    // Tenant B allows 198.51.100.7 only: the spoofed address must not be believed.
    let got = exchange(proxy.addr(), b"", &[get("/", B, spoof)]).await;
    assert_eq!(got[0].0, 403);
    assert_eq!(error_code(&got[0].1), "VG.00040302");
    // Tenant A requires an endpoint: the spoofed x-vpcep-id must not be believed.
    let got = exchange(proxy.addr(), b"", &[get("/", A, spoof)]).await;
    assert_eq!(error_code(&got[0].1), "VG.00040301");
}

#[tokio::test]
async fn trusted_proxy_headers_are_believed_right_to_left() {
    let up = Upstream::start().await;
    let cfg = config(
        up.addr,
        "client_ip:\n  trusted_proxies: [\"127.0.0.1/32\", \"10.0.0.0/8\"]\n",
    );
    let proxy = TestProxy::start(&cfg, POLICY, false).await;
    // 198.51.100.7 -> 10.0.0.5 (trusted LB) -> us. The left-most spoof is ignored.
    let xff = "X-Forwarded-For: 203.0.113.1, 198.51.100.7, 10.0.0.5\r\n";
    let got = exchange(proxy.addr(), b"", &[get("/", B, xff)]).await;
    assert_eq!(got[0].0, 200, "{}", got[0].1);
    let echo: serde_json::Value = serde_json::from_str(&got[0].1).unwrap();
    assert_eq!(echo["headers"]["x-vpcguard-client-ip"][0], "198.51.100.7");
    assert_eq!(
        echo["headers"]["x-forwarded-for"][0],
        "203.0.113.1, 198.51.100.7, 10.0.0.5, 198.51.100.7"
    );
    // A trusted peer's marker header identifies the endpoint.
    let hdrs = "X-Forwarded-For: 10.1.2.3\r\nX-Vpcep-Marker-Id: 111\r\n";
    let got = exchange(proxy.addr(), b"", &[get("/", A, hdrs)]).await;
    assert_eq!(got[0].0, 200, "{}", got[0].1);
    // A malformed chain from a trusted peer fails closed.
    let got = exchange(
        proxy.addr(),
        b"",
        &[get("/", B, "X-Forwarded-For: not-an-ip\r\n")],
    )
    .await;
    assert_eq!(got[0].0, 403);
}

#[tokio::test]
async fn keep_alive_connection_is_judged_per_request_and_after_reload() {
    let (_up, proxy) = setup().await;
    let hdr = via_aws(&proxy, "10.1.2.3");
    let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
    s.write_all(&hdr).await.unwrap();
    // Same connection: view allowed, upload denied, download allowed.
    for (req, want) in [
        (get("/a", A, ""), 200),
        (post("/a", A), 403),
        (get("/repo/archive/x.zip", A, ""), 200),
    ] {
        s.write_all(req.as_bytes()).await.unwrap();
        assert_eq!(within(10, read_response(&mut s)).await.0, want, "{req}");
    }
    // Remove 10.1/16 and reload: the next request on the same connection is denied.
    let policy = POLICY.replace(
        "      - { id: \"1\", ip_range: \"10.1.0.0/16\", view_flag: 1, download_flag: 1, upload_flag: 0 }\n",
        "",
    );
    assert_ne!(policy, POLICY);
    let tmp = proxy.path("policy.yaml.tmp");
    std::fs::write(&tmp, &policy).unwrap();
    std::fs::rename(&tmp, proxy.path("policy.yaml")).unwrap();
    // The watcher may get there first; either way exactly one generation follows.
    let _ = proxy
        .app
        .writer
        .reload(vpcguard::reload::Trigger::Signal)
        .await;
    assert_eq!(proxy.app.shared.current().number, 2);
    s.write_all(get("/a", A, "").as_bytes()).await.unwrap();
    let (status, body) = within(10, read_response(&mut s)).await;
    assert_eq!(status, 403);
    assert_eq!(error_code(&body), "VG.00040302");
}

#[tokio::test]
async fn self_check_answers_for_the_callers_connection() {
    let (_up, proxy) = setup().await;
    let dst = local(proxy.addr().port());
    let hdr = via_aws(&proxy, "10.1.2.3");
    let got = exchange(
        proxy.addr(),
        &hdr,
        &[get(
            &format!("/v1/vpcep-authorization?enterprise_id={A}"),
            "ignored",
            "",
        )],
    )
    .await;
    assert_eq!(got[0].0, 200);
    let v: serde_json::Value = serde_json::from_str(&got[0].1).unwrap();
    assert_eq!(v["status"], "ok");
    assert_eq!(v["data"]["enterprise_id"], A);
    assert_eq!(v["data"]["vpcep_id"], "vpce-0aws1");
    assert_eq!(v["data"]["result"], "Allow");
    assert_eq!(v["data"]["config"], true);
    let hdr = V2Builder::proxy(src("10.1.2.3"), dst).build();
    let got = exchange(
        proxy.addr(),
        &hdr,
        &[get(
            &format!("/v1/vpcep-authorization?enterprise_id={A}"),
            "x",
            "",
        )],
    )
    .await;
    let v: serde_json::Value = serde_json::from_str(&got[0].1).unwrap();
    assert_eq!(v["data"]["result"], "Deny");
    assert_eq!(v["data"]["reason"], "VG.00040301");
}

#[tokio::test]
async fn report_mode_forwards_denials_and_counts_them() {
    let up = Upstream::start().await;
    let cfg = config(up.addr, "policy:\n  mode: report\n");
    let proxy = TestProxy::start(&cfg, POLICY, false).await;
    let got = exchange(proxy.addr(), b"", &[get("/", B, "")]).await;
    assert_eq!(got[0].0, 200);
    let echo: serde_json::Value = serde_json::from_str(&got[0].1).unwrap();
    assert_eq!(echo["headers"]["x-vpcguard-decision"][0], "report_deny");
    let (_, metrics) = proxy.admin_get("/metrics").await;
    assert!(
        metrics.contains(
            "vpcguard_requests_total{decision=\"report_deny\",reason=\"ip_not_trusted\"} 1"
        ),
        "{metrics}"
    );
}

#[tokio::test]
async fn curl_haproxy_protocol_v1_is_accepted_and_required_mode_refuses_without() {
    let up = Upstream::start().await;
    let cfg = config(up.addr, "").replace("proxy_protocol: optional", "proxy_protocol: required");
    let policy = "tenants:\n  - enterprise_id: tenant-b\n    trusted_ips:\n      - { id: \"1\", ip_range: \"127.0.0.1\", view_flag: 1, download_flag: 0, upload_flag: 0 }\n";
    let proxy = TestProxy::start(&cfg, policy, false).await;
    let url = format!("http://127.0.0.1:{}/hello", proxy.addr().port());
    let run = move |extra: &[&str]| {
        let mut args = vec![
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-H",
            "X-Domain-Id: tenant-b",
            "--max-time",
            "10",
        ];
        args.extend_from_slice(extra);
        args.push(&url);
        let out = Command::new("curl")
            .args(&args)
            .output()
            .expect("curl is installed (see .ci/run)");
        String::from_utf8(out.stdout).unwrap()
    };
    let with = tokio::task::spawn_blocking({
        let run = run.clone();
        move || run(&["--haproxy-protocol"])
    });
    assert_eq!(with.await.unwrap(), "200");
    let without = tokio::task::spawn_blocking(move || run(&[]));
    assert_eq!(
        without.await.unwrap(),
        "000",
        "required mode must close a connection without a header"
    );
}

/// HAProxy from Debian in front of vpcguard, sending PROXY v2 with CRC32c and a unique id; the
/// client address is set from a test header so the policy sees a chosen source.
///
/// HAProxy cannot bind port 0 (it refuses `bind 127.0.0.1:0`), so the test binds the frontend
/// listener itself and hands the listening socket over as HAProxy's stdin (`bind fd@0`): no port
/// is ever chosen, released and then claimed by another process. The socket listens before
/// HAProxy starts, so connections wait in its backlog and there is nothing to poll for.
#[tokio::test]
async fn haproxy_send_proxy_v2_with_crc32c_and_unique_id() {
    let up = Upstream::start().await;
    let cfg = config(up.addr, "").replace("proxy_protocol: optional", "proxy_protocol: required");
    let proxy = TestProxy::start(&cfg, POLICY, false).await;
    let frontend = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let haproxy = frontend.local_addr().unwrap();
    let hcfg = format!(
        "global\n  maxconn 100\ndefaults\n  mode http\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n  unique-id-format %{{+X}}o%ci%cp%Ts%rt\nfrontend fe\n  bind fd@0\n  http-request set-src req.hdr(x-test-src)\n  default_backend be\nbackend be\n  server vg {} send-proxy-v2 proxy-v2-options crc32c,unique-id\n",
        proxy.addr()
    );
    let hpath = proxy.path("haproxy.cfg");
    std::fs::write(&hpath, hcfg).unwrap();
    let log = proxy.path("haproxy.log");
    let _haproxy = tokio::process::Command::new("haproxy")
        .args(["-db", "-f", hpath.to_str().unwrap()])
        .stdin(std::process::Stdio::from(std::os::fd::OwnedFd::from(
            frontend,
        )))
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .kill_on_drop(true)
        .spawn()
        .expect("haproxy is installed (see .ci/run)");
    // Bounded: if HAProxy did not start, nothing accepts and the request would wait forever.
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .unwrap();
    let send = |ip: &'static str, method: reqwest::Method| {
        let request = client
            .request(method, format!("http://{haproxy}/through-haproxy"))
            .header("x-test-src", ip)
            .header("x-domain-id", B);
        let log = log.clone();
        async move {
            request.send().await.unwrap_or_else(|e| {
                let said = std::fs::read_to_string(&log).unwrap_or_default();
                panic!("request through HAProxy failed: {e}; HAProxy said: {said}")
            })
        }
    };
    let ok = send("198.51.100.7", reqwest::Method::GET).await;
    assert_eq!(ok.status(), 200);
    let echo: serde_json::Value = serde_json::from_str(&ok.text().await.unwrap()).unwrap();
    assert_eq!(echo["headers"]["x-vpcguard-client-ip"][0], "198.51.100.7");
    let denied = send("198.51.100.8", reqwest::Method::GET).await;
    assert_eq!(denied.status(), 403);
    let denied = send("198.51.100.7", reqwest::Method::POST).await;
    assert_eq!(denied.status(), 403);
    assert_eq!(error_code(&denied.text().await.unwrap()), "VG.00040303");
}
