use http::{HeaderMap, HeaderName, HeaderValue};

use super::*;

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

/// docs/contract.md §2's example rule list.
fn spec_rules() -> Vec<TenantRule> {
    vec![
        TenantRule::Header(HeaderName::from_static("x-domain-id")),
        TenantRule::Host(HostPattern::parse("{tenant}.repo.example.com").unwrap()),
        TenantRule::Path(PathPattern::parse("/v1/{project}/**").unwrap()),
        TenantRule::Static("389efb76b1354e4482eabeed00000000".into()),
    ]
}

const STATIC: TenantHint<'static> = TenantHint::Tenant("389efb76b1354e4482eabeed00000000");

type Headers = &'static [(&'static str, &'static [u8])];

/// (name, headers, host, path, want)
const CASES: &[(&str, Headers, Option<&str>, &str, TenantHint<'static>)] = &[
    (
        "header_rule_wins_over_all",
        &[("x-domain-id", b"t-hdr")],
        Some("acme.repo.example.com"),
        "/v1/p1/x",
        TenantHint::Tenant("t-hdr"),
    ),
    (
        "host_rule_wins_over_path",
        &[],
        Some("acme.repo.example.com:443"),
        "/v1/p1/x",
        TenantHint::Tenant("acme"),
    ),
    (
        "path_rule_yields_project",
        &[],
        Some("other.example.com"),
        "/v1/p1/x",
        TenantHint::Project("p1"),
    ),
    (
        "path_rule_without_host_yields_project",
        &[],
        None,
        "/v1/p1",
        TenantHint::Project("p1"),
    ),
    (
        "static_rule_is_last_resort",
        &[],
        Some("other.example.com"),
        "/v2/x",
        STATIC,
    ),
    (
        "empty_header_falls_through",
        &[("x-domain-id", b"")],
        Some("acme.repo.example.com"),
        "/",
        TenantHint::Tenant("acme"),
    ),
    (
        "header_with_space_falls_through",
        &[("x-domain-id", b"a b")],
        None,
        "/v1/p1",
        TenantHint::Project("p1"),
    ),
    (
        "header_with_obs_text_falls_through",
        &[("x-domain-id", b"t\xe9")],
        None,
        "/",
        STATIC,
    ),
    (
        "header_repeated_same_value_yields",
        &[("x-domain-id", b"t1"), ("x-domain-id", b"t1")],
        None,
        "/",
        TenantHint::Tenant("t1"),
    ),
    (
        "header_repeated_different_values_falls_through",
        &[("x-domain-id", b"t1"), ("x-domain-id", b"t2")],
        None,
        "/",
        STATIC,
    ),
    (
        "dot_segment_path_falls_through",
        &[],
        None,
        "/v1/p1/../p2/x",
        STATIC,
    ),
];

#[test]
fn resolve_tenant_table_matches_expectations() {
    let rules = spec_rules();
    for &(name, pairs, host, path, want) in CASES {
        let map = headers(pairs);
        let got = resolve_tenant(&rules, &map, host, path);
        assert_eq!(got, Some(want), "case {name}");
    }
}

#[test]
fn resolve_tenant_no_rule_yields_none() {
    let map = HeaderMap::new();
    let cases: &[(&str, Vec<TenantRule>)] = &[
        ("no_rules", vec![]),
        ("empty_static", vec![TenantRule::Static(String::new())]),
        (
            "host_pattern_without_capture",
            vec![TenantRule::Host(
                HostPattern::parse("repo.example.com").unwrap(),
            )],
        ),
        (
            "path_pattern_without_capture",
            vec![TenantRule::Path(PathPattern::parse("/**").unwrap())],
        ),
        (
            "absent_header",
            vec![TenantRule::Header(HeaderName::from_static("x-domain-id"))],
        ),
    ];
    for (name, rules) in cases {
        let got = resolve_tenant(rules, &map, Some("repo.example.com"), "/v1/p1");
        assert_eq!(got, None, "case {name}");
    }
}

#[test]
fn resolve_tenant_rule_order_is_respected() {
    let map = headers(&[("x-domain-id", b"from-header")]);
    let rules = vec![
        TenantRule::Static("first".into()),
        TenantRule::Header(HeaderName::from_static("x-domain-id")),
    ];
    assert_eq!(
        resolve_tenant(&rules, &map, None, "/"),
        Some(TenantHint::Tenant("first"))
    );
}
