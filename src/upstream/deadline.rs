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

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

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
    /// timer. Both take durations (`tokio::time::timeout`, `StreamClock`), so a huge limit cannot
    /// overflow an `Instant`.
    pub async fn bound<F: Future>(&mut self, fut: F) -> Result<F::Output, Expired> {
        let mut fut = pin!(fut);
        let exchange = self.exchange.clone();
        if let Some(done) = self.body_done.as_mut() {
            tokio::select! {
                biased;
                out = &mut fut => return Ok(out),
                _ = done => self.body_done = None,
                _ = exchange.idle() => {
                    return Err(Expired::Idle(exchange.expire(exchange.silent_side())));
                }
            }
        }
        let limit = self.limit;
        let response = async {
            match limit {
                Some(limit) => tokio::time::timeout(limit, &mut fut)
                    .await
                    .map_err(|_| Expired::Response(limit)),
                None => Ok((&mut fut).await),
            }
        };
        tokio::select! {
            biased;
            out = response => out,
            _ = exchange.idle() => Err(Expired::Idle(exchange.expire(StreamSide::Upstream))),
        }
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
