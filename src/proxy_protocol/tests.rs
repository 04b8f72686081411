//! Tests for the PROXY protocol parser, with headers made by the test-only [`super::builder`].

use super::builder::{V2Builder, v1, v1_unknown};
use super::*;
use proptest::prelude::*;

const RULES: &[TlvRule] = &[TlvRule::aws(), TlvRule::azure(), TlvRule::gcp()];
/// Start of a TLS ClientHello record: must never be eaten by the parser.
const TLS_HELLO: &[u8] = &[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc];
const CUSTOM_E2: TlvRule = TlvRule {
    tlv_type: 0xE2,
    subtype: None,
    encoding: TlvEncoding::U64Le,
    yields: Yields::Marker,
};
const ALL_RULES: &[TlvRule] = &[TlvRule::aws(), TlvRule::azure(), TlvRule::gcp(), CUSTOM_E2];

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn header(version: u8, command: Command, addrs: Option<(&str, &str)>) -> ProxyHeader {
    let mut h = empty_header(version, command);
    if let Some((s, d)) = addrs {
        h.source = Some(sa(s));
        h.destination = Some(sa(d));
    }
    h
}

fn complete(buf: &[u8], rules: &[TlvRule]) -> (ProxyHeader, usize) {
    match parse(buf, rules) {
        Ok(Parsed::Complete { header, len }) => (header, len),
        other => panic!("expected a complete header, got {other:?}"),
    }
}

/// Patch one byte of a built header (for hand-made invalid inputs).
fn patched(mut bytes: Vec<u8>, at: usize, value: u8) -> Vec<u8> {
    bytes[at] = value;
    bytes
}

fn ipv4_builder() -> V2Builder {
    V2Builder::proxy(sa("192.0.2.1:56324"), sa("198.51.100.2:443"))
}

/// Every variant, for exhaustive checks on `reason`.
const ALL_ERRORS: &[ProxyHeaderError] = &[
    E::NotProxy,
    E::Oversize,
    E::V1MissingCrlf,
    E::V1Malformed,
    E::V1BadAddress,
    E::V1BadPort,
    E::V2BadVersion,
    E::V2BadCommand,
    E::V2BadFamily,
    E::V2AddressTooShort,
    E::TlvMalformed,
    E::CrcMismatch,
    E::VendorTlvInvalid,
];

#[test]
fn detect_buffer_starts_classified() {
    let sig = V2_SIGNATURE;
    let cases: &[(&str, &[u8], Detect)] = &[
        ("empty", b"", Detect::NeedMore),
        ("one_letter", b"P", Detect::NeedMore),
        ("proxy_without_space", b"PROXY", Detect::NeedMore),
        ("v1_signature", b"PROXY ", Detect::V1),
        ("v1_line_start", b"PROXY TCP4 1.2", Detect::V1),
        ("v2_first_byte", &sig[..1], Detect::NeedMore),
        ("v2_eleven_bytes", &sig[..11], Detect::NeedMore),
        ("v2_signature", &sig, Detect::V2),
        (
            "v2_signature_and_more",
            &[&sig[..], &[0x21, 0x11]].concat(),
            Detect::V2,
        ),
        ("tls_client_hello", TLS_HELLO, Detect::NotProxy),
        ("http_get", b"GET / HTTP/1.1\r\n", Detect::NotProxy),
        ("lowercase_proxy", b"proxy ", Detect::NotProxy),
        ("proxy_wrong_sixth_byte", b"PROXY\t", Detect::NotProxy),
        (
            "v2_last_byte_wrong",
            &[&sig[..11], b"X"].concat(),
            Detect::NotProxy,
        ),
        ("crlf_then_other", b"\r\nX", Detect::NotProxy),
    ];
    for (name, bytes, want) in cases {
        assert_eq!(detect(bytes), *want, "case {name}");
    }
}

#[test]
fn parse_non_proxy_input_not_proxy() {
    let cases: &[(&str, &[u8])] = &[
        ("tls", TLS_HELLO),
        ("http", b"GET / HTTP/1.1\r\n"),
        ("nul", b"\0"),
    ];
    for (name, bytes) in cases {
        let got = parse(bytes, RULES);
        assert!(
            matches!(got, Err(ProxyHeaderError::NotProxy)),
            "case {name}: {got:?}"
        );
    }
}

#[test]
fn v1_valid_lines_decoded() {
    let max_tcp6: &[u8] = b"PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff \
        ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
    let cases: &[(&str, &[u8], ProxyHeader)] = &[
        (
            "tcp4",
            b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n",
            header(
                1,
                Command::Proxy,
                Some(("192.0.2.1:56324", "198.51.100.2:443")),
            ),
        ),
        (
            "tcp4_zero_ports",
            b"PROXY TCP4 0.0.0.0 255.255.255.255 0 0\r\n",
            header(1, Command::Proxy, Some(("0.0.0.0:0", "255.255.255.255:0"))),
        ),
        (
            "tcp6",
            b"PROXY TCP6 2001:db8::1 2001:DB8::2 1 65535\r\n",
            header(
                1,
                Command::Proxy,
                Some(("[2001:db8::1]:1", "[2001:db8::2]:65535")),
            ),
        ),
        (
            "tcp6_v4_mapped",
            b"PROXY TCP6 ::ffff:192.0.2.1 ::1 80 8080\r\n",
            header(
                1,
                Command::Proxy,
                Some(("[::ffff:192.0.2.1]:80", "[::1]:8080")),
            ),
        ),
        (
            "tcp6_longest_line",
            max_tcp6,
            header(
                1,
                Command::Proxy,
                Some((
                    "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535",
                    "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535",
                )),
            ),
        ),
        (
            "unknown",
            b"PROXY UNKNOWN\r\n",
            header(1, Command::Local, None),
        ),
        (
            "unknown_with_addresses_ignored",
            b"PROXY UNKNOWN ffff:f::1 ::2 65535 65535\r\n",
            header(1, Command::Local, None),
        ),
        (
            "unknown_with_garbage_ignored",
            b"PROXY UNKNOWN \xff\xfe junk\r\n",
            header(1, Command::Local, None),
        ),
    ];
    for (name, line, want) in cases {
        let buf = cat(&[line, TLS_HELLO]);
        let got = parse(&buf, RULES);
        let want = Ok(Parsed::Complete {
            header: want.clone(),
            len: line.len(),
        });
        assert_eq!(got, want, "case {name}");
    }
}

