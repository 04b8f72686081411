//! Validation of the rule lists: `vpcep.tlv`, `tenant`, `routes`, and `requests:` (the
//! canonicalisation rules of docs/contract.md §4.0). No I/O.

use http::HeaderName;
use serde_saphyr::Spanned;

use super::invalid;
use crate::config::model::{Invalid, Requests};
use crate::config::raw;
use crate::identity::canonical::{EscapedSlashes, PathRules};
use crate::identity::pattern::{HostPattern, PathPattern};
use crate::identity::routes::{Route, Routes};
use crate::identity::tenant::TenantRule;
use crate::policy::Right;
use crate::proxy_protocol::{TlvEncoding, TlvRule, Yields};

pub(super) fn tlv_rule(r: &raw::TlvRule) -> Result<TlvRule, String> {
    let vendor_fixed =
        r.tlv_type.is_some() || r.subtype.is_some() || r.encoding.is_some() || r.yields.is_some();
    let rule = match r.kind {
        raw::TlvKind::Aws => TlvRule::aws(),
        raw::TlvKind::Azure => TlvRule::azure(),
        raw::TlvKind::Gcp => TlvRule::gcp(),
        raw::TlvKind::Custom => {
            let (Some(tlv_type), Some(encoding), Some(yields)) = (r.tlv_type, r.encoding, r.yields)
            else {
                return Err("a custom TLV needs type, encoding and yields".to_owned());
            };
            if !(0xE0..=0xEF).contains(&tlv_type) {
                return Err(format!(
                    "type {tlv_type:#04x} is outside the custom range 0xE0..=0xEF"
                ));
            }
            return Ok(TlvRule {
                tlv_type,
                subtype: r.subtype,
                encoding: match encoding {
                    raw::TlvEncoding::Ascii => TlvEncoding::Ascii,
                    raw::TlvEncoding::U32Be => TlvEncoding::U32Be,
                    raw::TlvEncoding::U32Le => TlvEncoding::U32Le,
                    raw::TlvEncoding::U64Be => TlvEncoding::U64Be,
                    raw::TlvEncoding::U64Le => TlvEncoding::U64Le,
                },
                yields: match yields {
                    raw::TlvYields::VpcepId => Yields::VpcepId,
                    raw::TlvYields::Marker => Yields::Marker,
                },
            });
        }
    };
    if vendor_fixed {
        return Err("type, subtype, encoding and yields are fixed for aws, azure and gcp; use kind: custom to change them".to_owned());
    }
    Ok(rule)
}

pub(super) fn tenant(
    raw: Option<Vec<Spanned<raw::TenantRule>>>,
) -> Result<Vec<TenantRule>, Invalid> {
    let Some(list) = raw else {
        return Ok(vec![TenantRule::Header(HeaderName::from_static(
            "x-domain-id",
        ))]);
    };
    let mut out = Vec::new();
    for r in list {
        let loc = r.referenced;
        let rule = match r.value {
            raw::TenantRule::Header(h) => HeaderName::from_bytes(h.to_ascii_lowercase().as_bytes())
                .map(TenantRule::Header)
                .map_err(|_| format!("{h:?} is not a valid header name")),
            raw::TenantRule::Host(p) => HostPattern::parse(&p)
                .map(TenantRule::Host)
                .map_err(|e| e.to_string()),
            raw::TenantRule::Path(p) => PathPattern::parse(&p)
                .map(TenantRule::Path)
                .map_err(|e| e.to_string()),
            raw::TenantRule::Static(s) if !s.is_empty() => Ok(TenantRule::Static(s)),
            raw::TenantRule::Static(_) => Err("static tenant must not be empty".to_owned()),
        };
        out.push(rule.or_else(|m| invalid(&loc, "tenant", m))?);
    }
    Ok(out)
}

pub(super) fn routes(raw: Option<Vec<Spanned<raw::Route>>>) -> Result<Routes, Invalid> {
    let Some(list) = raw else {
        return Ok(Routes::default_routes());
    };
    let mut out = Vec::new();
    for r in list {
        out.push(route(r.value).or_else(|m| invalid(&r.referenced, "routes", m))?);
    }
    Ok(Routes::new(out))
}

fn route(r: raw::Route) -> Result<Route, String> {
    let right: Right = r
        .right
        .parse()
        .map_err(|_| format!("right {:?}: expected view, download or upload", r.right))?;
    let path = r
        .path
        .map(|p| PathPattern::parse(&p).map_err(|e| e.to_string()))
        .transpose()?;
    let methods = r
        .methods
        .map(|ms| {
            ms.iter()
                .map(|m| {
                    http::Method::from_bytes(m.to_ascii_uppercase().as_bytes())
                        .map_err(|_| format!("{m:?} is not an HTTP method"))
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?;
    Ok(Route {
        methods,
        path,
        right,
    })
}

/// `requests:`; defaults as docs/contract.md §2: merge slashes, reject escaped slashes,
/// case-sensitive literals, drop headers with `_`, pass only WebSocket upgrades.
pub(super) fn requests(raw: raw::Requests) -> Result<Requests, Invalid> {
    let upgrades = match raw.upgrades {
        None => vec!["websocket".to_owned()],
        Some(list) => {
            let mut out = Vec::new();
            for u in list {
                let token = u.value.to_ascii_lowercase();
                if token.is_empty() || !token.bytes().all(is_tchar) {
                    return invalid(
                        &u.referenced,
                        "requests.upgrades",
                        format!("{:?} is not an Upgrade protocol token", u.value),
                    );
                }
                out.push(token);
            }
            out
        }
    };
    Ok(Requests {
        path: PathRules {
            merge_slashes: raw.merge_slashes.unwrap_or(true),
            escaped_slashes: match raw.escaped_slashes.unwrap_or_default() {
                raw::EscapedSlashes::Reject => EscapedSlashes::Reject,
                raw::EscapedSlashes::Unescape => EscapedSlashes::Unescape,
                raw::EscapedSlashes::Keep => EscapedSlashes::Keep,
            },
        },
        path_case_insensitive: raw.path_case.unwrap_or_default() == raw::PathCase::Insensitive,
        headers_with_underscores: raw.headers_with_underscores.unwrap_or_default(),
        upgrades,
    })
}

/// RFC 9110 `tchar` (plus `/`, which separates a protocol's name from its version).
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~/".contains(&b)
}
