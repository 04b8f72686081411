//! The semantic checks of docs/contract.md §3, run by [`Snapshot::compile`](super::Snapshot::compile) on
//! records from text or from the admin API alike: id character sets and lengths (`validate.rs`),
//! `ip_range` grammar, flags 0/1, duplicate ids, projects of unknown tenants,
//! `limits.max_vpceps_per_tenant`, connection statuses; and the compilation of each rules set.
//!
//! Owns: the checks and their order. Errors are reported for the first problem in file order
//! (tenants, then projects, then endpoint services), at the position of the offending value when
//! the records came from text. Does not own: the snapshot's layout (`snapshot.rs`). No I/O.

use std::collections::{HashMap, HashSet};

use super::compiled::{ConnRef, Counts, ProjectInfo, Rules, Source};
use super::file::{ConnectionStatus, EndpointService, PolicyFile, TrustedIp, VpcepSettings};
use super::iprange::parse_ip_range;
use super::iptable::{IpTable, Rights, TableEntry};
use super::{IdKind, Located, PolicyError, Pos, validate};

/// Validates and compiles the tenants: `enterprise_id` → index, and one rules set per tenant.
pub(super) fn tenants(
    file: &PolicyFile,
    counts: &mut Counts,
    max: usize,
) -> Result<(HashMap<String, usize>, Vec<Rules>), PolicyError> {
    let mut index = HashMap::with_capacity(file.tenants.len());
    let mut rules = Vec::with_capacity(file.tenants.len());
    let mut seen = HashMap::new();
    for (i, t) in file.tenants.iter().enumerate() {
        check_id(IdKind::EnterpriseId, &t.enterprise_id)?;
        unique(&mut seen, IdKind::EnterpriseId, &t.enterprise_id)?;
        let owner = ("tenant", t.enterprise_id.as_str());
        rules.push(compile_rules(
            Source::Tenant(i),
            owner,
            &t.vpcep,
            &t.trusted_ips,
            max,
        )?);
        index.insert(t.enterprise_id.to_string(), i);
        count_rules(counts, &t.vpcep, &t.trusted_ips);
    }
    counts.tenants = file.tenants.len();
    Ok((index, rules))
}

fn check_id(kind: IdKind, value: &Located<String>) -> Result<(), PolicyError> {
    if validate::is_valid(kind, value) {
        return Ok(());
    }
    Err(PolicyError::InvalidId {
        kind,
        value: value.to_string(),
        rule: validate::rule(kind),
        pos: value.pos(),
    })
}

fn unique<'f>(
    seen: &mut HashMap<&'f str, Option<Pos>>,
    kind: IdKind,
    value: &'f Located<String>,
) -> Result<(), PolicyError> {
    if let Some(first) = seen.insert(value.as_str(), value.pos()) {
        return Err(PolicyError::DuplicateId {
            kind,
            value: value.to_string(),
            pos: value.pos(),
            first,
        });
    }
    Ok(())
}

fn count_rules(counts: &mut Counts, vpcep: &VpcepSettings, ips: &[TrustedIp]) {
    counts.vpceps += vpcep.endpoints.len();
    counts.ip_ranges += ips.len();
}

