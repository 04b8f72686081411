//! The data-plane accept loop: connection limit, one task per connection, and the drain on
//! shutdown (docs/contract.md §10).
//!
//! Owns: accepting, `limits.max_connections` (an over-limit connection is closed at once and
//! counted as `connection_rejects_total{reason="limit"}`), and the graceful-shutdown handle that
//! every connection is watched by.

use std::sync::Arc;
use std::time::Duration;

use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::metrics::RejectReason;
use crate::state::Shared;

/// Accept until `stop` fires, then stop accepting (the listener is dropped, so new connections
/// are refused by the kernel) and let in-flight requests finish for up to `grace`.
pub async fn run(
    listener: TcpListener,
    shared: Arc<Shared>,
    tls: Option<TlsAcceptor>,
    stop: CancellationToken,
    max_connections: usize,
    grace: Duration,
) {
    let graceful = GracefulShutdown::new();
    let permits = Arc::new(Semaphore::new(max_connections));
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => break,
            r = listener.accept() => r,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // EMFILE and friends: back off briefly instead of spinning on the error.
                tracing::warn!(error = %e, "accept failed");
                #[allow(clippy::disallowed_methods)] // backoff, not synchronisation
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            shared.metrics.count_reject(RejectReason::Limit);
            drop(stream);
            continue;
        };
        let watcher = graceful.watcher();
        tokio::spawn(super::conn::serve(
            shared.clone(),
            stream,
            peer,
            tls.clone(),
            watcher,
            permit,
        ));
    }
    drop(listener);
    tracing::info!("listener closed; draining in-flight requests");
    match tokio::time::timeout(grace, graceful.shutdown()).await {
        Ok(()) => tracing::info!("all connections drained"),
        Err(_) => tracing::warn!(
            ?grace,
            "shutdown_grace elapsed with requests still in flight"
        ),
    }
}
