//! `vpcguard::identity::canonical::canonicalize_path` (docs/contract.md §4.0) on arbitrary request
//! targets, under every `requests:` path rule, and the canonical path through the routes of a
//! config compiled by `config::parse` (what the data plane matches: `verdict::facts` calls
//! `config.routes.right_for` on the canonical path).
//!
//! Input: `selector byte`, then the request target. Selector bits 0–1: `escaped_slashes`
//! (`reject`, `unescape`, `keep`, or the key left out); bit 2: `merge_slashes: false`; bit 3:
//! `path_case: insensitive`; bits 4–5: the method (GET, HEAD, POST, PUT); bit 6: a custom routes
//! table instead of the default one. The target is canonicalised twice over: lossily decoded as
//! any `&str` (the function is total on it), and, when `http::Uri` accepts the bytes (as hyper
//! does for a request line), its `path()`.
//!
//! Beyond "no panic", for every path and rules (the properties of `canonical/tests.rs` and of the
//! module docs):
//! - deterministic; `*` is `*`; a path not starting with `/` is `NotAbsolute`; an error is a
//!   `PathError` with a `path_*` reason;
//! - idempotent: the canonical path canonicalises to itself;
//! - the canonical path starts with `/`, has no `.`/`..` segment (raw, escaped or with
//!   parameters; `has_dot_segment` agrees), no raw `\`, no `//` when merging, and its escapes are
//!   upper-case, never of an unreserved character or NUL, and `%2F`/`%5C` only under `keep`;
//! - it is borrowed only when equal to the input, and a plain path (no `%`, `\`, dot segment, or
//!   `//` when merging) is borrowed; it is never longer than the input;
//! - a raw `\`, `%00`, a bad escape, or (under `reject`) `%2F`/`%5C` is always an error;
//! - when `reject` accepts a path, `unescape` and `keep` give the same result;
//! - ASCII case: upper-casing the input changes the result (or the error) only by ASCII case;
//! - a canonical path of a target `http::Uri` accepts is a valid `PathAndQuery` again, with the
//!   query unchanged (else the proxy answers 400 `path_unencodable`);
//! - routes: under `path_case: insensitive` the ASCII case of the canonical path does not change
//!   the right; with the default table, merging and not `keep`, the right of the canonical path
//!   is the right of what a normalising upstream serves for it (`upstream_view`, as in the
//!   proptest `canonical_route_is_upstream_route`).
#![no_main]

use std::borrow::Cow;
use std::path::Path;
use std::sync::LazyLock;

use http::Method;
use http::uri::{PathAndQuery, Uri};
use libfuzzer_sys::fuzz_target;
use vpcguard::config::{Config, parse};
use vpcguard::identity::canonical::{EscapedSlashes, PathError, PathRules, canonicalize_path};
use vpcguard::identity::pattern::has_dot_segment;

const ESCAPED: [Option<&str>; 4] = [Some("reject"), Some("unescape"), Some("keep"), None];

const CUSTOM_ROUTES: &str = r#"routes:
  - { path: "/v1/{project}/Raw/**", methods: [GET, HEAD], right: download }
  - { path: "/**/archive/**", right: download }
  - { path: "/v1/*/list;v=2", methods: [GET], right: view }
  - { path: "/v1/{tenant}/files/*", methods: [PUT], right: upload }
  - { methods: [GET, HEAD, OPTIONS], right: view }
"#;

/// One compiled config per value of selector bits 0–3 and 6 (see [`config_index`]), parsed once.
static CONFIGS: LazyLock<Vec<Config>> = LazyLock::new(|| {
    (0u8..32)
        .map(|i| {
            let sel = (i & 0xf) | (i & 0x10) << 2;
            let mut text = String::from("requests:\n");
            if let Some(e) = ESCAPED[usize::from(sel & 3)] {
                text.push_str(&format!("  escaped_slashes: {e}\n"));
            }
            text.push_str(&format!("  merge_slashes: {}\n", sel & 4 == 0));
            if sel & 8 != 0 {
                text.push_str("  path_case: insensitive\n");
            }
            if sel & 0x40 != 0 {
                text.push_str(CUSTOM_ROUTES);
            }
            parse(&text, Path::new("/fuzz/vpcguard.yaml"))
                .unwrap_or_else(|e| panic!("config {sel:#x} does not parse: {e}\n{text}"))
        })
        .collect()
});

/// A string in a failure message, cut to its first 160 characters (libFuzzer's inputs run to
/// 4 KiB).
struct Short<'a>(&'a str);

impl std::fmt::Debug for Short<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.char_indices().nth(160) {
            None => write!(f, "{:?}", self.0),
            Some((at, _)) => write!(f, "{:?}… ({} bytes)", &self.0[..at], self.0.len()),
        }
    }
}

fn config_index(sel: u8) -> usize {
    usize::from((sel & 0xf) | (sel & 0x40) >> 2)
}

