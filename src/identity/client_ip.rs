//! Who is the client: the connection-level peer, or the address a trusted proxy put in a forwarding
//! header (docs/contract.md §2 `client_ip`, §4 "Client IP").
//!
//! Owns: the trusted-proxy set ([`NetList`]), the walk over `X-Forwarded-For` / `Forwarded` /
//! `X-Real-IP` hops, and the recorded [`ClientIpSource`]. Does not own: reading the PROXY header
//! (the caller passes its source as `peer`), deciding what a [`ForwardedError`] turns into on the
//! wire, or appending `X-Forwarded-For` upstream. No I/O.

mod parse;
#[cfg(test)]
mod tests;

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use http::HeaderMap;
use http::header::{FORWARDED, HeaderName};
use ipnet::{IpNet, Ipv4Net};

use self::parse::Hop;

/// The most hops read from one header (all its lines together). A longer chain is rejected
/// rather than walked, so a client cannot make us parse an unbounded list.
pub const MAX_HOPS: usize = 64;

/// A forwarding header the operator may list in `client_ip.headers` (docs/contract.md §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ForwardHeader {
    /// `X-Forwarded-For`: comma-separated addresses, the de-facto standard.
    XForwardedFor,
    /// `Forwarded` (RFC 7239): only the `for=` parameter is used.
    Forwarded,
    /// `X-Real-IP`: a single address (nginx).
    XRealIp,
}

/// Where the client address of a request came from. A bounded metric label (docs/design.md §2.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientIpSource {
    /// The TCP socket's peer address.
    Socket,
    /// The source address of a PROXY protocol header from a trusted load balancer.
    ProxyProtocol,
    /// An `X-Forwarded-For` hop.
    XForwardedFor,
    /// A `Forwarded` `for=` hop.
    Forwarded,
    /// The `X-Real-IP` header.
    XRealIp,
}

/// A small set of networks, e.g. `client_ip.trusted_proxies`.
///
/// IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) and networks are matched as IPv4 (docs/contract.md §3).
///
/// # Performance
/// A linear scan: meant for the handful of proxy CIDRs an operator lists, not for allowlists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetList(Vec<IpNet>);

/// A `client_ip.trusted_proxies` entry that is neither an address nor a CIDR.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid network {value:?}: expected an IP address or CIDR such as 10.0.0.0/8")]
pub struct InvalidNet {
    /// The rejected text.
    pub value: String,
}

/// A `client_ip.headers` entry that names no supported header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid forwarding header {value:?}: expected x-forwarded-for, forwarded or x-real-ip")]
pub struct InvalidForwardHeader {
    /// The rejected text.
    pub value: String,
}

/// The `client_ip` section of the config (docs/contract.md §2).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientIpConfig {
    /// Peers whose forwarding headers are believed; also the hops skipped while walking a chain.
    pub trusted_proxies: NetList,
    /// The headers to read, in order; the first that yields an address wins.
    pub headers: Vec<ForwardHeader>,
}

/// The resolved client address and where it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp {
    /// The client address, IPv4-mapped IPv6 normalised to IPv4.
    pub addr: IpAddr,
    /// Which input supplied `addr`.
    pub source: ClientIpSource,
}

/// Why a trusted peer's forwarding header could not name the client. Every variant fails closed:
/// the client is unknown, so the caller must not fall back to the peer.
///
/// docs/contract.md §5 has no error code for these; the caller maps them (400, or a deny) and counts them by
/// [`ForwardedError::reason`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ForwardedError {
    /// An `X-Forwarded-For` element is not an address (or the value is not visible ASCII).
    #[error("malformed X-Forwarded-For header")]
    MalformedXForwardedFor,
    /// A `Forwarded` value breaks RFC 7239 syntax.
    #[error("malformed Forwarded header")]
    MalformedForwarded,
    /// `X-Real-IP` is not exactly one address.
    #[error("malformed X-Real-IP header")]
    MalformedXRealIp,
    /// The first untrusted hop is `unknown`, obfuscated (`_hidden`) or a `Forwarded` element
    /// without `for=`: the chain names no address for the client.
    #[error("the first untrusted forwarding hop does not name an address")]
    UnidentifiableClient,
    /// The header carries more than `limit` hops.
    #[error("forwarding header has more than {limit} hops")]
    TooManyHops {
        /// The cap, [`MAX_HOPS`].
        limit: usize,
    },
}

