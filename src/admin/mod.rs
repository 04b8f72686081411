//! The admin listener (docs/contract.md §7, §9), never on the data-plane port. Routes:
//!
//! | route | auth | does |
//! |---|---|---|
//! | `GET /metrics` | none | Prometheus text of the private registry |
//! | `GET /healthz` | none | 200 while the process serves |
//! | `GET /readyz` | none | 200 when rules are loaded, 503 while draining |
//! | `GET /status` | read | version, uptime, generation, sha256s, last reload, entry counts |
//! | `POST /-/reload` | write | reload now: 200 with the generation, or 400 with the error |
//! | the seed REST APIs | read (GET) / write | see `api/mod.rs` |
//!
//! Every request passes [`guard`]: authentication (`auth.rs`) and `admin_requests_total`.

pub mod api;
pub mod auth;
pub mod error;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::metrics::AdminRoute;
use crate::reload::{Outcome, Trigger, Writer};
use crate::state::Shared;

/// What handlers see.
#[derive(Clone, Debug)]
pub struct AdminState {
    pub shared: Arc<Shared>,
    pub writer: Writer,
    pub started: Instant,
}

/// The admin routes over `state`.
pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/status", get(status))
        .route("/-/reload", post(reload))
        .merge(api::router())
        .layer(axum::middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state)
}

/// Serve the admin API on `listener` until `stop` fires.
pub async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    writer: Writer,
    stop: CancellationToken,
) {
    let app = router(AdminState {
        shared,
        writer,
        started: Instant::now(),
    });
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await;
    if let Err(e) = result {
        tracing::error!(error = %e, "admin listener failed");
    }
}

/// Authenticate, run the handler, count the request by route and status.
async fn guard(State(st): State<AdminState>, req: Request, next: Next) -> Response {
    let route = route_label(req.uri().path());
    let need = auth::need(req.method(), req.uri().path());
    let presented = req
        .headers()
        .get("x-auth-token")
        .map(|v| v.as_bytes().to_vec());
    let cur = st.shared.current();
    let verdict = auth::authorize(&cur.config.admin.tokens, presented.as_deref(), need);
    drop(cur);
    let resp = match verdict {
        Ok(()) => next.run(req).await,
        Err(e) => {
            let shape = ErrorShape::for_path(req.uri().path());
            api_error(
                shape,
                StatusCode::UNAUTHORIZED,
                "UC.00010002",
                &e.to_string(),
            )
        }
    };
    st.shared
        .metrics
        .admin_requests_total
        .with_label_values(&[route, status_label(resp.status())])
        .inc();
    resp
}

/// The `route` label: a closed set ([`AdminRoute`]), never the raw path.
pub fn route_label(path: &str) -> &'static str {
    admin_route(path).as_str()
}

/// The route `path` belongs to, for `admin_requests_total{route}`.
pub fn admin_route(path: &str) -> AdminRoute {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    match segs.as_slice() {
        ["metrics"] => AdminRoute::Metrics,
        ["healthz"] => AdminRoute::Healthz,
        ["readyz"] => AdminRoute::Readyz,
        ["status"] => AdminRoute::Status,
        ["-", "reload"] => AdminRoute::Reload,
        ["v2", "vpceps"] => AdminRoute::Vpceps,
        ["v2", "vpceps", "settings"] => AdminRoute::VpcepsSettings,
        ["v1", "vpcep-authorization"] => AdminRoute::VpcepAuthorization,
        ["v1", _, "vpc-endpoint-services", _, "connections"] => AdminRoute::Connections,
        ["v1", _, "vpc-endpoint-services", _, "connections", "action"] => {
            AdminRoute::ConnectionsAction
        }
        ["v4", "tenant", "trusted-ip-addresses", ..] => AdminRoute::TrustedIpAddresses,
        ["v1", "job", "project", "permission"] => AdminRoute::ProjectPermission,
        _ => AdminRoute::Other,
    }
}

/// The `status` label: the code for the ones the API answers, `other` for anything else.
pub fn status_label(status: StatusCode) -> &'static str {
    match status.as_u16() {
        200 => "200",
        400 => "400",
        401 => "401",
        404 => "404",
        405 => "405",
        409 => "409",
        413 => "413",
        415 => "415",
        422 => "422",
        500 => "500",
        503 => "503",
        _ => "other",
    }
}

