//! The wait for the upstream's response head: `upstream.response_timeout`, counted from the end of
//! the request body (docs/contract.md §2), so a long upload does not use up the budget of the
//! answer. The end is told by the body itself (`body::signal_end`): its last frame passed, it
//! failed, or the client stopped sending it; an empty body is over at once. The exchange's idle
//! timer (`limits.stream_idle_timeout`) runs throughout: while the body streams it ends an
//! exchange on which nothing moves (the client's fault if the body waits on the client, else the
//! upstream's), and while the head is awaited it ends one whose upstream stays silent (also with no
//! `response_timeout`).
//!
//! No I/O; timers.

use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use tokio::time::Instant;

use tokio::sync::oneshot;

use crate::body::{ExchangeIdle, StreamIdle};
use crate::metrics::StreamSide;

/// Why the wait for a response head was given up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expired {
    /// No response head within `upstream.response_timeout` of the end of the request body.
    Response(Duration),
    /// Nothing moved on the exchange for `limits.stream_idle_timeout`.
    Idle(StreamIdle),
}

/// The response deadline of one request, shared by every attempt to send it.
#[derive(Debug)]
pub struct ResponseClock {
    limit: Option<Duration>,
    /// Completes when the request body is over; `None` once it has.
    body_done: Option<oneshot::Receiver<()>>,
    exchange: Arc<ExchangeIdle>,
}

impl ResponseClock {
    /// A clock for `limit` (`None` = no limit) that starts when `body_done` completes, under
    /// `exchange`'s idle timer.
    pub fn new(
        limit: Option<Duration>,
        body_done: oneshot::Receiver<()>,
        exchange: Arc<ExchangeIdle>,
    ) -> Self {
        Self {
            limit,
            body_done: Some(body_done),
            exchange,
        }
    }

