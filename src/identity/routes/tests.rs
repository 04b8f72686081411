use http::Method;

use super::*;
use crate::identity::pattern::PatternError;

/// (name, method, path, want) against [`Routes::default_routes`].
const DEFAULT_CASES: &[(&str, Method, &str, Right)] = &[
    (
        "get_archive_needs_download",
        Method::GET,
        "/repo/archive/x.zip",
        Right::Download,
    ),
    (
        "post_archive_needs_download",
        Method::POST,
        "/archive",
        Right::Download,
    ),
    (
        "get_plain_path_needs_view",
        Method::GET,
        "/repo/files/x",
        Right::View,
    ),
    ("head_needs_view", Method::HEAD, "/repo", Right::View),
    ("options_needs_view", Method::OPTIONS, "*", Right::View),
    (
        "get_archivex_needs_view",
        Method::GET,
        "/archivex",
        Right::View,
    ),
    (
        "put_needs_upload",
        Method::PUT,
        "/repo/files/x",
        Right::Upload,
    ),
    ("post_needs_upload", Method::POST, "/repo", Right::Upload),
    (
        "delete_needs_upload",
        Method::DELETE,
        "/repo",
        Right::Upload,
    ),
    (
        "get_encoded_archive_needs_download",
        Method::GET,
        "/repo/%61rchive/x",
        Right::Download,
    ),
    (
        "get_dot_segment_needs_upload",
        Method::GET,
        "/repo/x/../archive/y",
        Right::Upload,
    ),
];

#[test]
fn routes_default_table_matches_spec() {
    let routes = Routes::default_routes();
    for (name, method, path, want) in DEFAULT_CASES {
        assert_eq!(routes.right_for(method, path), *want, "case {name}");
    }
}

#[test]
fn routes_default_archive_pattern_equals_parsed() -> Result<(), PatternError> {
    let routes = Routes::default();
    let archive = routes.as_slice()[0].path.clone();
    assert_eq!(archive, Some(PathPattern::parse("/**/archive/**")?));
    Ok(())
}

#[test]
fn routes_custom_table_first_match_wins_and_defaults_to_upload() -> Result<(), PatternError> {
    let routes = Routes::new(vec![
        Route {
            methods: Some(vec![Method::GET]),
            path: Some(PathPattern::parse("/public/**")?),
            right: Right::View,
        },
        Route {
            methods: None,
            path: Some(PathPattern::parse("/**/archive/**")?),
            right: Right::Download,
        },
        Route {
            methods: Some(vec![Method::GET]),
            path: None,
            right: Right::Download,
        },
    ]);
    let cases: &[(&str, Method, &str, Right)] = &[
        (
            "first_route_wins",
            Method::GET,
            "/public/archive/x",
            Right::View,
        ),
        (
            "second_route_for_other_method",
            Method::POST,
            "/public/archive/x",
            Right::Download,
        ),
        (
            "method_only_route",
            Method::GET,
            "/private/x",
            Right::Download,
        ),
        (
            "nothing_matches_needs_upload",
            Method::POST,
            "/private/x",
            Right::Upload,
        ),
        (
            "dot_segment_at_path_route_needs_upload",
            Method::GET,
            "/public/../secret",
            Right::Upload,
        ),
        (
            "dot_segment_skipped_route_by_method",
            Method::PUT,
            "/a/./b",
            Right::Upload,
        ),
    ];
    for (name, method, path, want) in cases {
        assert_eq!(routes.right_for(method, path), *want, "case {name}");
    }
    let empty = Routes::from(Vec::new());
    assert_eq!(
        empty.right_for(&Method::GET, "/"),
        Right::Upload,
        "case empty_table"
    );
    Ok(())
}

#[test]
fn routes_method_only_route_before_path_route_ignores_dot_segments() {
    let routes = Routes::new(vec![Route {
        methods: Some(vec![Method::GET]),
        path: None,
        right: Right::View,
    }]);
    assert_eq!(routes.right_for(&Method::GET, "/a/../b"), Right::View);
}
