//! The admin listener (SPEC §7, §9), never on the data-plane port. Routes:
//!
//! | route | auth | does |
//! |---|---|---|
//! | `GET /metrics` | none | Prometheus text of the private registry |
//! | `GET /healthz` | none | 200 while the process serves |
//! | `GET /readyz` | none | 200 when rules are loaded, 503 while draining |
//! | `GET /status` | none | version, uptime, generation, sha256s, entry counts |

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::state::Shared;

/// What handlers see.
#[derive(Clone, Debug)]
pub struct AdminState {
    pub shared: Arc<Shared>,
    pub started: Instant,
}

/// The admin routes over `state`.
pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/status", get(status))
        .with_state(state)
}

/// Serve the admin API on `listener` until `stop` fires.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>, stop: CancellationToken) {
    let app = router(AdminState {
        shared,
        started: Instant::now(),
    });
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await;
    if let Err(e) = result {
        tracing::error!(error = %e, "admin listener failed");
    }
}

async fn metrics(State(st): State<AdminState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::metrics::render(&st.shared.registry),
    )
}

async fn readyz(State(st): State<AdminState>) -> impl IntoResponse {
    if st.shared.is_draining() {
        (StatusCode::SERVICE_UNAVAILABLE, "draining\n")
    } else {
        (StatusCode::OK, "ready\n")
    }
}

async fn status(State(st): State<AdminState>) -> impl IntoResponse {
    let cur = st.shared.current();
    let c = cur.policy.counts();
    axum::Json(serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": st.started.elapsed().as_secs(),
        "generation": cur.generation,
        "config_sha256": cur.config_sha256,
        "policy_sha256": cur.policy_sha256,
        "draining": st.shared.is_draining(),
        "entries": {
            "tenant": c.tenants, "vpcep": c.vpceps, "ip_range": c.ip_ranges,
            "connection": c.connections, "project": c.projects,
        },
        "pending_connections": st.shared.pending().iter().map(|p| serde_json::json!({
            "service_id": p.service_id, "marker_id": p.marker_id, "first_seen": p.first_seen,
        })).collect::<Vec<_>>(),
    }))
}
