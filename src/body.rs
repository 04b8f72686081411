//! Body types of the data path: the boxed streaming body both directions use, a byte-limit wrapper
//! for request bodies (`limits.max_body_bytes`), a wrapper that tells when a request body has
//! ended (where `upstream.response_timeout` starts), the idle timer of an exchange
//! (`limits.stream_idle_timeout`: [`ExchangeIdle`], [`IdleBody`]), and a wrapper that runs a
//! completion hook when a response body is finished or dropped (access log and duration
//! histogram).
//!
//! Nothing here buffers a body: every wrapper passes frames through as they arrive (docs/contract.md §6).
//! No I/O of its own.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Empty, Full};

use crate::metrics::{StreamSide, StreamTimeouts};

/// Any error a body can carry.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body type of every request and response on the data path.
pub type ProxyBody = http_body_util::combinators::BoxBody<Bytes, BoxError>;

/// A complete in-memory body (error responses, self check).
pub fn full(bytes: impl Into<Bytes>) -> ProxyBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// An empty body.
pub fn empty() -> ProxyBody {
    Empty::new().map_err(|never| match never {}).boxed()
}

/// Box any body whose error converts into [`BoxError`].
pub fn boxed<B>(body: B) -> ProxyBody
where
    B: Body<Data = Bytes> + Send + Sync + 'static,
    B::Error: Into<BoxError>,
{
    body.map_err(Into::into).boxed()
}

/// Returned by [`LimitedBody`] when the limit is crossed. The HTTP client carries it as the
/// source of its own error, where [`is_caused_by`] finds it, so the forwarder answers 413 rather
/// than a gateway error.
#[derive(Debug, thiserror::Error)]
#[error("request body exceeds max_body_bytes")]
pub struct BodyTooLarge;

/// Whether `E` is `err` or anywhere in its chain of sources (linkerd's `is_error`).
pub fn is_caused_by<E: std::error::Error + 'static>(
    err: &(dyn std::error::Error + 'static),
) -> bool {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if e.is::<E>() {
            return true;
        }
        cur = e.source();
    }
    false
}

/// A request body that fails with [`BodyTooLarge`] once more than `limit` bytes have passed.
pub struct LimitedBody<B> {
    inner: B,
    remaining: u64,
}

impl<B> LimitedBody<B> {
    /// Wrap `inner`.
    pub fn new(inner: B, limit: u64) -> Self {
        Self {
            inner,
            remaining: limit,
        }
    }
}

impl<B> Body for LimitedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let len = data.len() as u64;
                    if len > this.remaining {
                        return Poll::Ready(Some(Err(Box::new(BodyTooLarge))));
                    }
                    this.remaining -= len;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A body that tells, through the receiver [`signal_end`] returns, that it is over: its last
/// frame passed, it failed, or it was dropped (the HTTP client stopped sending it). A body that is
/// empty from the start (never polled by the client) is over at once.
pub struct EndSignal<B> {
    inner: B,
    /// Dropped when the body is over, which completes the receiver.
    done: Option<tokio::sync::oneshot::Sender<()>>,
}

/// Wrap `inner`; the receiver completes (with `Err`, the sender having gone) when it is over.
pub fn signal_end<B: Body>(inner: B) -> (EndSignal<B>, tokio::sync::oneshot::Receiver<()>) {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let done = (!inner.is_end_stream()).then_some(tx);
    (EndSignal { inner, done }, rx)
}

impl<B> Body for EndSignal<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(_))) if !this.inner.is_end_stream() => {}
            Poll::Ready(_) => this.done = None,
            Poll::Pending => {}
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

/// When bytes last moved on an exchange or a tunnel (`limits.stream_idle_timeout`): touched by
/// whatever moves them, read by the idle timers. Shared between tasks; one atomic store a touch.
#[derive(Debug)]
pub struct StreamClock {
    base: tokio::time::Instant,
    /// Milliseconds from `base` to the last touch.
    last_ms: AtomicU64,
}

impl Default for StreamClock {
    fn default() -> Self {
        Self::new()
    }
}