#[test]
fn v1_line_length_limit_enforced_at_107_bytes() {
    let line_of = |total: usize| {
        let mut l = b"PROXY UNKNOWN ".to_vec();
        l.resize(total - 2, b'x');
        l.extend_from_slice(b"\r\n");
        l
    };
    let exactly_107 = line_of(107);
    assert_eq!(
        complete(&exactly_107, RULES).1,
        107,
        "107-byte line accepted"
    );
    let too_long = line_of(108);
    let got = parse(&too_long, RULES);
    assert!(
        matches!(got, Err(E::V1MissingCrlf)),
        "108-byte line: {got:?}"
    );
    let no_crlf = &too_long[..107];
    assert!(
        matches!(parse(no_crlf, RULES), Err(E::V1MissingCrlf)),
        "107 bytes without CRLF"
    );
    assert_eq!(
        parse(&too_long[..106], RULES),
        Ok(Parsed::Incomplete),
        "106 bytes without CRLF"
    );
    let cr_at_107 = cat(&[&too_long[..106], b"\r"]);
    assert!(
        matches!(parse(&cr_at_107, RULES), Err(E::V1MissingCrlf)),
        "CR as 107th byte"
    );
}

#[test]
fn v1_malformed_lines_rejected() {
    let cases: &[(&str, &[u8], ProxyHeaderError)] = &[
        ("empty_protocol", b"PROXY \r\n", E::V1Malformed),
        (
            "lowercase_protocol",
            b"PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n",
            E::V1Malformed,
        ),
        (
            "unknown_protocol",
            b"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n",
            E::V1Malformed,
        ),
        ("unknown_suffix", b"PROXY UNKNOWNX\r\n", E::V1Malformed),
        ("tcp4_no_fields", b"PROXY TCP4\r\n", E::V1Malformed),
        (
            "missing_port",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
            E::V1Malformed,
        ),
        (
            "extra_field",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",
            E::V1Malformed,
        ),
        (
            "double_space",
            b"PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n",
            E::V1Malformed,
        ),
        (
            "trailing_space",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n",
            E::V1Malformed,
        ),
        (
            "tab_separator",
            b"PROXY TCP4\t1.2.3.4 5.6.7.8 1 2\r\n",
            E::V1Malformed,
        ),
        (
            "tcp4_with_ipv6",
            b"PROXY TCP4 ::1 5.6.7.8 1 2\r\n",
            E::V1BadAddress,
        ),
        (
            "tcp4_with_ipv6_dst",
            b"PROXY TCP4 1.2.3.4 ::1 1 2\r\n",
            E::V1BadAddress,
        ),
        (
            "tcp6_with_ipv4",
            b"PROXY TCP6 1.2.3.4 ::1 1 2\r\n",
            E::V1BadAddress,
        ),
        (
            "octet_too_big",
            b"PROXY TCP4 256.2.3.4 5.6.7.8 1 2\r\n",
            E::V1BadAddress,
        ),
        (
            "octet_leading_zero",
            b"PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n",
            E::V1BadAddress,
        ),
        (
            "three_octets",
            b"PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n",
            E::V1BadAddress,
        ),
        (
            "hostname",
            b"PROXY TCP4 localhost 5.6.7.8 1 2\r\n",
            E::V1BadAddress,
        ),
        (
            "ipv6_with_zone",
            b"PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n",
            E::V1BadAddress,
        ),
        (
            "ipv6_bracketed",
            b"PROXY TCP6 [::1] ::1 1 2\r\n",
            E::V1BadAddress,
        ),
        (
            "non_utf8_address",
            b"PROXY TCP4 1.2.3.\xff 5.6.7.8 1 2\r\n",
            E::V1BadAddress,
        ),
        (
            "port_too_big",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",
            E::V1BadPort,
        ),
        (
            "port_plus_sign",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 +80 2\r\n",
            E::V1BadPort,
        ),
        (
            "port_negative",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 -2\r\n",
            E::V1BadPort,
        ),
        (
            "port_leading_zero",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 080 2\r\n",
            E::V1BadPort,
        ),
        (
            "port_six_digits",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 000001 2\r\n",
            E::V1BadPort,
        ),
        (
            "port_hex",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 0x50 2\r\n",
            E::V1BadPort,
        ),
        (
            "port_with_lf",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n\r\n",
            E::V1BadPort,
        ),
    ];
    for (name, line, want) in cases {
        assert_eq!(parse(line, RULES), Err(*want), "case {name}");
    }
}

