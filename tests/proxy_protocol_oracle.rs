//! The `ppp` crate (an independent PROXY protocol v1/v2 implementation) as an oracle for our
//! parser, in three directions:
//!
//! 1. headers built by `ppp` (v1 TCP4/TCP6/UNKNOWN, v2 PROXY/LOCAL over IPv4/IPv6/unix/unspec,
//!    random standard, cloud and custom TLVs, CRC32c sometimes) parse with ours to exactly what
//!    was encoded;
//! 2. headers built by our test builder (`pp_builder`) parse with `ppp` to what was asked for;
//! 3. for arbitrary and mutated byte strings both parsers agree on accept vs reject, and on the
//!    decoded values when both accept.
//!
//! In direction 3 the whole buffer is taken as everything the peer ever sent, so "incomplete"
//! counts as a rejection on both sides. Differences that are deliberate are listed once, in
//! [`ppp_outcome`] (ours stricter, each with the error we must give) and [`ppp_deviation`]
//! (ppp stricter than the spec where we follow it); anything else fails the test. One reading
//! of `ppp`'s is replaced by ours where the spec is silent: the block after AF_UNSPEC holds TLVs
//! ([`tlv_region`]). Direction 3 parses without vendor rules (their fail-closed decoding is
//! our own policy, which direction 1 covers with valid vendor TLVs).
#![allow(clippy::unwrap_used, clippy::expect_used)]

// The parser's path is in this one line (it is moving to `vpcguard::proxy_protocol`).
use vpcguard::proxy_protocol as pp;
// Our test builder (beside the parser today; if it moves with it, this line too), used only for
// direction 2 and as extra seeds for direction 3.
use vpcguard::proxy_protocol::builder as ppb;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use pp::{Command, EndpointTlv, Parsed, ProxyHeader, ProxyHeaderError as E, SslInfo, TlvRule};
use ppp::v2::{self as p2, WriteToHeader};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;

/// Cases per property. The arbitrary-input property gets more: most of its inputs are rejected
/// early, so each case is cheap and the interesting ones are rarer.
const CASES: u32 = 1024;
const ARBITRARY_CASES: u32 = 8192;

/// A custom rule as an operator would configure one (`kind: custom, type: 0xE2, u64_le, marker`).
const CUSTOM_E2: TlvRule = TlvRule {
    tlv_type: 0xE2,
    subtype: None,
    encoding: pp::TlvEncoding::U64Le,
    yields: pp::Yields::Marker,
};
/// The rules for direction 1: every cloud TLV the project parses, plus a custom one.
const RULES: &[TlvRule] = &[TlvRule::aws(), TlvRule::azure(), TlvRule::gcp(), CUSTOM_E2];

/// TLV types our parser interprets (standard ones it validates, and the rule types above);
/// random "custom" TLVs avoid them so that they must be ignored.
const INTERPRETED: &[u8] = &[0x02, 0x03, 0x05, 0x20, 0xEA, 0xEE, 0xE0, 0xE2];

/// CRC-32C (Castagnoli, reflected 0x82F63B78), written here bit by bit so that the checksum the
/// oracle side computes shares no code with ours.
fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// CRC32c of a whole v2 header whose CRC value (4 bytes) starts at `at`, taken as zero (§2.2.2).
fn crc_with_zeroed(header: &[u8], at: usize) -> u32 {
    let mut copy = header.to_vec();
    copy[at..at + 4].fill(0);
    crc32c(&copy)
}

fn parse_ours(buf: &[u8], rules: &[TlvRule]) -> Result<Parsed, E> {
    pp::parse(buf, rules)
}

fn empty(version: u8, command: Command) -> ProxyHeader {
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

// ---------------------------------------------------------------------------------------------
// Generators
// ---------------------------------------------------------------------------------------------

/// Address block of a v2 header.
#[derive(Debug, Clone)]
enum Addrs {
    V4(SocketAddr, SocketAddr),
    V6(SocketAddr, SocketAddr),
    /// Paths of at most 108 bytes (zero-padded on the wire).
    Unix(Vec<u8>, Vec<u8>),
    Unspec,
}

fn v4() -> impl Strategy<Value = SocketAddr> {
    (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, port)| SocketAddr::from((ip, port)))
}

fn v6() -> impl Strategy<Value = SocketAddr> {
    let ip = prop_oneof![
        any::<[u8; 16]>().prop_map(Ipv6Addr::from),
        any::<[u8; 4]>().prop_map(|o| Ipv4Addr::from(o).to_ipv6_mapped()),
        Just(Ipv6Addr::LOCALHOST),
        Just(Ipv6Addr::UNSPECIFIED),
    ];
    (ip, any::<u16>()).prop_map(|(ip, port)| SocketAddr::new(IpAddr::V6(ip), port))
}

fn unix_path() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        vec(1u8..=255, 0..=108),
        "/[a-z/]{0,40}\\.sock".prop_map(String::into_bytes),
    ]
}

fn addrs() -> impl Strategy<Value = Addrs> {
    prop_oneof![
        3 => (v4(), v4()).prop_map(|(s, d)| Addrs::V4(s, d)),
        3 => (v6(), v6()).prop_map(|(s, d)| Addrs::V6(s, d)),
        1 => (unix_path(), unix_path()).prop_map(|(s, d)| Addrs::Unix(s, d)),
        1 => Just(Addrs::Unspec),
    ]
}

fn pad108(path: &[u8]) -> [u8; 108] {
    let mut out = [0u8; 108];
    out[..path.len()].copy_from_slice(path);
    out
}

impl Addrs {
    fn to_ppp(&self) -> p2::Addresses {
        match self {
            Addrs::V4(s, d) | Addrs::V6(s, d) => p2::Addresses::from((*s, *d)),
            Addrs::Unix(s, d) => p2::Unix::new(pad108(s), pad108(d)).into(),
            Addrs::Unspec => p2::Addresses::Unspecified,
        }
    }

    /// What our parser reports: socket addresses for INET/INET6, none for unix and unspec.
    fn sockets(&self) -> (Option<SocketAddr>, Option<SocketAddr>) {
        match self {
            Addrs::V4(s, d) | Addrs::V6(s, d) => (Some(*s), Some(*d)),
            Addrs::Unix(..) | Addrs::Unspec => (None, None),
        }
    }

    fn block_len(&self) -> usize {
        match self {
            Addrs::V4(..) => 12,
            Addrs::V6(..) => 36,
            Addrs::Unix(..) => 216,
            Addrs::Unspec => 0,
        }
    }
}

