//! The per-request pipeline (docs/contract.md §4–§7.1): request id → strip untrusted identity headers → client
//! IP → VPC endpoint → self check → tenant and right → `policy::decide` against the generation in
//! force *now* (so a reload revokes access on the next request of a keep-alive connection) →
//! deny, or forward with rewritten headers and streamed bodies.
//!
//! Owns the request stage order; the connection stage order is in `conn.rs`. The inner stages
//! return a [`Refusal`] when the proxy answers itself; [`handle`] alone counts it, logs it and
//! renders it (`error::respond`). Logging and counting of every request's completion happen once,
//! when its response body ends ([`RequestRecord`]).

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use http::{HeaderValue, Method, Request, Response, StatusCode, Version, header};
use hyper::body::Incoming;

use super::headers::{self, X_REQUEST_ID};
use super::idle::Activity;
use super::record::RequestRecord;
use super::tunnel::{self, Admission, SlotCell};
use crate::body::{self, ExchangeIdle, IdleBody, LimitedBody, ProxyBody};
use crate::config::model::Mode;
use crate::error::{self, ErrorCode};
use crate::identity::client_ip::{ClientIpSource, resolve_client_ip};
use crate::identity::vpcep_headers::{HeaderVpcep, strip_untrusted, vpcep_from_headers};
use crate::metrics::{DecisionLabel, RequestReason, StreamSide};
use crate::policy::{self, Decision, Outcome, VpcepRef};
use crate::proxy_protocol::EndpointTlv;
use crate::state::{Generation, Shared};
use crate::upstream::ForwardError;
use crate::verdict::{self, Described, TenantSource};

/// What the connection stages learned, shared by all requests on the connection.
#[derive(Debug)]
pub struct ConnInfo {
    /// The TCP peer.
    pub peer: SocketAddr,
    /// The PROXY header's source when one was accepted, else the peer (IPv4-mapped normalised).
    pub conn_ip: IpAddr,
    pub conn_ip_source: ClientIpSource,
    /// The VPC endpoint identity from the PROXY v2 TLVs.
    pub endpoint: Option<EndpointTlv>,
    /// Whether the client spoke TLS to us (`X-Forwarded-Proto`).
    pub tls: bool,
    pub activity: Arc<Activity>,
    /// The connection's `max_connections` slot; an upgrade's tunnel takes it over.
    pub slot: SlotCell,
}

/// Why the proxy answers a request itself instead of passing on the upstream's answer.
#[derive(Debug)]
pub(super) struct Refusal {
    /// The documented code the client gets.
    code: ErrorCode,
    /// Denied before forwarding: counted as `requests_total{decision="deny",reason}`.
    denied: Option<RequestReason>,
    /// The access log's `error` field.
    error: Option<&'static str>,
    /// Forwarding failed: the cause, for the log (and its kind for `upstream_errors_total`).
    forward: Option<ForwardError>,
}

impl Refusal {
    fn deny(code: ErrorCode, reason: RequestReason, error: Option<&'static str>) -> Self {
        Self {
            code,
            denied: Some(reason),
            error,
            forward: None,
        }
    }

    fn body_too_large() -> Self {
        Self {
            code: ErrorCode::BodyTooLarge,
            denied: None,
            error: Some("body_too_large"),
            forward: None,
        }
    }

    fn unavailable(error: &'static str) -> Self {
        Self {
            code: ErrorCode::Unavailable,
            denied: None,
            error: Some(error),
            forward: None,
        }
    }

    fn forward_failed(e: ForwardError) -> Self {
        Self {
            code: e.code(),
            denied: None,
            error: Some(e.reason()),
            forward: Some(e),
        }
    }
}

