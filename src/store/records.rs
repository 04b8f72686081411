//! The etcd key layout (docs/contract.md §11): one key per record under the prefix, the value the
//! record's JSON in the seed documents' field names, and the two directions between a whole
//! [`PolicyFile`] and its records.
//!
//! Owns: key names, record shapes, [`encode`], [`decode`], [`diff`]. Does not own semantic
//! validation (`Snapshot::compile` does that, exactly as for a file) nor talking to etcd.
//! Pure: no I/O. Built in every configuration so that its tests run without etcd.
//!
//! Keys are relative to the prefix here:
//!
//! | key | value |
//! |---|---|
//! | `tenants/{enterprise_id}` | `{"enterprise_id", "vpcep": {"enabled"}}` |
//! | `tenants/{enterprise_id}/vpceps/{vpcep_id}` | an endpoint record |
//! | `tenants/{enterprise_id}/trusted_ips/{id}` | a trusted IP record |
//! | `projects/{project_id}` | `{"project_id", "enterprise_id", "project_level", "vpcep": {"enabled"}}` |
//! | `projects/{project_id}/vpceps/{vpcep_id}` | an endpoint record (not in SPEC §11, which has no home for a project's endpoints) |
//! | `projects/{project_id}/trusted_ips/{id}` | a trusted IP record |
//! | `services/{service_id}` | `{"id", "approval_required"}` |
//! | `services/{service_id}/connections/{id}` | a connection record |

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::policy::{
    Connection, Endpoint, EndpointService, Located, PolicyFile, Project, Tenant, TrustedIp,
    VpcepSettings,
};

/// Why the keys under the prefix are not a policy. `key` is relative to the prefix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("key {key:?}: {message}")]
pub struct RecordError {
    pub key: String,
    pub message: String,
}

fn err<T>(key: &str, message: impl Into<String>) -> Result<T, RecordError> {
    Err(RecordError {
        key: key.to_owned(),
        message: message.into(),
    })
}

