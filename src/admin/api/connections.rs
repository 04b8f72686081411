//! `/v1/{project_id}/vpc-endpoint-services/{service_id}/connections` (seed:
//! vpcep-accept-reject-connection): the VPC endpoint connections of one endpoint service of the
//! policy. Errors are nested `{"error":{"code","message"}}`, as in that seed.
//!
//! - `GET …/connections` (`status`, `marker_id` filters; `offset` 0–9999, `limit` 1–100 default
//!   10) → `{connections:[ConnectionEndpoints], total_count}` in file order; `total_count` counts
//!   the filtered list. A marker seen without a connection is listed, as `marker-<marker_id>` with
//!   status `pendingAcceptance` and the request's tenant as `domain_id`, as soon as its 403 is sent
//!   (docs/contract.md §7 read-your-writes): the file's connections are merged with the markers
//!   still on their way to the file (`Shared::pending`), after them, without duplicates.
//!
//!   Why merge rather than record synchronously: a synchronous record would make every such 403
//!   wait for the writer (a re-read, compile and fsync'd write of the whole policy, behind any
//!   admin write), so a client cycling marker ids could stall the data plane on the disk. The
//!   in-memory set is bounded by `limits.max_pending_connections` and holds the same record the
//!   writer persists (`reload::pending_connection`).
//! - `POST …/connections/action {action: "receive"|"reject", endpoints: [id]}` (exactly one id, as
//!   the seed says) sets the status to `accepted` / `rejected` and `updated_at` to now →
//!   `{connections:[…]}`. An unknown service or connection is 404 `UC.00011005`. A marker listed
//!   from memory can be acted on too: its record is written with the new status.
//!
//! `project_id` (the service owner's IAM project in the seed) is checked for shape only
//! (1–64 of `[A-Za-z0-9_-]`): the policy has one set of services.

use std::collections::HashSet;

use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};

use super::params::{OFFSET_MAX, Page, Query, check_id, json_body};
use super::{AdminState, nested, ok_json, read_body, text};
use crate::admin::error::ApiError;
use crate::policy::{Connection, ConnectionStatus, EndpointService, IdKind, PolicyFile};
use crate::reload::pending_connection;
use crate::state::PendingSeen;

/// The action body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ActionBody {
    action: Option<String>,
    endpoints: Option<Vec<String>>,
}

/// What `action` does to a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Action {
    /// `receive` → `accepted`.
    Receive,
    /// `reject` → `rejected`.
    Reject,
}

impl Action {
    fn parse(s: Option<&str>) -> Result<Action, ApiError> {
        match s {
            Some("receive") => Ok(Action::Receive),
            Some("reject") => Ok(Action::Reject),
            other => Err(ApiError::bad_param(format!(
                "action must be receive or reject, not {other:?}"
            ))),
        }
    }

    fn status(self) -> ConnectionStatus {
        match self {
            Action::Receive => ConnectionStatus::Accepted,
            Action::Reject => ConnectionStatus::Rejected,
        }
    }
}

/// The list filters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Filter {
    status: Option<ConnectionStatus>,
    marker_id: Option<u64>,
}

impl Filter {
    fn from_query(q: &Query) -> Result<Filter, ApiError> {
        let status = match q.get("status") {
            None => None,
            Some(s) => Some(ConnectionStatus::parse(s).ok_or_else(|| {
                ApiError::bad_param(format!(
                    "status must be one of pendingAcceptance, creating, accepted, rejected, \
                     failed, deleting, not {s:?}"
                ))
            })?),
        };
        let marker_id = match q.get("marker_id") {
            None => None,
            Some(m) => Some(m.parse::<u64>().map_err(|_| {
                ApiError::bad_param(format!(
                    "marker_id must be an unsigned 64-bit integer, not {m:?}"
                ))
            })?),
        };
        Ok(Filter { status, marker_id })
    }

