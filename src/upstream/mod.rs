//! The upstream side: the pooled clients (a [`H1Pool`] for a plain `http://` HTTP/1.1 upstream, the
//! common sidecar case; an [`H2cClient`] for `h2c://`; both for `https://`, where each TLS
//! connection's ALPN picks the client; hyper-util's client for upgrades), request URI rewriting, the
//! time-to-response-headers deadline, and the classification of upstream failures into the
//! documented 502/504 codes (docs/contract.md §5, §6).
//!
//! The outbound side of the data path: `proxy::http` hands it a request whose headers are already
//! rewritten; it returns the upstream's response head or a [`ForwardError`].
//!
//! | file | owns |
//! |---|---|
//! | `mod.rs` | [`Forwarder`]: which client, URI rewriting, the response deadline, error classes |
//! | `dial.rs` | TCP and TLS connects (ALPN h2 + http/1.1), bounded by `connect_timeout` |
//! | `pool.rs` | the HTTP/1.1 connection pool (`http://`, and `https://` connections on http/1.1) |
//! | `h2c.rs` | the one multiplexed HTTP/2 connection (`h2c://`, `https://` on h2), `:authority` per request |
//! | `deadline.rs` | the response deadline, counted from the end of the request body |
//! | `limit.rs` | `upstream.max_connections` for every client, and the connection gauges |
//!
//! Does network I/O (through the clients). Header policy lives in `proxy::headers`.

mod deadline;
mod dial;
mod h2c;
mod limit;
mod pool;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use http::uri::{PathAndQuery, Uri};
use http::{Request, Response, Version};
use http_body_util::BodyExt;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio_util::either::Either;

use crate::body::{self, BodyTooLarge, BoxError, ProxyBody, is_caused_by};
use crate::body::{ExchangeIdle, StreamIdle};
use crate::config::model::{Upstream, UpstreamProtocol};
use crate::error::ErrorCode;
use crate::metrics::{Metrics, StreamSide, UpstreamErrorKind};
use deadline::{Expired, ResponseClock};
use dial::{Dialer, Handoff};
use h2c::{H2cClient, H2cError};
use limit::{ConnLimit, LimitedConnector, Overflow};
use pool::{H1Pool, PoolError};

