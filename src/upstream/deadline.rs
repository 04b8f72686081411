//! The wait for the upstream's response head: `upstream.response_timeout`, counted from the end of
//! the request body (docs/contract.md §2), so a long upload does not use up the budget of the
//! answer. The end is told by the body itself (`body::signal_end`): its last frame passed, it
//! failed, or the client stopped sending it; an empty body is over at once.
//!
//! No I/O; a timer.

use std::future::Future;
use std::pin::pin;
use std::time::Duration;

use tokio::sync::oneshot;

/// Why the wait for a response head was given up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expired {
    /// No response head within `upstream.response_timeout` of the end of the request body.
    Response(Duration),
}

/// The response deadline of one request, shared by every attempt to send it.
#[derive(Debug)]
pub struct ResponseClock {
    limit: Option<Duration>,
    /// Completes when the request body is over; `None` once it has.
    body_done: Option<oneshot::Receiver<()>>,
}

impl ResponseClock {
    /// A clock for `limit` (`None` = no limit) that starts when `body_done` completes.
    pub fn new(limit: Option<Duration>, body_done: oneshot::Receiver<()>) -> Self {
        Self {
            limit,
            body_done: Some(body_done),
        }
    }

    /// `fut` (sending the request and waiting for the head), bounded: while the request body is
    /// still streaming there is no deadline; from its end, `limit`. `tokio::time::timeout` takes
    /// a duration, so a huge limit cannot overflow an `Instant`.
    pub async fn bound<F: Future>(&mut self, fut: F) -> Result<F::Output, Expired> {
        let Some(limit) = self.limit else {
            return Ok(fut.await);
        };
        let mut fut = pin!(fut);
        if let Some(done) = self.body_done.as_mut() {
            tokio::select! {
                biased;
                out = &mut fut => return Ok(out),
                _ = done => self.body_done = None,
            }
        }
        tokio::time::timeout(limit, fut)
            .await
            .map_err(|_| Expired::Response(limit))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    #[allow(clippy::disallowed_methods)] // paused time: the sleeps are the stimulus
    async fn response_clock_starts_at_the_end_of_the_body() {
        let (tx, rx) = oneshot::channel::<()>();
        let mut clock = ResponseClock::new(Some(Duration::from_secs(1)), rx);
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
        let mut clock = ResponseClock::new(Some(Duration::from_secs(1)), rx);
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
        let mut clock = ResponseClock::new(Some(Duration::MAX), rx);
        assert_eq!(clock.bound(async { 7 }).await, Ok(7));
    }
}