#[test]
fn v2_valid_headers_decoded() {
    let sig = &V2_SIGNATURE[..];
    // Spec-shaped bytes written by hand, independent of the builder.
    let hand_ipv4 = cat(&[
        sig,
        &[0x21, 0x11, 0x00, 0x0C],
        &[192, 0, 2, 1, 198, 51, 100, 2, 0xDC, 0x04, 0x01, 0xBB],
    ]);
    let v4 = Some(("192.0.2.1:56324", "198.51.100.2:443"));
    let v6 = Some(("[2001:db8::1]:1234", "[2001:db8::2]:443"));
    let cases: Vec<(&str, Vec<u8>, ProxyHeader)> = vec![
        (
            "ipv4_hand_written",
            hand_ipv4.clone(),
            header(2, Command::Proxy, v4),
        ),
        (
            "ipv4_builder",
            ipv4_builder().build(),
            header(2, Command::Proxy, v4),
        ),
        (
            "ipv4_dgram",
            ipv4_builder().dgram().build(),
            header(2, Command::Proxy, v4),
        ),
        (
            "ipv4_transport_unspec",
            patched(hand_ipv4.clone(), 13, 0x10),
            header(2, Command::Proxy, v4),
        ),
        (
            "ipv6",
            V2Builder::proxy(sa("[2001:db8::1]:1234"), sa("[2001:db8::2]:443")).build(),
            header(2, Command::Proxy, v6),
        ),
        (
            "mixed_families_v4_mapped",
            V2Builder::proxy(sa("192.0.2.1:1"), sa("[::1]:2")).build(),
            header(2, Command::Proxy, Some(("[::ffff:192.0.2.1]:1", "[::1]:2"))),
        ),
        (
            "unspec_proxy",
            V2Builder::unspec().build(),
            header(2, Command::Proxy, None),
        ),
        (
            "local_unspec",
            V2Builder::unspec().local().build(),
            header(2, Command::Local, None),
        ),
        (
            "local_with_addresses_and_tlvs_discarded",
            ipv4_builder()
                .local()
                .aws_vpce("vpce-1")
                .unique_id(b"id")
                .build(),
            header(2, Command::Local, None),
        ),
        (
            "local_bad_crc_discarded",
            V2Builder::unspec().local().corrupt_crc().build(),
            header(2, Command::Local, None),
        ),
        (
            "local_short_address_block_discarded",
            ipv4_builder().local().length_override(0).build()[..16].to_vec(),
            header(2, Command::Local, None),
        ),
        (
            "unix",
            V2Builder::unix(b"/run/a.sock", b"/run/b.sock").build(),
            header(2, Command::Proxy, None),
        ),
        (
            "address_block_longer_than_family",
            // Extra bytes after the address block form a valid NOOP TLV here.
            cat(&[&patched(hand_ipv4.clone(), 15, 0x0F), &[0x04, 0x00, 0x00]]),
            header(2, Command::Proxy, v4),
        ),
    ];
    for (name, bytes, want) in cases {
        let buf = cat(&[&bytes, TLS_HELLO]);
        let want = Ok(Parsed::Complete {
            header: want,
            len: bytes.len(),
        });
        assert_eq!(parse(&buf, RULES), want, "case {name}");
    }
}

#[test]
fn v2_invalid_headers_rejected() {
    let v4 = ipv4_builder().build();
    let tlv_at_end = |ty: u8, value: &[u8]| V2Builder::unspec().tlv(ty, value).build();
    let cases: Vec<(&str, Vec<u8>, ProxyHeaderError)> = vec![
        ("version_1", patched(v4.clone(), 12, 0x11), E::V2BadVersion),
        ("version_3", patched(v4.clone(), 12, 0x31), E::V2BadVersion),
        (
            "version_0_local",
            patched(v4.clone(), 12, 0x00),
            E::V2BadVersion,
        ),
        ("command_2", patched(v4.clone(), 12, 0x22), E::V2BadCommand),
        ("command_15", patched(v4.clone(), 12, 0x2F), E::V2BadCommand),
        ("family_4", patched(v4.clone(), 13, 0x41), E::V2BadFamily),
        ("family_15", patched(v4.clone(), 13, 0xF1), E::V2BadFamily),
        ("transport_3", patched(v4.clone(), 13, 0x13), E::V2BadFamily),
        (
            "local_family_4",
            patched(patched(v4.clone(), 12, 0x20), 13, 0x41),
            E::V2BadFamily,
        ),
        (
            "ipv4_block_8_bytes",
            ipv4_builder().length_override(8).build(),
            E::V2AddressTooShort,
        ),
        (
            "ipv4_block_empty",
            ipv4_builder().length_override(0).build(),
            E::V2AddressTooShort,
        ),
        (
            "ipv6_block_12_bytes",
            V2Builder::proxy(sa("[::1]:1"), sa("[::2]:2"))
                .length_override(12)
                .build(),
            E::V2AddressTooShort,
        ),
        (
            "unix_block_100_bytes",
            V2Builder::unix(b"a", b"b").length_override(100).build(),
            E::V2AddressTooShort,
        ),
        (
            "length_ffff",
            ipv4_builder().length_override(0xFFFF).build(),
            E::Oversize,
        ),
        (
            "length_one_over_cap",
            ipv4_builder().length_override(4081).build(),
            E::Oversize,
        ),
        (
            "local_length_ffff",
            V2Builder::unspec().local().length_override(0xFFFF).build(),
            E::Oversize,
        ),
        (
            "tlv_value_truncated",
            V2Builder::unspec().noop(10).length_override(12).build(),
            E::TlvMalformed,
        ),
        (
            "tlv_header_dangling_2",
            cat(&[
                &V2Builder::unspec().length_override(2).build(),
                &[0x04, 0x00],
            ]),
            E::TlvMalformed,
        ),
        (
            "tlv_header_dangling_1",
            cat(&[&V2Builder::unspec().length_override(1).build(), &[0x04]]),
            E::TlvMalformed,
        ),
        (
            "crc_wrong",
            ipv4_builder().aws_vpce("vpce-1").corrupt_crc().build(),
            E::CrcMismatch,
        ),
        (
            "crc_wrong_after_body_change",
            patched(ipv4_builder().crc32c(true).build(), 16, 10),
            E::CrcMismatch,
        ),
        (
            "crc_len_3",
            tlv_at_end(PP2_TYPE_CRC32C, &[0, 0, 0]),
            E::TlvMalformed,
        ),
        (
            "crc_len_5",
            tlv_at_end(PP2_TYPE_CRC32C, &[0; 5]),
            E::TlvMalformed,
        ),
        (
            "crc_twice",
            V2Builder::unspec()
                .tlv(PP2_TYPE_CRC32C, &[0; 4])
                .crc32c(true)
                .build(),
            E::TlvMalformed,
        ),
        (
            "unique_id_129",
            tlv_at_end(PP2_TYPE_UNIQUE_ID, &[7; 129]),
            E::TlvMalformed,
        ),
        (
            "authority_not_utf8",
            tlv_at_end(PP2_TYPE_AUTHORITY, b"a\xffb"),
            E::TlvMalformed,
        ),
        (
            "ssl_too_short",
            tlv_at_end(PP2_TYPE_SSL, &[1, 0, 0, 0]),
            E::TlvMalformed,
        ),
        (
            "ssl_sub_tlv_truncated",
            tlv_at_end(PP2_TYPE_SSL, &[1, 0, 0, 0, 0, 0x21, 0, 9, b'T']),
            E::TlvMalformed,
        ),
        (
            "ssl_version_not_ascii",
            V2Builder::unspec().ssl(1, 0, Some("TLSv1.3\u{e9}")).build(),
            E::TlvMalformed,
        ),
    ];
    for (name, bytes, want) in cases {
        let got = parse(&bytes, RULES);
        assert_eq!(got, Err(want), "case {name}");
    }
}

