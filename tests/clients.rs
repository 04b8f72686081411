//! Real command-line clients through the TLS data plane (issue: "curl -k, curl --http2 and h2load
//! work"): Debian's curl and nghttp2-client, installed by `.ci/run`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;

use common::upstream::Upstream;
use common::{OPEN_POLICY, STATIC_TENANT, TestProxy, config_tls};

async fn run(cmd: &'static str, args: Vec<String>) -> (bool, String, String) {
    tokio::task::spawn_blocking(move || {
        let out = Command::new(cmd)
            .args(&args)
            .output()
            .unwrap_or_else(|e| panic!("{cmd} is installed (see .ci/run): {e}"));
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn curl_http1_and_http2_over_tls_reach_upstream() {
    let up = Upstream::start().await;
    let proxy = TestProxy::start(&config_tls(up.addr, STATIC_TENANT), OPEN_POLICY, true).await;
    let port = proxy.addr().port();
    let ca = proxy.path("ca.pem");
    std::fs::write(&ca, &proxy.pki.as_ref().unwrap().ca_pem).unwrap();
    for (flag, want) in [("--http1.1", "1.1"), ("--http2", "2")] {
        let args = vec![
            "-sS".to_owned(),
            flag.to_owned(),
            "--cacert".to_owned(),
            ca.to_str().unwrap().to_owned(),
            "--resolve".to_owned(),
            format!("localhost:{port}:127.0.0.1"),
            "-w".to_owned(),
            "\n%{http_code} %{http_version}".to_owned(),
            "--max-time".to_owned(),
            "10".to_owned(),
            format!("https://localhost:{port}/via-curl"),
        ];
        let (ok, out, err) = run("curl", args).await;
        assert!(ok, "curl {flag}: {err}");
        let (body, tail) = out.rsplit_once('\n').unwrap();
        assert_eq!(tail, format!("200 {want}"), "curl {flag}");
        let echo: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(echo["path"], "/via-curl");
    }
}

#[tokio::test]
async fn h2load_over_tls_completes_every_request() {
    let up = Upstream::start().await;
    let proxy = TestProxy::start(&config_tls(up.addr, STATIC_TENANT), OPEN_POLICY, true).await;
    let args = vec![
        "-n".to_owned(),
        "400".to_owned(),
        "-c".to_owned(),
        "4".to_owned(),
        "-m".to_owned(),
        "8".to_owned(),
        format!("https://127.0.0.1:{}/h2load", proxy.addr().port()),
    ];
    let (ok, out, err) = run("h2load", args).await;
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("requests: 400 total, 400 started, 400 done, 400 succeeded, 0 failed"),
        "{out}"
    );
    assert!(out.contains("status codes: 400 2xx"), "{out}");
}