/// The error body shapes of the seed APIs (docs/contract.md §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorShape {
    /// `{"error_code": …, "error_msg": …}` (CodeArts APIs, and vpcguard's own routes).
    Flat,
    /// `{"error": {"code": …, "message": …}}` (the VPC endpoint service API).
    Nested,
}

impl ErrorShape {
    /// The shape the API at `path` uses.
    pub fn for_path(path: &str) -> ErrorShape {
        if path.contains("/vpc-endpoint-services/") {
            ErrorShape::Nested
        } else {
            ErrorShape::Flat
        }
    }
}

/// An error response in `shape`.
pub fn api_error(shape: ErrorShape, status: StatusCode, code: &str, msg: &str) -> Response {
    let body = match shape {
        ErrorShape::Flat => serde_json::json!({"error_code": code, "error_msg": msg}),
        ErrorShape::Nested => serde_json::json!({"error": {"code": code, "message": msg}}),
    };
    (status, axum::Json(body)).into_response()
}

async fn reload(State(st): State<AdminState>) -> Response {
    match st.writer.reload(Trigger::Admin).await {
        Outcome::Published { generation } => axum::Json(
            serde_json::json!({"status": "ok", "result": "reloaded", "generation": generation}),
        )
        .into_response(),
        Outcome::Unchanged { generation } => axum::Json(
            serde_json::json!({"status": "ok", "result": "unchanged", "generation": generation}),
        )
        .into_response(),
        Outcome::Failed { error } => api_error(
            ErrorShape::Flat,
            StatusCode::BAD_REQUEST,
            "UC.00011002",
            &error,
        ),
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
    } else if !st.shared.is_policy_ready() {
        (StatusCode::SERVICE_UNAVAILABLE, "rules not loaded\n")
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
        "generation": cur.number,
        "config_sha256": cur.config_sha256,
        "policy_sha256": cur.policy_sha256,
        "draining": st.shared.is_draining(),
        "store": st.shared.store_status().map_or_else(
            || serde_json::json!({"kind": "file"}),
            |s| serde_json::json!(s),
        ),
        "last_reload": st.shared.last_reload(),
        "entries": {
            "tenant": c.tenants, "vpcep": c.vpceps, "ip_range": c.ip_ranges,
            "connection": c.connections, "project": c.projects,
        },
        "pending_connections": st.shared.pending().iter().map(|p| serde_json::json!({
            "service_id": p.service_id, "marker_id": p.marker_id, "first_seen": p.first_seen,
        })).collect::<Vec<_>>(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_route_every_label_has_a_path_and_precreated_statuses_are_status_labels() {
        const PATHS: &[(&str, AdminRoute)] = &[
            ("/metrics", AdminRoute::Metrics),
            ("/healthz", AdminRoute::Healthz),
            ("/readyz", AdminRoute::Readyz),
            ("/status", AdminRoute::Status),
            ("/-/reload", AdminRoute::Reload),
            ("/v2/vpceps", AdminRoute::Vpceps),
            ("/v2/vpceps/settings", AdminRoute::VpcepsSettings),
            ("/v1/vpcep-authorization", AdminRoute::VpcepAuthorization),
            (
                "/v1/p/vpc-endpoint-services/s/connections",
                AdminRoute::Connections,
            ),
            (
                "/v1/p/vpc-endpoint-services/s/connections/action",
                AdminRoute::ConnectionsAction,
            ),
            (
                "/v4/tenant/trusted-ip-addresses/7",
                AdminRoute::TrustedIpAddresses,
            ),
            ("/v1/job/project/permission", AdminRoute::ProjectPermission),
            ("/nope", AdminRoute::Other),
        ];
        for (path, want) in PATHS {
            assert_eq!(admin_route(path), *want, "case {path}");
        }
        for route in AdminRoute::ALL {
            assert!(
                PATHS.iter().any(|(_, r)| *r == route),
                "case {route:?}: no path"
            );
            for status in route.statuses() {
                let code = StatusCode::from_bytes(status.as_bytes()).unwrap();
                assert_eq!(status_label(code), *status, "case {route:?} {status}");
            }
        }
    }
}