#[test]
fn v2_oversize_length_rejected_once_fixed_bytes_known() {
    let bytes = ipv4_builder().length_override(0xFFFF).build();
    assert_eq!(parse(&bytes[..15], RULES), Ok(Parsed::Incomplete));
    let got = parse(&bytes[..16], RULES);
    assert!(matches!(got, Err(ProxyHeaderError::Oversize)), "{got:?}");
}

#[test]
fn v2_header_of_exactly_max_len_accepted() {
    let at_cap = V2Builder::unspec().noop(MAX_HEADER_LEN - 16 - 3).build();
    assert_eq!(at_cap.len(), MAX_HEADER_LEN);
    assert_eq!(complete(&at_cap, RULES).1, MAX_HEADER_LEN);
    let over = V2Builder::unspec().noop(MAX_HEADER_LEN - 16 - 2).build();
    assert!(matches!(
        parse(&over[..16], RULES),
        Err(ProxyHeaderError::Oversize)
    ));
}

#[test]
fn tlv_standard_types_decoded() {
    type Check = fn(&ProxyHeader) -> bool;
    let cases: Vec<(&str, Vec<u8>, Check)> = vec![
        ("no_crc_not_verified", ipv4_builder().build(), |h| {
            !h.crc_verified
        }),
        (
            "good_crc_verified",
            ipv4_builder().crc32c(true).build(),
            |h| h.crc_verified,
        ),
        (
            "crc_off_not_written",
            ipv4_builder().crc32c(true).crc32c(false).build(),
            |h| !h.crc_verified,
        ),
        (
            "noop_tolerated",
            ipv4_builder().noop(0).noop(5).build(),
            |h| h.source.is_some(),
        ),
        (
            "good_crc_with_every_tlv",
            ipv4_builder()
                .noop(3)
                .authority("a.example")
                .unique_id(b"u")
                .aws_vpce("vpce-9")
                .crc32c(true)
                .build(),
            |h| {
                h.crc_verified
                    && h.unique_id.as_deref() == Some(b"u")
                    && h.authority.is_some()
                    && h.endpoint.is_some()
            },
        ),
        (
            "unique_id",
            ipv4_builder().unique_id(b"conn-42").build(),
            |h| h.unique_id.as_deref() == Some(b"conn-42".as_slice()),
        ),
        (
            "unique_id_128_bytes",
            ipv4_builder().unique_id(&[9; 128]).build(),
            |h| h.unique_id.as_ref().map(Vec::len) == Some(128),
        ),
        (
            "unique_id_empty",
            ipv4_builder().unique_id(b"").build(),
            |h| h.unique_id == Some(vec![]),
        ),
        (
            "authority",
            ipv4_builder().authority("api.example.com").build(),
            |h| h.authority.as_deref() == Some("api.example.com"),
        ),
        (
            "authority_first_wins",
            ipv4_builder().authority("a").authority("b").build(),
            |h| h.authority.as_deref() == Some("a"),
        ),
        (
            "ssl_with_version",
            ipv4_builder().ssl(0x07, 0, Some("TLSv1.3")).build(),
            |h| {
                h.ssl
                    == Some(SslInfo {
                        client: 0x07,
                        verify: 0,
                        version: Some("TLSv1.3".into()),
                    })
            },
        ),
        (
            "ssl_without_version",
            ipv4_builder().ssl(0x01, 1, None).build(),
            |h| {
                h.ssl
                    == Some(SslInfo {
                        client: 0x01,
                        verify: 1,
                        version: None,
                    })
            },
        ),
        (
            "unknown_types_ignored",
            ipv4_builder()
                .tlv(0x30, b"netns")
                .tlv(0xF0, b"x")
                .tlv(0xE5, b"")
                .build(),
            |h| h.endpoint.is_none() && h.ssl.is_none(),
        ),
        (
            "unix_tlvs_after_216_bytes",
            V2Builder::unix(b"/a", b"/b").unique_id(b"u").build(),
            |h| h.unique_id.as_deref() == Some(b"u".as_slice()),
        ),
    ];
    for (name, bytes, check) in cases {
        let (h, len) = complete(&cat(&[&bytes, TLS_HELLO]), RULES);
        assert_eq!(len, bytes.len(), "case {name}");
        assert!(check(&h), "case {name}: {h:?}");
    }
}

