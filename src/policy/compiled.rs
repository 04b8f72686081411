//! The compiled records a [`super::Snapshot`] is made of: produced by `compile.rs`, held and read
//! by `snapshot.rs` (kept apart so that neither of those imports the other's internals both ways).
//! No I/O.

use std::collections::HashSet;

use super::file::ConnectionStatus;
use super::iptable::IpTable;

/// Entry counts for `check`, `/status` and `vpcguard_policy_entries{kind}` (docs/contract.md §1, §9). Endpoints
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
    /// Index into `PolicyFile::tenants`.
    Tenant(usize),
    /// Index into `PolicyFile::projects`.
    Project(usize),
}

/// One compiled rules set (a tenant's, or a project's with `project_level: true`).
#[derive(Debug)]
pub(super) struct Rules {
    /// The records it was compiled from.
    pub(super) source: Source,
    /// `vpcep.enabled` (docs/contract.md §4 step 4).
    pub(super) vpcep_enabled: bool,
    /// The authorized `vpcep_id`s.
    pub(super) endpoints: HashSet<String>,
    /// Whether `trusted_ips` is non-empty (docs/contract.md §4 step 5 applies).
    pub(super) has_ips: bool,
    /// The compiled `trusted_ips`.
    pub(super) ips: IpTable,
}

/// A project as `decide` needs it.
#[derive(Debug, Clone, Copy)]
pub(super) struct ProjectInfo {
    /// Index into `PolicyFile::projects`.
    pub(super) index: usize,
    /// Index of its tenant (and of the tenant's rules).
    pub(super) tenant: usize,
    /// Index into `rules` when the project has `project_level: true`.
    pub(super) rules: Option<usize>,
}

/// Where a connection is in `PolicyFile::endpoint_services`, and its parsed status.
#[derive(Debug, Clone, Copy)]
pub(super) struct ConnRef {
    /// Service index.
    pub(super) service: usize,
    /// Connection index within the service.
    pub(super) index: usize,
    /// Its status; only `Accepted` lets traffic through.
    pub(super) status: ConnectionStatus,
}