/// Why forwarding failed, each with its documented code.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// 502 `VG.00050201`: connection refused, unroutable, connect timeout, TLS to upstream failed.
    #[error("upstream connect failed: {0}")]
    Connect(#[source] BoxError),
    /// 504 `VG.00050401`: no response headers within `upstream.response_timeout` of the end of
    /// the request body.
    #[error("upstream response timeout after {0:?}")]
    Timeout(Duration),
    /// 502 `VG.00050202`: the upstream answered with something that is not HTTP, or closed early.
    #[error("upstream protocol error: {0}")]
    Protocol(#[source] BoxError),
    /// 413 `VG.00041301`: the client's body crossed `limits.max_body_bytes` while streaming.
    #[error("request body exceeds max_body_bytes")]
    BodyTooLarge,
    /// 503 `VG.00050302`: `upstream.max_connections` open and none came free within
    /// `upstream.connect_timeout`.
    #[error("{0}")]
    Overflow(#[source] Overflow),
    /// Nothing moved on the exchange for `limits.stream_idle_timeout` before the response head:
    /// 408 `VG.00040801` when the client went silent (its request body stalled), 504
    /// `VG.00050401` when the upstream did.
    #[error("{0}")]
    StreamIdle(#[source] StreamIdle),
}

impl ForwardError {
    /// The documented code this failure is answered with.
    pub fn code(&self) -> ErrorCode {
        match self {
            ForwardError::Connect(_) => ErrorCode::UpstreamUnreachable,
            ForwardError::Timeout(_) => ErrorCode::UpstreamTimeout,
            ForwardError::Protocol(_) => ErrorCode::UpstreamInvalid,
            ForwardError::BodyTooLarge => ErrorCode::BodyTooLarge,
            ForwardError::Overflow(_) => ErrorCode::UpstreamBusy,
            ForwardError::StreamIdle(e) => match e.side {
                StreamSide::Client => ErrorCode::RequestTimeout,
                StreamSide::Upstream => ErrorCode::UpstreamTimeout,
            },
        }
    }

    /// The `upstream_errors_total{kind}` label, when the upstream is to blame.
    pub fn kind(&self) -> Option<UpstreamErrorKind> {
        match self {
            ForwardError::Connect(_) => Some(UpstreamErrorKind::Connect),
            ForwardError::Timeout(_) => Some(UpstreamErrorKind::Timeout),
            ForwardError::Protocol(_) => Some(UpstreamErrorKind::Protocol),
            ForwardError::StreamIdle(e) if e.side == StreamSide::Upstream => {
                Some(UpstreamErrorKind::Timeout)
            }
            ForwardError::BodyTooLarge
            | ForwardError::Overflow(_)
            | ForwardError::StreamIdle(_) => None,
        }
    }

    /// The access log's `error` value.
    pub fn reason(&self) -> &'static str {
        match self {
            ForwardError::BodyTooLarge => "body_too_large",
            ForwardError::Overflow(_) => "upstream_overflow",
            ForwardError::StreamIdle(e) => match e.side {
                StreamSide::Client => "client_idle",
                StreamSide::Upstream => "upstream_idle",
            },
            e => e.kind().map_or("upstream", UpstreamErrorKind::as_str),
        }
    }
}

/// The largest read buffer of an HTTP/1.1 upstream connection (hyper's default is about 400 KiB):
/// the largest response head (as HAProxy's default `bufsize`), and the largest body chunk one
/// response holds while its client is not reading (docs/contract.md §6, bounded buffers).
const READ_BUF: usize = 16 * 1024;
/// What an HTTP/2 upstream may send on one stream, and over its connection, before the proxy has
/// passed it on (hyper's client defaults are 2 MiB and 5 MiB). The upstream is local to the
/// sidecar, so small windows cost no throughput.
const H2_STREAM_WINDOW: u32 = 256 * 1024;
const H2_CONN_WINDOW: u32 = 1024 * 1024;

type HttpClient = Client<LimitedConnector<HttpsConnector<HttpConnector>>, ProxyBody>;

/// Sends requests to the configured upstream. Cheap to clone (the pools are shared).
#[derive(Clone, Debug)]
pub struct Forwarder {
    /// hyper-util's client: upgrades (over HTTP/1.1), for every scheme.
    client: HttpClient,
    /// `http://` upstreams, and `https://` connections on which ALPN chose http/1.1 (everything
    /// but upgrades).
    pool: Option<Arc<H1Pool>>,
    /// `h2c://` upstreams, and the `https://` connection on which ALPN chose h2 (everything but
    /// upgrades).
    h2c: Option<Arc<H2cClient>>,
    /// `https://`: which client the next request tries first, the one whose last new connection
    /// the upstream's ALPN chose (HTTP/1.1 until a connection says h2).
    prefer_h2: Arc<AtomicBool>,
    /// `upstream.max_connections`, shared by the pool and both clients.
    limit: Arc<ConnLimit>,
    upstream: Arc<Upstream>,
}

impl Forwarder {
    /// Build the clients for `upstream`, whose connections together stay within
    /// `upstream.max_connections` and are counted in `metrics`. HTTPS upstreams are verified
    /// under `tls` (`upstream.tls`, else the webpki roots; the config load builds it).
    pub fn new(
        upstream: &Upstream,
        tls: Option<Arc<rustls::ClientConfig>>,
        metrics: &Metrics,
    ) -> Self {
        let limit = Arc::new(ConnLimit::new(
            upstream.max_connections,
            upstream.connect_timeout,
            metrics,
        ));
        let build = || {
            let mut http = HttpConnector::new();
            http.enforce_http(false);
            http.set_nodelay(true);
            http.set_connect_timeout(Some(upstream.connect_timeout));
            // Upgrades are HTTP/1.1 only: no h2 in this client's ALPN.
            let builder = hyper_rustls::HttpsConnectorBuilder::new();
            let builder = match &tls {
                Some(config) => builder.with_tls_config(config.as_ref().clone()),
                None => builder.with_webpki_roots(),
            };
            let https = builder.https_or_http().enable_http1().wrap_connector(http);
            let mut b = Client::builder(TokioExecutor::new());
            b.pool_idle_timeout(upstream.idle_timeout)
                .pool_timer(TokioTimer::new())
                .timer(TokioTimer::new())
                .http1_max_buf_size(READ_BUF)
                .http2_initial_stream_window_size(H2_STREAM_WINDOW)
                .http2_initial_connection_window_size(H2_CONN_WINDOW);
            b.build(LimitedConnector::new(https, limit.clone()))
        };
        let dial = match (upstream.protocol, &tls) {
            (UpstreamProtocol::Https, Some(config)) => {
                Dialer::tls(&upstream.authority, upstream.connect_timeout, config)
            }
            (UpstreamProtocol::Https, None) => None,
            _ => Some(Dialer::plain(&upstream.authority, upstream.connect_timeout)),
        };
        let h2 = matches!(
            upstream.protocol,
            UpstreamProtocol::H2c | UpstreamProtocol::Https
        );
        let h2c = dial.clone().filter(|_| h2).map(|dial| {
            Arc::new(H2cClient::new(
                upstream.authority.clone(),
                dial,
                upstream.connect_timeout,
                upstream.idle_timeout,
                (H2_STREAM_WINDOW, H2_CONN_WINDOW),
                limit.clone(),
            ))
        });
        let h1 = matches!(
            upstream.protocol,
            UpstreamProtocol::Http1 | UpstreamProtocol::Https
        );
        let pool = dial.filter(|_| h1).map(|dial| {
            Arc::new(H1Pool::new(
                upstream.authority.clone(),
                dial,
                upstream.idle_timeout,
                limit.clone(),
            ))
        });
        Self {
            client: build(),
            pool,
            h2c,
            prefer_h2: Arc::new(AtomicBool::new(false)),
            limit,
            upstream: Arc::new(upstream.clone()),
        }
    }

    /// The upstream this forwarder talks to.
    pub fn upstream(&self) -> &Upstream {
        &self.upstream
    }

    /// Send `req` (headers already rewritten; its body under `exchange`'s idle timer) and wait for
    /// the response head, at most `response_timeout` from the end of the request body, and while
    /// something moves on the exchange (`deadline.rs`). A failure caused by the request body's
    /// [`BodyTooLarge`] (found in the client error's source chain) is
    /// [`ForwardError::BodyTooLarge`], and one after the exchange went idle is
    /// [`ForwardError::StreamIdle`]: not the upstream's fault, or not only.
    ///
    /// # Performance
    /// Reuses pooled connections; one URI rebuild per request.
    pub async fn forward(
        &self,
        req: Request<ProxyBody>,
        upgrade: bool,
        exchange: &Arc<ExchangeIdle>,
    ) -> Result<Response<ProxyBody>, ForwardError> {
        let (mut req, body_done) = split_end(req);
        let limit = self.upstream.response_timeout;
        let mut clock = ResponseClock::new(limit, body_done, exchange.clone());
        // Only the HTTP/1.1 pool's path is inline: the others are boxed, so that the common
        // request future does not carry (and copy on every move) their ~4.5 KB of state
        // (`-Zprint-type-sizes`, BENCHMARKS.md).
        if !upgrade {
            match (&self.pool, &self.h2c) {
                (Some(pool), Some(h2)) => {
                    return Box::pin(self.mixed(pool, h2, req, &mut clock, exchange)).await;
                }
                (Some(pool), None) => {
                    return match pool.send(req, &mut clock, None).await {
                        Err(PoolError::Negotiated(_)) => Err(negotiated()),
                        r => r.map_err(|e| pool_error(e, exchange)),
                    };
                }
                (None, Some(h2)) => {
                    return match Box::pin(via_h2(h2, req, &mut clock, exchange)).await {
                        Err(Either::Right(_)) => Err(negotiated()),
                        Err(Either::Left(e)) => Err(e),
                        Ok(resp) => Ok(resp),
                    };
                }
                (None, None) => {}
            }
        }
        let pq = req
            .uri()
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        let mut parts = http::uri::Parts::default();
        parts.scheme = Some(self.upstream.scheme.clone());
        parts.authority = Some(self.upstream.authority.clone());
        parts.path_and_query = Some(pq);
        if let Ok(uri) = Uri::from_parts(parts) {
            *req.uri_mut() = uri;
        }
        // The legacy client refuses HTTP/2-versioned requests on HTTP/1 connections; on h2
        // connections it sends HTTP/1.1-versioned requests as HTTP/2 (docs/design.md §7.4).
        *req.version_mut() = Version::HTTP_11;
        let (req, body_cause) = keep_body_cause(req);
        let result = Box::pin(clock.bound(self.client.request(req))).await?;
        match result {
            Ok(resp) => Ok(resp.map(crate::body::boxed)),
            Err(_) if let Some(idle) = exchange.expired() => Err(ForwardError::StreamIdle(idle)),
            Err(e) if is_caused_by::<BodyTooLarge>(&e) || body_cause.too_large() => {
                Err(ForwardError::BodyTooLarge)
            }
            Err(e) if is_caused_by::<Overflow>(&e) => {
                Err(ForwardError::Overflow(self.limit.overflow()))
            }
            Err(e) if e.is_connect() => Err(ForwardError::Connect(Box::new(e))),
            Err(e) => Err(ForwardError::Protocol(Box::new(e))),
        }
    }
}

impl Forwarder {
    /// An `https://` exchange: on the client the upstream's ALPN chose last, and when a new
    /// connection negotiates the other protocol, on that connection through the other client.
    async fn mixed(
        &self,
        pool: &Arc<H1Pool>,
        h2: &Arc<H2cClient>,
        req: Request<ProxyBody>,
        clock: &mut ResponseClock,
        exchange: &Arc<ExchangeIdle>,
    ) -> Result<Response<ProxyBody>, ForwardError> {
        if self.prefer_h2.load(Ordering::Relaxed) {
            let h = match via_h2(h2, req, clock, exchange).await {
                Ok(resp) => return Ok(resp),
                Err(Either::Left(e)) => return Err(e),
                Err(Either::Right(h)) => h,
            };
            self.prefer_h2.store(false, Ordering::Relaxed);
            let Handoff { io, permit, req } = *h;
            let req = req.ok_or_else(negotiated)?;
            let conn = pool
                .adopt(io, permit)
                .await
                .map_err(|e| pool_error(e, exchange))?;
            return match pool.send(req, clock, Some(conn)).await {
                Err(PoolError::Negotiated(_)) => Err(negotiated()),
                r => r.map_err(|e| pool_error(e, exchange)),
            };
        }
        let h = match pool.send(req, clock, None).await {
            Err(PoolError::Negotiated(h)) => h,
            r => return r.map_err(|e| pool_error(e, exchange)),
        };
        self.prefer_h2.store(true, Ordering::Relaxed);
        let Handoff { io, permit, req } = *h;
        let req = req.ok_or_else(negotiated)?;
        if let Err(e) = h2.adopt(io, permit).await {
            return Err(h2_error(e, exchange, &BodyCause::default()));
        }
        match via_h2(h2, req, clock, exchange).await {
            Ok(resp) => Ok(resp),
            Err(Either::Left(e)) => Err(e),
            Err(Either::Right(_)) => Err(negotiated()),
        }
    }
}

/// One exchange on the HTTP/2 client, bounded by `clock`; a new TLS connection that negotiated
/// http/1.1 comes back for the pool.
async fn via_h2(
    h2: &H2cClient,
    req: Request<ProxyBody>,
    clock: &mut ResponseClock,
    exchange: &Arc<ExchangeIdle>,
) -> Result<Response<ProxyBody>, Either<ForwardError, Box<Handoff>>> {
    let (req, body_cause) = keep_body_cause(req);
    match clock
        .bound(h2.send(req))
        .await
        .map_err(|e| Either::Left(e.into()))?
    {
        Ok(resp) => Ok(resp),
        Err(H2cError::Negotiated(h)) => Err(Either::Right(h)),
        Err(e) => Err(Either::Left(h2_error(e, exchange, &body_cause))),
    }
}

/// The [`ForwardError`] of a failed pool exchange.
fn pool_error(e: PoolError, exchange: &ExchangeIdle) -> ForwardError {
    match e {
        _ if let Some(idle) = exchange.expired() => ForwardError::StreamIdle(idle),
        PoolError::Request(e) if is_caused_by::<BodyTooLarge>(&e) => ForwardError::BodyTooLarge,
        PoolError::Connect(e) => ForwardError::Connect(e),
        PoolError::Request(e) => ForwardError::Protocol(Box::new(e)),
        PoolError::Expired(e) => e.into(),
        PoolError::Overflow(e) => ForwardError::Overflow(e),
        PoolError::Negotiated(_) => negotiated(),
    }
}

/// The [`ForwardError`] of a failed HTTP/2 exchange.
fn h2_error(e: H2cError, exchange: &ExchangeIdle, body_cause: &BodyCause) -> ForwardError {
    match e {
        _ if let Some(idle) = exchange.expired() => ForwardError::StreamIdle(idle),
        H2cError::Connect(e) => ForwardError::Connect(e),
        H2cError::Overflow(e) => ForwardError::Overflow(e),
        H2cError::Request(e) if is_caused_by::<BodyTooLarge>(&e) || body_cause.too_large() => {
            ForwardError::BodyTooLarge
        }
        H2cError::Request(e) => ForwardError::Protocol(Box::new(e)),
        H2cError::Negotiated(_) => negotiated(),
    }
}

/// A connection handed over twice (the other client's new connection negotiated the first
/// protocol again): the upstream changes its ALPN answer between connections; give up on it.
fn negotiated() -> ForwardError {
    ForwardError::Connect("the upstream's ALPN answer changed between connections".into())
}

/// Whether the request body failed with [`BodyTooLarge`], as seen by the body itself.
///
/// Why: hyper's HTTP/2 client only logs a request body's error ("client request body error") and
/// answers the response future with the stream reset it sent, so the cause is not in the client
/// error's source chain there; HTTP/1 connections do carry it.
#[derive(Clone, Debug, Default)]
struct BodyCause(Arc<std::sync::atomic::AtomicBool>);

impl BodyCause {
    fn too_large(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::Acquire)
    }
}

/// `req` with a body that notes, in the returned [`BodyCause`], an error caused by
/// [`BodyTooLarge`] on its way to the client.
fn keep_body_cause(req: Request<ProxyBody>) -> (Request<ProxyBody>, BodyCause) {
    let cause = BodyCause::default();
    let seen = cause.clone();
    let req = req.map(|b| {
        b.map_err(move |e: BoxError| {
            if is_caused_by::<BodyTooLarge>(&*e) {
                seen.0.store(true, std::sync::atomic::Ordering::Release);
            }
            e
        })
        .boxed()
    });
    (req, cause)
}

/// `req` with a body that tells the returned receiver when it is over.
fn split_end(req: Request<ProxyBody>) -> (Request<ProxyBody>, tokio::sync::oneshot::Receiver<()>) {
    let (parts, b) = req.into_parts();
    let (b, done) = body::signal_end(b);
    (Request::from_parts(parts, b.boxed()), done)
}

impl From<Expired> for ForwardError {
    fn from(e: Expired) -> Self {
        match e {
            Expired::Response(limit) => ForwardError::Timeout(limit),
            Expired::Idle(idle) => ForwardError::StreamIdle(idle),
        }
    }
}
