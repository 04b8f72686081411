//! The validated process configuration: what the code uses, as opposed to what users write
//! (`raw.rs`). Every value here has been checked by `validate.rs`, which converts `raw` into these
//! types and reports the field path and the YAML position of each problem. No I/O.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use http::HeaderName;
use http::uri::{Authority, Scheme};

use super::raw;
use crate::identity::canonical::PathRules;
use crate::identity::client_ip::{ClientIpConfig, NetList};
use crate::identity::routes::Routes;
use crate::identity::tenant::TenantRule;
use crate::proxy_protocol::TlvRule;

pub use raw::{LogFormat, Mode, ProxyProtocolMode, Role, TlsVersion, Underscores};

/// The whole validated configuration.
#[derive(Debug)]
pub struct Config {
    /// Directory that relative paths in the file are resolved against.
    pub base_dir: PathBuf,
    pub listen: Listen,
    pub admin: Admin,
    pub upstream: Upstream,
    pub client_ip: ClientIpConfig,
    pub vpcep: Vpcep,
    pub tenant: Vec<TenantRule>,
    pub policy: PolicySettings,
    pub routes: Routes,
    pub requests: Requests,
    /// Path answered by the proxy itself (docs/contract.md §7.1); `None` disables it.
    pub self_check_path: Option<String>,
    pub identity_headers: bool,
    pub limits: Limits,
    pub log: Log,
}

/// `requests:`: how a request is canonicalised before it is judged (docs/contract.md §4.0).
#[derive(Debug, Clone)]
pub struct Requests {
    /// `merge_slashes` and `escaped_slashes`.
    pub path: PathRules,
    /// `path_case: insensitive` (already applied to the route and tenant patterns).
    pub path_case_insensitive: bool,
    pub headers_with_underscores: Underscores,
    /// Lower-cased `Upgrade` protocol tokens passed through (default `websocket`).
    pub upgrades: Vec<String>,
}

/// `listen:`
#[derive(Debug)]
pub struct Listen {
    pub address: SocketAddr,
    pub tls: Option<TlsFiles>,
    pub proxy_protocol: ProxyProtocolMode,
    pub proxy_protocol_from: NetList,
    /// The `listen(2)` backlog (at least 1; the kernel caps it at `net.core.somaxconn`).
    pub backlog: u32,
}

/// `listen.tls:` with paths resolved.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub min_version: TlsVersion,
}

/// `admin:`
#[derive(Debug)]
pub struct Admin {
    pub address: SocketAddr,
    pub tokens: Vec<Token>,
}

/// One admin token: the sha256 of the secret, never the secret.
#[derive(Debug, Clone)]
pub struct Token {
    pub name: String,
    pub sha256: [u8; 32],
    pub role: Role,
}

/// Which protocol is spoken to the upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamProtocol {
    /// `http://`: HTTP/1.1.
    Http1,
    /// `h2c://`: HTTP/2 with prior knowledge, cleartext.
    H2c,
    /// `https://`: TLS, ALPN picks h2 or http/1.1.
    Https,
}

/// `upstream:`
#[derive(Debug, Clone)]
pub struct Upstream {
    pub protocol: UpstreamProtocol,
    /// The scheme used on the wire (`http` for h2c).
    pub scheme: Scheme,
    pub authority: Authority,
    pub connect_timeout: Duration,
    /// `None` = no limit.
    pub response_timeout: Option<Duration>,
    pub idle_timeout: Duration,
    /// Upstream connections open at once (at least 1); a request beyond waits up to
    /// `connect_timeout` for one, then gets 503 `VG.00050302`.
    pub max_connections: usize,
    pub preserve_host: bool,
    /// `upstream.tls` (only with `https://`): the CA bundle to trust instead of the webpki
    /// roots, and a client certificate; read by every load ([`crate::config::certs`]).
    pub tls: Option<ClientTlsFiles>,
}

/// The files `upstream.tls` names (CA, certificate, key), in that order.
pub fn upstream_tls_files(config: &Config) -> Vec<&std::path::Path> {
    let Some(t) = &config.upstream.tls else {
        return Vec::new();
    };
    [&t.ca, &t.cert, &t.key]
        .into_iter()
        .flatten()
        .map(PathBuf::as_path)
        .collect()
}

/// `vpcep:`
#[derive(Debug, Default)]
pub struct Vpcep {
    pub headers: Vec<HeaderName>,
    pub marker_headers: Vec<HeaderName>,
    pub tlv: Vec<TlvRule>,
}

/// `policy:`
#[derive(Debug, Clone)]
pub struct PolicySettings {
    /// Where the policy lives (docs/contract.md §11).
    pub store: Store,
    /// The policy file (`store: file`).
    pub path: PathBuf,
    pub unknown_tenant_allow: bool,
    pub mode: Mode,
}

/// `policy.store`: the policy file (the default) or etcd (docs/contract.md §11).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Store {
    /// `policy.path`, written back by the admin API.
    File,
    /// The keys under `policy.etcd.prefix`.
    Etcd(Box<EtcdSettings>),
}

/// `policy.etcd:`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdSettings {
    /// At least one `http://` or `https://` URL.
    pub endpoints: Vec<String>,
    /// Non-empty, ends with `/`.
    pub prefix: String,
    pub dial_timeout: Duration,
    pub request_timeout: Duration,
    /// The last applied policy, written atomically; `None` disables it.
    pub cache: Option<PathBuf>,
    pub tls: Option<ClientTlsFiles>,
    pub username: Option<String>,
    pub password_file: Option<PathBuf>,
}

/// `policy.etcd.tls` or `upstream.tls`, resolved against the config directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientTlsFiles {
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

/// `limits:`
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub tls_handshake_timeout: Duration,
    pub proxy_header_timeout: Duration,
    pub keepalive_timeout: Duration,
    pub max_header_bytes: u32,
    /// `None` = unlimited, streamed.
    pub max_body_bytes: Option<u64>,
    pub max_vpceps_per_tenant: usize,
    /// HTTP/2 streams per client connection (at least 1).
    pub max_concurrent_streams: u32,
    /// An exchange or a tunnel with no byte moving either way for this long is ended (not zero).
    pub stream_idle_timeout: Duration,
    pub shutdown_grace: Duration,
    /// Most `pendingAcceptance` connections the policy holds, counting markers on their way to the
    /// file (docs/contract.md §4 step 1); an unknown marker beyond it is denied but not recorded.
    pub max_pending_connections: usize,
}

/// `log:`
#[derive(Debug, Clone)]
pub struct Log {
    pub format: LogFormat,
    pub level: String,
    pub access_log: bool,
}

/// A validation failure: where, which field, what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// 1-based line and column; `None` when the value was defaulted.
    pub pos: Option<(u32, u32)>,
    /// Dotted field path, e.g. `listen.tls`.
    pub field: &'static str,
    pub message: String,
}
