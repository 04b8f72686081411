//! PROXY protocol v1/v2 header parsing (HAProxy, "The PROXY protocol",
//! versions 1 & 2), including the vendor TLVs that cloud load balancers use to
//! say which VPC endpoint / Private Link / PSC connection a client came through.
//!
//! A wire format, and a leaf: it imports nothing else of the crate.
//!
//! **No I/O.** This module owns only the *decoding* of one header at the start of a byte
//! buffer. It keeps no state, allocates only for the decoded strings, and never panics on any
//! input. Reading the header off a socket is `proxy::conn`'s job.
//!
//! # I/O contract for the caller
//!
//! 1. Read bytes from the socket into a buffer and call [`parse`] with the
//!    whole buffer (the parser is stateless, so always pass it from byte 0).
//! 2. On [`Parsed::Incomplete`], read more and call again. `Incomplete` is
//!    never returned once the buffer holds [`MAX_HEADER_LEN`] bytes, so a
//!    buffer capped at that size can never stall (v1 errors at 107 bytes).
//! 3. On [`Parsed::Complete`] `{ len, .. }`, the first `len` bytes were the
//!    header; `buf[len..]` is the first application data (e.g. a TLS
//!    ClientHello) that the caller already read and must hand on unchanged.
//! 4. On `Err`, close the connection: spec §2 forbids guessing, so a bad header
//!    is never re-interpreted as application data.
//!
//! [`detect`] exists only for an operator-configured "optional" mode.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

#[cfg(any(test, feature = "test-util"))]
pub mod builder;
mod tlv;
use ProxyHeaderError as E;
pub use tlv::{EndpointTlv, SslInfo, TlvEncoding, TlvRule, Yields};

/// Hard cap on a whole header (v2: 16 fixed bytes + length field). Bigger -> [`ProxyHeaderError::Oversize`].
pub const MAX_HEADER_LEN: usize = 4096;
/// Longest v1 line a receiver must accept, CRLF included (spec §2.1).
pub const V1_MAX_LEN: usize = 107;
/// The 12-byte v2 signature (spec §2.2).
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// TLV type carrying the SNI / host name the client asked for (spec §2.2.1).
pub const PP2_TYPE_AUTHORITY: u8 = 0x02;
/// TLV type carrying a CRC32c of the whole header (spec §2.2.2).
pub const PP2_TYPE_CRC32C: u8 = 0x03;
/// TLV type that only pads; its value is ignored (spec §2.2.3).
pub const PP2_TYPE_NOOP: u8 = 0x04;
/// TLV type carrying an opaque connection id of at most 128 bytes (spec §2.2.4).
pub const PP2_TYPE_UNIQUE_ID: u8 = 0x05;
/// TLV type carrying TLS facts about the client connection (spec §2.2.5).
pub const PP2_TYPE_SSL: u8 = 0x20;
/// Sub-TLV of [`PP2_TYPE_SSL`] carrying the TLS version as US-ASCII (spec §2.2.5).
pub const PP2_SUBTYPE_SSL_VERSION: u8 = 0x21;
/// Maximum length of a [`PP2_TYPE_UNIQUE_ID`] value (spec §2.2.4).
pub const MAX_UNIQUE_ID_LEN: usize = 128;

const V1_PREFIX: &[u8] = b"PROXY ";
const V2_FIXED_LEN: usize = 16;

/// Outcome of a successful [`parse`] call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// Not enough bytes yet; read more (never returned once buf.len() >= the cap — then it's an error).
    Incomplete,
    /// A complete header; `len` bytes of `buf` belong to it; the rest is application data.
    Complete {
        /// The decoded header.
        header: ProxyHeader,
        /// How many bytes at the start of the buffer the header occupied.
        len: usize,
    },
}

/// What the start of a buffer looks like, see [`detect`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detect {
    /// Starts with `"PROXY "` (v1 text header).
    V1,
    /// Starts with the 12-byte [`V2_SIGNATURE`].
    V2,
    /// Cannot be a PROXY header; the bytes are application data.
    NotProxy,
    /// A strict prefix of a signature (or empty): read more before deciding.
    NeedMore,
}

/// The v2 command (spec §2.2, low nibble of byte 13).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Relayed connection: the addresses and TLVs describe the real client.
    Proxy,
    /// Connection made by the proxy itself (e.g. a health check), or v1
    /// `UNKNOWN`: the caller must use the socket's own addresses; no address,
    /// TLV or endpoint identity is reported.
    Local,
}

