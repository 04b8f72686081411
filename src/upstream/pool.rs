//! A small pool of HTTP/1.1 connections to a plain `http://` upstream, built on hyper's own client
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
//! - **Bounds:** at most [`MAX_IDLE`] idle connections; idle ones are closed after
//!   `upstream.idle_timeout` by a reaper task that ends with the pool; connects are bounded by
//!   `upstream.connect_timeout`.
//!
//! Does network I/O (connect, and one spawned task per connection driving hyper).

use std::collections::VecDeque;
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
use tokio::net::TcpStream;

use super::deadline::{Expired, ResponseClock};
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
}

struct Idle {
    tx: SendRequest<ProxyBody>,
    since: Instant,
}

/// The pool for one upstream. Shared by every connection of a configuration generation.
pub struct H1Pool {
    authority: Authority,
    /// `host:port` to connect to (port 80 when the URL has none).
    addr: String,
    host: Option<HeaderValue>,
    connect_timeout: Duration,
    idle_timeout: Duration,
    idle: Mutex<VecDeque<Idle>>,
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
    /// A pool for `authority` (host:port; a name is resolved on each connect).
    pub fn new(authority: Authority, connect_timeout: Duration, idle_timeout: Duration) -> Self {
        Self {
            host: HeaderValue::from_str(authority.as_str()).ok(),
            addr: format!(
                "{}:{}",
                authority.host(),
                authority.port_u16().unwrap_or(80)
            ),
            authority,
            connect_timeout,
            idle_timeout,
            idle: Mutex::new(VecDeque::new()),
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
    pub async fn send(
        self: &Arc<Self>,
        mut req: Request<ProxyBody>,
        clock: &mut ResponseClock,
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
            let reused = if attempt < MAX_ATTEMPTS {
                self.checkout()
            } else {
                None
            };
            let (mut tx, was_reused) = match reused {
                Some(tx) => (tx, true),
                None => (self.connect().await?, false),
            };
            let sent = clock
                .bound(tx.try_send_request(req))
                .await
                .map_err(PoolError::Expired)?;
            match sent {
                Ok(resp) => {
                    let pool = Arc::downgrade(self);
                    return Ok(resp.map(|body| crate::body::boxed(PooledBody::new(body, tx, pool))));
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

    /// The most recent ready idle connection, dropping closed and expired ones on the way.
    fn checkout(&self) -> Option<SendRequest<ProxyBody>> {
        let now = Instant::now();
        let mut idle = self.lock();
        let mut i = idle.len();
        let stop = i.saturating_sub(SCAN);
        while i > stop {
            i -= 1;
            let Some(entry) = idle.get(i) else { break };
            if entry.tx.is_closed() || now.duration_since(entry.since) >= self.idle_timeout {
                idle.remove(i);
            } else if entry.tx.is_ready() {
                return idle.remove(i).map(|e| e.tx);
            }
            // Not ready yet (its conn task has not seen the end of the last exchange): skip.
        }
        None
    }

    fn checkin(&self, tx: SendRequest<ProxyBody>) {
        if tx.is_closed() {
            return;
        }
        let entry = Idle {
            tx,
            since: Instant::now(),
        };
        let mut idle = self.lock();
        if idle.len() >= MAX_IDLE {
            idle.pop_front();
        }
        idle.push_back(entry);
    }

    async fn connect(self: &Arc<Self>) -> Result<SendRequest<ProxyBody>, PoolError> {
        let addr = self.addr.as_str();
        let stream =
            match tokio::time::timeout(self.connect_timeout, TcpStream::connect(addr)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => return Err(PoolError::Connect(Box::new(e))),
                Err(_) => {
                    return Err(PoolError::Connect(
                        format!(
                            "connect to {addr} timed out after {:?}",
                            self.connect_timeout
                        )
                        .into(),
                    ));
                }
            };
        let _ = stream.set_nodelay(true);
        let (tx, conn) = http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|e| PoolError::Connect(Box::new(e)))?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "upstream connection ended with an error");
            }
        });
        self.start_reaper();
        Ok(tx)
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
        self.lock()
            .retain(|e| !e.tx.is_closed() && now.duration_since(e.since) < self.idle_timeout);
    }
}

/// A response body from a pooled connection: hands the connection back when the body ends
/// (including bodies that are empty from the start and never polled).
pub struct PooledBody {
    inner: Incoming,
    conn: Option<(SendRequest<ProxyBody>, Weak<H1Pool>)>,
}

impl PooledBody {
    fn new(inner: Incoming, tx: SendRequest<ProxyBody>, pool: Weak<H1Pool>) -> Self {
        let mut body = Self {
            inner,
            conn: Some((tx, pool)),
        };
        if body.inner.is_end_stream() {
            body.release();
        }
        body
    }

    fn release(&mut self) {
        if let Some((tx, pool)) = self.conn.take()
            && let Some(pool) = pool.upgrade()
        {
            pool.checkin(tx);
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
