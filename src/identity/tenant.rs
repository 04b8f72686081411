//! Which tenant a request belongs to (docs/contract.md §2 `tenant`, §4 "Tenant"): every rule is
//! evaluated, and all that yield must agree.
//!
//! Owns: evaluating the configured rules and combining their answers, with the id character
//! sets as the first check. Does not own: mapping a project to its tenant, whether the tenant is
//! known, or the `unknown_tenant` decision (all in the policy). No I/O.

#[cfg(test)]
mod tests;

use std::borrow::Cow;

use http::{HeaderMap, HeaderName};

use super::pattern::{CaptureName, HostPattern, PathPattern};
use crate::policy::{IdKind, TenantRef, validate};

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

/// What all the rules together claim (docs/contract.md §4 "Tenant"). Host captures are
/// lower-cased, so a claim may own its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TenantClaim<'a> {
    /// No rule yielded.
    None,
    /// Every rule that yielded named this tenant.
    Tenant(Cow<'a, str>),
    /// Every rule that yielded named this project.
    Project(Cow<'a, str>),
    /// Rules named a tenant and a project: the policy checks that the project is that tenant's.
    Both {
        tenant: Cow<'a, str>,
        project: Cow<'a, str>,
    },
}

/// Why the rules give no usable claim. Both are answered 403 `VG.00040305`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TenantError {
    /// A rule's source is present but unusable (reason `bad_tenant`).
    #[error("a tenant rule's source is present but unusable")]
    Invalid,
    /// Two rules name different tenants (or projects) (reason `tenant_conflict`).
    #[error("tenant rules disagree")]
    Conflict,
}

/// Evaluate every rule on the canonical request and combine what they found
/// (docs/contract.md §4 "Tenant"; fail closed):
///
/// - a rule whose source is present but unusable makes the whole claim [`TenantError::Invalid`]:
///   a tenant header that is empty, repeated with different values, or outside the
///   `enterprise_id` character set; a host or path capture outside the tenant or project id
///   character set;
/// - rules that name different tenants, or different projects, are [`TenantError::Conflict`];
/// - a tenant and a project together are [`TenantClaim::Both`] (the policy checks ownership, and
///   the project brings its project-level rules);
/// - `static` applies only when no other rule yields.
///
/// `host` is the `Host` header, or the HTTP/2 `:authority`; `path` the canonical path.
///
/// # Performance
/// No allocation unless a host capture has upper-case letters.
pub fn resolve_tenant<'a>(
    rules: &'a [TenantRule],
    headers: &'a HeaderMap,
    host: Option<&'a str>,
    path: &'a str,
) -> Result<TenantClaim<'a>, TenantError> {
    let mut tenant: Option<Cow<'a, str>> = None;
    let mut project: Option<Cow<'a, str>> = None;
    let mut fallback = None;
    for rule in rules {
        let found = match rule {
            TenantRule::Header(name) => {
                header_value(headers, name)?.map(|v| (CaptureName::Tenant, Cow::Borrowed(v)))
            }
            TenantRule::Host(pattern) => host
                .and_then(|h| pattern.matches(h))
                .and_then(|caps| caps.first())
                .map(|(name, v)| (name, lowercase(v))),
            TenantRule::Path(pattern) => pattern
                .matches(path)
                .and_then(|caps| caps.first())
                .map(|(name, v)| (name, Cow::Borrowed(v))),
            TenantRule::Static(id) => {
                fallback = fallback.or((!id.is_empty()).then_some(id.as_str()));
                None
            }
        };
        let Some((name, value)) = found else { continue };
        let (slot, kind) = match name {
            CaptureName::Tenant => (&mut tenant, IdKind::EnterpriseId),
            CaptureName::Project => (&mut project, IdKind::ProjectId),
        };
        if !validate::is_valid(kind, &value) {
            return Err(TenantError::Invalid);
        }
        match slot {
            Some(seen) if *seen != value => return Err(TenantError::Conflict),
            Some(_) => {}
            None => *slot = Some(value),
        }
    }
    Ok(match (tenant, project) {
        (Some(tenant), Some(project)) => TenantClaim::Both { tenant, project },
        (Some(t), None) => TenantClaim::Tenant(t),
        (None, Some(p)) => TenantClaim::Project(p),
        (None, None) => match fallback {
            Some(id) => TenantClaim::Tenant(Cow::Borrowed(id)),
            None => TenantClaim::None,
        },
    })
}

impl TenantClaim<'_> {
    /// The claim as the policy reads it.
    pub fn as_ref(&self) -> TenantRef<'_> {
        match self {
            TenantClaim::None => TenantRef::None,
            TenantClaim::Tenant(t) => TenantRef::Tenant(t),
            TenantClaim::Project(p) => TenantRef::Project(p),
            TenantClaim::Both { tenant, project } => TenantRef::Both { tenant, project },
        }
    }
}

fn lowercase(v: &str) -> Cow<'_, str> {
    match v.bytes().any(|b| b.is_ascii_uppercase()) {
        true => Cow::Owned(v.to_ascii_lowercase()),
        false => Cow::Borrowed(v),
    }
}

/// The tenant header's one value; `Ok(None)` when absent, [`TenantError::Invalid`] when present
/// but empty, not visible ASCII, or repeated with different values (the upstream may read
/// another line than we did).
fn header_value<'a>(
    headers: &'a HeaderMap,
    name: &HeaderName,
) -> Result<Option<&'a str>, TenantError> {
    let mut lines = headers.get_all(name).iter();
    let Some(first) = lines.next() else {
        return Ok(None);
    };
    if lines.any(|other| other != first) {
        return Err(TenantError::Invalid);
    }
    let bytes = first.as_bytes();
    if bytes.is_empty() || !bytes.iter().all(|b| (b'!'..=b'~').contains(b)) {
        return Err(TenantError::Invalid);
    }
    first.to_str().map(Some).map_err(|_| TenantError::Invalid)
}