/// One TLV of a generated header, as a meaning; [`Tlv::encode`] gives its type and value.
#[derive(Debug, Clone)]
enum Tlv {
    Authority(String),
    UniqueId(Vec<u8>),
    Ssl {
        client: u8,
        verify: u32,
        version: Option<String>,
        /// Other sub-TLVs (CN, cipher, sig/key alg: 0x22..=0x25), the version slotted in at `at`.
        others: Vec<(u8, Vec<u8>)>,
        at: Index,
    },
    Noop(Vec<u8>),
    /// AWS 0xEA subtype 0x01, a `vpce-…` id.
    Aws(String),
    /// Azure 0xEE subtype 0x01, LinkID u32 LE.
    Azure(u32),
    /// GCP 0xE0, PSC connection id u64 BE.
    Gcp(u64),
    /// The custom rule 0xE2, u64 LE.
    CustomE2(u64),
    /// A vendor type we parse, with another subtype: must be skipped, not rejected.
    OtherSubtype(u8, u8, Vec<u8>),
    /// Any type we do not interpret (ALPN, NETNS, other vendors…).
    Custom(u8, Vec<u8>),
}

impl Tlv {
    fn encode(&self) -> (u8, Vec<u8>) {
        match self {
            Tlv::Authority(s) => (0x02, s.as_bytes().to_vec()),
            Tlv::UniqueId(id) => (0x05, id.clone()),
            Tlv::Ssl {
                client,
                verify,
                version,
                others,
                at,
            } => {
                let mut subs: Vec<Vec<u8>> = others
                    .iter()
                    .map(|(t, v)| p2::TypeLengthValue::new(*t, v).to_bytes().unwrap())
                    .collect();
                if let Some(v) = version {
                    let sub = p2::TypeLengthValue::new(p2::Type::SSLVersion, v.as_bytes());
                    subs.insert(at.index(subs.len() + 1), sub.to_bytes().unwrap());
                }
                let mut value = vec![*client];
                value.extend_from_slice(&verify.to_be_bytes());
                value.extend(subs.concat());
                (0x20, value)
            }
            Tlv::Noop(v) => (0x04, v.clone()),
            Tlv::Aws(id) => (0xEA, [&[0x01], id.as_bytes()].concat()),
            Tlv::Azure(id) => (0xEE, [&[0x01][..], &id.to_le_bytes()].concat()),
            Tlv::Gcp(id) => (0xE0, id.to_be_bytes().to_vec()),
            Tlv::CustomE2(id) => (0xE2, id.to_le_bytes().to_vec()),
            Tlv::OtherSubtype(ty, sub, v) => (*ty, [&[*sub][..], v].concat()),
            Tlv::Custom(ty, v) => (*ty, v.clone()),
        }
    }
}

fn tlv() -> impl Strategy<Value = Tlv> {
    let bytes = |n| vec(any::<u8>(), 0..n);
    prop_oneof![
        "\\PC{0,20}".prop_map(Tlv::Authority),
        vec(any::<u8>(), 0..=128).prop_map(Tlv::UniqueId),
        (
            any::<u8>(),
            any::<u32>(),
            proptest::option::of("[ -~]{0,12}"),
            vec((0x22u8..=0x25, bytes(8)), 0..3),
            any::<Index>(),
        )
            .prop_map(|(client, verify, version, others, at)| Tlv::Ssl {
                client,
                verify,
                version,
                others,
                at
            }),
        bytes(16).prop_map(Tlv::Noop),
        prop_oneof!["vpce-[0-9a-f]{1,17}", "[A-Za-z0-9-]{1,64}"].prop_map(Tlv::Aws),
        any::<u32>().prop_map(Tlv::Azure),
        any::<u64>().prop_map(Tlv::Gcp),
        any::<u64>().prop_map(Tlv::CustomE2),
        (
            prop_oneof![Just(0xEAu8), Just(0xEE)],
            any::<u8>().prop_filter("another subtype", |s| *s != 0x01),
            bytes(12)
        )
            .prop_map(|(t, s, v)| Tlv::OtherSubtype(t, s, v)),
        (
            any::<u8>().prop_filter("not interpreted", |t| !INTERPRETED.contains(t)),
            bytes(24)
        )
            .prop_map(|(t, v)| Tlv::Custom(t, v)),
    ]
}

/// A v2 header as a meaning, to be built by `ppp`.
#[derive(Debug, Clone)]
struct GenV2 {
    proxy: bool,
    protocol: p2::Protocol,
    addrs: Addrs,
    tlvs: Vec<Tlv>,
    /// Where a CRC32c TLV goes among the others, if there is one.
    crc_at: Option<Index>,
}

fn gen_v2() -> impl Strategy<Value = GenV2> {
    let protocol = prop_oneof![
        Just(p2::Protocol::Stream),
        Just(p2::Protocol::Datagram),
        Just(p2::Protocol::Unspecified),
    ];
    (
        prop::bool::weighted(0.85),
        protocol,
        addrs(),
        vec(tlv(), 0..7),
        proptest::option::of(any::<Index>()),
    )
        .prop_map(|(proxy, protocol, addrs, tlvs, crc_at)| GenV2 {
            proxy,
            protocol,
            addrs,
            tlvs,
            crc_at,
        })
}

impl GenV2 {
    /// The TLVs in wire order, the CRC (zeroed) included; and the index of the CRC TLV.
    fn wire_tlvs(&self) -> (Vec<(u8, Vec<u8>)>, Option<usize>) {
        let mut out: Vec<(u8, Vec<u8>)> = self.tlvs.iter().map(Tlv::encode).collect();
        let crc = self.crc_at.map(|at| at.index(out.len() + 1));
        if let Some(i) = crc {
            out.insert(i, (0x03, vec![0; 4]));
        }
        (out, crc)
    }

    /// The header bytes, from `ppp`'s builder; the CRC value is filled in afterwards.
    fn build_with_ppp(&self) -> Vec<u8> {
        let command = if self.proxy {
            p2::Command::Proxy
        } else {
            p2::Command::Local
        };
        let mut builder = p2::Builder::with_addresses(
            p2::Version::Two | command,
            self.protocol,
            self.addrs.to_ppp(),
        );
        let (tlvs, crc) = self.wire_tlvs();
        for (ty, value) in &tlvs {
            builder = builder.write_tlv(*ty, value).unwrap();
        }
        let mut bytes = builder.build().unwrap();
        if let Some(i) = crc {
            let before: usize = tlvs[..i].iter().map(|(_, v)| 3 + v.len()).sum();
            let at = 16 + self.addrs.block_len() + before + 3;
            let sum = crc_with_zeroed(&bytes, at);
            bytes[at..at + 4].copy_from_slice(&sum.to_be_bytes());
        }
        bytes
    }