fn hex(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

fn unreserved(v: u8) -> bool {
    v.is_ascii_alphanumeric() || b"-._~".contains(&v)
}

/// The escapes of `s`, read left to right as the decoder reads them: `Some(value)` for a
/// well-formed `%XX`, `None` for a `%` without two hex digits.
fn escapes(s: &str) -> Vec<(Option<u8>, &str)> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'%' {
            i += 1;
            continue;
        }
        match (
            b.get(i + 1).copied().and_then(hex),
            b.get(i + 2).copied().and_then(hex),
        ) {
            (Some(hi), Some(lo)) => {
                out.push((Some(hi << 4 | lo), &s[i + 1..i + 3]));
                i += 3;
            }
            _ => {
                out.push((None, ""));
                i += 1;
            }
        }
    }
    out
}

fn has_dot_name(path: &str) -> bool {
    path.split('/').any(|seg| {
        let name = seg.split(';').next().unwrap_or(seg);
        name == "." || name == ".."
    })
}

/// What a normalising upstream serves for the path it receives: every escape decoded once,
/// `;` parameters dropped (servlet containers), dot segments removed, slashes merged. Copied
/// from `src/identity/canonical/tests.rs`.
fn upstream_view(path: &str) -> Option<String> {
    // A server splits the query off the raw target before it decodes the path (a `&str` target
    // may carry a raw `?`; `Uri::path()` never does).
    let path = path.split_once('?').map_or(path, |(p, _)| p);
    let bytes = path.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&c) = bytes.get(i) {
        if c == b'%' {
            let h = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            decoded.push(u8::from_str_radix(h, 16).ok()?);
            i += 3;
        } else {
            decoded.push(c);
            i += 1;
        }
    }
    let text = String::from_utf8_lossy(&decoded).into_owned();
    let mut stack: Vec<String> = Vec::new();
    for seg in text.split('/').skip(1) {
        let name = seg.split(';').next().unwrap_or(seg);
        match name {
            "" | "." => {}
            ".." => {
                stack.pop()?;
            }
            n => stack.push(n.to_owned()),
        }
    }
    Some(format!("/{}", stack.join("/")))
}

/// Whether `upstream_view` models the upstream for this canonical path. It decodes and then
/// hands the decoded text to the route matcher, which reads it as a *raw* path again: a decoded
/// `%` would be decoded a second time, a decoded `?` would start a query and a decoded `;` would
/// start parameters, none of which an upstream does to a decoded path (servers split the query
/// and the `;` parameters on the raw target). So only paths without those escapes, in ASCII
/// (what a request line carries), are compared.
fn modelled(canonical: &str) -> bool {
    // A raw `?`: `canonicalize_path` reads its whole input as a path (the data plane passes
    // `Uri::path()`, which never holds one), the routes and a server stop at it; which side of
    // it a dot segment falls on then decides, not the path (found: `/a/.?.x` is judged dotted,
    // fail-closed, while a server serves `/a`).
    canonical.is_ascii()
        && !canonical.contains('?')
        && escapes(canonical)
            .iter()
            .all(|(v, _)| !matches!(v, Some(b'%' | b'?' | b';')))
}