/// Work out the client address of a request (docs/contract.md §4 "Client IP").
///
/// `peer` is the connection-level address: the socket peer, or the PROXY header source when the
/// load balancer is trusted, with `peer_source` [`ClientIpSource::Socket`] or
/// [`ClientIpSource::ProxyProtocol`].
///
/// 1. `peer` is normalised (`IpAddr::to_canonical`). When it is not in `trusted_proxies`, it is the client
///    and the headers are not looked at at all (they may be spoofed).
/// 2. Otherwise each configured header is tried in order. All lines of a repeated header are
///    merged in order, as if comma-joined. The hops are walked right to left, skipping trusted
///    addresses; the first untrusted one is the client. When every hop is trusted, the left-most
///    one is the client (nginx `real_ip_recursive on`).
/// 3. A header that is absent, or lists no hops, does not yield; the next one is tried. When none
///    yields, `peer` is the client.
///
/// A malformed value anywhere in the chosen header's list is an error even if the walk would stop
/// before it: a trusted proxy never sends one, so the chain cannot be believed.
///
/// # Performance
/// At most [`MAX_HOPS`] hops are parsed per header; one small allocation per header read.
pub fn resolve_client_ip(
    cfg: &ClientIpConfig,
    peer: IpAddr,
    peer_source: ClientIpSource,
    headers: &HeaderMap,
) -> Result<ClientIp, ForwardedError> {
    // Dual-stack sockets report IPv4 clients IPv4-mapped; docs/contract.md §3 matches them as IPv4.
    let peer = peer.to_canonical();
    if !cfg.trusted_proxies.contains(peer) {
        return Ok(ClientIp {
            addr: peer,
            source: peer_source,
        });
    }
    for &header in &cfg.headers {
        let hops = parse::hops(header, headers)?;
        if let Some(addr) = walk(&hops, &cfg.trusted_proxies)? {
            return Ok(ClientIp {
                addr,
                source: header.source(),
            });
        }
    }
    Ok(ClientIp {
        addr: peer,
        source: peer_source,
    })
}

/// Walk hops right to left; `None` only for an empty list.
fn walk(hops: &[Hop], trusted: &NetList) -> Result<Option<IpAddr>, ForwardedError> {
    for hop in hops.iter().rev() {
        match *hop {
            Hop::Addr(addr) if trusted.contains(addr) => continue,
            Hop::Addr(addr) => return Ok(Some(addr)),
            // Why: an unknown hop past our trusted proxies hides the client; guessing a
            // neighbour would let an attacker pick the address we judge (fail closed).
            Hop::Unknown => return Err(ForwardedError::UnidentifiableClient),
        }
    }
    // Every hop is trusted: the left-most is the client (`real_ip_recursive on`). Unknown hops
    // returned above, so the first hop, if any, is an address.
    Ok(hops.first().and_then(|hop| match *hop {
        Hop::Addr(addr) => Some(addr),
        Hop::Unknown => None,
    }))
}

// === impl ForwardHeader ===

impl ForwardHeader {
    /// The header name, lowercase.
    pub fn name(self) -> HeaderName {
        match self {
            Self::XForwardedFor => HeaderName::from_static("x-forwarded-for"),
            Self::Forwarded => FORWARDED,
            Self::XRealIp => HeaderName::from_static("x-real-ip"),
        }
    }