    fn matches(&self, c: &Connection) -> bool {
        self.status.is_none_or(|s| *c.status.get() == s.as_str())
            && self.marker_id.is_none_or(|m| *c.marker_id.get() == m)
    }
}

/// `GET …/connections`.
pub(super) async fn list(
    State(st): State<AdminState>,
    path: Result<Path<(String, String)>, PathRejection>,
    RawQuery(raw): RawQuery,
) -> Response {
    nested((|| {
        let service_id = path_ids(path)?;
        let q = Query::parse(raw.as_deref())?;
        let filter = Filter::from_query(&q)?;
        let page = Page::from_query(&q, OFFSET_MAX, 10)?;
        // Pending first, then the generation: a marker written and forgotten in between is
        // already in the generation read second, so it cannot fall between the two.
        let pending = st.shared.pending();
        let cur = st.shared.current();
        Ok(ok_json(list_json(
            cur.policy.file(),
            &pending,
            &service_id,
            filter,
            page,
        )?))
    })())
}

/// `POST …/connections/action`.
pub(super) async fn action(
    State(st): State<AdminState>,
    path: Result<Path<(String, String)>, PathRejection>,
    body: Body,
) -> Response {
    nested(
        async {
            let service_id = path_ids(path)?;
            let b: ActionBody = json_body(&read_body(body).await?)?;
            let action = Action::parse(b.action.as_deref())?;
            let id = match b.endpoints.as_deref() {
                Some([id]) => id.clone(),
                _ => {
                    return Err(ApiError::bad_param(
                        "endpoints must list exactly one VPC endpoint id",
                    ));
                }
            };
            check_id(IdKind::ConnectionId, &id)?;
            let now = crate::time::now_rfc3339();
            let pending = st.shared.pending();
            let changed = st
                .writer
                .mutate(move |f| act(f, &pending, &service_id, &id, action, &now))
                .await??;
            Ok(ok_json(json!({"connections": [connection_json(&changed)]})))
        }
        .await,
    )
}

/// Check the path's ids; returns the service id.
fn path_ids(path: Result<Path<(String, String)>, PathRejection>) -> Result<String, ApiError> {
    let Path((project_id, service_id)) =
        path.map_err(|e| ApiError::bad_param(format!("bad path: {e}")))?;
    let project_ok = (1..=64).contains(&project_id.len())
        && project_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !project_ok {
        return Err(ApiError::bad_param(format!(
            "project_id {project_id:?} is invalid: must be 1 to 64 characters of A-Z, a-z, 0-9, _ and -"
        )));
    }
    check_id(IdKind::ServiceId, &service_id)?;
    Ok(service_id)
}

/// The seed's `ConnectionEndpoints` for `c` (absent text fields are `""`).
pub(super) fn connection_json(c: &Connection) -> Value {
    json!({
        "id": c.id.get(),
        "marker_id": c.marker_id.get(),
        "domain_id": text(c.domain_id.as_deref().map(String::as_str)),
        "status": c.status.get(),
        "created_at": text(c.created_at.as_deref()),
        "updated_at": text(c.updated_at.as_deref()),
        "description": text(c.description.as_deref()),
    })
}

fn service<'f>(file: &'f PolicyFile, id: &str) -> Result<&'f EndpointService, ApiError> {
    file.endpoint_services
        .iter()
        .find(|s| *s.id.get() == id)
        .ok_or_else(|| ApiError::not_found(format!("no VPC endpoint service {id:?}")))
}

/// The records of `pending` markers of service `svc` that its file does not hold yet.
fn in_memory(svc: &EndpointService, pending: &[PendingSeen]) -> Vec<Connection> {
    if pending.is_empty() {
        return Vec::new();
    }
    let in_file: HashSet<u64> = svc.connections.iter().map(|c| *c.marker_id.get()).collect();
    pending
        .iter()
        .filter(|p| p.service_id == *svc.id.get() && !in_file.contains(&p.marker_id))
        .map(pending_connection)
        .collect()
}

