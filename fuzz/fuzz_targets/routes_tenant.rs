//! `vpcguard::identity::routes::Routes::right_for` and
//! `vpcguard::identity::tenant::resolve_tenant` with fuzzed patterns and requests.
//!
//! Input: two selector bytes, then fields separated by 0x00, each lossily UTF-8 decoded:
//! `route path pattern 1, route path pattern 2, tenant host pattern, tenant path pattern,
//! second tenant path pattern, method, request path, host, tenant header value, second header
//! value, static tenant`. Missing fields are empty; a pattern that does not parse leaves its
//! route or rule out (or, for routes, makes it match any path).
//!
//! Beyond "no panic":
//! - both are deterministic;
//! - `right_for` is the contract's table walk (docs/contract.md §2 `routes`): the first route whose
//!   methods match decides; a path route never matches a dotted path, which fails closed to
//!   `upload`; no match is `upload`; with `path_case: insensitive` (`fold_case`) the ASCII case
//!   of the path does not change the right;
//! - the built-in default table (built from segments, not parsed) decides like the same table
//!   parsed from its YAML spelling;
//! - `resolve_tenant` is the strict resolution of docs/contract.md §4 "Tenant": every rule is
//!   evaluated, each on its own yields nothing, a tenant, a project or *invalid* (header: absent
//!   → nothing; empty, not visible ASCII, repeated with different values or outside the
//!   `enterprise_id` set → invalid; host/path: the capture, host captures lower-cased, outside
//!   the id set → invalid); then
//!   - any invalid rule, or two rules naming different tenants (or projects), is an error, and a
//!     disagreement with no invalid rule is `Conflict`, an invalid rule with no disagreement is
//!     `Invalid` (fail closed);
//!   - otherwise the claim is the one tenant and/or project the rules named, and `static` only
//!     when no other rule yielded;
//!   - the rule order changes neither whether it is an error nor the claim.
//!
//! The path the rules see is, with selector 2 bit 1, the canonical path (`canonicalize_path`
//! with the default rules), as on the data plane; otherwise the raw text (both functions are total
//! on any `&str`).
#![no_main]

use std::borrow::Cow;
use std::sync::LazyLock;

use http::{HeaderMap, HeaderName, HeaderValue, Method};
use libfuzzer_sys::fuzz_target;
use vpcguard::identity::canonical::{PathRules, canonicalize_path};
use vpcguard::identity::pattern::{CaptureName, HostPattern, PathPattern, has_dot_segment};
use vpcguard::identity::routes::{Route, Routes};
use vpcguard::identity::tenant::{TenantClaim, TenantError, TenantRule, resolve_tenant};
use vpcguard::policy::validate::is_valid;
use vpcguard::policy::{IdKind, Right};

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

/// What one rule yields on its own (docs/contract.md §4 "Tenant"), written from the contract.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Alone {
    Nothing,
    Tenant(String),
    Project(String),
    Invalid,
}

fn capture(name: CaptureName, value: String) -> Alone {
    let (kind, ok): (IdKind, fn(String) -> Alone) = match name {
        CaptureName::Tenant => (IdKind::EnterpriseId, Alone::Tenant),
        CaptureName::Project => (IdKind::ProjectId, Alone::Project),
    };
    if is_valid(kind, &value) {
        ok(value)
    } else {
        Alone::Invalid
    }
}

fn alone(rule: &TenantRule, headers: &HeaderMap, host: Option<&str>, path: &str) -> Alone {
    match rule {
        TenantRule::Header(name) => {
            let values: Vec<&HeaderValue> = headers.get_all(name).iter().collect();
            let Some(first) = values.first() else {
                return Alone::Nothing;
            };
            let bytes = first.as_bytes();
            let visible = !bytes.is_empty() && bytes.iter().all(|b| (b'!'..=b'~').contains(b));
            if values.iter().any(|v| v != first) || !visible {
                return Alone::Invalid;
            }
            let text = String::from_utf8_lossy(bytes).into_owned();
            match is_valid(IdKind::EnterpriseId, &text) {
                true => Alone::Tenant(text),
                false => Alone::Invalid,
            }
        }
        TenantRule::Host(p) => match host.and_then(|h| p.matches(h)).and_then(|c| c.first()) {
            None => Alone::Nothing,
            Some((name, v)) => {
                assert!(!v.is_empty(), "empty host capture");
                capture(name, v.to_ascii_lowercase())
            }
        },
        TenantRule::Path(p) => match p.matches(path).and_then(|c| c.first()) {
            None => Alone::Nothing,
            Some((name, v)) => {
                assert!(!v.is_empty(), "empty path capture");
                capture(name, v.to_owned())
            }
        },
        // Judged only as the fallback, below.
        TenantRule::Static(_) => Alone::Nothing,
    }
}

