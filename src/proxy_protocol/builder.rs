//! Builders that produce PROXY protocol v1/v2 headers as bytes, for tests,
//! benches and tools (e.g. a client that talks through vpcguard as if it were a
//! cloud load balancer). The output follows the HAProxy spec unless a method
//! documented as "deliberately wrong" is used.
//!
//! Test-only: compiled for this crate's unit tests and, through the `test-util` feature (which
//! the crate's own dev-dependency on itself turns on), for `tests/` and `benches/`. It is not
//! part of the library a release build ships.

use std::net::{IpAddr, SocketAddr};

use super::{
    Command, PP2_SUBTYPE_SSL_VERSION, PP2_TYPE_AUTHORITY, PP2_TYPE_CRC32C, PP2_TYPE_NOOP,
    PP2_TYPE_SSL, PP2_TYPE_UNIQUE_ID, V2_SIGNATURE,
};

const CASTAGNOLI: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI);

/// Length of one AF_UNIX path field in a v2 address block (spec §2.2).
const UNIX_PATH_LEN: usize = 108;

/// A v1 line for a relayed TCP connection: `TCP4` when both addresses are IPv4,
/// else `TCP6` with any IPv4 address written IPv4-mapped (`::ffff:a.b.c.d`).
pub fn v1(src: SocketAddr, dst: SocketAddr) -> Vec<u8> {
    let (proto, s, d) = match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => ("TCP4", IpAddr::V4(s), IpAddr::V4(d)),
        (s, d) => ("TCP6", IpAddr::V6(to_v6(s)), IpAddr::V6(to_v6(d))),
    };
    format!("PROXY {proto} {s} {d} {} {}\r\n", src.port(), dst.port()).into_bytes()
}

/// The v1 line `PROXY UNKNOWN\r\n` (the receiver uses the socket's own addresses).
pub fn v1_unknown() -> Vec<u8> {
    b"PROXY UNKNOWN\r\n".to_vec()
}

fn to_v6(ip: IpAddr) -> std::net::Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

