//! The verdict: everything between "a request as described" and "what the proxy answers about
//! it", shared by the data plane, its self check (docs/contract.md §7.1), `vpcguard explain` (docs/contract.md §1) and
//! the admin API's `GET /v1/vpcep-authorization` (docs/contract.md §7), so all four judge alike:
//!
//! - [`claim`] — the tenant the config's rules claim for a request; [`facts`] — the one builder of
//!   [`Facts`] from a [`Described`] request (right, client IP normalisation);
//! - [`deny_code`] — the one mapping from a [`DenyReason`] to its wire [`ErrorCode`];
//! - [`decision_json`] — the one renderer of a [`Decision`] as the seed's self-check body;
//! - [`explain`] — the CLI's decision plus the rule that matched.
//!
//! Pure: no I/O, no clock, no logging. Neither the admin API nor the CLI import a data-plane
//! module; they come here.

use std::net::IpAddr;

use http::{HeaderMap, Method};
use serde_json::{Value, json};

use crate::config::{Config, Loaded};
use crate::error::ErrorCode;
use crate::identity::tenant::{TenantClaim, TenantError, resolve_tenant};
use crate::policy::{self, Decision, DenyReason, Facts, Outcome, Scope, TenantRef, VpcepRef};

/// A request as the verdict sees it: read off a real (canonical) request by the data plane, or
/// told by the CLI and the admin API.
#[derive(Debug, Clone, Copy)]
pub struct Described<'a> {
    pub method: &'a Method,
    /// The canonical path the routes see.
    pub path: &'a str,
    pub client_ip: IpAddr,
    pub vpcep: Option<VpcepRef<'a>>,
    /// Named outright (`explain --tenant`, the admin check, the self check's `enterprise_id`),
    /// or what [`claim`] found.
    pub tenant: TenantRef<'a>,
}

/// What the config's `tenant:` rules claim for a request's headers, host (`Host` or the HTTP/2
/// `:authority`) and canonical path; an unusable or conflicting claim is a refusal
/// (docs/contract.md §4 "Tenant").
pub fn claim<'a>(
    config: &'a Config,
    headers: &'a HeaderMap,
    host: Option<&'a str>,
    path: &'a str,
) -> Result<TenantClaim<'a>, TenantError> {
    resolve_tenant(&config.tenant, headers, host, path)
}

/// The [`Facts`] `decide` judges for `req` under `config`: the tenant, the client IP in
/// canonical form (IPv4-mapped → IPv4), the endpoint, and the right the config's `routes` give
/// the method on the path.
///
/// # Performance
/// On the request path: no allocation.
pub fn facts<'a>(config: &'a Config, req: &Described<'a>) -> Facts<'a> {
    Facts {
        client_ip: req.client_ip.to_canonical(),
        tenant: req.tenant,
        vpcep: req.vpcep,
        right: config.routes.right_for(req.method, req.path),
    }
}

/// The self-check body for a request refused before a decision (an unusable tenant claim):
/// `Deny` with `code`, as [`decision_json`] renders a denial.
pub fn refusal_json(code: ErrorCode, asked_tenant: Option<&str>) -> Value {
    json!({
        "status": "ok",
        "data": {
            "enterprise_id": asked_tenant,
            "vpcep_id": Value::Null,
            "result": "Deny",
            "config": false,
            "reason": code.as_str(),
        }
    })
}

/// The endpoint a caller names: an id (preferred) or a marker.
pub fn vpcep_ref(id: Option<&str>, marker: Option<u64>) -> Option<VpcepRef<'_>> {
    match (id, marker) {
        (Some(id), _) => Some(VpcepRef::Id(id)),
        (None, Some(m)) => Some(VpcepRef::Marker(m)),
        (None, None) => None,
    }
}

/// The wire code a deny reason is answered with (docs/contract.md §5): the only such mapping.
pub fn deny_code(reason: DenyReason) -> ErrorCode {
    match reason {
        DenyReason::VpcepNotAccepted => ErrorCode::VpcepNotAccepted,
        DenyReason::VpcepWrongTenant => ErrorCode::VpcepWrongTenant,
        DenyReason::TenantConflict => ErrorCode::UnknownTenant,
        DenyReason::UnknownTenant => ErrorCode::UnknownTenant,
        DenyReason::VpcepNotAuthorized => ErrorCode::VpcepNotAuthorized,
        DenyReason::IpNotTrusted => ErrorCode::IpNotTrusted,
        DenyReason::RightNotGranted => ErrorCode::RightNotGranted,
    }
}

