//! The canonical request (docs/contract.md §4.0), made before anything reads the request, so that
//! what is judged is exactly what is forwarded:
//!
//! 1. `CONNECT` and `TRACE` → 405; a `Transfer-Encoding` other than `chunked` → 501 (hyper would
//!    de-chunk `gzip, chunked` and the coding would be lost);
//! 2. the host: HTTP/1.1 needs exactly one `Host`, equal to an absolute-form target's authority;
//!    over HTTP/2 `:authority` is the host and a `host` header must agree → else 400;
//! 3. hop-by-hop headers (and every header named in `Connection`) are removed *first*, so a
//!    `Connection: x-domain-id` cannot remove a header after it was judged; an `Upgrade` survives
//!    only for a protocol in `requests.upgrades`;
//! 4. headers whose name has `_` are dropped (or rejected, or allowed: `requests.
//!    headers_with_underscores`), and method/URL override headers are removed;
//! 5. from a peer outside `client_ip.trusted_proxies`, the forwarding headers it may not set are
//!    removed (`X-Forwarded-For` is replaced later, when the client IP is known);
//! 6. the path is canonicalised (`identity::canonical`) and the request target rewritten to it.
//!
//! These are protocol errors, not access decisions: report mode does not forward them.
//!
//! Pure over the request's head; no I/O.

use http::uri::{PathAndQuery, Uri};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Version, header};

use super::headers;
use crate::config::Config;
use crate::config::model::Underscores;
use crate::error::ErrorCode;
use crate::identity::canonical::canonicalize_path;
use crate::metrics::RequestRejectReason;

/// Why a request has no canonical form: the code it is answered with, the
/// `request_rejects_total` reason, and a fixed text for the access log's `error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Rejected {
    pub(super) code: ErrorCode,
    pub(super) reason: RequestRejectReason,
    pub(super) error: &'static str,
}

impl Rejected {
    fn bad(reason: RequestRejectReason, error: &'static str) -> Self {
        Self {
            code: ErrorCode::BadRequest,
            reason,
            error,
        }
    }
}

/// Headers that make some frameworks serve another method or URL than the one judged.
fn is_override(name: &str) -> bool {
    matches!(
        name,
        "x-http-method-override"
            | "x-http-method"
            | "x-method-override"
            | "x-original-url"
            | "x-rewrite-url"
    )
}

/// Forwarding headers only a trusted proxy may send (`X-Forwarded-For` is replaced, not removed).
fn is_forwarding(name: &str) -> bool {
    matches!(
        name,
        "forwarded"
            | "x-real-ip"
            | "x-forwarded-host"
            | "x-forwarded-proto"
            | "x-forwarded-port"
            | "x-forwarded-prefix"
    )
}

/// What canonicalisation kept for the forwarding stage.
#[derive(Debug)]
pub(super) struct Canonical {
    /// The `Upgrade` protocol that may pass (its `Connection: upgrade` is restored with it).
    pub(super) upgrade: Option<HeaderValue>,
    /// The immediate peer is in `client_ip.trusted_proxies` (its forwarding headers were kept).
    pub(super) peer_trusted: bool,
}

/// Make `req` canonical in place (module docs, steps 1–6), or say why it cannot be.
///
/// # Performance
/// A request with no hop-by-hop, underscore, override or forwarding headers and a plain path
/// allocates nothing: each step is a scan of the header names or the path.
pub(super) fn canonicalize<B>(
    req: &mut Request<B>,
    cfg: &Config,
    peer_trusted: bool,
) -> Result<Canonical, Rejected> {
    // 1. Methods and transfer codings no upstream may see.
    if req.method() == Method::CONNECT || req.method() == Method::TRACE {
        return Err(Rejected {
            code: ErrorCode::MethodNotAllowed,
            reason: RequestRejectReason::Method,
            error: "method_not_allowed",
        });
    }
    if !only_chunked(req.headers()) {
        return Err(Rejected {
            code: ErrorCode::UnsupportedTransferCoding,
            reason: RequestRejectReason::TransferCoding,
            error: "transfer_coding",
        });
    }
    // 2. One host.
    check_host(req)?;
    // 3. Hop-by-hop first; the upgrade survives only for an allowed protocol.
    let upgrade = (req.version() == Version::HTTP_11)
        .then(|| headers::upgrade_protocol(req.headers()))
        .flatten()
        .filter(|p| allowed_upgrade(p, &cfg.requests.upgrades));
    let h = req.headers_mut();
    headers::strip_hop_by_hop(h);
    if let Some(p) = &upgrade {
        headers::restore_upgrade(h, p.clone());
    }
    // 4. Underscores and overrides, 5. forwarding headers from an untrusted peer: one scan of
    //    the names (a lookup per forbidden name cost ~1,500 instructions per request).
    strip_names(h, cfg.requests.headers_with_underscores, peer_trusted)?;
    // 6. The path.
    canonical_target(req, cfg)?;
    Ok(Canonical {
        upgrade,
        peer_trusted,
    })
}

