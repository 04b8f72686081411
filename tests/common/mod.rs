//! Integration-test harness: a generated PKI (rcgen), a real upstream (hyper, on 127.0.0.1:0),
//! and the real proxy started in-process on already-bound listeners ([`TestProxy`]). No fixed
//! ports, no sleeps: tests wait on events (channels, sockets closing) under a bounding timeout.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

pub mod upstream;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use tokio::net::TcpListener;
use vpcguard::app::{App, Listeners};

/// Install the one crypto provider (idempotent).
pub fn install_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// A test CA and a `localhost` leaf it signed.
pub struct Pki {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

/// Generate a CA and a leaf for `localhost` / 127.0.0.1.
pub fn pki() -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "vpcguard test CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf_params =
        CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    let leaf = leaf_params.signed_by(&leaf_key, &issuer).unwrap();
    Pki {
        ca_pem: ca_cert.pem(),
        cert_pem: leaf.pem(),
        key_pem: leaf_key.serialize_pem(),
    }
}

/// The smallest policy: one tenant with no restrictions.
pub const OPEN_POLICY: &str = "tenants:\n  - enterprise_id: 389efb76b1354e4482eabeed00000000\n";

/// The tenant of [`OPEN_POLICY`].
pub const TENANT: &str = "389efb76b1354e4482eabeed00000000";

/// A proxy running in-process on 127.0.0.1:0, with its config directory.
pub struct TestProxy {
    pub app: App,
    pub dir: tempfile::TempDir,
    pub pki: Option<Pki>,
}

impl TestProxy {
    /// Start with `config` (YAML; `listen.address`/`admin.address` are ignored — the harness binds
    /// 127.0.0.1:0) and `policy` written to `policy.yaml` beside it. `tls` writes a generated
    /// certificate pair to `tls/cert.pem` and `tls/key.pem`.
    pub async fn start(config: &str, policy: &str, tls: bool) -> TestProxy {
        install_provider();
        let dir = tempfile::tempdir().unwrap();
        let pki = tls.then(pki);
        if let Some(p) = &pki {
            std::fs::create_dir_all(dir.path().join("tls")).unwrap();
            std::fs::write(dir.path().join("tls/cert.pem"), &p.cert_pem).unwrap();
            std::fs::write(dir.path().join("tls/key.pem"), &p.key_pem).unwrap();
        }
        let cfg_path = dir.path().join("vpcguard.yaml");
        std::fs::write(&cfg_path, config).unwrap();
        std::fs::write(dir.path().join("policy.yaml"), policy).unwrap();
        let loaded = vpcguard::config::load(&cfg_path).unwrap();
        let listeners = Listeners {
            data: TcpListener::bind("127.0.0.1:0").await.unwrap(),
            admin: TcpListener::bind("127.0.0.1:0").await.unwrap(),
        };
        let app = App::start(loaded, listeners).unwrap();
        TestProxy { app, dir, pki }
    }

    /// The data-plane address.
    pub fn addr(&self) -> SocketAddr {
        self.app.data_addr
    }

    /// `https://localhost:PORT` or `http://127.0.0.1:PORT`.
    pub fn base(&self) -> String {
        if self.pki.is_some() {
            format!("https://localhost:{}", self.addr().port())
        } else {
            format!("http://127.0.0.1:{}", self.addr().port())
        }
    }

    /// The config directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A reqwest client that trusts the test CA and resolves `localhost` to the proxy.
    pub fn client(&self, http2: bool) -> reqwest::Client {
        let mut b = reqwest::Client::builder()
            .resolve("localhost", self.addr())
            .timeout(Duration::from_secs(30))
            .no_proxy();
        if let Some(p) = &self.pki {
            let ca = reqwest::Certificate::from_pem(p.ca_pem.as_bytes()).unwrap();
            b = b.tls_certs_only([ca]);
        }
        b = if http2 {
            if self.pki.is_some() {
                b.http2_adaptive_window(true)
            } else {
                b.http2_prior_knowledge()
            }
        } else {
            b.http1_only()
        };
        b.build().unwrap()
    }

    /// GET an admin path, returning status and body.
    pub async fn admin_get(&self, path: &str) -> (u16, String) {
        let url = format!("http://{}{}", self.app.admin_addr, path);
        let r = reqwest::Client::new().get(url).send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }
}

/// The minimal config pointing at `upstream`, plain HTTP, with `extra` YAML appended.
pub fn config_plain(upstream: SocketAddr, extra: &str) -> String {
    format!("upstream:\n  url: \"http://{upstream}\"\n{extra}")
}

/// The minimal config pointing at `upstream`, with TLS from `tls/`, and `extra` YAML appended.
pub fn config_tls(upstream: SocketAddr, extra: &str) -> String {
    format!(
        "listen:\n  tls: {{ cert: tls/cert.pem, key: tls/key.pem }}\nupstream:\n  url: \"http://{upstream}\"\n{extra}"
    )
}

/// Bound an await in a test: fail instead of hanging.
pub async fn within<F: std::future::Future>(secs: u64, f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(secs), f)
        .await
        .expect("timed out")
}

/// Parse a JSON error body.
pub fn error_code(body: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    v["error_code"].as_str().unwrap().to_owned()
}
