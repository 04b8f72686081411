//! # Policy: the pure access-decision core (docs/contract.md §3 policy file, §4 decision, §5 403 rows)
//!
//! Pipeline: policy text → [`parse_policy`] → [`PolicyFile`] (plain records, what the admin API
//! edits and [`render_policy`] writes back) → [`Snapshot::compile`] (all docs/contract.md §3 validation, lookup
//! tables) → [`decide()`]`(&Snapshot, &Facts)` → [`Decision`] (outcome + why + what matched).
//!
//! | file | owns |
//! |---|---|
//! | `mod.rs` | facts, decision and reason types; re-exports |
//! | `file.rs` | policy records, YAML parse/render |
//! | `located.rs` | [`Located`] values that remember their line/column |
//! | `error.rs` | [`PolicyError`] with positions |
//! | `validate.rs` | the seeds' id character sets and lengths |
//! | `iprange.rs` | the `ip_range` grammar, IPv4-mapped normalisation |
//! | `iptable.rs` | [`IpTable`] interval sets with rights |
//! | `compile.rs` | docs/contract.md §3 validation, compiling each rules set |
//! | `compiled.rs` | the compiled records (rules sets, projects, connections, counts) |
//! | `snapshot.rs` | the compiled [`Snapshot`] and its lookups |
//! | `decide.rs` | the docs/contract.md §4 check order |
//!
//! Does not own: reading or writing files, the generation counter and Arc swap, report mode,
//! logging, metrics, HTTP responses — callers do those with what [`Decision`] returns.
//! No I/O, no clock, no logging, no metrics (docs/design.md §2.1).

mod compile;
mod compiled;
mod decide;
mod error;
mod file;
mod iprange;
mod iptable;
mod located;
mod snapshot;
pub mod validate;

#[cfg(test)]
mod tests;

use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub use decide::decide;
pub use error::{IdKind, PolicyError};
pub use file::{
    Connection, ConnectionStatus, Derived, Endpoint, EndpointService, MAX_ENTRIES, PolicyFile,
    Project, Tenant, TrustedIp, VpcepSettings, parse_policy, render_policy, yaml_message,
};
pub use iprange::{InvalidIpRange, IpRange, IpType, ParsedIpRange, parse_ip_range};
pub use iptable::{Hit, IpTable, Rights, TableEntry};
pub use located::{Located, Pos};
pub use snapshot::{CompileOptions, Counts, Snapshot};

/// What a request wants to do (docs/contract.md §2 `routes`, §4 "Right"); maps to the seed's three flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Right {
    /// Read access (`view_flag`).
    View,
    /// Download/clone (`download_flag`).
    Download,
    /// Upload/commit (`upload_flag`).
    Upload,
}

impl Right {
    /// Every right, in flag order.
    pub const ALL: [Right; 3] = [Right::View, Right::Download, Right::Upload];

    /// The config spelling: `view`, `download`, `upload`.
    pub fn as_str(self) -> &'static str {
        match self {
            Right::View => "view",
            Right::Download => "download",
            Right::Upload => "upload",
        }
    }

    /// Bit position in [`Rights`].
    pub(crate) fn bit(self) -> u8 {
        match self {
            Right::View => 0,
            Right::Download => 1,
            Right::Upload => 2,
        }
    }
}

impl std::fmt::Display for Right {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A right name that is not `view`, `download` or `upload`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown right {0:?}: expected view, download or upload")]
pub struct InvalidRight(pub String);

impl FromStr for Right {
    type Err = InvalidRight;
    fn from_str(s: &str) -> Result<Right, InvalidRight> {
        Right::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| InvalidRight(s.to_owned()))
    }
}

/// How the request says it arrived through a VPC endpoint (PROXY TLV or trusted header, docs/contract.md §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VpcepRef<'a> {
    /// An endpoint id (e.g. AWS TLV 0xEA, `x-vpcep-id`).
    Id(&'a str),
    /// A numeric marker/packet id, resolved through the endpoint services' connections.
    Marker(u64),
}

/// Who the request says it is for (docs/contract.md §2 `tenant` resolution, done by the caller).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TenantRef<'a> {
    /// An `enterprise_id`.
    Tenant(&'a str),
    /// A project id, mapped to its tenant through the `projects` table (unknown → unknown tenant).
    Project(&'a str),
    /// A tenant and a project named by different rules: the project's tenant must be that tenant
    /// (else `TenantConflict`), and the project brings its project-level rules.
    Both {
        /// The `enterprise_id` a rule named.
        tenant: &'a str,
        /// The project id a rule named.
        project: &'a str,
    },
    /// Nothing matched.
    None,
}

/// Everything `decide` needs to know about one request or connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Facts<'a> {
    /// The client address after PROXY / forwarded-header processing (IPv4-mapped is fine).
    pub client_ip: IpAddr,
    /// The tenant or project.
    pub tenant: TenantRef<'a>,
    /// The endpoint it came through, if any.
    pub vpcep: Option<VpcepRef<'a>>,
    /// The right the route needs.
    pub right: Right,
}