    /// What our parser must report for this header with [`RULES`].
    fn expected(&self) -> ProxyHeader {
        if !self.proxy {
            // §2.2: LOCAL discards the whole block, addresses and TLVs alike.
            return empty(2, Command::Local);
        }
        let mut h = empty(2, Command::Proxy);
        (h.source, h.destination) = self.addrs.sockets();
        h.authority = self.tlvs.iter().find_map(|t| match t {
            Tlv::Authority(s) => Some(s.clone()),
            _ => None,
        });
        h.unique_id = self.tlvs.iter().find_map(|t| match t {
            Tlv::UniqueId(id) => Some(id.clone()),
            _ => None,
        });
        h.ssl = self.tlvs.iter().find_map(|t| match t {
            Tlv::Ssl {
                client,
                verify,
                version,
                ..
            } => Some(SslInfo {
                client: *client,
                verify: *verify,
                version: version.clone(),
            }),
            _ => None,
        });
        // The first configured rule (in rule order, not TLV order) that finds its TLV decides.
        let first = |f: fn(&Tlv) -> Option<EndpointTlv>| self.tlvs.iter().find_map(f);
        h.endpoint = first(|t| match t {
            Tlv::Aws(id) => Some(EndpointTlv::VpcepId(id.clone())),
            _ => None,
        })
        .or_else(|| {
            first(|t| match t {
                Tlv::Azure(id) => Some(EndpointTlv::Marker(u64::from(*id))),
                _ => None,
            })
        })
        .or_else(|| {
            first(|t| match t {
                Tlv::Gcp(id) => Some(EndpointTlv::Marker(*id)),
                _ => None,
            })
        })
        .or_else(|| {
            first(|t| match t {
                Tlv::CustomE2(id) => Some(EndpointTlv::Marker(*id)),
                _ => None,
            })
        });
        h.crc_verified = self.crc_at.is_some();
        h
    }
}

/// A v1 header as a meaning, to be built by `ppp`.
#[derive(Debug, Clone)]
enum GenV1 {
    Tcp4(SocketAddr, SocketAddr),
    Tcp6(SocketAddr, SocketAddr),
    Unknown,
}

fn gen_v1() -> impl Strategy<Value = GenV1> {
    prop_oneof![
        3 => (v4(), v4()).prop_map(|(s, d)| GenV1::Tcp4(s, d)),
        3 => (v6(), v6()).prop_map(|(s, d)| GenV1::Tcp6(s, d)),
        1 => Just(GenV1::Unknown),
    ]
}

impl GenV1 {
    /// `ppp` writes v1 lines through the `Display` of its `Addresses`.
    fn build_with_ppp(&self) -> Vec<u8> {
        let addrs = match self {
            GenV1::Tcp4(s, d) | GenV1::Tcp6(s, d) => ppp::v1::Addresses::from((*s, *d)),
            GenV1::Unknown => ppp::v1::Addresses::Unknown,
        };
        addrs.to_string().into_bytes()
    }

    fn expected(&self) -> ProxyHeader {
        match self {
            GenV1::Tcp4(s, d) | GenV1::Tcp6(s, d) => {
                let mut h = empty(1, Command::Proxy);
                (h.source, h.destination) = (Some(*s), Some(*d));
                h
            }
            GenV1::Unknown => empty(1, Command::Local),
        }
    }
}

/// Application bytes after the header (a TLS record, HTTP, or noise): never part of it.
fn app_data() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(Vec::new()),
        Just(b"GET / HTTP/1.1\r\n\r\n".to_vec()),
        Just(vec![0x16, 0x03, 0x01, 0x02, 0x00]),
        vec(any::<u8>(), 0..32),
    ]
}

// ---------------------------------------------------------------------------------------------
// Direction 1: ppp builds, we parse
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn v2_built_by_ppp_parses_to_what_was_encoded(g in gen_v2(), app in app_data()) {
        let header = g.build_with_ppp();
        // Sanity: the oracle accepts its own output.
        prop_assert!(p2::Header::try_from(header.as_slice()).is_ok());
        let buf = [header.as_slice(), &app].concat();
        let got = parse_ours(&buf, RULES);
        prop_assert_eq!(got, Ok(Parsed::Complete { header: g.expected(), len: header.len() }));
    }

    #[test]
    fn v1_built_by_ppp_parses_to_what_was_encoded(g in gen_v1(), app in app_data()) {
        let header = g.build_with_ppp();
        prop_assert!(ppp::v1::Header::try_from(header.as_slice()).is_ok());
        let buf = [header.as_slice(), &app].concat();
        let got = parse_ours(&buf, RULES);
        prop_assert_eq!(got, Ok(Parsed::Complete { header: g.expected(), len: header.len() }));
    }
}

// ---------------------------------------------------------------------------------------------
// Direction 2: our builder builds, ppp parses
// ---------------------------------------------------------------------------------------------

/// A TLV as one of our builder's methods.
#[derive(Debug, Clone)]
enum BuilderTlv {
    Authority(String),
    UniqueId(Vec<u8>),
    Ssl(u8, u32, Option<String>),
    Noop(usize),
    Aws(String),
    Azure(u32),
    Gcp(u64),
    Raw(u8, Vec<u8>),
}

impl BuilderTlv {
    fn apply(&self, b: ppb::V2Builder) -> ppb::V2Builder {
        match self {
            BuilderTlv::Authority(s) => b.authority(s),
            BuilderTlv::UniqueId(id) => b.unique_id(id),
            BuilderTlv::Ssl(c, v, ver) => b.ssl(*c, *v, ver.as_deref()),
            BuilderTlv::Noop(n) => b.noop(*n),
            BuilderTlv::Aws(id) => b.aws_vpce(id),
            BuilderTlv::Azure(id) => b.azure_link_id(*id),
            BuilderTlv::Gcp(id) => b.gcp_psc_id(*id),
            BuilderTlv::Raw(t, v) => b.tlv(*t, v),
        }
    }

