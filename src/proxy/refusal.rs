//! A refusal: why the proxy answers a request itself (a denial, a protocol error, a failed
//! forward), and the one place that counts, logs and renders it (rpxy's `handler_main.rs` split:
//! the pipeline's inner stages return a [`Refusal`], `http::handle` renders it once).
//!
//! No I/O.

use http::Response;

use super::canon;
use super::record::RequestRecord;
use crate::body::ProxyBody;
use crate::error::{self, ErrorCode};
use crate::metrics::{DecisionLabel, RequestReason, RequestRejectReason};
use crate::state::Shared;
use crate::upstream::ForwardError;

/// Why the proxy answers a request itself instead of passing on the upstream's answer.
#[derive(Debug)]
pub(super) struct Refusal {
    /// The documented code the client gets.
    code: ErrorCode,
    /// Denied before forwarding: counted as `requests_total{decision="deny",reason}`.
    pub(super) denied: Option<RequestReason>,
    /// The access log's `error` field.
    pub(super) error: Option<&'static str>,
    /// Forwarding failed: the cause, for the log (and its kind for `upstream_errors_total`).
    forward: Option<ForwardError>,
    /// No canonical form: counted as `request_rejects_total{reason}`.
    rejected: Option<RequestRejectReason>,
}

impl Refusal {
    pub(super) fn deny(
        code: ErrorCode,
        reason: RequestReason,
        error: Option<&'static str>,
    ) -> Self {
        Self {
            code,
            denied: Some(reason),
            error,
            forward: None,
            rejected: None,
        }
    }

    pub(super) fn rejected(r: canon::Rejected) -> Self {
        Self {
            code: r.code,
            denied: None,
            error: Some(r.error),
            forward: None,
            rejected: Some(r.reason),
        }
    }

    pub(super) fn body_too_large() -> Self {
        Self {
            code: ErrorCode::BodyTooLarge,
            denied: None,
            error: Some("body_too_large"),
            forward: None,
            rejected: None,
        }
    }

    pub(super) fn unavailable(error: &'static str) -> Self {
        Self {
            code: ErrorCode::Unavailable,
            denied: None,
            error: Some(error),
            forward: None,
            rejected: None,
        }
    }

    pub(super) fn forward_failed(e: ForwardError) -> Self {
        Self {
            code: e.code(),
            denied: None,
            error: Some(e.reason()),
            forward: Some(e),
            rejected: None,
        }
    }
}

impl Refusal {
    /// Count, log and render a refusal: the one place the data plane answers with an error code.
    pub(super) fn render(self, shared: &Shared, record: &mut RequestRecord) -> Response<ProxyBody> {
        let r = self;
        let metrics = &shared.metrics;
        if let Some(reason) = r.denied {
            record.decision = Some(DecisionLabel::Deny);
            record.reason = reason;
            metrics.count_request(DecisionLabel::Deny, reason);
        }
        if let Some(reason) = r.rejected {
            metrics.count_request_reject(reason);
        }
        if let Some(e) = &r.forward {
            if let Some(kind) = e.kind() {
                metrics.count_upstream_error(kind);
            }
            tracing::debug!(request_id = ?record.request_id, error = %e, "forward failed");
        }
        if r.error.is_some() {
            record.error = r.error;
        }
        error::respond(r.code)
    }
}
