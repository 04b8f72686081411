//! The per-request pipeline (SPEC §4–§7.1): request id → strip untrusted identity headers → client
//! IP → VPC endpoint → self check → tenant and right → `policy::decide` against the snapshot
//! current *now* (so a reload revokes access on the next request of a keep-alive connection) →
//! deny, or forward with rewritten headers and streamed bodies.
//!
//! Owns the request stage order; the connection stage order is in `conn.rs`. Logging and counting
//! of every request happen once, when its response body ends ([`Done`]).

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use http::{HeaderValue, Method, Request, Response, StatusCode, Version, header};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

use super::headers::{self, X_REQUEST_ID};
use super::idle::{Activity, InFlight};
use super::proxy_protocol::EndpointTlv;
use crate::body::{self, CompletionBody, LimitedBody, OnComplete, ProxyBody};
use crate::config::model::Mode;
use crate::error::{self, ErrorCode};
use crate::identity::client_ip::{ClientIpSource, resolve_client_ip};
use crate::identity::tenant::{TenantHint, resolve_tenant};
use crate::identity::vpcep_headers::{HeaderVpcep, strip_untrusted, vpcep_from_headers};
use crate::metrics::DecisionLabel;
use crate::policy::{self, Decision, Facts, Outcome, TenantRef, VpcepRef};
use crate::state::{Current, Shared};

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
}

/// Serve one request. Never fails: every problem becomes a documented response.
pub async fn handle(
    shared: Arc<Shared>,
    conn: Arc<ConnInfo>,
    req: Request<Incoming>,
) -> Result<Response<ProxyBody>, Infallible> {
    let current = shared.current();
    let access_log = current.config.log.access_log && crate::access_log::enabled();
    let mut done = Done::new(shared.clone(), &conn, &req, access_log);
    let resp = route(&shared, &current, &conn, req, &mut done).await;
    Ok(done.attach(resp))
}

/// Everything known about a request so far; on completion of the response body it writes the
/// access log line and observes the duration histogram.
pub(super) struct Done {
    /// For the metrics at completion (one reference count, as cloning one histogram handle was).
    shared: Arc<Shared>,
    start: Instant,
    /// `log.access_log` is on and the log filter lets the line through.
    access_log: bool,
    request_id: HeaderValue,
    peer: SocketAddr,
    client_ip: IpAddr,
    method: Method,
    path: String,
    version: Version,
    status: u16,
    decision: Option<DecisionLabel>,
    pub(super) reason: &'static str,
    tenant: Option<String>,
    vpcep_id: Option<String>,
    upstream_secs: Option<f64>,
    error: Option<&'static str>,
    _in_flight: InFlight,
}

impl Done {
    fn new(
        shared: Arc<Shared>,
        conn: &ConnInfo,
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
            peer: conn.peer,
            client_ip: conn.conn_ip,
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
            reason: "none",
            tenant: None,
            vpcep_id: None,
            upstream_secs: None,
            error: None,
            _in_flight: conn.activity.begin(),
        }
    }

    fn attach(mut self, mut resp: Response<ProxyBody>) -> Response<ProxyBody> {
        self.status = resp.status().as_u16();
        resp.headers_mut()
            .insert(X_REQUEST_ID, self.request_id.clone());
        resp.map(|b| http_body_util::BodyExt::boxed(CompletionBody::new(b, self)))
    }
}

