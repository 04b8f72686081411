//! Process-wide tracing setup from `log:` (docs/contract.md §2): JSON lines or text, level overridden by
//! `RUST_LOG`. The access log is the `vpcguard::access` target, one line per request; how it is
//! written (by hand and through its own thread for JSON) is decided here, once, and done by
//! [`crate::access_log`].

use tracing_subscriber::EnvFilter;

use crate::access_log::{self, Setup};
use crate::config::model::{Log, LogFormat};

/// Install the global subscriber and choose how access lines are written (once; later calls
/// change nothing). Keep the returned guard until the end of `main`: dropping it writes the
/// access lines still queued.
pub fn init(log: &Log) -> access_log::Guard {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&log.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stdout);
    let installed = match log.format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
        LogFormat::Text => builder.try_init(),
    };
    if installed.is_err() {
        // Someone else's subscriber: leave the access log to it.
        return access_log::Guard::default();
    }
    // Asked once: the filter is fixed for the life of the process (`log.level` changes need a
    // restart, docs/contract.md §8). Per-span filter directives cannot apply: access lines are outside spans.
    let setup = if !tracing::enabled!(target: "vpcguard::access", tracing::Level::INFO) {
        Setup::Filtered
    } else if log.format == LogFormat::Json {
        Setup::JsonStdout
    } else {
        Setup::Tracing
    };
    access_log::install(setup)
}