/// A decoded PROXY header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyHeader {
    /// 1 or 2.
    pub version: u8,
    /// [`Command::Local`] for v2 LOCAL and for v1 `UNKNOWN` (both mean "use the socket addresses").
    pub command: Command,
    /// Client address; `None` for LOCAL, AF_UNSPEC, AF_UNIX and v1 UNKNOWN.
    pub source: Option<SocketAddr>,
    /// Address the client connected to; `None` in the same cases as `source`.
    pub destination: Option<SocketAddr>,
    /// Value of the first [`PP2_TYPE_UNIQUE_ID`] TLV (at most 128 bytes).
    pub unique_id: Option<Vec<u8>>,
    /// Decoded first [`PP2_TYPE_SSL`] TLV.
    pub ssl: Option<SslInfo>,
    /// Value of the first [`PP2_TYPE_AUTHORITY`] TLV (usually the TLS SNI).
    pub authority: Option<String>,
    /// Identity from the first configured [`TlvRule`] that matched, in rule order.
    pub endpoint: Option<EndpointTlv>,
    /// True when a [`PP2_TYPE_CRC32C`] TLV was present and matched (a mismatch is an error).
    pub crc_verified: bool,
}

/// Why a header was rejected. Every variant means "close the connection".
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProxyHeaderError {
    /// The buffer starts with neither signature (only an error to a caller that required a header).
    #[error("no PROXY protocol signature")]
    NotProxy,
    /// The v2 length field announces more than [`MAX_HEADER_LEN`] bytes.
    #[error("PROXY header longer than {MAX_HEADER_LEN} bytes")]
    Oversize,
    /// No CRLF within the first 107 bytes of a v1 header (spec §2.1).
    #[error("PROXY v1 line not terminated by CRLF within 107 bytes")]
    V1MissingCrlf,
    /// v1 line structure is wrong: unknown protocol token, wrong field count or spacing.
    #[error("malformed PROXY v1 line")]
    V1Malformed,
    /// A v1 address is not a valid address of the announced family (TCP4/TCP6).
    #[error("invalid address in PROXY v1 line")]
    V1BadAddress,
    /// A v1 port is not decimal 0..=65535 without sign or leading zeros.
    #[error("invalid port in PROXY v1 line")]
    V1BadPort,
    /// v2 version nibble (high nibble of byte 12) is not 2.
    #[error("unsupported PROXY v2 version")]
    V2BadVersion,
    /// v2 command nibble is neither LOCAL (0) nor PROXY (1).
    #[error("unsupported PROXY v2 command")]
    V2BadCommand,
    /// v2 byte 13 has an unassigned address family or transport protocol.
    #[error("unsupported PROXY v2 address family or transport")]
    V2BadFamily,
    /// The v2 length field is smaller than the address block of the announced family.
    #[error("PROXY v2 address block shorter than its family needs")]
    V2AddressTooShort,
    /// A TLV runs past the header end, or a standard TLV has an invalid value
    /// (CRC length not 4, duplicate CRC, UNIQUE_ID over 128 bytes, non-UTF-8 AUTHORITY, bad SSL).
    #[error("malformed PROXY v2 TLV")]
    TlvMalformed,
    /// The CRC32c TLV does not match the header.
    #[error("PROXY v2 CRC32c mismatch")]
    CrcMismatch,
    /// A configured vendor TLV has the wrong length, encoding or charset (fail closed).
    #[error("invalid vendor endpoint TLV")]
    VendorTlvInvalid,
}

impl ProxyHeaderError {
    /// Short, stable snake_case name of the variant, for logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::NotProxy => "not_proxy",
            Self::Oversize => "oversize",
            Self::V1MissingCrlf => "v1_missing_crlf",
            Self::V1Malformed => "v1_malformed",
            Self::V1BadAddress => "v1_bad_address",
            Self::V1BadPort => "v1_bad_port",
            Self::V2BadVersion => "v2_bad_version",
            Self::V2BadCommand => "v2_bad_command",
            Self::V2BadFamily => "v2_bad_family",
            Self::V2AddressTooShort => "v2_address_too_short",
            Self::TlvMalformed => "tlv_malformed",
            Self::CrcMismatch => "crc_mismatch",
            Self::VendorTlvInvalid => "vendor_tlv_invalid",
        }
    }
}

