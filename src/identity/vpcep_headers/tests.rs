use http::{HeaderMap, HeaderName, HeaderValue};

use super::*;

const ID: HeaderName = HeaderName::from_static("x-vpcep-id");
const ID2: HeaderName = HeaderName::from_static("x-alt-vpcep-id");
const MARKER: HeaderName = HeaderName::from_static("x-vpcep-marker-id");

fn headers(pairs: &[(&str, &[u8])]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_bytes(value).unwrap(),
        );
    }
    map
}

enum Want {
    None,
    Id(&'static str),
    Marker(u64),
    Conflicting(&'static str),
    InvalidId(&'static str),
    InvalidMarker(&'static str),
}

const VPCE: &[u8] = b"1234bfa39r7pg09la8msyu8vq004a1234";

type Headers = &'static [(&'static str, &'static [u8])];

const CASES: &[(&str, Headers, Want)] = &[
    ("no_headers_yield_none", &[], Want::None),
    (
        "unrelated_header_yields_none",
        &[("x-other", b"1")],
        Want::None,
    ),
    (
        "id_header_yields_id",
        &[("x-vpcep-id", VPCE)],
        Want::Id("1234bfa39r7pg09la8msyu8vq004a1234"),
    ),
    (
        "id_with_dash_yields_id",
        &[("x-vpcep-id", b"vpce-0a1b2c")],
        Want::Id("vpce-0a1b2c"),
    ),
    (
        "second_id_header_used_when_first_absent",
        &[("x-alt-vpcep-id", b"abc")],
        Want::Id("abc"),
    ),
    (
        "first_id_header_wins_over_second",
        &[("x-alt-vpcep-id", b"second"), ("x-vpcep-id", b"first")],
        Want::Id("first"),
    ),
    (
        "id_header_wins_over_marker",
        &[("x-vpcep-marker-id", b"42"), ("x-vpcep-id", b"abc")],
        Want::Id("abc"),
    ),
    (
        "marker_header_yields_marker",
        &[("x-vpcep-marker-id", b"422321321312321321")],
        Want::Marker(422321321312321321),
    ),
    (
        "marker_u64_max_yields_marker",
        &[("x-vpcep-marker-id", b"18446744073709551615")],
        Want::Marker(u64::MAX),
    ),
    (
        "marker_leading_zero_yields_marker",
        &[("x-vpcep-marker-id", b"007")],
        Want::Marker(7),
    ),
    (
        "repeated_identical_id_counts_once",
        &[("x-vpcep-id", b"abc"), ("x-vpcep-id", b"abc")],
        Want::Id("abc"),
    ),
    (
        "repeated_different_id_is_conflicting",
        &[("x-vpcep-id", b"abc"), ("x-vpcep-id", b"abd")],
        Want::Conflicting("x-vpcep-id"),
    ),
    (
        "repeated_different_marker_is_conflicting",
        &[("x-vpcep-marker-id", b"1"), ("x-vpcep-marker-id", b"2")],
        Want::Conflicting("x-vpcep-marker-id"),
    ),
    (
        "empty_id_is_invalid",
        &[("x-vpcep-id", b"")],
        Want::InvalidId("x-vpcep-id"),
    ),
    (
        "id_65_chars_is_invalid",
        &[("x-vpcep-id", &[b'a'; 65])],
        Want::InvalidId("x-vpcep-id"),
    ),
    (
        "id_64_chars_is_valid",
        &[("x-vpcep-id", &[b'a'; 64])],
        Want::Id("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
    ),
    (
        "id_with_underscore_is_invalid",
        &[("x-vpcep-id", b"vpce_1")],
        Want::InvalidId("x-vpcep-id"),
    ),
    (
        "id_with_space_is_invalid",
        &[("x-vpcep-id", b"vpce 1")],
        Want::InvalidId("x-vpcep-id"),
    ),
    (
        "id_with_non_ascii_is_invalid",
        &[("x-vpcep-id", b"vpce\xe9")],
        Want::InvalidId("x-vpcep-id"),
    ),
    (
        "invalid_id_does_not_fall_back_to_marker",
        &[("x-vpcep-id", b"a/b"), ("x-vpcep-marker-id", b"1")],
        Want::InvalidId("x-vpcep-id"),
    ),
    (
        "marker_negative_is_invalid",
        &[("x-vpcep-marker-id", b"-1")],
        Want::InvalidMarker("x-vpcep-marker-id"),
    ),
    (
        "marker_plus_sign_is_invalid",
        &[("x-vpcep-marker-id", b"+1")],
        Want::InvalidMarker("x-vpcep-marker-id"),
    ),
    (
        "marker_hex_is_invalid",
        &[("x-vpcep-marker-id", b"0x10")],
        Want::InvalidMarker("x-vpcep-marker-id"),
    ),
    (
        "marker_empty_is_invalid",
        &[("x-vpcep-marker-id", b"")],
        Want::InvalidMarker("x-vpcep-marker-id"),
    ),
    (
        "marker_overflow_is_invalid",
        &[("x-vpcep-marker-id", b"18446744073709551616")],
        Want::InvalidMarker("x-vpcep-marker-id"),
    ),
];

#[test]
fn vpcep_from_headers_table_matches_expectations() {
    for (name, pairs, want) in CASES {
        let got = vpcep_from_headers(&headers(pairs), &[ID, ID2], &[MARKER]);
        let want = match want {
            Want::None => Ok(None),
            Want::Id(id) => Ok(Some(HeaderVpcep::Id((*id).to_owned()))),
            Want::Marker(m) => Ok(Some(HeaderVpcep::Marker(*m))),
            Want::Conflicting(h) => Err(VpcepHeaderError::Conflicting {
                header: HeaderName::from_static(h),
            }),
            Want::InvalidId(h) => Err(VpcepHeaderError::InvalidId {
                header: HeaderName::from_static(h),
            }),
            Want::InvalidMarker(h) => Err(VpcepHeaderError::InvalidMarker {
                header: HeaderName::from_static(h),
            }),
        };
        assert_eq!(got, want, "case {name}");
    }
}

#[test]
fn strip_untrusted_removes_vpcep_and_identity_headers_only() {
    let mut map = headers(&[
        ("x-vpcep-id", b"abc"),
        ("x-vpcep-id", b"def"),
        ("x-vpcep-marker-id", b"1"),
        ("x-vpcguard-client-ip", b"1.2.3.4"),
        ("X-Vpcguard-Tenant", b"t"),
        ("x-vpcguard-decision", b"allow"),
        ("x-vpcguard", b"kept: no dash suffix"),
        ("x-forwarded-for", b"1.2.3.4"),
        ("host", b"example.com"),
    ]);
    strip_untrusted(&mut map, &[ID], &[MARKER]);
    let mut left: Vec<&str> = map.keys().map(HeaderName::as_str).collect();
    left.sort_unstable();
    assert_eq!(left, ["host", "x-forwarded-for", "x-vpcguard"]);
}

#[test]
fn strip_untrusted_finds_every_configured_name_and_leaves_a_clean_request_alone() {
    // Only the second configured id header is present: it goes, everything else stays.
    let mut map = headers(&[("x-alt-vpcep-id", b"abc"), ("host", b"example.com")]);
    strip_untrusted(&mut map, &[ID, ID2], &[MARKER]);
    assert_eq!(
        map.keys().map(HeaderName::as_str).collect::<Vec<_>>(),
        ["host"]
    );
    // Nothing to strip: the map is untouched, values and order included.
    let clean = headers(&[
        ("host", b"example.com"),
        ("accept", b"*/*"),
        ("accept", b"x"),
    ]);
    let mut map = clean.clone();
    strip_untrusted(&mut map, &[ID, ID2], &[MARKER]);
    assert_eq!(map, clean);
}

#[test]
fn vpcep_header_error_reasons_are_stable() {
    let reasons = [
        VpcepHeaderError::Conflicting { header: ID },
        VpcepHeaderError::InvalidId { header: ID },
        VpcepHeaderError::InvalidMarker { header: MARKER },
    ]
    .map(|e| e.reason());
    assert_eq!(
        reasons,
        [
            "conflicting_vpcep_header",
            "invalid_vpcep_id_header",
            "invalid_vpcep_marker_header"
        ]
    );
}
