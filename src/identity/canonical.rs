//! The canonical request path (docs/contract.md §4.0): the one path vpcguard matches routes and
//! tenant rules against *and* forwards, so that an upstream that decodes or normalises (nginx,
//! WSGI servers, Tomcat, IIS) cannot serve a different resource than the one that was judged.
//! Envoy's `normalize_path`, `merge_slashes` and `path_with_escaped_slashes_action` are the model;
//! each choice is named here:
//!
//! - escapes of unreserved characters (`ALPHA DIGIT - . _ ~`) are decoded (RFC 3986 §2.3), every
//!   other escape is kept with upper-case hex (§6.2.2.1), so `%61rchive` is `archive` and `%2e%2E`
//!   is `..`;
//! - dot segments, raw or escaped, are removed (RFC 3986 §5.2.4); a `..` above the root is an
//!   error, not clamped (the path was built to climb, and upstreams disagree on clamping);
//! - runs of `/` are merged when `merge_slashes` is on (nginx's default; a WSGI server keeps
//!   them, so `//archive` would route differently there);
//! - `%2F` and `%5C`, any case, follow [`EscapedSlashes`]: rejected (default), unescaped to `/`
//!   (both: IIS and some servlet containers treat `\` as a separator), or kept as opaque bytes;
//! - a raw `\`, `%00`, a `%` not followed by two hex digits, or a dot segment with parameters
//!   (`..;x`, which Tomcat resolves as `..` and nginx does not) is an error;
//! - path parameters (`;…`) stay on the wire; pattern literals ignore them (`pattern`).
//!
//! The query is not part of the path and is never changed.
//!
//! Pure; no I/O.

use std::borrow::Cow;

/// What to do with `%2F` / `%5C` in a path (`requests.escaped_slashes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EscapedSlashes {
    /// 400 `VG.00040001` (default): the upstream may or may not split on them.
    #[default]
    Reject,
    /// Decode both to `/`, then normalise (and forward) the result.
    Unescape,
    /// Keep them as escapes inside a segment (the upstream must not decode them).
    Keep,
}

/// The path rules of `requests:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathRules {
    /// `requests.merge_slashes`.
    pub merge_slashes: bool,
    /// `requests.escaped_slashes`.
    pub escaped_slashes: EscapedSlashes,
}

impl Default for PathRules {
    /// docs/contract.md §2 defaults: merge, reject escaped slashes.
    fn default() -> Self {
        PathRules {
            merge_slashes: true,
            escaped_slashes: EscapedSlashes::Reject,
        }
    }
}

/// Why a path has no canonical form. Each is answered 400 `VG.00040001` and counted as
/// `request_rejects_total{reason="path"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// Not `*` and not starting with `/`.
    #[error("the path does not start with '/'")]
    NotAbsolute,
    /// A raw backslash.
    #[error("raw backslash in the path")]
    Backslash,
    /// `%00`.
    #[error("%00 in the path")]
    Nul,
    /// `%` not followed by two hex digits.
    #[error("bad percent escape in the path")]
    BadEscape,
    /// `%2F` / `%5C` under `escaped_slashes: reject`.
    #[error("escaped slash in the path")]
    EscapedSlash,
    /// More `..` than segments before them.
    #[error("the path climbs above the root")]
    AboveRoot,
    /// `.;x` or `..;x`: resolved as a dot segment by some servers and not by others.
    #[error("dot segment with parameters")]
    DotWithParams,
}

impl PathError {
    /// A short, fixed reason for logs (the access log's `error` field).
    pub fn reason(self) -> &'static str {
        match self {
            PathError::NotAbsolute => "path_not_absolute",
            PathError::Backslash => "path_backslash",
            PathError::Nul => "path_nul",
            PathError::BadEscape => "path_bad_escape",
            PathError::EscapedSlash => "path_escaped_slash",
            PathError::AboveRoot => "path_above_root",
            PathError::DotWithParams => "path_dot_params",
        }
    }
}

