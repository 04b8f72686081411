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

use http::header::Entry;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;

use super::canon;
use super::headers::{self, X_REQUEST_ID};
use super::idle::Activity;
use super::record::RequestRecord;
use super::refusal::Refusal;
use super::tunnel::{self, Admission, SlotCell};
use crate::body::{self, ExchangeIdle, IdleBody, LimitedBody, ProxyBody};
use crate::config::model::Mode;
use crate::error::ErrorCode;
use crate::identity::client_ip::{ClientIpSource, resolve_client_ip};
use crate::identity::tenant::{TenantClaim, TenantError};
use crate::identity::vpcep_headers::{HeaderVpcep, strip_untrusted, vpcep_from_headers};
use crate::metrics::{DecisionLabel, RequestReason, StreamSide};
use crate::policy::{self, Decision, Outcome, VpcepRef};
use crate::proxy_protocol::EndpointTlv;
use crate::state::{Generation, Shared};
use crate::upstream::ForwardError;
use crate::verdict::{self, Described};

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
    // Boxed: the whole pipeline's state machine is several KiB, and hyper moves the service
    // future by value (into each HTTP/2 stream, which its executor boxes again, streams.rs:
    // ~4,400 instructions of memcpy per request in callgrind when the pipeline was inline);
    // behind a box only the pointer moves.
    let resp = match Box::pin(route(&shared, &current, &conn, req, &mut record)).await {
        Ok(resp) => resp,
        Err(refusal) => refusal.render(&shared, &mut record),
    };
    Ok(record.attach(resp))
}

/// Most of a refused request's body that is read and discarded before the refusal is sent, and
/// how long that may take.
const DRAIN_BYTES: usize = 64 * 1024;
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(1);

/// [`judge_and_forward`], with the body held aside: a refused request's body is drained (at most
/// [`DRAIN_BYTES`] within [`DRAIN_TIME`]) before the refusal goes out. Without that, hyper closes
/// a connection whose request body was not read, the kernel answers the unread bytes with a
/// reset, and the client often loses the 403 (measured: 14 of 40 TLS POSTs got no answer).
async fn route(
    shared: &Shared,
    current: &Generation,
    conn: &ConnInfo,
    req: Request<Incoming>,
    record: &mut RequestRecord,
) -> Result<Response<ProxyBody>, Refusal> {
    let (parts, body) = req.into_parts();
    let mut body = Some(body);
    let req = Request::from_parts(parts, ());
    let result = judge_and_forward(shared, current, conn, req, &mut body, record).await;
    if result.is_err()
        && let Some(b) = body
    {
        drain(b).await;
    }
    result
}

