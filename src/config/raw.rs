//! serde structs that mirror `vpcguard.yaml` (docs/contract.md §2) key for key. No logic beyond parsing scalar
//! syntax: every struct denies unknown fields, and scalar newtypes ([`Dur`], [`Addr`]) fail inside
//! deserialization so that serde-saphyr reports the error's line and column.
//!
//! Does not own validation across fields (see `model.rs`). No I/O.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;
use serde_saphyr::Spanned;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    #[serde(default)]
    pub listen: Listen,
    #[serde(default)]
    pub admin: Admin,
    #[serde(default)]
    pub upstream: Upstream,
    #[serde(default)]
    pub client_ip: ClientIp,
    #[serde(default)]
    pub vpcep: Vpcep,
    pub tenant: Option<Vec<Spanned<TenantRule>>>,
    #[serde(default)]
    pub policy: Policy,
    pub routes: Option<Vec<Spanned<Route>>>,
    #[serde(default)]
    pub requests: Requests,
    #[serde(default = "default_self_check_path")]
    pub self_check_path: Option<Spanned<String>>,
    pub identity_headers: Option<bool>,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub log: Log,
}

fn default_self_check_path() -> Option<Spanned<String>> {
    Some(Spanned {
        value: "/v1/vpcep-authorization".to_owned(),
        referenced: serde_saphyr::Location::UNKNOWN,
        defined: serde_saphyr::Location::UNKNOWN,
    })
}

/// `listen:`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listen {
    pub address: Option<Addr>,
    pub tls: Option<Spanned<Tls>>,
    pub proxy_protocol: Option<ProxyProtocolMode>,
    pub proxy_protocol_from: Option<Vec<Spanned<String>>>,
    pub backlog: Option<Spanned<u32>>,
}

/// `listen.tls:`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    pub cert: Option<String>,
    pub key: Option<String>,
    pub min_version: Option<TlsVersion>,
}

/// `listen.tls.min_version`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum TlsVersion {
    #[serde(rename = "1.2")]
    V12,
    #[serde(rename = "1.3")]
    V13,
}

/// `listen.proxy_protocol`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProxyProtocolMode {
    /// No PROXY header is read.
    #[default]
    Off,
    /// A header is read when present and the peer is allowed to send one.
    Optional,
    /// Every connection from an allowed peer must start with a header.
    Required,
}

/// `admin:`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Admin {
    pub address: Option<Addr>,
    pub tokens: Option<Vec<Spanned<Token>>>,
}

/// `admin.tokens[]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Token {
    pub name: String,
    pub hash: String,
    pub role: Role,
}

/// `admin.tokens[].role`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// GET only.
    Read,
    /// Everything.
    Write,
}

/// `upstream:`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Upstream {
    pub url: Option<Spanned<String>>,
    pub connect_timeout: Option<Dur>,
    pub response_timeout: Option<Dur>,
    pub idle_timeout: Option<Dur>,
    pub max_connections: Option<Spanned<usize>>,
    pub preserve_host: Option<bool>,
    pub tls: Option<ClientTls>,
}

/// `client_ip:`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientIp {
    pub trusted_proxies: Option<Vec<Spanned<String>>>,
    pub headers: Option<Vec<Spanned<String>>>,
}

/// `vpcep:`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Vpcep {
    pub headers: Option<Vec<Spanned<String>>>,
    pub marker_headers: Option<Vec<Spanned<String>>>,
    pub tlv: Option<Vec<Spanned<TlvRule>>>,
}

/// `vpcep.tlv[]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlvRule {
    pub kind: TlvKind,
    #[serde(rename = "type")]
    pub tlv_type: Option<u8>,
    pub subtype: Option<u8>,
    pub encoding: Option<TlvEncoding>,
    pub yields: Option<TlvYields>,
}

/// `vpcep.tlv[].kind`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlvKind {
    Aws,
    Azure,
    Gcp,
    Custom,
}

/// `vpcep.tlv[].encoding`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TlvEncoding {
    Ascii,
    U32Be,
    U32Le,
    U64Be,
    U64Le,
}

/// `vpcep.tlv[].yields`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TlvYields {
    VpcepId,
    Marker,
}

/// `tenant[]`: a one-key map.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TenantRule {
    Header(String),
    Host(String),
    Path(String),
    Static(String),
}

/// `policy:`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    pub store: Option<Spanned<StoreKind>>,
    pub path: Option<String>,
    pub etcd: Option<Spanned<Etcd>>,
    pub unknown_tenant: Option<UnknownTenant>,
    pub mode: Option<Mode>,
}

/// `policy.store`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    File,
    Etcd,
}

/// `policy.etcd:` (docs/contract.md §11)
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Etcd {
    pub endpoints: Option<Vec<Spanned<String>>>,
    pub prefix: Option<Spanned<String>>,
    pub dial_timeout: Option<Spanned<Dur>>,
    pub request_timeout: Option<Spanned<Dur>>,
    pub cache: Option<Option<String>>,
    pub tls: Option<ClientTls>,
    pub username: Option<String>,
    pub password_file: Option<String>,
}

/// `policy.etcd.tls:` and `upstream.tls:`: the CA to trust and an optional client certificate.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientTls {
    pub ca: Option<String>,
    pub cert: Option<String>,
    pub key: Option<String>,
}

/// `policy.unknown_tenant`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnknownTenant {
    Deny,
    Allow,
}

/// `policy.mode`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Denials are answered.
    #[default]
    Enforce,
    /// Denials are logged and counted as `report_deny`, and forwarded anyway.
    Report,
}

