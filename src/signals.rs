//! Process signals: SIGTERM/SIGINT start the graceful shutdown (SPEC §10); SIGHUP reloads the
//! config, policy and TLS files through the same load path as startup (SPEC §8), keeping the
//! current generation when the new files are invalid.

use std::path::Path;

use tokio::signal::unix::{SignalKind, signal};

use crate::app::App;
use crate::metrics::ReloadFile;

/// Serve signals until SIGTERM or SIGINT, then begin the shutdown and return.
pub async fn run_until_shutdown(app: &App, config_path: &Path) {
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
            _ = hup.recv() => reload(app, config_path),
        }
    }
    tracing::info!("shutdown signal received: readiness off, draining");
    app.shutdown();
}

/// Load everything anew and publish it, or keep the current generation and count the failure.
pub fn reload(app: &App, config_path: &Path) {
    let m = &app.shared.metrics;
    match crate::config::load(config_path) {
        Ok(loaded) => {
            let generation = app.shared.publish(loaded);
            for f in [ReloadFile::Config, ReloadFile::Policy] {
                m.config_reloads_total
                    .with_label_values(&[f.as_str(), "success"])
                    .inc();
            }
            m.config_last_reload_successful.set(1);
            m.config_last_reload_success_timestamp_seconds
                .set(crate::time::unix_now() as i64);
            tracing::info!(generation, "reloaded");
        }
        Err(e) => {
            let file = match e {
                crate::config::ConfigError::Policy { .. } => ReloadFile::Policy,
                crate::config::ConfigError::Tls { .. } => ReloadFile::Tls,
                _ => ReloadFile::Config,
            };
            m.config_reloads_total
                .with_label_values(&[file.as_str(), "failure"])
                .inc();
            m.config_last_reload_successful.set(0);
            tracing::error!(error = %e, "reload failed; keeping the current rules");
        }
    }
}
