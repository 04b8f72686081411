//! The hand-off from request tasks to one dedicated writer thread: request tasks append finished
//! lines to a bounded in-memory batch; the thread swaps the batch out and writes it in one call.
//!
//! Why a thread: a write to stdout can block (a full pipe, a slow log collector), and a blocked
//! tokio worker stalls every connection it serves. Why batches: one `write` per batch, not per
//! line; the thread writes as soon as lines are waiting, so under light load every line goes out
//! at once and under heavy load lines coalesce while the previous write runs. Why bounded: when
//! the output stays blocked the batch stops growing and further lines are dropped (the caller
//! counts them) instead of buffering without limit.
//!
//! Does I/O only through the `out` function the thread is given.

use std::io;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

/// A line was not queued: the batch was full (output blocked) or the writer has stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dropped;

/// The shared batch between request tasks and the writer thread.
#[derive(Debug)]
pub struct Queue {
    state: Mutex<State>,
    /// Signalled when lines arrive while the writer waits, and on close.
    ready: Condvar,
    /// Most bytes waiting at once.
    limit: usize,
}

#[derive(Debug, Default)]
struct State {
    batch: Vec<u8>,
    /// The writer is (about to be) asleep on `ready`: the next push must wake it.
    waiting: bool,
    closed: bool,
}

/// The writer keeps at most this much capacity between batches (a burst may grow it further).
const KEEP_CAPACITY: usize = 64 * 1024;

impl Queue {
    /// An open queue holding at most `limit` bytes of unwritten lines.
    pub fn new(limit: usize) -> Arc<Queue> {
        Arc::new(Queue {
            state: Mutex::new(State::default()),
            ready: Condvar::new(),
            limit,
        })
    }

    /// Queue one complete line (with its newline).
    ///
    /// # Performance
    /// A short critical section (one copy of the line); wakes the writer (a futex call) only when
    /// it is idle, so a busy writer costs producers no system call.
    pub fn push(&self, line: &[u8]) -> Result<(), Dropped> {
        let mut s = self.lock();
        if s.closed || s.batch.len() + line.len() > self.limit {
            return Err(Dropped);
        }
        s.batch.extend_from_slice(line);
        let wake = std::mem::take(&mut s.waiting);
        drop(s);
        if wake {
            self.ready.notify_one();
        }
        Ok(())
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

    /// Block until lines are queued or the queue is closed; swap the batch into `spare`. `false`
    /// when the queue is closed and drained.
    fn take(&self, spare: &mut Vec<u8>) -> bool {
        let mut s = self.lock();
        while s.batch.is_empty() && !s.closed {
            s.waiting = true;
            s = self.ready.wait(s).unwrap_or_else(PoisonError::into_inner);
        }
        s.waiting = false;
        std::mem::swap(&mut s.batch, spare);
        !spare.is_empty()
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
                let _ = out(&batch);
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

    #[test]
    fn writer_idle_line_is_written_without_waiting_for_more() {
        let q = Queue::new(1 << 20);
        let (out, rx) = channel_out();
        let thread = spawn(q.clone(), out).unwrap();
        for line in ["a\n", "b\n"] {
            q.push(line.as_bytes()).unwrap();
            // Each line arrives on its own: nothing holds it back for a fuller batch.
            let got = rx.recv_timeout(Duration::from_secs(10)).unwrap();
            assert_eq!(got, line.as_bytes());
        }
        q.close();
        thread.join().unwrap();
    }

    #[test]
    fn writer_close_writes_everything_queued_then_ends() {
        let q = Queue::new(1 << 20);
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
        let q = Queue::new(30);
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
        let q = Queue::new(1 << 20);
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