/// Every `Transfer-Encoding` token is `chunked` (or there is none).
fn only_chunked(h: &HeaderMap) -> bool {
    h.get_all(header::TRANSFER_ENCODING).iter().all(|v| {
        v.to_str().is_ok_and(|s| {
            s.split(',')
                .map(str::trim)
                .all(|t| t.eq_ignore_ascii_case("chunked"))
        })
    })
}

/// HTTP/1.1: exactly one `Host`, and an absolute-form target's authority equal to it. HTTP/2:
/// `:authority` is the host; a `host` header must name the same one. HTTP/1.0 may omit `Host`.
fn check_host<B>(req: &Request<B>) -> Result<(), Rejected> {
    let bad = |error| Err(Rejected::bad(RequestRejectReason::Host, error));
    let mut lines = req.headers().get_all(header::HOST).iter();
    let host = lines.next();
    if lines.next().is_some() {
        return bad("host_repeated");
    }
    let authority = req.uri().authority().map(|a| a.as_str());
    let same = |h: &HeaderValue, a: &str| h.as_bytes().eq_ignore_ascii_case(a.as_bytes());
    match (req.version(), host, authority) {
        (_, Some(h), Some(a)) if !same(h, a) => bad("host_mismatch"),
        (Version::HTTP_2, None, None) => bad("host_missing"),
        (Version::HTTP_11, None, _) => bad("host_missing"),
        _ => Ok(()),
    }
}

/// Whether the requested protocol (`websocket`, `websocket/13`, any case) is one of `allowed`.
/// A list (`Upgrade: a, b`) is never allowed: which one the upstream picks is its choice.
fn allowed_upgrade(protocol: &HeaderValue, allowed: &[String]) -> bool {
    let Ok(p) = protocol.to_str() else {
        return false;
    };
    let p = p.trim();
    if p.contains(',') {
        return false;
    }
    let name = p.split('/').next().unwrap_or(p);
    allowed
        .iter()
        .any(|a| a.eq_ignore_ascii_case(p) || a.eq_ignore_ascii_case(name))
}

/// Apply `requests.headers_with_underscores`, remove the override headers, and (from an
/// untrusted peer) the forwarding headers.
fn strip_names(h: &mut HeaderMap, rule: Underscores, peer_trusted: bool) -> Result<(), Rejected> {
    let doomed = |n: &str| {
        (rule != Underscores::Allow && n.contains('_'))
            || is_override(n)
            || (!peer_trusted && is_forwarding(n))
    };
    if !h.keys().any(|k| doomed(k.as_str())) {
        return Ok(());
    }
    if rule == Underscores::Reject && h.keys().any(|k| k.as_str().contains('_')) {
        return Err(Rejected::bad(
            RequestRejectReason::Header,
            "header_underscore",
        ));
    }
    let names: Vec<HeaderName> = h.keys().filter(|k| doomed(k.as_str())).cloned().collect();
    for name in names {
        h.remove(name);
    }
    Ok(())
}

/// Rewrite the request target to the canonical path (the query unchanged).
fn canonical_target<B>(req: &mut Request<B>, cfg: &Config) -> Result<(), Rejected> {
    let uri = req.uri();
    let path = uri.path();
    let canonical = canonicalize_path(path, &cfg.requests.path)
        .map_err(|e| Rejected::bad(RequestRejectReason::Path, e.reason()))?;
    if canonical == path {
        return Ok(());
    }
    let pq = match uri.query() {
        Some(q) => format!("{canonical}?{q}"),
        None => canonical.into_owned(),
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(
        PathAndQuery::try_from(pq)
            .map_err(|_| Rejected::bad(RequestRejectReason::Path, "path_unencodable"))?,
    );
    *req.uri_mut() = Uri::from_parts(parts)
        .map_err(|_| Rejected::bad(RequestRejectReason::Path, "path_unencodable"))?;
    Ok(())
}

#[cfg(test)]
mod tests;