/// Read and discard `body`, bounded by [`DRAIN_BYTES`] and [`DRAIN_TIME`].
async fn drain(mut body: Incoming) {
    use http_body_util::BodyExt;
    let read = async {
        let mut seen = 0usize;
        while let Some(Ok(frame)) = body.frame().await {
            seen = seen.saturating_add(frame.data_ref().map_or(0, |d| d.len()));
            if seen > DRAIN_BYTES {
                return;
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIME, read).await;
}

/// The request stages in order; returns the response to send, or why the proxy answers itself.
/// The body waits in `body` until the request is forwarded.
async fn judge_and_forward(
    shared: &Shared,
    current: &Generation,
    conn: &ConnInfo,
    mut req: Request<()>,
    body: &mut Option<Incoming>,
    record: &mut RequestRecord,
) -> Result<Response<ProxyBody>, Refusal> {
    let cfg = &current.config;
    // No rules in force yet (etcd store, etcd unreachable at start, no cache): 503, not a
    // verdict from the empty placeholder (docs/contract.md §11 "Faults").
    if !shared.is_policy_ready() {
        return Err(Refusal::unavailable("policy_not_loaded"));
    }
    let enforce = cfg.policy.mode == Mode::Enforce;
    let peer_trusted = cfg.client_ip.trusted_proxies.contains(conn.conn_ip);
    // 0. The canonical request: everything below reads, and the upstream receives, exactly it
    //    (docs/contract.md §4.0). Refused in report mode too: these are protocol errors.
    let canonical = canon::canonicalize(&mut req, cfg, peer_trusted).map_err(Refusal::rejected)?;
    // In report mode the first denial is remembered and the request goes on (§4 step 8).
    let mut reported: Option<RequestReason> = None;
    let mut report = |r: Refusal| match (enforce, r.denied) {
        (false, Some(reason)) => {
            reported = reported.or(Some(reason));
            record.error = record.error.or(r.error);
            Ok(())
        }
        _ => Err(r),
    };
    // 1. Identity headers: only a trusted peer's vpcep headers are believed; X-Vpcguard-* are
    //    ours and never copied from a client (docs/contract.md §4, §6).
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
    let client_ip = match resolve_client_ip(
        &cfg.client_ip,
        conn.conn_ip,
        conn.conn_ip_source,
        req.headers(),
    ) {
        Ok(c) => c.addr,
        Err(e) => {
            let reason = RequestReason::BadForwardingHeader;
            report(Refusal::deny(
                ErrorCode::IpNotTrusted,
                reason,
                Some(e.reason()),
            ))?;
            conn.conn_ip
        }
    };
    record.client_ip = client_ip;
    // 3. VPC endpoint: PROXY TLV first, then trusted headers.
    let header_vpcep = match header_vpcep {
        Ok(v) => v,
        Err(e) => {
            let reason = RequestReason::BadVpcepHeader;
            report(Refusal::deny(
                ErrorCode::VpcepNotAuthorized,
                reason,
                Some(e.reason()),
            ))?;
            None
        }
    };
    let vpcep = match (&conn.endpoint, &header_vpcep) {
        (Some(EndpointTlv::VpcepId(id)), _) => Some(VpcepRef::Id(id)),
        (Some(EndpointTlv::Marker(m)), _) => Some(VpcepRef::Marker(*m)),
        (None, Some(HeaderVpcep::Id(id))) => Some(VpcepRef::Id(id)),
        (None, Some(HeaderVpcep::Marker(m))) => Some(VpcepRef::Marker(*m)),
        (None, None) => None,
    };
    let path = req.uri().path();
    // 4. Self check: answered here, never forwarded (docs/contract.md §7.1).
    if cfg.self_check_path.as_deref() == Some(path) && req.method() == Method::GET {
        record.self_check = true;
        return Ok(super::selfcheck::answer(
            current, &req, path, client_ip, vpcep,
        ));
    }
    // 5. Tenant (every rule, all must agree) and right, then the decision against the
    //    generation in force now.
    let claim = match verdict::claim(cfg, req.headers(), headers::host_of(&req), path) {
        Ok(claim) => claim,
        Err(e) => {
            let reason = match e {
                TenantError::Invalid => RequestReason::BadTenant,
                TenantError::Conflict => RequestReason::TenantConflict,
            };
            report(Refusal::deny(ErrorCode::UnknownTenant, reason, None))?;
            TenantClaim::None
        }
    };
    let described = Described {
        method: req.method(),
        path,
        client_ip,
        vpcep,
        tenant: claim.as_ref(),
    };
    let facts = verdict::facts(cfg, &described);
    let decision = policy::decide(&current.policy, &facts);
    note_decision(shared, &decision, record);
    let value = |s: Option<&str>| s.and_then(|s| HeaderValue::from_str(s).ok());
    let (tenant_value, vpcep_value) = match cfg.identity_headers {
        true => (value(decision.tenant), value(decision.vpcep_id)),
        false => (None, None),
    };
    let decision_label = match (reported, decision.outcome) {
        (Some(reason), _) => {
            record.reason = reason;
            DecisionLabel::ReportDeny
        }
        (None, Outcome::Allow) => DecisionLabel::Allow,
        (None, Outcome::Deny(reason)) if enforce => {
            let code = verdict::deny_code(reason);
            return Err(Refusal::deny(code, reason.into(), None));
        }
        (None, Outcome::Deny(reason)) => {
            record.reason = reason.into();
            DecisionLabel::ReportDeny
        }
    };
    record.decision = Some(decision_label);
    shared.metrics.count_request(decision_label, record.reason);
    // 6. Forward.
    let identity = Identity {
        client_ip,
        vpcep,
        vpcep_id: vpcep_value,
        tenant: tenant_value,
        decision: decision_label,
    };
    drop(claim);
    let Some(b) = body.take() else {
        return Err(Refusal::unavailable("body_taken"));
    };
    forward(
        shared,
        current,
        conn,
        req.map(|()| b),
        canonical,
        identity,
        record,
    )
    .await
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
        if shared.record_pending(p.service_id, p.marker_id, decision.tenant, now) {
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

/// Headers `forward` may add: `X-Forwarded-For`, `-Proto`, `-Host`, `Host`, `X-Request-Id` and
/// the four `X-Vpcguard-*`.
const ADDED_HEADERS: usize = 9;

async fn forward(
    shared: &Shared,
    current: &Generation,
    conn: &ConnInfo,
    mut req: Request<Incoming>,
    canonical: canon::Canonical,
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
    // 2. Upgrades (an allowed protocol, HTTP/1.1 only, kept by canonicalisation); take the
    //    client side before the request moves.
    let upgrade = canonical.upgrade;
    let client_upgrade = upgrade.is_some().then(|| hyper::upgrade::on(&mut req));
    //    A tunnel is judged again on every new generation: keep what this decision saw.
    let admission = upgrade
        .is_some()
        .then(|| admission(current, &req, &identity));
    // 3. Headers (hop-by-hop already removed by canonicalisation). A trusted proxy's
    //    X-Forwarded-Proto/-Host are kept; an untrusted peer's were removed (§4.0).
    let original_host = headers::host_value(&req);
    let client_ip = headers::ip_value(identity.client_ip);
    let h = req.headers_mut();
    // Room for every name added below at once: the map grows (rehashes) once, not insert by
    // insert (callgrind, BENCHMARKS.md). At the header cap it cannot grow: then the inserts fail
    // as they would have.
    let _ = h.try_reserve(ADDED_HEADERS);
    headers::set_forwarded_for(h, &client_ip, canonical.peer_trusted);
    // `entry`: one hash of the name for "add unless present", not two.
    if let Entry::Vacant(e) = h.entry(headers::X_FORWARDED_PROTO) {
        e.insert(HeaderValue::from_static(if conn.tls {
            "https"
        } else {
            "http"
        }));
    }
    if let Some(host) = original_host {
        if let Entry::Vacant(e) = h.entry(headers::X_FORWARDED_HOST) {
            e.insert(host.clone());
        }
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
    let upstream_secs = sent.elapsed().as_secs_f64();
    record.upstream_secs = Some(upstream_secs);
    if let Err(ForwardError::Overflow(_)) = &result {
        shared.metrics.upstream_overflows_total.inc();
    }
    let mut resp = result.map_err(Refusal::forward_failed)?;
    shared
        .metrics
        .upstream_duration_seconds
        .observe(upstream_secs);
    // 6. Response: 101 starts a tunnel; everything else streams back with hop-by-hop removed.
    if resp.status() == StatusCode::SWITCHING_PROTOCOLS
        && let (Some(client_side), Some(admission)) = (client_upgrade, admission)
    {
        // The upstream must switch to the protocol asked for (docs/contract.md §4.0).
        let agreed = match (resp.headers().get(header::UPGRADE), &upgrade) {
            (Some(got), Some(asked)) => got.as_bytes().eq_ignore_ascii_case(asked.as_bytes()),
            _ => false,
        };
        if !agreed {
            let e = ForwardError::Protocol("101 for another protocol than the one asked".into());
            return Err(Refusal::forward_failed(e));
        }
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
    Admission::new(
        current.number,
        req.method(),
        req.uri().path(),
        identity.client_ip,
        identity.vpcep,
        req.headers(),
        headers::host_of(req),
    )
}
