//! `vpcguard::identity::routes::Routes::right_for` and
//! `vpcguard::identity::tenant::resolve_tenant` with fuzzed patterns and requests.
//!
//! Input: `selector byte`, then fields separated by 0x00, each lossily UTF-8 decoded:
//! `route path pattern 1, route path pattern 2, tenant host pattern, tenant path pattern,
//! method, request path, host, tenant header value, second header value, static tenant`.
//! Missing fields are empty; a pattern that does not parse leaves its route or rule out (or, for
//! routes, makes it match any path).
//!
//! Beyond "no panic":
//! - both are deterministic;
//! - `right_for` is the contract's table walk (docs/contract.md §2 `routes`): the first route whose
//!   methods match decides; a path route never matches a dotted path, which fails closed to
//!   `upload`; no match is `upload`;
//! - the built-in default table (built from segments, not parsed) decides like the same table
//!   parsed from its YAML spelling;
//! - `resolve_tenant` is "first rule that yields wins": the same as trying each rule alone, in
//!   order; a yielded id is non-empty; a header rule yields only a visible-ASCII value, and nothing
//!   when the header is repeated with different values.
#![no_main]

use std::sync::LazyLock;

use http::{HeaderMap, HeaderName, HeaderValue, Method};
use libfuzzer_sys::fuzz_target;
use vpcguard::identity::pattern::{HostPattern, PathPattern, has_dot_segment};
use vpcguard::identity::routes::{Route, Routes};
use vpcguard::identity::tenant::{TenantHint, TenantRule, resolve_tenant};
use vpcguard::policy::Right;

static DEFAULTS: LazyLock<(Routes, Routes)> = LazyLock::new(|| {
    let parsed = Routes::new(vec![
        Route {
            methods: None,
            path: Some(PathPattern::parse("/**/archive/**").expect("parses")),
            right: Right::Download,
        },
        Route {
            methods: Some(vec![Method::GET, Method::HEAD, Method::OPTIONS]),
            path: None,
            right: Right::View,
        },
        Route {
            methods: None,
            path: None,
            right: Right::Upload,
        },
    ]);
    (Routes::default_routes(), parsed)
});

static TENANT_HEADER: HeaderName = HeaderName::from_static("x-tenant");

/// The contract's walk, written out independently of `Routes::right_for`.
fn expected_right(routes: &Routes, method: &Method, path: &str) -> Right {
    for r in routes.as_slice() {
        if let Some(ms) = &r.methods {
            if !ms.contains(method) {
                continue;
            }
        }
        match &r.path {
            None => return r.right,
            Some(_) if has_dot_segment(path) => return Right::Upload,
            Some(p) => {
                if p.matches(path).is_some() {
                    return r.right;
                }
            }
        }
    }
    Right::Upload
}

fn hint_text<'a>(h: &TenantHint<'a>) -> &'a str {
    match *h {
        TenantHint::Tenant(t) | TenantHint::Project(t) => t,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let mut fields = rest
        .split(|&b| b == 0)
        .map(|f| String::from_utf8_lossy(f).into_owned());
    let mut next = || fields.next().unwrap_or_default();
    let (route1, route2, host_pat, path_pat) = (next(), next(), next(), next());
    let (method, path, host, value1, value2, static_id) =
        (next(), next(), next(), next(), next(), next());

    let method = Method::from_bytes(method.as_bytes()).unwrap_or(Method::GET);

    // --- routes ---
    let mut table = vec![
        Route {
            methods: (sel & 1 != 0).then(|| vec![Method::GET, Method::HEAD]),
            path: PathPattern::parse(&route1).ok(),
            right: Right::View,
        },
        Route {
            methods: (sel & 2 != 0).then(|| vec![Method::POST, method.clone()]),
            path: PathPattern::parse(&route2).ok(),
            right: Right::Download,
        },
    ];
    if sel & 4 != 0 {
        table.push(Route {
            methods: None,
            path: None,
            right: Right::View,
        });
    }
    let routes = Routes::new(table);
    let right = routes.right_for(&method, &path);
    assert_eq!(right, routes.right_for(&method, &path));
    assert_eq!(
        right,
        expected_right(&routes, &method, &path),
        "{method} {path:?}"
    );

    let (builtin, parsed) = &*DEFAULTS;
    let d = builtin.right_for(&method, &path);
    assert_eq!(d, parsed.right_for(&method, &path), "{method} {path:?}");
    if has_dot_segment(&path) {
        assert_eq!(d, Right::Upload);
    }

    // --- tenant ---
    let mut headers = HeaderMap::new();
    let repeated = sel & 8 != 0;
    if let Ok(v) = HeaderValue::from_str(&value1) {
        headers.append(&TENANT_HEADER, v);
        if repeated {
            if let Ok(v2) = HeaderValue::from_str(&value2) {
                headers.append(&TENANT_HEADER, v2);
            }
        }
    }
    let mut rules = Vec::new();
    if sel & 0x10 != 0 {
        rules.push(TenantRule::Header(TENANT_HEADER.clone()));
    }
    if let Ok(p) = HostPattern::parse(&host_pat) {
        rules.push(TenantRule::Host(p));
    }
    if let Ok(p) = PathPattern::parse(&path_pat) {
        rules.push(TenantRule::Path(p));
    }
    if sel & 0x20 != 0 {
        rules.push(TenantRule::Header(TENANT_HEADER.clone()));
    }
    if sel & 0x40 != 0 {
        rules.push(TenantRule::Static(static_id.clone()));
    }
    let host_opt = (sel & 0x80 == 0).then_some(host.as_str());
    let got = resolve_tenant(&rules, &headers, host_opt, &path);
    assert_eq!(got, resolve_tenant(&rules, &headers, host_opt, &path));
    let first_alone =
        (0..rules.len()).find_map(|i| resolve_tenant(&rules[i..=i], &headers, host_opt, &path));
    assert_eq!(got, first_alone, "first rule that yields");
    if let Some(h) = &got {
        assert!(!hint_text(h).is_empty());
    }
    for (i, rule) in rules.iter().enumerate() {
        let alone = resolve_tenant(&rules[i..=i], &headers, host_opt, &path);
        match rule {
            TenantRule::Header(_) => {
                let values: Vec<_> = headers.get_all(&TENANT_HEADER).iter().collect();
                if values.windows(2).any(|w| w[0] != w[1]) {
                    assert_eq!(alone, None, "ambiguous header yielded");
                }
                if let Some(h) = alone {
                    let t = hint_text(&h);
                    assert!(t.bytes().all(|b| (b'!'..=b'~').contains(&b)), "{t:?}");
                    assert!(matches!(h, TenantHint::Tenant(_)));
                }
            }
            TenantRule::Path(p) => {
                let want = p.matches(&path).and_then(|c| c.first()).map(|(_, v)| v);
                assert_eq!(
                    alone.as_ref().map(hint_text),
                    want.filter(|v| !v.is_empty())
                );
            }
            TenantRule::Host(p) => {
                let want = host_opt
                    .and_then(|h| p.matches(h))
                    .and_then(|c| c.first())
                    .map(|(_, v)| v);
                assert_eq!(
                    alone.as_ref().map(hint_text),
                    want.filter(|v| !v.is_empty())
                );
            }
            TenantRule::Static(id) => {
                assert_eq!(alone.is_some(), !id.is_empty());
            }
        }
    }
});
