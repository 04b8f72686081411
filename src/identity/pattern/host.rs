//! [`HostPattern`]: compiling and matching `'.'`-separated host patterns (syntax in the parent
//! module). No I/O.

use std::fmt;
use std::str::FromStr;

use super::{CaptureName, Captures, PatternError, check_limits, invalid_segment, parse_capture};

/// A compiled host pattern, e.g. `{tenant}.repo.example.com`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern {
    source: Box<str>,
    labels: Vec<HostLabel>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostLabel {
    /// Lowercase.
    Literal(Box<str>),
    Star,
    Capture(CaptureName),
}

// === impl HostPattern ===

impl HostPattern {
    /// Parse and validate a host pattern (syntax in the module docs). Literals are lowercased.
    pub fn parse(s: &str) -> Result<Self, PatternError> {
        if s.is_empty() {
            return Err(PatternError::Empty);
        }
        let mut labels = Vec::new();
        for part in s.split('.') {
            let label = match part {
                "" => return Err(PatternError::EmptySegment),
                "**" => return Err(PatternError::DoubleStarInHost),
                "*" => HostLabel::Star,
                _ => match parse_capture(part)? {
                    Some(name) => HostLabel::Capture(name),
                    None if is_host_literal(part) => {
                        HostLabel::Literal(part.to_ascii_lowercase().into())
                    }
                    None => return Err(invalid_segment(part)),
                },
            };
            labels.push(label);
        }
        check_limits(
            labels
                .iter()
                .filter(|l| matches!(l, HostLabel::Capture(_)))
                .count(),
            labels.len(),
        )?;
        Ok(Self {
            source: s.into(),
            labels,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The capture this pattern makes, if any.
    pub fn capture_name(&self) -> Option<CaptureName> {
        self.labels.iter().find_map(|l| match l {
            HostLabel::Capture(name) => Some(*name),
            _ => None,
        })
    }

    /// Match a `Host` header or `:authority` value; captures borrow from `host`.
    ///
    /// # Performance
    /// No allocation; one pass over the labels.
    pub fn matches<'a>(&self, host: &'a str) -> Option<Captures<'a>> {
        let host = strip_port(host)?;
        let host = host.strip_suffix('.').unwrap_or(host);
        let mut caps = Captures::default();
        let mut parts = host.split('.');
        for label in &self.labels {
            let text = parts.next().filter(|t| !t.is_empty())?;
            let ok = match label {
                HostLabel::Literal(lit) => lit.eq_ignore_ascii_case(text),
                HostLabel::Star => true,
                HostLabel::Capture(name) => {
                    caps.set(*name, text);
                    true
                }
            };
            ok.then_some(())?;
        }
        parts.next().is_none().then_some(caps)
    }
}

/// `host[:port]` without the port; `None` for IP literals, userinfo or a non-numeric port.
fn strip_port(host: &str) -> Option<&str> {
    if host.starts_with('[') || host.contains('@') {
        return None;
    }
    match host.split_once(':') {
        Some((name, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => {
            Some(name)
        }
        Some(_) => None,
        None => Some(host),
    }
}

impl FromStr for HostPattern {
    type Err = PatternError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

fn is_host_literal(s: &str) -> bool {
    s.bytes()
        .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
}
