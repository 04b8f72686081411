//! Query strings (`application/x-www-form-urlencoded` as browsers and curl send them): one
//! percent-decoder, shared by the data plane's self check and the admin API's parameters.
//!
//! Pure; no I/O.

/// The first value of `name` in a query string, percent-decoded (`+` is a space).
pub fn query_param(query: &str, name: &str) -> Option<String> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
        .find(|(k, _)| *k == name)
        .and_then(|(_, v)| percent_decode(v))
}

/// Percent-decode a query-string component (`+` is a space); `None` on a bad escape (`%` not
/// followed by two hex digits) or non-UTF-8.
pub fn percent_decode(s: &str) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(c) = bytes.next() {
        match c {
            b'%' => {
                let hi = hex_digit(bytes.next()?)?;
                let lo = hex_digit(bytes.next()?)?;
                out.push(hi << 4 | lo);
            }
            b'+' => out.push(b' '),
            c => out.push(c),
        }
    }
    String::from_utf8(out).ok()
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_param_cases() {
        const CASES: &[(&str, &str, Option<&str>)] = &[
            ("enterprise_id=abc", "enterprise_id", Some("abc")),
            ("a=1&enterprise_id=x%2Fy", "enterprise_id", Some("x/y")),
            ("a=1", "enterprise_id", None),
            ("enterprise_id=%zz", "enterprise_id", None),
            ("enterprise_id=%4", "enterprise_id", None),
            // `u8::from_str_radix` would take "+1" as a number: not a hex escape.
            ("enterprise_id=%+1", "enterprise_id", None),
            ("enterprise_id=a+b%2b", "enterprise_id", Some("a b+")),
            ("enterprise_id", "enterprise_id", Some("")),
        ];
        for (q, name, want) in CASES {
            assert_eq!(query_param(q, name).as_deref(), *want, "case {q:?}");
        }
    }
}
