//! The data-plane self check (docs/contract.md §7.1): `GET {self_check_path}?enterprise_id=…` answers, for the
//! caller's own connection, what the proxy would decide, in the seed's body shape
//! (`codearts-check-vpcep-authorization`). Never forwarded. The facts and the body come from
//! [`crate::verdict`], so the answer is the one the real request would get.

use std::net::IpAddr;

use http::{HeaderValue, Method, Request, Response, StatusCode, header};

use super::headers::host_of;
use crate::body::{ProxyBody, full};
use crate::error::ErrorCode;
use crate::identity::tenant::TenantClaim;
use crate::policy::{self, VpcepRef};
use crate::query::query_param;
use crate::state::Generation;
use crate::verdict::{self, Described};

/// Answer the self check for this request (`path` is its canonical path): the tenant the query
/// names, else the one the `tenant:` rules find (with the HTTP/2 `:authority` standing in for
/// `Host`, as for any request).
pub(super) fn answer(
    current: &Generation,
    req: &Request<()>,
    path: &str,
    client_ip: IpAddr,
    vpcep: Option<VpcepRef<'_>>,
) -> Response<ProxyBody> {
    let query = req.uri().query().unwrap_or("");
    let asked = query_param(query, "enterprise_id");
    let cfg = &current.config;
    let claim = match asked.as_deref() {
        Some(t) => Ok(TenantClaim::Tenant(t.into())),
        None => verdict::claim(cfg, req.headers(), host_of(req), path),
    };
    let body = match &claim {
        Ok(claim) => {
            let described = Described {
                method: &Method::GET,
                path,
                client_ip,
                vpcep,
                tenant: claim.as_ref(),
            };
            let facts = verdict::facts(cfg, &described);
            let decision = policy::decide(&current.policy, &facts);
            verdict::decision_json(&decision, asked.as_deref())
        }
        Err(_) => verdict::refusal_json(ErrorCode::UnknownTenant, asked.as_deref()),
    }
    .to_string();
    let mut resp = Response::new(full(body));
    *resp.status_mut() = StatusCode::OK;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}