/// The combined claim the contract requires, from the rules' answers on their own.
fn expected_claim<'a>(
    rules: &'a [TenantRule],
    answers: &[Alone],
) -> Result<TenantClaim<'a>, TenantError> {
    let invalid = answers.contains(&Alone::Invalid);
    let mut tenants: Vec<&str> = Vec::new();
    let mut projects: Vec<&str> = Vec::new();
    for a in answers {
        match a {
            Alone::Tenant(t) => tenants.push(t),
            Alone::Project(p) => projects.push(p),
            Alone::Nothing | Alone::Invalid => {}
        }
    }
    tenants.sort_unstable();
    tenants.dedup();
    projects.sort_unstable();
    projects.dedup();
    let conflict = tenants.len() > 1 || projects.len() > 1;
    match (invalid, conflict) {
        (false, true) => return Err(TenantError::Conflict),
        (true, false) => return Err(TenantError::Invalid),
        // Either is right; the caller checks only that it is an error.
        (true, true) => return Err(TenantError::Conflict),
        (false, false) => {}
    }
    let own = |s: &str| Cow::Owned(s.to_owned());
    Ok(match (tenants.first(), projects.first()) {
        (Some(t), Some(p)) => TenantClaim::Both {
            tenant: own(t),
            project: own(p),
        },
        (Some(t), None) => TenantClaim::Tenant(own(t)),
        (None, Some(p)) => TenantClaim::Project(own(p)),
        (None, None) => rules
            .iter()
            .find_map(|r| match r {
                TenantRule::Static(id) if !id.is_empty() => Some(id.as_str()),
                _ => None,
            })
            .map_or(TenantClaim::None, |id| {
                TenantClaim::Tenant(Cow::Borrowed(id))
            }),
    })
}