/// The canonical form of the request path `path` (without the query) under `rules`.
///
/// `canonicalize_path(canonicalize_path(p)?) == canonicalize_path(p)` (idempotent).
///
/// # Performance
/// A path with no `%`, no `\`, no `.`/`..` segment and (when merging) no `//` is returned
/// borrowed after one scan: no allocation. Otherwise one `String` of at most `path.len()` bytes.
pub fn canonicalize_path<'a>(path: &'a str, rules: &PathRules) -> Result<Cow<'a, str>, PathError> {
    if path == "*" {
        return Ok(Cow::Borrowed(path));
    }
    let rest = path.strip_prefix('/').ok_or(PathError::NotAbsolute)?;
    if is_plain(rest, rules.merge_slashes) {
        return Ok(Cow::Borrowed(path));
    }
    let decoded = decode(path, rules.escaped_slashes)?;
    normalise(&decoded, rules.merge_slashes).map(Cow::Owned)
}

/// No escapes, backslashes, dot segments or (when merging) empty inner segments.
fn is_plain(rest: &str, merge_slashes: bool) -> bool {
    if rest.bytes().any(|b| b == b'%' || b == b'\\') {
        return false;
    }
    let mut segs = rest.split('/').peekable();
    while let Some(seg) = segs.next() {
        let name = seg.split(';').next().unwrap_or(seg);
        let last = segs.peek().is_none();
        if name == "." || name == ".." || (merge_slashes && seg.is_empty() && !last) {
            return false;
        }
    }
    true
}

/// Decode unreserved escapes, upper-case the others, apply the escaped-slash rule; reject raw
/// backslashes, `%00` and bad escapes. The result still starts with `/`.
fn decode(path: &str, slashes: EscapedSlashes) -> Result<String, PathError> {
    let mut out = String::with_capacity(path.len());
    let mut chars = path.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => return Err(PathError::Backslash),
            '%' => {
                let hi = chars.next().and_then(hex).ok_or(PathError::BadEscape)?;
                let lo = chars.next().and_then(hex).ok_or(PathError::BadEscape)?;
                let v = hi << 4 | lo;
                match v {
                    0 => return Err(PathError::Nul),
                    b'/' | b'\\' => match slashes {
                        EscapedSlashes::Reject => return Err(PathError::EscapedSlash),
                        EscapedSlashes::Unescape => out.push('/'),
                        EscapedSlashes::Keep => push_escape(&mut out, v),
                    },
                    _ if v.is_ascii_alphanumeric() || b"-._~".contains(&v) => {
                        out.push(char::from(v));
                    }
                    _ => push_escape(&mut out, v),
                }
            }
            // Every other character is kept as it is. hyper's `Uri` only lets ASCII through,
            // but the function is total on any `&str`, and a non-ASCII character must stay one
            // character: pushing each of its UTF-8 bytes as a `char` made `é` into `Ã©`.
            _ => out.push(c),
        }
    }
    Ok(out)
}

fn push_escape(out: &mut String, v: u8) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.push('%');
    for nibble in [v >> 4, v & 0xF] {
        let digit = HEX.get(usize::from(nibble)).copied().unwrap_or(b'0');
        out.push(char::from(digit));
    }
}

fn hex(c: char) -> Option<u8> {
    c.to_digit(16).and_then(|d| u8::try_from(d).ok())
}

/// Remove dot segments (RFC 3986 §5.2.4, without clamping at the root) and, when asked, empty
/// inner segments. `path` starts with `/`. A path that ends in a removed `.`/`..` or in `/` keeps
/// its trailing slash.
fn normalise(path: &str, merge_slashes: bool) -> Result<String, PathError> {
    let rest = path.get(1..).unwrap_or_default();
    let mut stack: Vec<&str> = Vec::new();
    let mut trailing_slash = false;
    let mut segs = rest.split('/').peekable();
    while let Some(seg) = segs.next() {
        let last = segs.peek().is_none();
        let (name, params) = match seg.split_once(';') {
            Some((name, _)) => (name, true),
            None => (seg, false),
        };
        trailing_slash = false;
        match name {
            "." | ".." if params => return Err(PathError::DotWithParams),
            "." => trailing_slash = last,
            ".." => {
                stack.pop().ok_or(PathError::AboveRoot)?;
                trailing_slash = last;
            }
            "" if seg.is_empty() && last => trailing_slash = true,
            "" if seg.is_empty() && merge_slashes => {}
            _ => stack.push(seg),
        }
    }
    let mut out = String::with_capacity(path.len());
    for seg in &stack {
        out.push('/');
        out.push_str(seg);
    }
    if trailing_slash || stack.is_empty() {
        out.push('/');
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
