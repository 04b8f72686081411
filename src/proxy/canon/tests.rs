use std::path::Path;

use http::{Request, Version};

use super::*;
use crate::metrics::RequestRejectReason as R;

fn config(extra: &str) -> Config {
    crate::config::parse(
        &format!("log: {{ level: warn }}\n{extra}"),
        Path::new("/tmp/v.yaml"),
    )
    .unwrap()
}

fn req(method: &str, target: &str, version: Version, headers: &[(&str, &str)]) -> Request<()> {
    let mut b = Request::builder()
        .method(method)
        .uri(target)
        .version(version);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(()).unwrap()
}

fn rejected(r: &mut Request<()>, cfg: &Config, trusted: bool) -> Option<(ErrorCode, R)> {
    canonicalize(r, cfg, trusted)
        .err()
        .map(|e| (e.code, e.reason))
}

const H11: Version = Version::HTTP_11;

#[test]
fn canonicalize_refusals_have_their_code_and_reason() {
    let cfg = config("");
    type Case = (
        &'static str,
        &'static str,
        &'static str,
        Version,
        &'static [(&'static str, &'static str)],
        Option<(ErrorCode, R)>,
    );
    const CASES: &[Case] = &[
        ("plain get", "GET", "/a", H11, &[("host", "h")], None),
        (
            "connect",
            "CONNECT",
            "h:443",
            H11,
            &[("host", "h:443")],
            Some((ErrorCode::MethodNotAllowed, R::Method)),
        ),
        (
            "trace",
            "TRACE",
            "/",
            H11,
            &[("host", "h")],
            Some((ErrorCode::MethodNotAllowed, R::Method)),
        ),
        (
            "gzip then chunked",
            "POST",
            "/",
            H11,
            &[("host", "h"), ("transfer-encoding", "gzip, chunked")],
            Some((ErrorCode::UnsupportedTransferCoding, R::TransferCoding)),
        ),
        (
            "chunked",
            "POST",
            "/",
            H11,
            &[("host", "h"), ("transfer-encoding", "chunked")],
            None,
        ),
        (
            "no host on 1.1",
            "GET",
            "/",
            H11,
            &[],
            Some((ErrorCode::BadRequest, R::Host)),
        ),
        ("no host on 1.0", "GET", "/", Version::HTTP_10, &[], None),
        (
            "two hosts",
            "GET",
            "/",
            H11,
            &[("host", "a"), ("host", "b")],
            Some((ErrorCode::BadRequest, R::Host)),
        ),
        (
            "absolute form agrees",
            "GET",
            "http://H/x",
            H11,
            &[("host", "h")],
            None,
        ),
        (
            "absolute form differs",
            "GET",
            "http://other/x",
            H11,
            &[("host", "h")],
            Some((ErrorCode::BadRequest, R::Host)),
        ),
        (
            "h2 authority only",
            "GET",
            "https://h/x",
            Version::HTTP_2,
            &[],
            None,
        ),
        (
            "h2 host differs",
            "GET",
            "https://h/x",
            Version::HTTP_2,
            &[("host", "evil")],
            Some((ErrorCode::BadRequest, R::Host)),
        ),
        (
            "escaped slash",
            "GET",
            "/a%2Fb",
            H11,
            &[("host", "h")],
            Some((ErrorCode::BadRequest, R::Path)),
        ),
        (
            "climb",
            "GET",
            "/../etc",
            H11,
            &[("host", "h")],
            Some((ErrorCode::BadRequest, R::Path)),
        ),
    ];
    for (name, method, target, version, headers, want) in CASES {
        let mut r = req(method, target, *version, headers);
        assert_eq!(rejected(&mut r, &cfg, false), *want, "case {name}");
    }
}

#[test]
fn canonicalize_rewrites_the_path_and_keeps_the_query() {
    let cfg = config("");
    let mut r = req(
        "GET",
        "/repo//x/../%61rchive/z?a=%2F&b=..",
        H11,
        &[("host", "h")],
    );
    canonicalize(&mut r, &cfg, false).unwrap();
    assert_eq!(r.uri().path(), "/repo/archive/z");
    assert_eq!(r.uri().query(), Some("a=%2F&b=.."));
}

