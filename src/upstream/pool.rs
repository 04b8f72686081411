//! A small pool of HTTP/1.1 connections to the upstream (plain `http://`, and the HTTP/1.1
//! connections of an `https://` upstream whose ALPN chose http/1.1), built on hyper's own client
//! connections. It replaces hyper-util's general-purpose pool on the common sidecar path, where
//! that pool's per-request bookkeeping (a keyed map behind a lock, a spawned task per response to
//! wait for the connection to become idle again) cost a fifth of the proxy's user-space
//! instructions (BENCHMARKS.md, "Profile").
//!
//! - **Checkout** takes the most recently returned connection that is ready for a new request
//!   (LIFO keeps few connections warm); closed or expired ones are dropped on the way.
//! - **Return** happens when the response body has been read to its end ([`PooledBody`]), never
//!   earlier, so a connection is never handed out while its previous response still streams. A
//!   response that is dropped before its end takes its connection with it (hyper closes it).
//! - **Stale connections:** a request that a reused connection could not even start to send
//!   (the upstream closed it while it sat idle) is sent again on another one, at most
//!   [`MAX_ATTEMPTS`] times, the last on a new connection. A request that was sent is never
//!   repeated.
//! - **Bounds:** at most `upstream.max_connections` open at once ([`ConnLimit`]: each connection's
//!   task holds a permit until the connection closes); a request that finds none idle and no permit
//!   free waits up to `upstream.connect_timeout` for a connection to come back or a permit to free,
//!   then fails with [`PoolError::Overflow`] (503 `VG.00050302`). At most [`MAX_IDLE`] idle
//!   connections; idle ones are closed after `upstream.idle_timeout` by a reaper task that ends with
//!   the pool; connects are bounded by `upstream.connect_timeout`.
//!
//! Does network I/O (connect, and one spawned task per connection driving hyper).

use std::collections::VecDeque;
use std::future::poll_fn;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::HOST;
use http::uri::{Authority, PathAndQuery, Uri};
use http::{HeaderValue, Request, Response, Version};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::sync::{Notify, OwnedSemaphorePermit};

use super::deadline::{Expired, ResponseClock};
use super::dial::{Dialer, Handoff, Io, Proto};
use super::limit::{ConnLimit, Counted, Overflow};
use crate::body::{BoxError, ProxyBody};

/// Idle connections kept at most; the oldest is closed when one more is returned.
pub const MAX_IDLE: usize = 1024;
/// Tries per request when reused connections turn out closed; the last try connects anew.
pub const MAX_ATTEMPTS: usize = 3;
/// How many idle connections a checkout looks at before it connects instead.
const SCAN: usize = 8;

/// Why [`H1Pool::send`] failed.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// No connection could be made (refused, unreachable, name not resolved, connect timeout).
    #[error("{0}")]
    Connect(#[source] BoxError),
    /// The connection failed after the request was handed to it.
    #[error("{0}")]
    Request(#[source] hyper::Error),
    /// The response head did not come in time ([`ResponseClock`]).
    #[error("{0:?}")]
    Expired(Expired),
    /// `upstream.max_connections` open and none came free in time.
    #[error("{0}")]
    Overflow(#[source] Overflow),
    /// A new TLS connection negotiated h2: the HTTP/2 client is to carry it, and the request
    /// (`mod.rs` hands both over).
    #[error("the upstream negotiated h2")]
    Negotiated(Box<Handoff>),
}

/// A connection's sending half, counted in `upstream_connections` under its state.
pub struct Conn {
    tx: SendRequest<ProxyBody>,
    _state: Counted,
}

struct Idle {
    conn: Conn,
    since: Instant,
}

/// The pool for one upstream. Shared by every connection of a configuration generation.
pub struct H1Pool {
    authority: Authority,
    dial: Dialer,
    host: Option<HeaderValue>,
    idle_timeout: Duration,
    idle: Mutex<VecDeque<Idle>>,
    /// Told when a connection is returned, for requests waiting at the cap.
    returned: Notify,
    limit: Arc<ConnLimit>,
    reaper: AtomicBool,
}

impl std::fmt::Debug for H1Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H1Pool")
            .field("authority", &self.authority)
            .field("idle", &self.lock().len())
            .finish()
    }
}