/// Does `buf` start like a PROXY header? Only for operator-configured optional
/// mode (spec §2 says a receiver must not guess otherwise). Empty input and
/// strict prefixes of either signature are [`Detect::NeedMore`].
pub fn detect(buf: &[u8]) -> Detect {
    match (
        prefix_state(buf, &V2_SIGNATURE),
        prefix_state(buf, V1_PREFIX),
    ) {
        (Some(true), _) => Detect::V2,
        (_, Some(true)) => Detect::V1,
        (None, None) => Detect::NotProxy,
        _ => Detect::NeedMore,
    }
}

/// `None`: `buf` diverges from `sig`; `Some(full)`: agrees so far, `full` once all of `sig` is in.
fn prefix_state(buf: &[u8], sig: &[u8]) -> Option<bool> {
    let n = buf.len().min(sig.len());
    (buf.get(..n) == sig.get(..n)).then_some(buf.len() >= sig.len())
}

/// Parse a header at the start of `buf`. `rules` says which vendor TLVs carry the VPC endpoint identity.
///
/// Only `buf[..len]` is ever examined for a complete header, so the result for a
/// given header is the same whatever application bytes follow it.
pub fn parse(buf: &[u8], rules: &[TlvRule]) -> Result<Parsed, ProxyHeaderError> {
    match detect(buf) {
        Detect::NeedMore => Ok(Parsed::Incomplete),
        Detect::NotProxy => Err(E::NotProxy),
        Detect::V1 => parse_v1(buf),
        Detect::V2 => parse_v2(buf, rules),
    }
}

fn empty_header(version: u8, command: Command) -> ProxyHeader {
    ProxyHeader {
        version,
        command,
        source: None,
        destination: None,
        unique_id: None,
        ssl: None,
        authority: None,
        endpoint: None,
        crc_verified: false,
    }
}

fn parse_v1(buf: &[u8]) -> Result<Parsed, E> {
    // §2.1: the line is at most 107 bytes including CRLF, so the CRLF is only
    // searched there; past 107 bytes without one the header can never be valid.
    let window = buf.get(..buf.len().min(V1_MAX_LEN)).unwrap_or(buf);
    let Some(cr) = window.windows(2).position(|w| w == b"\r\n") else {
        return if buf.len() >= V1_MAX_LEN {
            Err(E::V1MissingCrlf)
        } else {
            Ok(Parsed::Incomplete)
        };
    };
    let len = cr + 2;
    let line = window.get(V1_PREFIX.len()..cr).ok_or(E::V1Malformed)?;
    // §2.1: fields are separated by exactly one space, so empty fields are errors.
    let mut fields = line.split(|&b| b == b' ');
    let v4 = match fields.next() {
        // §2.1: after UNKNOWN the receiver must ignore the rest of the line
        // and use the real connection endpoints.
        Some(b"UNKNOWN") => {
            return Ok(Parsed::Complete {
                header: empty_header(1, Command::Local),
                len,
            });
        }
        Some(b"TCP4") => true,
        Some(b"TCP6") => false,
        _ => return Err(E::V1Malformed),
    };
    let (Some(src), Some(dst), Some(sport), Some(dport), None) = (
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
    ) else {
        return Err(E::V1Malformed);
    };
    let (src, dst) = (v1_addr(src, v4)?, v1_addr(dst, v4)?);
    let (sport, dport) = (v1_port(sport)?, v1_port(dport)?);
    let mut header = empty_header(1, Command::Proxy);
    header.source = Some(SocketAddr::new(src, sport));
    header.destination = Some(SocketAddr::new(dst, dport));
    Ok(Parsed::Complete { header, len })
}

/// The address must belong to the family the protocol token announced (§2.1);
/// std's parsers reject IPv4 octets with leading zeros, as the spec asks.
fn v1_addr(token: &[u8], v4: bool) -> Result<IpAddr, E> {
    let text = std::str::from_utf8(token).map_err(|_| E::V1BadAddress)?;
    let ip = if v4 {
        text.parse::<Ipv4Addr>().map(IpAddr::V4)
    } else {
        text.parse::<Ipv6Addr>().map(IpAddr::V6)
    };
    ip.map_err(|_| E::V1BadAddress)
}

/// §2.1: decimal 0..=65535; leading zeros are forbidden (octal confusion), and
/// so is a sign, which `u16::from_str` would otherwise accept.
fn v1_port(token: &[u8]) -> Result<u16, E> {
    let digits_only = !token.is_empty() && token.iter().all(u8::is_ascii_digit);
    let leading_zero = token.len() > 1 && token.first() == Some(&b'0');
    if !digits_only || leading_zero || token.len() > 5 {
        return Err(E::V1BadPort);
    }
    std::str::from_utf8(token)
        .ok()
        .and_then(|t| t.parse().ok())
        .ok_or(E::V1BadPort)
}

