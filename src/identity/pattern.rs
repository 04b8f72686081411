//! Path and host patterns for `tenant` and `routes` rules (docs/contract.md §2), with `{tenant}` /
//! `{project}` captures.
//!
//! Owns: pattern syntax and matching against the raw request path / Host. Does not own: which
//! rule applies (see `tenant` and `routes`), or validating captured ids (the policy does). No I/O.
//!
//! # Path patterns
//! `'/'`-separated segments, starting with `'/'`:
//! - a literal segment matches itself (see *Raw matching* for percent-encoding);
//! - `*` matches exactly one non-empty segment;
//! - `**` matches zero or more segments of any kind, including empty ones;
//! - `{tenant}` / `{project}` match one non-empty segment and capture it (at most one per pattern).
//!
//! **Trailing slash.** A path's segments are exactly `path[1..].split('/')`, so `/a/` has the
//! segments `a` and `` (empty) and `/` has one empty segment. A pattern may end in `/`, meaning an
//! empty last segment: `/a/` matches `/a/` only, `/a` matches `/a` only, `/a/**` matches both.
//! No other empty segment (`/a//b`) is allowed in a pattern; in a path only `**` matches one.
//!
//! **Raw matching.** The path is the raw URI path; anything from a `?` on is ignored. It is not
//! decoded, with two exceptions that close authorization bypasses against upstreams that decode:
//! - a literal compares equal modulo percent-encoding of *unreserved* characters (RFC 3986
//!   §6.2.2.2), so `/repo/%61rchive/x` is the same path as `/repo/archive/x`; other escapes,
//!   including `%2F`, are compared as escapes (case-insensitive hex) and never split segments;
//! - a path with a dot segment (`.` or `..`, also spelled `%2e`) matches no pattern, because the
//!   upstream may resolve it onto a different path than the one matched. Callers that must fail
//!   closed check [`has_dot_segment`] themselves (`routes` does).
//!
//! # Host patterns
//! `'.'`-separated labels matched ASCII case-insensitively: a literal label, `*` (one label), or a
//! capture. The port, and one trailing `.`, are removed from the Host before matching; IP-literal
//! hosts (`[::1]`) and hosts with `@` never match. Captures borrow the label as sent (its case).

mod host;
mod path;
#[cfg(test)]
mod tests;

pub use self::host::HostPattern;
pub use self::path::PathPattern;
pub(crate) use self::path::PathSeg;

/// The most segments (labels) a pattern may have; bounds matching work (see
/// [`PathPattern::matches`]).
pub const MAX_PATTERN_SEGMENTS: usize = 32;

/// A capture a pattern can make.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CaptureName {
    /// `{tenant}`: an enterprise id.
    Tenant,
    /// `{project}`: a project id, mapped to its tenant by the policy.
    Project,
}

/// What a successful match captured, borrowed from the matched text. No allocation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Captures<'a> {
    slot: Option<(CaptureName, &'a str)>,
}

/// A pattern that does not parse. A config error: the caller names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// A path pattern must start with `/`.
    #[error("path pattern must start with '/'")]
    MissingLeadingSlash,
    /// An empty host pattern.
    #[error("host pattern is empty")]
    Empty,
    /// `//` in a path pattern or `..` in a host pattern.
    #[error("empty segment (only a trailing '/' is allowed)")]
    EmptySegment,
    /// `{name}` with a name other than `tenant` or `project`.
    #[error("unknown capture {{{name}}}: use {{tenant}} or {{project}}")]
    UnknownCapture {
        /// The name found between the braces.
        name: String,
    },
    /// More than one capture in one pattern.
    #[error("at most one capture per pattern")]
    MultipleCaptures,
    /// `**/**`, which means the same as `**` and only costs matching time.
    #[error("'**' next to '**'")]
    AdjacentDoubleStar,
    /// `**` in a host pattern.
    #[error("'**' is not allowed in a host pattern")]
    DoubleStarInHost,
    /// A segment that mixes wildcards or braces with text (`a*`, `{x`), or has characters not
    /// allowed in a path (or host label).
    #[error("invalid segment {segment:?}: wildcards and captures must be a whole segment")]
    InvalidSegment {
        /// The offending segment.
        segment: String,
    },
    /// More than [`MAX_PATTERN_SEGMENTS`] segments.
    #[error("pattern has more than {limit} segments")]
    TooManySegments {
        /// The cap.
        limit: usize,
    },
}

