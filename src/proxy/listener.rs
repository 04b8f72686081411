//! The data-plane accept loop: connection limit, one task per connection, and the drain on
//! shutdown (docs/contract.md §10).
//!
//! Owns: accepting, `limits.max_connections` (an over-limit connection is closed at once and
//! counted as `connection_rejects_total{reason="limit"}`; a tunnel keeps its connection's slot),
//! and the drain: the graceful-shutdown handle every connection is watched by, and the register of
//! tunnels, which are waited for like requests and closed at the end of the grace.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::drain::Drain;
use super::tunnel::{ConnSlot, Tunnels};
use crate::metrics::RejectReason;
use crate::state::Shared;

/// Accept until `stop` fires, then stop accepting (the listener is dropped, so new connections
/// are refused by the kernel) and let in-flight requests and open tunnels finish for up to
/// `grace`; tunnels still open then are closed.
pub async fn run(
    listener: TcpListener,
    shared: Arc<Shared>,
    tls: Option<TlsAcceptor>,
    stop: CancellationToken,
    max_connections: usize,
    grace: Duration,
) {
    let graceful = Drain::new();
    let permits = Arc::new(Semaphore::new(max_connections));
    let tunnels = Tunnels::new(shared.metrics.tunnels_active.clone());
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
        let slot = ConnSlot::new(permit, shared.clone(), tunnels.clone());
        tokio::spawn(super::conn::serve(
            shared.clone(),
            stream,
            peer,
            tls.clone(),
            watcher,
            slot,
        ));
    }
    drop(listener);
    tracing::info!("listener closed; draining in-flight requests");
    let drained = async {
        graceful.shutdown().await;
        tunnels.all_closed().await;
    };
    match tokio::time::timeout(grace, drained).await {
        Ok(()) => tracing::info!("all connections drained"),
        Err(_) => tracing::warn!(
            ?grace,
            "shutdown_grace elapsed with requests or tunnels still open; closing tunnels"
        ),
    }
    tunnels.close_all();
    // A closed tunnel only drops its two sockets.
    let _ = tokio::time::timeout(TUNNEL_CLOSE, tunnels.all_closed()).await;
}

/// How long the closing tunnels get to let go of their sockets after the grace.
const TUNNEL_CLOSE: Duration = Duration::from_secs(1);
