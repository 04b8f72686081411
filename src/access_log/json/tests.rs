use std::net::{Ipv6Addr, SocketAddrV6};
use std::time::Duration;

use proptest::prelude::*;

use super::*;

/// `s` as a quoted JSON string.
fn str_json(s: &str) -> String {
    let mut out = vec![b'"'];
    write_escaped(s, &mut out);
    out.push(b'"');
    String::from_utf8(out).unwrap()
}

#[test]
fn write_escaped_escapes_like_serde_json() {
    const CASES: &[(&str, &str)] = &[
        ("plain", r#""plain""#),
        ("", r#""""#),
        (r#"/a"b"#, r#""/a\"b""#),
        (r"/a\b", r#""/a\\b""#),
        ("\n\r\t\u{8}\u{c}", r#""\n\r\t\b\f""#),
        ("\u{0}\u{1f}\u{1b}[31m", r#""\u0000\u001f\u001b[31m""#),
        ("\u{7f}", "\"\u{7f}\""),
        ("é/日本/🦀", "\"é/日本/🦀\""),
        ("\"\"", r#""\"\"""#),
        ("end\\", r#""end\\""#),
    ];
    for (input, want) in CASES {
        assert_eq!(str_json(input), *want, "case {input:?}");
        assert_eq!(
            str_json(input),
            serde_json::to_string(input).unwrap(),
            "case {input:?}"
        );
    }
}

#[test]
fn write_escaped_every_ascii_byte_at_every_offset_matches_serde_json() {
    // Offsets 0..17 put the byte in the first word, the second word and the tail.
    for b in 0u8..0x80 {
        for at in 0..17 {
            let s = format!("{}{}{}", "a".repeat(at), char::from(b), "b".repeat(17 - at));
            assert_eq!(
                str_json(&s),
                serde_json::to_string(&s).unwrap(),
                "case {b:#x} at {at}"
            );
        }
    }
}

#[test]
fn write_f64_matches_serde_json() {
    const CASES: &[f64] = &[
        0.0,
        -0.0,
        1.0,
        0.1,
        21.634234,
        21.243841999999997,
        0.19517600000000002,
        1e-7,
        0.00001,
        123456789.125,
        1e16,
        1e300,
        f64::MIN_POSITIVE,
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
    ];
    for x in CASES {
        let mut out = Vec::new();
        write_f64(*x, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            serde_json::to_string(x).unwrap(),
            "case {x}"
        );
    }
}

#[test]
fn write_ip_matches_display() {
    let cases: [SocketAddr; 6] = [
        "0.0.0.0:0".parse().unwrap(),
        "127.0.0.1:40200".parse().unwrap(),
        "255.255.255.255:65535".parse().unwrap(),
        "[::1]:443".parse().unwrap(),
        "[::ffff:10.0.0.1]:8080".parse().unwrap(),
        SocketAddr::V6(SocketAddrV6::new(
            Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1),
            80,
            0,
            3,
        )),
    ];
    for addr in cases {
        let mut out = Vec::new();
        write_socket_addr(addr, &mut out);
        assert_eq!(String::from_utf8(out).unwrap(), addr.to_string());
        let mut out = Vec::new();
        write_ip(addr.ip(), &mut out);
        assert_eq!(String::from_utf8(out).unwrap(), addr.ip().to_string());
    }
}

#[test]
fn version_str_is_the_debug_text() {
    for v in [
        Version::HTTP_09,
        Version::HTTP_10,
        Version::HTTP_11,
        Version::HTTP_2,
        Version::HTTP_3,
    ] {
        assert_eq!(version_str(v), format!("{v:?}"));
    }
}

#[test]
fn write_timestamp_known_instants() {
    // (seconds relative to the epoch, nanoseconds, want)
    const CASES: &[(i64, u32, &str)] = &[
        (0, 0, "1970-01-01T00:00:00.000000Z"),
        (951_782_400, 999, "2000-02-29T00:00:00.000000Z"),
        (1_649_928_947, 123_456_789, "2022-04-14T09:35:47.123456Z"),
        (1_795_427_138, 953_639_000, "2026-11-23T09:45:38.953639Z"),
        (253_402_300_799, 999_999_999, "9999-12-31T23:59:59.999999Z"),
        (253_402_300_800, 0, "+10000-01-01T00:00:00.000000Z"),
        (-1, 0, "1969-12-31T23:59:59.000000Z"),
        (-1, 500_000_000, "1969-12-31T23:59:59.500000Z"),
        (-30_636_658_677, 7_000, "0999-03-01T01:02:03.000007Z"),
    ];
    for (secs, nanos, want) in CASES {
        let base = if *secs >= 0 {
            UNIX_EPOCH + Duration::from_secs(secs.unsigned_abs())
        } else {
            UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
        };
        let mut out = Vec::new();
        write_timestamp(base + Duration::from_nanos(u64::from(*nanos)), &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            *want,
            "case {secs}.{nanos}"
        );
    }
}

proptest! {
    #[test]
    fn write_escaped_any_string_matches_serde_json(s in any::<String>()) {
        prop_assert_eq!(str_json(&s), serde_json::to_string(&s).unwrap());
    }

    #[test]
    fn write_escaped_any_ascii_with_specials_matches_serde_json(
        s in "[ -~\\x00-\\x1f\\x7f\"\\\\é]{0,40}"
    ) {
        prop_assert_eq!(str_json(&s), serde_json::to_string(&s).unwrap());
    }

    #[test]
    fn write_f64_any_bits_match_serde_json(bits in any::<u64>()) {
        let x = f64::from_bits(bits);
        let mut out = Vec::new();
        write_f64(x, &mut out);
        prop_assert_eq!(String::from_utf8(out).unwrap(), serde_json::to_string(&x).unwrap());
    }

    #[test]
    fn write_socket_addr_any_v4_matches_display(ip in any::<u32>(), port in any::<u16>()) {
        let addr = SocketAddr::from((Ipv4Addr::from(ip), port));
        let mut out = Vec::new();
        write_socket_addr(addr, &mut out);
        prop_assert_eq!(String::from_utf8(out).unwrap(), addr.to_string());
    }
}
