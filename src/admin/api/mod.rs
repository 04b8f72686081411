//! The admin REST API mirroring the seed APIs (SPEC §7 table, rows with a seed). Every mutation
//! goes through [`Writer::mutate`](crate::reload::Writer::mutate).

use axum::Router;

use super::AdminState;

/// The REST routes, merged into the admin router (behind its authentication guard).
pub fn router() -> Router<AdminState> {
    Router::new()
}