impl H1Pool {
    /// A pool for `authority` (its default `Host`), connecting through `dial` (a name is
    /// resolved on each connect), whose connections count against `limit`.
    pub fn new(
        authority: Authority,
        dial: Dialer,
        idle_timeout: Duration,
        limit: Arc<ConnLimit>,
    ) -> Self {
        Self {
            host: HeaderValue::from_str(authority.as_str()).ok(),
            authority,
            dial,
            idle_timeout,
            idle: Mutex::new(VecDeque::new()),
            returned: Notify::new(),
            limit,
            reaper: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<Idle>> {
        // The lock is never held across a panic point that could leave the deque inconsistent.
        self.idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Send `req` (its URI is replaced by the origin form `path?query`; a missing `Host` becomes
    /// the upstream's authority) and wait for the response head. The response body returns the
    /// connection to the pool when it ends. `clock` bounds the wait for the head of each attempt.
    /// `fresh` is a new HTTP/1.1 connection to use first ([`H1Pool::adopt`]: one the HTTP/2
    /// client dialled and ALPN gave http/1.1). A new connection that negotiates h2 comes back, with `req`, as
    /// [`PoolError::Negotiated`].
    pub async fn send(
        self: &Arc<Self>,
        mut req: Request<ProxyBody>,
        clock: &mut ResponseClock,
        mut fresh: Option<Conn>,
    ) -> Result<Response<ProxyBody>, PoolError> {
        let pq = req
            .uri()
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        *req.uri_mut() = Uri::from(pq);
        // HTTP/2 requests from clients go upstream as HTTP/1.1 (chunked when their length is open).
        *req.version_mut() = Version::HTTP_11;
        if let Some(host) = &self.host
            && !req.headers().contains_key(HOST)
        {
            req.headers_mut().insert(HOST, host.clone());
        }
        let mut attempt = 1;
        loop {
            let got = match fresh.take() {
                // Not `start` here: its handshake future would grow every exchange's state.
                Some(conn) => Ok((conn, false)),
                None => self.get(attempt < MAX_ATTEMPTS).await,
            };
            let (mut conn, was_reused) = match got {
                Ok(got) => got,
                Err(PoolError::Negotiated(mut h)) => {
                    h.req = Some(req);
                    return Err(PoolError::Negotiated(h));
                }
                Err(e) => return Err(e),
            };
            let sent = clock
                .bound(conn.tx.try_send_request(req))
                .await
                .map_err(PoolError::Expired)?;
            match sent {
                Ok(resp) => {
                    let pool = Arc::downgrade(self);
                    return Ok(
                        resp.map(|body| crate::body::boxed(PooledBody::new(body, conn, pool)))
                    );
                }
                Err(mut e) => match e.take_message() {
                    Some(back) if was_reused && attempt < MAX_ATTEMPTS => {
                        tracing::debug!(error = %e.error(), "idle upstream connection was closed; retrying");
                        req = back;
                        attempt += 1;
                    }
                    _ => return Err(PoolError::Request(e.into_error())),
                },
            }
        }
    }

    /// A connection for one attempt, and whether it was reused: a ready idle one (when `reuse`),
    /// else a new one, else (at the cap) the first to come back or to be allowed, waiting at most
    /// `connect_timeout`.
    async fn get(self: &Arc<Self>, reuse: bool) -> Result<(Conn, bool), PoolError> {
        if reuse && let Some(conn) = self.checkout() {
            return Ok((conn, true));
        }
        if let Some(permit) = self.limit.try_acquire() {
            return Ok((Box::pin(self.connect(permit)).await?, false));
        }
        // A deadline, not synchronisation; `sleep` takes a duration, so no `Instant` overflows.
        #[allow(clippy::disallowed_methods)]
        let mut wait = std::pin::pin!(tokio::time::sleep(self.limit.wait()));
        let overflow = || PoolError::Overflow(self.limit.overflow());
        loop {
            // A returned connection may not be ready yet (its task has not seen the end of the
            // last exchange): wait for it rather than for another.
            if let Some(mut conn) = self.checkout_any() {
                tokio::select! {
                    ready = poll_fn(|cx| conn.tx.poll_ready(cx)) => match ready {
                        Ok(()) => return Ok((self.activate(conn), true)),
                        Err(_) => continue,
                    },
                    _ = &mut wait => {
                        self.checkin(conn.tx);
                        return Err(overflow());
                    }
                }
            }
            tokio::select! {
                biased;
                permit = self.limit.acquire() => match permit {
                    Some(p) => return Ok((Box::pin(self.connect(p)).await?, false)),
                    None => return Err(overflow()),
                },
                _ = self.returned.notified() => {}
                _ = &mut wait => return Err(overflow()),
            }
        }
    }

    /// `conn`, taken out of the idle list, counted as active.
    fn activate(&self, conn: Conn) -> Conn {
        Conn {
            tx: conn.tx,
            _state: self.limit.active(),
        }
    }

    /// The most recent ready idle connection, dropping closed and expired ones on the way.
    fn checkout(&self) -> Option<Conn> {
        let now = Instant::now();
        let mut idle = self.lock();
        let mut i = idle.len();
        let stop = i.saturating_sub(SCAN);
        while i > stop {
            i -= 1;
            let Some(entry) = idle.get(i) else { break };
            if self.expired(entry, now) {
                idle.remove(i);
            } else if entry.conn.tx.is_ready() {
                let entry = idle.remove(i)?;
                drop(idle);
                return Some(self.activate(entry.conn));
            }
            // Not ready yet (its conn task has not seen the end of the last exchange): skip.
        }
        None
    }

    /// The most recent idle connection, ready or not, dropping closed and expired ones.
    fn checkout_any(&self) -> Option<Conn> {
        let now = Instant::now();
        let mut idle = self.lock();
        while let Some(entry) = idle.pop_back() {
            if !self.expired(&entry, now) {
                return Some(entry.conn);
            }
        }
        None
    }

    fn expired(&self, entry: &Idle, now: Instant) -> bool {
        entry.conn.tx.is_closed() || now.duration_since(entry.since) >= self.idle_timeout
    }

    fn checkin(&self, tx: SendRequest<ProxyBody>) {
        if tx.is_closed() {
            return;
        }
        let entry = Idle {
            conn: Conn {
                tx,
                _state: self.limit.idle(),
            },
            since: Instant::now(),
        };
        let mut idle = self.lock();
        if idle.len() >= MAX_IDLE {
            idle.pop_front();
        }
        idle.push_back(entry);
        drop(idle);
        self.returned.notify_one();
    }

    /// Open a connection that holds `permit` until it closes; one whose ALPN chose h2 is
    /// [`PoolError::Negotiated`].
    ///
    /// # Performance
    /// Callers box this future: dialling (and a TLS handshake) is ~1.4 KB of state that every
    /// request's future would otherwise carry, and copy when it moves, for a path kept
    /// connections rarely take (`-Zprint-type-sizes`, BENCHMARKS.md).
    async fn connect(self: &Arc<Self>, permit: OwnedSemaphorePermit) -> Result<Conn, PoolError> {
        let (io, proto) = self.dial.dial().await.map_err(PoolError::Connect)?;
        if proto == Proto::Http2 {
            return Err(PoolError::Negotiated(Box::new(Handoff {
                io,
                permit,
                req: None,
            })));
        }
        self.start(io, permit).await
    }

    /// `io` (a new connection on which ALPN chose http/1.1) as a connection of this pool, for
    /// [`H1Pool::send`]'s `fresh`.
    pub async fn adopt(
        self: &Arc<Self>,
        io: Io,
        permit: OwnedSemaphorePermit,
    ) -> Result<Conn, PoolError> {
        self.start(io, permit).await
    }

    /// Speak HTTP/1.1 on `io`, holding `permit` until the connection closes.
    async fn start(
        self: &Arc<Self>,
        io: Io,
        permit: OwnedSemaphorePermit,
    ) -> Result<Conn, PoolError> {
        let (tx, conn) = http1::Builder::new()
            .max_buf_size(super::READ_BUF)
            .handshake(TokioIo::new(io))
            .await
            .map_err(|e| PoolError::Connect(Box::new(e)))?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "upstream connection ended with an error");
            }
            drop(permit);
        });
        self.start_reaper();
        Ok(Conn {
            tx,
            _state: self.limit.active(),
        })
    }