/// (name, header bytes, rules, expected endpoint).
type VendorCase = (&'static str, Vec<u8>, Vec<TlvRule>, Option<EndpointTlv>);

#[test]
fn vendor_tlvs_matched_by_rules() {
    let aws = TlvRule::aws();
    let gcp = TlvRule::gcp();
    let ascii_marker = TlvRule {
        tlv_type: 0xE3,
        subtype: None,
        encoding: TlvEncoding::Ascii,
        yields: Yields::Marker,
    };
    let u32be_id = TlvRule {
        tlv_type: 0xE4,
        subtype: Some(9),
        encoding: TlvEncoding::U32Be,
        yields: Yields::VpcepId,
    };
    let vpce = |s: &str| Some(EndpointTlv::VpcepId(s.to_owned()));
    let cases: Vec<VendorCase> = vec![
        (
            "aws",
            ipv4_builder().aws_vpce("vpce-0abc123def4567890").build(),
            RULES.to_vec(),
            vpce("vpce-0abc123def4567890"),
        ),
        (
            "aws_64_chars",
            ipv4_builder().aws_vpce(&"a".repeat(64)).build(),
            vec![aws],
            vpce(&"a".repeat(64)),
        ),
        (
            "azure",
            ipv4_builder().azure_link_id(7).build(),
            RULES.to_vec(),
            Some(EndpointTlv::Marker(7)),
        ),
        (
            "azure_little_endian_raw",
            ipv4_builder()
                .tlv(0xEE, &[0x01, 0x04, 0x03, 0x02, 0x01])
                .build(),
            RULES.to_vec(),
            Some(EndpointTlv::Marker(0x0102_0304)),
        ),
        (
            "gcp",
            ipv4_builder().gcp_psc_id(42).build(),
            RULES.to_vec(),
            Some(EndpointTlv::Marker(42)),
        ),
        (
            "gcp_big_endian_raw",
            ipv4_builder().tlv(0xE0, &[1, 2, 3, 4, 5, 6, 7, 8]).build(),
            RULES.to_vec(),
            Some(EndpointTlv::Marker(0x0102_0304_0506_0708)),
        ),
        (
            "custom_e2_u64le",
            ipv4_builder().tlv(0xE2, &[1, 2, 3, 4, 5, 6, 7, 8]).build(),
            vec![CUSTOM_E2],
            Some(EndpointTlv::Marker(0x0807_0605_0403_0201)),
        ),
        (
            "custom_ascii_marker",
            ipv4_builder().tlv(0xE3, b"12345").build(),
            vec![ascii_marker],
            Some(EndpointTlv::Marker(12345)),
        ),
        (
            "custom_u32be_id_decimal",
            ipv4_builder().tlv(0xE4, &[9, 0, 0, 1, 0]).build(),
            vec![u32be_id],
            vpce("256"),
        ),
        (
            "aws_other_subtype_skipped",
            ipv4_builder().tlv(0xEA, b"\x02whatever").build(),
            RULES.to_vec(),
            None,
        ),
        (
            "aws_other_subtype_then_match",
            ipv4_builder()
                .tlv(0xEA, b"\x02x")
                .aws_vpce("vpce-2")
                .build(),
            RULES.to_vec(),
            vpce("vpce-2"),
        ),
        (
            "aws_first_of_two_wins",
            ipv4_builder().aws_vpce("vpce-1").aws_vpce("vpce-2").build(),
            vec![aws],
            vpce("vpce-1"),
        ),
        (
            "rule_order_gcp_first",
            ipv4_builder().aws_vpce("vpce-1").gcp_psc_id(5).build(),
            vec![gcp, aws],
            Some(EndpointTlv::Marker(5)),
        ),
        (
            "rule_order_aws_first",
            ipv4_builder().aws_vpce("vpce-1").gcp_psc_id(5).build(),
            vec![aws, gcp],
            vpce("vpce-1"),
        ),
        (
            "second_rule_when_first_absent",
            ipv4_builder().gcp_psc_id(5).build(),
            vec![aws, gcp],
            Some(EndpointTlv::Marker(5)),
        ),
        (
            "no_rules_no_endpoint",
            ipv4_builder().aws_vpce("vpce-1").build(),
            vec![],
            None,
        ),
        (
            "unconfigured_vendor_ignored",
            ipv4_builder().azure_link_id(1).build(),
            vec![aws, gcp],
            None,
        ),
        (
            "unconfigured_invalid_vendor_ignored",
            ipv4_builder().tlv(0xEE, b"\x01").build(),
            vec![aws],
            None,
        ),
        (
            "no_vendor_tlv",
            ipv4_builder().build(),
            RULES.to_vec(),
            None,
        ),
        (
            "local_discards_vendor",
            ipv4_builder().gcp_psc_id(5).local().build(),
            RULES.to_vec(),
            None,
        ),
    ];
    for (name, bytes, rules, want) in cases {
        let (h, _) = complete(&bytes, &rules);
        assert_eq!(h.endpoint, want, "case {name}");
    }
}

#[test]
fn vendor_tlvs_invalid_value_rejected() {
    let ascii_marker = TlvRule {
        tlv_type: 0xE3,
        subtype: None,
        encoding: TlvEncoding::Ascii,
        yields: Yields::Marker,
    };
    let ascii_id = TlvRule {
        tlv_type: 0xE3,
        subtype: None,
        encoding: TlvEncoding::Ascii,
        yields: Yields::VpcepId,
    };
    let b = ipv4_builder;
    let cases: Vec<(&str, Vec<u8>, Vec<TlvRule>)> = vec![
        (
            "azure_3_bytes",
            b().tlv(0xEE, &[1, 0, 0, 0]).build(),
            RULES.to_vec(),
        ),
        (
            "azure_5_bytes",
            b().tlv(0xEE, &[1, 0, 0, 0, 0, 0]).build(),
            RULES.to_vec(),
        ),
        (
            "gcp_7_bytes",
            b().tlv(0xE0, &[0; 7]).build(),
            RULES.to_vec(),
        ),
        (
            "gcp_9_bytes",
            b().tlv(0xE0, &[0; 9]).build(),
            RULES.to_vec(),
        ),
        (
            "custom_u64le_4_bytes",
            b().tlv(0xE2, &[0; 4]).build(),
            vec![CUSTOM_E2],
        ),
        ("aws_empty_id", b().aws_vpce("").build(), RULES.to_vec()),
        (
            "aws_no_subtype_byte",
            b().tlv(0xEA, b"").build(),
            RULES.to_vec(),
        ),
        (
            "aws_underscore",
            b().aws_vpce("vpce_1").build(),
            RULES.to_vec(),
        ),
        ("aws_dot", b().aws_vpce("vpce.1").build(), RULES.to_vec()),
        ("aws_space", b().aws_vpce("vpce 1").build(), RULES.to_vec()),
        (
            "aws_nul_terminated",
            b().aws_vpce("vpce-1\0").build(),
            RULES.to_vec(),
        ),
        (
            "aws_non_ascii",
            b().aws_vpce("vpce-\u{e9}").build(),
            RULES.to_vec(),
        ),
        (
            "aws_65_chars",
            b().aws_vpce(&"a".repeat(65)).build(),
            RULES.to_vec(),
        ),
        (
            "aws_first_invalid_second_valid",
            b().aws_vpce("bad id").aws_vpce("vpce-2").build(),
            RULES.to_vec(),
        ),
        (
            "ascii_marker_not_number",
            b().tlv(0xE3, b"abc").build(),
            vec![ascii_marker],
        ),
        (
            "ascii_marker_overflow",
            b().tlv(0xE3, b"18446744073709551616").build(),
            vec![ascii_marker],
        ),
        (
            "ascii_129_chars",
            b().tlv(0xE3, "a".repeat(129).as_bytes()).build(),
            vec![ascii_id],
        ),
        ("ascii_slash", b().tlv(0xE3, b"a/b").build(), vec![ascii_id]),
        (
            "invalid_first_rule_beats_valid_second",
            b().tlv(0xE0, &[0; 3]).aws_vpce("vpce-1").build(),
            vec![TlvRule::gcp(), TlvRule::aws()],
        ),
    ];
    for (name, bytes, rules) in cases {
        let got = parse(&bytes, &rules);
        assert!(
            matches!(got, Err(ProxyHeaderError::VendorTlvInvalid)),
            "case {name}: {got:?}"
        );
    }
}

fn valid_headers() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("v1_tcp4", v1(sa("192.0.2.1:1"), sa("198.51.100.2:443"))),
        ("v1_tcp6", v1(sa("[2001:db8::1]:65535"), sa("[::1]:0"))),
        ("v1_unknown", v1_unknown()),
        (
            "v1_107_bytes",
            cat(&[b"PROXY UNKNOWN ", &[b'z'; 91], b"\r\n"]),
        ),
        ("v2_ipv4", ipv4_builder().build()),
        (
            "v2_ipv6",
            V2Builder::proxy(sa("[2001:db8::1]:1"), sa("[2001:db8::2]:2")).build(),
        ),
        ("v2_unspec", V2Builder::unspec().build()),
        ("v2_local", V2Builder::unspec().local().build()),
        ("v2_unix", V2Builder::unix(b"/a", b"/b").build()),
        (
            "v2_all_tlvs_crc",
            ipv4_builder()
                .noop(2)
                .authority("h.example")
                .unique_id(b"abc")
                .ssl(1, 0, Some("TLSv1.2"))
                .aws_vpce("vpce-1")
                .azure_link_id(3)
                .gcp_psc_id(4)
                .crc32c(true)
                .build(),
        ),
        (
            "v2_max_len",
            V2Builder::unspec().noop(MAX_HEADER_LEN - 19).build(),
        ),
    ]
}