/// Serve one request. Never fails: every problem becomes a documented response, rendered here.
pub async fn handle(
    shared: Arc<Shared>,
    conn: Arc<ConnInfo>,
    req: Request<Incoming>,
) -> Result<Response<ProxyBody>, Infallible> {
    let current = shared.current();
    let access_log = current.config.log.access_log && crate::access_log::enabled();
    let from = (conn.peer, conn.conn_ip);
    let in_flight = conn.activity.begin();
    let mut record = RequestRecord::new(shared.clone(), from, in_flight, &req, access_log);
    let resp = match route(&shared, &current, &conn, req, &mut record).await {
        Ok(resp) => resp,
        Err(refusal) => refuse(&shared, &mut record, refusal),
    };
    Ok(record.attach(resp))
}

/// Count, log and render a refusal: the one place the data plane answers with an error code.
fn refuse(shared: &Shared, record: &mut RequestRecord, r: Refusal) -> Response<ProxyBody> {
    let metrics = &shared.metrics;
    if let Some(reason) = r.denied {
        record.decision = Some(DecisionLabel::Deny);
        record.reason = reason;
        metrics.count_request(DecisionLabel::Deny, reason);
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

/// The request stages in order; returns the response to send, or why the proxy answers itself.
async fn route(
    shared: &Shared,
    current: &Generation,
    conn: &ConnInfo,
    mut req: Request<Incoming>,
    record: &mut RequestRecord,
) -> Result<Response<ProxyBody>, Refusal> {
    let cfg = &current.config;
    // 1. Identity headers: only a trusted peer's vpcep headers are believed; X-Vpcguard-* are
    //    ours and never copied from a client (docs/contract.md §4, §6).
    let peer_trusted = cfg.client_ip.trusted_proxies.contains(conn.conn_ip);
    let header_vpcep = if peer_trusted {
        strip_untrusted(req.headers_mut(), &[], &[]);
        vpcep_from_headers(req.headers(), &cfg.vpcep.headers, &cfg.vpcep.marker_headers)
    } else {
        strip_untrusted(
            req.headers_mut(),
            &cfg.vpcep.headers,
            &cfg.vpcep.marker_headers,
        );
        Ok(None)
    };
    // 2. Client IP (a malformed chain from a trusted proxy fails closed).
    let client = resolve_client_ip(
        &cfg.client_ip,
        conn.conn_ip,
        conn.conn_ip_source,
        req.headers(),
    )
    .map_err(|e| {
        let reason = RequestReason::BadForwardingHeader;
        Refusal::deny(ErrorCode::IpNotTrusted, reason, Some(e.reason()))
    })?;
    record.client_ip = client.addr;
    // 3. VPC endpoint: PROXY TLV first, then trusted headers.
    let header_vpcep = header_vpcep.map_err(|e| {
        let reason = RequestReason::BadVpcepHeader;
        Refusal::deny(ErrorCode::VpcepNotAuthorized, reason, Some(e.reason()))
    })?;
    let vpcep = match (&conn.endpoint, &header_vpcep) {
        (Some(EndpointTlv::VpcepId(id)), _) => Some(VpcepRef::Id(id)),
        (Some(EndpointTlv::Marker(m)), _) => Some(VpcepRef::Marker(*m)),
        (None, Some(HeaderVpcep::Id(id))) => Some(VpcepRef::Id(id)),
        (None, Some(HeaderVpcep::Marker(m))) => Some(VpcepRef::Marker(*m)),
        (None, None) => None,
    };
    // 4. Self check: answered here, never forwarded (docs/contract.md §7.1).
    if cfg.self_check_path.as_deref() == Some(req.uri().path()) && req.method() == Method::GET {
        record.self_check = true;
        return Ok(super::selfcheck::answer(current, &req, client.addr, vpcep));
    }
    // 5. Tenant and right, then the decision against the generation in force now.
    let described = Described {
        method: req.method(),
        path: req.uri().path(),
        client_ip: client.addr,
        vpcep,
        tenant: TenantSource::Rules {
            headers: req.headers(),
            host: headers::host_of(&req),
        },
    };
    let facts = verdict::facts(cfg, &described);
    let decision = policy::decide(&current.policy, &facts);
    note_decision(shared, &decision, record);
    let value = |s: Option<&str>| s.and_then(|s| HeaderValue::from_str(s).ok());
    let (tenant_value, vpcep_value) = match cfg.identity_headers {
        true => (value(decision.tenant), value(decision.vpcep_id)),
        false => (None, None),
    };
    let decision_label = match decision.outcome {
        Outcome::Allow => DecisionLabel::Allow,
        Outcome::Deny(reason) => {
            let code = verdict::deny_code(reason);
            if cfg.policy.mode == Mode::Enforce {
                return Err(Refusal::deny(code, reason.into(), None));
            }
            record.reason = reason.into();
            DecisionLabel::ReportDeny
        }
    };
    record.decision = Some(decision_label);
    shared.metrics.count_request(decision_label, record.reason);
    // 6. Forward.
    let identity = Identity {
        client_ip: client.addr,
        vpcep,
        vpcep_id: vpcep_value,
        tenant: tenant_value,
        decision: decision_label,
    };
    forward(shared, current, conn, req, peer_trusted, identity, record).await
}

/// Keep what the access log needs of the decision, and record an unknown marker as pending.
fn note_decision(shared: &Shared, decision: &Decision<'_>, record: &mut RequestRecord) {
    // Only the access log reads them: no copies when the log is off.
    if record.access_log {
        record.tenant = decision.tenant.map(str::to_owned);
        record.vpcep_id = decision.vpcep_id.map(str::to_owned);
    }
    if let Some(p) = &decision.pending {
        let now = crate::time::now_rfc3339();
        if shared.record_pending(p.service_id, p.marker_id, now) {
            tracing::warn!(
                service_id = p.service_id,
                marker_id = p.marker_id,
                "unknown VPC endpoint marker recorded as pendingAcceptance"
            );
        }
    }
}

/// What the upstream is told about the caller (docs/contract.md §2 `identity_headers`); the values are only
/// rendered when `identity_headers` is on; and the endpoint the decision saw (a tunnel is judged
/// again with it).
struct Identity<'a> {
    client_ip: IpAddr,
    vpcep: Option<VpcepRef<'a>>,
    vpcep_id: Option<HeaderValue>,
    tenant: Option<HeaderValue>,
    decision: DecisionLabel,
}

async fn forward(
    shared: &Shared,
    current: &Generation,
    conn: &ConnInfo,
    mut req: Request<Incoming>,
    peer_trusted: bool,
    identity: Identity<'_>,
    record: &mut RequestRecord,
) -> Result<Response<ProxyBody>, Refusal> {
    let cfg = &current.config;
    // 1. Body limit: a declared length over the limit is refused before any upstream work.
    if let Some(limit) = cfg.limits.max_body_bytes
        && content_length(&req).is_some_and(|n| n > limit)
    {
        return Err(Refusal::body_too_large());
    }
    // 2. Upgrades are HTTP/1.1 only; take the client side before the request moves.
    let upgrade = (req.version() == Version::HTTP_11)
        .then(|| headers::upgrade_protocol(req.headers()))
        .flatten();
    let client_upgrade = upgrade.is_some().then(|| hyper::upgrade::on(&mut req));
    //    A tunnel is judged again on every new generation: keep what this decision saw.
    let admission = upgrade
        .is_some()
        .then(|| admission(current, &req, &identity));
    // 3. Headers.
    let original_host = headers::host_value(&req);
    let client_ip = headers::ip_value(identity.client_ip);
    let h = req.headers_mut();
    headers::strip_hop_by_hop(h);
    if let Some(p) = &upgrade {
        headers::restore_upgrade(h, p.clone());
    }
    headers::set_forwarded_for(h, &client_ip, peer_trusted);
    h.insert(
        headers::X_FORWARDED_PROTO,
        HeaderValue::from_static(if conn.tls { "https" } else { "http" }),
    );
    if let Some(host) = original_host {
        h.insert(headers::X_FORWARDED_HOST, host.clone());
        if cfg.upstream.preserve_host {
            h.insert(header::HOST, host);
        } else {
            h.remove(header::HOST);
        }
    }
    h.insert(X_REQUEST_ID, record.request_id.clone());
    if cfg.identity_headers {
        set_identity(h, client_ip, identity);
    }
    // 4. Body: streamed, optionally limited, under the exchange's idle timer (docs/contract.md
    //    §6): nothing moving either way for stream_idle_timeout ends the exchange.
    let idle = cfg.limits.stream_idle_timeout;
    let exchange = Arc::new(ExchangeIdle::new(
        idle,
        shared.metrics.stream_timeouts.clone(),
    ));
    let req = req.map(|b| {
        let b = IdleBody::new(b, exchange.clone(), StreamSide::Client);
        match cfg.limits.max_body_bytes {
            Some(limit) => body::boxed(LimitedBody::new(b, limit)),
            None => body::boxed(b),
        }
    });
    // 5. Send and classify.
    let sent = Instant::now();
    let result = current
        .forwarder
        .forward(req, client_upgrade.is_some(), &exchange)
        .await;
    record.upstream_secs = Some(sent.elapsed().as_secs_f64());
    if let Err(ForwardError::Overflow(_)) = &result {
        shared.metrics.upstream_overflows_total.inc();
    }
    let mut resp = result.map_err(Refusal::forward_failed)?;
    shared
        .metrics
        .upstream_duration_seconds
        .observe(sent.elapsed().as_secs_f64());
    // 6. Response: 101 starts a tunnel; everything else streams back with hop-by-hop removed.
    if resp.status() == StatusCode::SWITCHING_PROTOCOLS
        && let (Some(client_side), Some(admission)) = (client_upgrade, admission)
    {
        let upstream_side = hyper::upgrade::on(&mut resp);
        let Some(slot) = conn.slot.take() else {
            // One upgrade per HTTP/1.1 connection: a second 101 on it cannot happen.
            return Err(Refusal::unavailable("tunnel_without_slot"));
        };
        let idle = cfg.limits.stream_idle_timeout;
        let in_flight = conn.activity.begin();
        tunnel::spawn(client_side, upstream_side, slot, in_flight, admission, idle);
        let proto = resp.headers().get(header::UPGRADE).cloned();
        headers::strip_hop_by_hop(resp.headers_mut());
        if let Some(p) = proto {
            headers::restore_upgrade(resp.headers_mut(), p);
        }
        return Ok(resp.map(|_| body::empty()));
    }
    headers::strip_hop_by_hop(resp.headers_mut());
    Ok(resp.map(|b| body::boxed(IdleBody::new(b, exchange, StreamSide::Upstream))))
}

fn set_identity(h: &mut http::HeaderMap, client_ip: HeaderValue, id: Identity<'_>) {
    h.insert(headers::X_VPCGUARD_CLIENT_IP, client_ip);
    if let Some(v) = id.vpcep_id {
        h.insert(headers::X_VPCGUARD_VPCEP_ID, v);
    }
    if let Some(v) = id.tenant {
        h.insert(headers::X_VPCGUARD_TENANT, v);
    }
    h.insert(
        headers::X_VPCGUARD_DECISION,
        HeaderValue::from_static(id.decision.as_str()),
    );
}

fn content_length(req: &Request<Incoming>) -> Option<u64> {
    req.headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.parse().ok())
}

/// The facts `route` judged the upgrade request on, owned for the tunnel's later judgements.
fn admission(current: &Generation, req: &Request<Incoming>, identity: &Identity<'_>) -> Admission {
    let described = Described {
        method: req.method(),
        path: req.uri().path(),
        client_ip: identity.client_ip,
        vpcep: identity.vpcep,
        tenant: TenantSource::Rules {
            headers: req.headers(),
            host: headers::host_of(req),
        },
    };
    Admission::new(current.number, &described)
}
