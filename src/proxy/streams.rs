//! HTTP/2 streams run in their connection's task: one task per HTTP/2 connection, not one per
//! stream.
//!
//! hyper hands each accepted HTTP/2 stream (the request's service future and the pipe of its
//! response body) to the executor it was built with. With `TokioExecutor` that is a
//! `tokio::spawn` per stream: a task cell to allocate, link into the runtime's task list and free,
//! and a wake across tasks every time the stream gives the connection a frame to write, or the
//! connection gives the stream one. Here the executor only queues the stream, and [`H2Conn`]
//! polls the queued streams beside hyper's connection, the way HAProxy and nginx run every
//! stream of a connection on that connection's thread. The cost: one connection's streams share
//! one core, where spawned streams could spread over the workers.
//!
//! The connection is polled only when it asked (its own waker: socket, timers, or a stream that
//! gave it a frame to send), not whenever a stream can go on: streams have their own wakers, so
//! one turn runs every stream that is ready and then the connection once for all of them, as
//! the scheduler did when each was a task (callgrind, 4 connections x 4 streams: polling the
//! connection on every turn cost 49 % more connection polls and +1.3 % instructions per request).
//!
//! Bounds: hyper accepts at most `max_concurrent_streams` streams at once, so the set holds no
//! more than that; each stream ends by itself (its exchange's timeouts, or the client's reset).
//! When the connection ends it is dropped at once, which closes the socket and resets its
//! streams; they are polled until they end, which they do on their next poll, as spawned ones
//! would.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Wake, Waker};

use atomic_waker::AtomicWaker;
use futures_util::stream::{FuturesUnordered, StreamExt};

type Stream = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Polls of hyper's connection in one turn of [`H2Conn`] before it yields to the scheduler (a
/// connection that keeps asking, for example one out of tokio's cooperative budget, is polled
/// again on the next turn, not in a loop here).
const CONN_POLLS_PER_TURN: usize = 4;

/// The executor hyper's HTTP/2 server is given: it queues each stream for its [`H2Conn`].
#[derive(Clone, Default)]
pub(super) struct Streams {
    shared: Arc<Shared>,
}

/// What the executor, the connection's wakers and [`H2Conn`] share.
#[derive(Default)]
struct Shared {
    queue: Mutex<Vec<Stream>>,
    /// Streams were queued since the queue was last taken.
    queued: AtomicBool,
    /// hyper's connection asked to be polled (its socket or a timer is ready, or a stream gave it
    /// a frame to send). Streams have wakers of their own (`FuturesUnordered`): a stream that can
    /// go on does not poll the connection, which is polled only when it asked.
    conn_woken: AtomicBool,
    /// Set while [`H2Conn::poll`] runs: a wake then is seen by its loop, and the task is not
    /// woken for it; one that comes as the turn ends is caught by the check after it.
    polling: AtomicBool,
    /// The connection's task.
    task: AtomicWaker,
}

impl Shared {
    fn queue(&self) -> MutexGuard<'_, Vec<Stream>> {
        // Poisoned only if a panic unwound while it was held, which none of the few lines that
        // hold it can do; the queue is still whole then.
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn wake_task_unless_polling(&self) {
        if !self.polling.load(Ordering::SeqCst) {
            self.task.wake();
        }
    }
}

/// The waker hyper's connection is polled with: it marks the connection as asking.
impl Wake for Shared {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.conn_woken.store(true, Ordering::SeqCst);
        self.wake_task_unless_polling();
    }
}

impl<F> hyper::rt::Executor<F> for Streams
where
    F: Future<Output = ()> + Send + 'static,
{
    fn execute(&self, fut: F) {
        self.shared.queue().push(Box::pin(fut));
        self.shared.queued.store(true, Ordering::SeqCst);
        self.shared.wake_task_unless_polling();
    }
}

/// hyper's HTTP/2 connection and the streams it started, as one future: ready with the
/// connection's output once the connection and all its streams have ended.
pub(super) struct H2Conn<C: Future> {
    /// Dropped as soon as it ends: dropping h2's connection is what tells its streams (h2 does
    /// not on every error: a failed write, such as the write-stall deadline, returns without
    /// resetting them) and closes the socket.
    conn: Option<Pin<Box<C>>>,
    /// The connection's output, kept while its last streams finish.
    done: Option<C::Output>,
    shared: Arc<Shared>,
    /// The waker the connection is polled with (`Shared::wake`).
    conn_waker: Waker,
    running: FuturesUnordered<Stream>,
    /// The queue's other buffer (see `take_queued`).
    spare: Vec<Stream>,
}