    /// The (type, value) the builder must have written, derived from the spec and the
    /// documented vendor layouts (the SSL sub-TLV framed by `ppp`).
    fn wire(&self) -> (u8, Vec<u8>) {
        match self {
            BuilderTlv::Authority(s) => (0x02, s.as_bytes().to_vec()),
            BuilderTlv::UniqueId(id) => (0x05, id.clone()),
            BuilderTlv::Ssl(c, v, ver) => {
                let mut value = vec![*c];
                value.extend_from_slice(&v.to_be_bytes());
                if let Some(ver) = ver {
                    let sub = p2::TypeLengthValue::new(p2::Type::SSLVersion, ver.as_bytes());
                    value.extend(sub.to_bytes().unwrap());
                }
                (0x20, value)
            }
            BuilderTlv::Noop(n) => (0x04, vec![0; *n]),
            BuilderTlv::Aws(id) => (0xEA, [&[0x01], id.as_bytes()].concat()),
            BuilderTlv::Azure(id) => (0xEE, [&[0x01][..], &id.to_le_bytes()].concat()),
            BuilderTlv::Gcp(id) => (0xE0, id.to_be_bytes().to_vec()),
            BuilderTlv::Raw(t, v) => (*t, v.clone()),
        }
    }
}

fn builder_tlv() -> impl Strategy<Value = BuilderTlv> {
    prop_oneof![
        "\\PC{0,20}".prop_map(BuilderTlv::Authority),
        vec(any::<u8>(), 0..=128).prop_map(BuilderTlv::UniqueId),
        (
            any::<u8>(),
            any::<u32>(),
            proptest::option::of("[ -~]{0,12}")
        )
            .prop_map(|(c, v, ver)| BuilderTlv::Ssl(c, v, ver)),
        (0usize..16).prop_map(BuilderTlv::Noop),
        "vpce-[0-9a-f]{1,17}".prop_map(BuilderTlv::Aws),
        any::<u32>().prop_map(BuilderTlv::Azure),
        any::<u64>().prop_map(BuilderTlv::Gcp),
        (any::<u8>(), vec(any::<u8>(), 0..24)).prop_map(|(t, v)| BuilderTlv::Raw(t, v)),
    ]
}

#[derive(Debug, Clone)]
enum BuilderAddrs {
    /// Any two socket addresses: the builder writes AF_INET6 (IPv4-mapped) unless both are IPv4.
    Ip(SocketAddr, SocketAddr),
    Unix(Vec<u8>, Vec<u8>),
    Unspec,
}

#[derive(Debug, Clone)]
struct BuilderV2 {
    addrs: BuilderAddrs,
    local: bool,
    dgram: bool,
    tlvs: Vec<BuilderTlv>,
    crc: bool,
}

fn builder_v2() -> impl Strategy<Value = BuilderV2> {
    let ip = prop_oneof![v4(), v6()];
    let addrs = prop_oneof![
        6 => (ip.clone(), ip).prop_map(|(s, d)| BuilderAddrs::Ip(s, d)),
        1 => (unix_path(), unix_path()).prop_map(|(s, d)| BuilderAddrs::Unix(s, d)),
        1 => Just(BuilderAddrs::Unspec),
    ];
    (
        addrs,
        prop::bool::weighted(0.15),
        prop::bool::weighted(0.2),
        vec(builder_tlv(), 0..7),
        any::<bool>(),
    )
        .prop_map(|(addrs, local, dgram, tlvs, crc)| BuilderV2 {
            addrs,
            local,
            dgram,
            tlvs,
            crc,
        })
}