/// The GET response: the file's connections of `service_id`, then the `pending` markers not in
/// the file yet.
pub(super) fn list_json(
    file: &PolicyFile,
    pending: &[PendingSeen],
    service_id: &str,
    filter: Filter,
    page: Page,
) -> Result<Value, ApiError> {
    let svc = service(file, service_id)?;
    let unwritten = in_memory(svc, pending);
    let all: Vec<&Connection> = svc
        .connections
        .iter()
        .chain(&unwritten)
        .filter(|c| filter.matches(c))
        .collect();
    let connections: Vec<Value> = page
        .slice(&all)
        .iter()
        .map(|c| connection_json(c))
        .collect();
    Ok(json!({"connections": connections, "total_count": all.len()}))
}

/// Apply `action` to connection `id` of service `service_id`. A marker listed from `pending` but
/// not in the file yet is added with its record first. Returns the changed connection.
pub(super) fn act(
    file: &mut PolicyFile,
    pending: &[PendingSeen],
    service_id: &str,
    id: &str,
    action: Action,
    now: &str,
) -> Result<Connection, ApiError> {
    let svc = file
        .endpoint_services
        .iter_mut()
        .find(|s| *s.id.get() == service_id)
        .ok_or_else(|| ApiError::not_found(format!("no VPC endpoint service {service_id:?}")))?;
    if !svc.connections.iter().any(|c| *c.id.get() == id)
        && let Some(record) = in_memory(svc, pending)
            .into_iter()
            .find(|c| *c.id.get() == id)
    {
        svc.connections.push(record);
    }
    let c = svc
        .connections
        .iter_mut()
        .find(|c| *c.id.get() == id)
        .ok_or_else(|| {
            ApiError::not_found(format!("no connection {id:?} on service {service_id:?}"))
        })?;
    c.status.set(action.status().as_str().to_owned());
    c.updated_at = Some(now.to_owned());
    Ok(c.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::error::ErrorKind;
    use crate::policy::parse_policy;

    const POLICY: &str = "tenants: []\nendpoint_services:\n  - id: svc-1\n    approval_required: true\n    connections:\n      - { id: c1, marker_id: 1, domain_id: d1, status: accepted, created_at: T0, updated_at: T0 }\n      - { id: c2, marker_id: 2, status: rejected }\n      - { id: marker-3, marker_id: 3, status: pendingAcceptance }\n";

    fn file() -> PolicyFile {
        parse_policy(POLICY).unwrap()
    }

    fn ids(v: &Value) -> Vec<&str> {
        v["connections"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap())
            .collect()
    }

    #[test]
    fn list_filters_and_pages() {
        let f = file();
        let all = Page {
            offset: 0,
            limit: 10,
        };
        let q = |s: &str| Filter::from_query(&Query::parse(Some(s)).unwrap());
        // (query, ids, total_count)
        let cases: &[(&str, &[&str], u64)] = &[
            ("", &["c1", "c2", "marker-3"], 3),
            ("status=pendingAcceptance", &["marker-3"], 1),
            ("status=accepted&marker_id=1", &["c1"], 1),
            ("marker_id=2", &["c2"], 1),
            ("status=deleting", &[], 0),
        ];
        for (query, want, total) in cases {
            let v = list_json(&f, &[], "svc-1", q(query).unwrap(), all).unwrap();
            assert_eq!(ids(&v), *want, "case {query}");
            assert_eq!(v["total_count"], *total, "case {query}");
        }
        let v = list_json(
            &f,
            &[],
            "svc-1",
            Filter::default(),
            Page {
                offset: 1,
                limit: 1,
            },
        )
        .unwrap();
        assert_eq!((ids(&v), &v["total_count"]), (vec!["c2"], &json!(3)));
        for bad in ["status=Accepted", "marker_id=-1", "marker_id=x"] {
            assert_eq!(q(bad).unwrap_err().kind, ErrorKind::BadParam, "case {bad}");
        }
        let err = list_json(&f, &[], "svc-2", Filter::default(), all).unwrap_err();
        assert_eq!(err.kind, ErrorKind::NotFound);
    }

    fn seen(service_id: &str, marker_id: u64) -> PendingSeen {
        PendingSeen {
            service_id: service_id.to_owned(),
            marker_id,
            tenant: Some("d9".to_owned()),
            first_seen: "T1".to_owned(),
        }
    }

    #[test]
    fn list_in_memory_pending_markers_follow_the_file_once_each() {
        let f = file();
        let all = Page {
            offset: 0,
            limit: 10,
        };
        // 3 is in the file already (written, not yet forgotten); 9 is on another service.
        let pending = [seen("svc-1", 7), seen("svc-1", 3), seen("svc-9", 9)];
        let v = list_json(&f, &pending, "svc-1", Filter::default(), all).unwrap();
        assert_eq!(ids(&v), ["c1", "c2", "marker-3", "marker-7"]);
        assert_eq!(v["total_count"], 4);
        assert_eq!(
            v["connections"][3],
            json!({"id": "marker-7", "marker_id": 7, "domain_id": "d9", "status": "pendingAcceptance",
                   "created_at": "T1", "updated_at": "T1", "description": ""})
        );
        let q = Filter::from_query(&Query::parse(Some("status=pendingAcceptance")).unwrap());
        let v = list_json(&f, &pending, "svc-1", q.unwrap(), all).unwrap();
        assert_eq!(ids(&v), ["marker-3", "marker-7"]);
    }

    #[test]
    fn act_on_a_marker_listed_from_memory_writes_its_record() {
        let mut f = file();
        let pending = [seen("svc-1", 7)];
        let c = act(
            &mut f,
            &pending,
            "svc-1",
            "marker-7",
            Action::Receive,
            "NOW",
        )
        .unwrap();
        assert_eq!(
            (
                c.status.get().as_str(),
                c.domain_id.as_deref().map(String::as_str)
            ),
            ("accepted", Some("d9"))
        );
        assert_eq!(f.endpoint_services[0].connections.len(), 4);
        // Not pending on that service: still 404.
        let err = act(&mut f, &pending, "svc-1", "marker-8", Action::Receive, "X").unwrap_err();
        assert_eq!(err.kind, ErrorKind::NotFound);
    }

    #[test]
    fn connection_json_has_the_seed_fields() {
        let f = file();
        assert_eq!(
            connection_json(&f.endpoint_services[0].connections[0]),
            json!({"id": "c1", "marker_id": 1, "domain_id": "d1", "status": "accepted",
                   "created_at": "T0", "updated_at": "T0", "description": ""})
        );
    }

    #[test]
    fn act_sets_status_and_updated_at() {
        let mut f = file();
        let c = act(&mut f, &[], "svc-1", "marker-3", Action::Receive, "NOW").unwrap();
        assert_eq!(
            (c.status.get().as_str(), c.updated_at.as_deref()),
            ("accepted", Some("NOW"))
        );
        assert_eq!(f.endpoint_services[0].connections[2], c);
        let c = act(&mut f, &[], "svc-1", "c1", Action::Reject, "LATER").unwrap();
        assert_eq!(c.status.get(), "rejected");
        assert_eq!(
            act(&mut f, &[], "svc-1", "c9", Action::Reject, "X")
                .unwrap_err()
                .kind,
            ErrorKind::NotFound
        );
        assert_eq!(
            act(&mut f, &[], "svc-9", "c1", Action::Reject, "X")
                .unwrap_err()
                .kind,
            ErrorKind::NotFound
        );
    }

    #[test]
    fn action_parse() {
        assert_eq!(Action::parse(Some("receive")).unwrap(), Action::Receive);
        assert_eq!(Action::parse(Some("reject")).unwrap(), Action::Reject);
        for bad in [None, Some("accept"), Some("RECEIVE"), Some("")] {
            assert!(Action::parse(bad).is_err(), "case {bad:?}");
        }
    }
}
