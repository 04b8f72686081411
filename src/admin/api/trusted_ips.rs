//! `/v4/tenant/trusted-ip-addresses` (seed: codearts-repo-trusted-ip-whitelist): a tenant's
//! trusted IP whitelist. The tenant is the `enterprise_id` query parameter or the `X-Domain-Id`
//! header (both given and different is a 400).
//!
//! - `GET` (`offset` 0–2147483647 default 0 and `limit` 1–100 default 20, as the seed says) → an
//!   array of `TenantTrustedIpAddressDto` in file order, with the derived `ip_type`/`ip_start`/
//!   `ip_end`, and the `X-Total` header.
//! - `POST {id?, ip_range, view_flag, download_flag, upload_flag, remark}` creates an entry (flags
//!   default 0; without `id` the next free number is used) → the created DTO; an existing id is
//!   409 `UC.00011009`.
//! - `PUT …/{id}` changes the fields given (a partial update: an omitted flag keeps its value
//!   rather than silently revoking a right) → the updated DTO.
//! - `DELETE …/{id}` → the removed DTO. An unknown tenant or id is 404 `UC.00011005`.
//!
//! Bodies may carry the DTO's read-only fields (`ip_type`, `ip_start`, `domain_id`, …) so a GET
//! result can be edited and sent back; they are ignored. Any other unknown field is a 400.

use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::{Value, json};

use super::params::{Page, Query, check_id, json_body};
use super::{AdminState, flat, read_body, tenant, tenant_mut};
use crate::admin::error::ApiError;
use crate::policy::{IdKind, Located, PolicyFile, TrustedIp, parse_ip_range};

/// The seed's offset range for this API (0~2147483647).
const OFFSET_MAX: u64 = 2_147_483_647;

/// An entry id as sent: the seed's examples use numbers, the policy file strings.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum IdValue {
    Text(String),
    Number(u64),
}

impl IdValue {
    fn into_string(self) -> String {
        match self {
            IdValue::Text(s) => s,
            IdValue::Number(n) => n.to_string(),
        }
    }
}

/// The POST/PUT body (seed `TenantTrustedIpAddressDto`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryBody {
    id: Option<IdValue>,
    ip_range: Option<String>,
    view_flag: Option<u8>,
    download_flag: Option<u8>,
    upload_flag: Option<u8>,
    remark: Option<String>,
    // Read-only DTO fields, accepted so a GET result can be sent back, and ignored.
    #[allow(dead_code)]
    ip_type: Option<IgnoredAny>,
    #[allow(dead_code)]
    ip_start: Option<IgnoredAny>,
    #[allow(dead_code)]
    ip_end: Option<IgnoredAny>,
    #[allow(dead_code)]
    domain_id: Option<IgnoredAny>,
    #[allow(dead_code)]
    user_id: Option<IgnoredAny>,
    #[allow(dead_code)]
    created_at: Option<IgnoredAny>,
    #[allow(dead_code)]
    updated_at: Option<IgnoredAny>,
    #[allow(dead_code)]
    order_flag: Option<IgnoredAny>,
}

/// `GET /v4/tenant/trusted-ip-addresses`.
pub(super) async fn list(
    State(st): State<AdminState>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    flat((|| {
        let q = Query::parse(raw.as_deref())?;
        let enterprise_id = enterprise(&q, &headers)?;
        let page = Page::from_query(&q, OFFSET_MAX, 20)?;
        let cur = st.shared.current();
        let (items, total) = list_json(cur.policy.file(), &enterprise_id, page)?;
        let mut resp = axum::Json(items).into_response();
        resp.headers_mut()
            .insert("x-total", HeaderValue::from(total));
        Ok(resp)
    })())
}

/// `POST /v4/tenant/trusted-ip-addresses`.
pub(super) async fn create(
    State(st): State<AdminState>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    flat(
        async {
            let enterprise_id = enterprise(&Query::parse(raw.as_deref())?, &headers)?;
            let b: EntryBody = json_body(&read_body(body).await?)?;
            let id = b.id.clone().map(IdValue::into_string);
            if let Some(id) = &id {
                check_id(IdKind::TrustedIpId, id)?;
            }
            let ip_range = b
                .ip_range
                .clone()
                .ok_or_else(|| ApiError::bad_param("ip_range is required"))?;
            let mut entry = TrustedIp {
                id: Located::new(id.clone().unwrap_or_default()),
                ip_range: Located::new(ip_range),
                view_flag: Located::new(0),
                download_flag: Located::new(0),
                upload_flag: Located::new(0),
                remark: None,
            };
            apply(&mut entry, b)?;
            let tenant_id = enterprise_id.clone();
            let saved = st
                .writer
                .mutate(move |f| create_entry(f, &tenant_id, entry.clone(), id.is_none()))
                .await??;
            Ok(axum::Json(dto(&saved, &enterprise_id)?).into_response())
        }
        .await,
    )
}

