//! The data-plane self check (SPEC §7.1): `GET {self_check_path}?enterprise_id=…` answers, for the
//! caller's own connection, what the proxy would decide, in the seed's body shape
//! (`codearts-check-vpcep-authorization`). Never forwarded. Also renders the same JSON for
//! `vpcguard explain` and the admin API.

use std::net::IpAddr;

use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use serde_json::{Value, json};

use super::http::Done;
use crate::body::{ProxyBody, full};
use crate::identity::tenant::{TenantHint, resolve_tenant};
use crate::policy::{self, Decision, Facts, Outcome, TenantRef, VpcepRef};
use crate::state::Current;

/// The seed's `{status, data:{enterprise_id, vpcep_id, result, config}}` plus `reason` (the deny
/// code, or null) — the extra field is additive, so seed clients still parse it.
pub fn decision_json(decision: &Decision<'_>, asked_tenant: Option<&str>) -> Value {
    let (result, reason) = match decision.outcome {
        Outcome::Allow => ("Allow", Value::Null),
        Outcome::Deny(r) => (
            "Deny",
            Value::String(super::http::deny_code(r).as_str().to_owned()),
        ),
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

/// Answer the self check for this request.
pub(super) fn answer(
    current: &Current,
    req: &Request<Incoming>,
    client_ip: IpAddr,
    vpcep: Option<VpcepRef<'_>>,
    done: &mut Done,
) -> Response<ProxyBody> {
    let cfg = &current.config;
    let query = req.uri().query().unwrap_or("");
    let asked = query_param(query, "enterprise_id");
    let path = req.uri().path();
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok());
    let tenant = match asked.as_deref() {
        Some(t) => TenantRef::Tenant(t),
        None => match resolve_tenant(&cfg.tenant, req.headers(), host, path) {
            Some(TenantHint::Tenant(t)) => TenantRef::Tenant(t),
            Some(TenantHint::Project(p)) => TenantRef::Project(p),
            None => TenantRef::None,
        },
    };
    let right = cfg.routes.right_for(&Method::GET, path);
    let facts = Facts {
        client_ip,
        tenant,
        vpcep,
        right,
    };
    let decision = policy::decide(&current.policy, &facts);
    done.reason = "self_check";
    let body = decision_json(&decision, asked.as_deref()).to_string();
    let mut resp = Response::new(full(body));
    *resp.status_mut() = StatusCode::OK;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// The first value of `name` in a query string, percent-decoded (`+` is a space).
pub fn query_param(query: &str, name: &str) -> Option<String> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
        .find(|(k, _)| *k == name)
        .and_then(|(_, v)| percent_decode(v))
}

/// Percent-decode a query-string component (`+` is a space); `None` on a bad escape or non-UTF-8.
pub fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_param_cases() {
        const CASES: &[(&str, &str, Option<&str>)] = &[
            ("enterprise_id=abc", "enterprise_id", Some("abc")),
            ("a=1&enterprise_id=x%2Fy", "enterprise_id", Some("x/y")),
            ("a=1", "enterprise_id", None),
            ("enterprise_id=%zz", "enterprise_id", None),
            ("enterprise_id=%4", "enterprise_id", None),
            ("enterprise_id", "enterprise_id", Some("")),
        ];
        for (q, name, want) in CASES {
            assert_eq!(query_param(q, name).as_deref(), *want, "case {q:?}");
        }
    }
}
