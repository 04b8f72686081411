//! Client-side read deadlines that hyper does not express: `limits.header_read_timeout` (from the
//! first byte of a request head, or from connection start) and `limits.keepalive_timeout` (how long
//! an idle connection with no request in flight may stay open).
//!
//! hyper's own HTTP/1 `header_read_timeout` starts as soon as the connection waits for a head, so an
//! idle keep-alive connection would be cut at the header timeout rather than the keep-alive one;
//! this wrapper keeps the two apart. While a request is in flight ([`InFlight`] guards alive) reads
//! have no deadline here: the request and response bodies are streams whose pace belongs to the
//! peers. A read that passes its deadline fails with `TimedOut`, which makes hyper close the
//! connection.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// Shared between a connection's IO and its requests.
#[derive(Debug, Default)]
pub struct Activity {
    in_flight: AtomicUsize,
    /// Bumped each time the connection becomes idle (last in-flight request done).
    idle_epoch: AtomicU64,
    reader: Mutex<Option<Waker>>,
}

impl Activity {
    /// A request started; the connection is busy until the guard drops (keep it in the response
    /// body so streaming counts as busy).
    pub fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(self.clone())
    }
}

/// Marks one request in flight.
#[derive(Debug)]
pub struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle_epoch.fetch_add(1, Ordering::AcqRel);
            // The reader may be parked without a deadline armed; wake it so it arms one.
            if let Ok(mut w) = self.0.reader.lock()
                && let Some(w) = w.take()
            {
                w.wake();
            }
        }
    }
}

/// The IO wrapper enforcing the two deadlines.
pub struct IdleTimeoutIo<T> {
    inner: T,
    activity: Arc<Activity>,
    header_timeout: Duration,
    keepalive_timeout: Duration,
    seen_epoch: u64,
    head_started: bool,
    deadline: Pin<Box<Sleep>>,
}

impl<T> IdleTimeoutIo<T> {
    /// Wrap a freshly accepted (and handshaken) stream: the first head must arrive within
    /// `header_timeout`.
    pub fn new(
        inner: T,
        activity: Arc<Activity>,
        header_timeout: Duration,
        keepalive_timeout: Duration,
    ) -> Self {
        Self {
            inner,
            activity,
            header_timeout,
            keepalive_timeout,
            seen_epoch: 0,
            head_started: true,
            deadline: Box::pin(tokio::time::sleep_until(Instant::now() + header_timeout)),
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for IdleTimeoutIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.activity.in_flight.load(Ordering::Acquire) > 0 {
            if let Ok(mut w) = this.activity.reader.lock() {
                *w = Some(cx.waker().clone());
            }
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        let epoch = this.activity.idle_epoch.load(Ordering::Acquire);
        if epoch != this.seen_epoch {
            // 1. Just became idle: the keep-alive clock starts.
            this.seen_epoch = epoch;
            this.head_started = false;
            let at = Instant::now() + this.keepalive_timeout;
            this.deadline.as_mut().reset(at);
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before && !this.head_started {
                    // 2. First byte of the next head: the header clock replaces the idle one.
                    this.head_started = true;
                    let at = Instant::now() + this.header_timeout;
                    this.deadline.as_mut().reset(at);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => match this.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    if this.head_started {
                        "header_read_timeout"
                    } else {
                        "keepalive_timeout"
                    },
                ))),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for IdleTimeoutIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test(start_paused = true)]
    async fn idle_io_silent_client_times_out_on_header_deadline() {
        let (client, server) = tokio::io::duplex(64);
        let act = Arc::new(Activity::default());
        let mut io = IdleTimeoutIo::new(
            server,
            act,
            Duration::from_secs(10),
            Duration::from_secs(75),
        );
        let mut buf = [0u8; 8];
        let err = io.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(err.to_string(), "header_read_timeout");
        drop(client);
    }

    #[tokio::test(start_paused = true)]
    async fn idle_io_in_flight_request_has_no_deadline_then_keepalive_applies() {
        let (mut client, server) = tokio::io::duplex(64);
        let act = Arc::new(Activity::default());
        let mut io = IdleTimeoutIo::new(
            server,
            act.clone(),
            Duration::from_secs(10),
            Duration::from_secs(75),
        );
        let guard = act.begin();
        // With a request in flight, 100 s of silence is fine.
        let read = tokio::spawn(async move {
            let mut buf = [0u8; 8];
            let r = io.read(&mut buf).await;
            (r, io)
        });
        tokio::time::advance(Duration::from_secs(100)).await;
        client.write_all(b"x").await.unwrap();
        let (r, mut io) = read.await.unwrap();
        assert_eq!(r.unwrap(), 1);
        // Done: now idle, the keep-alive deadline (not the header one) applies.
        drop(guard);
        let start = Instant::now();
        let mut buf = [0u8; 8];
        let err = io.read(&mut buf).await.unwrap_err();
        assert_eq!(err.to_string(), "keepalive_timeout");
        assert!(start.elapsed() >= Duration::from_secs(75));
    }
}
