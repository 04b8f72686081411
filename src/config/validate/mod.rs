//! Validation: `raw` (what users write) → `model` (what the code uses), one function per section,
//! each failure an [`Invalid`] with the dotted field path and the YAML position. No I/O (paths are
//! only joined to the config directory).

mod rules;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use http::HeaderName;
use http::uri::Scheme;
use serde_saphyr::{Location, Spanned};

use super::model::{
    Admin, ClientTlsFiles, Config, EtcdSettings, Invalid, Limits, Listen, Log, PolicySettings,
    Store, TlsFiles, TlsVersion, Token, Upstream, UpstreamProtocol, Vpcep,
};
use super::raw;
use crate::identity::client_ip::{ClientIpConfig, ForwardHeader, NetList};
use crate::identity::tenant::TenantRule;

use rules::{requests, routes, tenant, tlv_rule};

fn pos_of(loc: &Location) -> Option<(u32, u32)> {
    let num = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
    (loc.line() > 0).then(|| (num(loc.line()), num(loc.column())))
}

fn invalid<T>(
    loc: &Location,
    field: &'static str,
    message: impl Into<String>,
) -> Result<T, Invalid> {
    Err(Invalid {
        pos: pos_of(loc),
        field,
        message: message.into(),
    })
}

// === impl Config ===

impl Config {
    /// Validate a parsed file. `base_dir` is the config file's directory.
    pub fn from_raw(raw: raw::File, base_dir: &Path) -> Result<Config, Invalid> {
        let listen = listen(raw.listen, base_dir)?;
        let admin = admin(raw.admin)?;
        if admin.address == listen.address && listen.address.port() != 0 {
            return invalid(
                &Location::UNKNOWN,
                "admin.address",
                "admin.address must differ from listen.address (the admin API never shares the data-plane port)",
            );
        }
        let self_check_path = match raw.self_check_path {
            None => None,
            Some(p) if p.value.starts_with('/') => Some(p.value),
            Some(p) => {
                return invalid(&p.referenced, "self_check_path", "must start with '/'");
            }
        };
        let requests = requests(raw.requests)?;
        let fold = requests.path_case_insensitive;
        let tenant = tenant(raw.tenant)?
            .into_iter()
            .map(|rule| match rule {
                TenantRule::Path(p) => TenantRule::Path(p.fold_case(fold)),
                other => other,
            })
            .collect();
        Ok(Config {
            base_dir: base_dir.to_path_buf(),
            listen,
            admin,
            upstream: upstream(raw.upstream, base_dir)?,
            client_ip: client_ip(raw.client_ip)?,
            vpcep: vpcep(raw.vpcep)?,
            tenant,
            policy: policy(raw.policy, base_dir)?,
            routes: routes(raw.routes)?.fold_case(fold),
            requests,
            self_check_path,
            identity_headers: raw.identity_headers.unwrap_or(true),
            limits: limits(raw.limits)?,
            log: Log {
                format: raw.log.format.unwrap_or_default(),
                level: raw.log.level.unwrap_or_else(|| "info".to_owned()),
                access_log: raw.log.access_log.unwrap_or(true),
            },
        })
    }
}

fn listen(raw: raw::Listen, base: &Path) -> Result<Listen, Invalid> {
    let tls = match raw.tls {
        None => None,
        Some(t) => {
            let (cert, key) = match (t.value.cert, t.value.key) {
                (Some(c), Some(k)) => (c, k),
                (None, None) => ("tls/cert.pem".to_owned(), "tls/key.pem".to_owned()),
                _ => {
                    return invalid(
                        &t.referenced,
                        "listen.tls",
                        "set both cert and key, or neither (neither = tls/cert.pem and tls/key.pem)",
                    );
                }
            };
            Some(TlsFiles {
                cert: base.join(cert),
                key: base.join(key),
                min_version: t.value.min_version.unwrap_or(TlsVersion::V12),
            })
        }
    };
    let from = nets(raw.proxy_protocol_from, "listen.proxy_protocol_from")?;
    Ok(Listen {
        address: raw
            .address
            .map_or(SocketAddr::from(([0, 0, 0, 0], 8443)), |a| a.0),
        tls,
        proxy_protocol: raw.proxy_protocol.unwrap_or_default(),
        proxy_protocol_from: from,
        backlog: at_least_one(raw.backlog, 1024, "listen.backlog")?,
    })
}