fn mapped(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

impl BuilderV2 {
    fn build_with_ours(&self) -> Vec<u8> {
        let mut b = match &self.addrs {
            BuilderAddrs::Ip(s, d) => ppb::V2Builder::proxy(*s, *d),
            BuilderAddrs::Unix(s, d) => ppb::V2Builder::unix(s, d),
            BuilderAddrs::Unspec => ppb::V2Builder::unspec(),
        };
        if self.local {
            b = b.local();
        }
        if self.dgram {
            b = b.dgram();
        }
        for t in &self.tlvs {
            b = t.apply(b);
        }
        b.crc32c(self.crc).build()
    }

    fn expected_addresses(&self) -> p2::Addresses {
        match &self.addrs {
            BuilderAddrs::Ip(s, d) => match (s.ip(), d.ip()) {
                (IpAddr::V4(si), IpAddr::V4(di)) => {
                    p2::IPv4::new(si, di, s.port(), d.port()).into()
                }
                (si, di) => p2::IPv6::new(mapped(si), mapped(di), s.port(), d.port()).into(),
            },
            BuilderAddrs::Unix(s, d) => p2::Unix::new(pad108(s), pad108(d)).into(),
            BuilderAddrs::Unspec => p2::Addresses::Unspecified,
        }
    }

    fn expected_protocol(&self) -> p2::Protocol {
        match (&self.addrs, self.dgram) {
            (_, true) => p2::Protocol::Datagram,
            (BuilderAddrs::Unspec, false) => p2::Protocol::Unspecified,
            (_, false) => p2::Protocol::Stream,
        }
    }
}

/// `ppp` gives AF_UNSPEC's whole payload as "address bytes" and no TLVs; we (and our builder)
/// put TLVs right after the 16 fixed bytes for AF_UNSPEC. Read them from there in that case.
fn tlv_region<'a>(h: &'a p2::Header<'a>) -> &'a [u8] {
    if h.address_family() == p2::AddressFamily::Unspecified {
        h.address_bytes()
    } else {
        h.tlv_bytes()
    }
}

/// The TLVs `ppp` splits out, as (type, value, offset of the value in the header).
fn ppp_tlvs(h: &p2::Header<'_>) -> Result<Vec<(u8, Vec<u8>, usize)>, p2::ParseError> {
    let region = tlv_region(h);
    let mut at = h.len() - region.len();
    let mut out = Vec::new();
    for tlv in p2::TypeLengthValues::from(region) {
        let tlv = tlv?;
        out.push((tlv.kind, tlv.value.to_vec(), at + 3));
        at += 3 + tlv.value.len();
    }
    Ok(out)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn v2_built_by_our_builder_parses_with_ppp(g in builder_v2(), app in app_data()) {
        let header = g.build_with_ours();
        let buf = [header.as_slice(), &app].concat();
        let h = p2::Header::try_from(buf.as_slice()).unwrap();
        prop_assert_eq!(h.len(), header.len());
        prop_assert_eq!(h.version, p2::Version::Two);
        let command = if g.local { p2::Command::Local } else { p2::Command::Proxy };
        prop_assert_eq!(h.command, command);
        prop_assert_eq!(h.protocol, g.expected_protocol());
        prop_assert_eq!(h.addresses, g.expected_addresses());
        let mut tlvs = ppp_tlvs(&h).unwrap();
        if g.crc {
            // Appended last, and correct over the whole header with its value zeroed.
            let (ty, value, at) = tlvs.pop().unwrap();
            prop_assert_eq!(ty, 0x03);
            prop_assert_eq!(value.len(), 4);
            let stored = u32::from_be_bytes(value.try_into().unwrap());
            prop_assert_eq!(stored, crc_with_zeroed(h.as_bytes(), at));
        }
        let got: Vec<(u8, Vec<u8>)> = tlvs.into_iter().map(|(t, v, _)| (t, v)).collect();
        let want: Vec<(u8, Vec<u8>)> = g.tlvs.iter().map(BuilderTlv::wire).collect();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn v1_built_by_our_builder_parses_with_ppp(
        src in prop_oneof![v4(), v6()],
        dst in prop_oneof![v4(), v6()],
        unknown in prop::bool::weighted(0.1),
        app in app_data(),
    ) {
        let (header, want) = if unknown {
            (ppb::v1_unknown(), ppp::v1::Addresses::Unknown)
        } else {
            let want = match (src.ip(), dst.ip()) {
                (IpAddr::V4(s), IpAddr::V4(d)) => {
                    ppp::v1::Addresses::new_tcp4(s, d, src.port(), dst.port())
                }
                (s, d) => ppp::v1::Addresses::new_tcp6(mapped(s), mapped(d), src.port(), dst.port()),
            };
            (ppb::v1(src, dst), want)
        };
        let buf = [header.as_slice(), &app].concat();
        let h = ppp::v1::Header::try_from(buf.as_slice()).unwrap();
        prop_assert_eq!(h.header.len(), header.len());
        prop_assert_eq!(h.addresses, want);
    }
}

// ---------------------------------------------------------------------------------------------
// Direction 3: arbitrary bytes, both parsers
// ---------------------------------------------------------------------------------------------

/// What `ppp` makes of a buffer that is all the peer sent.
#[derive(Debug)]
enum Oracle {
    /// A complete header of `len` bytes. `strict` lists the errors our documented strictness
    /// gives for it (ours must then reject with one of them); empty means ours must accept it
    /// and decode `header`.
    Accept {
        header: ProxyHeader,
        len: usize,
        strict: Vec<E>,
    },
    /// Rejected, or incomplete at end of input.
    Reject(String),
}

/// `ppp`'s verdict, turned into our `ProxyHeader` (no vendor rules), plus the errors that our
/// documented strictness predicts where `ppp` is more lenient:
///
/// - [`E::Oversize`]: we cap a v2 header at [`pp::MAX_HEADER_LEN`]; `ppp` has no cap.
/// - [`E::CrcMismatch`] / [`E::TlvMalformed`]: we verify CRC32c (4 bytes, at most one) and the
///   standard TLVs we decode (UTF-8 AUTHORITY, UNIQUE_ID ≤ 128 bytes, well-formed SSL with an
///   ASCII version); `ppp` decodes no TLV value.
/// - [`E::V1BadPort`]: `ppp` reads v1 ports with `u16::from_str`, which accepts a `+` sign.
///
/// `ppp` only splits v2 TLVs when asked, so a TLV list that does not split is a rejection here
/// (for PROXY only: LOCAL discards the block, §2.2).
fn ppp_outcome(buf: &[u8]) -> Oracle {
    match ppp::HeaderResult::parse(buf) {
        ppp::HeaderResult::V1(Ok(h)) => {
            let line = h.header.as_ref();
            // `ppp` accepts an `UNKNOWN` line that ends at a bare LF when the input ends there;
            // §2.1 ends every line at CRLF and tells the receiver to ignore anything before it,
            // so ours keeps waiting for the CRLF. Seen as a rejection here.
            if !line.ends_with("\r\n") {
                return Oracle::Reject(format!("ppp ended the v1 line at a bare LF: {line:?}"));
            }
            let mut header = empty(1, Command::Proxy);
            (header.source, header.destination) = match h.addresses {
                ppp::v1::Addresses::Unknown => {
                    header.command = Command::Local;
                    (None, None)
                }
                ppp::v1::Addresses::Tcp4(a) => (
                    Some(SocketAddr::from((a.source_address, a.source_port))),
                    Some(SocketAddr::from((
                        a.destination_address,
                        a.destination_port,
                    ))),
                ),
                ppp::v1::Addresses::Tcp6(a) => (
                    Some(SocketAddr::from((a.source_address, a.source_port))),
                    Some(SocketAddr::from((
                        a.destination_address,
                        a.destination_port,
                    ))),
                ),
            };
            let signed_port = header.command == Command::Proxy
                && line
                    .trim_end_matches("\r\n")
                    .split(' ')
                    .skip(4)
                    .any(|port| port.starts_with('+'));
            let strict = if signed_port {
                vec![E::V1BadPort]
            } else {
                vec![]
            };
            Oracle::Accept {
                header,
                len: line.len(),
                strict,
            }
        }
        ppp::HeaderResult::V2(Ok(h)) => {
            let len = h.len();
            if len > pp::MAX_HEADER_LEN {
                return Oracle::Accept {
                    header: empty(2, Command::Local),
                    len,
                    strict: vec![E::Oversize],
                };
            }
            if h.command == p2::Command::Local {
                return Oracle::Accept {
                    header: empty(2, Command::Local),
                    len,
                    strict: vec![],
                };
            }
            let tlvs = match ppp_tlvs(&h) {
                Ok(tlvs) => tlvs,
                Err(e) => return Oracle::Reject(format!("ppp TLV split: {e:?}")),
            };
            let mut header = empty(2, Command::Proxy);
            (header.source, header.destination) = match h.addresses {
                p2::Addresses::IPv4(a) => (
                    Some(SocketAddr::from((a.source_address, a.source_port))),
                    Some(SocketAddr::from((
                        a.destination_address,
                        a.destination_port,
                    ))),
                ),
                p2::Addresses::IPv6(a) => (
                    Some(SocketAddr::from((a.source_address, a.source_port))),
                    Some(SocketAddr::from((
                        a.destination_address,
                        a.destination_port,
                    ))),
                ),
                p2::Addresses::Unix(_) | p2::Addresses::Unspecified => (None, None),
            };
            let mut strict = Vec::new();
            let crcs: Vec<_> = tlvs.iter().filter(|t| t.0 == 0x03).collect();
            if let Some((_, value, at)) = crcs.first() {
                if value.len() != 4 || crcs.len() > 1 {
                    strict.push(E::TlvMalformed);
                } else if crc_with_zeroed(h.as_bytes(), *at).to_be_bytes()[..] != value[..] {
                    strict.push(E::CrcMismatch);
                }
                header.crc_verified = true;
            }
            let first = |ty: u8| tlvs.iter().find(|t| t.0 == ty).map(|t| t.1.clone());
            if let Some(v) = first(0x02) {
                match String::from_utf8(v) {
                    Ok(s) => header.authority = Some(s),
                    Err(_) => strict.push(E::TlvMalformed),
                }
            }
            if let Some(v) = first(0x05) {
                if v.len() > pp::MAX_UNIQUE_ID_LEN {
                    strict.push(E::TlvMalformed);
                }
                header.unique_id = Some(v);
            }
            if let Some(v) = first(0x20) {
                match ssl_by_ppp(&v) {
                    Some(ssl) => header.ssl = Some(ssl),
                    None => strict.push(E::TlvMalformed),
                }
            }
            Oracle::Accept {
                header,
                len,
                strict,
            }
        }
        other => Oracle::Reject(format!("{other:?}")),
    }
}

/// §2.2.5 decoded with `ppp`'s TLV splitter for the sub-TLVs; `None` if malformed.
fn ssl_by_ppp(v: &[u8]) -> Option<SslInfo> {
    let (&client, rest) = v.split_first()?;
    let verify = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?);
    let subs: Vec<_> = p2::TypeLengthValues::from(&rest[4..])
        .collect::<Result<_, _>>()
        .ok()?;
    let version = match subs.iter().find(|s| s.kind == 0x21) {
        Some(s) => Some(
            String::from_utf8(s.value.to_vec())
                .ok()
                .filter(|s| s.is_ascii())?,
        ),
        None => None,
    };
    Some(SslInfo {
        client,
        verify,
        version,
    })
}

/// Where `ppp` rejects what the spec says a receiver must accept, and we accept it:
///
/// - v2 LOCAL whose length is shorter than the address block of the family byte: §2.2 says
///   LOCAL discards the block ("the family which is ignored"); `ppp` checks its length anyway.
/// - v1 `UNKNOWN` followed by anything before the CRLF: §2.1 says the receiver must ignore it;
///   `ppp` splits it into fields (more than four, a lone CR, or non-UTF-8 fail there).
fn ppp_deviation(buf: &[u8], ours: &ProxyHeader) -> Option<&'static str> {
    match (ours.version, ours.command) {
        (2, Command::Local) => {
            let family_len = match buf[13] >> 4 {
                1 => 12,
                2 => 36,
                3 => 216,
                _ => 0,
            };
            let len = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
            (len < family_len).then_some("v2 LOCAL with a short address block")
        }
        (1, Command::Local) => (!buf.starts_with(b"PROXY UNKNOWN\r\n"))
            .then_some("v1 UNKNOWN with text before the CRLF"),
        _ => None,
    }
}