#[test]
fn parse_every_prefix_of_valid_header_incomplete_then_complete() {
    let v2_start = V2_SIGNATURE.to_vec();
    let trailers: &[(&str, &[u8])] = &[
        ("none", b""),
        ("tls_client_hello", TLS_HELLO),
        ("http", b"GET / HTTP/1.1\r\n"),
        ("another_v1_header", b"PROXY TCP4 1.1.1.1 2.2.2.2 1 2\r\n"),
        ("v2_signature", &v2_start),
    ];
    for (name, h) in valid_headers() {
        let (want, _) = complete(&h, RULES);
        for (tname, trailer) in trailers {
            let full = cat(&[&h, trailer]);
            for k in 0..=full.len() {
                let got = parse(&full[..k], RULES);
                if k < h.len() {
                    assert_eq!(
                        got,
                        Ok(Parsed::Incomplete),
                        "case {name}+{tname} prefix {k}"
                    );
                } else {
                    let expect = Ok(Parsed::Complete {
                        header: want.clone(),
                        len: h.len(),
                    });
                    assert_eq!(got, expect, "case {name}+{tname} prefix {k}");
                }
            }
        }
    }
}

#[test]
fn parse_every_prefix_of_invalid_input_incomplete_or_same_error() {
    let cases: Vec<(&str, Vec<u8>, ProxyHeaderError)> = vec![
        ("tls", TLS_HELLO.to_vec(), E::NotProxy),
        (
            "v1_lowercase",
            b"PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n".to_vec(),
            E::V1Malformed,
        ),
        (
            "v1_bad_port",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n".to_vec(),
            E::V1BadPort,
        ),
        (
            "v1_no_crlf",
            [b"PROXY TCP4 ".as_slice(), &[b'1'; 200]].concat(),
            E::V1MissingCrlf,
        ),
        (
            "v2_bad_version",
            patched(ipv4_builder().build(), 12, 0x11),
            E::V2BadVersion,
        ),
        (
            "v2_bad_command",
            patched(ipv4_builder().build(), 12, 0x25),
            E::V2BadCommand,
        ),
        (
            "v2_bad_family",
            patched(ipv4_builder().build(), 13, 0x51),
            E::V2BadFamily,
        ),
        (
            "v2_oversize",
            ipv4_builder().length_override(0xFFFF).build(),
            E::Oversize,
        ),
        (
            "v2_address_short",
            ipv4_builder().length_override(4).build(),
            E::V2AddressTooShort,
        ),
        (
            "v2_tlv_truncated",
            V2Builder::unspec().noop(10).length_override(12).build(),
            E::TlvMalformed,
        ),
        (
            "v2_bad_crc",
            ipv4_builder().unique_id(b"x").corrupt_crc().build(),
            E::CrcMismatch,
        ),
        (
            "v2_vendor_wrong_len",
            ipv4_builder().tlv(0xE0, &[1]).build(),
            E::VendorTlvInvalid,
        ),
    ];
    for (name, bytes, want) in cases {
        let full = cat(&[&bytes, TLS_HELLO]);
        for k in 0..=full.len() {
            let got = parse(&full[..k], RULES);
            let ok = matches!(got, Ok(Parsed::Incomplete)) || got == Err(want);
            assert!(ok, "case {name} prefix {k}: {got:?}");
        }
        // The whole malformed header (with or without trailing data) is the error itself.
        assert_eq!(parse(&bytes, RULES), Err(want), "case {name} whole");
        assert_eq!(parse(&full, RULES), Err(want), "case {name} whole+trailer");
    }
}