impl<C: Future> H2Conn<C> {
    /// `conn` must have been built with `streams` as its executor.
    pub(super) fn new(conn: C, streams: Streams) -> Self {
        let shared = streams.shared;
        // Polled first thing: it has its handshake to do.
        shared.conn_woken.store(true, Ordering::SeqCst);
        H2Conn {
            conn: Some(Box::pin(conn)),
            done: None,
            conn_waker: Waker::from(shared.clone()),
            shared,
            running: FuturesUnordered::new(),
            spare: Vec::new(),
        }
    }

    /// The connection itself (for `graceful_shutdown`), unless it has ended.
    pub(super) fn conn(self: Pin<&mut Self>) -> Option<Pin<&mut C>> {
        self.get_mut().conn.as_mut().map(|c| c.as_mut())
    }

    /// Poll the connection if it asked (and has not ended). True if it was polled.
    fn poll_conn(&mut self) -> bool {
        if !self.shared.conn_woken.swap(false, Ordering::SeqCst) {
            return false;
        }
        let Some(conn) = self.conn.as_mut() else {
            return false;
        };
        let mut cx = Context::from_waker(&self.conn_waker);
        if let Poll::Ready(out) = conn.as_mut().poll(&mut cx) {
            self.done = Some(out);
            self.conn = None;
        }
        true
    }

    /// Move every queued stream into `running`. True if there was any.
    fn take_queued(&mut self) -> bool {
        if !self.shared.queued.swap(false, Ordering::SeqCst) {
            return false;
        }
        // Swapped with an empty buffer that keeps its capacity: no allocation per turn.
        std::mem::swap(&mut *self.shared.queue(), &mut self.spare);
        let started = !self.spare.is_empty();
        for s in self.spare.drain(..) {
            self.running.push(s);
        }
        started
    }
}

// `running` holds boxed futures and `conn` is boxed: nothing here is pinned structurally.
impl<C: Future> Unpin for H2Conn<C> {}