fn nets(list: Option<Vec<Spanned<String>>>, field: &'static str) -> Result<NetList, Invalid> {
    let mut out = Vec::new();
    for item in list.unwrap_or_default() {
        let s = item.value.trim();
        let net = match s.parse::<ipnet::IpNet>() {
            Ok(n) => n,
            Err(_) => match s.parse::<IpAddr>() {
                Ok(ip) => ipnet::IpNet::from(ip),
                Err(_) => {
                    return invalid(
                        &item.referenced,
                        field,
                        format!("invalid CIDR {s:?}: expected e.g. \"10.0.0.0/8\" or \"::1/128\""),
                    );
                }
            },
        };
        if net.trunc() != net {
            return invalid(
                &item.referenced,
                field,
                format!("{s:?} has host bits set; did you mean \"{}\"?", net.trunc()),
            );
        }
        out.push(net);
    }
    Ok(out.into_iter().collect())
}

fn admin(raw: raw::Admin) -> Result<Admin, Invalid> {
    let mut tokens = Vec::new();
    for t in raw.tokens.unwrap_or_default() {
        let Some(sha256) = parse_sha256(&t.value.hash) else {
            return invalid(
                &t.referenced,
                "admin.tokens",
                "hash must be \"sha256:\" followed by 64 hex digits (see `vpcguard hash-token`)",
            );
        };
        tokens.push(Token {
            name: t.value.name,
            sha256,
            role: t.value.role,
        });
    }
    Ok(Admin {
        address: raw
            .address
            .map_or(SocketAddr::from((Ipv4Addr::LOCALHOST, 9901)), |a| a.0),
        tokens,
    })
}

fn parse_sha256(s: &str) -> Option<[u8; 32]> {
    let hexed = s.strip_prefix("sha256:")?;
    let bytes = hex::decode(hexed).ok()?;
    bytes.try_into().ok()
}

fn upstream(raw: raw::Upstream, base: &Path) -> Result<Upstream, Invalid> {
    let (url, loc) = match raw.url {
        Some(u) => (u.value, u.referenced),
        None => ("http://127.0.0.1:8080".to_owned(), Location::UNKNOWN),
    };
    let uri: http::Uri = match url.parse() {
        Ok(u) => u,
        Err(_) => return invalid(&loc, "upstream.url", format!("invalid URL {url:?}")),
    };
    let (protocol, scheme) = match uri.scheme_str() {
        Some("http") => (UpstreamProtocol::Http1, Scheme::HTTP),
        Some("https") => (UpstreamProtocol::Https, Scheme::HTTPS),
        Some("h2c") => (UpstreamProtocol::H2c, Scheme::HTTP),
        _ => {
            return invalid(
                &loc,
                "upstream.url",
                "scheme must be http://, https:// or h2c://",
            );
        }
    };
    let Some(authority) = uri.authority().cloned() else {
        return invalid(&loc, "upstream.url", "URL has no host");
    };
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return invalid(
            &loc,
            "upstream.url",
            "URL must not have a path or query: requests keep their own path",
        );
    }
    let tls = client_tls(raw.tls, base, "upstream.tls")?;
    if tls.is_some() && protocol != UpstreamProtocol::Https {
        return invalid(
            &loc,
            "upstream.tls",
            "applies only to an https:// upstream.url",
        );
    }
    let response_timeout = raw
        .response_timeout
        .map_or(Duration::from_secs(60), |d| d.0);
    Ok(Upstream {
        protocol,
        scheme,
        authority,
        connect_timeout: raw.connect_timeout.map_or(Duration::from_secs(2), |d| d.0),
        response_timeout: (!response_timeout.is_zero()).then_some(response_timeout),
        idle_timeout: raw.idle_timeout.map_or(Duration::from_secs(90), |d| d.0),
        max_connections: at_least_one(raw.max_connections, 1024, "upstream.max_connections")?,
        preserve_host: raw.preserve_host.unwrap_or(true),
        tls,
    })
}