impl StreamClock {
    /// A clock whose last movement is now.
    pub fn new() -> Self {
        Self {
            base: tokio::time::Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Bytes moved now.
    pub fn touch(&self) {
        self.last_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    /// How long nothing has moved.
    pub fn idle_for(&self) -> Duration {
        let last = self.last_ms.load(Ordering::Relaxed);
        Duration::from_millis(self.now_ms().saturating_sub(last))
    }

    /// When nothing will have moved for `limit`, unless something moves first; `None` when that
    /// is too far to be an `Instant`.
    pub fn quiet_at(&self, limit: Duration) -> Option<tokio::time::Instant> {
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.base.checked_add(last)?.checked_add(limit)
    }

    /// Resolves once nothing has moved for `limit`. Sleeps for durations, never to an
    /// `Instant + Duration`, so a huge limit cannot overflow.
    pub async fn idle(&self, limit: Duration) {
        loop {
            let quiet = self.idle_for();
            if quiet >= limit {
                return;
            }
            #[allow(clippy::disallowed_methods)] // a deadline, not synchronisation
            tokio::time::sleep(limit - quiet).await;
        }
    }
}

// === impl ExchangeIdle ===

/// Returned by an [`IdleBody`] (and by the response deadline) when nothing has moved on the
/// exchange for `limits.stream_idle_timeout`; `side` went silent. The HTTP client carries it as
/// the source of its own error, where [`is_caused_by`] finds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("no byte moved for stream_idle_timeout ({} silent)", side.as_str())]
pub struct StreamIdle {
    pub side: StreamSide,
}

/// The idle timer of one exchange (request and response): when a byte last moved either way, who
/// the request body is waiting on, and the one expiry, counted once in `stream_timeouts_total`.
/// Shared by the request body, the wait for the response head, and the response body.
#[derive(Debug)]
pub struct ExchangeIdle {
    clock: StreamClock,
    limit: Duration,
    /// The request body's last poll found nothing: the client has not sent the next bytes.
    awaiting_client: AtomicBool,
    /// `0` = not expired, else `1 + side as u8`.
    expired: AtomicU8,
    counters: StreamTimeouts,
}

impl ExchangeIdle {
    /// A timer of `limit` for an exchange starting now.
    pub fn new(limit: Duration, counters: StreamTimeouts) -> Self {
        Self {
            clock: StreamClock::new(),
            limit,
            awaiting_client: AtomicBool::new(false),
            expired: AtomicU8::new(0),
            counters,
        }
    }

    /// The idle limit.
    pub fn limit(&self) -> Duration {
        self.limit
    }

    /// Resolves once nothing has moved for the limit.
    pub async fn idle(&self) {
        self.clock.idle(self.limit).await;
    }

    /// Who an exchange that is silent while its request body streams is waiting on.
    pub fn silent_side(&self) -> StreamSide {
        match self.awaiting_client.load(Ordering::Relaxed) {
            true => StreamSide::Client,
            false => StreamSide::Upstream,
        }
    }

    /// End the exchange for `side`'s silence: the first expiry is counted and kept; later ones
    /// (the other timers of the same exchange) report the first.
    pub fn expire(&self, side: StreamSide) -> StreamIdle {
        let code = 1 + side as u8;
        match self
            .expired
            .compare_exchange(0, code, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => {
                self.counters.count(side);
                StreamIdle { side }
            }
            Err(_) => self.expired().unwrap_or(StreamIdle { side }),
        }
    }

    /// The expiry, if the exchange has been ended for silence.
    pub fn expired(&self) -> Option<StreamIdle> {
        let side = match self.expired.load(Ordering::Acquire) {
            0 => return None,
            1 => StreamSide::Client,
            _ => StreamSide::Upstream,
        };
        Some(StreamIdle { side })
    }
}

/// A body under its exchange's idle timer: every frame is movement; a poll that finds nothing
/// arms a timer (reset as frames come), and when nothing has moved either way for the limit the
/// body fails with [`StreamIdle`] for `side` (the side it reads from). The timer is a `Sleep`
/// allocated on the first wait, set with checked arithmetic (no `Instant` overflow: a limit too
/// far off is no timer).
pub struct IdleBody<B> {
    inner: B,
    exchange: Arc<ExchangeIdle>,
    side: StreamSide,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<B> IdleBody<B> {
    /// Wrap `inner`, which is read from `side` (the request body: the client; the response body:
    /// the upstream).
    pub fn new(inner: B, exchange: Arc<ExchangeIdle>, side: StreamSide) -> Self {
        Self {
            inner,
            exchange,
            side,
            timer: None,
        }
    }

    /// Nothing came: wait on the timer; `Some` when the exchange is over for silence.
    fn poll_timer(&mut self, cx: &mut Context<'_>) -> Option<StreamIdle> {
        let limit = self.exchange.limit;
        loop {
            let quiet = self.exchange.clock.idle_for();
            if quiet >= limit {
                return Some(self.exchange.expire(self.side));
            }
            // Stable until something moves, so a wait re-polled without news resets nothing
            // (and never in the past, which would spin).
            let now = tokio::time::Instant::now();
            let at = self
                .exchange
                .clock
                .quiet_at(limit)?
                .max(now.checked_add(Duration::from_millis(1))?);
            match &mut self.timer {
                Some(t) if t.deadline() == at => {}
                Some(t) => t.as_mut().reset(at),
                None => self.timer = Some(Box::pin(tokio::time::sleep_until(at))),
            }
            let t = self.timer.as_mut()?;
            if t.as_mut().poll(cx).is_pending() {
                return None;
            }
        }
    }
}

impl<B> Body for IdleBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let client = this.side == StreamSide::Client;
        if let Some(e) = this.exchange.expired() {
            return Poll::Ready(Some(Err(Box::new(e))));
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.exchange.clock.touch();
                if client {
                    this.exchange
                        .awaiting_client
                        .store(false, Ordering::Relaxed);
                }
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => {
                if client {
                    this.exchange.awaiting_client.store(true, Ordering::Relaxed);
                }
                match this.poll_timer(cx) {
                    Some(e) => Poll::Ready(Some(Err(Box::new(e)))),
                    None => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Runs once when a response body ends or is dropped (client gone, connection closed).
pub trait OnComplete: Send + Sync + 'static {
    /// `bytes` is what passed through; `complete` is false when the body ended early (error or
    /// drop before end of stream).
    fn complete(&mut self, bytes: u64, complete: bool);
}

/// A response body that counts bytes and calls its [`OnComplete`] exactly once.
pub struct CompletionBody<B, C: OnComplete> {
    inner: B,
    bytes: u64,
    ended: bool,
    hook: Option<C>,
}

impl<B, C: OnComplete> CompletionBody<B, C> {
    /// Wrap `inner`.
    pub fn new(inner: B, hook: C) -> Self {
        Self {
            inner,
            bytes: 0,
            ended: false,
            hook: Some(hook),
        }
    }

    fn finish(&mut self) {
        if let Some(mut hook) = self.hook.take() {
            hook.complete(self.bytes, self.ended);
        }
    }
}

impl<B, C> Body for CompletionBody<B, C>
where
    B: Body<Data = Bytes, Error = BoxError> + Unpin,
    C: OnComplete + Unpin,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.bytes += data.len() as u64;
                }
                if this.inner.is_end_stream() {
                    this.ended = true;
                    this.finish();
                }
            }
            Poll::Ready(None) => {
                this.ended = true;
                this.finish();
            }
            Poll::Ready(Some(Err(_))) => this.finish(),
            Poll::Pending => {}
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

impl<B, C: OnComplete> Drop for CompletionBody<B, C> {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn limited_body_over_limit_fails_with_body_too_large() {
        let body = LimitedBody::new(Full::new(Bytes::from_static(b"12345")), 4);
        let err = body.collect().await.unwrap_err();
        assert!(is_caused_by::<BodyTooLarge>(&*err), "{err}");
    }

    #[tokio::test]
    async fn limited_body_at_limit_passes() {
        let body = LimitedBody::new(Full::new(Bytes::from_static(b"1234")), 4);
        assert_eq!(body.collect().await.unwrap().to_bytes(), "1234");
    }

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] BoxError);

    #[test]
    fn is_caused_by_walks_the_source_chain() {
        let nested = Outer(Box::new(Outer(Box::new(BodyTooLarge))));
        assert!(is_caused_by::<BodyTooLarge>(&nested));
        let other = Outer(Box::new(std::io::Error::other("x")));
        assert!(!is_caused_by::<BodyTooLarge>(&other));
    }

    #[tokio::test]
    async fn end_signal_fires_after_the_last_frame_not_before() {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, BoxError>>(2);
        let stream = Box::pin(futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|f| (f, rx))
        }));
        let (mut body, mut done) = signal_end(http_body_util::StreamBody::new(stream));
        tx.send(Ok(Frame::data(Bytes::from_static(b"a"))))
            .await
            .unwrap();
        body.frame().await.unwrap().unwrap();
        assert!(
            done.try_recv()
                .is_err_and(|e| e == tokio::sync::oneshot::error::TryRecvError::Empty)
        );
        drop(tx);
        assert!(body.frame().await.is_none());
        assert!(done.await.is_err(), "sender gone: the body is over");
    }

    #[tokio::test]
    async fn end_signal_empty_body_is_over_at_once() {
        let (_body, done) = signal_end(empty());
        assert!(done.await.is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn stream_clock_idle_waits_for_quiet_since_the_last_touch() {
        let clock = Arc::new(StreamClock::new());
        let start = tokio::time::Instant::now();
        let toucher = clock.clone();
        tokio::spawn(async move {
            for _ in 0..5 {
                tokio::time::advance(Duration::from_millis(300)).await;
                toucher.touch();
            }
        });
        clock.idle(Duration::from_secs(1)).await;
        // Touched at 1.5 s for the last time: idle 1 s later.
        assert!(
            start.elapsed() >= Duration::from_millis(2500),
            "{:?}",
            start.elapsed()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn stream_clock_huge_limit_does_not_overflow() {
        let clock = StreamClock::new();
        let waited = tokio::time::timeout(Duration::from_secs(10), clock.idle(Duration::MAX));
        assert!(waited.await.is_err(), "still waiting, no panic");
    }

    fn exchange(limit: Duration) -> (Arc<ExchangeIdle>, prometheus::Registry) {
        let reg = prometheus::Registry::new();
        let metrics = crate::metrics::Metrics::register(&reg).unwrap();
        (
            Arc::new(ExchangeIdle::new(limit, metrics.stream_timeouts)),
            reg,
        )
    }

    /// A body that never yields a frame.
    struct Silent;
    impl Body for Silent {
        type Data = Bytes;
        type Error = BoxError;
        fn poll_frame(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
            Poll::Pending
        }
    }

    #[tokio::test(start_paused = true)]
    async fn idle_body_silent_side_fails_after_the_limit_counted_once() {
        let (ex, reg) = exchange(Duration::from_secs(300));
        let start = tokio::time::Instant::now();
        let mut req = IdleBody::new(Silent, ex.clone(), StreamSide::Client);
        let err = req.frame().await.unwrap().unwrap_err();
        assert_eq!(start.elapsed(), Duration::from_secs(300));
        let idle = err.downcast_ref::<StreamIdle>().copied();
        assert_eq!(
            idle,
            Some(StreamIdle {
                side: StreamSide::Client
            })
        );
        // The response body of the same exchange reports the same expiry, not a second one.
        let mut resp = IdleBody::new(Silent, ex, StreamSide::Upstream);
        let err = resp.frame().await.unwrap().unwrap_err();
        assert_eq!(
            err.downcast_ref::<StreamIdle>().map(|e| e.side),
            Some(StreamSide::Client)
        );
        let text = crate::metrics::render(&reg);
        assert!(
            text.contains("vpcguard_stream_timeouts_total{side=\"client\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("vpcguard_stream_timeouts_total{side=\"upstream\"} 0"),
            "{text}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn idle_body_movement_on_the_other_side_keeps_the_exchange_alive() {
        let (ex, _reg) = exchange(Duration::from_secs(300));
        let toucher = ex.clone();
        tokio::spawn(async move {
            // The response streams a frame every minute for ten minutes.
            for _ in 0..10 {
                tokio::time::advance(Duration::from_secs(60)).await;
                toucher.clock.touch();
            }
        });
        let start = tokio::time::Instant::now();
        let mut req = IdleBody::new(Silent, ex, StreamSide::Client);
        let _ = req.frame().await;
        // Ends 300 s after the last movement at 600 s.
        assert!(
            start.elapsed() >= Duration::from_secs(900),
            "{:?}",
            start.elapsed()
        );
    }

    struct Record(Arc<std::sync::Mutex<Vec<(u64, bool)>>>);
    impl OnComplete for Record {
        fn complete(&mut self, bytes: u64, complete: bool) {
            self.0.lock().unwrap().push((bytes, complete));
        }
    }

    #[tokio::test]
    async fn completion_body_reports_once_with_byte_count() {
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let body = CompletionBody::new(full("hello"), Record(seen.clone()));
        body.collect().await.unwrap();
        assert_eq!(*seen.lock().unwrap(), vec![(5, true)]);
    }

    #[test]
    fn completion_body_dropped_early_reports_incomplete() {
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        drop(CompletionBody::new(full("hello"), Record(seen.clone())));
        assert_eq!(*seen.lock().unwrap(), vec![(0, false)]);
    }
}
