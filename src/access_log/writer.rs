//! The hand-off from request tasks to one dedicated writer thread: request tasks append finished
//! lines to a bounded in-memory batch; the thread swaps the batch out and writes it in one call.
//!
//! Why a thread: a write to stdout can block (a full pipe, a slow log collector), and a blocked
//! tokio worker stalls every connection it serves. Why bounded: when the output stays blocked the
//! batch stops growing and further lines are dropped (the caller counts them) instead of
//! buffering without limit.
//!
//! When the writer is woken — the one system call a request task could pay — decides how much
//! lines coalesce. Waking it per line would be a futex call per request on a lightly loaded proxy,
//! then one `write` per line. Instead a request task only marks the batch as unsignalled, and
//! [`Queue::signal`] wakes the writer when the tokio worker runs out of work
//! (`on_thread_park`), when the batch reaches `wake_bytes` (a worker that never idles), or the
//! writer wakes itself after `backstop` (lines pushed from elsewhere). So a line waits at most
//! until its worker is idle — never while the proxy is idle — and under load one wake-up and one
//! `write` carry many lines.
//!
//! Does I/O only through the `out` function the thread is given.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

/// A line was not queued: the batch was full (output blocked) or the writer has stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dropped;

/// The shared batch between request tasks and the writer thread.
#[derive(Debug)]
pub struct Queue {
    state: Mutex<State>,
    /// Signalled to wake the writer (see the module docs), and on close.
    ready: Condvar,
    /// Lines were queued while the writer waits and nobody has woken it yet. Set under the lock,
    /// read without it by [`Queue::signal`].
    unsignalled: AtomicBool,
    /// Most bytes waiting at once.
    limit: usize,
    /// A push that brings the batch to this size wakes the writer itself.
    wake_bytes: usize,
    /// The writer's longest sleep while lines may be waiting unsignalled.
    backstop: Duration,
}

#[derive(Debug, Default)]
struct State {
    batch: Vec<u8>,
    /// The writer is (about to be) asleep on `ready`.
    waiting: bool,
    closed: bool,
}

/// The writer keeps at most this much capacity between batches (a burst may grow it further).
const KEEP_CAPACITY: usize = 64 * 1024;

impl Queue {
    /// An open queue holding at most `limit` bytes of unwritten lines; see the module docs for
    /// `wake_bytes` and `backstop`.
    pub fn new(limit: usize, wake_bytes: usize, backstop: Duration) -> Arc<Queue> {
        Arc::new(Queue {
            state: Mutex::new(State::default()),
            ready: Condvar::new(),
            unsignalled: AtomicBool::new(false),
            limit,
            wake_bytes,
            backstop,
        })
    }

    /// Queue one complete line (with its newline).
    ///
    /// # Performance
    /// A short critical section (one copy of the line). No system call unless this push fills
    /// the batch to `wake_bytes` while the writer sleeps (once per many lines).
    pub fn push(&self, line: &[u8]) -> Result<(), Dropped> {
        let mut s = self.lock();
        if s.closed || s.batch.len() + line.len() > self.limit {
            return Err(Dropped);
        }
        s.batch.extend_from_slice(line);
        let wake = s.waiting && s.batch.len() >= self.wake_bytes;
        if wake {
            s.waiting = false;
        } else if s.waiting {
            self.unsignalled.store(true, Ordering::Relaxed);
        }
        drop(s);
        if wake {
            self.ready.notify_one();
        }
        Ok(())
    }

    /// Wake the writer if lines wait unsignalled; for a thread about to go idle.
    ///
    /// # Performance
    /// One relaxed load when nothing waits. A flag set by another thread may be missed; that
    /// thread signals when it goes idle itself.
    pub fn signal(&self) {
        if !self.unsignalled.load(Ordering::Relaxed) {
            return;
        }
        let mut s = self.lock();
        self.unsignalled.store(false, Ordering::Relaxed);
        if s.waiting && !s.batch.is_empty() {
            s.waiting = false;
            drop(s);
            self.ready.notify_one();
        }
    }

    /// Stop accepting lines; the writer writes what is queued and then ends.
    pub fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_one();
    }

    /// Never panics on a poisoned lock: the state is a byte buffer and two flags, valid after any
    /// panic of a holder (and no holder runs code that can panic).
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Swap the queued lines into `spare`; when there are none, first sleep until woken, the
    /// queue closed, or `backstop` passed with lines queued. `false` once the queue is closed and
    /// drained.
    fn take(&self, spare: &mut Vec<u8>) -> bool {
        let mut s = self.lock();
        // Lines queued while the last batch was being written go out at once: nobody will signal
        // them (they were pushed while the writer was awake).
        if s.batch.is_empty() && !s.closed {
            s.waiting = true;
            loop {
                let (guard, wait) = self
                    .ready
                    .wait_timeout(s, self.backstop)
                    .unwrap_or_else(PoisonError::into_inner);
                s = guard;
                let woken = !s.waiting;
                if woken || s.closed || (wait.timed_out() && !s.batch.is_empty()) {
                    break;
                }
            }
            s.waiting = false;
            self.unsignalled.store(false, Ordering::Relaxed);
        }
        std::mem::swap(&mut s.batch, spare);
        !(s.closed && spare.is_empty())
    }
}

