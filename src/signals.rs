//! Process signals: SIGTERM/SIGINT start the graceful shutdown (docs/contract.md §10); SIGHUP asks the writer
//! (`reload.rs`) to reload the config, policy and TLS files (docs/contract.md §8).

use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::app::App;
use crate::reload::Trigger;

/// The process's signal streams, installed before the service announces itself: until a
/// handler exists, SIGHUP's default action terminates the process, so a supervisor that sends
/// SIGHUP right after "vpcguard listening" must find it installed.
pub struct Signals {
    term: Signal,
    int: Signal,
    hup: Signal,
}

impl Signals {
    /// Install the SIGTERM, SIGINT and SIGHUP handlers.
    pub fn install() -> std::io::Result<Self> {
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    /// Serve signals until SIGTERM or SIGINT, then begin the shutdown and return.
    pub async fn run_until_shutdown(mut self, app: &App) {
        loop {
            tokio::select! {
                _ = self.term.recv() => break,
                _ = self.int.recv() => break,
                _ = self.hup.recv() => {
                    // Not awaited, so a SIGTERM is never held up by a slow load; the writer logs
                    // and counts the outcome.
                    app.writer.request_reload(Trigger::Signal);
                }
            }
        }
        tracing::info!("shutdown signal received: readiness off, draining");
        app.shutdown();
    }
}
