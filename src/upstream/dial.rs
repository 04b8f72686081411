//! Opening a connection to the upstream: TCP, and for `https://` a TLS handshake whose ALPN
//! offers h2 and http/1.1 ([`Dialer`]). The connect and the handshake together are bounded by
//! `upstream.connect_timeout`. The pool (`pool.rs`) and the HTTP/2 client (`h2c.rs`) both dial
//! through it, and hand a TLS connection that negotiated the other protocol to each other
//! (`mod.rs`), the way Envoy's mixed HTTP/1.1 + HTTP/2 pool does.
//!
//! Does network I/O.

use std::sync::Arc;
use std::time::Duration;

use http::Request;
use http::uri::Authority;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_util::either::Either;

use crate::body::{BoxError, ProxyBody};

/// An upstream connection: plain TCP, or TLS over it.
pub type Io = Either<TcpStream, Box<TlsStream<TcpStream>>>;

/// The application protocol a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Http1,
    Http2,
}

/// A new TLS connection that negotiated the protocol of the other client, on its way there
/// with its `max_connections` permit and the request that dialled it.
pub struct Handoff {
    pub io: Io,
    pub permit: OwnedSemaphorePermit,
    /// Filled in by the client's `send` on the way out.
    pub req: Option<Request<ProxyBody>>,
}

impl std::fmt::Debug for Handoff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handoff").finish_non_exhaustive()
    }
}

/// Dials the one configured upstream.
#[derive(Clone)]
pub struct Dialer {
    /// `host:port` to connect to.
    addr: String,
    connect_timeout: Duration,
    tls: Option<(TlsConnector, ServerName<'static>)>,
}

impl std::fmt::Debug for Dialer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dialer")
            .field("addr", &self.addr)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl Dialer {
    /// Plain TCP to `authority` (port 80 when it has none).
    pub fn plain(authority: &Authority, connect_timeout: Duration) -> Self {
        Self {
            addr: addr(authority, 80),
            connect_timeout,
            tls: None,
        }
    }

    /// TLS to `authority` (port 443 when it has none), verified as `authority`'s host under
    /// `config`, offering h2 and http/1.1. `None` when the host is not a valid server name (the
    /// URL parser lets few such through).
    pub fn tls(
        authority: &Authority,
        connect_timeout: Duration,
        config: &rustls::ClientConfig,
    ) -> Option<Self> {
        let host = authority.host();
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let name = ServerName::try_from(host.to_owned()).ok()?;
        let mut config = config.clone();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Some(Self {
            addr: addr(authority, 443),
            connect_timeout,
            tls: Some((TlsConnector::from(Arc::new(config)), name)),
        })
    }

    /// Whether connections are TLS (then ALPN decides their protocol).
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Connect (and shake hands), within `connect_timeout`. The protocol is what ALPN chose:
    /// HTTP/1.1 without TLS, without ALPN, or when the server picked http/1.1.
    pub async fn dial(&self) -> Result<(Io, Proto), BoxError> {
        let addr = self.addr.as_str();
        let timeout = self.connect_timeout;
        let open = async {
            let tcp = TcpStream::connect(addr).await?;
            let _ = tcp.set_nodelay(true);
            let Some((connector, name)) = &self.tls else {
                return Ok::<_, BoxError>((Either::Left(tcp), Proto::Http1));
            };
            let tls = connector.connect(name.clone(), tcp).await?;
            let proto = match tls.get_ref().1.alpn_protocol() {
                Some(b"h2") => Proto::Http2,
                _ => Proto::Http1,
            };
            Ok((Either::Right(Box::new(tls)), proto))
        };
        match tokio::time::timeout(timeout, open).await {
            Ok(r) => r,
            Err(_) => Err(format!("connect to {addr} timed out after {timeout:?}").into()),
        }
    }
}

fn addr(authority: &Authority, default_port: u16) -> String {
    format!(
        "{}:{}",
        authority.host(),
        authority.port_u16().unwrap_or(default_port)
    )
}
