//! The admin REST API mirroring the seed APIs (docs/contract.md §7 table, rows with a seed). Routes:
//!
//! | route | file | seed |
//! |---|---|---|
//! | `GET/POST/DELETE /v2/vpceps`, `PUT /v2/vpceps/settings` | `vpceps.rs` | vpcep-management |
//! | `GET /v1/vpcep-authorization` | `authorization.rs` | check-vpcep-authorization |
//! | `GET /v1/{project_id}/vpc-endpoint-services/{service_id}/connections[/action]` | `connections.rs` | accept-reject |
//! | `GET/POST /v4/tenant/trusted-ip-addresses`, `PUT/DELETE …/{id}` | `trusted_ips.rs` | trusted-ip-whitelist |
//! | `POST /v1/job/project/permission` | `project.rs` | build-project-permission |
//!
//! Handlers are thin: parse and validate the input (`params.rs`), then read
//! `shared.current().policy.file()` or change the policy through
//! [`Writer::mutate`](crate::reload::Writer::mutate), which re-reads the file, validates the whole
//! result, writes it atomically and publishes — so a 200 means on disk and enforced. The pure
//! parts (record → seed JSON, applying a change to a [`PolicyFile`]) are plain functions with unit
//! tests. Authentication happens before any of this, in the admin router's guard.
//!
//! Does I/O only through the writer; reads are lock-free snapshot loads.

mod authorization;
mod connections;
pub mod params;
mod project;
mod trusted_ips;
mod vpceps;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use sha2::{Digest, Sha256};

use super::error::ApiError;
use super::{AdminState, ErrorShape, api_error};
use crate::policy::{PolicyFile, Tenant};

/// The REST routes, merged into the admin router (behind its authentication guard).
pub fn router() -> Router<AdminState> {
    Router::new()
        .route(
            "/v2/vpceps",
            get(vpceps::list).post(vpceps::add).delete(vpceps::remove),
        )
        .route("/v2/vpceps/settings", put(vpceps::settings))
        .route("/v1/vpcep-authorization", get(authorization::check))
        .route(
            "/v1/{project_id}/vpc-endpoint-services/{service_id}/connections",
            get(connections::list),
        )
        .route(
            "/v1/{project_id}/vpc-endpoint-services/{service_id}/connections/action",
            post(connections::action),
        )
        .route(
            "/v4/tenant/trusted-ip-addresses",
            get(trusted_ips::list).post(trusted_ips::create),
        )
        .route(
            "/v4/tenant/trusted-ip-addresses/{id}",
            put(trusted_ips::update).delete(trusted_ips::remove),
        )
        .route("/v1/job/project/permission", post(project::permission))
        .fallback(not_found)
}

/// Unknown routes answer in the shape of the API they look like, not axum's empty 404.
async fn not_found(uri: Uri) -> Response {
    api_error(
        ErrorShape::for_path(uri.path()),
        StatusCode::NOT_FOUND,
        "UC.00011005",
        "no such API",
    )
}

/// A handler's result in the flat `{"error_code","error_msg"}` shape.
fn flat(r: Result<Response, ApiError>) -> Response {
    r.unwrap_or_else(|e| e.into_response(ErrorShape::Flat))
}

/// A handler's result in the endpoint-service API's nested `{"error":{"code","message"}}` shape.
fn nested(r: Result<Response, ApiError>) -> Response {
    r.unwrap_or_else(|e| e.into_response(ErrorShape::Nested))
}

/// A 200 JSON response.
fn ok_json(v: serde_json::Value) -> Response {
    axum::Json(v).into_response()
}

/// The whole request body, at most [`params::MAX_BODY`] bytes.
async fn read_body(body: Body) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, params::MAX_BODY)
        .await
        .map_err(|_| {
            ApiError::bad_param(format!(
                "the request body could not be read or is larger than {} bytes",
                params::MAX_BODY
            ))
        })
}

/// The name of the admin token that made this (already authenticated) call, recorded as the
/// `creator` of what it adds.
fn caller(st: &AdminState, headers: &HeaderMap) -> Option<String> {
    let presented = headers.get("x-auth-token")?;
    let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
    st.shared
        .current()
        .config
        .admin
        .tokens
        .iter()
        .find(|t| t.sha256 == digest)
        .map(|t| t.name.clone())
}

/// The tenant `enterprise_id` of `file`, or 404 `UC.00011005`.
fn tenant<'f>(file: &'f PolicyFile, enterprise_id: &str) -> Result<&'f Tenant, ApiError> {
    file.tenants
        .iter()
        .find(|t| *t.enterprise_id.get() == enterprise_id)
        .ok_or_else(|| unknown_tenant(enterprise_id))
}

/// [`tenant`], mutable.
fn tenant_mut<'f>(
    file: &'f mut PolicyFile,
    enterprise_id: &str,
) -> Result<&'f mut Tenant, ApiError> {
    file.tenants
        .iter_mut()
        .find(|t| *t.enterprise_id.get() == enterprise_id)
        .ok_or_else(|| unknown_tenant(enterprise_id))
}

fn unknown_tenant(enterprise_id: &str) -> ApiError {
    ApiError::not_found(format!(
        "enterprise_id {enterprise_id:?} is not a tenant of the policy"
    ))
}

/// An optional string as the seeds write it: absent is `""`.
fn text(v: Option<&str>) -> &str {
    v.unwrap_or("")
}
