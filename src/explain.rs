//! `vpcguard explain` (SPEC §1): the decision the loaded rules would take for given facts, as the
//! JSON of §7.1 plus the matched rule. Pure over a [`Loaded`]. [`facts`] is shared with the admin
//! API's `GET /v1/vpcep-authorization`, so both describe a request to `decide` as the data plane
//! does.

use std::net::IpAddr;

use serde_json::{Value, json};

use crate::config::{Config, Loaded};
use crate::policy::{self, Facts, Scope, TenantRef, VpcepRef};
use crate::proxy::selfcheck::decision_json;

/// The [`Facts`] of a described request: the client IP normalised as the data plane does
/// (IPv4-mapped → IPv4), the endpoint id (preferred) or marker, and the right the config's
/// `routes` give `method` on `path`.
pub fn facts<'a>(
    config: &Config,
    tenant: TenantRef<'a>,
    ip: IpAddr,
    vpcep: Option<&'a str>,
    marker: Option<u64>,
    method: &http::Method,
    path: &str,
) -> Facts<'a> {
    let vpcep = match (vpcep, marker) {
        (Some(id), _) => Some(VpcepRef::Id(id)),
        (None, Some(m)) => Some(VpcepRef::Marker(m)),
        (None, None) => None,
    };
    Facts {
        client_ip: crate::identity::client_ip::normalize(ip),
        tenant,
        vpcep,
        right: config.routes.right_for(method, path),
    }
}

/// Decide and render.
pub fn explain(
    loaded: &Loaded,
    tenant: &str,
    ip: IpAddr,
    vpcep: Option<&str>,
    marker: Option<u64>,
    method: &http::Method,
    path: &str,
) -> Value {
    let facts = facts(
        &loaded.config,
        TenantRef::Tenant(tenant),
        ip,
        vpcep,
        marker,
        method,
        path,
    );
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