impl<C: Future> Future for H2Conn<C> {
    type Output = C::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<C::Output> {
        let this = self.get_mut();
        this.shared.task.register(cx.waker());
        this.shared.polling.store(true, Ordering::SeqCst);
        let mut conn_polls = 0;
        loop {
            // Streams that can go on, then the connection if it asked: what the streams wrote
            // it sends in this same turn. Streams it starts are polled at once.
            while let Poll::Ready(Some(())) = this.running.poll_next_unpin(cx) {}
            if conn_polls == CONN_POLLS_PER_TURN {
                break;
            }
            let polled = this.poll_conn();
            conn_polls += usize::from(polled);
            if !this.take_queued() && !polled {
                break;
            }
        }
        this.shared.polling.store(false, Ordering::SeqCst);
        // Asked again during the turn (and not served), or as it ended: another turn.
        if this.shared.conn_woken.load(Ordering::SeqCst)
            || this.shared.queued.load(Ordering::SeqCst)
        {
            cx.waker().wake_by_ref();
        }
        if this.running.is_empty()
            && let Some(out) = this.done.take()
        {
            return Poll::Ready(out);
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::rt::Executor;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A stand-in connection that starts `n` streams on its first poll, each counting when it
    /// runs, and ends on its second poll.
    struct Starts {
        streams: Streams,
        n: usize,
        polls: usize,
        ran: Arc<AtomicUsize>,
    }

    impl Future for Starts {
        type Output = &'static str;
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<&'static str> {
            self.polls += 1;
            if self.polls == 1 {
                for _ in 0..self.n {
                    let ran = self.ran.clone();
                    self.streams.execute(async move {
                        tokio::task::yield_now().await;
                        ran.fetch_add(1, Ordering::SeqCst);
                    });
                }
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            Poll::Ready("closed")
        }
    }

    #[tokio::test]
    async fn the_connection_ends_only_after_every_stream_it_started() {
        let streams = Streams::default();
        let ran = Arc::new(AtomicUsize::new(0));
        let conn = Starts {
            streams: streams.clone(),
            n: 3,
            polls: 0,
            ran: ran.clone(),
        };
        let out = H2Conn::new(conn, streams).await;
        assert_eq!(out, "closed");
        assert_eq!(ran.load(Ordering::SeqCst), 3);
    }

    /// A connection that starts one stream and ends on its next poll; that stream, after the
    /// connection has ended, starts another (as hyper's CONNECT streams start their upgrade).
    struct StartsOnce {
        streams: Streams,
        polls: usize,
        ran: Arc<AtomicUsize>,
    }

    impl Future for StartsOnce {
        type Output = ();
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            self.polls += 1;
            if self.polls > 1 {
                return Poll::Ready(());
            }
            let (streams, ran) = (self.streams.clone(), self.ran.clone());
            self.streams.execute(async move {
                // Two turns: the connection ends in between.
                tokio::task::yield_now().await;
                tokio::task::yield_now().await;
                streams.execute(async move {
                    ran.fetch_add(1, Ordering::SeqCst);
                });
            });
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }

    #[tokio::test]
    async fn a_stream_started_after_the_connection_ended_still_runs() {
        let streams = Streams::default();
        let ran = Arc::new(AtomicUsize::new(0));
        let conn = StartsOnce {
            streams: streams.clone(),
            polls: 0,
            ran: ran.clone(),
        };
        tokio::time::timeout(
            std::time::Duration::from_secs(5),
            H2Conn::new(conn, streams),
        )
        .await
        .ok();
        assert_eq!(ran.load(Ordering::SeqCst), 1);
    }

    type ConnWaker = Arc<Mutex<Option<Waker>>>;

    /// A connection that ends once `ran` is set, woken by whoever sets it (through `waker`).
    struct Waits {
        ran: Arc<AtomicUsize>,
        polls: Arc<AtomicUsize>,
        waker: ConnWaker,
    }

    impl Future for Waits {
        type Output = ();
        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            self.polls.fetch_add(1, Ordering::SeqCst);
            if self.ran.load(Ordering::SeqCst) > 0 {
                return Poll::Ready(());
            }
            if let Ok(mut w) = self.waker.lock() {
                *w = Some(cx.waker().clone());
            }
            Poll::Pending
        }
    }

    fn waits() -> (Waits, Arc<AtomicUsize>, Arc<AtomicUsize>, ConnWaker) {
        let (ran, polls) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let waker = Arc::new(Mutex::new(None));
        let conn = Waits {
            ran: ran.clone(),
            polls: polls.clone(),
            waker: waker.clone(),
        };
        (conn, ran, polls, waker)
    }

    /// Set `ran` and wake the connection.
    fn finish(ran: &AtomicUsize, waker: &Mutex<Option<Waker>>) {
        ran.fetch_add(1, Ordering::SeqCst);
        if let Some(w) = waker.lock().ok().and_then(|mut w| w.take()) {
            w.wake();
        }
    }

    #[tokio::test]
    async fn a_stream_queued_outside_the_connections_poll_wakes_it() {
        let streams = Streams::default();
        let (conn, ran, _, waker) = waits();
        let conn = tokio::spawn(H2Conn::new(conn, streams.clone()));
        // Let the connection's task run once and wait: nothing to do.
        tokio::task::yield_now().await;
        assert!(!conn.is_finished());
        let r = ran.clone();
        streams.execute(async move { finish(&r, &waker) });
        // Only the executor's wake gets the task polled again to run the stream; the timeout
        // bounds the test.
        let ended = tokio::time::timeout(std::time::Duration::from_secs(5), conn).await;
        assert!(ended.is_ok());
        assert_eq!(ran.load(Ordering::SeqCst), 1);
    }

    /// A stream that goes on for many turns does not poll the connection: only the
    /// connection's own wakes do (the first poll, and the stream's `finish`).
    #[tokio::test]
    async fn a_busy_stream_does_not_poll_the_connection() {
        let streams = Streams::default();
        let (conn, ran, polls, waker) = waits();
        let r = ran.clone();
        streams.execute(async move {
            for _ in 0..10 {
                tokio::task::yield_now().await;
            }
            finish(&r, &waker);
        });
        let ended = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            H2Conn::new(conn, streams),
        )
        .await;
        assert!(ended.is_ok());
        assert_eq!(polls.load(Ordering::SeqCst), 2);
    }
}
