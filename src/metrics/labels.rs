//! The closed label sets of the metric families (docs/contract.md §9): every label value vpcguard
//! exports comes from one of these enums, never from a request (linkerd's `ErrorKind` idea). The
//! `ALL` arrays list each set in the order the families pre-create and index their children.
//!
//! No I/O.

use crate::policy::DenyReason;

/// `requests_total{decision}`
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecisionLabel {
    Allow,
    Deny,
    ReportDeny,
}

impl DecisionLabel {
    /// Every value.
    pub const ALL: [DecisionLabel; 3] = [Self::Allow, Self::Deny, Self::ReportDeny];
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
            Self::ReportDeny => "report_deny",
        }
    }
}

/// `requests_total{reason}`: `none` for an allow, else why the request was (or, in report
/// mode, would have been) denied — a policy [`DenyReason`] or an identity header that could not
/// be believed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestReason {
    None,
    VpcepNotAccepted,
    UnknownTenant,
    VpcepNotAuthorized,
    IpNotTrusted,
    RightNotGranted,
    /// A trusted proxy's forwarding header did not parse (fail closed as `ip_not_trusted`).
    BadForwardingHeader,
    /// A trusted proxy's VPC endpoint header did not parse (fail closed as `vpcep_not_authorized`).
    BadVpcepHeader,
    /// The connection's `domain_id` is another tenant (`VG.00040306`).
    VpcepWrongTenant,
    /// A tenant rule's source is present but unusable (`VG.00040305`).
    BadTenant,
    /// Two tenant rules name different tenants (`VG.00040305`).
    TenantConflict,
}

impl RequestReason {
    /// Every value; every one but `None` is a deny reason.
    pub const ALL: [RequestReason; 11] = [
        Self::None,
        Self::VpcepNotAccepted,
        Self::UnknownTenant,
        Self::VpcepNotAuthorized,
        Self::IpNotTrusted,
        Self::RightNotGranted,
        Self::BadForwardingHeader,
        Self::BadVpcepHeader,
        Self::VpcepWrongTenant,
        Self::BadTenant,
        Self::TenantConflict,
    ];
    /// The label value (also the access log's `reason`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::VpcepNotAccepted => "vpcep_not_accepted",
            Self::UnknownTenant => "unknown_tenant",
            Self::VpcepNotAuthorized => "vpcep_not_authorized",
            Self::IpNotTrusted => "ip_not_trusted",
            Self::RightNotGranted => "right_not_granted",
            Self::BadForwardingHeader => "bad_forwarding_header",
            Self::BadVpcepHeader => "bad_vpcep_header",
            Self::VpcepWrongTenant => "vpcep_wrong_tenant",
            Self::BadTenant => "bad_tenant",
            Self::TenantConflict => "tenant_conflict",
        }
    }
    /// The deny reasons, in label order.
    pub(super) fn denials() -> &'static [RequestReason] {
        &Self::ALL[1..]
    }
}

impl From<DenyReason> for RequestReason {
    fn from(r: DenyReason) -> Self {
        match r {
            DenyReason::VpcepNotAccepted => Self::VpcepNotAccepted,
            DenyReason::VpcepWrongTenant => Self::VpcepWrongTenant,
            DenyReason::TenantConflict => Self::TenantConflict,
            DenyReason::UnknownTenant => Self::UnknownTenant,
            DenyReason::VpcepNotAuthorized => Self::VpcepNotAuthorized,
            DenyReason::IpNotTrusted => Self::IpNotTrusted,
            DenyReason::RightNotGranted => Self::RightNotGranted,
        }
    }
}

/// `upstream_errors_total{kind}`
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpstreamErrorKind {
    Connect,
    Timeout,
    Protocol,
}

impl UpstreamErrorKind {
    /// Every value.
    pub const ALL: [UpstreamErrorKind; 3] = [Self::Connect, Self::Timeout, Self::Protocol];
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Timeout => "timeout",
            Self::Protocol => "protocol",
        }
    }
}

/// `connection_rejects_total{reason}`
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RejectReason {
    /// Malformed, missing (`required`), or from a peer not in `proxy_protocol_from`.
    ProxyHeader,
    /// TLS handshake failed.
    Tls,
    /// `limits.max_connections` reached.
    Limit,
    /// PROXY header or TLS handshake not done in time.
    Timeout,
}

impl RejectReason {
    /// Every value.
    pub const ALL: [RejectReason; 4] = [Self::ProxyHeader, Self::Tls, Self::Limit, Self::Timeout];
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ProxyHeader => "proxy_header",
            Self::Tls => "tls",
            Self::Limit => "limit",
            Self::Timeout => "timeout",
        }
    }
}

/// `config_reloads_total{file}`
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReloadFile {
    Config,
    Policy,
    Tls,
}

impl ReloadFile {
    /// Every value.
    pub const ALL: [ReloadFile; 3] = [Self::Config, Self::Policy, Self::Tls];
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Config => "config",
            Self::Policy => "policy",
            Self::Tls => "tls",
        }
    }
}

/// `policy_store_errors_total{op}`: which etcd call failed (docs/contract.md §9, §11).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreOp {
    /// The read of the prefix (or connecting for it).
    Range,
    /// The watch.
    Watch,
    /// A guarded write.
    Txn,
}