/// Start the writer thread: it hands every batch to `out` until the queue is closed and drained.
/// A failed write loses that batch (the output is gone; nothing better can be done with it).
pub fn spawn<F>(queue: Arc<Queue>, mut out: F) -> io::Result<JoinHandle<()>>
where
    F: FnMut(&[u8]) -> io::Result<()> + Send + 'static,
{
    std::thread::Builder::new()
        .name("vpcguard-access-log".to_owned())
        .spawn(move || {
            let mut batch = Vec::with_capacity(KEEP_CAPACITY);
            while queue.take(&mut batch) {
                if !batch.is_empty() {
                    let _ = out(&batch);
                }
                batch.clear();
                batch.shrink_to(KEEP_CAPACITY);
            }
        })
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use super::*;

    /// An output that forwards every batch to the test.
    fn channel_out() -> (
        impl FnMut(&[u8]) -> io::Result<()> + Send + 'static,
        mpsc::Receiver<Vec<u8>>,
    ) {
        let (tx, rx) = mpsc::channel();
        let out = move |b: &[u8]| {
            let _ = tx.send(b.to_vec());
            Ok(())
        };
        (out, rx)
    }

    const LONG: Duration = Duration::from_secs(3600);

    /// Wait until the writer sleeps. No event exists for it: poll the state it sets under the
    /// lock before sleeping.
    fn until_sleeping(q: &Queue) {
        while !q.lock().waiting {
            std::thread::yield_now();
        }
    }

    #[test]
    fn writer_push_does_not_wake_it_and_signal_does() {
        let q = Queue::new(1 << 20, 1 << 20, LONG);
        let (out, rx) = channel_out();
        let thread = spawn(q.clone(), out).unwrap();
        for line in ["a\n", "b\n"] {
            until_sleeping(&q);
            q.push(line.as_bytes()).unwrap();
            // No wake-up per line: the request task made no system call.
            assert!(rx.recv_timeout(Duration::from_millis(50)).is_err());
            // The worker goes idle: the line goes out on its own, not held for a fuller batch.
            q.signal();
            let got = rx.recv_timeout(Duration::from_secs(10)).unwrap();
            assert_eq!(got, line.as_bytes());
        }
        q.close();
        thread.join().unwrap();
    }

    #[test]
    fn writer_batch_reaching_wake_bytes_wakes_it() {
        let q = Queue::new(1 << 20, 10, LONG);
        let (out, rx) = channel_out();
        let thread = spawn(q.clone(), out).unwrap();
        until_sleeping(&q);
        q.push(b"12345\n").unwrap();
        q.push(b"6789\n").unwrap();
        let got = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(got, b"12345\n6789\n");
        q.close();
        thread.join().unwrap();
    }

    #[test]
    fn writer_backstop_writes_unsignalled_lines() {
        let q = Queue::new(1 << 20, 1 << 20, Duration::from_millis(10));
        let (out, rx) = channel_out();
        let thread = spawn(q.clone(), out).unwrap();
        until_sleeping(&q);
        q.push(b"nobody signals\n").unwrap();
        let got = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(got, b"nobody signals\n");
        q.close();
        thread.join().unwrap();
    }

    #[test]
    fn writer_close_writes_everything_queued_then_ends() {
        let q = Queue::new(1 << 20, 1 << 20, LONG);
        let (out, rx) = channel_out();
        let thread = spawn(q.clone(), out).unwrap();
        let mut want = Vec::new();
        for i in 0..1000 {
            let line = format!("line {i}\n");
            q.push(line.as_bytes()).unwrap();
            want.extend_from_slice(line.as_bytes());
        }
        q.close();
        thread.join().unwrap();
        let got: Vec<u8> = rx.try_iter().flatten().collect();
        assert_eq!(got, want);
        assert_eq!(q.push(b"late\n"), Err(Dropped));
    }

    #[test]
    fn writer_blocked_output_drops_lines_over_the_limit_and_keeps_whole_lines() {
        let q = Queue::new(30, 1, LONG);
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let (entered_tx, entered_rx) = mpsc::channel::<()>();
        let (out, rx) = channel_out();
        let mut out = out;
        // The first write blocks until the test releases it: stdout stuck on a full pipe.
        let mut first = true;
        let blocking = move |b: &[u8]| {
            if std::mem::take(&mut first) {
                let _ = entered_tx.send(());
                let _ = release_rx.recv();
            }
            out(b)
        };
        let thread = spawn(q.clone(), blocking).unwrap();
        q.push(b"first\n").unwrap();
        entered_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        // The writer is stuck; 30 bytes fit (three 10-byte lines), the rest is dropped.
        let results: Vec<_> = (0..5)
            .map(|i| q.push(format!("queued {i}\n").as_bytes()))
            .collect();
        assert_eq!(
            results,
            [Ok(()), Ok(()), Ok(()), Err(Dropped), Err(Dropped)]
        );
        release_tx.send(()).unwrap();
        q.close();
        thread.join().unwrap();
        let got: Vec<u8> = rx.try_iter().flatten().collect();
        assert_eq!(
            String::from_utf8(got).unwrap(),
            "first\nqueued 0\nqueued 1\nqueued 2\n"
        );
    }

    #[test]
    fn writer_failed_output_loses_that_batch_and_goes_on() {
        let q = Queue::new(1 << 20, 1, LONG);
        let (ok_out, rx) = channel_out();
        let mut ok_out = ok_out;
        let (failed_tx, failed_rx) = mpsc::channel::<()>();
        let mut first = true;
        let out = move |b: &[u8]| {
            if std::mem::take(&mut first) {
                let _ = failed_tx.send(());
                return Err(io::Error::from(io::ErrorKind::BrokenPipe));
            }
            ok_out(b)
        };
        let thread = spawn(q.clone(), out).unwrap();
        q.push(b"lost\n").unwrap();
        // The first batch has been taken (and failed); the next line starts a new batch.
        failed_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        q.push(b"kept\n").unwrap();
        q.close();
        thread.join().unwrap();
        let got: Vec<u8> = rx.try_iter().flatten().collect();
        assert_eq!(got, b"kept\n");
    }
}