/// `PUT /v4/tenant/trusted-ip-addresses/{id}`.
pub(super) async fn update(
    State(st): State<AdminState>,
    path: Result<Path<String>, PathRejection>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    flat(
        async {
            let id = path_id(path)?;
            let enterprise_id = enterprise(&Query::parse(raw.as_deref())?, &headers)?;
            let b: EntryBody = json_body(&read_body(body).await?)?;
            if let Some(body_id) = b.id.clone().map(IdValue::into_string) {
                if body_id != id {
                    return Err(ApiError::bad_param(format!(
                        "the body's id {body_id:?} is not the path's {id:?}"
                    )));
                }
            }
            // Validate the change before queueing it, on a scratch entry.
            apply(&mut scratch(), clone_changes(&b))?;
            let tenant_id = enterprise_id.clone();
            let saved = st
                .writer
                .mutate(move |f| {
                    let e = entry_mut(f, &tenant_id, &id)?;
                    apply(e, clone_changes(&b))?;
                    Ok::<_, ApiError>(e.clone())
                })
                .await??;
            Ok(axum::Json(dto(&saved, &enterprise_id)?).into_response())
        }
        .await,
    )
}

/// `DELETE /v4/tenant/trusted-ip-addresses/{id}`.
pub(super) async fn remove(
    State(st): State<AdminState>,
    path: Result<Path<String>, PathRejection>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    flat(
        async {
            let id = path_id(path)?;
            let enterprise_id = enterprise(&Query::parse(raw.as_deref())?, &headers)?;
            let tenant_id = enterprise_id.clone();
            let removed = st
                .writer
                .mutate(move |f| remove_entry(f, &tenant_id, &id))
                .await??;
            Ok(axum::Json(dto(&removed, &enterprise_id)?).into_response())
        }
        .await,
    )
}

fn path_id(path: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    let Path(id) = path.map_err(|e| ApiError::bad_param(format!("bad path: {e}")))?;
    check_id(IdKind::TrustedIpId, &id)?;
    Ok(id)
}

/// The tenant: `enterprise_id` from the query, else `X-Domain-Id`; validated.
fn enterprise(q: &Query, headers: &HeaderMap) -> Result<String, ApiError> {
    let header = match headers.get("x-domain-id") {
        Some(v) => Some(
            v.to_str()
                .map_err(|_| ApiError::bad_param("X-Domain-Id is not valid text"))?,
        ),
        None => None,
    };
    let id = match (q.get("enterprise_id"), header) {
        (Some(a), Some(b)) if a != b => {
            return Err(ApiError::bad_param(
                "enterprise_id and X-Domain-Id name different tenants",
            ));
        }
        (Some(a), _) => a,
        (None, Some(b)) => b,
        (None, None) => {
            return Err(ApiError::bad_param(
                "enterprise_id (query) or X-Domain-Id (header) is required",
            ));
        }
    };
    check_id(IdKind::EnterpriseId, id)?;
    Ok(id.to_owned())
}

/// The seed's `TenantTrustedIpAddressDto` for `e` of tenant `domain_id`. `user_id`,
/// `created_at`, `updated_at` and `order_flag` are not kept by the policy file and are omitted
/// rather than invented.
pub(super) fn dto(e: &TrustedIp, domain_id: &str) -> Result<Value, ApiError> {
    let d = e
        .derived()
        .map_err(|err| ApiError::internal(format!("stored entry {:?}: {err}", e.id.get())))?;
    Ok(json!({
        "id": e.id.get(),
        "domain_id": domain_id,
        "ip_range": e.ip_range.get(),
        "ip_type": d.ip_type,
        "ip_start": d.ip_start,
        "ip_end": d.ip_end,
        "view_flag": e.view_flag.get(),
        "download_flag": e.download_flag.get(),
        "upload_flag": e.upload_flag.get(),
        "remark": e.remark.as_deref().map_or("", String::as_str),
    }))
}

