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
//!
//! Writes have one deadline, `limits.stream_idle_timeout` ([`IdleTimeoutIo::with_write_stall`]):
//! a client that stops reading leaves hyper's writes pending, and body timers never run then
//! (hyper stops polling a body it cannot write), so the stall is caught here. A write, flush or
//! shutdown that makes no progress for that long fails with `TimedOut` and is counted as
//! `stream_timeouts_total{side="client"}`; the connection closes, and with it its exchanges and
//! their upstream connections.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use atomic_waker::AtomicWaker;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::metrics::{StreamSide, StreamTimeouts};

/// Shared between a connection's IO and its requests.
#[derive(Debug, Default)]
pub struct Activity {
    in_flight: AtomicUsize,
    /// Bumped each time the connection becomes idle (last in-flight request done).
    idle_epoch: AtomicU64,
    reader: AtomicWaker,
    /// Reads and writes of the connection's IO that completed (any outcome; one that waits is
    /// not one, nor is a flush), for the park check (`conn.rs`). One writer, the IO: a load and a
    /// store, no locked instruction.
    io_calls: AtomicU64,
    /// The last write (or flush) made no progress: hyper still has bytes for the client.
    write_blocked: AtomicBool,
    /// The connection is being parked: a shutdown of the IO does nothing, the socket stays open.
    parking: AtomicBool,
}

impl Activity {
    /// A request started; the connection is busy until the guard drops (keep it in the response
    /// body so streaming counts as busy).
    pub fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(self.clone())
    }

    /// How many reads and writes of the IO have completed so far (any outcome).
    pub fn io_calls(&self) -> u64 {
        self.io_calls.load(Ordering::Acquire)
    }

    /// No request in flight and no write waiting for the client.
    pub fn at_rest(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) == 0 && !self.write_blocked.load(Ordering::Acquire)
    }

    /// How many times the connection has come to rest (its last request in flight ended).
    pub fn rests(&self) -> u64 {
        self.idle_epoch.load(Ordering::Acquire)
    }

    /// While set, shutting the IO down is a no-op (`conn.rs` parks the connection).
    pub fn set_parking(&self, on: bool) {
        self.parking.store(on, Ordering::Release);
    }

    fn count_io(&self) {
        let n = self.io_calls.load(Ordering::Relaxed);
        self.io_calls.store(n.wrapping_add(1), Ordering::Release);
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
            self.0.reader.wake();
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
    /// The read deadline in force.
    want: Instant,
    /// A timer that fires at or before `want`, never after (see [`IdleTimeoutIo::set_deadline`]).
    deadline: Pin<Box<Sleep>>,
    write_stall: Option<WriteStall>,
}

/// The write deadline: how long a pending write may make no progress.
struct WriteStall {
    limit: Duration,
    counter: StreamTimeouts,
    /// Armed while writes are pending (allocated on the first stall).
    timer: Option<Pin<Box<Sleep>>>,
    armed: bool,
    /// The deadline passed: every later write fails too (counted once).
    expired: bool,
}

