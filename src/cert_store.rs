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

/// TLS 1.2 session-id resumption cache entries (rustls' default is 256). A sidecar's clients are a
/// few load balancers and callers with many connections each; 4,096 entries are ~2 MiB at most.
pub const SESSION_CACHE: usize = 4096;

/// The server config: no client auth, ALPN `h2` then `http/1.1` (without ALPN, TLS clients never
/// negotiate HTTP/2), minimum version per `listen.tls.min_version`; resumption by stateless
/// tickets (TLS 1.2 and 1.3) from aws-lc-rs' rotating ticketer, whose keys are random, live only
/// in this process, and rotate every 6 hours (the previous key still decrypts for one period),
/// plus a [`SESSION_CACHE`]-entry session cache for TLS 1.2 clients without tickets. Built once
/// per process, so a reload keeps resumption working.
pub fn server_config(store: Arc<CertStore>, min: TlsVersion) -> Arc<ServerConfig> {
    let versions: &[&'static rustls::SupportedProtocolVersion] = match min {
        TlsVersion::V12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        TlsVersion::V13 => &[&rustls::version::TLS13],
    };
    let mut cfg = ServerConfig::builder_with_protocol_versions(versions)
        .with_no_client_auth()
        .with_cert_resolver(store);
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    cfg.session_storage = rustls::server::ServerSessionMemoryCache::new(SESSION_CACHE);
    match rustls::crypto::aws_lc_rs::Ticketer::new() {
        Ok(t) => cfg.ticketer = t,
        // Only a failing random source gets here: serve without tickets (full handshakes, and
        // TLS 1.3 resumption through the session cache), never fail the listener.
        Err(e) => tracing::warn!(error = %e, "TLS session tickets unavailable"),
    }
    Arc::new(cfg)
}