fn header_names(
    list: Option<Vec<Spanned<String>>>,
    default: &[&'static str],
    field: &'static str,
) -> Result<Vec<HeaderName>, Invalid> {
    let Some(list) = list else {
        return Ok(default.iter().map(|h| HeaderName::from_static(h)).collect());
    };
    list.into_iter()
        .map(|h| {
            HeaderName::from_bytes(h.value.to_ascii_lowercase().as_bytes()).or_else(|_| {
                invalid(
                    &h.referenced,
                    field,
                    format!("{:?} is not a valid header name", h.value),
                )
            })
        })
        .collect()
}

fn client_ip(raw: raw::ClientIp) -> Result<ClientIpConfig, Invalid> {
    let trusted_proxies = nets(raw.trusted_proxies, "client_ip.trusted_proxies")?;
    let mut headers = Vec::new();
    let list = raw.headers.unwrap_or_else(|| {
        vec![Spanned {
            value: "x-forwarded-for".to_owned(),
            referenced: Location::UNKNOWN,
            defined: Location::UNKNOWN,
        }]
    });
    for h in list {
        match h.value.to_ascii_lowercase().parse::<ForwardHeader>() {
            Ok(fh) => headers.push(fh),
            Err(_) => {
                return invalid(
                    &h.referenced,
                    "client_ip.headers",
                    format!(
                        "{:?}: expected x-forwarded-for, forwarded or x-real-ip",
                        h.value
                    ),
                );
            }
        }
    }
    Ok(ClientIpConfig {
        trusted_proxies,
        headers,
    })
}

fn vpcep(raw: raw::Vpcep) -> Result<Vpcep, Invalid> {
    let mut tlv = Vec::new();
    let rules = raw.tlv.unwrap_or_else(|| {
        [raw::TlvKind::Aws, raw::TlvKind::Azure, raw::TlvKind::Gcp]
            .into_iter()
            .map(|kind| Spanned {
                value: raw::TlvRule {
                    kind,
                    tlv_type: None,
                    subtype: None,
                    encoding: None,
                    yields: None,
                },
                referenced: Location::UNKNOWN,
                defined: Location::UNKNOWN,
            })
            .collect()
    });
    for r in rules {
        tlv.push(tlv_rule(&r.value).or_else(|m| invalid(&r.referenced, "vpcep.tlv", m))?);
    }
    Ok(Vpcep {
        headers: header_names(raw.headers, &["x-vpcep-id"], "vpcep.headers")?,
        marker_headers: header_names(
            raw.marker_headers,
            &["x-vpcep-marker-id"],
            "vpcep.marker_headers",
        )?,
        tlv,
    })
}

fn policy(raw: raw::Policy, base: &Path) -> Result<PolicySettings, Invalid> {
    let store = match (raw.store.map(|s| (s.value, s.referenced)), raw.etcd) {
        (Some((raw::StoreKind::Etcd, at)), etcd) => {
            if !cfg!(feature = "etcd") {
                return invalid(
                    &at,
                    "policy.store",
                    "this build has no etcd store; use a build with the cargo feature `etcd` (the Docker image has it)",
                );
            }
            Store::Etcd(Box::new(etcd_settings(
                etcd.map(|e| e.value).unwrap_or_default(),
                base,
            )?))
        }
        (_, Some(etcd)) => {
            return invalid(
                &etcd.referenced,
                "policy.etcd",
                "only with `policy.store: etcd`",
            );
        }
        (_, None) => Store::File,
    };
    Ok(PolicySettings {
        store,
        path: base.join(raw.path.unwrap_or_else(|| "policy.yaml".to_owned())),
        unknown_tenant_allow: raw.unknown_tenant == Some(raw::UnknownTenant::Allow),
        mode: raw.mode.unwrap_or_default(),
    })
}

/// `policy.etcd` (docs/contract.md §2, §11).
fn etcd_settings(raw: raw::Etcd, base: &Path) -> Result<EtcdSettings, Invalid> {
    let endpoints = match raw.endpoints {
        None => vec!["http://127.0.0.1:2379".to_owned()],
        Some(list) => {
            let mut out = Vec::with_capacity(list.len());
            for e in list {
                let ok = ["http://", "https://"]
                    .iter()
                    .any(|s| e.value.len() > s.len() && e.value.starts_with(s));
                if !ok {
                    return invalid(
                        &e.referenced,
                        "policy.etcd.endpoints",
                        "each endpoint is an http:// or https:// URL",
                    );
                }
                out.push(e.value);
            }
            out
        }
    };
    if endpoints.is_empty() {
        return Err(Invalid {
            pos: None,
            field: "policy.etcd.endpoints",
            message: "name at least one endpoint".to_owned(),
        });
    }
    let prefix = match raw.prefix {
        None => "/vpcguard/".to_owned(),
        Some(p) if p.value.is_empty() || !p.value.ends_with('/') => {
            return invalid(
                &p.referenced,
                "policy.etcd.prefix",
                "must be non-empty and end with '/', e.g. \"/vpcguard/\"",
            );
        }
        Some(p) => p.value,
    };
    let tls = client_tls(raw.tls, base, "policy.etcd.tls")?;
    Ok(EtcdSettings {
        endpoints,
        prefix,
        dial_timeout: not_zero(
            raw.dial_timeout,
            Duration::from_secs(2),
            "policy.etcd.dial_timeout",
        )?,
        request_timeout: not_zero(
            raw.request_timeout,
            Duration::from_secs(5),
            "policy.etcd.request_timeout",
        )?,
        cache: match raw.cache {
            None => Some(base.join("policy.cache.yaml")),
            Some(None) => None,
            Some(Some(p)) => Some(base.join(p)),
        },
        tls,
        username: raw.username,
        password_file: raw.password_file.map(|p| base.join(p)),
    })
}

/// A client's `tls:` (`ca`, `cert`, `key`), paths resolved against `base`; cert and key both or
/// neither.
fn client_tls(
    raw: Option<raw::ClientTls>,
    base: &Path,
    field: &'static str,
) -> Result<Option<ClientTlsFiles>, Invalid> {
    let Some(t) = raw else { return Ok(None) };
    if t.cert.is_some() != t.key.is_some() {
        return Err(Invalid {
            pos: None,
            field,
            message: "give both cert and key, or neither".to_owned(),
        });
    }
    Ok(Some(ClientTlsFiles {
        ca: t.ca.map(|p| base.join(p)),
        cert: t.cert.map(|p| base.join(p)),
        key: t.key.map(|p| base.join(p)),
    }))
}

fn limits(raw: raw::Limits) -> Result<Limits, Invalid> {
    let secs = |d: Option<raw::Dur>, default: u64| d.map_or(Duration::from_secs(default), |d| d.0);
    let max_streams = raw.max_concurrent_streams;
    Ok(Limits {
        max_connections: raw.max_connections.unwrap_or(10_000),
        header_read_timeout: secs(raw.header_read_timeout, 10),
        tls_handshake_timeout: secs(raw.tls_handshake_timeout, 10),
        proxy_header_timeout: secs(raw.proxy_header_timeout, 5),
        keepalive_timeout: secs(raw.keepalive_timeout, 75),
        max_header_bytes: raw.max_header_bytes.unwrap_or(65_536),
        max_body_bytes: raw.max_body_bytes,
        max_vpceps_per_tenant: raw.max_vpceps_per_tenant.unwrap_or(100),
        max_concurrent_streams: at_least_one(max_streams, 100, "limits.max_concurrent_streams")?,
        stream_idle_timeout: not_zero(
            raw.stream_idle_timeout,
            Duration::from_secs(300),
            "limits.stream_idle_timeout",
        )?,
        shutdown_grace: secs(raw.shutdown_grace, 25),
        max_pending_connections: raw.max_pending_connections.unwrap_or(1000),
    })
}

/// A count where 0 makes no sense: `default` when absent, else at least 1.
fn at_least_one<T: Copy + PartialEq + From<u8>>(
    value: Option<Spanned<T>>,
    default: T,
    field: &'static str,
) -> Result<T, Invalid> {
    match value {
        None => Ok(default),
        Some(v) if v.value == T::from(0) => invalid(&v.referenced, field, "must be at least 1"),
        Some(v) => Ok(v.value),
    }
}

/// A duration where 0 makes no sense: `default` when absent, else more than zero.
fn not_zero(
    value: Option<Spanned<raw::Dur>>,
    default: Duration,
    field: &'static str,
) -> Result<Duration, Invalid> {
    match value {
        None => Ok(default),
        Some(v) if v.value.0.is_zero() => invalid(&v.referenced, field, "must be more than 0"),
        Some(v) => Ok(v.value.0),
    }
}