/// How [`agree`] settled one input; a test checks the generator reaches each of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// Both accept, with the same values and length.
    BothAccept,
    /// Both reject (or run out of input).
    BothReject,
    /// `ppp` accepts; we reject with the error our documented strictness predicts.
    OursStricter(E),
    /// We accept; `ppp` rejects where the spec says to accept ([`ppp_deviation`]).
    PppStricter(&'static str),
}

/// Both parsers on `buf`, taken as everything the peer sent; `Err` describes a disagreement.
fn agree(buf: &[u8]) -> Result<Verdict, String> {
    let ours = parse_ours(buf, &[]);
    let theirs = ppp_outcome(buf);
    match (&ours, &theirs) {
        (
            Ok(Parsed::Complete { header, len }),
            Oracle::Accept {
                header: want,
                len: want_len,
                strict,
            },
        ) => {
            if !strict.is_empty() {
                return Err(format!("ours accepted; its own rules predict {strict:?}"));
            }
            if (header, len) != (want, want_len) {
                return Err(format!(
                    "values differ: ours {header:?} len {len}, ppp {want:?} len {want_len}"
                ));
            }
            Ok(Verdict::BothAccept)
        }
        (Ok(Parsed::Complete { header, .. }), Oracle::Reject(why)) => {
            match ppp_deviation(buf, header) {
                Some(what) => Ok(Verdict::PppStricter(what)),
                None => Err(format!("ours accepted {header:?}; ppp rejected: {why}")),
            }
        }
        (Err(e), Oracle::Accept { strict, .. }) if strict.contains(e) => {
            Ok(Verdict::OursStricter(*e))
        }
        (Ok(Parsed::Incomplete) | Err(_), Oracle::Accept { header, strict, .. }) => Err(format!(
            "ours {ours:?}; ppp accepted {header:?} (documented strictness predicts {strict:?})"
        )),
        (Ok(Parsed::Incomplete) | Err(_), Oracle::Reject(_)) => Ok(Verdict::BothReject),
    }
}

