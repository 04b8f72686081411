//! `/v2/vpceps` (seed: codearts-vpcep-management-api): a tenant's authorized VPC endpoints.
//!
//! - `GET` lists them (`enterprise_id` required, `vpcep_ids` filter, `offset` 0–9999, `limit`
//!   1–100 default 10, `sort` by `vpcep_id`, ascending by default) as `{status, data:{enterprise_id,
//!   vpceps:[VpceInfo]}, offset, limit, total}`, `total` counting the filtered list.
//! - `POST {enterprise_id, vpceps:[{vpcep_id, region, description}]}` adds them (`creator` is the
//!   admin token's name; `create_time`/`modify_time` now) → `{status:"ok", total}` (added).
//! - `DELETE {enterprise_id, vpceps:[{vpcep_id}]}` removes them → `{status:"ok", total}`
//!   (removed); 404 when none matched.
//! - `PUT /v2/vpceps/settings {enterprise_id, enabled}` turns VPC endpoint enforcement on or off
//!   (the seeds' `config`) → `{status:"ok"}`.
//!
//! Errors are flat `{"error_code","error_msg"}`: unknown tenant 404 `UC.00011005`, an endpoint
//! already listed (or listed twice in the request) 409 `UC.00011009`, quota 400 `UC.00011036`.

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};

use super::params::{OFFSET_MAX, Page, Query, Sort, check_id, json_body};
use super::{AdminState, caller, flat, ok_json, read_body, tenant, tenant_mut, text};
use crate::admin::error::ApiError;
use crate::policy::{Endpoint, IdKind, Located, PolicyFile};

/// The seed's "1 to 1,229 characters" for `vpcep_ids`.
const VPCEP_IDS_MAX: usize = 1229;

