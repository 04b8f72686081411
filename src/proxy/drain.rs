//! The drain signal every client connection watches (docs/contract.md §10): when shutdown begins,
//! each connection is told to finish gracefully (HTTP/1.1: end after the request in flight;
//! HTTP/2: GOAWAY, then finish the open streams), and shutdown waits until every one has ended.
//!
//! This is hyper-util's `GracefulShutdown`, re-done for one reason: its watcher does not take
//! hyper's own HTTP/1.1 connection with upgrades (`http1::UpgradeableConnection`), which
//! `conn.rs` serves directly instead of through hyper-util's auto builder, whose protocol sniff
//! cost every HTTP/1.1 connection 8 KiB for as long as it was open (BENCHMARKS.md, "Memory per
//! idle keep-alive connection").

use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::task::{Context, Poll};

use tokio::sync::watch;

/// The listener's end: starts the drain and waits for it.
#[derive(Debug)]
pub struct Drain {
    tx: watch::Sender<()>,
}

/// A connection's end: tells it the drain has begun; while it is alive, the drain waits for it.
#[derive(Debug)]
pub struct Watcher {
    rx: watch::Receiver<()>,
}

impl Default for Drain {
    fn default() -> Self {
        Self::new()
    }
}

impl Drain {
    pub fn new() -> Self {
        Self {
            tx: watch::Sender::new(()),
        }
    }

    /// A watcher for one more connection.
    pub fn watcher(&self) -> Watcher {
        Watcher {
            rx: self.tx.subscribe(),
        }
    }

    /// Tell every watcher the drain has begun, then wait until all of them are gone (the caller
    /// bounds the wait with `shutdown_grace`).
    pub async fn shutdown(self) {
        self.tx.send_replace(());
        self.tx.closed().await;
    }
}

impl Watcher {
    /// Run `conn` to its end; if the drain begins first, call `graceful` on it once and keep
    /// running it. The watcher is held (the drain waits) until `conn` has ended.
    ///
    /// # Performance
    /// `conn` is pinned by the caller: a connection moved into this future would be stored
    /// twice in the connection's task for as long as it is open (an `async fn` keeps its
    /// arguments besides the locals they move into; `-Zprint-type-sizes`: 2 × 2.9 KB for
    /// HTTP/2 over TLS).
    ///
    /// The drain is looked at the cheap way ([`Signal`]): `conn` is polled on every wake-up of
    /// the connection's task, the drain's `changed` future once.
    pub async fn watch<C: Future>(
        self,
        mut conn: Pin<&mut C>,
        graceful: impl FnOnce(Pin<&mut C>),
    ) -> C::Output {
        let (mut rx, begun) = self.split();
        let mut signal = Signal::new(&begun);
        let mut changed = pin!(rx.changed());
        let first = poll_fn(|cx| {
            if let Poll::Ready(out) = conn.as_mut().poll(cx) {
                return Poll::Ready(Some(out));
            }
            signal.poll_begun(changed.as_mut(), cx).map(|()| None)
        })
        .await;
        if let Some(out) = first {
            return out;
        }
        graceful(conn.as_mut());
        conn.await
    }

    /// The watcher in two: the receiver whose `changed()` future a loop keeps (and polls once,
    /// through [`Signal`]), and a second look at the same channel for the cheap check. Both are
    /// the watcher: while either lives, the drain waits.
    pub fn split(self) -> (watch::Receiver<()>, Begun) {
        let peek = self.rx.clone();
        (self.rx, Begun(peek))
    }

    /// `work` (a stage before HTTP serving starts, such as reading the first bytes), or `None` if
    /// the drain begins first: nothing has been answered yet, so the connection just closes.
    pub async fn unless_draining<F: Future>(&mut self, work: F) -> Option<F::Output> {
        tokio::select! {
            biased;
            out = work => Some(out),
            _ = self.rx.changed() => None,
        }
    }
}

/// Whether the drain has begun: a version compare on the channel ([`Watcher::split`]).
#[derive(Debug)]
pub struct Begun(watch::Receiver<()>);

impl Begun {
    /// True once the drain has begun, or is gone (a dropped drain is a drain too).
    pub fn get(&self) -> bool {
        !matches!(self.0.has_changed(), Ok(false))
    }
}

/// The drain as seen from a loop that looks at it on every turn (`watch`, `conn.rs`).
///
/// # Performance
/// `changed()` is polled once, which leaves the task registered with the drain for as long as
/// the future is kept; after that a turn costs a version compare ([`Begun`]). Polling it on
/// every wake-up of a connection's task cost ~180 instructions each, three times per HTTP/1.1
/// request (callgrind, BENCHMARKS.md "Fifth session").
#[derive(Debug)]
pub struct Signal<'a> {
    begun: &'a Begun,
    registered: bool,
}

impl<'a> Signal<'a> {
    pub fn new(begun: &'a Begun) -> Self {
        Self {
            begun,
            registered: false,
        }
    }

    /// Ready once the drain has begun; `changed` is the kept `changed()` future of the
    /// receiver `begun` came with.
    pub fn poll_begun<F: Future>(
        &mut self,
        changed: Pin<&mut F>,
        cx: &mut Context<'_>,
    ) -> Poll<()> {
        if self.registered {
            return if self.begun.get() {
                Poll::Ready(())
            } else {
                Poll::Pending
            };
        }
        self.registered = true;
        changed.poll(cx).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use std::pin::pin;
    use std::time::Duration;

    use super::*;

    /// The drain tells a watched connection once, then waits for it to end.
    #[tokio::test]
    async fn drain_tells_each_connection_once_and_waits_for_it() {
        let drain = Drain::new();
        let (told_tx, told_rx) = tokio::sync::oneshot::channel::<()>();
        let (end_tx, end_rx) = tokio::sync::oneshot::channel::<()>();
        let watcher = drain.watcher();
        let conn = tokio::spawn(async move {
            let mut told = Some(told_tx);
            let conn = pin!(end_rx);
            watcher
                .watch(conn, |_| {
                    let _ = told.take().map(|t| t.send(()));
                })
                .await
        });
        let shutdown = tokio::spawn(drain.shutdown());
        tokio::time::timeout(Duration::from_secs(5), told_rx)
            .await
            .expect("told within 5 s")
            .expect("told");
        assert!(
            !shutdown.is_finished(),
            "the drain waits for the connection"
        );
        end_tx.send(()).expect("end");
        tokio::time::timeout(Duration::from_secs(5), shutdown)
            .await
            .expect("drained within 5 s")
            .expect("drain task");
        assert!(conn.await.expect("conn task").is_ok());
    }

    /// Work before serving is cut short by the drain; with no watcher left, the drain is done.
    #[tokio::test]
    async fn work_before_serving_ends_when_the_drain_begins() {
        let drain = Drain::new();
        let mut watcher = drain.watcher();
        let work = tokio::spawn(async move {
            let r = watcher.unless_draining(std::future::pending::<()>()).await;
            drop(watcher);
            r
        });
        tokio::time::timeout(Duration::from_secs(5), drain.shutdown())
            .await
            .expect("drained within 5 s");
        assert_eq!(work.await.expect("work task"), None);
    }
}
