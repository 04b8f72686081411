use std::borrow::Cow;

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

const STATIC_ID: &str = "389efb76b1354e4482eabeed00000000";
const P1: &str = "0f6c3a1e9b2d4c7f8a5e1d3b6c9f2a4e";
const P2: &str = "1f6c3a1e9b2d4c7f8a5e1d3b6c9f2a4e";

/// docs/contract.md §2's example rule list.
fn spec_rules() -> Vec<TenantRule> {
    vec![
        TenantRule::Header(HeaderName::from_static("x-domain-id")),
        TenantRule::Host(HostPattern::parse("{tenant}.repo.example.com").unwrap()),
        TenantRule::Path(PathPattern::parse("/v1/{project}/**").unwrap()),
        TenantRule::Static(STATIC_ID.into()),
    ]
}

type Headers = &'static [(&'static str, &'static [u8])];

/// What a case expects, as plain strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    Tenant(&'static str),
    Project(&'static str),
    Both(&'static str, &'static str),
    Err(TenantError),
}

fn want_of(
    got: Result<TenantClaim<'_>, TenantError>,
) -> (Option<String>, Option<String>, Option<TenantError>) {
    match got {
        Ok(TenantClaim::None) => (None, None, None),
        Ok(TenantClaim::Tenant(t)) => (Some(t.into_owned()), None, None),
        Ok(TenantClaim::Project(p)) => (None, Some(p.into_owned()), None),
        Ok(TenantClaim::Both { tenant, project }) => {
            (Some(tenant.into_owned()), Some(project.into_owned()), None)
        }
        Err(e) => (None, None, Some(e)),
    }
}

fn expected(w: Want) -> (Option<String>, Option<String>, Option<TenantError>) {
    let s = |v: &str| Some(v.to_owned());
    match w {
        Want::Tenant(t) => (s(t), None, None),
        Want::Project(p) => (None, s(p), None),
        Want::Both(t, p) => (s(t), s(p), None),
        Want::Err(e) => (None, None, Some(e)),
    }
}

/// (name, headers, host, canonical path, want)
const CASES: &[(&str, Headers, Option<&str>, &str, Want)] = &[
    (
        "header_alone",
        &[("x-domain-id", b"t-hdr")],
        None,
        "/x",
        Want::Tenant("t-hdr"),
    ),
    (
        "host_alone",
        &[],
        Some("acme.repo.example.com:443"),
        "/x",
        Want::Tenant("acme"),
    ),
    (
        "host_capture_is_lower_cased",
        &[],
        Some("ACME.Repo.Example.com"),
        "/x",
        Want::Tenant("acme"),
    ),
    (
        "path_alone_yields_project",
        &[],
        Some("other.example.com"),
        "/v1/0f6c3a1e9b2d4c7f8a5e1d3b6c9f2a4e/x",
        Want::Project(P1),
    ),
    (
        "header_and_host_agree",
        &[("x-domain-id", b"acme")],
        Some("acme.repo.example.com"),
        "/x",
        Want::Tenant("acme"),
    ),
    (
        "header_and_host_disagree_conflict",
        &[("x-domain-id", b"t-hdr")],
        Some("acme.repo.example.com"),
        "/x",
        Want::Err(TenantError::Conflict),
    ),
    (
        "tenant_and_project_both",
        &[("x-domain-id", b"t-hdr")],
        None,
        "/v1/0f6c3a1e9b2d4c7f8a5e1d3b6c9f2a4e/x",
        Want::Both("t-hdr", P1),
    ),
    (
        "static_only_when_nothing_else",
        &[],
        Some("other.example.com"),
        "/v2/x",
        Want::Tenant(STATIC_ID),
    ),
    (
        "static_does_not_conflict_with_header",
        &[("x-domain-id", b"t-hdr")],
        None,
        "/x",
        Want::Tenant("t-hdr"),
    ),
    (
        "empty_header_invalid",
        &[("x-domain-id", b"")],
        Some("acme.repo.example.com"),
        "/",
        Want::Err(TenantError::Invalid),
    ),
    (
        "header_with_space_invalid",
        &[("x-domain-id", b"a b")],
        None,
        "/",
        Want::Err(TenantError::Invalid),
    ),
    (
        "header_with_obs_text_invalid",
        &[("x-domain-id", b"t\xe9")],
        None,
        "/",
        Want::Err(TenantError::Invalid),
    ),
    (
        "header_outside_id_charset_invalid",
        &[("x-domain-id", b"t.1")],
        None,
        "/",
        Want::Err(TenantError::Invalid),
    ),
    (
        "header_repeated_same_value_yields",
        &[("x-domain-id", b"t1"), ("x-domain-id", b"t1")],
        None,
        "/",
        Want::Tenant("t1"),
    ),
    (
        "header_repeated_different_values_invalid",
        &[("x-domain-id", b"t1"), ("x-domain-id", b"t2")],
        None,
        "/",
        Want::Err(TenantError::Invalid),
    ),
    (
        "path_capture_outside_project_charset_invalid",
        &[],
        None,
        "/v1/short/x",
        Want::Err(TenantError::Invalid),
    ),
    (
        "path_capture_with_params_invalid",
        &[],
        None,
        "/v1/0f6c3a1e9b2d4c7f8a5e1d3b6c9f2a4e;x/y",
        Want::Err(TenantError::Invalid),
    ),
    (
        "host_capture_outside_charset_invalid",
        &[],
        Some("a~b.repo.example.com"),
        "/",
        Want::Err(TenantError::Invalid),
    ),
];

#[test]
fn resolve_tenant_table_matches_expectations() {
    let rules = spec_rules();
    for &(name, pairs, host, path, want) in CASES {
        let map = headers(pairs);
        let got = resolve_tenant(&rules, &map, host, path);
        assert_eq!(want_of(got), expected(want), "case {name}");
    }
}

#[test]
fn resolve_tenant_two_projects_disagree_conflict() {
    let rules = vec![
        TenantRule::Host(HostPattern::parse("{project}.repo.example.com").unwrap()),
        TenantRule::Path(PathPattern::parse("/v1/{project}/**").unwrap()),
    ];
    let map = HeaderMap::new();
    let host = format!("{P1}.repo.example.com");
    let same = resolve_tenant(
        &rules,
        &map,
        Some(&host),
        "/v1/0f6c3a1e9b2d4c7f8a5e1d3b6c9f2a4e/x",
    );
    assert_eq!(same, Ok(TenantClaim::Project(Cow::Borrowed(P1))));
    let other = format!("/v1/{P2}/x");
    let got = resolve_tenant(&rules, &map, Some(&host), &other);
    assert_eq!(got, Err(TenantError::Conflict));
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
        assert_eq!(got, Ok(TenantClaim::None), "case {name}");
    }
}
