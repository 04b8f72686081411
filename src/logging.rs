//! Process-wide tracing setup from `log:` (SPEC §2): JSON lines or text, level overridden by
//! `RUST_LOG`. The access log is the `vpcguard::access` target, one event per request.

use tracing_subscriber::EnvFilter;

use crate::config::model::{Log, LogFormat};

/// Install the global subscriber (once; later calls are ignored).
pub fn init(log: &Log) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&log.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stdout);
    let _ = match log.format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