/// The seed's `{status, data:{enterprise_id, vpcep_id, result, config}}` plus `reason` (the deny
/// code, or null); the extra field is additive, so seed clients still parse it. `asked_tenant`
/// fills `enterprise_id` when the decision resolved none.
pub fn decision_json(decision: &Decision<'_>, asked_tenant: Option<&str>) -> Value {
    let (result, reason) = match decision.outcome {
        Outcome::Allow => ("Allow", Value::Null),
        Outcome::Deny(r) => ("Deny", Value::String(deny_code(r).as_str().to_owned())),
    };
    json!({
        "status": "ok",
        "data": {
            "enterprise_id": decision.tenant.or(asked_tenant),
            "vpcep_id": decision.vpcep_id,
            "result": result,
            "config": decision.vpcep_config,
            "reason": reason,
        }
    })
}

/// `vpcguard explain`: decide for the described request and render it, plus what matched.
pub fn explain(
    loaded: &Loaded,
    tenant: &str,
    ip: IpAddr,
    vpcep: Option<&str>,
    marker: Option<u64>,
    method: &Method,
    path: &str,
) -> Value {
    let req = Described {
        method,
        path,
        client_ip: ip,
        vpcep: vpcep_ref(vpcep, marker),
        tenant: TenantRef::Tenant(tenant),
    };
    let facts = facts(&loaded.config, &req);
    let right = facts.right;
    let d = policy::decide(&loaded.policy, &facts);
    let mut out = decision_json(&d, Some(tenant));
    out["matched"] = json!({
        "right": right.as_str(),
        "rules": match d.rules_scope {
            Scope::Tenant => "tenant",
            Scope::Project => "project",
            Scope::None => "none",
        },
        "project_id": d.project,
        "trusted_ip_id": d.matched_ip_entry,
        "pending_marker": d.pending.as_ref().map(|p| json!({"service_id": p.service_id, "marker_id": p.marker_id})),
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::RequestReason;

    #[test]
    fn deny_reason_wire_strings_match_spec_section_5() {
        use DenyReason::*;
        const CASES: &[(DenyReason, &str, &str, &str)] = &[
            (
                VpcepNotAuthorized,
                "VG.00040301",
                "vpcep_not_authorized",
                "Access denied: the request did not come through an authorized VPC endpoint.",
            ),
            (
                IpNotTrusted,
                "VG.00040302",
                "ip_not_trusted",
                "Access denied: the source IP address is not in the trusted IP address whitelist.",
            ),
            (
                RightNotGranted,
                "VG.00040303",
                "right_not_granted",
                "Access denied: the source IP address may not perform this operation.",
            ),
            (
                VpcepNotAccepted,
                "VG.00040304",
                "vpcep_not_accepted",
                "Access denied: the VPC endpoint connection has not been accepted.",
            ),
            (
                UnknownTenant,
                "VG.00040305",
                "unknown_tenant",
                "Access denied: unknown tenant.",
            ),
            (
                TenantConflict,
                "VG.00040305",
                "tenant_conflict",
                "Access denied: unknown tenant.",
            ),
            (
                VpcepWrongTenant,
                "VG.00040306",
                "vpcep_wrong_tenant",
                "Access denied: the VPC endpoint connection belongs to another tenant.",
            ),
        ];
        assert_eq!(CASES.len(), DenyReason::ALL.len());
        for &(reason, code, label, msg) in CASES {
            let wire = deny_code(reason);
            assert_eq!(wire.as_str(), code, "case {label}");
            assert_eq!(RequestReason::from(reason).as_str(), label, "case {label}");
            assert_eq!(wire.message(), msg, "case {label}");
            assert_eq!(wire.status(), 403, "case {label}");
        }
    }

    #[test]
    fn facts_canonicalise_ip_and_claim_reads_the_rules() {
        let config = crate::config::parse(
            "tenant:\n  - { header: x-domain-id }\n",
            std::path::Path::new("/tmp/vpcguard.yaml"),
        )
        .unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("x-domain-id", "from-header".parse().unwrap());
        let claimed = claim(&config, &headers, None, "/").unwrap();
        assert_eq!(claimed.as_ref(), TenantRef::Tenant("from-header"));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        let req = Described {
            method: &Method::GET,
            path: "/",
            client_ip: mapped,
            vpcep: None,
            tenant: claimed.as_ref(),
        };
        let f = facts(&config, &req);
        assert_eq!(f.client_ip, "10.0.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(f.tenant, TenantRef::Tenant("from-header"));
    }
}
