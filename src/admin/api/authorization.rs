//! `GET /v1/vpcep-authorization` (seed: codearts-check-vpcep-authorization; docs/contract.md §7): what the
//! data plane would decide for a described request — `enterprise_id` (or `project_id`), `ip`,
//! `vpcep_id` or `marker_id`, `method` (default GET), `path` (default `/`) — answered with the
//! data plane's own decision function (`policy::decide` over the published snapshot, facts built
//! by [`crate::verdict::facts`]) in the self-check's body: `{status:"ok", data:{enterprise_id,
//! vpcep_id, result:"Allow"|"Deny", config, reason}}`, `reason` being the data plane's deny code.
//!
//! Read-only: unlike a real request, an unknown marker is not recorded as pending.

use std::net::IpAddr;

use axum::extract::{RawQuery, State};
use axum::response::Response;

use super::params::{Query, check_id};
use super::{AdminState, flat, ok_json};
use crate::admin::error::ApiError;
use crate::policy::{self, IdKind, TenantRef};
use crate::verdict;

/// A described request, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Described {
    enterprise_id: Option<String>,
    project_id: Option<String>,
    ip: IpAddr,
    vpcep_id: Option<String>,
    marker_id: Option<u64>,
    method: http::Method,
    path: String,
}

impl Described {
    pub(super) fn from_query(q: &Query) -> Result<Described, ApiError> {
        let enterprise_id = q.get("enterprise_id").map(str::to_owned);
        let project_id = q.get("project_id").map(str::to_owned);
        match (&enterprise_id, &project_id) {
            (Some(e), None) => check_id(IdKind::EnterpriseId, e)?,
            (None, Some(p)) => check_id(IdKind::ProjectId, p)?,
            _ => {
                return Err(ApiError::bad_param(
                    "exactly one of enterprise_id and project_id is required",
                ));
            }
        }
        let ip_text = q.required("ip")?;
        let ip = ip_text.parse::<IpAddr>().map_err(|_| {
            ApiError::bad_param(format!("ip {ip_text:?} is not an IPv4 or IPv6 address"))
        })?;
        let vpcep_id = q.get("vpcep_id").map(str::to_owned);
        if let Some(v) = &vpcep_id {
            check_id(IdKind::VpcepId, v)?;
        }
        let marker_id = match q.get("marker_id") {
            None => None,
            Some(m) => Some(m.parse::<u64>().map_err(|_| {
                ApiError::bad_param(format!(
                    "marker_id must be an unsigned 64-bit integer, not {m:?}"
                ))
            })?),
        };
        if vpcep_id.is_some() && marker_id.is_some() {
            return Err(ApiError::bad_param("give vpcep_id or marker_id, not both"));
        }
        let method_text = q.get("method").unwrap_or("GET");
        let method = http::Method::from_bytes(method_text.to_ascii_uppercase().as_bytes())
            .map_err(|_| ApiError::bad_param(format!("method {method_text:?} is not valid")))?;
        let path = q.get("path").unwrap_or("/").to_owned();
        if !path.starts_with('/') {
            return Err(ApiError::bad_param("path must start with /"));
        }
        Ok(Described {
            enterprise_id,
            project_id,
            ip,
            vpcep_id,
            marker_id,
            method,
            path,
        })
    }
}

/// `GET /v1/vpcep-authorization`.
pub(super) async fn check(State(st): State<AdminState>, RawQuery(raw): RawQuery) -> Response {
    flat((|| {
        let d = Described::from_query(&Query::parse(raw.as_deref())?)?;
        let cur = st.shared.current();
        Ok(ok_json(judge(&cur.config, &cur.policy, &d)))
    })())
}

/// The self-check body for `d` under `config` and `snap`.
pub(super) fn judge(
    config: &crate::config::Config,
    snap: &policy::Snapshot,
    d: &Described,
) -> serde_json::Value {
    let tenant = match (&d.enterprise_id, &d.project_id) {
        (Some(e), _) => TenantRef::Tenant(e),
        (None, Some(p)) => TenantRef::Project(p),
        (None, None) => TenantRef::None,
    };
    let req = verdict::Described {
        method: &d.method,
        path: &d.path,
        client_ip: d.ip,
        vpcep: verdict::vpcep_ref(d.vpcep_id.as_deref(), d.marker_id),
        tenant,
    };
    let facts = verdict::facts(config, &req);
    let decision = policy::decide(snap, &facts);
    verdict::decision_json(&decision, d.enterprise_id.as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::error::ErrorKind;

    fn described(q: &str) -> Result<Described, ApiError> {
        Described::from_query(&Query::parse(Some(q)).unwrap())
    }

    #[test]
    fn query_validation() {
        let d = described("enterprise_id=t1&ip=10.0.0.1&marker_id=7&method=post&path=/a").unwrap();
        assert_eq!(d.method, http::Method::POST);
        assert_eq!((d.marker_id, d.path.as_str()), (Some(7), "/a"));
        let d = described("project_id=0f6c3a1e9b2d4c7f8a5e1d3b6c9f2a4e&ip=::1").unwrap();
        assert_eq!((d.method, d.path.as_str()), (http::Method::GET, "/"));
        for bad in [
            "ip=10.0.0.1",
            "enterprise_id=t1",
            "enterprise_id=t1&ip=10.0.0.300",
            "enterprise_id=t%201&ip=10.0.0.1",
            "enterprise_id=t1&project_id=0f6c3a1e9b2d4c7f8a5e1d3b6c9f2a4e&ip=10.0.0.1",
            "project_id=short&ip=10.0.0.1",
            "enterprise_id=t1&ip=10.0.0.1&vpcep_id=UPPER",
            "enterprise_id=t1&ip=10.0.0.1&marker_id=-4",
            "enterprise_id=t1&ip=10.0.0.1&marker_id=1&vpcep_id=a",
            "enterprise_id=t1&ip=10.0.0.1&method=G%20T",
            "enterprise_id=t1&ip=10.0.0.1&path=relative",
        ] {
            assert_eq!(
                described(bad).unwrap_err().kind,
                ErrorKind::BadParam,
                "case {bad}"
            );
        }
    }
}
