//! `vpcguard demo` (docs/contract.md §1): a newcomer's first run. The proxy on `127.0.0.1:PORT`
//! (TLS with the generated `localhost` certificate) with the shipped example policy, in front of a
//! built-in echo upstream, and a printed walkthrough: one curl line per documented outcome (an
//! allow, each deny), each with the answer it gets.
//!
//! The config and policy are written to a fresh temporary directory (the admin API and pending
//! markers write the policy there, never to `config/`); an admin write token is generated for the
//! run and printed with the accept step.
//!
//! Does network I/O: the echo upstream's listener.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

use crate::app::App;
use crate::config;

/// The shipped example policy (`config/policy.yaml`), as the demo serves it.
pub const EXAMPLE_POLICY: &str = include_str!("../config/policy.yaml");

/// The example policy's tenants and connections the walkthrough names.
const TENANT: &str = "389efb76b1354e4482eabeed00000000";
const VPCEP_TENANT: &str = "6e9dfd51d1124e8d8498dce894923a0d";
const ACCEPTED_MARKER: &str = "422321321312321321";
const UNKNOWN_MARKER: &str = "7000000000000000001";
const SERVICE: &str = "4189d3c2-8882-4871-a3c2-d380272eed88";
const PROJECT: &str = "0f6c3a1e9b2d4c7f8a5e1d3b6c9f2a4e";