#[derive(Debug, Clone)]
enum Addresses {
    Unspec,
    Ip(SocketAddr, SocketAddr),
    Unix(Vec<u8>, Vec<u8>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CrcMode {
    Off,
    Correct,
    Corrupt,
}

/// Builder for a v2 header. TLVs are written in the order they were added; a
/// CRC32c TLV, if requested, is appended last.
#[derive(Debug, Clone)]
pub struct V2Builder {
    command: Command,
    addresses: Addresses,
    transport: u8,
    tlvs: Vec<(u8, Vec<u8>)>,
    crc: CrcMode,
    length_override: Option<u16>,
}

impl V2Builder {
    fn with(addresses: Addresses, transport: u8) -> Self {
        Self {
            command: Command::Proxy,
            addresses,
            transport,
            tlvs: Vec::new(),
            crc: CrcMode::Off,
            length_override: None,
        }
    }

    /// PROXY command over STREAM: AF_INET when both addresses are IPv4, else
    /// AF_INET6 with any IPv4 address IPv4-mapped.
    pub fn proxy(src: SocketAddr, dst: SocketAddr) -> Self {
        Self::with(Addresses::Ip(src, dst), 0x1)
    }

    /// PROXY command with AF_UNSPEC / UNSPEC and no address block.
    pub fn unspec() -> Self {
        Self::with(Addresses::Unspec, 0x0)
    }

    /// PROXY command with AF_UNIX over STREAM; paths are zero-padded (or cut) to 108 bytes.
    pub fn unix(src_path: &[u8], dst_path: &[u8]) -> Self {
        Self::with(Addresses::Unix(src_path.to_vec(), dst_path.to_vec()), 0x1)
    }

    /// Switch to the LOCAL command (the address block and TLVs are still written).
    pub fn local(mut self) -> Self {
        self.command = Command::Local;
        self
    }

    /// Use the DGRAM transport instead of STREAM.
    pub fn dgram(mut self) -> Self {
        self.transport = 0x2;
        self
    }

    /// Append a raw TLV. Values over 65535 bytes get a saturated (wrong) length.
    pub fn tlv(mut self, ty: u8, value: &[u8]) -> Self {
        self.tlvs.push((ty, value.to_vec()));
        self
    }

    /// Append a NOOP TLV with `len` zero bytes.
    pub fn noop(self, len: usize) -> Self {
        self.tlv(PP2_TYPE_NOOP, &vec![0; len])
    }

    /// Append an AUTHORITY (SNI) TLV.
    pub fn authority(self, host: &str) -> Self {
        self.tlv(PP2_TYPE_AUTHORITY, host.as_bytes())
    }

    /// Append a UNIQUE_ID TLV.
    pub fn unique_id(self, id: &[u8]) -> Self {
        self.tlv(PP2_TYPE_UNIQUE_ID, id)
    }

    /// Append an SSL TLV with `client` flags, `verify` result and an optional version sub-TLV.
    pub fn ssl(self, client: u8, verify: u32, version: Option<&str>) -> Self {
        let mut value = vec![client];
        value.extend_from_slice(&verify.to_be_bytes());
        if let Some(v) = version {
            push_tlv(&mut value, PP2_SUBTYPE_SSL_VERSION, v.as_bytes());
        }
        self.tlv(PP2_TYPE_SSL, &value)
    }

    /// Append the AWS PrivateLink TLV (0xEA, subtype 0x01, ASCII endpoint id).
    pub fn aws_vpce(self, vpce_id: &str) -> Self {
        let mut value = vec![0x01];
        value.extend_from_slice(vpce_id.as_bytes());
        self.tlv(0xEA, &value)
    }

    /// Append the Azure Private Link TLV (0xEE, subtype 0x01, LinkID u32 little-endian).
    pub fn azure_link_id(self, link_id: u32) -> Self {
        let mut value = vec![0x01];
        value.extend_from_slice(&link_id.to_le_bytes());
        self.tlv(0xEE, &value)
    }

    /// Append the GCP Private Service Connect TLV (0xE0, u64 big-endian).
    pub fn gcp_psc_id(self, psc_id: u64) -> Self {
        self.tlv(0xE0, &psc_id.to_be_bytes())
    }

    /// Append (`true`) or omit (`false`) a correct CRC32c TLV.
    pub fn crc32c(mut self, on: bool) -> Self {
        self.crc = if on { CrcMode::Correct } else { CrcMode::Off };
        self
    }

    /// Deliberately wrong: append a CRC32c TLV whose value does not match.
    pub fn corrupt_crc(mut self) -> Self {
        self.crc = CrcMode::Corrupt;
        self
    }

    /// Deliberately wrong (unless it matches): write `len` in the length field
    /// instead of the real length; the body is still written in full.
    pub fn length_override(mut self, len: u16) -> Self {
        self.length_override = Some(len);
        self
    }

    /// Produce the header bytes.
    pub fn build(&self) -> Vec<u8> {
        let (family, mut body) = match &self.addresses {
            Addresses::Unspec => (0x0, Vec::new()),
            Addresses::Ip(src, dst) => ip_block(*src, *dst),
            Addresses::Unix(src, dst) => {
                let mut body = vec![0; 2 * UNIX_PATH_LEN];
                for (path, at) in [(src, 0), (dst, UNIX_PATH_LEN)] {
                    for (slot, byte) in body
                        .iter_mut()
                        .skip(at)
                        .zip(path.iter().take(UNIX_PATH_LEN))
                    {
                        *slot = *byte;
                    }
                }
                (0x3, body)
            }
        };
        for (ty, value) in &self.tlvs {
            push_tlv(&mut body, *ty, value);
        }
        if self.crc != CrcMode::Off {
            push_tlv(&mut body, PP2_TYPE_CRC32C, &[0; 4]);
        }
        let command = match self.command {
            Command::Local => 0x0,
            Command::Proxy => 0x1,
        };
        let mut out = V2_SIGNATURE.to_vec();
        out.push(0x20 | command);
        out.push((family << 4) | self.transport);
        let real_len = u16::try_from(body.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&self.length_override.unwrap_or(real_len).to_be_bytes());
        out.extend_from_slice(&body);
        if self.crc != CrcMode::Off {
            let mut crc = CASTAGNOLI.checksum(&out);
            if self.crc == CrcMode::Corrupt {
                crc ^= 0xDEAD_BEEF;
            }
            let at = out.len() - 4;
            if let Some(slot) = out.get_mut(at..) {
                slot.copy_from_slice(&crc.to_be_bytes());
            }
        }
        out
    }
}

fn ip_block(src: SocketAddr, dst: SocketAddr) -> (u8, Vec<u8>) {
    let mut body = Vec::with_capacity(36);
    let family = match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            body.extend_from_slice(&s.octets());
            body.extend_from_slice(&d.octets());
            0x1
        }
        (s, d) => {
            body.extend_from_slice(&to_v6(s).octets());
            body.extend_from_slice(&to_v6(d).octets());
            0x2
        }
    };
    body.extend_from_slice(&src.port().to_be_bytes());
    body.extend_from_slice(&dst.port().to_be_bytes());
    (family, body)
}

fn push_tlv(out: &mut Vec<u8>, ty: u8, value: &[u8]) {
    out.push(ty);
    out.extend_from_slice(&u16::try_from(value.len()).unwrap_or(u16::MAX).to_be_bytes());
    out.extend_from_slice(value);
}
