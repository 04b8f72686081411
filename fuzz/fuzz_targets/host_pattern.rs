//! `vpcguard::identity::pattern::HostPattern::{parse, matches}`.
//!
//! Input: `pattern 0x00 host` (no 0x00: the whole input is both), each lossily UTF-8 decoded.
//!
//! Beyond "no panic":
//! - parse and match are deterministic; `as_str` is the text parsed, re-parsing gives an equal
//!   pattern;
//! - a capture is borrowed from the host, non-empty, without `.`, `:` or `@`;
//! - ASCII case does not matter: the host with its ASCII case flipped matches alike;
//! - a port, and one trailing dot, do not matter: for a host without `:`, `@` or a trailing `.`,
//!   `host`, `host:8443` and `host.` match alike; IP literals (`[…]`) and `@` never match.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vpcguard::identity::pattern::HostPattern;

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

fn flip_case(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_uppercase() {
                c.to_ascii_lowercase()
            } else {
                c.to_ascii_uppercase()
            }
        })
        .collect()
}

fn within(outer: &str, inner: &str) -> bool {
    let (o, i) = (outer.as_ptr() as usize, inner.as_ptr() as usize);
    i >= o && i + inner.len() <= o + outer.len()
}

fuzz_target!(|data: &[u8]| {
    let (pattern, host) = split(data);
    let parsed = HostPattern::parse(&pattern);
    assert_eq!(parsed, HostPattern::parse(&pattern));
    let Ok(p) = parsed else { return };
    assert_eq!(p.as_str(), pattern);
    assert_eq!(HostPattern::parse(p.as_str()).as_ref(), Ok(&p));

    let m = p.matches(&host);
    assert_eq!(m, p.matches(&host));
    if let Some(caps) = m {
        assert!(!host.starts_with('[') && !host.contains('@'), "{host:?}");
        assert_eq!(caps.first().map(|(n, _)| n), p.capture_name());
        if let Some((_, v)) = caps.first() {
            assert!(!v.is_empty(), "empty capture from {host:?}");
            assert!(!v.contains(['.', ':', '@']), "capture {v:?} from {host:?}");
            assert!(within(&host, v), "capture not borrowed from the host");
        }
    }
    assert_eq!(
        m.is_some(),
        p.matches(&flip_case(&host)).is_some(),
        "case changed the match of {host:?}"
    );
    if !host.contains([':', '@']) && !host.ends_with('.') {
        let with_port = format!("{host}:8443");
        let with_dot = format!("{host}.");
        let dot_port = format!("{host}.:443");
        for other in [&with_port, &with_dot, &dot_port] {
            assert_eq!(
                m.is_some(),
                p.matches(other).is_some(),
                "{host:?} vs {other:?}"
            );
        }
    }
});