/// The GET page and the total count.
pub(super) fn list_json(
    file: &PolicyFile,
    enterprise_id: &str,
    page: Page,
) -> Result<(Vec<Value>, usize), ApiError> {
    let t = tenant(file, enterprise_id)?;
    let items = page
        .slice(&t.trusted_ips)
        .iter()
        .map(|e| dto(e, enterprise_id))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((items, t.trusted_ips.len()))
}

fn scratch() -> TrustedIp {
    TrustedIp {
        id: Located::new("x".to_owned()),
        ip_range: Located::new("127.0.0.1".to_owned()),
        view_flag: Located::new(0),
        download_flag: Located::new(0),
        upload_flag: Located::new(0),
        remark: None,
    }
}

fn clone_changes(b: &EntryBody) -> EntryBody {
    EntryBody {
        ip_range: b.ip_range.clone(),
        view_flag: b.view_flag,
        download_flag: b.download_flag,
        upload_flag: b.upload_flag,
        remark: b.remark.clone(),
        ..EntryBody::default()
    }
}

/// Apply the fields of `b` that are given to `e`, validating each (range grammar, flags 0/1,
/// remark length). `id` is not touched.
fn apply(e: &mut TrustedIp, b: EntryBody) -> Result<(), ApiError> {
    if let Some(r) = b.ip_range {
        parse_ip_range(&r).map_err(|err| ApiError::bad_param(format!("ip_range {r:?} {err}")))?;
        e.ip_range.set(r);
    }
    let flag = |name: &str, v: Option<u8>, slot: &mut Located<u8>| match v {
        Some(v @ (0 | 1)) => {
            slot.set(v);
            Ok(())
        }
        Some(v) => Err(ApiError::bad_param(format!(
            "{name} must be 0 or 1, not {v}"
        ))),
        None => Ok(()),
    };
    flag("view_flag", b.view_flag, &mut e.view_flag)?;
    flag("download_flag", b.download_flag, &mut e.download_flag)?;
    flag("upload_flag", b.upload_flag, &mut e.upload_flag)?;
    if let Some(r) = b.remark {
        check_id(IdKind::Remark, &r)?;
        e.remark = Some(Located::new(r));
    }
    Ok(())
}

/// Add `entry` to the tenant's whitelist: 409 if its id exists; with `generate_id`, it gets the
/// next number after the largest numeric id.
pub(super) fn create_entry(
    file: &mut PolicyFile,
    enterprise_id: &str,
    mut entry: TrustedIp,
    generate_id: bool,
) -> Result<TrustedIp, ApiError> {
    let t = tenant_mut(file, enterprise_id)?;
    if generate_id {
        let next = t
            .trusted_ips
            .iter()
            .filter_map(|e| e.id.get().parse::<u64>().ok())
            .max()
            .map_or(1, |m| m.saturating_add(1));
        entry.id.set(next.to_string());
    }
    if t.trusted_ips.iter().any(|e| e.id.get() == entry.id.get()) {
        return Err(ApiError::conflict(format!(
            "trusted IP entry {:?} already exists",
            entry.id.get()
        )));
    }
    t.trusted_ips.push(entry.clone());
    Ok(entry)
}

fn entry_mut<'f>(
    file: &'f mut PolicyFile,
    enterprise_id: &str,
    id: &str,
) -> Result<&'f mut TrustedIp, ApiError> {
    tenant_mut(file, enterprise_id)?
        .trusted_ips
        .iter_mut()
        .find(|e| *e.id.get() == id)
        .ok_or_else(|| ApiError::not_found(format!("no trusted IP entry {id:?}")))
}

