use std::net::IpAddr;

use http::{HeaderMap, HeaderName, HeaderValue};
use ipnet::IpNet;
use proptest::prelude::*;

use super::ClientIpSource::{Forwarded as SrcFwd, ProxyProtocol, Socket, XForwardedFor as SrcXff};
use super::ForwardHeader::{Forwarded, XForwardedFor, XRealIp};
use super::*;

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    map
}

fn config(trusted: &str, order: &[ForwardHeader]) -> ClientIpConfig {
    ClientIpConfig {
        trusted_proxies: trusted.parse().unwrap(),
        headers: order.to_vec(),
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

const TRUSTED: &str = "10.0.0.0/8, 2001:db8:ffff::/48";
const ALL: &[ForwardHeader] = &[XForwardedFor, Forwarded, ForwardHeader::XRealIp];

type Want = Result<(&'static str, ClientIpSource), ForwardedError>;

type Headers = &'static [(&'static str, &'static str)];

/// (name, header order, peer, headers, want); trusted proxies are [`TRUSTED`], peer source Socket.
const CASES: &[(&str, &[ForwardHeader], &str, Headers, Want)] = &[
    // Spoofing: an untrusted peer's headers are never read, even malformed ones.
    (
        "untrusted_peer_with_xff_is_client",
        ALL,
        "203.0.113.9",
        &[("x-forwarded-for", "1.2.3.4")],
        Ok(("203.0.113.9", Socket)),
    ),
    (
        "untrusted_peer_with_forwarded_is_client",
        ALL,
        "203.0.113.9",
        &[("forwarded", "for=1.2.3.4")],
        Ok(("203.0.113.9", Socket)),
    ),
    (
        "untrusted_peer_with_x_real_ip_is_client",
        ALL,
        "203.0.113.9",
        &[("x-real-ip", "1.2.3.4")],
        Ok(("203.0.113.9", Socket)),
    ),
    (
        "untrusted_peer_with_malformed_xff_is_client",
        ALL,
        "203.0.113.9",
        &[("x-forwarded-for", "garbage")],
        Ok(("203.0.113.9", Socket)),
    ),
    (
        "untrusted_mapped_peer_is_normalised",
        ALL,
        "::ffff:203.0.113.9",
        &[("x-forwarded-for", "1.2.3.4")],
        Ok(("203.0.113.9", Socket)),
    ),
    // Walking right to left.
    (
        "trusted_peer_single_hop_is_client",
        ALL,
        "10.0.0.1",
        &[("x-forwarded-for", "1.2.3.4")],
        Ok(("1.2.3.4", SrcXff)),
    ),
    (
        "trusted_chain_skips_trusted_hops_first_untrusted_wins",
        ALL,
        "10.0.0.1",
        &[("x-forwarded-for", "6.6.6.6, 2.2.2.2, 10.0.0.5, 10.9.9.9")],
        Ok(("2.2.2.2", SrcXff)),
    ),
    (
        "trusted_chain_all_trusted_leftmost_wins",
        ALL,
        "10.0.0.1",
        &[("x-forwarded-for", "10.0.0.3, 10.0.0.4")],
        Ok(("10.0.0.3", SrcXff)),
    ),
    (
        "trusted_chain_v6_trusted_hop_is_skipped",
        ALL,
        "10.0.0.1",
        &[("x-forwarded-for", "2001:db8::7, 2001:db8:ffff::1")],
        Ok(("2001:db8::7", SrcXff)),
    ),
    (
        "xff_lines_merged_last_line_trusted_previous_line_wins",
        ALL,
        "10.0.0.1",
        &[
            ("x-forwarded-for", "1.1.1.1, 2.2.2.2"),
            ("x-forwarded-for", "10.0.0.7"),
        ],
        Ok(("2.2.2.2", SrcXff)),
    ),
    (
        "xff_lines_merged_all_later_lines_trusted_first_line_wins",
        ALL,
        "10.0.0.1",
        &[
            ("x-forwarded-for", "9.9.9.9"),
            ("x-forwarded-for", "10.1.1.1, 10.2.2.2"),
        ],
        Ok(("9.9.9.9", SrcXff)),
    ),
    (
        "xff_empty_elements_are_ignored",
        ALL,
        "10.0.0.1",
        &[("x-forwarded-for", "1.1.1.1,, 10.0.0.2 ,")],
        Ok(("1.1.1.1", SrcXff)),
    ),
    // IPv4-mapped IPv6.
    (
        "mapped_trusted_peer_reads_headers",
        ALL,
        "::ffff:10.0.0.1",
        &[("x-forwarded-for", "1.2.3.4")],
        Ok(("1.2.3.4", SrcXff)),
    ),
    (
        "mapped_hop_is_normalised",
        ALL,
        "10.0.0.1",
        &[("x-forwarded-for", "::ffff:1.2.3.4")],
        Ok(("1.2.3.4", SrcXff)),
    ),
    (
        "mapped_trusted_hop_is_skipped",
        ALL,
        "10.0.0.1",
        &[("x-forwarded-for", "1.1.1.1, ::ffff:10.0.0.9")],
        Ok(("1.1.1.1", SrcXff)),
    ),
    // XFF address forms.
    (
        "xff_bracketed_v6_with_port_is_accepted",
        ALL,
        "10.0.0.1",
        &[("x-forwarded-for", "[2001:db8::1]:443")],
        Ok(("2001:db8::1", SrcXff)),
    ),
    (
        "xff_bracketed_v6_is_accepted",
        ALL,
        "10.0.0.1",
        &[("x-forwarded-for", "[2001:db8::2]")],
        Ok(("2001:db8::2", SrcXff)),
    ),
    (
        "xff_bare_v6_is_accepted",
        ALL,
        "10.0.0.1",
        &[("x-forwarded-for", "2001:db8::3")],
        Ok(("2001:db8::3", SrcXff)),
    ),
    (
        "xff_v4_with_port_is_accepted",
        ALL,
        "10.0.0.1",
        &[("x-forwarded-for", "1.2.3.4:8080")],
        Ok(("1.2.3.4", SrcXff)),
    ),
    (
        "xff_unknown_first_untrusted_is_unidentifiable",
        ALL,
        "10.0.0.1",
        &[("x-forwarded-for", "1.2.3.4, unknown, 10.0.0.2")],
        Err(ForwardedError::UnidentifiableClient),
    ),
    // Forwarded (RFC 7239).
    (
        "forwarded_quoted_v6_with_port_is_accepted",
        ALL,
        "10.0.0.1",
        &[("forwarded", "for=\"[2001:db8::1]:4711\"")],
        Ok(("2001:db8::1", SrcFwd)),
    ),
    (
        "forwarded_token_v4_is_accepted",
        ALL,
        "10.0.0.1",
        &[("forwarded", "for=192.0.2.60;proto=http;by=203.0.113.43")],
        Ok(("192.0.2.60", SrcFwd)),
    ),
    (
        "forwarded_chain_skips_trusted_hops",
        ALL,
        "10.0.0.1",
        &[(
            "forwarded",
            "for=192.0.2.43, for=198.51.100.17;by=10.0.0.1, for=\"10.0.0.2:80\"",
        )],
        Ok(("198.51.100.17", SrcFwd)),
    ),
    (
        "forwarded_param_case_and_ows_are_tolerated",
        ALL,
        "10.0.0.1",
        &[("forwarded", "proto=https ; For=192.0.2.61 ;by=x")],
        Ok(("192.0.2.61", SrcFwd)),
    ),
    (
        "forwarded_obfuscated_port_is_accepted",
        ALL,
        "10.0.0.1",
        &[("forwarded", "for=\"192.0.2.43:_p1\"")],
        Ok(("192.0.2.43", SrcFwd)),
    ),
    (
        "forwarded_quoted_pair_is_unescaped",
        ALL,
        "10.0.0.1",
        &[("forwarded", "for=\"\\[2001:db8::9\\]\"")],
        Ok(("2001:db8::9", SrcFwd)),
    ),
    (
        "forwarded_lines_merged",
        ALL,
        "10.0.0.1",
        &[
            ("forwarded", "for=192.0.2.1"),
            ("forwarded", "for=10.0.0.8"),
        ],
        Ok(("192.0.2.1", SrcFwd)),
    ),
    (
        "forwarded_unknown_left_of_client_is_ignored",
        ALL,
        "10.0.0.1",
        &[("forwarded", "for=unknown, for=198.51.100.1")],
        Ok(("198.51.100.1", SrcFwd)),
    ),
    (
        "forwarded_unknown_first_untrusted_is_unidentifiable",
        ALL,
        "10.0.0.1",
        &[("forwarded", "for=198.51.100.1, for=unknown, for=10.0.0.2")],
        Err(ForwardedError::UnidentifiableClient),
    ),
    (
        "forwarded_obfuscated_first_untrusted_is_unidentifiable",
        ALL,
        "10.0.0.1",
        &[("forwarded", "for=_hidden")],
        Err(ForwardedError::UnidentifiableClient),
    ),
    (
        "forwarded_element_without_for_is_unidentifiable",
        ALL,
        "10.0.0.1",
        &[("forwarded", "for=198.51.100.1, proto=https")],
        Err(ForwardedError::UnidentifiableClient),
    ),
    // Malformed anywhere in a trusted peer's header fails closed.
    (
        "xff_garbage_element_is_malformed",
        ALL,
        "10.0.0.1",
        &[("x-forwarded-for", "1.2.3.4, nope")],
        Err(ForwardedError::MalformedXForwardedFor),
    ),
    (
        "xff_garbage_left_of_client_is_malformed",
        ALL,
        "10.0.0.1",
        &[("x-forwarded-for", "nope, 1.2.3.4")],
        Err(ForwardedError::MalformedXForwardedFor),
    ),
    (
        "xff_bad_octet_is_malformed",
        ALL,
        "10.0.0.1",
        &[("x-forwarded-for", "999.1.1.1")],
        Err(ForwardedError::MalformedXForwardedFor),
    ),
    (
        "xff_bad_port_is_malformed",
        ALL,
        "10.0.0.1",
        &[("x-forwarded-for", "1.2.3.4:99999")],
        Err(ForwardedError::MalformedXForwardedFor),
    ),
    (
        "xff_unclosed_bracket_is_malformed",
        ALL,
        "10.0.0.1",
        &[("x-forwarded-for", "[2001:db8::1")],
        Err(ForwardedError::MalformedXForwardedFor),
    ),
    (
        "xff_zone_id_is_malformed",
        ALL,
        "10.0.0.1",
        &[("x-forwarded-for", "fe80::1%eth0")],
        Err(ForwardedError::MalformedXForwardedFor),
    ),
    (
        "forwarded_empty_value_is_malformed",
        ALL,
        "10.0.0.1",
        &[("forwarded", "for=")],
        Err(ForwardedError::MalformedForwarded),
    ),
    (
        "forwarded_unbracketed_v6_is_malformed",
        ALL,
        "10.0.0.1",
        &[("forwarded", "for=\"2001:db8::1\"")],
        Err(ForwardedError::MalformedForwarded),
    ),
    (
        "forwarded_unterminated_quote_is_malformed",
        ALL,
        "10.0.0.1",
        &[("forwarded", "for=\"1.2.3.4")],
        Err(ForwardedError::MalformedForwarded),
    ),
    (
        "forwarded_duplicate_for_is_malformed",
        ALL,
        "10.0.0.1",
        &[("forwarded", "for=1.2.3.4;for=5.6.7.8")],
        Err(ForwardedError::MalformedForwarded),
    ),
    (
        "forwarded_space_around_equals_is_malformed",
        ALL,
        "10.0.0.1",
        &[("forwarded", "for = 1.2.3.4")],
        Err(ForwardedError::MalformedForwarded),
    ),
    (
        "forwarded_bare_word_is_malformed",
        ALL,
        "10.0.0.1",
        &[("forwarded", "1.2.3.4")],
        Err(ForwardedError::MalformedForwarded),
    ),
    (
        "x_real_ip_two_addresses_is_malformed",
        &[XRealIp],
        "10.0.0.1",
        &[("x-real-ip", "1.2.3.4, 5.6.7.8")],
        Err(ForwardedError::MalformedXRealIp),
    ),
    (
        "x_real_ip_two_lines_is_malformed",
        &[XRealIp],
        "10.0.0.1",
        &[("x-real-ip", "1.2.3.4"), ("x-real-ip", "1.2.3.4")],
        Err(ForwardedError::MalformedXRealIp),
    ),
    (
        "x_real_ip_garbage_is_malformed",
        &[XRealIp],
        "10.0.0.1",
        &[("x-real-ip", "localhost")],
        Err(ForwardedError::MalformedXRealIp),
    ),
    (
        "x_real_ip_single_address_is_client",
        &[XRealIp],
        "10.0.0.1",
        &[("x-real-ip", "198.51.100.4")],
        Ok(("198.51.100.4", ClientIpSource::XRealIp)),
    ),
    // Header order: first that yields wins; an absent or empty header does not yield.
    (
        "order_first_configured_header_wins",
        &[Forwarded, XForwardedFor],
        "10.0.0.1",
        &[("x-forwarded-for", "1.1.1.1"), ("forwarded", "for=2.2.2.2")],
        Ok(("2.2.2.2", SrcFwd)),
    ),
    (
        "order_absent_header_falls_back_to_next",
        &[Forwarded, XForwardedFor],
        "10.0.0.1",
        &[("x-forwarded-for", "1.1.1.1")],
        Ok(("1.1.1.1", SrcXff)),
    ),
    (
        "order_empty_header_falls_back_to_next",
        &[XRealIp, XForwardedFor],
        "10.0.0.1",
        &[("x-real-ip", ""), ("x-forwarded-for", "1.1.1.1")],
        Ok(("1.1.1.1", SrcXff)),
    ),
    (
        "order_unconfigured_header_is_ignored",
        &[XForwardedFor],
        "10.0.0.1",
        &[("forwarded", "for=2.2.2.2")],
        Ok(("10.0.0.1", Socket)),
    ),
    (
        "order_no_header_yields_peer_is_client",
        ALL,
        "10.0.0.1",
        &[],
        Ok(("10.0.0.1", Socket)),
    ),
    (
        "order_malformed_first_header_does_not_fall_back",
        &[Forwarded, XForwardedFor],
        "10.0.0.1",
        &[("forwarded", "for=??"), ("x-forwarded-for", "1.1.1.1")],
        Err(ForwardedError::MalformedForwarded),
    ),
];

#[test]
fn resolve_client_ip_table_matches_expectations() {
    for &(name, order, peer, pairs, want) in CASES {
        let got = resolve_client_ip(&config(TRUSTED, order), ip(peer), Socket, &headers(pairs))
            .map(|c| (c.addr, c.source));
        let want = want.map(|(addr, source)| (ip(addr), source));
        assert_eq!(got, want, "case {name}");
    }
}

#[test]
fn resolve_client_ip_peer_source_is_kept_when_no_header_yields() {
    let cfg = config(TRUSTED, ALL);
    for (name, peer) in [("untrusted", "192.0.2.1"), ("trusted", "10.0.0.1")] {
        let got = resolve_client_ip(&cfg, ip(peer), ProxyProtocol, &HeaderMap::new());
        assert_eq!(
            got,
            Ok(ClientIp {
                addr: ip(peer),
                source: ProxyProtocol
            }),
            "case {name}"
        );
    }
}

#[test]
fn resolve_client_ip_non_ascii_bytes_are_malformed() {
    const CASES: &[(&str, ForwardHeader, &str, ForwardedError)] = &[
        (
            "xff",
            XForwardedFor,
            "x-forwarded-for",
            ForwardedError::MalformedXForwardedFor,
        ),
        (
            "forwarded",
            Forwarded,
            "forwarded",
            ForwardedError::MalformedForwarded,
        ),
        (
            "x_real_ip",
            XRealIp,
            "x-real-ip",
            ForwardedError::MalformedXRealIp,
        ),
    ];
    for &(name, header, header_name, want) in CASES {
        let mut map = HeaderMap::new();
        let value = HeaderValue::from_bytes(b"1.2.3.4\xff").unwrap();
        map.insert(HeaderName::from_static(header_name), value);
        let got = resolve_client_ip(&config(TRUSTED, &[header]), ip("10.0.0.1"), Socket, &map);
        assert_eq!(got, Err(want), "case {name}");
    }
}

#[test]
fn resolve_client_ip_hop_count_above_limit_is_rejected() {
    let chain = |n: usize| vec!["192.0.2.1"; n].join(",");
    let forwarded = |n: usize| vec!["for=192.0.2.1"; n].join(",");
    let too_many = Err(ForwardedError::TooManyHops { limit: MAX_HOPS });
    type Lines = Vec<(&'static str, String)>;
    let cases: Vec<(&str, ForwardHeader, Lines, bool)> = vec![
        (
            "xff_64_hops_ok",
            XForwardedFor,
            vec![("x-forwarded-for", chain(64))],
            true,
        ),
        (
            "xff_65_hops_rejected",
            XForwardedFor,
            vec![("x-forwarded-for", chain(65))],
            false,
        ),
        (
            "xff_65_hops_across_lines_rejected",
            XForwardedFor,
            vec![
                ("x-forwarded-for", chain(40)),
                ("x-forwarded-for", chain(25)),
            ],
            false,
        ),
        (
            "forwarded_64_hops_ok",
            Forwarded,
            vec![("forwarded", forwarded(64))],
            true,
        ),
        (
            "forwarded_65_hops_rejected",
            Forwarded,
            vec![("forwarded", forwarded(65))],
            false,
        ),
    ];
    for (name, header, lines, ok) in cases {
        let pairs: Vec<(&str, &str)> = lines.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let got = resolve_client_ip(
            &config(TRUSTED, &[header]),
            ip("10.0.0.1"),
            Socket,
            &headers(&pairs),
        );
        let want = if ok {
            Ok(ClientIp {
                addr: ip("192.0.2.1"),
                source: header.source(),
            })
        } else {
            too_many
        };
        assert_eq!(got, want, "case {name}");
    }
}

#[test]
fn net_list_contains_normalises_mapped_addresses_and_nets() {
    const CASES: &[(&str, &str, &str, bool)] = &[
        ("v4_in_cidr", "10.0.0.0/8", "10.1.2.3", true),
        ("v4_outside_cidr", "10.0.0.0/8", "11.0.0.1", false),
        (
            "mapped_addr_in_v4_cidr",
            "10.0.0.0/8",
            "::ffff:10.1.2.3",
            true,
        ),
        (
            "v4_addr_in_mapped_cidr",
            "::ffff:10.0.0.0/104",
            "10.200.0.1",
            true,
        ),
        ("bare_address_is_host_net", "192.0.2.7", "192.0.2.7", true),
        (
            "bare_address_excludes_neighbour",
            "192.0.2.7",
            "192.0.2.8",
            false,
        ),
        ("host_bits_are_cleared", "10.1.2.3/8", "10.9.9.9", true),
        ("v6_in_cidr", "2001:db8::/32", "2001:db8::1", true),
        ("empty_list_contains_nothing", "", "10.0.0.1", false),
    ];
    for &(name, nets, addr, want) in CASES {
        let list: NetList = nets.parse().unwrap();
        assert_eq!(list.contains(ip(addr)), want, "case {name}");
    }
}

#[test]
fn net_list_parse_invalid_entry_is_rejected() {
    for (name, entry) in [
        ("word", "proxy"),
        ("bad_prefix", "10.0.0.0/33"),
        ("empty", ""),
    ] {
        let got = NetList::parse([entry]);
        assert_eq!(
            got,
            Err(InvalidNet {
                value: entry.to_owned()
            }),
            "case {name}"
        );
    }
}

#[test]
fn forward_header_from_str_round_trips_and_rejects_unknown() {
    for header in [XForwardedFor, Forwarded, XRealIp] {
        assert_eq!(header.as_str().parse(), Ok(header), "case {header}");
        assert_eq!(header.name().as_str(), header.as_str(), "case {header}");
    }
    assert_eq!(
        "X-Forwarded-For".parse(),
        Ok(XForwardedFor),
        "case mixed_case"
    );
    assert!(
        "x-client-ip".parse::<ForwardHeader>().is_err(),
        "case unknown"
    );
}

#[test]
fn labels_and_reasons_are_stable_snake_case() {
    let labels = [
        Socket,
        ProxyProtocol,
        SrcXff,
        SrcFwd,
        ClientIpSource::XRealIp,
    ]
    .map(ClientIpSource::as_label);
    assert_eq!(
        labels,
        [
            "socket",
            "proxy_protocol",
            "x_forwarded_for",
            "forwarded",
            "x_real_ip"
        ]
    );
    let reasons = [
        ForwardedError::MalformedXForwardedFor,
        ForwardedError::MalformedForwarded,
        ForwardedError::MalformedXRealIp,
        ForwardedError::UnidentifiableClient,
        ForwardedError::TooManyHops { limit: 64 },
    ]
    .map(|e| e.reason());
    let want = [
        "malformed_x_forwarded_for",
        "malformed_forwarded",
        "malformed_x_real_ip",
        "unidentifiable_client",
        "too_many_hops",
    ];
    assert_eq!(reasons, want);
}

// === property tests ===

/// A small address universe so that random trusted sets and chains overlap.
fn arb_ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        (0u8..4, 0u8..8).prop_map(|(c, d)| IpAddr::from([10, 0, c, d])),
        (0u8..4, 0u8..8)
            .prop_map(|(c, d)| IpAddr::V6(std::net::Ipv4Addr::new(10, 0, c, d).to_ipv6_mapped())),
        (0u16..8).prop_map(|h| IpAddr::from([0x2001, 0xdb8, 0, 0, 0, 0, 0, h])),
    ]
}

fn arb_net() -> impl Strategy<Value = IpNet> {
    prop_oneof![
        (0u8..4, prop_oneof![Just(24u8), Just(32u8), Just(30u8)]).prop_map(|(c, p)| IpNet::new(
            IpAddr::from([10, 0, c, 0]),
            p
        )
        .unwrap()
        .trunc()),
        (0u16..8, prop_oneof![Just(125u8), Just(128u8)]).prop_map(|(h, p)| IpNet::new(
            IpAddr::from([0x2001, 0xdb8, 0, 0, 0, 0, 0, h]),
            p
        )
        .unwrap()
        .trunc()),
    ]
}

/// One way of writing an address in an XFF element.
fn render(addr: IpAddr, style: u8) -> String {
    match (addr, style % 3) {
        (IpAddr::V4(v4), 1) => format!("{v4}:1234"),
        (IpAddr::V6(v6), 1) => format!("[{v6}]:443"),
        (IpAddr::V6(v6), 2) => format!("[{v6}]"),
        (a, _) => a.to_string(),
    }
}

/// The docs/contract.md §4 rule written as plainly as possible.
fn reference(trusted: &[IpNet], peer: IpAddr, chain: &[IpAddr]) -> Result<IpAddr, ForwardedError> {
    let canon = |a: IpAddr| a.to_canonical();
    let is_trusted = |a: IpAddr| trusted.iter().any(|n| n.contains(&canon(a)));
    if !is_trusted(peer) || chain.is_empty() {
        return Ok(canon(peer));
    }
    if chain.len() > MAX_HOPS {
        return Err(ForwardedError::TooManyHops { limit: MAX_HOPS });
    }
    let client = chain
        .iter()
        .rev()
        .find(|a| !is_trusted(**a))
        .unwrap_or(&chain[0]);
    Ok(canon(*client))
}

proptest! {
    #[test]
    fn resolve_client_ip_matches_reference(
        trusted in proptest::collection::vec(arb_net(), 0..5),
        peer in arb_ip(),
        hops in proptest::collection::vec((arb_ip(), any::<u8>(), any::<bool>()), 0..70),
    ) {
        // Each hop: address, rendering style, and whether a new header line starts after it.
        let mut lines = vec![String::new()];
        for (addr, style, split) in &hops {
            let line = lines.last_mut().unwrap();
            if !line.is_empty() {
                line.push_str(", ");
            }
            line.push_str(&render(*addr, *style));
            if *split {
                lines.push(String::new());
            }
        }
        let pairs: Vec<(&str, &str)> = lines.iter().map(|l| ("x-forwarded-for", l.as_str())).collect();
        let cfg = ClientIpConfig { trusted_proxies: trusted.iter().copied().collect(), headers: vec![XForwardedFor] };
        let got = resolve_client_ip(&cfg, peer, Socket, &headers(&pairs)).map(|c| c.addr);
        let chain: Vec<IpAddr> = hops.iter().map(|h| h.0).collect();
        prop_assert_eq!(got, reference(&trusted, peer, &chain));
    }

    #[test]
    fn resolve_client_ip_arbitrary_headers_never_panic(value in "[ -~]{0,200}") {
        let cfg = config("0.0.0.0/0, ::/0", ALL);
        for name in ["x-forwarded-for", "forwarded", "x-real-ip"] {
            let _ = resolve_client_ip(&cfg, ip("10.0.0.1"), Socket, &headers(&[(name, &value)]));
        }
    }

    #[test]
    fn resolve_client_ip_forwarded_shaped_input_never_panics(value in "(for|by|proto)=(\"[\\[\\]:a-f0-9._\\\\]{0,12}\"|[a-z0-9._]{0,8})([;,] ?(for|by)=\"?[\\[\\]:0-9a-f._]{0,10}\"?){0,4}") {
        let cfg = config("0.0.0.0/0, ::/0", &[Forwarded]);
        let _ = resolve_client_ip(&cfg, ip("10.0.0.1"), Socket, &headers(&[("forwarded", &value)]));
    }
}