impl WriteStall {
    /// A write made no progress: arm (if not armed) and wait on the deadline.
    fn poll_pending<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        if !self.armed {
            let Some(at) = Instant::now().checked_add(self.limit) else {
                return Poll::Pending; // too far to be a deadline: none
            };
            match &mut self.timer {
                Some(t) => t.as_mut().reset(at),
                None => self.timer = Some(Box::pin(tokio::time::sleep_until(at))),
            }
            self.armed = true;
        }
        let Some(timer) = self.timer.as_mut() else {
            return Poll::Pending;
        };
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => {
                self.expired = true;
                self.counter.count(StreamSide::Client);
                Poll::Ready(Err(stall_error()))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

/// `d` from now, or a century from now when `d` is too far to be an `Instant`.
fn after(d: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(d)
        .or_else(|| now.checked_add(Duration::from_secs(100 * 365 * 86_400)))
        .unwrap_or(now)
}

fn stall_error() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "stream_idle_timeout")
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
            want: after(header_timeout),
            deadline: Box::pin(tokio::time::sleep_until(after(header_timeout))),
            write_stall: None,
        }
    }

    /// Also fail writes that make no progress for `limit` (`limits.stream_idle_timeout`),
    /// counting each such connection in `counter`.
    pub fn with_write_stall(mut self, limit: Duration, counter: StreamTimeouts) -> Self {
        self.write_stall = Some(WriteStall {
            limit,
            counter,
            timer: None,
            armed: false,
            expired: false,
        });
        self
    }

    /// Pass a write-side poll through the stall deadline: progress disarms it, no progress waits
    /// on it.
    fn watch_write<R>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>> {
        self.activity
            .write_blocked
            .store(polled.is_pending(), Ordering::Release);
        let Some(stall) = &mut self.write_stall else {
            return polled;
        };
        match polled {
            Poll::Pending => stall.poll_pending(cx),
            ready => {
                stall.armed = false;
                ready
            }
        }
    }

    /// Make `at` the read deadline.
    ///
    /// # Performance
    /// The timer is moved only when `at` is earlier than where it is set; a later deadline is
    /// only remembered, and the timer, firing early, is moved to it then ([`Self::poll_deadline`]).
    /// Every request moves the deadline twice (keep-alive when it ends, header read when the next
    /// one starts), each later than the one before in steady traffic, and each move of a tokio
    /// timer is a timer-wheel remove and insert (~190 instructions, callgrind): this way a busy
    /// connection moves it about once per `header_read_timeout`, not twice per request.
    fn set_deadline(&mut self, at: Instant) {
        self.want = at;
        if at < self.deadline.deadline() {
            self.deadline.as_mut().reset(at);
        }
    }

    /// Ready when the read deadline has passed; a timer that fired early is moved to it.
    fn poll_deadline(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            if self.deadline.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            if Instant::now() >= self.want {
                return Poll::Ready(());
            }
            let want = self.want;
            self.deadline.as_mut().reset(want);
        }
    }

    fn write_expired(&self) -> bool {
        self.write_stall.as_ref().is_some_and(|s| s.expired)
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
            this.activity.reader.register(cx.waker());
            // Checked again after registering: a request that ended in between either is seen
            // here or wakes the waker just registered, so the idle deadline is never missed.
            if this.activity.in_flight.load(Ordering::Acquire) > 0 {
                let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
                if polled.is_ready() {
                    this.activity.count_io();
                }
                return polled;
            }
        }
        let epoch = this.activity.idle_epoch.load(Ordering::Acquire);
        if epoch != this.seen_epoch {
            // 1. Just became idle: the keep-alive clock starts.
            this.seen_epoch = epoch;
            this.head_started = false;
            let at = after(this.keepalive_timeout);
            this.set_deadline(at);
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if polled.is_ready() {
            this.activity.count_io();
        }
        match polled {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before && !this.head_started {
                    // 2. First byte of the next head: the header clock replaces the idle one.
                    this.head_started = true;
                    let at = after(this.header_timeout);
                    this.set_deadline(at);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => match this.poll_deadline(cx) {
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
        if self.write_expired() {
            return Poll::Ready(Err(stall_error()));
        }
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if polled.is_ready() {
            self.activity.count_io();
        }
        self.watch_write(cx, polled)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.write_expired() {
            return Poll::Ready(Err(stall_error()));
        }
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        self.watch_write(cx, polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.write_expired() {
            return Poll::Ready(Err(stall_error()));
        }
        if self.activity.parking.load(Ordering::Acquire) {
            return Poll::Ready(Ok(()));
        }
        let polled = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.watch_write(cx, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.write_expired() {
            return Poll::Ready(Err(stall_error()));
        }
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if polled.is_ready() {
            self.activity.count_io();
        }
        self.watch_write(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// The IO under test: a 10 s header deadline, a 75 s keep-alive one.
    fn io_10_75<T>(inner: T, act: Arc<Activity>) -> IdleTimeoutIo<T> {
        IdleTimeoutIo::new(inner, act, Duration::from_secs(10), Duration::from_secs(75))
    }

    #[tokio::test(start_paused = true)]
    async fn idle_io_silent_client_times_out_on_header_deadline() {
        let (client, server) = tokio::io::duplex(64);
        let act = Arc::new(Activity::default());
        let mut io = io_10_75(server, act);
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
        let mut io = io_10_75(server, act.clone());
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

    /// The timer is moved lazily (`set_deadline`): each deadline must still hold to the
    /// millisecond, whether it is later than where the timer stands (remembered, the timer moved
    /// when it fires early) or earlier (the timer moved at once).
    #[tokio::test(start_paused = true)]
    async fn idle_io_deadlines_hold_exactly_when_the_timer_moves_lazily() {
        let within = |elapsed: Duration, want: u64| {
            let want = Duration::from_secs(want);
            assert!(
                elapsed >= want && elapsed < want + Duration::from_millis(5),
                "{elapsed:?} vs {want:?}"
            );
        };
        let (mut client, server) = tokio::io::duplex(64);
        let act = Arc::new(Activity::default());
        let mut io = io_10_75(server, act.clone());
        let mut buf = [0u8; 8];
        // A request arrives at 5 s and is answered: the connection goes idle at 5 s, and its
        // keep-alive deadline (80 s) is later than the timer's (the header deadline, 10 s).
        tokio::time::advance(Duration::from_secs(5)).await;
        let guard = act.begin();
        client.write_all(b"x").await.unwrap();
        assert_eq!(io.read(&mut buf).await.unwrap(), 1);
        drop(guard);
        // The next head's first byte comes at 35 s: its header deadline (45 s) is earlier than
        // the keep-alive one; a silent client then fails at 45 s, neither at 10 s nor at 80 s.
        // The read is polled by hand so that the timer stands where this test says.
        let start = Instant::now();
        {
            let mut read = Box::pin(io.read(&mut buf));
            // Parks: keep-alive deadline 80 s remembered, the timer left at 10 s.
            assert!(futures_util::poll!(&mut read).is_pending());
            tokio::time::advance(Duration::from_secs(30)).await;
            // The timer fired early (10 s): moved to 80 s.
            assert!(futures_util::poll!(&mut read).is_pending());
            client.write_all(b"G").await.unwrap();
            assert_eq!(read.await.unwrap(), 1);
        }
        within(start.elapsed(), 30);
        let err = io.read(&mut buf).await.unwrap_err();
        assert_eq!(err.to_string(), "header_read_timeout");
        within(start.elapsed(), 40);
        // Idle with no byte: the keep-alive deadline holds exactly (timer fired early at the
        // stale header deadline, moved to the real one).
        let (_client, server) = tokio::io::duplex(64);
        let act = Arc::new(Activity::default());
        let mut io = io_10_75(server, act.clone());
        drop(act.begin());
        let start = Instant::now();
        let err = io.read(&mut buf).await.unwrap_err();
        assert_eq!(err.to_string(), "keepalive_timeout");
        within(start.elapsed(), 75);
    }

    #[tokio::test(start_paused = true)]
    async fn idle_io_client_not_reading_write_fails_after_stream_idle_timeout() {
        // A 16-byte pipe the client never reads: writes stall once it is full.
        let (client, server) = tokio::io::duplex(16);
        let reg = prometheus::Registry::new();
        let metrics = crate::metrics::Metrics::register(&reg).unwrap();
        let act = Arc::new(Activity::default());
        let _busy = act.begin();
        let mut io = io_10_75(server, act)
            .with_write_stall(Duration::from_secs(300), metrics.stream_timeouts.clone());
        let start = Instant::now();
        let err = io.write_all(&[0u8; 64]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(start.elapsed(), Duration::from_secs(300));
        let text = crate::metrics::render(&reg);
        assert!(
            text.contains("vpcguard_stream_timeouts_total{side=\"client\"} 1"),
            "{text}"
        );
        drop(client);
    }
}
