//! The policy file (docs/contract.md §3): plain serde records in the seed documents' own field names, plus
//! [`parse_policy`] and [`render_policy`].
//!
//! Owns: the record shapes, YAML syntax/shape errors, the serde-saphyr budget, rendering.
//! Does not own: semantic validation (ids, ranges, flags, duplicates, limits — `snapshot.rs` does
//! that in [`Snapshot::compile`](super::Snapshot::compile), so a file edited by the admin API is
//! checked by the same code as one read from disk), nor reading or writing the file (the caller).
//! No I/O.
//!
//! These records are what the admin API (docs/contract.md §7) reads, mutates and writes back, so they are plain
//! data. Fields that validation may need to point at are [`Located`], which is transparent for
//! serde and equality. Field order is docs/contract.md §3's, and `parse_policy(render_policy(p)) == p`.

use std::net::IpAddr;

use serde::{Deserialize, Serialize, Serializer};
use serde_saphyr::MessageFormatter;

use super::iprange::{IpType, parse_ip_range};
use super::{Located, PolicyError, Pos};

/// The whole policy file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    /// Tenants and their rules. Required: an empty policy is written `tenants: []`.
    pub tenants: Vec<Tenant>,
    /// Project-level rules (seed: Build project permission).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub projects: Vec<Project>,
    /// The VPC endpoint services this proxy fronts (seed: accept/reject connection).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoint_services: Vec<EndpointService>,
}

/// One tenant (seed field `enterprise_id`, the account/domain id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tenant {
    /// Tenant id: 1–40 of `[A-Za-z0-9_-]` (seed: vpcep-management `enterprise_id`).
    pub enterprise_id: Located<String>,
    /// VPC endpoint settings; absent means not configured.
    #[serde(default)]
    pub vpcep: VpcepSettings,
    /// The trusted IP whitelist; empty means any address (docs/contract.md §4 step 5).
    #[serde(default, serialize_with = "flow_list")]
    pub trusted_ips: Vec<TrustedIp>,
}

/// A rules set's VPC endpoint settings (seed: vpcep-management, check-vpcep-authorization).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VpcepSettings {
    /// The seeds' `config`: secure access via VPC endpoint is configured, so only the listed
    /// endpoints may reach the service (docs/contract.md §4 step 4).
    #[serde(default)]
    pub enabled: bool,
    /// Authorized endpoints (seed `VpceInfo`).
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        serialize_with = "flow_list"
    )]
    pub endpoints: Vec<Endpoint>,
}

/// An authorized VPC endpoint (seed `VpceInfo`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    /// Endpoint id: 1–40 of `[a-z0-9-]`.
    pub vpcep_id: Located<String>,
    /// Region: 1–40 of `[a-z0-9-]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<Located<String>>,
    /// 0–128 characters: letters, digits, spaces and `()[]-_.~&;`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<Located<String>>,
    /// Who added it (free text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creator: Option<String>,
    /// When it was added (free text, the seeds use RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_time: Option<String>,
    /// When it was last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modify_time: Option<String>,
}

/// One trusted IP whitelist entry (seed `TenantTrustedIpAddressDto`; `ip_type`, `ip_start` and
/// `ip_end` are derived, see [`TrustedIp::derived`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustedIp {
    /// Entry id, unique within its rules set: 1–64 of `[A-Za-z0-9_.-]`.
    pub id: Located<String>,
    /// A single address, a CIDR or `start-end` (docs/contract.md §3).
    pub ip_range: Located<String>,
    /// 1 = may view (seed default 0).
    #[serde(default)]
    pub view_flag: Located<u8>,
    /// 1 = may download (seed default 0).
    #[serde(default)]
    pub download_flag: Located<u8>,
    /// 1 = may upload/commit (seed default 0).
    #[serde(default)]
    pub upload_flag: Located<u8>,
    /// Remark, at most 200 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remark: Option<Located<String>>,
}

/// The seed's derived `ip_type` / `ip_start` / `ip_end` of an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Derived {
    /// 3 single, 2 CIDR, 1 range.
    pub ip_type: u8,
    /// First address (IPv4-mapped IPv6 written as IPv4).
    pub ip_start: String,
    /// Last address.
    pub ip_end: String,
}

impl TrustedIp {
    /// Computes the seed's derived fields for the admin API; fails like validation does on a bad
    /// `ip_range`.
    pub fn derived(&self) -> Result<Derived, PolicyError> {
        let parsed = parse_ip_range(&self.ip_range).map_err(|e| PolicyError::InvalidIpRange {
            value: self.ip_range.to_string(),
            reason: e.0,
            pos: self.ip_range.pos(),
        })?;
        let text = |ip: IpAddr| ip.to_string();
        Ok(Derived {
            ip_type: match parsed.ip_type {
                IpType::Range => 1,
                IpType::Cidr => 2,
                IpType::Single => 3,
            },
            ip_start: text(parsed.range.first()),
            ip_end: text(parsed.range.last()),
        })
    }
}

/// Project-level rules (seed: Build project permission).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Project {
    /// CodeArts project id: exactly 32 of `[A-Za-z0-9]`.
    pub project_id: Located<String>,
    /// The tenant owning the project; must be one of `tenants`.
    pub enterprise_id: Located<String>,
    /// When true these rules replace the tenant's for this project (docs/contract.md §4 step 3).
    #[serde(default)]
    pub project_level: bool,
    /// Same shape as a tenant's.
    #[serde(default)]
    pub vpcep: VpcepSettings,
    /// Same shape as a tenant's.
    #[serde(default, serialize_with = "flow_list")]
    pub trusted_ips: Vec<TrustedIp>,
}

