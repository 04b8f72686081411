//! `vpcguard::identity::vpcep_headers`: `strip_untrusted` and `vpcep_from_headers` over fuzzed
//! header lines (names and values as hyper would accept them).
//!
//! Input: `(name 0x00 value 0x01)*`. A name the pool below cannot take or a value `HeaderValue`
//! refuses is skipped; a name byte `0x02`–`0x05` stands for one of the configured names, so that
//! they occur often.
//!
//! Beyond "no panic":
//! - after `strip_untrusted`, no configured vpcep header and no `x-vpcguard-*` header is left, and
//!   every other line is (in its order within its name);
//! - `vpcep_from_headers` is deterministic; an `Id` is `[A-Za-z0-9-]{1,64}` and equals the value of
//!   the first configured id header present; a `Marker` is the decimal value of a marker header;
//!   `Ok(None)` only when no configured header is present;
//! - after `strip_untrusted`, `vpcep_from_headers` finds nothing (an untrusted peer claims none).
#![no_main]

use std::collections::BTreeMap;

use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use vpcguard::identity::vpcep_headers::{
    HeaderVpcep, IDENTITY_HEADER_PREFIX, MAX_VPCEP_ID_LEN, strip_untrusted, vpcep_from_headers,
};

static ID: [HeaderName; 2] = [
    HeaderName::from_static("x-vpcep-id"),
    HeaderName::from_static("x-alt-vpcep-id"),
];
static MARKER: [HeaderName; 2] = [
    HeaderName::from_static("x-vpcep-marker-id"),
    HeaderName::from_static("x-vpcguard-marker"),
];

fn name_of(raw: &[u8]) -> Option<HeaderName> {
    match raw {
        [2] => Some(ID[0].clone()),
        [3] => Some(ID[1].clone()),
        [4] => Some(MARKER[0].clone()),
        [5] => Some(MARKER[1].clone()),
        _ => HeaderName::from_bytes(raw).ok(),
    }
}

fn claims(name: &HeaderName) -> bool {
    name.as_str().starts_with(IDENTITY_HEADER_PREFIX) || ID.contains(name) || MARKER.contains(name)
}

fuzz_target!(|data: &[u8]| {
    let mut headers = HeaderMap::new();
    for line in data.split(|b| *b == 1) {
        let mut parts = line.splitn(2, |b| *b == 0);
        let (Some(n), Some(v)) = (parts.next(), parts.next()) else {
            continue;
        };
        let (Some(name), Ok(value)) = (name_of(n), HeaderValue::from_bytes(v)) else {
            continue;
        };
        if headers.len() < 256 {
            headers.append(name, value);
        }
    }

    // Reading, as for a trusted peer.
    let first = vpcep_from_headers(&headers, &ID, &MARKER);
    assert_eq!(
        first,
        vpcep_from_headers(&headers, &ID, &MARKER),
        "deterministic"
    );
    let present = ID.iter().chain(&MARKER).any(|n| headers.contains_key(n));
    match &first {
        Ok(None) => assert!(
            !present,
            "a configured header is present but nothing was read"
        ),
        Ok(Some(HeaderVpcep::Id(id))) => {
            assert!((1..=MAX_VPCEP_ID_LEN).contains(&id.len()), "{id:?}");
            assert!(
                id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'),
                "{id:?}"
            );
            let from = ID
                .iter()
                .find(|n| headers.contains_key(*n))
                .expect("an id header");
            assert_eq!(
                headers.get(from).map(HeaderValue::as_bytes),
                Some(id.as_bytes())
            );
        }
        Ok(Some(HeaderVpcep::Marker(m))) => {
            assert!(
                !ID.iter().any(|n| headers.contains_key(n)),
                "an id header goes first"
            );
            let from = MARKER
                .iter()
                .find(|n| headers.contains_key(*n))
                .expect("a marker header");
            let text = headers
                .get(from)
                .and_then(|v| v.to_str().ok())
                .expect("ascii");
            assert_eq!(text.parse::<u64>().ok(), Some(*m), "{text:?}");
        }
        Err(_) => assert!(present, "an error without a configured header"),
    }

    // Stripping, as for an untrusted peer. Compared name by name: the order of lines within a
    // name is kept, the order between names is not (HeaderMap's removal swaps entries; RFC 9110
    // §5.3 gives it no meaning).
    let lines = |h: &HeaderMap, keep: &dyn Fn(&HeaderName) -> bool| {
        let mut by_name: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
        for (n, v) in h.iter().filter(|(n, _)| keep(n)) {
            by_name
                .entry(n.as_str().to_owned())
                .or_default()
                .push(v.as_bytes().to_vec());
        }
        by_name
    };
    let mut stripped = headers.clone();
    strip_untrusted(&mut stripped, &ID, &MARKER);
    assert_eq!(
        lines(&stripped, &|_| true),
        lines(&headers, &|n| !claims(n)),
        "exactly the claiming lines go, the rest stay"
    );
    assert_eq!(vpcep_from_headers(&stripped, &ID, &MARKER), Ok(None));
});
