use std::net::IpAddr;

use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn ip_range_valid_forms_parse_to_expected_bounds() {
    // (input, ip_type, first, last)
    const CASES: &[(&str, IpType, &str, &str)] = &[
        ("10.1.0.0/16", IpType::Cidr, "10.1.0.0", "10.1.255.255"),
        ("0.0.0.0/0", IpType::Cidr, "0.0.0.0", "255.255.255.255"),
        ("1.2.3.4/32", IpType::Cidr, "1.2.3.4", "1.2.3.4"),
        ("1.1.1.1-1.1.1.9", IpType::Range, "1.1.1.1", "1.1.1.9"),
        ("1.1.1.1-1.1.1.1", IpType::Range, "1.1.1.1", "1.1.1.1"),
        ("1.1.1.1", IpType::Single, "1.1.1.1", "1.1.1.1"),
        ("2001:db8::1", IpType::Single, "2001:db8::1", "2001:db8::1"),
        (
            "2001:db8::/32",
            IpType::Cidr,
            "2001:db8::",
            "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff",
        ),
        (
            "::/0",
            IpType::Cidr,
            "::",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        ),
        ("::1/128", IpType::Cidr, "::1", "::1"),
        (
            "2001:db8::1-2001:db8::ff",
            IpType::Range,
            "2001:db8::1",
            "2001:db8::ff",
        ),
        // IPv4-mapped entries are folded into IPv4 (docs/contract.md §3).
        ("::ffff:10.0.0.1", IpType::Single, "10.0.0.1", "10.0.0.1"),
        (
            "::ffff:10.0.0.0/104",
            IpType::Cidr,
            "10.0.0.0",
            "10.255.255.255",
        ),
        (
            "::ffff:1.1.1.1-1.1.1.9",
            IpType::Range,
            "1.1.1.1",
            "1.1.1.9",
        ),
        // A wider IPv6 entry stays IPv6.
        ("::/80", IpType::Cidr, "::", "::ffff:ffff:ffff"),
    ];
    for &(input, ip_type, first, last) in CASES {
        let got = parse_ip_range(input).unwrap_or_else(|e| panic!("case {input}: {e}"));
        assert_eq!(got.ip_type, ip_type, "case {input}");
        assert_eq!(got.range.first(), ip(first), "case {input}");
        assert_eq!(got.range.last(), ip(last), "case {input}");
    }
}

#[test]
fn ip_range_invalid_forms_are_rejected_with_reason() {
    // (input, fragment of the reason)
    const CASES: &[(&str, &str)] = &[
        ("", "empty"),
        ("10.1.0.1/16", "has host bits set; did you mean 10.1.0.0/16"),
        ("2001:db8::1/32", "did you mean 2001:db8::/32"),
        (
            "1.1.1.9-1.1.1.1",
            "start 1.1.1.9 is greater than end 1.1.1.1",
        ),
        ("1.1.1.1-2001:db8::1", "mixes address families"),
        ("1.1.1.1 - 1.1.1.9", "whitespace"),
        (" 1.1.1.1", "whitespace"),
        ("1.1.1.1-1.1.1.9-1.1.1.10", "not a valid start-end"),
        ("1.1.1.1-", "not a valid start-end"),
        ("10.0.0.0/33", "not a valid CIDR"),
        ("10.0.0.0/", "not a valid CIDR"),
        ("010.0.0.1", "not a valid IP"),
        ("256.0.0.1", "not a valid IP"),
        ("fe80::1%eth0", "not a valid IP"),
        ("example.com", "not a valid IP"),
    ];
    for &(input, want) in CASES {
        let err = parse_ip_range(input).expect_err(input);
        assert!(err.0.contains(want), "case {input:?}: {err}");
    }
}
