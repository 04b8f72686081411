//! [`PolicyError`]: why a policy text or a set of policy records was rejected, with the position in
//! the text when known (so the caller prints `policy.yaml:LINE:COL: message`, docs/contract.md §1 `check`).
//!
//! Owns: the error enum and [`IdKind`]. Does not own: the wire error bodies (the admin API maps
//! these to its seed codes, see each variant). No I/O.

use super::Pos;

/// Which kind of identifier or text field a validation error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IdKind {
    /// A tenant's `enterprise_id` (also a project's `enterprise_id`).
    EnterpriseId,
    /// A project's `project_id`.
    ProjectId,
    /// An endpoint's `vpcep_id`.
    VpcepId,
    /// An endpoint's `region`.
    Region,
    /// An endpoint's `description`.
    Description,
    /// A trusted IP entry's `id`.
    TrustedIpId,
    /// A trusted IP entry's `remark`.
    Remark,
    /// An endpoint service's `id`.
    ServiceId,
    /// A connection's `id`.
    ConnectionId,
    /// A connection's `marker_id`.
    MarkerId,
    /// A connection's `domain_id`.
    DomainId,
}

impl IdKind {
    /// The field name as written in the policy file.
    pub fn as_str(self) -> &'static str {
        match self {
            IdKind::EnterpriseId => "enterprise_id",
            IdKind::ProjectId => "project_id",
            IdKind::VpcepId => "vpcep_id",
            IdKind::Region => "region",
            IdKind::Description => "description",
            IdKind::TrustedIpId => "trusted_ips id",
            IdKind::Remark => "remark",
            IdKind::ServiceId => "endpoint service id",
            IdKind::ConnectionId => "connection id",
            IdKind::MarkerId => "marker_id",
            IdKind::DomainId => "domain_id",
        }
    }
}

impl std::fmt::Display for IdKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A policy text or record set that cannot become a [`Snapshot`](super::Snapshot).
///
/// The `Display` text is for operators and logs and carries no position; use
/// [`PolicyError::position`] or [`PolicyError::render`]. Admin API mapping (docs/contract.md §7): every variant
/// is 400 `UC.00011002` except [`PolicyError::DuplicateId`] (409 `UC.00011009`),
/// [`PolicyError::TooManyEndpoints`] (400 `UC.00011036`) and [`PolicyError::Render`]
/// (500 `UC.00010005`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// The document is empty (no content, only comments, `---` or `~`).
    #[error("policy file is empty; write `tenants: []` for a policy without rules")]
    Empty,
    /// YAML syntax or shape: bad syntax, unknown field, missing field, wrong type, duplicate key,
    /// budget exceeded.
    #[error("{message}")]
    Yaml {
        /// serde-saphyr's message, without location or snippet.
        message: String,
        /// Where serde-saphyr stopped.
        pos: Option<Pos>,
    },
    /// An `ip_range` outside docs/contract.md §3's grammar: not an address/CIDR/range, host bits set, mixed
    /// families, `start > end`.
    #[error("ip_range {value:?} {reason}")]
    InvalidIpRange {
        /// The text as written.
        value: String,
        /// What is wrong and, where possible, the fix.
        reason: String,
        /// Position of the `ip_range` value.
        pos: Option<Pos>,
    },
    /// A `view_flag` / `download_flag` / `upload_flag` other than 0 or 1.
    #[error("{field} must be 0 or 1, not {value}")]
    InvalidFlag {
        /// Which flag.
        field: &'static str,
        /// The value found.
        value: u8,
        /// Position of the flag value.
        pos: Option<Pos>,
    },
    /// An identifier or text field outside the seeds' character set or length.
    #[error("{kind} {value:?} is invalid: must be {rule}")]
    InvalidId {
        /// Which field.
        kind: IdKind,
        /// The value found.
        value: String,
        /// The rule, e.g. "1 to 40 characters of a-z, 0-9 and -".
        rule: &'static str,
        /// Position of the value.
        pos: Option<Pos>,
    },
    /// A connection `status` that is not one of the seed's six.
    #[error(
        "connection status {value:?} is unknown: must be one of pendingAcceptance, creating, \
         accepted, rejected, failed, deleting"
    )]
    InvalidStatus {
        /// The value found.
        value: String,
        /// Position of the value.
        pos: Option<Pos>,
    },
    /// An id defined twice where it must be unique.
    #[error("duplicate {kind} {value:?}{}", first.map(|p| format!(" (first defined at {p})")).unwrap_or_default())]
    DuplicateId {
        /// Which id.
        kind: IdKind,
        /// The repeated value.
        value: String,
        /// Position of the repetition.
        pos: Option<Pos>,
        /// Position of the first definition.
        first: Option<Pos>,
    },
    /// A project whose `enterprise_id` is not among `tenants`.
    #[error(
        "project {project_id:?} belongs to enterprise_id {enterprise_id:?}, which is not a tenant"
    )]
    UnknownProjectTenant {
        /// The project.
        project_id: String,
        /// The missing tenant.
        enterprise_id: String,
        /// Position of the project's `enterprise_id`.
        pos: Option<Pos>,
    },
    /// More endpoints in one rules set than `limits.max_vpceps_per_tenant`.
    #[error("{owner} {id:?} has {count} endpoints, more than limits.max_vpceps_per_tenant ({max})")]
    TooManyEndpoints {
        /// "tenant" or "project".
        owner: &'static str,
        /// The tenant's `enterprise_id` or the project's `project_id`.
        id: String,
        /// How many endpoints it lists.
        count: usize,
        /// The limit.
        max: usize,
        /// Position of the first endpoint over the limit.
        pos: Option<Pos>,
    },
    /// serde-saphyr could not render the records (should not happen for valid records).
    #[error("cannot render the policy as YAML: {0}")]
    Render(String),
}

impl PolicyError {
    /// Line and column (1-based) in the policy text, when the error is about text.
    pub fn position(&self) -> Option<(u32, u32)> {
        let pos = match self {
            PolicyError::Empty | PolicyError::Render(_) => None,
            PolicyError::Yaml { pos, .. }
            | PolicyError::InvalidIpRange { pos, .. }
            | PolicyError::InvalidFlag { pos, .. }
            | PolicyError::InvalidId { pos, .. }
            | PolicyError::InvalidStatus { pos, .. }
            | PolicyError::DuplicateId { pos, .. }
            | PolicyError::UnknownProjectTenant { pos, .. }
            | PolicyError::TooManyEndpoints { pos, .. } => *pos,
        };
        pos.map(|p| (p.line, p.column))
    }

    /// `FILE:LINE:COL: message`, or `FILE: message` without a position (docs/contract.md §1 `check`).
    pub fn render(&self, file: &str) -> String {
        match self.position() {
            Some((line, col)) => format!("{file}:{line}:{col}: {self}"),
            None => format!("{file}: {self}"),
        }
    }
}
