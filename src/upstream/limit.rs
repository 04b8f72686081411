//! `upstream.max_connections`: how many upstream connections may be open at once (docs/contract.md
//! §2). One [`ConnLimit`] per forwarder is shared by the HTTP/1.1 pool and by the connector of
//! hyper-util's clients (`https://`, `h2c://`, upgrades), so every connection to the upstream,
//! tunnels included, holds one of its permits for as long as it is open.
//!
//! Also owns the `upstream_connections{state}` gauges: [`Counted`] keeps one up while it lives.
//!
//! No I/O of its own; [`LimitedConnector`] wraps a connector that does.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::{Connected, Connection};
use prometheus::IntGauge;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::body::BoxError;
use crate::metrics::{Metrics, UpstreamConnState};

/// No upstream connection came free within `upstream.connect_timeout`: 503 `VG.00050302`.
#[derive(Debug, thiserror::Error)]
#[error("upstream.max_connections ({max}) open; none came free within {waited:?}")]
pub struct Overflow {
    pub max: usize,
    pub waited: Duration,
}

/// The cap on open upstream connections, and their gauges.
#[derive(Debug)]
pub struct ConnLimit {
    permits: Arc<Semaphore>,
    max: usize,
    /// How long a request waits for a free connection (`upstream.connect_timeout`).
    wait: Duration,
    active: IntGauge,
    idle: IntGauge,
}

impl ConnLimit {
    /// At most `max` connections; a request waits up to `wait` for one.
    pub fn new(max: usize, wait: Duration, metrics: &Metrics) -> Self {
        let max = max.clamp(1, Semaphore::MAX_PERMITS);
        Self {
            permits: Arc::new(Semaphore::new(max)),
            max,
            wait,
            active: metrics.upstream_connections(UpstreamConnState::Active),
            idle: metrics.upstream_connections(UpstreamConnState::Idle),
        }
    }

    /// A permit if one is free now.
    pub fn try_acquire(&self) -> Option<OwnedSemaphorePermit> {
        self.permits.clone().try_acquire_owned().ok()
    }

    /// A permit once one is free (cancel-safe; the caller bounds the wait).
    pub async fn acquire(&self) -> Option<OwnedSemaphorePermit> {
        self.permits.clone().acquire_owned().await.ok()
    }

    /// A permit, waiting at most `wait` for one.
    pub async fn acquire_within_wait(&self) -> Result<OwnedSemaphorePermit, Overflow> {
        match tokio::time::timeout(self.wait, self.acquire()).await {
            Ok(Some(p)) => Ok(p),
            _ => Err(self.overflow()),
        }
    }

    /// How long a request may wait for a connection.
    pub fn wait(&self) -> Duration {
        self.wait
    }

    /// The error for a request that waited in vain.
    pub fn overflow(&self) -> Overflow {
        Overflow {
            max: self.max,
            waited: self.wait,
        }
    }

    /// Counts one connection as carrying an exchange while alive.
    pub fn active(&self) -> Counted {
        Counted::new(self.active.clone())
    }

    /// Counts one connection as idle in the pool while alive.
    pub fn idle(&self) -> Counted {
        Counted::new(self.idle.clone())
    }
}

/// A gauge held one higher for as long as this lives.
#[derive(Debug)]
pub struct Counted(IntGauge);

impl Counted {
    fn new(g: IntGauge) -> Self {
        g.inc();
        Self(g)
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.dec();
    }
}

// === impl LimitedConnector ===

/// A connector that takes a [`ConnLimit`] permit before connecting (waiting at most the limit's
/// `wait`) and keeps it, with an `active` count, in the connection it returns.
#[derive(Clone, Debug)]
pub struct LimitedConnector<C> {
    inner: C,
    limit: Arc<ConnLimit>,
}

impl<C> LimitedConnector<C> {
    /// Wrap `inner`.
    pub fn new(inner: C, limit: Arc<ConnLimit>) -> Self {
        Self { inner, limit }
    }
}

impl<C> tower::Service<Uri> for LimitedConnector<C>
where
    C: tower::Service<Uri> + Clone + Send + 'static,
    C::Future: Send,
    C::Error: Into<BoxError>,
{
    type Response = Limited<C::Response>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        // The clone is ready-checked by the caller's poll_ready on `self`; take it, leave a
        // fresh clone behind (tower's "clone, swap" pattern).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let limit = self.limit.clone();
        Box::pin(async move {
            let permit = limit.acquire_within_wait().await?;
            let io = inner.call(dst).await.map_err(Into::into)?;
            Ok(Limited {
                io,
                _permit: permit,
                _active: limit.active(),
            })
        })
    }
}

/// A connection that holds its [`ConnLimit`] permit until it is dropped.
#[derive(Debug)]
pub struct Limited<T> {
    io: T,
    _permit: OwnedSemaphorePermit,
    _active: Counted,
}

impl<T: Connection> Connection for Limited<T> {
    fn connected(&self) -> Connected {
        self.io.connected()
    }
}

impl<T: Read + Unpin> Read for Limited<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: Write + Unpin> Write for Limited<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
}
