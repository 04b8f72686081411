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
}

impl RequestReason {
    /// Every value; every one but `None` is a deny reason.
    pub const ALL: [RequestReason; 8] = [
        Self::None,
        Self::VpcepNotAccepted,
        Self::UnknownTenant,
        Self::VpcepNotAuthorized,
        Self::IpNotTrusted,
        Self::RightNotGranted,
        Self::BadForwardingHeader,
        Self::BadVpcepHeader,
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
