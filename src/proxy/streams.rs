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
//! Bounds: hyper accepts at most `max_concurrent_streams` streams at once, so the set holds no
//! more than that; each stream ends by itself (its exchange's timeouts, or the client's reset).
//! When the connection ends it is dropped at once, which closes the socket and resets its
//! streams; they are polled until they end, which they do on their next poll, as spawned ones
//! would.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use futures_util::stream::{FuturesUnordered, StreamExt};

type Stream = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The executor hyper's HTTP/2 server is given: it queues each stream for its [`H2Conn`].
#[derive(Clone, Default)]
pub(super) struct Streams {
    queue: Arc<Mutex<Queue>>,
}

#[derive(Default)]
struct Queue {
    new: Vec<Stream>,
    /// Set while [`H2Conn`] polls the connection: a stream queued then is polled right after, in
    /// the same turn, so nothing needs waking.
    in_poll: bool,
    /// The connection's task, for a stream queued outside its poll (hyper does not do that
    /// today; if it did, the stream would still run).
    waker: Option<Waker>,
}

impl Streams {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // Poisoned only if a panic unwound while it was held, which none of the few lines that
        // hold it can do; the queue is still whole then.
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl<F> hyper::rt::Executor<F> for Streams
where
    F: Future<Output = ()> + Send + 'static,
{
    fn execute(&self, fut: F) {
        let mut q = self.lock();
        q.new.push(Box::pin(fut));
        if !q.in_poll
            && let Some(w) = q.waker.take()
        {
            drop(q);
            w.wake();
        }
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
    streams: Streams,
    running: FuturesUnordered<Stream>,
    /// The queue's other buffer (see `poll_conn`).
    spare: Vec<Stream>,
}

impl<C: Future> H2Conn<C> {
    /// `conn` must have been built with `streams` as its executor.
    pub(super) fn new(conn: C, streams: Streams) -> Self {
        H2Conn {
            conn: Some(Box::pin(conn)),
            done: None,
            streams,
            running: FuturesUnordered::new(),
            spare: Vec::new(),
        }
    }

    /// The connection itself (for `graceful_shutdown`), unless it has ended.
    pub(super) fn conn(self: Pin<&mut Self>) -> Option<Pin<&mut C>> {
        self.get_mut().conn.as_mut().map(|c| c.as_mut())
    }

    /// Poll the connection once (unless it has ended); move every queued stream into `running`.
    /// True if any was queued.
    fn poll_conn(&mut self, cx: &mut Context<'_>) -> bool {
        if let Some(conn) = self.conn.as_mut() {
            {
                let mut q = self.streams.lock();
                q.in_poll = true;
                if !q.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    q.waker = Some(cx.waker().clone());
                }
            }
            if let Poll::Ready(out) = conn.as_mut().poll(cx) {
                self.done = Some(out);
                self.conn = None;
            }
        }
        {
            let mut q = self.streams.lock();
            q.in_poll = false;
            // Swapped with an empty buffer that keeps its capacity: no allocation per turn.
            std::mem::swap(&mut q.new, &mut self.spare);
        }
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
        loop {
            // Streams first: what they write, the connection then sends in this same turn.
            while let Poll::Ready(Some(())) = this.running.poll_next_unpin(cx) {}
            // Streams the connection starts are polled at once (their service begins).
            if !this.poll_conn(cx) {
                break;
            }
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
        tokio::time::timeout(std::time::Duration::from_secs(5), H2Conn::new(conn, streams))
            .await
            .ok();
        assert_eq!(ran.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_stream_queued_outside_the_connections_poll_wakes_it() {
        let streams = Streams::default();
        let ran = Arc::new(AtomicUsize::new(0));
        // A connection that never ends by itself: it waits for a stream to have run.
        struct Waits(Arc<AtomicUsize>);
        impl Future for Waits {
            type Output = ();
            fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
                match self.0.load(Ordering::SeqCst) {
                    0 => Poll::Pending,
                    _ => Poll::Ready(()),
                }
            }
        }
        let conn = tokio::spawn(H2Conn::new(Waits(ran.clone()), streams.clone()));
        // Let the connection's task run once and wait: nothing to do, its waker is kept.
        tokio::task::yield_now().await;
        assert!(!conn.is_finished());
        let r = ran.clone();
        streams.execute(async move {
            r.fetch_add(1, Ordering::SeqCst);
        });
        // Only the wake gets the connection's task polled again; the timeout bounds the test.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), conn).await;
        assert_eq!(ran.load(Ordering::SeqCst), 1);
    }
}