/// Remove entry `id` of the tenant; 404 if absent. Returns it.
pub(super) fn remove_entry(
    file: &mut PolicyFile,
    enterprise_id: &str,
    id: &str,
) -> Result<TrustedIp, ApiError> {
    let t = tenant_mut(file, enterprise_id)?;
    let pos = t
        .trusted_ips
        .iter()
        .position(|e| *e.id.get() == id)
        .ok_or_else(|| ApiError::not_found(format!("no trusted IP entry {id:?}")))?;
    Ok(t.trusted_ips.remove(pos))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::error::ErrorKind;
    use crate::policy::parse_policy;

    const POLICY: &str = "tenants:\n  - enterprise_id: t1\n    trusted_ips:\n      - { id: \"7\", ip_range: \"10.1.0.0/16\", view_flag: 1 }\n      - { id: \"x\", ip_range: \"1.1.1.1-1.1.1.9\", remark: hi }\n      - { id: \"9\", ip_range: \"2001:db8::1\" }\n";

    fn file() -> PolicyFile {
        parse_policy(POLICY).unwrap()
    }

    fn body(v: Value) -> EntryBody {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn dto_derives_type_start_and_end() {
        let f = file();
        let got: Vec<Value> = f.tenants[0]
            .trusted_ips
            .iter()
            .map(|e| dto(e, "t1").unwrap())
            .collect();
        assert_eq!(
            got[0],
            json!({"id": "7", "domain_id": "t1", "ip_range": "10.1.0.0/16", "ip_type": 2,
                   "ip_start": "10.1.0.0", "ip_end": "10.1.255.255", "view_flag": 1,
                   "download_flag": 0, "upload_flag": 0, "remark": ""})
        );
        assert_eq!(
            (&got[1]["ip_type"], &got[1]["ip_end"], &got[1]["remark"]),
            (&json!(1), &json!("1.1.1.9"), &json!("hi"))
        );
        assert_eq!(
            (&got[2]["ip_type"], &got[2]["ip_start"]),
            (&json!(3), &json!("2001:db8::1"))
        );
    }

    #[test]
    fn list_pages_and_counts() {
        let f = file();
        let (items, total) = list_json(
            &f,
            "t1",
            Page {
                offset: 1,
                limit: 1,
            },
        )
        .unwrap();
        assert_eq!((items.len(), total), (1, 3));
        assert_eq!(items[0]["id"], "x");
        let err = list_json(
            &f,
            "t2",
            Page {
                offset: 0,
                limit: 1,
            },
        )
        .unwrap_err();
        assert_eq!(err.kind, ErrorKind::NotFound);
    }

    #[test]
    fn create_generates_the_next_numeric_id_and_refuses_duplicates() {
        let mut f = file();
        let e = create_entry(&mut f, "t1", scratch(), true).unwrap();
        assert_eq!(e.id.get(), "10");
        let mut dup = scratch();
        dup.id.set("7".to_owned());
        let err = create_entry(&mut f, "t1", dup, false).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Conflict);
        assert_eq!(f.tenants[0].trusted_ips.len(), 4);
    }

    #[test]
    fn apply_validates_and_changes_only_given_fields() {
        let mut e = scratch();
        e.view_flag.set(1);
        apply(
            &mut e,
            body(json!({"upload_flag": 1, "remark": "r", "ip_type": 9})),
        )
        .unwrap();
        assert_eq!((*e.view_flag.get(), *e.upload_flag.get()), (1, 1));
        assert_eq!(e.ip_range.get(), "127.0.0.1");
        for bad in [
            json!({"view_flag": 2}),
            json!({"ip_range": "10.0.0.0/40"}),
            json!({"ip_range": "1.1.1.9-1.1.1.1"}),
            json!({"remark": "r".repeat(201)}),
        ] {
            let err = apply(&mut scratch(), body(bad.clone())).unwrap_err();
            assert_eq!(err.kind, ErrorKind::BadParam, "case {bad}");
        }
    }

    #[test]
    fn remove_and_update_need_an_existing_entry() {
        let mut f = file();
        assert_eq!(remove_entry(&mut f, "t1", "x").unwrap().id.get(), "x");
        assert_eq!(
            remove_entry(&mut f, "t1", "x").unwrap_err().kind,
            ErrorKind::NotFound
        );
        assert_eq!(
            entry_mut(&mut f, "t1", "nope").unwrap_err().kind,
            ErrorKind::NotFound
        );
        assert_eq!(
            entry_mut(&mut f, "t9", "7").unwrap_err().kind,
            ErrorKind::NotFound
        );
    }

    #[test]
    fn enterprise_from_query_or_header() {
        let q = |s: &str| Query::parse(Some(s)).unwrap();
        let mut h = HeaderMap::new();
        assert_eq!(enterprise(&q("enterprise_id=t1"), &h).unwrap(), "t1");
        assert!(enterprise(&q(""), &h).is_err());
        h.insert("x-domain-id", HeaderValue::from_static("t2"));
        assert_eq!(enterprise(&q(""), &h).unwrap(), "t2");
        assert_eq!(enterprise(&q("enterprise_id=t2"), &h).unwrap(), "t2");
        assert!(enterprise(&q("enterprise_id=t1"), &h).is_err());
        assert!(enterprise(&q("enterprise_id=t%201"), &HeaderMap::new()).is_err());
    }
}