fn check(raw: &str, rules: &PathRules, config: &Config, default_table: bool, method: &Method) {
    let r = Short(raw);
    let got = canonicalize_path(raw, rules);
    assert_eq!(got, canonicalize_path(raw, rules), "deterministic");
    if raw == "*" {
        assert_eq!(got.as_deref(), Ok("*"));
        return;
    }
    if !raw.starts_with('/') {
        assert_eq!(got, Err(PathError::NotAbsolute), "{r:?}");
        return;
    }

    // Inputs that must be refused.
    let esc = escapes(raw);
    let must_fail = raw.contains('\\')
        || esc.iter().any(|(v, _)| match v {
            None | Some(0) => true,
            Some(b'/' | b'\\') => rules.escaped_slashes == EscapedSlashes::Reject,
            Some(_) => false,
        });
    if must_fail {
        assert!(got.is_err(), "{r:?} accepted under {rules:?}");
    }

    // Plain inputs are returned as they are.
    let plain = esc.is_empty()
        && !raw.contains('\\')
        && !has_dot_name(raw)
        && !(rules.merge_slashes && raw.contains("//"));
    if plain {
        assert!(
            matches!(got, Ok(Cow::Borrowed(c)) if c == raw),
            "plain {r:?} not borrowed under {rules:?}"
        );
    }

    // ASCII case changes nothing but ASCII case.
    let upper = raw.to_ascii_uppercase();
    let us = Short(&upper);
    let got_upper = canonicalize_path(&upper, rules);
    assert_eq!(
        got_upper
            .as_ref()
            .map(|c| c.to_ascii_uppercase())
            .map_err(|e| *e),
        got.as_ref().map(|c| c.to_ascii_uppercase()).map_err(|e| *e),
        "{r:?} and {us:?} under {rules:?}"
    );

    let c = match got {
        Err(e) => {
            assert!(e.reason().starts_with("path_"), "{e:?}");
            return;
        }
        Ok(c) => c,
    };
    let cs = Short(&c);
    if let Cow::Borrowed(b) = &c {
        assert_eq!(*b, raw, "borrowed but different");
    }
    assert!(
        c.len() <= raw.len(),
        "canonical {cs:?} longer than the input {r:?} under {rules:?}"
    );

    // Idempotent.
    let again = canonicalize_path(&c, rules);
    assert_eq!(
        again.as_deref(),
        Ok(&*c),
        "not idempotent: {r:?} -> {cs:?} under {rules:?}"
    );

    // The shape of a canonical path.
    assert!(c.starts_with('/'), "{cs:?}");
    assert!(!has_dot_name(&c), "dot segment left in {cs:?} from {r:?}");
    // `has_dot_segment` reads a raw target and stops at its query; `path()` never has a `?`.
    if !c.contains('?') {
        assert!(!has_dot_segment(&c), "has_dot_segment({cs:?}) from {r:?}");
    }
    assert!(!c.contains('\\'), "{cs:?}");
    if rules.merge_slashes {
        assert!(!c.contains("//"), "{cs:?} from {r:?}");
    }
    for (v, digits) in escapes(&c) {
        let v = v.unwrap_or_else(|| panic!("bad escape left in {cs:?} from {r:?}"));
        assert!(
            !digits.bytes().any(|d| d.is_ascii_lowercase()),
            "lower-case escape in {cs:?}"
        );
        assert!(v != 0 && !unreserved(v), "escape %{digits} left in {cs:?}");
        if matches!(v, b'/' | b'\\') {
            assert_eq!(
                rules.escaped_slashes,
                EscapedSlashes::Keep,
                "{cs:?} from {r:?}"
            );
        }
    }

    // `reject` accepting means there was no escaped slash: the other policies agree.
    if rules.escaped_slashes == EscapedSlashes::Reject {
        for escaped_slashes in [EscapedSlashes::Unescape, EscapedSlashes::Keep] {
            let other = PathRules {
                escaped_slashes,
                ..*rules
            };
            assert_eq!(
                canonicalize_path(raw, &other).as_deref(),
                Ok(&*c),
                "{r:?} under {other:?}"
            );
        }
    }

    // Routes.
    let routes = &config.routes;
    let right = routes.right_for(method, &c);
    if config.requests.path_case_insensitive {
        for v in [c.to_ascii_uppercase(), c.to_ascii_lowercase()] {
            let vs = Short(&v);
            assert_eq!(right, routes.right_for(method, &v), "{cs:?} vs {vs:?}");
        }
    }
    if default_table
        && rules.merge_slashes
        && rules.escaped_slashes != EscapedSlashes::Keep
        && modelled(&c)
        && let Some(served) = upstream_view(&c)
    {
        let ss = Short(&served);
        assert_eq!(
            right,
            routes.right_for(method, &served),
            "{method} {r:?}: canonical {cs:?}, served {ss:?}"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, target)) = data.split_first() else {
        return;
    };
    let config = &CONFIGS[config_index(sel)];
    let rules = config.requests.path;
    // The config maps `requests:` onto the rules.
    let want_escaped = [
        EscapedSlashes::Reject,
        EscapedSlashes::Unescape,
        EscapedSlashes::Keep,
        EscapedSlashes::Reject,
    ][usize::from(sel & 3)];
    assert_eq!(
        rules,
        PathRules {
            merge_slashes: sel & 4 == 0,
            escaped_slashes: want_escaped,
        }
    );
    assert_eq!(config.requests.path_case_insensitive, sel & 8 != 0);
    let method =
        [Method::GET, Method::HEAD, Method::POST, Method::PUT][usize::from(sel >> 4 & 3)].clone();

    let text = String::from_utf8_lossy(target);
    check(&text, &rules, config, sel & 0x40 == 0, &method);

    // As hyper hands it over: a target `http::Uri` accepts, and its path.
    let Ok(uri) = Uri::try_from(target) else {
        return;
    };
    let path = uri.path();
    check(path, &rules, config, sel & 0x40 == 0, &method);
    if let Ok(c) = canonicalize_path(path, &rules) {
        let pq = match uri.query() {
            Some(q) => format!("{c}?{q}"),
            None => c.clone().into_owned(),
        };
        let back = PathAndQuery::try_from(pq.as_str())
            .unwrap_or_else(|e| panic!("canonical {pq:?} of {uri} is no PathAndQuery: {e}"));
        assert_eq!(back.path(), &*c, "{uri}");
        assert_eq!(back.query(), uri.query(), "{uri}");
    }
});
