//! [`decide`]: the access decision of docs/contract.md §4, a pure function of a [`Snapshot`] and [`Facts`].
//!
//! Owns: the order of the checks (docs/contract.md §4 steps 1–7, first failure wins) and what the [`Decision`]
//! reports. Does not own: where the facts come from (client IP, PROXY TLVs, headers, routes), report
//! mode, logging, metrics or responses — the caller does those with the returned reason, and
//! persists `Decision::pending`. No I/O, no clock, no allocation.

use super::compiled::{ConnRef, Rules, Source};
use super::file::ConnectionStatus;
use super::{
    Decision, DenyReason, Facts, Outcome, PendingConnection, Rights, Scope, Snapshot, TenantRef,
    VpcepRef,
};

/// Decides whether the request described by `facts` may reach the service.
///
/// All lookups are done first and reported in the [`Decision`] whatever the outcome (tenant,
/// rules scope, endpoint, matched entry), so logs and the self-check (docs/contract.md §7.1) can say *why*;
/// then the checks run in docs/contract.md §4's order:
/// 1. arrived through an endpoint whose connection is not `accepted` → `VpcepNotAccepted`
///    (an unknown marker while some service has `approval_required` is reported in
///    `Decision::pending` for the caller to record as `pendingAcceptance`);
/// 2. the connection has a `domain_id` and the request's tenant is another → `VpcepWrongTenant`;
///    a project named beside a tenant that does not own it → `TenantConflict`;
/// 3. tenant unknown → `UnknownTenant`, or `Allow` with no rules when `unknown_tenant: allow`;
/// 4. rules = the project's when it has `project_level: true`, else the tenant's;
/// 5. `vpcep.enabled` and not through one of the rules' endpoints → `VpcepNotAuthorized`;
/// 6. `trusted_ips` non-empty and no entry contains the client IP → `IpNotTrusted`;
/// 7. entries contain it but none grants the right → `RightNotGranted`;
/// 8. `Allow`.
///
/// # Performance
/// Hash lookups for tenant, project, connection and endpoint; one O(log n) interval search for the
/// IP. No allocation.
pub fn decide<'a>(snap: &'a Snapshot, facts: &Facts<'a>) -> Decision<'a> {
    let arrival = resolve_vpcep(snap, facts.vpcep);
    let Resolved {
        tenant,
        project,
        rules,
        conflict,
    } = resolve_rules(snap, facts.tenant);
    let hit = rules
        .filter(|r| r.has_ips)
        .and_then(|r| r.ips.lookup(facts.client_ip).map(|h| (r, h)));
    let mut d = Decision {
        outcome: Outcome::Allow,
        tenant: tenant.map(|t| snap.tenant_id(t)),
        project: project.map(|p| snap.project_id(p)),
        rules_scope: match rules.map(|r| r.source) {
            None => Scope::None,
            Some(Source::Tenant(_)) => Scope::Tenant,
            Some(Source::Project(_)) => Scope::Project,
        },
        vpcep_id: arrival.vpcep_id,
        vpcep_config: rules.is_some_and(|r| r.vpcep_enabled),
        matched_ip_entry: hit.and_then(|(r, h)| snap.entry_id(r, h.entry_for(facts.right))),
        pending: arrival.pending,
    };
    d.outcome = match (conflict, arrival.domain_id, d.tenant) {
        // 2. A connection made by one tenant admits none of another's requests; a known tenant
        //    is required to tell (an unknown one is step 3's).
        _ if arrival.not_accepted => Outcome::Deny(DenyReason::VpcepNotAccepted),
        (_, Some(domain), Some(t)) if domain != t => Outcome::Deny(DenyReason::VpcepWrongTenant),
        (true, _, _) => Outcome::Deny(DenyReason::TenantConflict),
        _ => judge(snap, facts, &arrival, rules, hit.map(|(_, h)| h.rights)),
    };
    d
}

