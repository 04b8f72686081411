//! [`Snapshot`]: the validated, compiled, immutable form of a [`PolicyFile`] that `decide` reads.
//!
//! Owns: every semantic check of SPEC §3 (ids, ranges, flags, duplicates, cross references,
//! `limits.max_vpceps_per_tenant`, connection statuses) and the lookup structures (hash maps by
//! tenant, project, connection id and marker; one [`IpTable`] per rules set in force).
//! Does not own: YAML (`file.rs`), the decision (`decide.rs`), the generation number, the Arc swap
//! or reload (the caller wraps the snapshot). No I/O.
//!
//! Errors are reported for the first problem in file order (tenants, then projects, then endpoint
//! services), with the position of the offending value when the records came from text.

use std::collections::{HashMap, HashSet};

use super::file::{ConnectionStatus, EndpointService, PolicyFile, TrustedIp, VpcepSettings};
use super::iptable::{IpTable, Rights, TableEntry, parse_ip_range};
use super::{IdKind, Located, PolicyError, Pos, validate};

/// What the caller's config contributes to compiling (SPEC §2 `policy.unknown_tenant`,
/// `limits.max_vpceps_per_tenant`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileOptions {
    /// `policy.unknown_tenant: allow`: a request whose tenant is unknown is allowed (no rules apply).
    pub unknown_tenant_allow: bool,
    /// Most endpoints one tenant's (or one project's) rules may list.
    pub max_vpceps_per_tenant: usize,
}

impl Default for CompileOptions {
    /// SPEC §2 defaults: `unknown_tenant: deny`, `max_vpceps_per_tenant: 100`.
    fn default() -> Self {
        CompileOptions {
            unknown_tenant_allow: false,
            max_vpceps_per_tenant: 100,
        }
    }
}

/// Entry counts for `check`, `/status` and `vpcguard_policy_entries{kind}` (SPEC §1, §9). Endpoints
/// and IP entries are summed over tenants and projects.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Tenants.
    pub tenants: usize,
    /// Authorized endpoints (tenants' and projects').
    pub vpceps: usize,
    /// Trusted IP entries (tenants' and projects').
    pub ip_ranges: usize,
    /// Endpoint-service connections.
    pub connections: usize,
    /// Projects.
    pub projects: usize,
}

/// Where a compiled rules set came from, to find its records again for attribution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Source {
    Tenant(usize),
    Project(usize),
}