#[test]
fn error_reason_strings_unique_snake_case() {
    let mut seen = std::collections::HashSet::new();
    for e in ALL_ERRORS {
        let r = e.reason();
        assert!(
            !r.is_empty()
                && r.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
            "{e:?}: {r}"
        );
        assert!(seen.insert(r), "duplicate reason {r}");
        assert!(!e.to_string().is_empty(), "{e:?} has a message");
    }
    assert_eq!(E::CrcMismatch.reason(), "crc_mismatch");
    assert_eq!(E::VendorTlvInvalid.reason(), "vendor_tlv_invalid");
}

#[test]
fn crc32c_castagnoli_check_value_matches() {
    // RFC 3720 / CRC catalogue check value for CRC-32C over "123456789".
    assert_eq!(tlv::CASTAGNOLI.checksum(b"123456789"), 0xE306_9283);
}

#[test]
fn builder_v1_mixed_families_written_as_tcp6() {
    let line = v1(sa("192.0.2.1:1"), sa("[::1]:2"));
    assert_eq!(line, b"PROXY TCP6 ::ffff:192.0.2.1 ::1 1 2\r\n".to_vec());
    assert_eq!(
        v1(sa("1.2.3.4:5"), sa("6.7.8.9:10")),
        b"PROXY TCP4 1.2.3.4 6.7.8.9 5 10\r\n".to_vec()
    );
}

fn socket_pair() -> impl Strategy<Value = (SocketAddr, SocketAddr)> {
    prop_oneof![
        (
            any::<[u8; 4]>(),
            any::<u16>(),
            any::<[u8; 4]>(),
            any::<u16>()
        )
            .prop_map(|(a, p, b, q)| (SocketAddr::from((a, p)), SocketAddr::from((b, q)))),
        (
            any::<[u8; 16]>(),
            any::<u16>(),
            any::<[u8; 16]>(),
            any::<u16>()
        )
            .prop_map(|(a, p, b, q)| {
                let (a, b) = (std::net::Ipv6Addr::from(a), std::net::Ipv6Addr::from(b));
                (SocketAddr::from((a, p)), SocketAddr::from((b, q)))
            }),
    ]
}