/// An edit of a valid header.
#[derive(Debug, Clone)]
enum Mutation {
    Set(Index, u8),
    FlipBit(Index, u8),
    Insert(Index, u8),
    Remove(Index),
    Truncate(Index),
    /// Rewrite the v2 length field (bytes 14..16) by a small delta.
    Length(i16),
    Append(Vec<u8>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
        (any::<Index>(), 0u8..8).prop_map(|(i, b)| Mutation::FlipBit(i, b)),
        (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<Index>().prop_map(Mutation::Remove),
        any::<Index>().prop_map(Mutation::Truncate),
        (-8i16..=8).prop_map(Mutation::Length),
        vec(any::<u8>(), 1..8).prop_map(Mutation::Append),
    ]
}

fn mutate(mut buf: Vec<u8>, edits: &[Mutation]) -> Vec<u8> {
    for edit in edits {
        if buf.is_empty() {
            break;
        }
        let n = buf.len();
        match edit {
            Mutation::Set(i, b) => buf[i.index(n)] = *b,
            Mutation::FlipBit(i, bit) => buf[i.index(n)] ^= 1 << bit,
            Mutation::Insert(i, b) => buf.insert(i.index(n + 1), *b),
            Mutation::Remove(i) => {
                buf.remove(i.index(n));
            }
            Mutation::Truncate(i) => buf.truncate(i.index(n)),
            Mutation::Length(delta) if n >= 16 => {
                let len = u16::from_be_bytes([buf[14], buf[15]]);
                let len = len.wrapping_add_signed(*delta);
                buf[14..16].copy_from_slice(&len.to_be_bytes());
            }
            Mutation::Length(_) => {}
            Mutation::Append(bytes) => buf.extend_from_slice(bytes),
        }
    }
    buf
}

/// A v1-looking line: five fields each mostly of the right kind, sometimes one missing or one
/// too many, joined by mostly-right separators, then mostly CRLF and maybe application bytes.
fn v1_soup() -> impl Strategy<Value = Vec<u8>> {
    let junk = || {
        prop_oneof![
            Just(Vec::new()),
            "[ -~]{1,6}".prop_map(String::into_bytes),
            vec(any::<u8>(), 1..4),
        ]
    };
    let proto = prop_oneof![
        4 => Just(b"TCP4".to_vec()),
        4 => Just(b"TCP6".to_vec()),
        2 => Just(b"UNKNOWN".to_vec()),
        1 => Just(b"TCP".to_vec()),
        1 => junk(),
    ];
    let addr = || {
        prop_oneof![
            4 => v4().prop_map(|a| a.ip().to_string().into_bytes()),
            4 => v6().prop_map(|a| a.ip().to_string().into_bytes()),
            1 => (any::<[u8; 4]>(), 0usize..4).prop_map(|(o, zero_at)| {
                // An octet with a leading zero (octal confusion; must be rejected).
                let mut parts: Vec<String> = o.iter().map(u8::to_string).collect();
                parts[zero_at].insert(0, '0');
                parts.join(".").into_bytes()
            }),
            1 => junk(),
        ]
    };
    let port = || {
        prop_oneof![
            6 => any::<u16>().prop_map(|p| p.to_string().into_bytes()),
            1 => (prop_oneof![Just("0"), Just("+"), Just("-"), Just("00"), Just(" ")], any::<u16>())
                .prop_map(|(pre, p)| format!("{pre}{p}").into_bytes()),
            1 => (65536u32..).prop_map(|p| p.to_string().into_bytes()),
            1 => junk(),
        ]
    };
    let sep = prop_oneof![
        12 => Just(&b" "[..]),
        1 => Just(&b"  "[..]),
        1 => Just(&b"\r"[..]),
        1 => Just(&b"\t"[..]),
    ];
    let start = prop_oneof![
        12 => Just(&b"PROXY "[..]),
        1 => Just(&b"PROXY"[..]),
        1 => Just(&b"PROXY  "[..]),
        1 => Just(&b"proxy "[..]),
    ];
    let end = prop_oneof![
        12 => Just(&b"\r\n"[..]),
        1 => Just(&b"\n"[..]),
        1 => Just(&b"\r"[..]),
        1 => Just(&b" \r\n"[..]),
        1 => Just(&b""[..]),
    ];
    let fields =
        (proto, addr(), addr(), port(), port()).prop_map(|(a, b, c, d, e)| vec![a, b, c, d, e]);
    let edit = prop_oneof![
        8 => Just(None),
        1 => any::<Index>().prop_map(|i| Some((i, None))),
        1 => (any::<Index>(), junk()).prop_map(|(i, j)| Some((i, Some(j)))),
    ];
    (
        start,
        fields,
        edit,
        vec(sep, 5),
        end,
        vec(any::<u8>(), 0..8),
    )
        .prop_map(|(start, mut fields, edit, seps, end, tail)| {
            match edit {
                Some((i, None)) => {
                    fields.remove(i.index(fields.len()));
                }
                Some((i, Some(extra))) => fields.insert(i.index(fields.len() + 1), extra),
                None => {}
            }
            let mut out = start.to_vec();
            for (i, field) in fields.iter().enumerate() {
                if i > 0 {
                    out.extend_from_slice(seps[(i - 1) % seps.len()]);
                }
                out.extend_from_slice(field);
            }
            out.extend_from_slice(end);
            out.extend_from_slice(&tail);
            out
        })
}

/// Inputs for direction 3: raw noise, v1-like text, and valid headers (from both builders) with
/// a few edits, or none.
fn arbitrary_input() -> impl Strategy<Value = Vec<u8>> {
    let valid = prop_oneof![
        3 => gen_v2().prop_map(|g| g.build_with_ppp()),
        1 => builder_v2().prop_map(|g| g.build_with_ours()),
        2 => gen_v1().prop_map(|g| g.build_with_ppp()),
    ];
    // Past our 4096-byte cap (ppp has none): a valid header padded by one large NOOP.
    let oversize = (gen_v2(), 4000usize..4200).prop_map(|(mut g, pad)| {
        g.proxy = true;
        g.tlvs.push(Tlv::Noop(vec![0; pad]));
        g.build_with_ppp()
    });
    prop_oneof![
        1 => oversize,
        1 => vec(any::<u8>(), 0..64),
        1 => vec(any::<u8>(), 0..300).prop_map(|rest| [&pp::V2_SIGNATURE[..], &rest].concat()),
        3 => v1_soup(),
        6 => (valid, vec(mutation(), 0..4)).prop_map(|(buf, edits)| mutate(buf, &edits)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(ARBITRARY_CASES))]

    #[test]
    fn both_parsers_agree_on_arbitrary_bytes(buf in arbitrary_input()) {
        if let Err(why) = agree(&buf) {
            prop_assert!(false, "{why}\ninput: {buf:02x?}\nas text: {:?}", String::from_utf8_lossy(&buf));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Pinned cases: the oracle's own pieces, and each documented difference once.
// ---------------------------------------------------------------------------------------------

/// The generator is not vacuous: over a fixed-seed sample it reaches every verdict, including
/// both-accept for v1 and v2 and each documented difference.
#[test]
fn arbitrary_inputs_reach_every_verdict() {
    use proptest::strategy::ValueTree;
    use std::collections::BTreeMap;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = arbitrary_input();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for _ in 0..ARBITRARY_CASES {
        let buf = strategy.new_tree(&mut runner).unwrap().current();
        let verdict = agree(&buf).unwrap();
        let version = match parse_ours(&buf, &[]) {
            Ok(Parsed::Complete { header, .. }) => Some(header.version),
            _ => None,
        };
        *seen.entry(format!("{verdict:?} {version:?}")).or_default() += 1;
    }
    let want = [
        (Verdict::BothAccept, Some(1)),
        (Verdict::BothAccept, Some(2)),
        (Verdict::BothReject, None),
        (Verdict::OursStricter(E::V1BadPort), None),
        (Verdict::OursStricter(E::CrcMismatch), None),
        (Verdict::OursStricter(E::TlvMalformed), None),
        (Verdict::OursStricter(E::Oversize), None),
        (
            Verdict::PppStricter("v1 UNKNOWN with text before the CRLF"),
            Some(1),
        ),
        (
            Verdict::PppStricter("v2 LOCAL with a short address block"),
            Some(2),
        ),
    ];
    for (verdict, version) in want {
        let key = format!("{verdict:?} {version:?}");
        assert!(
            seen.contains_key(&key),
            "never reached {key}; reached {seen:#?}"
        );
    }
}

#[test]
fn crc32c_matches_the_standard_check_value() {
    // The CRC-32C catalogue's check value for "123456789".
    assert_eq!(crc32c(b"123456789"), 0xE306_9283);
}

#[test]
fn documented_differences_are_what_they_claim() {
    // Ours stricter: a signed v1 port.
    let signed = b"PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n";
    assert_eq!(parse_ours(signed, &[]), Err(E::V1BadPort));
    assert!(ppp::v1::Header::try_from(&signed[..]).is_ok());
    assert_eq!(agree(signed), Ok(Verdict::OursStricter(E::V1BadPort)));

    // Ours stricter: a wrong CRC32c.
    let addrs = Addrs::V4(
        "192.0.2.1:1".parse().unwrap(),
        "198.51.100.2:2".parse().unwrap(),
    );
    let proxy = p2::Version::Two | p2::Command::Proxy;
    let mut bad_crc = p2::Builder::with_addresses(proxy, p2::Protocol::Stream, addrs.to_ppp())
        .write_tlv(p2::Type::CRC32C, &[0; 4])
        .unwrap()
        .build()
        .unwrap();
    let sum = crc_with_zeroed(&bad_crc, 31);
    bad_crc[31..].copy_from_slice(&sum.to_be_bytes());
    assert!(matches!(
        parse_ours(&bad_crc, &[]),
        Ok(Parsed::Complete { .. })
    ));
    *bad_crc.last_mut().unwrap() ^= 1;
    assert_eq!(parse_ours(&bad_crc, &[]), Err(E::CrcMismatch));
    assert!(p2::Header::try_from(bad_crc.as_slice()).is_ok());
    assert_eq!(agree(&bad_crc), Ok(Verdict::OursStricter(E::CrcMismatch)));

    // ppp stricter than §2.2: LOCAL announcing AF_INET with no address block.
    let local = [&pp::V2_SIGNATURE[..], &[0x20, 0x11, 0, 0]].concat();
    assert!(matches!(
        parse_ours(&local, &[]),
        Ok(Parsed::Complete { .. })
    ));
    assert!(p2::Header::try_from(local.as_slice()).is_err());
    assert_eq!(
        agree(&local),
        Ok(Verdict::PppStricter("v2 LOCAL with a short address block"))
    );

    // ppp stricter than §2.1: UNKNOWN followed by more than four fields.
    let unknown = b"PROXY UNKNOWN a b c d e\r\n";
    assert!(matches!(
        parse_ours(unknown, &[]),
        Ok(Parsed::Complete { .. })
    ));
    assert!(ppp::v1::Header::try_from(&unknown[..]).is_err());
    assert_eq!(
        agree(unknown),
        Ok(Verdict::PppStricter("v1 UNKNOWN with text before the CRLF"))
    );

    // ppp more lenient than §2.1 the other way: an `UNKNOWN` line whose input ends at a bare LF.
    // Ours waits for the CRLF; when one follows, both take the line up to it. Found by a CI
    // proptest run.
    let bare_lf = b"PROXY UNKNOWN 0.0.0.0 0.0.0.0 0 \n";
    assert_eq!(parse_ours(bare_lf, &[]), Ok(Parsed::Incomplete));
    assert!(ppp::v1::Header::try_from(&bare_lf[..]).is_ok());
    assert_eq!(agree(bare_lf), Ok(Verdict::BothReject));
    let then_crlf = b"PROXY UNKNOWN 0.0.0.0 0.0.0.0 0 \nmore\r\n";
    assert!(matches!(
        parse_ours(then_crlf, &[]),
        Ok(Parsed::Complete { len: 39, .. })
    ));
    assert_eq!(agree(then_crlf), Ok(Verdict::BothAccept));

    // Where the spec is silent: a PROXY header with AF_UNSPEC and a non-empty block. ppp takes
    // the whole block as (ignored) address information; we take it as TLVs, so three bytes that
    // do not split as TLVs are malformed to us. The oracle reads TLVs our way ([`tlv_region`]).
    let unspec = [&pp::V2_SIGNATURE[..], &[0x21, 0x00, 0, 3, 0xff, 0xff, 0xff]].concat();
    assert_eq!(parse_ours(&unspec, &[]), Err(E::TlvMalformed));
    let h = p2::Header::try_from(unspec.as_slice()).unwrap();
    assert_eq!(h.tlvs().count(), 0);
    assert_eq!(agree(&unspec), Ok(Verdict::BothReject));

    // The v1 length limit, 107 bytes with the CRLF (§2.1), is the same on both sides.
    for (len, verdict) in [(107, Verdict::BothAccept), (108, Verdict::BothReject)] {
        let pad = "a".repeat(len - "PROXY UNKNOWN \r\n".len());
        let line = format!("PROXY UNKNOWN {pad}\r\n");
        assert_eq!(line.len(), len);
        assert_eq!(agree(line.as_bytes()), Ok(verdict), "{len}");
        assert_eq!(
            ppp::v1::Header::try_from(line.as_str()).is_ok(),
            len == 107,
            "{len}"
        );
    }

    // Plain agreement both ways.
    let v4_line = b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n";
    assert_eq!(agree(v4_line), Ok(Verdict::BothAccept));
    let zero_port = b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n";
    assert_eq!(agree(zero_port), Ok(Verdict::BothReject));
}
