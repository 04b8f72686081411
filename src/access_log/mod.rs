//! The access log (docs/contract.md §2 `log.access_log`): one line per request, written when its response
//! ends. [`emit`] is called on the request path, so it is built to be cheap:
//!
//! - `log.format: json` (the default): the line is formatted by hand ([`json`], the same bytes
//!   tracing's JSON formatter printed) and queued for one writer thread ([`writer`]) that writes
//!   batches to stdout under the stdout lock — one `write` per batch, never a blocked tokio
//!   worker, never a line interleaved with other log lines. The writer is woken when a worker
//!   goes idle ([`on_worker_park`], installed by `main`), not per line, so a request pays no
//!   system call for its line. When stdout stays blocked and the queue is full, the line is
//!   dropped and [`emit`] says so (counted as `vpcguard_access_log_dropped_total`).
//! - `log.format: text`: the `vpcguard::access` tracing event, as before (text is for humans at a
//!   terminal, not for volume).
//! - Filtered out (`RUST_LOG` / `log.level` hides `vpcguard::access` at INFO): nothing at all. The
//!   filter is asked once, at [`crate::logging::init`]; `log.level` needs a restart anyway
//!   (docs/contract.md §8), and `RUST_LOG` is read once.
//!
//! Without [`crate::logging::init`] (tests, embedding) the tracing event is emitted, so whatever
//! subscriber the embedder installed sees it.
//!
//! Owns the mode and the line; does not own the tracing subscriber (`logging.rs`) or the decision
//! to log a request (`log.access_log`, read per request by `proxy/http.rs`). I/O: the writer
//! thread writes to stdout.

mod json;
mod writer;

use std::cell::RefCell;
use std::io::{self, Write as _};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::SystemTime;

pub use json::{Record, write_line};
pub use writer::Dropped;
use writer::Queue;

/// Most bytes of access lines waiting for stdout (about 4,000 lines); beyond it lines are dropped.
const QUEUE_LIMIT: usize = 2 * 1024 * 1024;
/// A batch this large wakes the writer without waiting for a worker to go idle (~70 lines).
const WAKE_BYTES: usize = 32 * 1024;
/// The writer's longest sleep with lines waiting that nobody signalled (pushed from a thread
/// without the park hook; see `writer.rs`).
const BACKSTOP: std::time::Duration = std::time::Duration::from_millis(100);

/// How access lines leave the process; chosen once by [`crate::logging::init`].
#[derive(Debug)]
enum Mode {
    /// The filter hides `vpcguard::access` at INFO.
    Off,
    /// The `vpcguard::access` tracing event (text format, or no [`crate::logging::init`]).
    Tracing,
    /// Hand-formatted JSON through the writer thread.
    Json(Arc<Queue>),
}

static MODE: OnceLock<Mode> = OnceLock::new();

thread_local! {
    /// Each thread formats into its own reused buffer, so the queue's lock covers only a copy.
    static SCRATCH: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(1024));
}

/// Whether [`emit`] writes anything; `false` lets the request path skip copying what only the
/// line needs.
///
/// # Performance
/// One atomic load.
pub fn enabled() -> bool {
    !matches!(MODE.get(), Some(Mode::Off))
}

/// Write the access line for `rec` (see the module docs for where it goes).
///
/// # Performance
/// JSON: about 2,300 instructions (callgrind) to format and copy the line into the queue, and
/// normally no system call (see `writer.rs` for when the writer is woken). Text: a full tracing
/// event, ~35,000 instructions and a `write`.
pub fn emit(rec: &Record<'_>) -> Result<(), Dropped> {
    match MODE.get() {
        Some(Mode::Off) => Ok(()),
        Some(Mode::Json(queue)) => SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
            Ok(mut buf) => push_json(queue, rec, &mut buf),
            // Only reachable if formatting re-entered `emit` on this thread; never panic for it.
            Err(_) => push_json(queue, rec, &mut Vec::new()),
        }),
        Some(Mode::Tracing) | None => {
            emit_event(rec);
            Ok(())
        }
    }
}

fn push_json(queue: &Queue, rec: &Record<'_>, buf: &mut Vec<u8>) -> Result<(), Dropped> {
    buf.clear();
    json::write_line(rec, SystemTime::now(), buf);
    queue.push(buf)
}

/// Hook for tokio's `on_thread_park`: a worker with nothing left to do hands the lines it queued
/// to the writer (one wake-up for everything queued since the writer last slept).
///
/// # Performance
/// One atomic load when nothing is waiting; the runtime is about to block in `epoll_wait`
/// anyway.
pub fn on_worker_park() {
    if let Some(Mode::Json(queue)) = MODE.get() {
        queue.signal();
    }
}

/// The tracing event the access log has always been; the JSON path reproduces its output.
fn emit_event(rec: &Record<'_>) {
    tracing::info!(
        target: "vpcguard::access",
        request_id = rec.request_id,
        peer = %rec.peer,
        client_ip = %rec.client_ip,
        method = %rec.method,
        path = %rec.path,
        version = ?rec.version,
        status = rec.status,
        decision = rec.decision,
        reason = rec.reason,
        tenant = rec.tenant,
        vpcep_id = rec.vpcep_id,
        bytes_sent = rec.bytes_sent,
        complete = rec.complete,
        duration_ms = rec.duration_ms,
        upstream_ms = rec.upstream_ms,
        error = rec.error,
        "access"
    );
}

/// Keeps the writer thread of the JSON access log; dropping it writes every queued line and ends
/// the thread. `main` drops it before its last log line, so access lines of requests that
/// finished before shutdown are on stdout before the process exits (docs/contract.md §10).
#[derive(Debug, Default)]
#[must_use = "dropping the guard stops the access log writer"]
pub struct Guard {
    writer: Option<(Arc<Queue>, JoinHandle<()>)>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some((queue, thread)) = self.writer.take() {
            queue.close();
            let _ = thread.join();
        }
    }
}

/// What `logging::init` learned once its subscriber was installed.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Setup {
    /// The filter hides `vpcguard::access` at INFO.
    Filtered,
    /// Leave the access log to the tracing subscriber.
    Tracing,
    /// Write JSON lines to stdout through the writer thread.
    JsonStdout,
}

/// Choose the mode, once per process (later calls change nothing and return an empty guard).
pub(crate) fn install(setup: Setup) -> Guard {
    if MODE.get().is_some() {
        return Guard::default();
    }
    let (mode, guard) = match setup {
        Setup::Filtered => (Mode::Off, Guard::default()),
        Setup::Tracing => (Mode::Tracing, Guard::default()),
        Setup::JsonStdout => {
            let queue = Queue::new(QUEUE_LIMIT, WAKE_BYTES, BACKSTOP);
            match writer::spawn(queue.clone(), write_stdout) {
                Ok(thread) => (
                    Mode::Json(queue.clone()),
                    Guard {
                        writer: Some((queue, thread)),
                    },
                ),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot start the access log writer thread; access lines go through tracing");
                    (Mode::Tracing, Guard::default())
                }
            }
        }
    };
    match MODE.set(mode) {
        Ok(()) => guard,
        // Lost a race with another install: keep its mode, stop this writer (the guard's drop).
        Err(_) => Guard::default(),
    }
}

/// One batch of whole lines under the stdout lock, so tracing's own lines (each written under the
/// same lock) never land inside an access line.
fn write_stdout(batch: &[u8]) -> io::Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(batch)?;
    out.flush()
}

#[cfg(test)]
mod tests;