/// The request body of POST and DELETE (seed `VpcepRequestInfo` list).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VpcepsBody {
    enterprise_id: Option<String>,
    #[serde(default)]
    vpceps: Vec<VpcepRequestInfo>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VpcepRequestInfo {
    vpcep_id: Option<String>,
    region: Option<String>,
    description: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SettingsBody {
    enterprise_id: Option<String>,
    enabled: Option<bool>,
}

/// `GET /v2/vpceps`.
pub(super) async fn list(State(st): State<AdminState>, RawQuery(raw): RawQuery) -> Response {
    flat((|| {
        let q = Query::parse(raw.as_deref())?;
        let enterprise_id = q.required("enterprise_id")?;
        check_id(IdKind::EnterpriseId, enterprise_id)?;
        let ids = vpcep_ids(q.get("vpcep_ids"))?;
        let page = Page::from_query(&q, OFFSET_MAX, 10)?;
        let sort = Sort::from_query(&q)?;
        let cur = st.shared.current();
        let body = list_json(cur.policy.file(), enterprise_id, ids.as_deref(), page, sort)?;
        Ok(ok_json(body))
    })())
}

/// `POST /v2/vpceps`.
pub(super) async fn add(State(st): State<AdminState>, headers: HeaderMap, body: Body) -> Response {
    flat(
        async {
            let b: VpcepsBody = json_body(&read_body(body).await?)?;
            let region = headers.get("region").and_then(|v| v.to_str().ok());
            let creator = caller(&st, &headers);
            let (enterprise_id, new) =
                new_endpoints(b, region, creator, &crate::time::now_rfc3339())?;
            let total = st
                .writer
                .mutate(move |f| add_endpoints(f, &enterprise_id, new.clone()))
                .await??;
            Ok(ok_json(json!({"status": "ok", "total": total})))
        }
        .await,
    )
}

/// `DELETE /v2/vpceps`.
pub(super) async fn remove(State(st): State<AdminState>, body: Body) -> Response {
    flat(
        async {
            let b: VpcepsBody = json_body(&read_body(body).await?)?;
            let enterprise_id = body_tenant(b.enterprise_id)?;
            if b.vpceps.is_empty() {
                return Err(ApiError::bad_param(
                    "vpceps must list at least one vpcep_id",
                ));
            }
            let ids = b
                .vpceps
                .into_iter()
                .map(|v| {
                    let id = v.vpcep_id.ok_or_else(|| {
                        ApiError::bad_param("every entry of vpceps needs a vpcep_id")
                    })?;
                    check_id(IdKind::VpcepId, &id)?;
                    Ok(id)
                })
                .collect::<Result<Vec<_>, ApiError>>()?;
            let total = st
                .writer
                .mutate(move |f| remove_endpoints(f, &enterprise_id, &ids))
                .await??;
            Ok(ok_json(json!({"status": "ok", "total": total})))
        }
        .await,
    )
}

/// `PUT /v2/vpceps/settings`.
pub(super) async fn settings(State(st): State<AdminState>, body: Body) -> Response {
    flat(
        async {
            let b: SettingsBody = json_body(&read_body(body).await?)?;
            let enterprise_id = body_tenant(b.enterprise_id)?;
            let enabled = b
                .enabled
                .ok_or_else(|| ApiError::bad_param("enabled (true or false) is required"))?;
            st.writer
                .mutate(move |f| {
                    tenant_mut(f, &enterprise_id)?.vpcep.enabled = enabled;
                    Ok::<_, ApiError>(())
                })
                .await??;
            Ok(ok_json(json!({"status": "ok"})))
        }
        .await,
    )
}

/// A required, valid `enterprise_id` from a body.
fn body_tenant(enterprise_id: Option<String>) -> Result<String, ApiError> {
    let id = enterprise_id.ok_or_else(|| ApiError::bad_param("enterprise_id is required"))?;
    check_id(IdKind::EnterpriseId, &id)?;
    Ok(id)
}

/// The `vpcep_ids` filter: a comma list of endpoint ids.
fn vpcep_ids(raw: Option<&str>) -> Result<Option<Vec<String>>, ApiError> {
    let Some(raw) = raw else { return Ok(None) };
    if raw.is_empty() || raw.chars().count() > VPCEP_IDS_MAX {
        return Err(ApiError::bad_param(format!(
            "vpcep_ids must be 1 to {VPCEP_IDS_MAX} characters"
        )));
    }
    raw.split(',')
        .map(|id| check_id(IdKind::VpcepId, id).map(|()| id.to_owned()))
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// The seed's `VpceInfo` for `e` (absent text fields are `""`).
pub(super) fn vpce_info(e: &Endpoint) -> Value {
    json!({
        "vpcep_id": e.vpcep_id.get(),
        "description": text(e.description.as_deref().map(String::as_str)),
        "creator": text(e.creator.as_deref()),
        "create_time": text(e.create_time.as_deref()),
        "modify_time": text(e.modify_time.as_deref()),
        "region": text(e.region.as_deref().map(String::as_str)),
    })
}

/// The GET response for `enterprise_id`: filtered by `ids`, sorted by `vpcep_id`, paged.
pub(super) fn list_json(
    file: &PolicyFile,
    enterprise_id: &str,
    ids: Option<&[String]>,
    page: Page,
    sort: Sort,
) -> Result<Value, ApiError> {
    let t = tenant(file, enterprise_id)?;
    let mut all: Vec<&Endpoint> = t
        .vpcep
        .endpoints
        .iter()
        .filter(|e| ids.is_none_or(|ids| ids.iter().any(|i| i == e.vpcep_id.get())))
        .collect();
    all.sort_by(|a, b| a.vpcep_id.get().cmp(b.vpcep_id.get()));
    if sort == Sort::Desc {
        all.reverse();
    }
    let vpceps: Vec<Value> = page.slice(&all).iter().map(|e| vpce_info(e)).collect();
    Ok(json!({
        "status": "ok",
        "data": {"enterprise_id": enterprise_id, "vpceps": vpceps},
        "offset": page.offset,
        "limit": page.limit,
        "total": all.len(),
    }))
}

/// Validate a POST body into the tenant and the records to add.
fn new_endpoints(
    b: VpcepsBody,
    region_header: Option<&str>,
    creator: Option<String>,
    now: &str,
) -> Result<(String, Vec<Endpoint>), ApiError> {
    let enterprise_id = body_tenant(b.enterprise_id)?;
    if b.vpceps.is_empty() {
        return Err(ApiError::bad_param(
            "vpceps must list at least one endpoint",
        ));
    }
    let mut out: Vec<Endpoint> = Vec::with_capacity(b.vpceps.len());
    for v in b.vpceps {
        let id = v
            .vpcep_id
            .ok_or_else(|| ApiError::bad_param("every entry of vpceps needs a vpcep_id"))?;
        check_id(IdKind::VpcepId, &id)?;
        if out.iter().any(|e| *e.vpcep_id.get() == id) {
            return Err(ApiError::conflict(format!(
                "vpcep_id {id:?} is listed twice in the request"
            )));
        }
        let region = v.region.or_else(|| region_header.map(str::to_owned));
        if let Some(r) = &region {
            check_id(IdKind::Region, r)?;
        }
        if let Some(d) = &v.description {
            check_id(IdKind::Description, d)?;
        }
        out.push(Endpoint {
            vpcep_id: Located::new(id),
            region: region.map(Located::new),
            description: v.description.map(Located::new),
            creator: creator.clone(),
            create_time: Some(now.to_owned()),
            modify_time: Some(now.to_owned()),
        });
    }
    Ok((enterprise_id, out))
}

/// Append `new` to the tenant's endpoints; 409 if one is already there. Returns how many.
pub(super) fn add_endpoints(
    file: &mut PolicyFile,
    enterprise_id: &str,
    new: Vec<Endpoint>,
) -> Result<usize, ApiError> {
    let t = tenant_mut(file, enterprise_id)?;
    if let Some(dup) = new.iter().find(|n| {
        t.vpcep
            .endpoints
            .iter()
            .any(|e| e.vpcep_id.get() == n.vpcep_id.get())
    }) {
        return Err(ApiError::conflict(format!(
            "vpcep_id {:?} is already authorized for this tenant",
            dup.vpcep_id.get()
        )));
    }
    let n = new.len();
    t.vpcep.endpoints.extend(new);
    Ok(n)
}

/// Remove the tenant's endpoints named in `ids`; 404 if none of them was there. Returns how many.
pub(super) fn remove_endpoints(
    file: &mut PolicyFile,
    enterprise_id: &str,
    ids: &[String],
) -> Result<usize, ApiError> {
    let t = tenant_mut(file, enterprise_id)?;
    let before = t.vpcep.endpoints.len();
    t.vpcep
        .endpoints
        .retain(|e| !ids.iter().any(|i| i == e.vpcep_id.get()));
    match before - t.vpcep.endpoints.len() {
        0 => Err(ApiError::not_found(
            "none of the vpcep_ids is authorized for this tenant",
        )),
        n => Ok(n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::error::ErrorKind;
    use crate::policy::parse_policy;

    const POLICY: &str = "tenants:\n  - enterprise_id: t1\n    vpcep:\n      endpoints:\n        - { vpcep_id: b, region: r1, description: two }\n        - { vpcep_id: a }\n        - { vpcep_id: c }\n";

    fn file() -> PolicyFile {
        parse_policy(POLICY).unwrap()
    }

    fn ids(v: &Value) -> Vec<&str> {
        v["data"]["vpceps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["vpcep_id"].as_str().unwrap())
            .collect()
    }

    #[test]
    fn list_sorts_filters_and_pages() {
        let f = file();
        let p = |offset, limit| Page { offset, limit };
        let v = list_json(&f, "t1", None, p(0, 10), Sort::Asc).unwrap();
        assert_eq!(ids(&v), ["a", "b", "c"]);
        assert_eq!(
            (v["total"].as_u64(), v["limit"].as_u64()),
            (Some(3), Some(10))
        );
        let v = list_json(&f, "t1", None, p(1, 1), Sort::Desc).unwrap();
        assert_eq!(ids(&v), ["b"]);
        assert_eq!(v["total"], 3);
        let filter = vec!["c".to_owned(), "a".to_owned(), "zz".to_owned()];
        let v = list_json(&f, "t1", Some(&filter), p(0, 10), Sort::Asc).unwrap();
        assert_eq!((ids(&v), v["total"].as_u64()), (vec!["a", "c"], Some(2)));
        let err = list_json(&f, "nope", None, p(0, 10), Sort::Asc).unwrap_err();
        assert_eq!(err.kind, ErrorKind::NotFound);
    }

    #[test]
    fn vpce_info_has_the_seed_fields() {
        let f = file();
        let v = vpce_info(&f.tenants[0].vpcep.endpoints[0]);
        assert_eq!(
            v,
            json!({"vpcep_id": "b", "description": "two", "creator": "", "create_time": "",
                   "modify_time": "", "region": "r1"})
        );
    }

    #[test]
    fn vpcep_ids_filter_is_validated() {
        assert_eq!(vpcep_ids(None).unwrap(), None);
        assert_eq!(
            vpcep_ids(Some("a,b-1")).unwrap(),
            Some(vec!["a".to_owned(), "b-1".to_owned()])
        );
        for bad in ["", "a,,b", "A", &"a".repeat(1230)] {
            assert!(vpcep_ids(Some(bad)).is_err(), "case {bad:?}");
        }
    }

    fn body(json: Value) -> VpcepsBody {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn new_endpoints_validates_each_field() {
        let ok = body(
            json!({"enterprise_id": "t1", "vpceps": [{"vpcep_id": "x", "description": "d (1)"}]}),
        );
        let (t, new) = new_endpoints(ok, Some("r9"), Some("ops".into()), "NOW").unwrap();
        assert_eq!(t, "t1");
        assert_eq!(new[0].region.as_deref().map(String::as_str), Some("r9"));
        assert_eq!(new[0].creator.as_deref(), Some("ops"));
        assert_eq!(new[0].create_time.as_deref(), Some("NOW"));
        // (body, expected kind)
        let cases = [
            (json!({"vpceps": [{"vpcep_id": "x"}]}), ErrorKind::BadParam),
            (
                json!({"enterprise_id": "t 1", "vpceps": [{"vpcep_id": "x"}]}),
                ErrorKind::BadParam,
            ),
            (
                json!({"enterprise_id": "t1", "vpceps": []}),
                ErrorKind::BadParam,
            ),
            (
                json!({"enterprise_id": "t1", "vpceps": [{}]}),
                ErrorKind::BadParam,
            ),
            (
                json!({"enterprise_id": "t1", "vpceps": [{"vpcep_id": "X"}]}),
                ErrorKind::BadParam,
            ),
            (
                json!({"enterprise_id": "t1", "vpceps": [{"vpcep_id": "x", "region": "R"}]}),
                ErrorKind::BadParam,
            ),
            (
                json!({"enterprise_id": "t1", "vpceps": [{"vpcep_id": "x", "description": "a/b"}]}),
                ErrorKind::BadParam,
            ),
            (
                json!({"enterprise_id": "t1", "vpceps": [{"vpcep_id": "x"}, {"vpcep_id": "x"}]}),
                ErrorKind::Conflict,
            ),
        ];
        for (b, want) in cases {
            let got = new_endpoints(body(b.clone()), None, None, "NOW").unwrap_err();
            assert_eq!(got.kind, want, "case {b}");
        }
    }

    #[test]
    fn add_and_remove_endpoints() {
        let mut f = file();
        let e = |id: &str| Endpoint {
            vpcep_id: Located::new(id.to_owned()),
            region: None,
            description: None,
            creator: None,
            create_time: None,
            modify_time: None,
        };
        assert_eq!(
            add_endpoints(&mut f, "t1", vec![e("d"), e("e")]).unwrap(),
            2
        );
        assert_eq!(f.tenants[0].vpcep.endpoints.len(), 5);
        let err = add_endpoints(&mut f, "t1", vec![e("a")]).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Conflict);
        let err = add_endpoints(&mut f, "nope", vec![e("z")]).unwrap_err();
        assert_eq!(err.kind, ErrorKind::NotFound);

        let gone = ["a".to_owned(), "zz".to_owned(), "d".to_owned()];
        assert_eq!(remove_endpoints(&mut f, "t1", &gone).unwrap(), 2);
        assert_eq!(f.tenants[0].vpcep.endpoints.len(), 3);
        let err = remove_endpoints(&mut f, "t1", &gone).unwrap_err();
        assert_eq!(err.kind, ErrorKind::NotFound);
    }
}
