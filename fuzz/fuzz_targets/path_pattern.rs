//! `vpcguard::identity::pattern::PathPattern::{parse, matches}` and `has_dot_segment`.
//!
//! Input: `pattern 0x00 path` (no 0x00: the whole input is both), each lossily UTF-8 decoded.
//!
//! Beyond "no panic":
//! - parse and match are deterministic; `as_str` is the text parsed, and re-parsing it gives an
//!   equal pattern;
//! - a match borrows its capture from the path, non-empty, without `/` or `?`, under the
//!   pattern's own capture name;
//! - a path with a dot segment matches nothing, and `/**` matches every other path starting with `/`;
//! - the query is ignored: `path` and `path` cut at its first `?` match alike;
//! - RFC 3986 §6.2.2 equivalence: percent-encoding the path's unreserved letters and digits, or
//!   changing the hex case of its escapes, does not change whether it matches.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use vpcguard::identity::pattern::{PathPattern, has_dot_segment};

static ANY: LazyLock<PathPattern> =
    LazyLock::new(|| PathPattern::parse("/**").expect("/** parses"));

fn split(data: &[u8]) -> (String, String) {
    match data.iter().position(|&b| b == 0) {
        Some(i) => (
            String::from_utf8_lossy(&data[..i]).into_owned(),
            String::from_utf8_lossy(&data[i + 1..]).into_owned(),
        ),
        None => {
            let s = String::from_utf8_lossy(data).into_owned();
            (s.clone(), s)
        }
    }
}

fn is_hex(b: u8) -> bool {
    b.is_ascii_hexdigit()
}

/// The path before its query, with every unreserved letter or digit that is not part of an
/// escape percent-encoded, and the hex digits of existing escapes case-flipped.
fn equivalent_spelling(path: &str) -> String {
    let (p, q) = match path.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path, None),
    };
    let b = p.as_bytes();
    let mut out = String::with_capacity(b.len() * 3);
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'%'
            && b.get(i + 1).copied().is_some_and(is_hex)
            && b.get(i + 2).copied().is_some_and(is_hex)
        {
            out.push('%');
            for &h in &b[i + 1..i + 3] {
                let h = char::from(h);
                out.push(if h.is_ascii_uppercase() {
                    h.to_ascii_lowercase()
                } else {
                    h.to_ascii_uppercase()
                });
            }
            i += 3;
        } else if c.is_ascii_alphanumeric() {
            out.push_str(&format!("%{c:02X}"));
            i += 1;
        } else {
            // Copy one whole UTF-8 character.
            let ch = p[i..].chars().next().expect("char boundary");
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    if let Some(q) = q {
        out.push('?');
        out.push_str(q);
    }
    out
}

fn within(outer: &str, inner: &str) -> bool {
    let (o, i) = (outer.as_ptr() as usize, inner.as_ptr() as usize);
    i >= o && i + inner.len() <= o + outer.len()
}

fuzz_target!(|data: &[u8]| {
    let (pattern, path) = split(data);

    // `/**` matches exactly the paths that start with '/' and have no dot segment.
    let before_query = path.split_once('?').map_or(path.as_str(), |(p, _)| p);
    let any = ANY.matches(&path).is_some();
    assert_eq!(
        any,
        path.starts_with('/') && !has_dot_segment(&path),
        "/** on {path:?}"
    );
    assert_eq!(has_dot_segment(&path), has_dot_segment(before_query));

    let parsed = PathPattern::parse(&pattern);
    assert_eq!(parsed, PathPattern::parse(&pattern));
    let Ok(p) = parsed else { return };
    assert_eq!(p.as_str(), pattern);
    assert_eq!(PathPattern::parse(p.as_str()).as_ref(), Ok(&p));

    let m = p.matches(&path);
    assert_eq!(m, p.matches(&path));
    if let Some(caps) = m {
        assert!(any, "{pattern:?} matched {path:?} which /** does not");
        assert_eq!(
            caps.first().map(|(n, _)| n),
            p.capture_name().filter(|_| caps.first().is_some())
        );
        if let Some((name, v)) = caps.first() {
            assert_eq!(Some(name), p.capture_name());
            assert!(
                !v.is_empty() && !v.contains('/') && !v.contains('?'),
                "{v:?}"
            );
            assert!(within(&path, v), "capture not borrowed from the path");
        }
    }
    // A pattern with a capture always captures when it matches.
    if m.is_some() && p.capture_name().is_some() {
        assert!(m.and_then(|c| c.first()).is_some());
    }
    assert_eq!(
        m.is_some(),
        p.matches(before_query).is_some(),
        "query changed the match"
    );

    let respelled = equivalent_spelling(&path);
    assert_eq!(
        m.is_some(),
        p.matches(&respelled).is_some(),
        "{pattern:?}: {path:?} vs {respelled:?}"
    );
});
