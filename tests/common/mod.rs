//! Integration-test harness: a generated PKI (rcgen), a real upstream (hyper, on 127.0.0.1:0),
//! and the real proxy started in-process on already-bound listeners ([`TestProxy`]). No fixed
//! ports, no sleeps: tests wait on events (channels, sockets closing) under a bounding timeout.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

pub mod admin;
#[cfg(feature = "etcd")]
pub mod etcd;
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
    ca_params: rcgen::CertificateParams,
    ca_key_pem: String,
}

impl Pki {
    /// Another `localhost` leaf from the same CA, with `serial`: (cert PEM, key PEM, cert DER).
    pub fn leaf(&self, serial: u64) -> (String, String, Vec<u8>) {
        let ca_key = rcgen::KeyPair::from_pem(&self.ca_key_pem).unwrap();
        let issuer = rcgen::Issuer::new(self.ca_params.clone(), ca_key);
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params =
            rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .unwrap();
        params.serial_number = Some(rcgen::SerialNumber::from(serial));
        let cert = params.signed_by(&key, &issuer).unwrap();
        (cert.pem(), key.serialize_pem(), cert.der().to_vec())
    }
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
    let ca_key_pem = ca_key.serialize_pem();
    let issuer = rcgen::Issuer::new(ca_params.clone(), ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf_params =
        CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    let leaf = leaf_params.signed_by(&leaf_key, &issuer).unwrap();
    Pki {
        ca_pem: ca_cert.pem(),
        cert_pem: leaf.pem(),
        key_pem: leaf_key.serialize_pem(),
        ca_params,
        ca_key_pem,
    }
}

/// The smallest policy: one tenant with no restrictions.
pub const OPEN_POLICY: &str = "tenants:\n  - enterprise_id: 389efb76b1354e4482eabeed00000000\n";

/// The tenant of [`OPEN_POLICY`].
pub const TENANT: &str = "389efb76b1354e4482eabeed00000000";

/// A second tenant, for tests that need two.
pub const TENANT_B: &str = "tenant-b";

/// A `tenant:` config block that puts every request in [`TENANT`].
pub const STATIC_TENANT: &str = "tenant:\n  - static: \"389efb76b1354e4482eabeed00000000\"\n";

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
        Self::start_with(config, policy, tls, |_| {}).await
    }

    /// [`TestProxy::start`], calling `prepare` on the directory after the files are written and
    /// before they are loaded.
    pub async fn start_with(
        config: &str,
        policy: &str,
        tls: bool,
        prepare: impl FnOnce(&std::path::Path),
    ) -> TestProxy {
        Self::start_full(
            config,
            policy,
            tls,
            prepare,
            vpcguard::watch::WatchMode::Events,
        )
        .await
    }

    /// [`TestProxy::start`] with an explicit file-watch mode.
    pub async fn start_watching(
        config: &str,
        policy: &str,
        mode: vpcguard::watch::WatchMode,
    ) -> TestProxy {
        Self::start_full(config, policy, false, |_| {}, mode).await
    }

    async fn start_full(
        config: &str,
        policy: &str,
        tls: bool,
        prepare: impl FnOnce(&std::path::Path),
        mode: vpcguard::watch::WatchMode,
    ) -> TestProxy {
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
        prepare(dir.path());
        let loaded = vpcguard::config::load(&cfg_path).unwrap();
        let listeners = Listeners {
            data: TcpListener::bind("127.0.0.1:0").await.unwrap(),
            admin: TcpListener::bind("127.0.0.1:0").await.unwrap(),
        };
        let app = App::start_with(loaded, listeners, cfg_path, mode).unwrap();
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

    /// GET an admin path with the read token, returning status and body.
    pub async fn admin_get(&self, path: &str) -> (u16, String) {
        self.admin(reqwest::Method::GET, path, Some(READ_TOKEN), None)
            .await
    }

    /// Call the admin API: `method path` with `token` (if any) and a JSON `body` (if any).
    pub async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<serde_json::Value>,
    ) -> (u16, String) {
        let url = format!("http://{}{}", self.app.admin_addr, path);
        let mut req = reqwest::Client::new().request(method, url);
        if let Some(t) = token {
            req = req.header("X-Auth-Token", t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    /// Wait (bounded) until the published generation is at least `generation`; returns it.
    pub async fn wait_generation(&self, generation: u64) -> u64 {
        let mut rx = self.app.shared.subscribe();
        within(30, rx.wait_for(|g| *g >= generation))
            .await
            .map(|g| *g)
            .unwrap()
    }
}

/// The admin token with the `write` role in every harness config.
pub const WRITE_TOKEN: &str = "test-write-token";
/// The admin token with the `read` role in every harness config.
pub const READ_TOKEN: &str = "test-read-token";

/// The `admin:` block with [`WRITE_TOKEN`] and [`READ_TOKEN`], unless `extra` has its own.
pub fn admin_block(extra: &str) -> String {
    if extra.contains("admin:") {
        return String::new();
    }
    let h = |t: &str| {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(t.as_bytes()))
    };
    format!(
        "admin:\n  tokens:\n    - {{ name: w, hash: \"sha256:{}\", role: write }}\n    - {{ name: r, hash: \"sha256:{}\", role: read }}\n",
        h(WRITE_TOKEN),
        h(READ_TOKEN)
    )
}

/// The minimal config pointing at `upstream`, plain HTTP, with `extra` YAML appended.
pub fn config_plain(upstream: SocketAddr, extra: &str) -> String {
    format!(
        "upstream:\n  url: \"http://{upstream}\"\n{}{extra}",
        admin_block(extra)
    )
}

/// The minimal config pointing at `upstream`, with TLS from `tls/`, and `extra` YAML appended.
pub fn config_tls(upstream: SocketAddr, extra: &str) -> String {
    format!(
        "listen:\n  tls: {{ cert: tls/cert.pem, key: tls/key.pem }}\nupstream:\n  url: \"http://{upstream}\"\n{}{extra}",
        admin_block(extra)
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

/// Read one HTTP/1.1 response with a `Content-Length` body from a raw connection.
pub async fn read_response(s: &mut tokio::net::TcpStream) -> (u16, String) {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        let n = s.read(&mut byte).await.unwrap();
        assert_eq!(
            n,
            1,
            "connection closed; got {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.push(byte[0]);
    }
    let head = String::from_utf8(buf).unwrap();
    read_response_body(s, &head).await
}

/// The status of `head` (already read from `s`) and its `Content-Length` body, read from `s`.
pub async fn read_response_body(s: &mut tokio::net::TcpStream, head: &str) -> (u16, String) {
    use tokio::io::AsyncReadExt;
    let status: u16 = head[9..12].parse().unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().unwrap())
        })
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).await.unwrap();
    (status, String::from_utf8(body).unwrap())
}
