use proptest::prelude::*;

use super::CaptureName::{Project, Tenant};
use super::*;

/// None = no match; Some(capture).
type Want = Option<Option<(CaptureName, &'static str)>>;

/// (name, pattern, path or host, want).
type Case = (&'static str, &'static str, &'static str, Want);

const NO: Want = None;
const YES: Want = Some(None);

const PATH_CASES: &[Case] = &[
    // docs/contract.md §2 default download route.
    (
        "archive_under_repo_matches",
        "/**/archive/**",
        "/repo/archive/x",
        YES,
    ),
    (
        "archive_at_root_matches",
        "/**/archive/**",
        "/archive/x",
        YES,
    ),
    (
        "archive_as_last_segment_matches",
        "/**/archive/**",
        "/a/b/archive",
        YES,
    ),
    ("archive_bare_matches", "/**/archive/**", "/archive", YES),
    (
        "archive_with_trailing_slash_matches",
        "/**/archive/**",
        "/a/archive/",
        YES,
    ),
    (
        "archive_prefix_of_segment_does_not_match",
        "/**/archive/**",
        "/archivex",
        NO,
    ),
    (
        "archive_suffix_of_segment_does_not_match",
        "/**/archive/**",
        "/my-archive/x",
        NO,
    ),
    (
        "archive_case_differs_does_not_match",
        "/**/archive/**",
        "/Archive/x",
        NO,
    ),
    (
        "archive_root_path_does_not_match",
        "/**/archive/**",
        "/",
        NO,
    ),
    (
        "archive_in_query_does_not_match",
        "/**/archive/**",
        "/repo/x?p=/archive/",
        NO,
    ),
    (
        "archive_with_query_matches",
        "/**/archive/**",
        "/repo/archive/x?y=1",
        YES,
    ),
    (
        "archive_encoded_unreserved_matches",
        "/**/archive/**",
        "/repo/%61rchive/x",
        YES,
    ),
    (
        "archive_encoded_unreserved_upper_hex_matches",
        "/**/archive/**",
        "/repo/ARCHIV%45/x",
        NO,
    ),
    (
        "archive_encoded_slash_does_not_split",
        "/**/archive/**",
        "/repo/archive%2Fx",
        NO,
    ),
    (
        "archive_after_empty_segment_matches",
        "/**/archive/**",
        "/repo//archive/x",
        YES,
    ),
    (
        "dot_segment_never_matches",
        "/**/archive/**",
        "/repo/../archive/x",
        NO,
    ),
    (
        "encoded_dot_segment_never_matches",
        "/**/archive/**",
        "/repo/%2e%2E/archive/x",
        NO,
    ),
    ("single_dot_segment_never_matches", "/**", "/a/./b", NO),
    ("dots_inside_segment_match", "/**", "/a/..b/c.d", YES),
    ("relative_path_never_matches", "/**", "a/b", NO),
    ("asterisk_form_never_matches", "/**", "*", NO),
    // Captures.
    (
        "project_capture_with_rest_matches",
        "/v1/{project}/**",
        "/v1/p1/files/x",
        Some(Some((Project, "p1"))),
    ),
    (
        "project_capture_without_rest_matches",
        "/v1/{project}/**",
        "/v1/p1",
        Some(Some((Project, "p1"))),
    ),
    (
        "project_capture_keeps_raw_escapes",
        "/v1/{project}/**",
        "/v1/p%20q/x",
        Some(Some((Project, "p%20q"))),
    ),
    (
        "project_capture_empty_segment_does_not_match",
        "/v1/{project}/**",
        "/v1/",
        NO,
    ),
    (
        "project_capture_double_slash_does_not_match",
        "/v1/{project}/**",
        "/v1//x",
        NO,
    ),
    (
        "project_capture_wrong_prefix_does_not_match",
        "/v1/{project}/**",
        "/v2/p1",
        NO,
    ),
    (
        "tenant_capture_after_double_star_backtracks",
        "/**/{tenant}/x",
        "/a/b/x",
        Some(Some((Tenant, "b"))),
    ),
    (
        "tenant_capture_lazy_double_star_picks_leftmost",
        "/**/{tenant}/**",
        "/a/b",
        Some(Some((Tenant, "a"))),
    ),
    (
        "tenant_capture_between_double_stars_backtracks",
        "/**/t/{tenant}/**/end",
        "/t/x/t/y/end",
        Some(Some((Tenant, "x"))),
    ),
    // Single-segment wildcard and trailing slash.
    ("star_one_segment_matches", "/a/*", "/a/b", YES),
    ("star_two_segments_do_not_match", "/a/*", "/a/b/c", NO),
    ("star_empty_segment_does_not_match", "/a/*", "/a/", NO),
    (
        "trailing_slash_pattern_matches_trailing_slash",
        "/a/",
        "/a/",
        YES,
    ),
    ("trailing_slash_pattern_rejects_bare", "/a/", "/a", NO),
    ("bare_pattern_rejects_trailing_slash", "/a", "/a/", NO),
    ("root_pattern_matches_root", "/", "/", YES),
    ("root_pattern_rejects_other", "/", "/a", NO),
    ("double_star_alone_matches_root", "/**", "/", YES),
    (
        "literal_encoded_in_pattern_matches_plain",
        "/%7Euser",
        "/~user",
        YES,
    ),
    (
        "literal_escape_hex_case_is_ignored",
        "/a%2fb",
        "/a%2Fb",
        YES,
    ),
    (
        "literal_escape_does_not_equal_plain_reserved",
        "/a:b",
        "/a%3Ab",
        NO,
    ),
];

#[test]
fn path_pattern_table_matches_expectations() {
    for &(name, pattern, path, want) in PATH_CASES {
        let got = PathPattern::parse(pattern)
            .unwrap()
            .matches(path)
            .map(|c| c.first());
        assert_eq!(got, want, "case {name}");
    }
}

#[test]
fn path_pattern_parse_invalid_is_rejected() {
    const CASES: &[(&str, &str, PatternError)] = &[
        ("no_leading_slash", "a/b", PatternError::MissingLeadingSlash),
        ("empty_string", "", PatternError::MissingLeadingSlash),
        ("empty_middle_segment", "/a//b", PatternError::EmptySegment),
        ("double_slash_only", "//", PatternError::EmptySegment),
        (
            "adjacent_double_stars",
            "/**/**/a",
            PatternError::AdjacentDoubleStar,
        ),
        (
            "two_captures",
            "/{tenant}/{project}",
            PatternError::MultipleCaptures,
        ),
        (
            "same_capture_twice",
            "/{project}/x/{project}",
            PatternError::MultipleCaptures,
        ),
        (
            "partial_star",
            "/a*",
            PatternError::InvalidSegment {
                segment: String::new(),
            },
        ),
        (
            "unclosed_brace",
            "/{tenant",
            PatternError::InvalidSegment {
                segment: String::new(),
            },
        ),
        (
            "query_in_pattern",
            "/a?b",
            PatternError::InvalidSegment {
                segment: String::new(),
            },
        ),
        (
            "bad_escape",
            "/a%zz",
            PatternError::InvalidSegment {
                segment: String::new(),
            },
        ),
        (
            "too_many_segments",
            "/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a",
            PatternError::TooManySegments {
                limit: MAX_PATTERN_SEGMENTS,
            },
        ),
    ];
    for (name, pattern, want) in CASES {
        let got = PathPattern::parse(pattern)
            .map(|_| ())
            .map_err(blank_segment);
        assert_eq!(got, Err(want.clone()), "case {name}");
    }
    let got = PathPattern::parse("/{user}/x");
    assert_eq!(
        got,
        Err(PatternError::UnknownCapture {
            name: "user".into()
        }),
        "case unknown_capture"
    );
}

/// `InvalidSegment` text is for logs; compare the variant only.
fn blank_segment(e: PatternError) -> PatternError {
    match e {
        PatternError::InvalidSegment { .. } => PatternError::InvalidSegment {
            segment: String::new(),
        },
        other => other,
    }
}

#[test]
fn path_pattern_accessors_report_source_and_capture() {
    let p = PathPattern::parse("/v1/{project}/**").unwrap();
    assert_eq!(
        (p.as_str(), p.capture_name()),
        ("/v1/{project}/**", Some(Project))
    );
    let p = PathPattern::parse("/**/archive/**").unwrap();
    assert_eq!(
        (p.to_string().as_str(), p.capture_name()),
        ("/**/archive/**", None)
    );
}

const HOST_CASES: &[Case] = &[
    (
        "tenant_label_captured",
        "{tenant}.repo.example.com",
        "acme.repo.example.com",
        Some(Some((Tenant, "acme"))),
    ),
    (
        "port_is_stripped",
        "{tenant}.repo.example.com",
        "acme.repo.example.com:8443",
        Some(Some((Tenant, "acme"))),
    ),
    (
        "case_is_ignored_capture_keeps_case",
        "{tenant}.repo.example.com",
        "ACME.Repo.EXAMPLE.com",
        Some(Some((Tenant, "ACME"))),
    ),
    (
        "pattern_case_is_ignored",
        "{project}.Repo.Example.COM",
        "p1.repo.example.com",
        Some(Some((Project, "p1"))),
    ),
    (
        "trailing_dot_is_stripped",
        "{tenant}.repo.example.com",
        "acme.repo.example.com.",
        Some(Some((Tenant, "acme"))),
    ),
    (
        "extra_label_does_not_match",
        "{tenant}.repo.example.com",
        "a.acme.repo.example.com",
        NO,
    ),
    (
        "missing_label_does_not_match",
        "{tenant}.repo.example.com",
        "repo.example.com",
        NO,
    ),
    (
        "empty_label_does_not_match",
        "{tenant}.repo.example.com",
        ".repo.example.com",
        NO,
    ),
    (
        "other_domain_does_not_match",
        "{tenant}.repo.example.com",
        "acme.repo.example.org",
        NO,
    ),
    (
        "non_numeric_port_does_not_match",
        "{tenant}.repo.example.com",
        "acme.repo.example.com:x",
        NO,
    ),
    (
        "empty_port_does_not_match",
        "{tenant}.repo.example.com",
        "acme.repo.example.com:",
        NO,
    ),
    (
        "userinfo_does_not_match",
        "{tenant}.repo.example.com",
        "u@acme.repo.example.com",
        NO,
    ),
    ("ip_literal_does_not_match", "*", "[::1]:443", NO),
    (
        "star_matches_one_label",
        "*.example.com",
        "a.example.com",
        YES,
    ),
    (
        "star_rejects_two_labels",
        "*.example.com",
        "a.b.example.com",
        NO,
    ),
    (
        "literal_only_matches_without_capture",
        "repo.example.com",
        "REPO.example.com:80",
        YES,
    ),
];

#[test]
fn host_pattern_table_matches_expectations() {
    for &(name, pattern, host, want) in HOST_CASES {
        let got = HostPattern::parse(pattern)
            .unwrap()
            .matches(host)
            .map(|c| c.first());
        assert_eq!(got, want, "case {name}");
    }
}

#[test]
fn host_pattern_parse_invalid_is_rejected() {
    const CASES: &[(&str, &str, PatternError)] = &[
        ("empty", "", PatternError::Empty),
        ("empty_label", "a..b", PatternError::EmptySegment),
        ("leading_dot", ".a", PatternError::EmptySegment),
        (
            "double_star",
            "**.example.com",
            PatternError::DoubleStarInHost,
        ),
        (
            "two_captures",
            "{tenant}.{project}.com",
            PatternError::MultipleCaptures,
        ),
        (
            "port_in_pattern",
            "a.com:80",
            PatternError::InvalidSegment {
                segment: String::new(),
            },
        ),
        (
            "partial_star",
            "a*.com",
            PatternError::InvalidSegment {
                segment: String::new(),
            },
        ),
    ];
    for (name, pattern, want) in CASES {
        let got = HostPattern::parse(pattern)
            .map(|_| ())
            .map_err(blank_segment);
        assert_eq!(got, Err(want.clone()), "case {name}");
    }
}

#[test]
fn has_dot_segment_detects_all_spellings() {
    const CASES: &[(&str, &str, bool)] = &[
        ("dot", "/a/./b", true),
        ("dot_dot", "/a/../b", true),
        ("trailing_dot_dot", "/a/..", true),
        ("encoded_dot", "/a/%2e/b", true),
        ("mixed_encoded_dot_dot", "/a/.%2E/b", true),
        ("three_dots", "/a/.../b", false),
        ("dot_in_name", "/a/.b/c.", false),
        ("dot_dot_in_query_only", "/a?x=/../", false),
        ("plain", "/a/b", false),
    ];
    for &(name, path, want) in CASES {
        assert_eq!(has_dot_segment(path), want, "case {name}");
    }
}

// === property tests ===

/// Plain recursive glob over pre-split segments; `**` tried shortest first.
fn naive<'a>(pat: &[&str], path: &[&'a str]) -> Option<Option<&'a str>> {
    match pat.split_first() {
        None => path.is_empty().then_some(None),
        Some((&"**", rest)) => (0..=path.len()).find_map(|k| naive(rest, &path[k..])),
        Some((seg, rest)) => {
            let (text, tail) = path.split_first()?;
            let cap = match *seg {
                "*" => (!text.is_empty()).then_some(None)?,
                "{project}" => (!text.is_empty()).then_some(Some(*text))?,
                lit => (lit == *text).then_some(None)?,
            };
            naive(rest, tail).map(|inner| inner.or(cap))
        }
    }
}

