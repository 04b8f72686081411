//! Which tenant a request belongs to (docs/contract.md §2 `tenant`): the first rule that yields wins.
//!
//! Owns: trying the configured rules in order. Does not own: validating the tenant or project id,
//! mapping a project to its tenant, or the `unknown_tenant` decision (all in the policy). No I/O.

#[cfg(test)]
mod tests;

use http::{HeaderMap, HeaderName};

use super::pattern::{CaptureName, HostPattern, PathPattern};

/// One `tenant:` rule (docs/contract.md §2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TenantRule {
    /// `{ header: NAME }`: the header's value is the tenant id.
    Header(HeaderName),
    /// `{ host: PATTERN }`: the Host (or `:authority`) captures `{tenant}` or `{project}`.
    Host(HostPattern),
    /// `{ path: PATTERN }`: the raw path captures `{tenant}` or `{project}`.
    Path(PathPattern),
    /// `{ static: ID }`: always this tenant.
    Static(String),
}

/// What a rule found: a tenant id, or a project id the policy maps to its tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TenantHint<'a> {
    /// An enterprise id.
    Tenant(&'a str),
    /// A project id.
    Project(&'a str),
}

/// Try `rules` in order and return the first hint one yields (docs/contract.md §2: "first match wins").
///
/// A rule does not yield when:
/// - `Header`: the header is absent, empty, not all visible ASCII (`!`..=`~`), or repeated with
///   different values (ambiguous: the upstream may read another line than we did);
/// - `Host`: `host` is `None` or does not match, or the pattern has no capture;
/// - `Path`: the path does not match (also for dot segments, see `pattern`), or no capture;
/// - `Static`: the id is empty.
///
/// `host` is the `Host` header, or the HTTP/2 `:authority`; the caller picks. `path` is the raw
/// URI path.
///
/// # Performance
/// No allocation.
pub fn resolve_tenant<'a>(
    rules: &'a [TenantRule],
    headers: &'a HeaderMap,
    host: Option<&'a str>,
    path: &'a str,
) -> Option<TenantHint<'a>> {
    rules.iter().find_map(|rule| match rule {
        TenantRule::Header(name) => header_value(headers, name).map(TenantHint::Tenant),
        TenantRule::Host(pattern) => host
            .and_then(|h| pattern.matches(h))
            .and_then(|caps| hint(caps.first())),
        TenantRule::Path(pattern) => pattern.matches(path).and_then(|caps| hint(caps.first())),
        TenantRule::Static(id) => (!id.is_empty()).then_some(TenantHint::Tenant(id.as_str())),
    })
}

fn hint(capture: Option<(CaptureName, &str)>) -> Option<TenantHint<'_>> {
    match capture? {
        (_, "") => None,
        (CaptureName::Tenant, v) => Some(TenantHint::Tenant(v)),
        (CaptureName::Project, v) => Some(TenantHint::Project(v)),
    }
}

fn header_value<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a str> {
    let mut lines = headers.get_all(name).iter();
    let first = lines.next()?;
    if lines.any(|other| other != first) {
        return None;
    }
    let bytes = first.as_bytes();
    if bytes.is_empty() || !bytes.iter().all(|b| (b'!'..=b'~').contains(b)) {
        return None;
    }
    first.to_str().ok()
}