    /// `fut` (sending the request and waiting for the head), bounded: while the request body is
    /// still streaming, by the exchange's idle timer only; from its end, by `limit` and the idle
    /// timer. The deadlines come from checked `Instant` arithmetic, and one too far off is no
    /// deadline, so a huge limit cannot overflow.
    ///
    /// # Performance
    /// One `Sleep`, set to the earlier of the two deadlines and moved when it fires early (the
    /// exchange moved meanwhile), rather than one timer per deadline and a `select!` of two
    /// async state machines: most responses come before either, and every registered timer is
    /// a timer-wheel insert and remove (callgrind, docs/design.md).
    pub async fn bound<F: Future>(&mut self, fut: F) -> Result<F::Output, Expired> {
        let mut fut = pin!(fut);
        let exchange = self.exchange.clone();
        let limit = self.limit;
        // When the response head is due: set when the body is over.
        let mut due: Option<Instant> = None;
        if self.body_done.is_none() {
            due = limit.and_then(|l| Instant::now().checked_add(l));
        }
        let mut timer = pin!(None::<tokio::time::Sleep>);
        poll_fn(|cx| {
            if let Poll::Ready(out) = fut.as_mut().poll(cx) {
                return Poll::Ready(Ok(out));
            }
            if let Some(done) = self.body_done.as_mut()
                && Pin::new(done).poll(cx).is_ready()
            {
                self.body_done = None;
                due = limit.and_then(|l| Instant::now().checked_add(l));
            }
            loop {
                if exchange.is_idle() {
                    let side = match self.body_done {
                        Some(_) => exchange.silent_side(),
                        None => StreamSide::Upstream,
                    };
                    return Poll::Ready(Err(Expired::Idle(exchange.expire(side))));
                }
                let now = Instant::now();
                if let (Some(at), Some(limit)) = (due, limit)
                    && now >= at
                {
                    return Poll::Ready(Err(Expired::Response(limit)));
                }
                let wake = match (exchange.quiet_at(), due) {
                    (Some(a), Some(b)) => a.min(b),
                    (Some(a), None) | (None, Some(a)) => a,
                    (None, None) => return Poll::Pending,
                };
                match timer.as_mut().as_pin_mut() {
                    Some(t) if t.deadline() == wake => {}
                    Some(t) => t.reset(wake),
                    None => timer.set(Some(tokio::time::sleep_until(wake))),
                }
                let Some(t) = timer.as_mut().as_pin_mut() else {
                    return Poll::Pending;
                };
                if t.poll(cx).is_pending() {
                    return Poll::Pending;
                }
                // Fired: check again (something may have moved since it was set).
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exchange(idle: Duration) -> Arc<ExchangeIdle> {
        let reg = prometheus::Registry::new();
        let metrics = crate::metrics::Metrics::register(&reg).unwrap();
        Arc::new(ExchangeIdle::new(idle, metrics.stream_timeouts))
    }

    fn clock(limit: Option<Duration>, rx: oneshot::Receiver<()>) -> ResponseClock {
        ResponseClock::new(limit, rx, exchange(Duration::from_secs(3600)))
    }

    #[tokio::test(start_paused = true)]
    #[allow(clippy::disallowed_methods)] // paused time: the sleeps are the stimulus
    async fn response_clock_starts_at_the_end_of_the_body() {
        let (tx, rx) = oneshot::channel::<()>();
        let mut clock = clock(Some(Duration::from_secs(1)), rx);
        let slow = async {
            // The body streams for 5 s, then the head comes 500 ms later.
            tokio::time::sleep(Duration::from_secs(5)).await;
            drop(tx);
            tokio::time::sleep(Duration::from_millis(500)).await;
            "head"
        };
        assert_eq!(clock.bound(slow).await, Ok("head"));
    }

    #[tokio::test(start_paused = true)]
    async fn response_clock_expires_limit_after_the_body_ended() {
        let (tx, rx) = oneshot::channel::<()>();
        drop(tx);
        let mut clock = clock(Some(Duration::from_secs(1)), rx);
        let start = tokio::time::Instant::now();
        let never = std::future::pending::<()>();
        assert_eq!(
            clock.bound(never).await,
            Err(Expired::Response(Duration::from_secs(1)))
        );
        assert_eq!(start.elapsed(), Duration::from_secs(1));
    }

    /// The one timer is set to the earlier deadline, and moved when the exchange moves: a
    /// 10 s response limit with a 2 s idle timer and a frame at 1.5 s ends idle at 3.5 s.
    #[tokio::test(start_paused = true)]
    #[allow(clippy::disallowed_methods)] // paused time: the sleeps are the stimulus
    async fn response_clock_idle_timer_moves_with_the_exchange() {
        let (tx, rx) = oneshot::channel::<()>();
        drop(tx);
        let ex = exchange(Duration::from_secs(2));
        let mut clock = ResponseClock::new(Some(Duration::from_secs(10)), rx, ex.clone());
        let start = tokio::time::Instant::now();
        let mover = ex.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            mover.touch();
        });
        let got = clock.bound(std::future::pending::<()>()).await;
        assert_eq!(
            got,
            Err(Expired::Idle(StreamIdle {
                side: StreamSide::Upstream
            }))
        );
        assert_eq!(start.elapsed(), Duration::from_millis(3500));
    }

    #[tokio::test(start_paused = true)]
    async fn response_clock_huge_limit_does_not_overflow() {
        let (tx, rx) = oneshot::channel::<()>();
        drop(tx);
        let mut clock = clock(Some(Duration::MAX), rx);
        assert_eq!(clock.bound(async { 7 }).await, Ok(7));
    }

    #[tokio::test(start_paused = true)]
    async fn response_clock_silent_upstream_without_limit_ends_at_the_idle_timeout() {
        let (tx, rx) = oneshot::channel::<()>();
        drop(tx);
        let ex = exchange(Duration::from_secs(5));
        let mut clock = ResponseClock::new(None, rx, ex.clone());
        let start = tokio::time::Instant::now();
        let got = clock.bound(std::future::pending::<()>()).await;
        assert_eq!(
            got,
            Err(Expired::Idle(StreamIdle {
                side: StreamSide::Upstream
            }))
        );
        assert_eq!(start.elapsed(), Duration::from_secs(5));
        assert_eq!(
            ex.expired(),
            Some(StreamIdle {
                side: StreamSide::Upstream
            })
        );
    }
}