    /// Close idle connections older than `idle_timeout`, checking every half of it (at least
    /// every second); ends when the pool is dropped.
    fn start_reaper(self: &Arc<Self>) {
        if self.reaper.swap(true, Ordering::Relaxed) {
            return;
        }
        let pool = Arc::downgrade(self);
        let every = (self.idle_timeout / 2).max(Duration::from_secs(1));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(pool) = pool.upgrade() else { return };
                pool.reap(Instant::now());
            }
        });
    }

    fn reap(&self, now: Instant) {
        self.lock().retain(|e| !self.expired(e, now));
    }
}

/// A response body from a pooled connection: hands the connection back when the body ends
/// (including bodies that are empty from the start and never polled).
pub struct PooledBody {
    inner: Incoming,
    conn: Option<(Conn, Weak<H1Pool>)>,
}

impl PooledBody {
    fn new(inner: Incoming, conn: Conn, pool: Weak<H1Pool>) -> Self {
        let mut body = Self {
            inner,
            conn: Some((conn, pool)),
        };
        if body.inner.is_end_stream() {
            body.release();
        }
        body
    }

    fn release(&mut self) {
        if let Some((conn, pool)) = self.conn.take()
            && let Some(pool) = pool.upgrade()
        {
            pool.checkin(conn.tx);
        }
    }
}

impl Body for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => this.release(),
            Poll::Ready(Some(Ok(_))) if this.inner.is_end_stream() => this.release(),
            // A broken body: the connection is not reusable.
            Poll::Ready(Some(Err(_))) => this.conn = None,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for PooledBody {
    fn drop(&mut self) {
        if self.inner.is_end_stream() {
            self.release();
        }
    }
}