/// A VPC endpoint service and the endpoints connected to it (seed: accept/reject connection).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointService {
    /// Service id: 1–64 of `[A-Za-z0-9_-]`.
    pub id: Located<String>,
    /// When true an unknown marker is recorded as `pendingAcceptance` and denied (docs/contract.md §4 step 1).
    #[serde(default)]
    pub approval_required: bool,
    /// Connections (seed `ConnectionEndpoints`).
    #[serde(default, serialize_with = "flow_list")]
    pub connections: Vec<Connection>,
}

/// A VPC endpoint's connection to a service (seed `ConnectionEndpoints`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Connection {
    /// The VPC endpoint id (docs/contract.md §3): 1–40 of `[a-z0-9-]`; unique across services.
    pub id: Located<String>,
    /// The packet/marker id carried by traffic through the endpoint; unique across services.
    pub marker_id: Located<u64>,
    /// The consumer tenant, same rules as `enterprise_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain_id: Option<Located<String>>,
    /// One of [`ConnectionStatus`]'s wire names.
    pub status: Located<String>,
    /// Creation time (free text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    /// Update time (free text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
    /// Description (free text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A connection status (seed: accept/reject connection). Only `Accepted` lets traffic through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnectionStatus {
    /// `pendingAcceptance`
    PendingAcceptance,
    /// `creating`
    Creating,
    /// `accepted`
    Accepted,
    /// `rejected`
    Rejected,
    /// `failed`
    Failed,
    /// `deleting`
    Deleting,
}

impl ConnectionStatus {
    /// Every status, in the seed's order.
    pub const ALL: [ConnectionStatus; 6] = [
        ConnectionStatus::PendingAcceptance,
        ConnectionStatus::Creating,
        ConnectionStatus::Accepted,
        ConnectionStatus::Rejected,
        ConnectionStatus::Failed,
        ConnectionStatus::Deleting,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionStatus::PendingAcceptance => "pendingAcceptance",
            ConnectionStatus::Creating => "creating",
            ConnectionStatus::Accepted => "accepted",
            ConnectionStatus::Rejected => "rejected",
            ConnectionStatus::Failed => "failed",
            ConnectionStatus::Deleting => "deleting",
        }
    }

    /// Parses a wire name (exact case, as the seed writes them).
    pub fn parse(s: &str) -> Option<ConnectionStatus> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// Renders a list of records one flow map per line, the way docs/contract.md §3 writes them, so that a file
/// written back by the admin API stays diff-friendly at 100,000 entries.
fn flow_list<T: Serialize, S: Serializer>(items: &[T], ser: S) -> Result<S::Ok, S::Error> {
    ser.collect_seq(items.iter().map(serde_saphyr::FlowMap))
}

/// The most entries (of any list) a policy file is sized for: ten times docs/contract.md §3's 100,000, so the
/// budget is never what stops a legitimate file.
pub const MAX_ENTRIES: usize = 1_000_000;

/// Parses the policy text: YAML syntax and record shape only (unknown fields, wrong types,
/// duplicate keys). Semantic checks happen in `Snapshot::compile`.
///
/// An empty document (nothing, only comments, `---` or `~`) is [`PolicyError::Empty`]: an empty
/// file is far more often a truncated write than an intended "no rules", which is spelled
/// `tenants: []`.
pub fn parse_policy(text: &str) -> Result<PolicyFile, PolicyError> {
    // One flow-map trusted_ips entry is 13 nodes (map + 6 keys + 6 values) and ~15 events; the
    // default budget (250k nodes) stops near 19k entries. Size for MAX_ENTRIES with headroom.
    let options = serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_nodes: 16 * MAX_ENTRIES,
            max_events: 20 * MAX_ENTRIES,
            max_total_scalar_bytes: 256 * 1024 * 1024,
        },
    };
    match serde_saphyr::from_str_with_options::<Option<PolicyFile>>(text, options) {
        Ok(Some(file)) => Ok(file),
        Ok(None) => Err(PolicyError::Empty),
        Err(err) => Err(yaml_error(&err)),
    }
}

/// A serde-saphyr error's message without its position and caret snippet, on one printable line
/// (the message may quote the input). Shared with the config loader, which prints the position
/// itself as `file:line:column`.
pub fn yaml_message(err: &serde_saphyr::Error) -> String {
    let message = serde_saphyr::DefaultMessageFormatter.format_message(err.without_snippet());
    message
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

fn yaml_error(err: &serde_saphyr::Error) -> PolicyError {
    let message = yaml_message(err);
    PolicyError::Yaml {
        message,
        pos: err.location().and_then(Pos::from_location),
    }
}

/// Renders the records as YAML (block style outside, one flow map per entry). Comments in the
/// original text are not kept. `parse_policy(&render_policy(p)?)? == *p`.
pub fn render_policy(file: &PolicyFile) -> Result<String, PolicyError> {
    // Block scalars (`|`, `>`) are not allowed inside flow maps; keep every string a plain or
    // quoted scalar so long remarks round-trip.
    let options = serde_saphyr::ser_options! { prefer_block_scalars: false };
    serde_saphyr::to_string_with_options(file, options)
        .map_err(|e| PolicyError::Render(e.to_string()))
}