/// `{"enabled"}`: the part of a rules set's VPC endpoint settings that is not a list.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Enabled {
    #[serde(default)]
    enabled: bool,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TenantRec {
    enterprise_id: String,
    #[serde(default)]
    vpcep: Enabled,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProjectRec {
    project_id: String,
    enterprise_id: String,
    #[serde(default)]
    project_level: bool,
    #[serde(default)]
    vpcep: Enabled,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServiceRec {
    id: String,
    #[serde(default)]
    approval_required: bool,
}

/// Record key → canonical JSON value.
pub type Records = BTreeMap<String, Vec<u8>>;

fn put<T: Serialize>(out: &mut Records, key: String, rec: &T) -> Result<(), RecordError> {
    let value = serde_json::to_vec(rec).map_err(|e| RecordError {
        key: key.clone(),
        message: e.to_string(),
    })?;
    if out.insert(key.clone(), value).is_some() {
        return err(&key, "two records have this key (a duplicate id)");
    }
    Ok(())
}

/// The records of a policy (validated or not: a duplicate key is an error here too).
pub fn encode(file: &PolicyFile) -> Result<Records, RecordError> {
    let mut out = Records::new();
    for t in &file.tenants {
        let base = format!("tenants/{}", t.enterprise_id.get());
        let rec = TenantRec {
            enterprise_id: t.enterprise_id.get().clone(),
            vpcep: Enabled {
                enabled: t.vpcep.enabled,
            },
        };
        put(&mut out, base.clone(), &rec)?;
        rules(&mut out, &base, &t.vpcep.endpoints, &t.trusted_ips)?;
    }
    for p in &file.projects {
        let base = format!("projects/{}", p.project_id.get());
        let rec = ProjectRec {
            project_id: p.project_id.get().clone(),
            enterprise_id: p.enterprise_id.get().clone(),
            project_level: p.project_level,
            vpcep: Enabled {
                enabled: p.vpcep.enabled,
            },
        };
        put(&mut out, base.clone(), &rec)?;
        rules(&mut out, &base, &p.vpcep.endpoints, &p.trusted_ips)?;
    }
    for s in &file.endpoint_services {
        let base = format!("services/{}", s.id.get());
        let rec = ServiceRec {
            id: s.id.get().clone(),
            approval_required: s.approval_required,
        };
        put(&mut out, base.clone(), &rec)?;
        for c in &s.connections {
            put(&mut out, format!("{base}/connections/{}", c.id.get()), c)?;
        }
    }
    Ok(out)
}

fn rules(
    out: &mut Records,
    base: &str,
    endpoints: &[Endpoint],
    ips: &[TrustedIp],
) -> Result<(), RecordError> {
    for e in endpoints {
        put(out, format!("{base}/vpceps/{}", e.vpcep_id.get()), e)?;
    }
    for ip in ips {
        put(out, format!("{base}/trusted_ips/{}", ip.id.get()), ip)?;
    }
    Ok(())
}

fn parse<'a, T: Deserialize<'a>>(key: &str, value: &'a [u8]) -> Result<T, RecordError> {
    serde_json::from_slice(value).map_err(|e| RecordError {
        key: key.to_owned(),
        message: format!("not a valid record: {e}"),
    })
}

fn same(key: &str, field: &str, in_key: &str, in_value: &str) -> Result<(), RecordError> {
    if in_key == in_value {
        Ok(())
    } else {
        err(
            key,
            format!("the record's {field} {in_value:?} is not the one its key names"),
        )
    }
}

/// The rules of a tenant or project being assembled.
#[derive(Default)]
struct Rules {
    endpoints: Vec<Endpoint>,
    ips: Vec<TrustedIp>,
}

#[derive(Default)]
struct Assembly {
    tenants: BTreeMap<String, (Option<TenantRec>, Rules)>,
    projects: BTreeMap<String, (Option<ProjectRec>, Rules)>,
    services: BTreeMap<String, (Option<ServiceRec>, Vec<Connection>)>,
}

/// The policy the records spell, in key order. Fails on a key outside the layout, a value that
/// is not its record, a record whose id is not the one in its key, or a child whose parent record
/// is missing (an orphan).
pub fn decode<'a>(
    records: impl IntoIterator<Item = (&'a str, &'a [u8])>,
) -> Result<PolicyFile, RecordError> {
    let mut a = Assembly::default();
    for (key, value) in records {
        add(&mut a, key, value)?;
    }
    let mut file = PolicyFile {
        tenants: Vec::with_capacity(a.tenants.len()),
        projects: Vec::with_capacity(a.projects.len()),
        endpoint_services: Vec::with_capacity(a.services.len()),
    };
    for (id, (rec, rules)) in a.tenants {
        let Some(rec) = rec else {
            return err(
                &format!("tenants/{id}"),
                "missing: its records have no tenant",
            );
        };
        file.tenants.push(Tenant {
            enterprise_id: Located::new(rec.enterprise_id),
            vpcep: VpcepSettings {
                enabled: rec.vpcep.enabled,
                endpoints: rules.endpoints,
            },
            trusted_ips: rules.ips,
        });
    }
    for (id, (rec, rules)) in a.projects {
        let Some(rec) = rec else {
            return err(
                &format!("projects/{id}"),
                "missing: its records have no project",
            );
        };
        file.projects.push(Project {
            project_id: Located::new(rec.project_id),
            enterprise_id: Located::new(rec.enterprise_id),
            project_level: rec.project_level,
            vpcep: VpcepSettings {
                enabled: rec.vpcep.enabled,
                endpoints: rules.endpoints,
            },
            trusted_ips: rules.ips,
        });
    }
    for (id, (rec, connections)) in a.services {
        let Some(rec) = rec else {
            return err(
                &format!("services/{id}"),
                "missing: its connections have no service",
            );
        };
        file.endpoint_services.push(EndpointService {
            id: Located::new(rec.id),
            approval_required: rec.approval_required,
            connections,
        });
    }
    Ok(file)
}

fn add(a: &mut Assembly, key: &str, value: &[u8]) -> Result<(), RecordError> {
    let parts: Vec<&str> = key.split('/').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return err(key, "not a key of the layout (an empty segment)");
    }
    match parts.as_slice() {
        ["tenants", id] => {
            let rec: TenantRec = parse(key, value)?;
            same(key, "enterprise_id", id, &rec.enterprise_id)?;
            a.tenants.entry((*id).to_owned()).or_default().0 = Some(rec);
        }
        ["tenants", id, kind, child] => {
            let rules = &mut a.tenants.entry((*id).to_owned()).or_default().1;
            add_rule(rules, key, kind, child, value)?;
        }
        ["projects", id] => {
            let rec: ProjectRec = parse(key, value)?;
            same(key, "project_id", id, &rec.project_id)?;
            a.projects.entry((*id).to_owned()).or_default().0 = Some(rec);
        }
        ["projects", id, kind, child] => {
            let rules = &mut a.projects.entry((*id).to_owned()).or_default().1;
            add_rule(rules, key, kind, child, value)?;
        }
        ["services", id] => {
            let rec: ServiceRec = parse(key, value)?;
            same(key, "id", id, &rec.id)?;
            a.services.entry((*id).to_owned()).or_default().0 = Some(rec);
        }
        ["services", id, "connections", child] => {
            let c: Connection = parse(key, value)?;
            same(key, "id", child, c.id.get())?;
            a.services.entry((*id).to_owned()).or_default().1.push(c);
        }
        _ => return err(key, "not a key of the layout (docs/contract.md §11)"),
    }
    Ok(())
}