#[derive(Debug, Clone)]
enum Vendor {
    Aws(String),
    Azure(u32),
    Gcp(u64),
}

fn vendor() -> impl Strategy<Value = Option<Vendor>> {
    prop_oneof![
        Just(None),
        "vpce-[0-9a-f]{1,17}".prop_map(|s| Some(Vendor::Aws(s))),
        any::<u32>().prop_map(|n| Some(Vendor::Azure(n))),
        any::<u64>().prop_map(|n| Some(Vendor::Gcp(n))),
    ]
}

proptest! {
    #[test]
    fn parse_arbitrary_bytes_never_panics(
        prefix in prop_oneof![Just(Vec::new()), Just(b"PROXY ".to_vec()), Just(V2_SIGNATURE.to_vec())],
        body in proptest::collection::vec(any::<u8>(), 0..600),
        extra in proptest::collection::vec(any::<u8>(), 0..8),
    ) {
        let buf = cat(&[&prefix, &body]);
        let got = parse(&buf, ALL_RULES);
        let _ = detect(&buf);
        if let Ok(Parsed::Complete { len, .. }) = &got {
            prop_assert!(*len <= buf.len() && *len <= MAX_HEADER_LEN);
            // More bytes after a complete header never change the verdict.
            let longer = cat(&[&buf, &extra]);
            prop_assert_eq!(parse(&longer, ALL_RULES), got.clone());
        }
        if buf.len() >= MAX_HEADER_LEN {
            prop_assert_ne!(got, Ok(Parsed::Incomplete));
        }
    }

    #[test]
    fn v2_random_tlvs_never_panic(
        command in 0u8..2,
        family in prop_oneof![Just(0x00u8), Just(0x11), Just(0x21), Just(0x31)],
        body in proptest::collection::vec(any::<u8>(), 0..300),
        tlvs in proptest::collection::vec(
            (prop_oneof![Just(0x03u8), Just(0x05), Just(0x20), Just(0xE0), Just(0xE2), Just(0xEA), Just(0xEE), any::<u8>()],
             proptest::collection::vec(any::<u8>(), 0..40)),
            0..6,
        ),
        crc in any::<bool>(),
    ) {
        // Random address block + length-consistent header: exercises the TLV paths.
        let raw = cat(&[&V2_SIGNATURE, &[0x20 | command, family], &u16::try_from(body.len()).unwrap().to_be_bytes(), &body]);
        let _ = parse(&raw, ALL_RULES);
        let mut b = V2Builder::unspec();
        for (ty, value) in &tlvs { b = b.tlv(*ty, value); }
        let built = b.crc32c(crc).build();
        let got = parse(&built, ALL_RULES);
        if let Ok(Parsed::Complete { len, .. }) = &got {
            prop_assert_eq!(*len, built.len());
        }
        for k in 0..built.len() {
            let prefix = parse(&built[..k], ALL_RULES);
            prop_assert!(prefix == Ok(Parsed::Incomplete) || (prefix == got && got.is_err()), "prefix {}: {:?}", k, prefix);
        }
    }

    #[test]
    fn v2_builder_headers_round_trip(
        (src, dst) in socket_pair(),
        unique_id in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..=128)),
        authority in proptest::option::of("[a-z0-9.-]{1,40}"),
        vendor in vendor(),
        noop in proptest::option::of(0usize..40),
        crc in any::<bool>(),
        trailer in proptest::collection::vec(any::<u8>(), 0..32),
    ) {
        let mut b = V2Builder::proxy(src, dst);
        if let Some(n) = noop { b = b.noop(n); }
        if let Some(id) = &unique_id { b = b.unique_id(id); }
        if let Some(a) = &authority { b = b.authority(a); }
        let endpoint = match &vendor {
            None => None,
            Some(Vendor::Aws(id)) => { b = b.aws_vpce(id); Some(EndpointTlv::VpcepId(id.clone())) }
            Some(Vendor::Azure(n)) => { b = b.azure_link_id(*n); Some(EndpointTlv::Marker(u64::from(*n))) }
            Some(Vendor::Gcp(n)) => { b = b.gcp_psc_id(*n); Some(EndpointTlv::Marker(*n)) }
        };
        let bytes = b.crc32c(crc).build();
        let want = ProxyHeader {
            version: 2,
            command: Command::Proxy,
            source: Some(src),
            destination: Some(dst),
            unique_id,
            ssl: None,
            authority,
            endpoint,
            crc_verified: crc,
        };
        let full = cat(&[&bytes, &trailer]);
        prop_assert_eq!(parse(&full, RULES), Ok(Parsed::Complete { header: want, len: bytes.len() }));
        for k in 0..bytes.len() {
            prop_assert_eq!(parse(&full[..k], RULES), Ok(Parsed::Incomplete));
        }
    }

    #[test]
    fn v1_builder_lines_round_trip((src, dst) in socket_pair(), trailer in proptest::collection::vec(any::<u8>(), 0..16)) {
        let line = v1(src, dst);
        prop_assert!(line.len() <= V1_MAX_LEN);
        let full = cat(&[&line, &trailer]);
        let want = ProxyHeader { source: Some(src), destination: Some(dst), ..empty_header(1, Command::Proxy) };
        prop_assert_eq!(parse(&full, RULES), Ok(Parsed::Complete { header: want, len: line.len() }));
    }
}
