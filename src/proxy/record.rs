//! The per-request record: what the pipeline learns about a request as it goes (request id,
//! client IP, decision, reason, tenant, upstream time, error), and the one place that writes it
//! out, when the response body ends or is dropped: the duration histogram and the access line.
//!
//! No I/O of its own: the access line goes to the `access_log` writer thread's queue.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use http::{HeaderValue, Method, Request, Response, Version};
use hyper::body::Incoming;

use super::headers::{self, X_REQUEST_ID};
use super::idle::InFlight;
use crate::body::{CompletionBody, OnComplete, ProxyBody};
use crate::metrics::{DecisionLabel, RequestReason};
use crate::state::Shared;

/// Everything known about one request so far. Fields are filled in by the pipeline
/// (`proxy::http`); [`RequestRecord::attach`] ties the record to the response body, and it is
/// written out exactly once, when that body ends.
pub(super) struct RequestRecord {
    /// For the metrics at completion (one reference count, as cloning one histogram handle was).
    shared: Arc<Shared>,
    start: Instant,
    /// `log.access_log` is on and the log filter lets the line through.
    pub(super) access_log: bool,
    pub(super) request_id: HeaderValue,
    peer: SocketAddr,
    pub(super) client_ip: IpAddr,
    method: Method,
    path: String,
    version: Version,
    status: u16,
    pub(super) decision: Option<DecisionLabel>,
    pub(super) reason: RequestReason,
    /// Answered by the data-plane self check (logged with reason `self_check`, never counted).
    pub(super) self_check: bool,
    pub(super) tenant: Option<String>,
    pub(super) vpcep_id: Option<String>,
    pub(super) upstream_secs: Option<f64>,
    pub(super) error: Option<&'static str>,
    _in_flight: InFlight,
}

impl RequestRecord {
    /// Start the record of `req` from `peer` (whose connection-level client IP is `conn_ip`):
    /// its id is the client's valid `X-Request-Id`, else a new one. `in_flight` keeps the
    /// connection's idle deadlines off until the record is written out.
    pub(super) fn new(
        shared: Arc<Shared>,
        (peer, conn_ip): (SocketAddr, IpAddr),
        in_flight: InFlight,
        req: &Request<Incoming>,
        access_log: bool,
    ) -> Self {
        let request_id = req
            .headers()
            .get(&X_REQUEST_ID)
            .filter(|v| headers::valid_request_id(v))
            .cloned()
            .unwrap_or_else(headers::new_request_id);
        Self {
            shared,
            start: Instant::now(),
            access_log,
            request_id,
            peer,
            client_ip: conn_ip,
            method: req.method().clone(),
            // Only the access log reads it: no copy when the log is off.
            path: if access_log {
                req.uri().path().to_owned()
            } else {
                String::new()
            },
            version: req.version(),
            status: 0,
            decision: None,
            reason: RequestReason::None,
            self_check: false,
            tenant: None,
            vpcep_id: None,
            upstream_secs: None,
            error: None,
            _in_flight: in_flight,
        }
    }

    /// Stamp `resp` with the request id and hand the record to its body, which writes it out
    /// when it ends.
    pub(super) fn attach(mut self, mut resp: Response<ProxyBody>) -> Response<ProxyBody> {
        self.status = resp.status().as_u16();
        // Marked sensitive so that HTTP/2's HPACK sends it as a literal: a value unique to every
        // response gains nothing from the dynamic table and would evict the entries that repeat
        // (RFC 7541 §7.1.3; callgrind, BENCHMARKS.md). HTTP/1.1 ignores the flag.
        let mut id = self.request_id.clone();
        id.set_sensitive(true);
        resp.headers_mut().insert(X_REQUEST_ID, id);
        resp.map(|b| http_body_util::BodyExt::boxed(CompletionBody::new(b, self)))
    }
}

impl OnComplete for RequestRecord {
    fn complete(&mut self, bytes: u64, complete: bool) {
        let metrics = &self.shared.metrics;
        let secs = self.start.elapsed().as_secs_f64();
        metrics.request_duration_seconds.observe(secs);
        if !self.access_log {
            return;
        }
        let line = crate::access_log::Record {
            request_id: self.request_id.to_str().unwrap_or(""),
            peer: self.peer,
            client_ip: self.client_ip,
            method: self.method.as_str(),
            path: &self.path,
            version: self.version,
            status: self.status,
            decision: self.decision.map_or("none", DecisionLabel::as_str),
            reason: match self.self_check {
                true => "self_check",
                false => self.reason.as_str(),
            },
            tenant: self.tenant.as_deref().unwrap_or(""),
            vpcep_id: self.vpcep_id.as_deref().unwrap_or(""),
            bytes_sent: bytes,
            complete,
            duration_ms: secs * 1000.0,
            upstream_ms: self.upstream_secs.map(|s| s * 1000.0),
            error: self.error,
        };
        if crate::access_log::emit(&line).is_err() {
            metrics.access_log_dropped_total.inc();
        }
    }
}