    /// The config spelling, as accepted by [`FromStr`].
    pub fn as_str(self) -> &'static str {
        match self {
            Self::XForwardedFor => "x-forwarded-for",
            Self::Forwarded => "forwarded",
            Self::XRealIp => "x-real-ip",
        }
    }

    /// The [`ClientIpSource`] recorded for an address taken from this header.
    pub fn source(self) -> ClientIpSource {
        match self {
            Self::XForwardedFor => ClientIpSource::XForwardedFor,
            Self::Forwarded => ClientIpSource::Forwarded,
            Self::XRealIp => ClientIpSource::XRealIp,
        }
    }
}

impl FromStr for ForwardHeader {
    type Err = InvalidForwardHeader;

    /// Parse a config spelling; ASCII case-insensitive like header names.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Self::XForwardedFor, Self::Forwarded, Self::XRealIp]
            .into_iter()
            .find(|h| h.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| InvalidForwardHeader {
                value: s.to_owned(),
            })
    }
}

impl fmt::Display for ForwardHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// === impl ClientIpSource ===

impl ClientIpSource {
    /// The stable snake_case label used in metrics and logs.
    pub fn as_label(self) -> &'static str {
        match self {
            Self::Socket => "socket",
            Self::ProxyProtocol => "proxy_protocol",
            Self::XForwardedFor => "x_forwarded_for",
            Self::Forwarded => "forwarded",
            Self::XRealIp => "x_real_ip",
        }
    }
}

// === impl ForwardedError ===

impl ForwardedError {
    /// The stable snake_case reason used in metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::MalformedXForwardedFor => "malformed_x_forwarded_for",
            Self::MalformedForwarded => "malformed_forwarded",
            Self::MalformedXRealIp => "malformed_x_real_ip",
            Self::UnidentifiableClient => "unidentifiable_client",
            Self::TooManyHops { .. } => "too_many_hops",
        }
    }
}

// === impl NetList ===

impl NetList {
    /// An empty list: nothing is trusted.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parse entries that are each an address (a /32 or /128) or a CIDR.
    ///
    /// Host bits are cleared (`10.1.2.3/8` is `10.0.0.0/8`), as ipnet's `trunc` does.
    pub fn parse<I, S>(entries: I) -> Result<Self, InvalidNet>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        entries.into_iter().map(|s| parse_net(s.as_ref())).collect()
    }

    /// Whether `ip` (normalised first) is inside any network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The networks, normalised.
    pub fn as_slice(&self) -> &[IpNet] {
        &self.0
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromIterator<IpNet> for NetList {
    /// Collect networks, normalising IPv4-mapped IPv6 ones (`::ffff:10.0.0.0/104` → `10.0.0.0/8`).
    fn from_iter<T: IntoIterator<Item = IpNet>>(iter: T) -> Self {
        Self(iter.into_iter().map(normalize_net).collect())
    }
}

impl FromStr for NetList {
    type Err = InvalidNet;

    /// Parse a comma-separated list, e.g. `"10.0.0.0/8, 192.0.2.1"`; empty text is an empty list.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        NetList::parse(s.split(',').map(str::trim).filter(|e| !e.is_empty()))
    }
}

fn parse_net(s: &str) -> Result<IpNet, InvalidNet> {
    let invalid = || InvalidNet {
        value: s.to_owned(),
    };
    let net = match s.parse::<IpNet>() {
        Ok(net) => net.trunc(),
        Err(_) => IpNet::from(s.parse::<IpAddr>().map_err(|_| invalid())?),
    };
    Ok(normalize_net(net))
}

/// `::ffff:a.b.c.d/p` with `p >= 96` is the IPv4 network `a.b.c.d/(p-96)`: every address in it
/// shares the mapped /96 prefix.
fn normalize_net(net: IpNet) -> IpNet {
    let IpNet::V6(v6) = net else { return net };
    match v6.network().to_ipv4_mapped() {
        Some(v4) if v6.prefix_len() >= 96 => Ipv4Net::new(v4, v6.prefix_len() - 96)
            .map(IpNet::V4)
            .unwrap_or(net),
        _ => net,
    }
}