impl OnComplete for Done {
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
            reason: self.reason,
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

/// The request stages in order; returns the response to send.
async fn route(
    shared: &Shared,
    current: &Current,
    conn: &ConnInfo,
    mut req: Request<Incoming>,
    done: &mut Done,
) -> Response<ProxyBody> {
    let cfg = &current.config;
    // 1. Identity headers: only a trusted peer's vpcep headers are believed; X-Vpcguard-* are
    //    ours and never copied from a client (SPEC §4, §6).
    let peer_trusted = cfg.client_ip.trusted_proxies.contains(conn.conn_ip);
    let header_vpcep = if peer_trusted {
        strip_internal(req.headers_mut());
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
    let client = match resolve_client_ip(
        &cfg.client_ip,
        conn.conn_ip,
        conn.conn_ip_source,
        req.headers(),
    ) {
        Ok(c) => c,
        Err(e) => {
            done.error = Some(e.reason());
            return deny(
                shared,
                done,
                ErrorCode::IpNotTrusted,
                "bad_forwarding_header",
            );
        }
    };
    done.client_ip = client.addr;
    // 3. VPC endpoint: PROXY TLV first, then trusted headers.
    let header_vpcep = match header_vpcep {
        Ok(v) => v,
        Err(e) => {
            done.error = Some(e.reason());
            return deny(
                shared,
                done,
                ErrorCode::VpcepNotAuthorized,
                "bad_vpcep_header",
            );
        }
    };
    let vpcep = match (&conn.endpoint, &header_vpcep) {
        (Some(EndpointTlv::VpcepId(id)), _) => Some(VpcepRef::Id(id)),
        (Some(EndpointTlv::Marker(m)), _) => Some(VpcepRef::Marker(*m)),
        (None, Some(HeaderVpcep::Id(id))) => Some(VpcepRef::Id(id)),
        (None, Some(HeaderVpcep::Marker(m))) => Some(VpcepRef::Marker(*m)),
        (None, None) => None,
    };
    // 4. Self check: answered here, never forwarded (SPEC §7.1).
    let path = req.uri().path();
    if cfg.self_check_path.as_deref() == Some(path) && req.method() == Method::GET {
        return super::selfcheck::answer(current, &req, client.addr, vpcep, done);
    }
    // 5. Tenant and right, then the decision against the snapshot current now.
    let host = host_of(&req);
    let tenant = match resolve_tenant(&cfg.tenant, req.headers(), host, path) {
        Some(TenantHint::Tenant(t)) => TenantRef::Tenant(t),
        Some(TenantHint::Project(p)) => TenantRef::Project(p),
        None => TenantRef::None,
    };
    let facts = Facts {
        client_ip: client.addr,
        tenant,
        vpcep,
        right: cfg.routes.right_for(req.method(), path),
    };
    let decision = policy::decide(&current.policy, &facts);
    record(shared, &decision, done);
    let value = |s: Option<&str>| s.and_then(|s| HeaderValue::from_str(s).ok());
    let (tenant_value, vpcep_value) = match cfg.identity_headers {
        true => (value(decision.tenant), value(decision.vpcep_id)),
        false => (None, None),
    };
    let decision_label = match decision.outcome {
        Outcome::Allow => DecisionLabel::Allow,
        Outcome::Deny(reason) => {
            if cfg.policy.mode == Mode::Enforce {
                return deny(shared, done, deny_code(reason), reason.as_label());
            }
            done.reason = reason.as_label();
            DecisionLabel::ReportDeny
        }
    };
    done.decision = Some(decision_label);
    shared.metrics.count_request(decision_label, done.reason);
    // 6. Forward.
    let identity = Identity {
        client_ip: client.addr,
        vpcep_id: vpcep_value,
        tenant: tenant_value,
        decision: decision_label,
    };
    forward(shared, current, conn, req, peer_trusted, identity, done).await
}

fn strip_internal(headers: &mut http::HeaderMap) {
    strip_untrusted(headers, &[], &[]);
}

/// The `Host` header, or the HTTP/2 `:authority`.
fn host_of(req: &Request<Incoming>) -> Option<&str> {
    req.headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()))
}

/// [`host_of`] as a header value: the client's `Host` line itself when it is usable (no copy).
fn host_value(req: &Request<Incoming>) -> Option<HeaderValue> {
    match req.headers().get(header::HOST) {
        Some(h) if h.to_str().is_ok() => Some(h.clone()),
        _ => req
            .uri()
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok()),
    }
}