fuzz_target!(|data: &[u8]| {
    let [sel, sel2, rest @ ..] = data else {
        return;
    };
    let (sel, sel2) = (*sel, *sel2);
    let mut fields = rest
        .split(|&b| b == 0)
        .map(|f| String::from_utf8_lossy(f).into_owned());
    let mut next = || fields.next().unwrap_or_default();
    let (route1, route2, host_pat, path_pat, path_pat2) = (next(), next(), next(), next(), next());
    let (method, raw_path, host, value1, value2, static_id) =
        (next(), next(), next(), next(), next(), next());

    let method = Method::from_bytes(method.as_bytes()).unwrap_or(Method::GET);
    let fold = sel2 & 1 != 0;
    let path = match sel2 & 2 != 0 {
        true => match canonicalize_path(&raw_path, &PathRules::default()) {
            Ok(c) => c.into_owned(),
            Err(_) => raw_path.clone(),
        },
        false => raw_path.clone(),
    };

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
    let routes = Routes::new(table).fold_case(fold);
    let right = routes.right_for(&method, &path);
    assert_eq!(right, routes.right_for(&method, &path));
    assert_eq!(
        right,
        expected_right(&routes, &method, &path),
        "{method} {path:?}"
    );
    if fold {
        for variant in [path.to_ascii_uppercase(), path.to_ascii_lowercase()] {
            assert_eq!(
                right,
                routes.right_for(&method, &variant),
                "case-folded {method} {path:?} vs {variant:?}"
            );
        }
    }

    let (builtin, parsed) = &*DEFAULTS;
    let d = builtin.right_for(&method, &path);
    assert_eq!(d, parsed.right_for(&method, &path), "{method} {path:?}");
    if has_dot_segment(&path) {
        assert_eq!(d, Right::Upload);
    }

    // --- tenant ---
    let mut headers = HeaderMap::new();
    // from_bytes, so obs-text (bytes >= 0x80) reaches the "not visible ASCII" check.
    if let Ok(v) = HeaderValue::from_bytes(value1.as_bytes()) {
        headers.append(&TENANT_HEADER, v);
        if sel & 8 != 0 {
            if let Ok(v2) = HeaderValue::from_bytes(value2.as_bytes()) {
                headers.append(&TENANT_HEADER, v2);
            }
        }
    }
    let mut rules = Vec::new();
    let static_rule = (sel & 0x40 != 0).then(|| TenantRule::Static(static_id.clone()));
    if sel2 & 4 != 0 {
        rules.extend(static_rule.clone());
    }
    if sel & 0x10 != 0 {
        rules.push(TenantRule::Header(TENANT_HEADER.clone()));
    }
    if let Ok(p) = HostPattern::parse(&host_pat) {
        rules.push(TenantRule::Host(p));
    }
    if let Ok(p) = PathPattern::parse(&path_pat) {
        rules.push(TenantRule::Path(p.fold_case(fold)));
    }
    if sel2 & 8 != 0 {
        if let Ok(p) = PathPattern::parse(&path_pat2) {
            rules.push(TenantRule::Path(p.fold_case(fold)));
        }
    }
    if sel & 0x20 != 0 {
        rules.push(TenantRule::Header(TENANT_HEADER.clone()));
    }
    if sel2 & 4 == 0 {
        rules.extend(static_rule);
    }
    let host_opt = (sel & 0x80 == 0).then_some(host.as_str());

    let got = resolve_tenant(&rules, &headers, host_opt, &path);
    assert_eq!(got, resolve_tenant(&rules, &headers, host_opt, &path));

    let answers: Vec<Alone> = rules
        .iter()
        .map(|r| alone(r, &headers, host_opt, &path))
        .collect();
    // Each rule on its own is what the contract says a rule yields.
    for (i, (rule, want)) in rules.iter().zip(&answers).enumerate() {
        let single = resolve_tenant(&rules[i..=i], &headers, host_opt, &path);
        let single = match (rule, single) {
            (TenantRule::Static(id), s) => {
                let want = match id.is_empty() {
                    true => TenantClaim::None,
                    false => TenantClaim::Tenant(Cow::Borrowed(id.as_str())),
                };
                assert_eq!(s, Ok(want), "static rule alone");
                continue;
            }
            (_, Ok(TenantClaim::None)) => Alone::Nothing,
            (_, Ok(TenantClaim::Tenant(t))) => Alone::Tenant(t.into_owned()),
            (_, Ok(TenantClaim::Project(p))) => Alone::Project(p.into_owned()),
            (_, Ok(c @ TenantClaim::Both { .. })) => panic!("one rule claimed both: {c:?}"),
            (_, Err(TenantError::Invalid)) => Alone::Invalid,
            (_, Err(TenantError::Conflict)) => panic!("one rule conflicts with itself"),
        };
        assert_eq!(&single, want, "rule {rule:?} alone");
    }

    let want = expected_claim(&rules, &answers);
    match (&got, &want) {
        (Err(_), Err(TenantError::Conflict)) if answers.contains(&Alone::Invalid) => {} // both present: either reason
        _ => assert_eq!(got, want, "rules {rules:?} answers {answers:?}"),
    }
    if let Ok(claim) = &got {
        let (t, p) = match claim {
            TenantClaim::None => (None, None),
            TenantClaim::Tenant(t) => (Some(t), None),
            TenantClaim::Project(p) => (None, Some(p)),
            TenantClaim::Both { tenant, project } => (Some(tenant), Some(project)),
        };
        let from_static = rules
            .iter()
            .any(|r| matches!(r, TenantRule::Static(id) if Some(id.as_str()) == t.map(|t| &**t)));
        if let Some(t) = t {
            assert!(from_static || is_valid(IdKind::EnterpriseId, t), "{t:?}");
        }
        if let Some(p) = p {
            assert!(is_valid(IdKind::ProjectId, p), "{p:?}");
        }
    }

    // The order of the rules changes neither the outcome's kind nor the claim.
    let reversed: Vec<TenantRule> = rules.iter().rev().cloned().collect();
    let back = resolve_tenant(&reversed, &headers, host_opt, &path);
    assert_eq!(got.is_err(), back.is_err(), "order changed fail-closed");
    if got.is_ok() {
        assert_eq!(got, back, "order changed the claim");
    }
});