fn add_rule(
    rules: &mut Rules,
    key: &str,
    kind: &str,
    child: &str,
    value: &[u8],
) -> Result<(), RecordError> {
    match kind {
        "vpceps" => {
            let e: Endpoint = parse(key, value)?;
            same(key, "vpcep_id", child, e.vpcep_id.get())?;
            rules.endpoints.push(e);
        }
        "trusted_ips" => {
            let ip: TrustedIp = parse(key, value)?;
            same(key, "id", child, ip.id.get())?;
            rules.ips.push(ip);
        }
        _ => return err(key, "not a key of the layout (docs/contract.md §11)"),
    }
    Ok(())
}

/// One change to the records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Create or replace the record.
    Put { key: String, value: Vec<u8> },
    /// Remove the record.
    Delete { key: String },
}

impl Change {
    /// The record's key (relative to the prefix).
    pub fn key(&self) -> &str {
        match self {
            Change::Put { key, .. } | Change::Delete { key } => key,
        }
    }
}

/// The changes that turn `old` into `new`: parents are put before their children and deleted
/// after them, so that applying them in order in several batches passes through as few orphan
/// states as it can.
pub fn diff(old: &Records, new: &Records) -> Vec<Change> {
    let mut puts: Vec<Change> = new
        .iter()
        .filter(|(k, v)| old.get(*k) != Some(*v))
        .map(|(k, v)| Change::Put {
            key: k.clone(),
            value: v.clone(),
        })
        .collect();
    let mut deletes: Vec<Change> = old
        .keys()
        .filter(|k| !new.contains_key(*k))
        .map(|k| Change::Delete { key: k.clone() })
        .collect();
    let depth = |c: &Change| c.key().matches('/').count();
    puts.sort_by_key(depth);
    deletes.sort_by_key(|c| std::cmp::Reverse(depth(c)));
    deletes.extend(puts);
    // Deletes first: a record that moves (a connection to another service) frees its id before
    // it is taken again.
    deletes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::parse_policy;

    const POLICY: &str = "\
tenants:
  - enterprise_id: t1
    vpcep:
      enabled: true
      endpoints:
        - { vpcep_id: vpce-a, region: ap-1, description: one }
    trusted_ips:
      - { id: \"1\", ip_range: \"10.0.0.0/8\", view_flag: 1, download_flag: 0, upload_flag: 0 }
projects:
  - project_id: 0f6c3a1e9b2d4c7f8a5e1d3b6c9f2a4e
    enterprise_id: t1
    project_level: true
    vpcep: { enabled: false }
    trusted_ips:
      - { id: p1, ip_range: \"192.168.10.0/24\", view_flag: 1, download_flag: 1, upload_flag: 1 }
endpoint_services:
  - id: svc-1
    approval_required: true
    connections:
      - { id: vpce-c, marker_id: 42, domain_id: t1, status: accepted }
";

    #[test]
    fn encode_then_decode_is_the_same_policy() {
        let file = parse_policy(POLICY).unwrap();
        let records = encode(&file).unwrap();
        assert_eq!(records.len(), 7);
        assert!(records.contains_key("tenants/t1/vpceps/vpce-a"));
        assert!(records.contains_key("services/svc-1/connections/vpce-c"));
        let back = decode(records.iter().map(|(k, v)| (k.as_str(), v.as_slice()))).unwrap();
        assert_eq!(back, file);
    }

    #[test]
    fn decode_bad_records_name_the_key() {
        const CASES: &[(&str, &str, &str)] = &[
            ("unknown key", "other/x", "{}"),
            ("empty segment", "tenants//vpceps/x", "{}"),
            ("bad json", "tenants/t1", "{"),
            (
                "unknown field",
                "tenants/t1",
                r#"{"enterprise_id":"t1","x":1}"#,
            ),
            ("id mismatch", "tenants/t1", r#"{"enterprise_id":"t2"}"#),
            ("orphan", "tenants/t9/vpceps/v", r#"{"vpcep_id":"v"}"#),
        ];
        for (name, key, value) in CASES {
            let got = decode([(*key, value.as_bytes())]).unwrap_err();
            let want = if *name == "orphan" { "tenants/t9" } else { key };
            assert_eq!(got.key, *want, "case {name}");
        }
    }

    #[test]
    fn diff_orders_deletes_children_first_and_puts_parents_first() {
        let a = encode(&parse_policy(POLICY).unwrap()).unwrap();
        let b = encode(&parse_policy("tenants:\n  - enterprise_id: t2\n").unwrap()).unwrap();
        let changes = diff(&a, &b);
        let keys: Vec<&str> = changes.iter().map(Change::key).collect();
        let pos = |k: &str| keys.iter().position(|x| *x == k).unwrap();
        assert!(pos("tenants/t1/vpceps/vpce-a") < pos("tenants/t1"));
        assert_eq!(keys.last(), Some(&"tenants/t2"));
        assert!(diff(&a, &a).is_empty());
    }
}
