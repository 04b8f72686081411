//! Process signals: SIGTERM/SIGINT start the graceful shutdown (SPEC §10); SIGHUP asks the writer
//! (`reload.rs`) to reload the config, policy and TLS files (SPEC §8).

use tokio::signal::unix::{SignalKind, signal};

use crate::app::App;
use crate::reload::Trigger;

/// Serve signals until SIGTERM or SIGINT, then begin the shutdown and return.
pub async fn run_until_shutdown(app: &App) {
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        tracing::error!("cannot install signal handlers; shutting down");
        app.shutdown();
        return;
    };
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => {
                // Not awaited, so a SIGTERM is never held up by a slow load; the writer logs
                // and counts the outcome.
                app.writer.request_reload(Trigger::Signal);
            }
        }
    }
    tracing::info!("shutdown signal received: readiness off, draining");
    app.shutdown();
}