/// Address family from the high nibble of v2 byte 13 (§2.2).
#[derive(Clone, Copy)]
enum Family {
    Unspec,
    Inet,
    Inet6,
    Unix,
}

impl Family {
    fn addr_len(self) -> usize {
        match self {
            Family::Unspec => 0,
            Family::Inet => 12,
            Family::Inet6 => 36,
            Family::Unix => 216,
        }
    }
}

fn parse_v2(buf: &[u8], rules: &[TlvRule]) -> Result<Parsed, E> {
    // Each fixed byte is checked as soon as it arrives so errors come early,
    // always in the same order, hence every prefix agrees on the error.
    let command = match buf.get(12) {
        None => return Ok(Parsed::Incomplete),
        // §2.2: the high nibble must be 2; other versions must be rejected.
        Some(&b) if b >> 4 != 2 => return Err(E::V2BadVersion),
        Some(&b) if b & 0x0F == 0 => Command::Local,
        Some(&b) if b & 0x0F == 1 => Command::Proxy,
        Some(_) => return Err(E::V2BadCommand),
    };
    let family = match buf.get(13) {
        None => return Ok(Parsed::Incomplete),
        // §2.2: unassigned values "must" make the receiver drop the connection.
        // Transport UNSPEC (0), STREAM (1) and DGRAM (2) are all accepted: the
        // addresses mean the same thing and the socket itself is always TCP.
        Some(&b) if b & 0x0F > 2 => return Err(E::V2BadFamily),
        Some(&b) => match b >> 4 {
            0 => Family::Unspec,
            1 => Family::Inet,
            2 => Family::Inet6,
            3 => Family::Unix,
            _ => return Err(E::V2BadFamily),
        },
    };
    let (Some(&hi), Some(&lo)) = (buf.get(14), buf.get(15)) else {
        return Ok(Parsed::Incomplete);
    };
    // Reject an oversize announcement immediately instead of buffering up to 64 KiB.
    let total = V2_FIXED_LEN + usize::from(u16::from_be_bytes([hi, lo]));
    if total > MAX_HEADER_LEN {
        return Err(E::Oversize);
    }
    let Some(header) = buf.get(..total) else {
        return Ok(Parsed::Incomplete);
    };
    if command == Command::Local {
        // §2.2: for LOCAL the receiver must use the real endpoints and discard
        // the whole protocol block, address and TLVs alike.
        return Ok(Parsed::Complete {
            header: empty_header(2, command),
            len: total,
        });
    }
    // §2.2 gives AF_UNSPEC an address block of length 0, so for PROXY + AF_UNSPEC everything
    // after the 16 fixed bytes is read as TLVs (and must be well-formed), as for the other
    // families after their addresses. `ppp` instead ignores that block as address data; the
    // oracle test (tests/proxy_protocol_oracle.rs) pins our reading.
    let tlv_start = V2_FIXED_LEN + family.addr_len();
    let addrs = header
        .get(V2_FIXED_LEN..tlv_start)
        .ok_or(E::V2AddressTooShort)?;
    let mut out = empty_header(2, command);
    (out.source, out.destination) = v2_addresses(family, addrs);
    tlv::decode_tlvs(header, tlv_start, &mut out, rules)?;
    Ok(Parsed::Complete {
        header: out,
        len: total,
    })
}

/// §2.2: addresses are in network byte order, sources before destinations,
/// addresses before ports. AF_UNSPEC and AF_UNIX yield no socket address.
fn v2_addresses(family: Family, a: &[u8]) -> (Option<SocketAddr>, Option<SocketAddr>) {
    let port = |at: usize| Some(u16::from_be_bytes([*a.get(at)?, *a.get(at + 1)?]));
    let v4 = |at: usize| Some(IpAddr::from(<[u8; 4]>::try_from(a.get(at..at + 4)?).ok()?));
    let v6 = |at: usize| {
        Some(IpAddr::from(
            <[u8; 16]>::try_from(a.get(at..at + 16)?).ok()?,
        ))
    };
    let (src, dst, ports) = match family {
        Family::Inet => (v4(0), v4(4), 8),
        Family::Inet6 => (v6(0), v6(16), 32),
        Family::Unspec | Family::Unix => return (None, None),
    };
    let sock = |ip: Option<IpAddr>, p: Option<u16>| Some(SocketAddr::new(ip?, p?));
    (sock(src, port(ports)), sock(dst, port(ports + 2)))
}

#[cfg(test)]
mod tests;
