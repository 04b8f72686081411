//! [`Snapshot`]: the validated, compiled, immutable form of a [`PolicyFile`] that `decide` reads.
//!
//! Owns: the snapshot's lookup structures (hash maps by tenant, project, connection id and marker;
//! one [`IpTable`] per rules set in force) and its read API. Does not own: the checks themselves
//! (`compile.rs`), the records they produce (`compiled.rs`), YAML (`file.rs`), the decision (`decide.rs`), the generation number, the Arc
//! swap or reload (the caller wraps the snapshot). No I/O.

use std::collections::HashMap;

use super::PolicyError;
use super::compile;
pub use super::compiled::Counts;
use super::compiled::{ConnRef, ProjectInfo, Rules, Source};
use super::file::{ConnectionStatus, PolicyFile};

/// What the caller's config contributes to compiling (docs/contract.md §2 `policy.unknown_tenant`,
/// `limits.max_vpceps_per_tenant`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileOptions {
    /// `policy.unknown_tenant: allow`: a request whose tenant is unknown is allowed (no rules apply).
    pub unknown_tenant_allow: bool,
    /// Most endpoints one tenant's (or one project's) rules may list.
    pub max_vpceps_per_tenant: usize,
}

impl Default for CompileOptions {
    /// docs/contract.md §2 defaults: `unknown_tenant: deny`, `max_vpceps_per_tenant: 100`.
    fn default() -> Self {
        CompileOptions {
            unknown_tenant_allow: false,
            max_vpceps_per_tenant: 100,
        }
    }
}

/// The compiled policy. Immutable: build a new one and swap it in (docs/design.md §2.4).
#[derive(Debug)]
pub struct Snapshot {
    file: PolicyFile,
    /// `policy.unknown_tenant: allow` (docs/contract.md §4 step 2).
    pub(super) unknown_tenant_allow: bool,
    /// `enterprise_id` → tenant index; tenant `i`'s rules are `rules[i]`.
    tenants: HashMap<String, usize>,
    projects: HashMap<String, ProjectInfo>,
    /// Tenants' rules (same index as the tenant), then those of `project_level` projects.
    pub(super) rules: Vec<Rules>,
    by_marker: HashMap<u64, ConnRef>,
    by_conn_id: HashMap<String, ConnRef>,
    /// The first service with `approval_required: true` (docs/contract.md §4 step 1).
    pub(super) approval_service: Option<usize>,
    counts: Counts,
    /// Connections with status `pendingAcceptance`, in every service.
    pending_connections: usize,
}

impl Snapshot {
    /// Validates `file` (docs/contract.md §3) and compiles it. The records are cloned into the snapshot so the
    /// admin API can read them back with [`Snapshot::file`].
    ///
    /// # Performance
    /// O(n log n) in the number of entries; done off the hot path at load or reload (docs/contract.md §8).
    pub fn compile(file: &PolicyFile, opts: &CompileOptions) -> Result<Snapshot, PolicyError> {
        let max = opts.max_vpceps_per_tenant;
        let mut counts = Counts::default();
        let (tenants, mut rules) = compile::tenants(file, &mut counts, max)?;
        let projects = compile::projects(file, &tenants, &mut rules, &mut counts, max)?;
        let (by_marker, by_conn_id) = compile::services(&file.endpoint_services)?;
        counts.connections = by_marker.len();
        let pending_connections = by_marker
            .values()
            .filter(|c| c.status == ConnectionStatus::PendingAcceptance)
            .count();
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
            pending_connections,
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

    /// How many connections (of any service) have status `pendingAcceptance`, for
    /// `limits.max_pending_connections` (docs/contract.md §4 step 1).
    pub fn pending_connections(&self) -> usize {
        self.pending_connections
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

    /// Tenant index of `enterprise_id`.
    pub(super) fn tenant_index(&self, enterprise_id: &str) -> Option<usize> {
        self.tenants.get(enterprise_id).copied()
    }

    /// The project `project_id`.
    pub(super) fn project(&self, project_id: &str) -> Option<ProjectInfo> {
        self.projects.get(project_id).copied()
    }

    /// The connection carrying `marker`.
    pub(super) fn connection_by_marker(&self, marker: u64) -> Option<ConnRef> {
        self.by_marker.get(&marker).copied()
    }

    /// The connection whose id is `id`.
    pub(super) fn connection_by_id(&self, id: &str) -> Option<ConnRef> {
        self.by_conn_id.get(id).copied()
    }

    /// The `id` of connection `c`.
    pub(super) fn connection_id(&self, c: ConnRef) -> &str {
        self.file.endpoint_services[c.service].connections[c.index]
            .id
            .as_str()
    }

    /// The consumer tenant (`domain_id`) recorded on a connection, if any.
    pub(super) fn connection_domain(&self, c: ConnRef) -> Option<&str> {
        self.file
            .endpoint_services
            .get(c.service)
            .and_then(|s| s.connections.get(c.index))
            .and_then(|conn| conn.domain_id.as_ref())
            .map(|d| d.as_str())
    }

    /// The `id` of service `service`.
    pub(super) fn service_id(&self, service: usize) -> &str {
        self.file.endpoint_services[service].id.as_str()
    }

    /// The `enterprise_id` of tenant `tenant`.
    pub(super) fn tenant_id(&self, tenant: usize) -> &str {
        self.file.tenants[tenant].enterprise_id.as_str()
    }

    /// The `project_id` of project `project`.
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
