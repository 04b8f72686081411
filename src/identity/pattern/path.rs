//! [`PathPattern`]: compiling and matching `'/'`-separated globs (syntax in the parent module).
//! No I/O.

use std::fmt;
use std::str::FromStr;

use super::{
    CaptureName, Captures, PatternError, check_limits, equivalent, has_dot_segment,
    invalid_segment, parse_capture,
};

/// One path pattern segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PathSeg {
    /// Matches itself; empty only as the trailing-slash segment.
    Literal(Box<str>),
    /// `*`
    Star,
    /// `**`
    DoubleStar,
    /// `{tenant}` / `{project}`
    Capture(CaptureName),
}

/// A compiled path glob, e.g. `/**/archive/**` or `/v1/{project}/**`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathPattern {
    source: Box<str>,
    segs: Vec<PathSeg>,
    /// `requests.path_case: insensitive`: literals compare ASCII case-insensitively.
    fold_case: bool,
}

// === impl PathPattern ===

impl PathPattern {
    /// Parse and validate a path pattern (syntax in the module docs).
    pub fn parse(s: &str) -> Result<Self, PatternError> {
        let rest = s
            .strip_prefix('/')
            .ok_or(PatternError::MissingLeadingSlash)?;
        let mut segs = Vec::new();
        let mut parts = rest.split('/').peekable();
        while let Some(part) = parts.next() {
            let seg = match part {
                "" if parts.peek().is_some() => return Err(PatternError::EmptySegment),
                "**" if segs.last() == Some(&PathSeg::DoubleStar) => {
                    return Err(PatternError::AdjacentDoubleStar);
                }
                "**" => PathSeg::DoubleStar,
                "*" => PathSeg::Star,
                _ => match parse_capture(part)? {
                    Some(name) => PathSeg::Capture(name),
                    None if is_path_literal(part) => PathSeg::Literal(part.into()),
                    None => return Err(invalid_segment(part)),
                },
            };
            segs.push(seg);
        }
        check_limits(
            segs.iter()
                .filter(|s| matches!(s, PathSeg::Capture(_)))
                .count(),
            segs.len(),
        )?;
        Ok(Self::from_segs(s, segs))
    }

    /// Build from already-valid segments (for built-in defaults, which cannot fail to parse).
    pub(crate) fn from_segs(source: &str, segs: Vec<PathSeg>) -> Self {
        Self {
            source: source.into(),
            segs,
            fold_case: false,
        }
    }

    /// The same pattern with literals compared ASCII case-insensitively (`requests.path_case:
    /// insensitive`, for upstreams on case-insensitive file systems).
    pub fn fold_case(mut self, fold: bool) -> Self {
        self.fold_case = fold;
        self
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The capture this pattern makes, if any.
    pub fn capture_name(&self) -> Option<CaptureName> {
        self.segs.iter().find_map(|s| match s {
            PathSeg::Capture(name) => Some(*name),
            _ => None,
        })
    }

    /// Match a raw request path (module docs: *Raw matching*); captures borrow from `path`.
    ///
    /// `**` is lazy: when several splits match, the capture comes from the one where the earlier
    /// `**` consumed the fewest segments.
    ///
    /// # Performance
    /// No allocation and no recursion. Classic single-backtrack-point wildcard matching: at most
    /// `(n + 1) × m` segment comparisons for `n` path segments and `m ≤ 32` pattern segments,
    /// whatever the number of `**`; `n + m` when there is no `**`. Plus one O(len) scan for dot
    /// segments.
    pub fn matches<'a>(&self, path: &'a str) -> Option<Captures<'a>> {
        let path = super::before_query(path);
        let rest = path.strip_prefix('/')?;
        if has_dot_segment(path) {
            return None;
        }
        let mut caps = Captures::default();
        let mut pi = 0; // next pattern segment
        let mut cur = Some(0); // byte offset of the next path segment in `rest`; None = none left
        // Where to resume after the most recent `**`: (pattern index after it, path cursor).
        let mut star: Option<(usize, Option<usize>)> = None;
        loop {
            match self.segs.get(pi) {
                Some(PathSeg::DoubleStar) => {
                    pi += 1;
                    star = Some((pi, cur));
                    continue;
                }
                Some(seg) => {
                    if let Some((text, next)) = cur.map(|at| segment_at(rest, at))
                        && seg_matches(seg, text, self.fold_case, &mut caps)
                    {
                        pi += 1;
                        cur = next;
                        continue;
                    }
                }
                None if cur.is_none() => return Some(caps),
                None => {}
            }
            // Mismatch: let the last `**` swallow one more segment and retry after it.
            let (resume, at) = star?;
            let next = segment_at(rest, at?).1;
            star = Some((resume, next));
            pi = resume;
            cur = next;
        }
    }
}

/// The segment of `rest` starting at byte `at`, and where the following one starts.
fn segment_at(rest: &str, at: usize) -> (&str, Option<usize>) {
    let tail = rest.get(at..).unwrap_or_default();
    // A byte scan: segments are short, and `str::split_once(char)` sets up a searcher each call.
    match tail.bytes().position(|b| b == b'/') {
        Some(i) => (tail.get(..i).unwrap_or_default(), Some(at + i + 1)),
        None => (tail, None),
    }
}

fn seg_matches<'a>(seg: &PathSeg, text: &'a str, fold: bool, caps: &mut Captures<'a>) -> bool {
    match seg {
        PathSeg::Literal(lit) => {
            // docs/contract.md §4.0: path parameters stay on the wire, but a literal matches a
            // segment up to its first `;` (servlet containers serve `archive;x` as `archive`).
            let name = match lit.bytes().any(|b| b == b';') {
                true => text,
                false => text
                    .bytes()
                    .position(|b| b == b';')
                    .and_then(|i| text.get(..i))
                    .unwrap_or(text),
            };
            equivalent(lit.as_bytes(), name.as_bytes(), fold)
        }
        PathSeg::Star => !text.is_empty(),
        PathSeg::Capture(name) if !text.is_empty() => {
            // Overwriting is right: on backtracking every segment after the last `**` is matched
            // again, so the final value is the one from the successful attempt.
            caps.set(*name, text);
            true
        }
        PathSeg::Capture(_) | PathSeg::DoubleStar => false,
    }
}

impl FromStr for PathPattern {
    type Err = PatternError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for PathPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

/// RFC 3986 `pchar`s (unreserved, pct-encoded, sub-delims, `:`, `@`) minus `*`; `%` must start a
/// valid escape. Excludes `?`, `#`, `{`, `}`, whitespace and controls.
fn is_path_literal(s: &str) -> bool {
    let b = s.as_bytes();
    b.iter().enumerate().all(|(i, &c)| match c {
        b'%' => {
            b.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit)
        }
        b'*' => false,
        _ => c.is_ascii_alphanumeric() || b"-._~!$&'()+,;=:@".contains(&c),
    })
}