proptest! {
    #[test]
    fn path_pattern_matches_naive_reference(
        pat in proptest::collection::vec(prop_oneof![Just("a"), Just("b"), Just("*"), Just("**"), Just("{project}")], 0..7),
        path in proptest::collection::vec(prop_oneof![Just("a"), Just("b"), Just("")], 1..9),
    ) {
        let source = format!("/{}", pat.join("/"));
        let path_text = format!("/{}", path.join("/"));
        if let Ok(compiled) = PathPattern::parse(&source) {
            let pat_segs: Vec<&str> = source[1..].split('/').collect();
            let want = naive(&pat_segs, &path);
            let got = compiled.matches(&path_text).map(|c| c.get(Project));
            prop_assert_eq!(got, want, "pattern {} path {}", source, path_text);
        }
    }

    #[test]
    fn patterns_arbitrary_input_never_panic(pattern in "\\PC{0,40}", input in "\\PC{0,80}") {
        if let Ok(p) = PathPattern::parse(&pattern) {
            let _ = p.matches(&input);
        }
        if let Ok(p) = HostPattern::parse(&pattern) {
            let _ = p.matches(&input);
        }
        let _ = has_dot_segment(&input);
    }

    #[test]
    fn patterns_glob_shaped_input_never_panic(
        pattern in "(/(\\*\\*|\\*|\\{project\\}|[a%2e.]{1,3})){0,8}/?",
        input in "(/(a|%2[eEfF]|%|%a|\\.|\\.\\.|)){0,12}(\\?.*)?",
    ) {
        if let Ok(p) = PathPattern::parse(&pattern) {
            let _ = p.matches(&input);
        }
    }
}