/// Why access was denied. The wire code is `verdict::deny_code`'s, the metric label
/// `metrics::RequestReason`'s: this core names the reason, callers render it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DenyReason {
    /// §4 step 1. 403 `VG.00040304`.
    VpcepNotAccepted,
    /// §4 step 2: the connection's `domain_id` is another tenant. 403 `VG.00040306`.
    VpcepWrongTenant,
    /// §4 "Tenant": the project named belongs to another tenant than the one named. 403
    /// `VG.00040305`.
    TenantConflict,
    /// §4 step 3. 403 `VG.00040305`.
    UnknownTenant,
    /// §4 step 4. 403 `VG.00040301`.
    VpcepNotAuthorized,
    /// §4 step 5. 403 `VG.00040302`.
    IpNotTrusted,
    /// §4 step 6. 403 `VG.00040303`.
    RightNotGranted,
}

impl DenyReason {
    /// Every reason, in docs/contract.md §4 order (for docs-sync tests and metric pre-registration).
    pub const ALL: [DenyReason; 7] = [
        DenyReason::VpcepNotAccepted,
        DenyReason::VpcepWrongTenant,
        DenyReason::TenantConflict,
        DenyReason::UnknownTenant,
        DenyReason::VpcepNotAuthorized,
        DenyReason::IpNotTrusted,
        DenyReason::RightNotGranted,
    ];
}

/// What enforcement would do. Report mode is the caller's business (docs/contract.md §4 step 7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Let it through.
    Allow,
    /// Refuse it, for this reason.
    Deny(DenyReason),
}

impl Outcome {
    /// Whether it is [`Outcome::Allow`].
    pub fn is_allow(self) -> bool {
        self == Outcome::Allow
    }

    /// The deny reason, if denied.
    pub fn deny_reason(self) -> Option<DenyReason> {
        match self {
            Outcome::Allow => None,
            Outcome::Deny(r) => Some(r),
        }
    }

    /// The seed's `result` field of the self-check (docs/contract.md §7.1): `Allow` or `Deny`.
    pub fn result(self) -> &'static str {
        match self {
            Outcome::Allow => "Allow",
            Outcome::Deny(_) => "Deny",
        }
    }
}

/// Whose rules were applied (docs/contract.md §4 step 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// The tenant's.
    Tenant,
    /// The project's (`project_level: true`).
    Project,
    /// None: the tenant is unknown.
    None,
}

impl Scope {
    /// `tenant`, `project` or `none`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Tenant => "tenant",
            Scope::Project => "project",
            Scope::None => "none",
        }
    }
}

/// An unknown marker seen while a service requires approval: the caller records a connection
/// with `status: pendingAcceptance` for it (docs/contract.md §4 step 1) and persists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingConnection<'a> {
    /// The first endpoint service with `approval_required: true`.
    pub service_id: &'a str,
    /// The marker seen.
    pub marker_id: u64,
}

/// The result of [`decide()`]: the outcome plus everything looked up on the way, filled in whatever
/// the outcome (for logs, identity headers and the self-check body).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision<'a> {
    /// Allow, or deny with the first failing check's reason.
    pub outcome: Outcome,
    /// The known `enterprise_id` the rules came from (after project → tenant mapping); `None` when
    /// the tenant is unknown.
    pub tenant: Option<&'a str>,
    /// The project, when the request named one that is in the `projects` table.
    pub project: Option<&'a str>,
    /// Whose rules were applied.
    pub rules_scope: Scope,
    /// The endpoint id: as given, or the connection id a marker resolved to (`None` for no endpoint
    /// or an unknown marker).
    pub vpcep_id: Option<&'a str>,
    /// The rules' `vpcep.enabled` (the seed's `config`); false when no rules apply.
    pub vpcep_config: bool,
    /// The `id` of a `trusted_ips` entry containing the client IP: the first (file order) that
    /// grants the right, else the one granting the most rights.
    pub matched_ip_entry: Option<&'a str>,
    /// Set when an unknown marker must be recorded as `pendingAcceptance`.
    pub pending: Option<PendingConnection<'a>>,
}