/// Why the demo could not start.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("cannot prepare the demo directory: {0}")]
    Dir(#[source] std::io::Error),
    #[error("cannot listen: {0}")]
    Bind(#[source] std::io::Error),
    #[error("the demo config does not load: {0}")]
    Config(String),
    #[error("cannot start the proxy: {0}")]
    Start(String),
}

/// A running demo: the proxy, its echo upstream (a task), and the directory it runs in (removed
/// when this is dropped).
#[derive(Debug)]
pub struct Demo {
    pub app: App,
    pub upstream: SocketAddr,
    /// The admin write token of this run.
    pub token: String,
    dir: tempfile::TempDir,
}

impl Demo {
    /// Start the echo upstream and the proxy on `127.0.0.1:port` (0: any free port).
    pub async fn start(port: u16) -> Result<Demo, DemoError> {
        let upstream = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(DemoError::Bind)?;
        let upstream_addr = upstream.local_addr().map_err(DemoError::Bind)?;
        tokio::spawn(serve_echo(upstream));
        let dir = tempfile::Builder::new()
            .prefix("vpcguard-demo-")
            .tempdir()
            .map_err(DemoError::Dir)?;
        let token = hex::encode(rand::random::<[u8; 16]>());
        let cfg_path = write_files(dir.path(), port, upstream_addr, &token)?;
        let loaded = config::load(&cfg_path).map_err(|e| DemoError::Config(e.to_string()))?;
        let listeners = crate::app::bind(&loaded).await.map_err(DemoError::Bind)?;
        let app =
            App::start(loaded, listeners, cfg_path).map_err(|e| DemoError::Start(e.to_string()))?;
        Ok(Demo {
            app,
            upstream: upstream_addr,
            token,
            dir,
        })
    }

    /// Wait for the proxy to finish its drain, then remove the directory.
    pub async fn wait(self) {
        self.app.wait().await;
        drop(self.dir);
    }

    /// The directory holding this run's config and policy.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The walkthrough: what runs where, then each step as a comment line (`# expect STATUS
    /// [CODE]: what it shows`) followed by the curl line that shows it.
    pub fn walkthrough(&self) -> String {
        let port = self.app.data_addr.port();
        let admin = self.app.admin_addr;
        let base = format!("https://localhost:{port}");
        let curl = "curl -sk --resolve";
        let resolve = format!("localhost:{port}:127.0.0.1");
        let ask = |headers: &str, tail: &str| format!("{curl} {resolve} {headers}{base}{tail}");
        let tenant = format!("-H 'X-Domain-Id: {TENANT}' ");
        let vpcep_tenant = format!("-H 'X-Domain-Id: {VPCEP_TENANT}' ");
        let steps: Vec<(&str, &str, String)> = vec![
            (
                "200",
                "allow: tenant 389efb76... from 127.0.0.1, a trusted IP with every right; the echo shows what the upstream received",
                ask(&tenant, "/hello"),
            ),
            (
                "403 VG.00040305",
                "unknown tenant",
                ask(
                    "-H 'X-Domain-Id: 00000000000000000000000000000000' ",
                    "/hello",
                ),
            ),
            (
                "403 VG.00040301",
                "not through an authorized VPC endpoint: tenant 6e9dfd51... requires one",
                ask(&vpcep_tenant, "/hello"),
            ),
            (
                "200",
                "allow: the same tenant through its accepted endpoint connection (marker 422321321312321321)",
                ask(
                    &format!("{vpcep_tenant}-H 'X-Vpcep-Marker-Id: {ACCEPTED_MARKER}' "),
                    "/hello",
                ),
            ),
            (
                "403 VG.00040302",
                "source IP not trusted (the peer is a trusted proxy, so X-Forwarded-For is believed)",
                ask(
                    &format!("{tenant}-H 'X-Forwarded-For: 192.0.2.7' "),
                    "/hello",
                ),
            ),
            (
                "403 VG.00040303",
                "right not granted: 10.1.0.0/16 may view and download, not upload",
                ask(
                    &format!("-X POST -d x {tenant}-H 'X-Forwarded-For: 10.1.2.3' "),
                    "/upload",
                ),
            ),
            (
                "403 VG.00040304",
                "connection not accepted: an unknown marker is recorded as pendingAcceptance",
                ask(
                    &format!("{tenant}-H 'X-Vpcep-Marker-Id: {UNKNOWN_MARKER}' "),
                    "/hello",
                ),
            ),
            (
                "403 VG.00040306",
                "the endpoint connection belongs to another tenant",
                ask(
                    &format!("{tenant}-H 'X-Vpcep-Marker-Id: {ACCEPTED_MARKER}' "),
                    "/hello",
                ),
            ),
            (
                "200",
                "accept the pending connection through the admin API",
                format!(
                    "curl -s -X POST -H 'X-Auth-Token: {}' -H 'Content-Type: application/json' \
                     -d '{{\"action\":\"receive\",\"endpoints\":[\"marker-{UNKNOWN_MARKER}\"]}}' \
                     http://{admin}/v1/{PROJECT}/vpc-endpoint-services/{SERVICE}/connections/action",
                    self.token
                ),
            ),
            (
                "200",
                "allow: the marker that was pending, now accepted",
                ask(
                    &format!("{tenant}-H 'X-Vpcep-Marker-Id: {UNKNOWN_MARKER}' "),
                    "/hello",
                ),
            ),
            (
                "200",
                "the decision explained, without forwarding (the self check)",
                format!("{curl} {resolve} '{base}/v1/vpcep-authorization?enterprise_id={TENANT}'"),
            ),
        ];
        let mut out = format!(
            "vpcguard demo\n  proxy:    {base} (TLS, self-signed certificate for localhost)\n  \
             upstream: http://{} (built-in echo)\n  admin:    http://{admin} (token {})\n  \
             files:    {}\n\nTry these (each prints the answer's body; add -i for the status line):\n\n",
            self.upstream,
            self.token,
            self.dir().display()
        );
        for (expect, what, line) in steps {
            out.push_str(&format!("# expect {expect}: {what}\n{line}\n\n"));
        }
        out.push_str(&format!(
            "Metrics: curl -s http://{admin}/metrics | grep vpcguard_requests_total\nCtrl-C stops the demo.\n"
        ));
        out
    }
}

/// The demo's config: the example's identity and routing rules, on loopback.
fn write_files(
    dir: &Path,
    port: u16,
    upstream: SocketAddr,
    token: &str,
) -> Result<PathBuf, DemoError> {
    let hash = config::load::sha256_hex(token.as_bytes());
    let cfg = format!(
        r#"# written by `vpcguard demo`
listen:
  address: "127.0.0.1:{port}"
  tls: {{}}
admin:
  address: "127.0.0.1:0"
  tokens:
    - {{ name: demo, hash: "sha256:{hash}", role: write }}
upstream:
  url: "http://{upstream}"
client_ip:
  trusted_proxies: ["127.0.0.1/32"]
vpcep:
  headers: ["x-vpcep-id"]
  marker_headers: ["x-vpcep-marker-id"]
tenant:
  - {{ header: "x-domain-id" }}
  - {{ path: "/v1/{{project}}/**" }}
routes:
  - {{ path: "/**/archive/**", right: download }}
  - {{ methods: [GET, HEAD, OPTIONS], right: view }}
  - {{ right: upload }}
self_check_path: "/v1/vpcep-authorization"
log:
  format: text
  level: warn
  access_log: false
"#
    );
    // Where `tls: {}` looks for certificate files: none there, so the generated one serves (an
    // existing directory keeps the file watch quiet).
    std::fs::create_dir_all(dir.join("tls")).map_err(DemoError::Dir)?;
    let cfg_path = dir.join("vpcguard.yaml");
    std::fs::write(&cfg_path, cfg).map_err(DemoError::Dir)?;
    std::fs::write(dir.join("policy.yaml"), EXAMPLE_POLICY).map_err(DemoError::Dir)?;
    Ok(cfg_path)
}

/// The echo upstream: HTTP/1.1, answers every request with JSON of what it received.
async fn serve_echo(listener: TcpListener) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of descriptors or the like: back off instead of spinning (a pause, not
                // synchronisation).
                tracing::warn!(error = %e, "demo echo upstream: accept failed");
                #[allow(clippy::disallowed_methods)]
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(echo);
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .http1_only()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

async fn echo(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let headers: serde_json::Map<String, serde_json::Value> = req
        .headers()
        .iter()
        .map(|(k, v)| {
            let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
            (k.as_str().to_owned(), serde_json::Value::String(v))
        })
        .collect();
    let body = serde_json::json!({
        "upstream": "vpcguard demo echo",
        "method": req.method().as_str(),
        "path": req.uri().path(),
        "headers": headers,
    });
    let mut resp = Response::new(Full::new(Bytes::from(format!("{body}\n"))));
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}
