//! `vpcguard::proxy_protocol::{parse, detect}` on raw bytes, as read off a socket.
//!
//! Beyond "no panic", the module's I/O contract (src/proxy_protocol/mod.rs):
//! - `detect` and `parse` agree (NotProxy ⇔ `Err(NotProxy)`, NeedMore ⇒ `Incomplete`, the version
//!   of a complete header is the one `detect` saw);
//! - `Complete { len }` has `0 < len <= input.len()`, and `parse(&input[..len])` gives the same
//!   result: only the header's own bytes are examined;
//! - every strict prefix of a complete header is `Incomplete`; every prefix of a rejected input is
//!   `Incomplete` or the same error (so reading more never changes the verdict);
//! - `Incomplete` never once the buffer holds `MAX_HEADER_LEN` bytes (`V1_MAX_LEN` for v1);
//! - a LOCAL / v1 UNKNOWN header reports no address, TLV or endpoint; a v1 header no TLV field;
//!   a unique id is at most 128 bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vpcguard::proxy_protocol::{
    Command, Detect, MAX_HEADER_LEN, MAX_UNIQUE_ID_LEN, Parsed, ProxyHeader, ProxyHeaderError,
    TlvEncoding, TlvRule, V1_MAX_LEN, Yields, detect, parse,
};

/// The three built-in vendor rules plus one of each remaining encoding, so every decoder runs.
const RULES: [TlvRule; 6] = [
    TlvRule::aws(),
    TlvRule::azure(),
    TlvRule::gcp(),
    TlvRule {
        tlv_type: 0xE1,
        subtype: None,
        encoding: TlvEncoding::U32Be,
        yields: Yields::VpcepId,
    },
    TlvRule {
        tlv_type: 0xE2,
        subtype: Some(0x07),
        encoding: TlvEncoding::U64Le,
        yields: Yields::Marker,
    },
    TlvRule {
        tlv_type: 0xE3,
        subtype: None,
        encoding: TlvEncoding::Ascii,
        yields: Yields::Marker,
    },
];

/// Prefix lengths to re-check: all of them for short inputs, an even spread plus the last few
/// for long ones (every prefix of a 4 KiB header would be 4096 parses per input).
fn prefixes(len: usize) -> impl Iterator<Item = usize> {
    const ALL_BELOW: usize = 300;
    let step = if len <= ALL_BELOW { 1 } else { len / 128 };
    let tail = len.saturating_sub(16);
    (0..len).filter(move |&k| k % step == 0 || k >= tail || k < 32)
}

fn check_header(h: &ProxyHeader, seen: Detect) {
    match seen {
        Detect::V1 => assert_eq!(h.version, 1),
        Detect::V2 => assert_eq!(h.version, 2),
        other => panic!("complete header after detect said {other:?}"),
    }
    if h.command == Command::Local {
        assert!(h.source.is_none() && h.destination.is_none(), "{h:?}");
        assert!(h.endpoint.is_none() && h.authority.is_none(), "{h:?}");
        assert!(
            h.unique_id.is_none() && h.ssl.is_none() && !h.crc_verified,
            "{h:?}"
        );
    }
    if h.version == 1 {
        assert!(h.unique_id.is_none() && h.ssl.is_none() && h.authority.is_none());
        assert!(h.endpoint.is_none() && !h.crc_verified);
        // v1 PROXY lines always carry both addresses, of one family.
        if h.command == Command::Proxy {
            let (s, d) = (
                h.source.expect("v1 source"),
                h.destination.expect("v1 dest"),
            );
            assert_eq!(s.is_ipv4(), d.is_ipv4());
        }
    }
    assert_eq!(h.source.is_some(), h.destination.is_some(), "{h:?}");
    if let Some(id) = &h.unique_id {
        assert!(id.len() <= MAX_UNIQUE_ID_LEN);
    }
}

fuzz_target!(|data: &[u8]| {
    let seen = detect(data);
    let result = parse(data, &RULES);
    // Deterministic: the parser is stateless.
    assert_eq!(parse(data, &RULES), result);

    match (&seen, &result) {
        (Detect::NotProxy, r) => assert_eq!(*r, Err(ProxyHeaderError::NotProxy)),
        (_, Err(ProxyHeaderError::NotProxy)) => panic!("NotProxy after detect said {seen:?}"),
        (Detect::NeedMore, r) => assert_eq!(*r, Ok(Parsed::Incomplete)),
        _ => {}
    }

    match &result {
        Ok(Parsed::Complete { header, len }) => {
            let len = *len;
            assert!(len > 0 && len <= data.len(), "len {len} of {}", data.len());
            assert!(len <= MAX_HEADER_LEN);
            check_header(header, seen);
            // Only the header's own bytes count: the result is the same without what follows.
            assert_eq!(parse(&data[..len], &RULES), result);
            for k in prefixes(len) {
                assert_eq!(
                    parse(&data[..k], &RULES),
                    Ok(Parsed::Incomplete),
                    "prefix {k} of a {len}-byte header"
                );
            }
        }
        Ok(Parsed::Incomplete) => {
            assert!(
                data.len() < MAX_HEADER_LEN,
                "Incomplete at {} bytes",
                data.len()
            );
            if seen == Detect::V1 {
                assert!(
                    data.len() < V1_MAX_LEN,
                    "v1 Incomplete at {} bytes",
                    data.len()
                );
            }
        }
        Err(e) => {
            assert!(!e.reason().is_empty());
            for k in prefixes(data.len()) {
                let r = parse(&data[..k], &RULES);
                assert!(
                    r == Ok(Parsed::Incomplete) || r == Err(*e),
                    "prefix {k}: {r:?}, whole input: {e:?}"
                );
            }
        }
    }
});