/// `routes[]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    pub path: Option<String>,
    pub methods: Option<Vec<String>>,
    pub right: String,
}

/// `requests:` (docs/contract.md §4.0)
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Requests {
    pub merge_slashes: Option<bool>,
    pub escaped_slashes: Option<EscapedSlashes>,
    pub path_case: Option<PathCase>,
    pub headers_with_underscores: Option<Underscores>,
    pub upgrades: Option<Vec<Spanned<String>>>,
}

/// `requests.escaped_slashes`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EscapedSlashes {
    /// 400 `VG.00040001`.
    #[default]
    Reject,
    /// `%2F` / `%5C` become `/`.
    Unescape,
    /// Kept as escapes.
    Keep,
}

/// `requests.path_case`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PathCase {
    /// Pattern literals compare byte for byte.
    #[default]
    Sensitive,
    /// Pattern literals compare ASCII case-insensitively.
    Insensitive,
}

/// `requests.headers_with_underscores`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Underscores {
    /// Removed from the request (nginx's `underscores_in_headers off`).
    #[default]
    Drop,
    /// 400 `VG.00040001`.
    Reject,
    /// Passed on.
    Allow,
}

/// `limits:`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    pub max_connections: Option<usize>,
    pub header_read_timeout: Option<Dur>,
    pub tls_handshake_timeout: Option<Dur>,
    pub proxy_header_timeout: Option<Dur>,
    pub keepalive_timeout: Option<Dur>,
    pub max_header_bytes: Option<u32>,
    pub max_body_bytes: Option<u64>,
    pub max_vpceps_per_tenant: Option<usize>,
    pub max_concurrent_streams: Option<Spanned<u32>>,
    pub stream_idle_timeout: Option<Spanned<Dur>>,
    pub shutdown_grace: Option<Dur>,
    pub max_pending_connections: Option<usize>,
}

/// `log:`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Log {
    pub format: Option<LogFormat>,
    pub level: Option<String>,
    pub access_log: Option<bool>,
}

/// `log.format`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object per line.
    #[default]
    Json,
    /// Human-readable lines.
    Text,
}

// === impl Dur ===

/// A duration written as `250ms`, `10s`, `2m`, `1h` (or `0`), at most 365 days. Parsed during
/// deserialization so a bad value is reported at its position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dur(pub Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_duration(&s)
            .map(Dur)
            .map_err(serde::de::Error::custom)
    }
}

/// The longest duration a config may give (docs/contract.md §2): 365 days. Longer ones are
/// rejected where they are written, rather than overflowing a deadline (`Instant + d` panics)
/// in a connection task later.
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

/// Parse `<digits><unit>` with unit `ms`, `s`, `m` or `h`; `0` alone is zero. At most
/// [`MAX_DURATION`]; a number too large for a `u64` is over it too.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    let (num, unit) = s.split_at(digits);
    let too_long = || format!("duration {s:?} is longer than the maximum of 365 days");
    if num.is_empty() {
        return Err(format!(
            "invalid duration {s:?}: expected e.g. \"250ms\", \"10s\", \"2m\""
        ));
    }
    let millis_per_unit: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => {
            return Err(format!(
                "invalid duration {s:?}: unit must be one of ms, s, m, h (e.g. \"10s\")"
            ));
        }
    };
    // Only digits remain, so the one way to fail is a number beyond u64.
    let n: u64 = num.parse().map_err(|_| too_long())?;
    let d = n
        .checked_mul(millis_per_unit)
        .map(Duration::from_millis)
        .ok_or_else(too_long)?;
    if d > MAX_DURATION {
        return Err(too_long());
    }
    Ok(d)
}

// === impl Addr ===

/// A socket address `ip:port` (IPv6 in brackets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Addr(pub SocketAddr);

impl<'de> Deserialize<'de> for Addr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map(Addr).map_err(|_| {
            serde::de::Error::custom(format!(
                "invalid address {s:?}: expected ip:port such as \"0.0.0.0:8443\" or \"[::]:8443\""
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_duration_cases() {
        const CASES: &[(&str, Option<u64>)] = &[
            ("0", Some(0)),
            ("250ms", Some(250)),
            ("10s", Some(10_000)),
            ("2m", Some(120_000)),
            ("1h", Some(3_600_000)),
            ("10", None),
            ("s", None),
            ("1.5s", None),
            ("-1s", None),
            ("10 s", None),
            ("", None),
            // docs/contract.md §2: at most 365 days, in any unit.
            ("8760h", Some(31_536_000_000)),
            ("525600m", Some(31_536_000_000)),
            ("31536000s", Some(31_536_000_000)),
            ("31536000000ms", Some(31_536_000_000)),
            ("8761h", None),
            ("525601m", None),
            ("31536001s", None),
            ("31536000001ms", None),
            ("99999999999999h", None),
            // Too many digits for the number itself.
            ("99999999999999999999999s", None),
        ];
        for (input, want) in CASES {
            let got = parse_duration(input)
                .ok()
                .map(|d| u64::try_from(d.as_millis()).unwrap());
            assert_eq!(got, *want, "case {input:?}");
        }
    }

    #[test]
    fn parse_duration_over_365_days_names_the_limit() {
        for input in ["8761h", "99999999999999h", "99999999999999999999999s"] {
            let err = parse_duration(input).unwrap_err();
            assert!(err.contains("365 days"), "case {input:?}: {err}");
        }
    }
}
