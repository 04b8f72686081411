//! The HTTP/2 client: one multiplexed connection to the upstream (`h2c://` with prior knowledge,
//! or an `https://` connection whose ALPN chose h2), dialled on first use and again after it
//! closes, closed after `upstream.idle_timeout` with no exchange on it.
//!
//! Why not hyper-util's pooled client (which served h2c before): it takes the connection target
//! and the pool key from the request URI, and HTTP/2 takes `:authority` from the same URI. With
//! `upstream.preserve_host` the `:authority` must be the client's host (docs/contract.md §2), so
//! with hyper-util every distinct client `Host` would open and keep its own upstream connection
//! (a client choosing hosts could fill `upstream.max_connections`). Here the target is fixed and
//! `:authority` is per request.
//!
//! Does network I/O: the connect (`dial.rs`) and the connection task.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Response, Uri, Version, header::HOST};
use http_body_util::BodyExt;
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::sync::{Mutex, OwnedSemaphorePermit};

use super::dial::{Dialer, Handoff, Io, Proto};
use super::limit::{ConnLimit, Overflow};
use crate::body::{BoxError, ProxyBody};

/// Why an h2c exchange failed; `forward` maps it to a [`super::ForwardError`].
#[derive(Debug)]
pub enum H2cError {
    /// No connection could be made (refused, timeout, handshake).
    Connect(BoxError),
    /// `upstream.max_connections` open, none free within `connect_timeout`.
    Overflow(Overflow),
    /// The exchange failed on an open connection.
    Request(hyper::Error),
    /// A new TLS connection negotiated http/1.1: the pool is to carry it, and the request.
    Negotiated(Box<Handoff>),
}

/// The h2c client of one forwarder (one configuration generation).
#[derive(Debug)]
pub struct H2cClient {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// The configured upstream authority: the dial target, and `:authority` without
    /// `preserve_host`.
    authority: Authority,
    /// `http` for h2c, `https` over TLS.
    scheme: Scheme,
    dial: Dialer,
    connect_timeout: Duration,
    idle_timeout: Duration,
    stream_window: u32,
    conn_window: u32,
    limit: Arc<ConnLimit>,
    /// The open connection, if any. Taken under this lock: a request and the idle close never
    /// race (the close empties it before dropping the connection).
    current: Mutex<Option<Open>>,
}

/// An open connection: its sender and its exchange count.
#[derive(Debug)]
struct Open {
    tx: http2::SendRequest<ProxyBody>,
    use_: Arc<Use>,
}

/// Exchanges in flight on a connection, and when the last one started or ended.
#[derive(Debug)]
struct Use {
    in_flight: AtomicUsize,
    last: std::sync::Mutex<Instant>,
}

impl Use {
    fn touch(&self) {
        if let Ok(mut t) = self.last.lock() {
            *t = Instant::now();
        }
    }

    fn idle_for(&self) -> Duration {
        self.last.lock().map(|t| t.elapsed()).unwrap_or_default()
    }
}

/// One exchange on a connection: counted until the response body is dropped.
struct InFlight(Arc<Use>);