// === impl Captures ===

impl<'a> Captures<'a> {
    /// The text captured under `name`.
    pub fn get(&self, name: CaptureName) -> Option<&'a str> {
        self.slot.filter(|(n, _)| *n == name).map(|(_, v)| v)
    }

    /// The capture, if the pattern had one.
    pub fn first(&self) -> Option<(CaptureName, &'a str)> {
        self.slot
    }

    pub(super) fn set(&mut self, name: CaptureName, value: &'a str) {
        self.slot = Some((name, value));
    }
}

// === shared helpers ===

/// Whether the raw path (query excluded) has a `.` or `..` segment, in any percent-spelling.
///
/// Why: RFC 3986 §5.2.4 lets the upstream remove dot segments, so such a path may reach a
/// different resource than the one a pattern saw.
pub fn has_dot_segment(path: &str) -> bool {
    let path = before_query(path);
    // A dot segment needs a `.` or an escape (`%2E`); most paths have neither, and one byte scan
    // tells (this runs once per route a request is matched against).
    if !path.bytes().any(|b| b == b'.' || b == b'%') {
        return false;
    }
    path.split('/').any(|seg| {
        let mut units = Units::new(seg.as_bytes());
        let mut dots = 0;
        for unit in &mut units {
            if unit != Unit::Plain(b'.') {
                return false;
            }
            dots += 1;
        }
        dots == 1 || dots == 2
    })
}

/// `path` up to its first `?` (a byte scan: paths are short).
pub(crate) fn before_query(path: &str) -> &str {
    path.bytes()
        .position(|b| b == b'?')
        .and_then(|i| path.get(..i))
        .unwrap_or(path)
}

pub(super) fn parse_capture(part: &str) -> Result<Option<CaptureName>, PatternError> {
    let Some(name) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) else {
        return Ok(None);
    };
    match name {
        "tenant" => Ok(Some(CaptureName::Tenant)),
        "project" => Ok(Some(CaptureName::Project)),
        _ => Err(PatternError::UnknownCapture {
            name: name.to_owned(),
        }),
    }
}

pub(super) fn check_limits(captures: usize, segments: usize) -> Result<(), PatternError> {
    if captures > 1 {
        return Err(PatternError::MultipleCaptures);
    }
    if segments > MAX_PATTERN_SEGMENTS {
        return Err(PatternError::TooManySegments {
            limit: MAX_PATTERN_SEGMENTS,
        });
    }
    Ok(())
}

pub(super) fn invalid_segment(part: &str) -> PatternError {
    PatternError::InvalidSegment {
        segment: part.to_owned(),
    }
}

/// Byte equality modulo percent-encoding of unreserved characters and hex case (RFC 3986 §6.2.2),
/// and with `fold` modulo ASCII case.
pub(super) fn equivalent(a: &[u8], b: &[u8], fold: bool) -> bool {
    let folded = |u: Unit| match (fold, u) {
        (true, Unit::Plain(c)) => Unit::Plain(c.to_ascii_lowercase()),
        (_, u) => u,
    };
    Units::new(a).map(folded).eq(Units::new(b).map(folded))
}

/// One character of a path segment after RFC 3986 §6.2.2 normalisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    /// A character as written, or an unreserved one that was percent-encoded.
    Plain(u8),
    /// A percent-encoded character that is not unreserved (kept distinct from its plain form).
    Escaped(u8),
}

/// Iterator of [`Unit`]s over a segment.
struct Units<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Units<'a> {
    fn new(s: &'a [u8]) -> Self {
        Self { s, i: 0 }
    }
}

impl Iterator for Units<'_> {
    type Item = Unit;

    fn next(&mut self) -> Option<Unit> {
        let c = *self.s.get(self.i)?;
        let hex = |k: usize| {
            self.s
                .get(self.i + k)
                .and_then(|&h| char::from(h).to_digit(16))
        };
        if let (b'%', Some(hi), Some(lo)) = (c, hex(1), hex(2)) {
            self.i += 3;
            // hi, lo < 16, so the byte cannot overflow.
            let v = u8::try_from(hi * 16 + lo).unwrap_or(0);
            let unreserved = v.is_ascii_alphanumeric() || b"-._~".contains(&v);
            return Some(if unreserved {
                Unit::Plain(v)
            } else {
                Unit::Escaped(v)
            });
        }
        self.i += 1;
        Some(Unit::Plain(c))
    }
}