/// Validates one rules set and compiles it (docs/contract.md §3; shape shared by tenants and projects).
fn compile_rules(
    source: Source,
    (owner, id): (&'static str, &str),
    vpcep: &VpcepSettings,
    ips: &[TrustedIp],
    max: usize,
) -> Result<Rules, PolicyError> {
    let mut endpoints = HashSet::with_capacity(vpcep.endpoints.len());
    let mut seen = HashMap::new();
    for (n, e) in vpcep.endpoints.iter().enumerate() {
        if n == max {
            return Err(PolicyError::TooManyEndpoints {
                owner,
                id: id.to_owned(),
                count: vpcep.endpoints.len(),
                max,
                pos: e.vpcep_id.pos(),
            });
        }
        check_id(IdKind::VpcepId, &e.vpcep_id)?;
        unique(&mut seen, IdKind::VpcepId, &e.vpcep_id)?;
        if let Some(region) = &e.region {
            check_id(IdKind::Region, region)?;
        }
        if let Some(description) = &e.description {
            check_id(IdKind::Description, description)?;
        }
        endpoints.insert(e.vpcep_id.to_string());
    }
    let mut seen = HashMap::with_capacity(ips.len());
    let mut table = Vec::with_capacity(ips.len());
    for e in ips {
        check_id(IdKind::TrustedIpId, &e.id)?;
        unique(&mut seen, IdKind::TrustedIpId, &e.id)?;
        table.push(compile_entry(e)?);
    }
    Ok(Rules {
        source,
        vpcep_enabled: vpcep.enabled,
        endpoints,
        has_ips: !ips.is_empty(),
        ips: IpTable::build(table),
    })
}

fn compile_entry(e: &TrustedIp) -> Result<TableEntry, PolicyError> {
    let parsed = parse_ip_range(&e.ip_range).map_err(|err| PolicyError::InvalidIpRange {
        value: e.ip_range.to_string(),
        reason: err.0,
        pos: e.ip_range.pos(),
    })?;
    let flags = [
        ("view_flag", &e.view_flag),
        ("download_flag", &e.download_flag),
        ("upload_flag", &e.upload_flag),
    ];
    for (field, flag) in flags {
        if **flag > 1 {
            return Err(PolicyError::InvalidFlag {
                field,
                value: **flag,
                pos: flag.pos(),
            });
        }
    }
    if let Some(remark) = &e.remark {
        check_id(IdKind::Remark, remark)?;
    }
    Ok(TableEntry {
        range: parsed.range,
        rights: Rights::from_flags(*e.view_flag, *e.download_flag, *e.upload_flag),
    })
}

/// Validates every project; compiles the rules of those with `project_level: true` (the others are
/// kept valid so that switching them on through the admin API cannot fail later).
pub(super) fn projects(
    file: &PolicyFile,
    tenants: &HashMap<String, usize>,
    rules: &mut Vec<Rules>,
    counts: &mut Counts,
    max: usize,
) -> Result<HashMap<String, ProjectInfo>, PolicyError> {
    let mut projects = HashMap::with_capacity(file.projects.len());
    let mut seen = HashMap::new();
    for (i, p) in file.projects.iter().enumerate() {
        check_id(IdKind::ProjectId, &p.project_id)?;
        unique(&mut seen, IdKind::ProjectId, &p.project_id)?;
        check_id(IdKind::EnterpriseId, &p.enterprise_id)?;
        let Some(&tenant) = tenants.get(p.enterprise_id.as_str()) else {
            return Err(PolicyError::UnknownProjectTenant {
                project_id: p.project_id.to_string(),
                enterprise_id: p.enterprise_id.to_string(),
                pos: p.enterprise_id.pos(),
            });
        };
        let owner = ("project", p.project_id.as_str());
        let compiled = compile_rules(Source::Project(i), owner, &p.vpcep, &p.trusted_ips, max)?;
        let index = p.project_level.then(|| {
            rules.push(compiled);
            rules.len() - 1
        });
        let info = ProjectInfo {
            index: i,
            tenant,
            rules: index,
        };
        projects.insert(p.project_id.to_string(), info);
        count_rules(counts, &p.vpcep, &p.trusted_ips);
    }
    counts.projects = file.projects.len();
    Ok(projects)
}

/// Connections by marker and by id.
pub(super) type ConnMaps = (HashMap<u64, ConnRef>, HashMap<String, ConnRef>);

/// Validates the endpoint services. Connection ids and markers are unique across *all* services:
/// a marker must resolve to one connection (docs/contract.md §4 "VPC endpoint").
pub(super) fn services(services: &[EndpointService]) -> Result<ConnMaps, PolicyError> {
    let mut by_marker = HashMap::new();
    let mut by_id = HashMap::new();
    let mut service_ids = HashMap::new();
    let mut conn_ids = HashMap::new();
    let mut marker_pos: HashMap<u64, Option<Pos>> = HashMap::new();
    for (s, svc) in services.iter().enumerate() {
        check_id(IdKind::ServiceId, &svc.id)?;
        unique(&mut service_ids, IdKind::ServiceId, &svc.id)?;
        for (index, c) in svc.connections.iter().enumerate() {
            check_id(IdKind::ConnectionId, &c.id)?;
            unique(&mut conn_ids, IdKind::ConnectionId, &c.id)?;
            if let Some(first) = marker_pos.insert(*c.marker_id, c.marker_id.pos()) {
                return Err(PolicyError::DuplicateId {
                    kind: IdKind::MarkerId,
                    value: c.marker_id.to_string(),
                    pos: c.marker_id.pos(),
                    first,
                });
            }
            if let Some(domain) = &c.domain_id {
                check_id(IdKind::DomainId, domain)?;
            }
            let Some(status) = ConnectionStatus::parse(&c.status) else {
                return Err(PolicyError::InvalidStatus {
                    value: c.status.to_string(),
                    pos: c.status.pos(),
                });
            };
            let r = ConnRef {
                service: s,
                index,
                status,
            };
            by_marker.insert(*c.marker_id, r);
            by_id.insert(c.id.to_string(), r);
        }
    }
    Ok((by_marker, by_id))
}