#[test]
fn canonicalize_removes_connection_named_headers_before_judging() {
    let cfg = config("");
    let mut r = req(
        "GET",
        "/",
        H11,
        &[
            ("host", "h"),
            ("connection", "x-domain-id, keep-alive"),
            ("x-domain-id", "t1"),
            ("trailer", "x-checksum"),
            ("te", "trailers, deflate"),
        ],
    );
    canonicalize(&mut r, &cfg, false).unwrap();
    assert!(!r.headers().contains_key("x-domain-id"));
    assert!(!r.headers().contains_key("connection"));
    assert_eq!(
        r.headers()["trailer"],
        "x-checksum",
        "Trailer is not hop-by-hop"
    );
    assert_eq!(r.headers()["te"], "trailers");
}

#[test]
fn canonicalize_drops_underscores_overrides_and_untrusted_forwarding_headers() {
    let cfg = config("");
    let sent: &[(&str, &str)] = &[
        ("host", "h"),
        ("x_forwarded_for", "1.2.3.4"),
        ("x_vpcguard_tenant", "t"),
        ("x-http-method-override", "DELETE"),
        ("x-original-url", "/admin"),
        ("forwarded", "for=1.2.3.4"),
        ("x-real-ip", "1.2.3.4"),
        ("x-forwarded-host", "evil"),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-port", "1"),
        ("x-forwarded-prefix", "/p"),
    ];
    let mut r = req("GET", "/", H11, sent);
    canonicalize(&mut r, &cfg, false).unwrap();
    let left: Vec<&str> = r.headers().keys().map(|k| k.as_str()).collect();
    assert_eq!(left, vec!["host"]);
    // From a trusted proxy the forwarding headers stay; underscores and overrides still go.
    let mut r = req("GET", "/", H11, sent);
    canonicalize(&mut r, &cfg, true).unwrap();
    let mut left: Vec<&str> = r.headers().keys().map(|k| k.as_str()).collect();
    left.sort_unstable();
    assert_eq!(
        left,
        vec![
            "forwarded",
            "host",
            "x-forwarded-host",
            "x-forwarded-port",
            "x-forwarded-prefix",
            "x-forwarded-proto",
            "x-real-ip"
        ]
    );
}

#[test]
fn canonicalize_underscore_rules_reject_and_allow() {
    let mut r = req("GET", "/", H11, &[("host", "h"), ("x_a", "1")]);
    let reject = config("requests: { headers_with_underscores: reject }\n");
    assert_eq!(
        rejected(&mut r, &reject, false),
        Some((ErrorCode::BadRequest, R::Header))
    );
    let allow = config("requests: { headers_with_underscores: allow }\n");
    canonicalize(&mut r, &allow, false).unwrap();
    assert_eq!(r.headers()["x_a"], "1");
}

#[test]
fn canonicalize_upgrade_passes_only_for_allowed_protocols() {
    let cfg = config("");
    let up = |proto: &str| {
        let mut r = req(
            "GET",
            "/",
            H11,
            &[("host", "h"), ("connection", "Upgrade"), ("upgrade", proto)],
        );
        let c = canonicalize(&mut r, &cfg, false).unwrap();
        (c.upgrade.is_some(), r.headers().contains_key("upgrade"))
    };
    assert_eq!(up("websocket"), (true, true));
    assert_eq!(up("WebSocket/13"), (true, true));
    assert_eq!(up("h2c"), (false, false));
    assert_eq!(up("websocket, h2c"), (false, false));
    let h2c = config("requests: { upgrades: [websocket, h2c] }\n");
    let mut r = req(
        "GET",
        "/",
        H11,
        &[("host", "h"), ("connection", "upgrade"), ("upgrade", "h2c")],
    );
    assert!(canonicalize(&mut r, &h2c, false).unwrap().upgrade.is_some());
}