impl InFlight {
    fn new(u: Arc<Use>) -> Self {
        u.in_flight.fetch_add(1, Ordering::AcqRel);
        u.touch();
        Self(u)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl H2cClient {
    /// A client for `authority` (the default `:authority`), connecting through `dial`, whose
    /// one connection counts against `limit`.
    pub fn new(
        authority: Authority,
        dial: Dialer,
        connect_timeout: Duration,
        idle_timeout: Duration,
        windows: (u32, u32),
        limit: Arc<ConnLimit>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                authority,
                scheme: if dial.is_tls() {
                    Scheme::HTTPS
                } else {
                    Scheme::HTTP
                },
                dial,
                connect_timeout,
                idle_timeout,
                stream_window: windows.0,
                conn_window: windows.1,
                limit,
                current: Mutex::new(None),
            }),
        }
    }

    /// Send `req` with `:authority` taken from its `Host` header (which is removed: HTTP/2
    /// carries the host in `:authority`, RFC 9113 §8.3.1), or the upstream's when it has none,
    /// and wait for the response head (the caller bounds the wait). A new TLS connection that
    /// negotiates http/1.1 comes back, with `req` untouched, as [`H2cError::Negotiated`].
    pub async fn send(&self, mut req: Request<ProxyBody>) -> Result<Response<ProxyBody>, H2cError> {
        let (mut tx, in_flight) = match self.sender().await {
            Ok(s) => s,
            Err(H2cError::Negotiated(mut h)) => {
                h.req = Some(req);
                return Err(H2cError::Negotiated(h));
            }
            Err(e) => return Err(e),
        };
        let pq = req
            .uri()
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        let authority = req
            .headers_mut()
            .remove(HOST)
            .and_then(|h| Authority::try_from(h.as_bytes()).ok())
            .unwrap_or_else(|| self.inner.authority.clone());
        let mut parts = http::uri::Parts::default();
        parts.scheme = Some(self.inner.scheme.clone());
        parts.authority = Some(authority);
        parts.path_and_query = Some(pq);
        if let Ok(uri) = Uri::from_parts(parts) {
            *req.uri_mut() = uri;
        }
        *req.version_mut() = Version::HTTP_2;
        let resp = tx.send_request(req).await.map_err(H2cError::Request)?;
        // The exchange is over when the response body is dropped (ended, cut or abandoned).
        Ok(resp.map(|b| {
            crate::body::boxed(b.map_frame(move |f| {
                let _counted = &in_flight;
                f
            }))
        }))
    }

    /// The open connection's sender (with this exchange counted), dialling one if there is none.
    async fn sender(&self) -> Result<(http2::SendRequest<ProxyBody>, InFlight), H2cError> {
        let mut current = self.inner.current.lock().await;
        if let Some(open) = current.as_ref()
            && !open.tx.is_closed()
        {
            return Ok((open.tx.clone(), InFlight::new(open.use_.clone())));
        }
        *current = None;
        let open = self.inner.clone().dial().await?;
        let out = (open.tx.clone(), InFlight::new(open.use_.clone()));
        *current = Some(open);
        Ok(out)
    }

    /// Make `io` (a TLS connection the pool dialled, on which ALPN chose h2) the open
    /// connection, unless one is open already (then `io` is closed and its permit freed).
    pub async fn adopt(&self, io: Io, permit: OwnedSemaphorePermit) -> Result<(), H2cError> {
        let mut current = self.inner.current.lock().await;
        if current.as_ref().is_some_and(|open| !open.tx.is_closed()) {
            return Ok(());
        }
        *current = Some(self.inner.clone().start(io, permit).await?);
        Ok(())
    }
}

impl Inner {
    /// Open a connection holding one `max_connections` permit, and start its task. A TLS
    /// connection whose ALPN did not choose h2 is [`H2cError::Negotiated`].
    async fn dial(self: Arc<Self>) -> Result<Open, H2cError> {
        let permit = self
            .limit
            .acquire_within_wait()
            .await
            .map_err(H2cError::Overflow)?;
        let (io, proto) = self.dial.dial().await.map_err(H2cError::Connect)?;
        if self.dial.is_tls() && proto != Proto::Http2 {
            return Err(H2cError::Negotiated(Box::new(Handoff {
                io,
                permit,
                req: None,
            })));
        }
        self.start(io, permit).await
    }

    /// Speak HTTP/2 on `io`, holding `permit` until the connection closes.
    async fn start(
        self: Arc<Self>,
        io: Io,
        permit: OwnedSemaphorePermit,
    ) -> Result<Open, H2cError> {
        let handshake = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .initial_stream_window_size(self.stream_window)
            .initial_connection_window_size(self.conn_window)
            .handshake(TokioIo::new(io));
        let (tx, conn) = match tokio::time::timeout(self.connect_timeout, handshake).await {
            Ok(Ok(pair)) => pair,
            Ok(Err(e)) => return Err(H2cError::Connect(Box::new(e))),
            Err(_) => return Err(H2cError::Connect("HTTP/2 handshake timed out".into())),
        };
        let use_ = Arc::new(Use {
            in_flight: AtomicUsize::new(0),
            last: std::sync::Mutex::new(Instant::now()),
        });
        let counted = self.limit.active();
        let owner = Arc::downgrade(&self);
        let seen = use_.clone();
        let idle = self.idle_timeout;
        tokio::spawn(async move {
            let _held = (permit, counted);
            let mut conn = std::pin::pin!(conn);
            // Check every half of the idle timeout (at least every second).
            let every = (idle / 2).max(Duration::from_secs(1));
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tokio::select! {
                    done = &mut conn => {
                        if let Err(e) = done {
                            tracing::debug!(error = %e, "h2c upstream connection ended with an error");
                        }
                        return;
                    }
                    _ = tick.tick() => {
                        let Some(owner) = owner.upgrade() else { return };
                        if close_if_idle(&owner, &seen, idle).await {
                            return;
                        }
                    }
                }
            }
        });
        Ok(Open { tx, use_ })
    }
}

/// Under the client's lock: with no exchange in flight for `idle`, forget the connection (so no
/// new exchange takes it) and say so; the caller then drops it, which closes it.
async fn close_if_idle(owner: &Inner, seen: &Arc<Use>, idle: Duration) -> bool {
    let mut current = owner.current.lock().await;
    if seen.in_flight.load(Ordering::Acquire) > 0 || seen.idle_for() < idle {
        return false;
    }
    if current
        .as_ref()
        .is_some_and(|open| Arc::ptr_eq(&open.use_, seen))
    {
        *current = None;
    }
    true
}