impl StoreOp {
    /// Every value.
    pub const ALL: [StoreOp; 3] = [Self::Range, Self::Watch, Self::Txn];
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Range => "range",
            Self::Watch => "watch",
            Self::Txn => "txn",
        }
    }
}

/// `request_rejects_total{reason}`: a request refused as malformed or ambiguous before it was
/// judged (docs/contract.md §4.0) — a protocol error, not an access decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestRejectReason {
    /// The path: a raw `\`, `%00`, a bad escape, an escaped slash under `reject`, a climb above
    /// the root, an ambiguous `..;` segment.
    Path,
    /// `Host` missing, repeated, or disagreeing with the target or `:authority`.
    Host,
    /// `CONNECT` or `TRACE`.
    Method,
    /// A `Transfer-Encoding` other than `chunked`.
    TransferCoding,
    /// A header name with `_` under `headers_with_underscores: reject`.
    Header,
}

impl RequestRejectReason {
    /// Every value.
    pub const ALL: [RequestRejectReason; 5] = [
        Self::Path,
        Self::Host,
        Self::Method,
        Self::TransferCoding,
        Self::Header,
    ];
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Path => "path",
            Self::Host => "host",
            Self::Method => "method",
            Self::TransferCoding => "transfer_coding",
            Self::Header => "header",
        }
    }
}

/// `admin_requests_total{route}`: the admin listener's routes (docs/contract.md §7), `other` for
/// any other path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdminRoute {
    Metrics,
    Healthz,
    Readyz,
    Status,
    Reload,
    Vpceps,
    VpcepsSettings,
    VpcepAuthorization,
    Connections,
    ConnectionsAction,
    TrustedIpAddresses,
    ProjectPermission,
    Other,
}

/// What a writing route of the REST API answers: success, a bad parameter (or quota), no token,
/// not found, a conflict (duplicate, or an invalid hand edit), a failed write.
const WRITE_STATUSES: &[&str] = &["200", "400", "401", "404", "409", "500"];

impl AdminRoute {
    /// Every value.
    pub const ALL: [AdminRoute; 13] = [
        Self::Metrics,
        Self::Healthz,
        Self::Readyz,
        Self::Status,
        Self::Reload,
        Self::Vpceps,
        Self::VpcepsSettings,
        Self::VpcepAuthorization,
        Self::Connections,
        Self::ConnectionsAction,
        Self::TrustedIpAddresses,
        Self::ProjectPermission,
        Self::Other,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Metrics => "metrics",
            Self::Healthz => "healthz",
            Self::Readyz => "readyz",
            Self::Status => "status",
            Self::Reload => "reload",
            Self::Vpceps => "vpceps",
            Self::VpcepsSettings => "vpceps_settings",
            Self::VpcepAuthorization => "vpcep_authorization",
            Self::Connections => "connections",
            Self::ConnectionsAction => "connections_action",
            Self::TrustedIpAddresses => "trusted_ip_addresses",
            Self::ProjectPermission => "project_permission",
            Self::Other => "other",
        }
    }

    /// The `status` values this route answers with a correct method: its success and the
    /// refusals its handler (and the token check) can give. `admin_requests_total` pre-creates
    /// exactly these (docs/contract.md §7 "a series for every route from the start"), so rates,
    /// error ratios and an alert on `increase(…{status="401"}[5m]) > 0` work before the first
    /// call. Statuses only a malformed call gets (405 wrong method, 413/415/422 from the body
    /// extractors, `other`) appear at first use, which keeps the set small.
    pub fn statuses(self) -> &'static [&'static str] {
        match self {
            Self::Metrics | Self::Healthz => &["200"],
            Self::Readyz => &["200", "503"],
            Self::Status => &["200", "401"],
            Self::Reload | Self::VpcepAuthorization => &["200", "400", "401"],
            Self::Connections => &["200", "400", "401", "404"],
            Self::Vpceps
            | Self::VpcepsSettings
            | Self::ConnectionsAction
            | Self::TrustedIpAddresses
            | Self::ProjectPermission => WRITE_STATUSES,
            // No token: 401 (the guard runs before routing); with one: 404.
            Self::Other => &["401", "404"],
        }
    }
}

/// `upstream_connections{state}`: whether an open upstream connection carries an exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpstreamConnState {
    /// Carrying a request or its response (every open `https://`/`h2c://`/upgrade connection
    /// counts here: hyper-util's pool does not say when its connections are idle).
    Active,
    /// Kept in the HTTP/1.1 pool for the next request.
    Idle,
}

impl UpstreamConnState {
    /// Every value.
    pub const ALL: [UpstreamConnState; 2] = [Self::Active, Self::Idle];
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Idle => "idle",
        }
    }
}

/// `stream_timeouts_total{side}`: whose silence ended an exchange after
/// `limits.stream_idle_timeout`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamSide {
    /// The client stopped sending its request body, or stopped reading the response.
    Client,
    /// The upstream stopped sending (its response head or body), or stopped reading the request.
    Upstream,
}

impl StreamSide {
    /// Every value.
    pub const ALL: [StreamSide; 2] = [Self::Client, Self::Upstream];
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Client => "client",
            Self::Upstream => "upstream",
        }
    }
}