/// Steps 1 and 3–8 over the resolved facts (step 2 is checked by the caller); first failure wins.
fn judge(
    snap: &Snapshot,
    facts: &Facts<'_>,
    arrival: &Arrival<'_>,
    rules: Option<&Rules>,
    rights: Option<Rights>,
) -> Outcome {
    // 1. docs/contract.md §4: a connection that is not accepted lets nothing through, whoever the tenant is.
    if arrival.not_accepted {
        return Outcome::Deny(DenyReason::VpcepNotAccepted);
    }
    // 3. Unknown tenant: nothing to apply. `allow` means "not ours to police" (docs/contract.md §2).
    let Some(rules) = rules else {
        return match snap.unknown_tenant_allow {
            true => Outcome::Allow,
            false => Outcome::Deny(DenyReason::UnknownTenant),
        };
    };
    // 5. With VPCEP access configured, only the listed endpoints may be used.
    if rules.vpcep_enabled
        && !arrival
            .vpcep_id
            .is_some_and(|id| rules.endpoints.contains(id))
    {
        return Outcome::Deny(DenyReason::VpcepNotAuthorized);
    }
    // 6.–7. An empty whitelist does not restrict addresses.
    if rules.has_ips {
        match rights {
            None => return Outcome::Deny(DenyReason::IpNotTrusted),
            Some(r) if !r.contains(facts.right) => {
                return Outcome::Deny(DenyReason::RightNotGranted);
            }
            Some(_) => {}
        }
    }
    Outcome::Allow
}

/// Step 1's facts: which endpoint the request came through and whether its connection allows it.
struct Arrival<'a> {
    vpcep_id: Option<&'a str>,
    not_accepted: bool,
    /// The consumer tenant recorded on the connection (step 2).
    domain_id: Option<&'a str>,
    pending: Option<PendingConnection<'a>>,
}

fn resolve_vpcep<'a>(snap: &'a Snapshot, vpcep: Option<VpcepRef<'a>>) -> Arrival<'a> {
    let known = |c: ConnRef, id: &'a str| Arrival {
        vpcep_id: Some(id),
        not_accepted: c.status != ConnectionStatus::Accepted,
        domain_id: snap.connection_domain(c),
        pending: None,
    };
    match vpcep {
        None => Arrival {
            vpcep_id: None,
            not_accepted: false,
            domain_id: None,
            pending: None,
        },
        Some(VpcepRef::Marker(marker)) => match snap.connection_by_marker(marker) {
            Some(c) => known(c, snap.connection_id(c)),
            // Unknown marker: with approval required it waits for acceptance (docs/contract.md §4 step 1);
            // without, the endpoint is auto-accepted but we cannot name it.
            None => Arrival {
                vpcep_id: None,
                not_accepted: snap.approval_service.is_some(),
                domain_id: None,
                pending: snap.approval_service.map(|s| PendingConnection {
                    service_id: snap.service_id(s),
                    marker_id: marker,
                }),
            },
        },
        Some(VpcepRef::Id(id)) => match snap.connection_by_id(id) {
            Some(c) => known(c, id),
            // Not one of our service's connections (e.g. an AWS endpoint id from a TLV).
            None => Arrival {
                vpcep_id: Some(id),
                not_accepted: false,
                domain_id: None,
                pending: None,
            },
        },
    }
}

/// What the request's tenant resolves to.
struct Resolved<'s> {
    tenant: Option<usize>,
    project: Option<usize>,
    rules: Option<&'s Rules>,
    /// A project and a tenant were both named and the project is not that tenant's.
    conflict: bool,
}

/// Steps 3–4: tenant index, project index, rules in force.
fn resolve_rules<'s>(snap: &'s Snapshot, tenant: TenantRef<'_>) -> Resolved<'s> {
    let none = Resolved {
        tenant: None,
        project: None,
        rules: None,
        conflict: false,
    };
    let by_project = |p: &str| {
        snap.project(p).map(|info| Resolved {
            tenant: Some(info.tenant),
            project: Some(info.index),
            rules: snap.rules.get(info.rules.unwrap_or(info.tenant)),
            conflict: false,
        })
    };
    match tenant {
        TenantRef::Tenant(t) => {
            let idx = snap.tenant_index(t);
            Resolved {
                tenant: idx,
                rules: idx.and_then(|i| snap.rules.get(i)),
                ..none
            }
        }
        TenantRef::Project(p) => by_project(p).unwrap_or(none),
        TenantRef::Both { tenant, project } => {
            let named = snap.tenant_index(tenant);
            match by_project(project) {
                Some(r) if r.tenant == named => r,
                None if named.is_none() => none,
                // The project is another tenant's, or unknown while the tenant is known: the
                // rules disagree about who this is.
                _ => Resolved {
                    conflict: true,
                    ..none
                },
            }
        }
        TenantRef::None => none,
    }
}