fn record(shared: &Shared, decision: &Decision<'_>, done: &mut Done) {
    // Only the access log reads them: no copies when the log is off.
    if done.access_log {
        done.tenant = decision.tenant.map(str::to_owned);
        done.vpcep_id = decision.vpcep_id.map(str::to_owned);
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

/// Map a policy deny reason to its wire code.
pub fn deny_code(reason: policy::DenyReason) -> ErrorCode {
    match reason {
        policy::DenyReason::VpcepNotAccepted => ErrorCode::VpcepNotAccepted,
        policy::DenyReason::UnknownTenant => ErrorCode::UnknownTenant,
        policy::DenyReason::VpcepNotAuthorized => ErrorCode::VpcepNotAuthorized,
        policy::DenyReason::IpNotTrusted => ErrorCode::IpNotTrusted,
        policy::DenyReason::RightNotGranted => ErrorCode::RightNotGranted,
    }
}

fn deny(
    shared: &Shared,
    done: &mut Done,
    code: ErrorCode,
    reason: &'static str,
) -> Response<ProxyBody> {
    done.decision = Some(DecisionLabel::Deny);
    done.reason = reason;
    shared.metrics.count_request(DecisionLabel::Deny, reason);
    error::respond(code, &done.request_id)
}

/// What the upstream is told about the caller (SPEC §2 `identity_headers`); the values are only
/// rendered when `identity_headers` is on.
struct Identity {
    client_ip: IpAddr,
    vpcep_id: Option<HeaderValue>,
    tenant: Option<HeaderValue>,
    decision: DecisionLabel,
}

async fn forward(
    shared: &Shared,
    current: &Current,
    conn: &ConnInfo,
    mut req: Request<Incoming>,
    peer_trusted: bool,
    identity: Identity,
    done: &mut Done,
) -> Response<ProxyBody> {
    let cfg = &current.config;
    // 1. Body limit: a declared length over the limit is refused before any upstream work.
    if let Some(limit) = cfg.limits.max_body_bytes
        && content_length(&req).is_some_and(|n| n > limit)
    {
        done.error = Some("body_too_large");
        return error::respond(ErrorCode::BodyTooLarge, &done.request_id);
    }
    // 2. Upgrades are HTTP/1.1 only; take the client side before the request moves.
    let upgrade = (req.version() == Version::HTTP_11)
        .then(|| headers::upgrade_protocol(req.headers()))
        .flatten();
    let client_upgrade = upgrade.is_some().then(|| hyper::upgrade::on(&mut req));
    // 3. Headers.
    let original_host = host_value(&req);
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
    h.insert(X_REQUEST_ID, done.request_id.clone());
    if cfg.identity_headers {
        set_identity(h, client_ip, identity);
    }
    // 4. Body: streamed, optionally limited.
    let tripped = Arc::new(AtomicBool::new(false));
    let req = req.map(|b| match cfg.limits.max_body_bytes {
        Some(limit) => body::boxed(LimitedBody::new(b, limit, tripped.clone())),
        None => body::boxed(b),
    });
    // 5. Send and classify.
    let sent = Instant::now();
    let result = current
        .forwarder
        .forward(req, client_upgrade.is_some(), &tripped)
        .await;
    done.upstream_secs = Some(sent.elapsed().as_secs_f64());
    let mut resp = match result {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(request_id = ?done.request_id, error = %e, "forward failed");
            if let Some(kind) = e.kind() {
                shared.metrics.count_upstream_error(kind);
                done.error = Some(kind.as_str());
            } else {
                done.error = Some("body_too_large");
            }
            return error::respond(e.code(), &done.request_id);
        }
    };
    shared
        .metrics
        .upstream_duration_seconds
        .observe(sent.elapsed().as_secs_f64());
    // 6. Response: 101 starts a tunnel; everything else streams back with hop-by-hop removed.
    if resp.status() == StatusCode::SWITCHING_PROTOCOLS
        && let Some(client_side) = client_upgrade
    {
        let upstream_side = hyper::upgrade::on(&mut resp);
        let guard = conn.activity.begin();
        tokio::spawn(tunnel(client_side, upstream_side, guard));
        let proto = resp.headers().get(header::UPGRADE).cloned();
        headers::strip_hop_by_hop(resp.headers_mut());
        if let Some(p) = proto {
            headers::restore_upgrade(resp.headers_mut(), p);
        }
        return resp.map(|_| body::empty());
    }
    headers::strip_hop_by_hop(resp.headers_mut());
    resp
}

fn set_identity(h: &mut http::HeaderMap, client_ip: HeaderValue, id: Identity) {
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

/// Copy bytes both ways between the upgraded client and upstream connections until either side
/// closes. The in-flight guard keeps the idle deadlines off while the tunnel lives.
async fn tunnel(
    client: hyper::upgrade::OnUpgrade,
    upstream: hyper::upgrade::OnUpgrade,
    _guard: InFlight,
) {
    let (client, upstream) = match tokio::try_join!(client, upstream) {
        Ok(pair) => pair,
        Err(e) => {
            tracing::debug!(error = %e, "upgrade failed");
            return;
        }
    };
    let mut client = TokioIo::new(client);
    let mut upstream = TokioIo::new(upstream);
    if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
        tracing::debug!(error = %e, "tunnel ended with an error");
    }
}
