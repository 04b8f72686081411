//! The idle timers of `limits.stream_idle_timeout` (docs/contract.md §2, §6): [`StreamClock`]
//! (when bytes last moved), [`ExchangeIdle`] (one exchange's clock, who it waits on, its one
//! counted expiry) and [`IdleBody`] (a body under that timer). Timers take durations or checked
//! `Instant` arithmetic, never `Instant + Duration`.
//!
//! No I/O; timers.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use super::BoxError;
use crate::metrics::{StreamSide, StreamTimeouts};

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

    /// Bytes moved on the exchange now.
    pub fn touch(&self) {
        self.clock.touch();
    }

    /// Whether nothing has moved for the limit: [`ExchangeIdle::quiet_at`] has passed (the same
    /// arithmetic, so a timer set to it never fires early and spins).
    pub fn is_idle(&self) -> bool {
        self.quiet_at()
            .is_some_and(|at| tokio::time::Instant::now() >= at)
    }

    /// When the exchange will be idle unless something moves first; `None` when that is too
    /// far to be an `Instant`.
    pub fn quiet_at(&self) -> Option<tokio::time::Instant> {
        self.clock.quiet_at(self.limit)
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

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

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
}