/// One compiled rules set (a tenant's, or a project's with `project_level: true`).
#[derive(Debug)]
pub(super) struct Rules {
    pub(super) source: Source,
    pub(super) vpcep_enabled: bool,
    pub(super) endpoints: HashSet<String>,
    pub(super) has_ips: bool,
    pub(super) ips: IpTable,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct ProjectInfo {
    pub(super) index: usize,
    pub(super) tenant: usize,
    /// Index into `rules` when the project has `project_level: true`.
    pub(super) rules: Option<usize>,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct ConnRef {
    pub(super) service: usize,
    pub(super) index: usize,
    pub(super) status: ConnectionStatus,
}

/// The compiled policy. Immutable: build a new one and swap it in (STYLE §2.4).
#[derive(Debug)]
pub struct Snapshot {
    file: PolicyFile,
    pub(super) unknown_tenant_allow: bool,
    /// `enterprise_id` → tenant index; tenant `i`'s rules are `rules[i]`.
    tenants: HashMap<String, usize>,
    projects: HashMap<String, ProjectInfo>,
    pub(super) rules: Vec<Rules>,
    by_marker: HashMap<u64, ConnRef>,
    by_conn_id: HashMap<String, ConnRef>,
    /// The first service with `approval_required: true` (SPEC §4 step 1).
    pub(super) approval_service: Option<usize>,
    counts: Counts,
}

impl Snapshot {
    /// Validates `file` (SPEC §3) and compiles it. The records are cloned into the snapshot so the
    /// admin API can read them back with [`Snapshot::file`].
    ///
    /// # Performance
    /// O(n log n) in the number of entries; done off the hot path at load or reload (SPEC §8).
    pub fn compile(file: &PolicyFile, opts: &CompileOptions) -> Result<Snapshot, PolicyError> {
        let max = opts.max_vpceps_per_tenant;
        let mut counts = Counts::default();
        let mut tenants = HashMap::with_capacity(file.tenants.len());
        let mut rules = Vec::with_capacity(file.tenants.len());
        let mut first_pos: HashMap<&str, Option<Pos>> = HashMap::new();
        for (i, t) in file.tenants.iter().enumerate() {
            check_id(IdKind::EnterpriseId, &t.enterprise_id)?;
            unique(&mut first_pos, IdKind::EnterpriseId, &t.enterprise_id)?;
            let owner = ("tenant", t.enterprise_id.as_str());
            rules.push(compile_rules(
                Source::Tenant(i),
                owner,
                &t.vpcep,
                &t.trusted_ips,
                max,
            )?);
            tenants.insert(t.enterprise_id.to_string(), i);
            count_rules(&mut counts, &t.vpcep, &t.trusted_ips);
        }
        counts.tenants = file.tenants.len();
        let projects = compile_projects(file, &tenants, &mut rules, &mut counts, max)?;
        let (by_marker, by_conn_id) = compile_services(&file.endpoint_services)?;
        counts.connections = by_marker.len();
        Ok(Snapshot {
            file: file.clone(),
            unknown_tenant_allow: opts.unknown_tenant_allow,
            tenants,
            projects,
            rules,
            by_marker,
            by_conn_id,
            approval_service: file
                .endpoint_services
                .iter()
                .position(|s| s.approval_required),
            counts,
        })
    }

    /// The records this snapshot was compiled from.
    pub fn file(&self) -> &PolicyFile {
        &self.file
    }

    /// Entry counts.
    pub fn counts(&self) -> Counts {
        self.counts
    }

    /// The tenant (`enterprise_id`) a project belongs to, via the `projects` table.
    pub fn tenant_for_project(&self, project_id: &str) -> Option<&str> {
        let p = self.projects.get(project_id)?;
        Some(self.file.tenants[p.tenant].enterprise_id.as_str())
    }

    /// Whether `enterprise_id` is a tenant of the policy.
    pub fn has_tenant(&self, enterprise_id: &str) -> bool {
        self.tenants.contains_key(enterprise_id)
    }

    /// Whether a request of an unknown tenant is allowed (`policy.unknown_tenant: allow`).
    pub fn unknown_tenant_allow(&self) -> bool {
        self.unknown_tenant_allow
    }

    pub(super) fn tenant_index(&self, enterprise_id: &str) -> Option<usize> {
        self.tenants.get(enterprise_id).copied()
    }

    pub(super) fn project(&self, project_id: &str) -> Option<ProjectInfo> {
        self.projects.get(project_id).copied()
    }

    pub(super) fn connection_by_marker(&self, marker: u64) -> Option<ConnRef> {
        self.by_marker.get(&marker).copied()
    }

    pub(super) fn connection_by_id(&self, id: &str) -> Option<ConnRef> {
        self.by_conn_id.get(id).copied()
    }

    pub(super) fn connection_id(&self, c: ConnRef) -> &str {
        self.file.endpoint_services[c.service].connections[c.index]
            .id
            .as_str()
    }

    pub(super) fn service_id(&self, service: usize) -> &str {
        self.file.endpoint_services[service].id.as_str()
    }

    pub(super) fn tenant_id(&self, tenant: usize) -> &str {
        self.file.tenants[tenant].enterprise_id.as_str()
    }

    pub(super) fn project_id(&self, project: usize) -> &str {
        self.file.projects[project].project_id.as_str()
    }

    /// The `id` of entry `entry` of the rules set `rules`.
    pub(super) fn entry_id(&self, rules: &Rules, entry: u32) -> Option<&str> {
        let list = match rules.source {
            Source::Tenant(i) => &self.file.tenants[i].trusted_ips,
            Source::Project(i) => &self.file.projects[i].trusted_ips,
        };
        let e = list.get(usize::try_from(entry).ok()?)?;
        Some(e.id.as_str())
    }
}

// === compile helpers ===

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

/// Validates one rules set and compiles it (SPEC §3; shape shared by tenants and projects).
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
fn compile_projects(
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

type ConnMaps = (HashMap<u64, ConnRef>, HashMap<String, ConnRef>);

/// Validates the endpoint services. Connection ids and markers are unique across *all* services:
/// a marker must resolve to one connection (SPEC §4 "VPC endpoint").
fn compile_services(services: &[EndpointService]) -> Result<ConnMaps, PolicyError> {
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
