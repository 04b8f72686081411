//! The served certificate: a rustls certificate resolver over an `ArcSwap`, so a reload swaps
//! the key for new handshakes without touching the acceptor, and the rustls `ServerConfig` with
//! ALPN `h2`/`http/1.1`.
//!
//! No I/O: keys arrive already loaded (`config::certs`); the handshake is driven by `proxy::conn`.

use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::ServerConfig;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::config::model::TlsVersion;

/// Serves whatever key is current; [`CertStore::store`] swaps it for new handshakes only.
#[derive(Debug)]
pub struct CertStore {
    current: ArcSwap<CertifiedKey>,
}

impl CertStore {
    /// A store serving `key`.
    pub fn new(key: Arc<CertifiedKey>) -> Self {
        Self {
            current: ArcSwap::new(key),
        }
    }

    /// Replace the served key (existing connections keep theirs).
    pub fn store(&self, key: Arc<CertifiedKey>) {
        self.current.store(key);
    }

    /// The key new handshakes get.
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current.load_full()
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// The server config: no client auth, ALPN `h2` then `http/1.1` (without ALPN, TLS clients never
/// negotiate HTTP/2), minimum version per `listen.tls.min_version`.
pub fn server_config(store: Arc<CertStore>, min: TlsVersion) -> Arc<ServerConfig> {
    let versions: &[&'static rustls::SupportedProtocolVersion] = match min {
        TlsVersion::V12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        TlsVersion::V13 => &[&rustls::version::TLS13],
    };
    let mut cfg = ServerConfig::builder_with_protocol_versions(versions)
        .with_no_client_auth()
        .with_cert_resolver(store);
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Arc::new(cfg)
}
