//! The VPC endpoint named by trusted request headers (docs/contract.md §2 `vpcep.headers` /
//! `vpcep.marker_headers`, §4 "VPC endpoint"), and removal of those headers when the peer is not
//! trusted.
//!
//! Owns: header syntax and the strip list. Does not own: the trust decision (the caller only calls
//! [`vpcep_from_headers`] for a trusted immediate peer), PROXY v2 TLVs (which take precedence), or
//! resolving a marker to a connection. No I/O.

#[cfg(test)]
mod tests;

use http::{HeaderMap, HeaderName};

/// The longest accepted VPC endpoint id.
pub const MAX_VPCEP_ID_LEN: usize = 64;

/// The prefix of vpcguard's own identity headers (docs/contract.md §2 `identity_headers`), never believed
/// from a client.
pub const IDENTITY_HEADER_PREFIX: &str = "x-vpcguard-";

/// The endpoint identity a trusted proxy sent.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HeaderVpcep {
    /// A VPC endpoint id from one of `vpcep.headers`, `[A-Za-z0-9-]{1,64}`.
    Id(String),
    /// A numeric marker (packet) id from one of `vpcep.marker_headers`.
    Marker(u64),
}

/// Why the vpcep headers of a trusted peer cannot be believed. Every variant fails closed: the
/// request is treated as having an unknown endpoint identity, never as "no endpoint".
///
/// docs/contract.md §5 has no error code for these; the caller maps them (400, or a deny) and counts them by
/// [`VpcepHeaderError::reason`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VpcepHeaderError {
    /// The header appears more than once with different values.
    #[error("header {header} is repeated with different values")]
    Conflicting {
        /// The repeated header.
        header: HeaderName,
    },
    /// An id header's value is not `[A-Za-z0-9-]{1,64}`.
    #[error("header {header} is not a VPC endpoint id")]
    InvalidId {
        /// The offending header.
        header: HeaderName,
    },
    /// A marker header's value is not a decimal u64.
    #[error("header {header} is not a decimal marker id")]
    InvalidMarker {
        /// The offending header.
        header: HeaderName,
    },
}

impl VpcepHeaderError {
    /// The stable snake_case reason used in metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Conflicting { .. } => "conflicting_vpcep_header",
            Self::InvalidId { .. } => "invalid_vpcep_id_header",
            Self::InvalidMarker { .. } => "invalid_vpcep_marker_header",
        }
    }
}

/// Read the endpoint identity from a trusted peer's headers.
///
/// `id_headers` are tried first, then `marker_headers`, each in order; the first header that is
/// present decides, and later ones are not read. `Ok(None)` when none is present.
///
/// A header repeated with identical values counts once; with different values it is an error, as
/// is a value of the wrong shape (fail closed: a trusted proxy never sends either).
pub fn vpcep_from_headers(
    headers: &HeaderMap,
    id_headers: &[HeaderName],
    marker_headers: &[HeaderName],
) -> Result<Option<HeaderVpcep>, VpcepHeaderError> {
    for name in id_headers {
        if let Some(value) = single_value(headers, name)? {
            if !is_vpcep_id(value) {
                return Err(VpcepHeaderError::InvalidId {
                    header: name.clone(),
                });
            }
            // Checked ASCII above, so the conversion is lossless.
            let id = String::from_utf8_lossy(value).into_owned();
            return Ok(Some(HeaderVpcep::Id(id)));
        }
    }
    for name in marker_headers {
        if let Some(value) = single_value(headers, name)? {
            return parse_marker(value)
                .map(|m| Some(HeaderVpcep::Marker(m)))
                .ok_or_else(|| VpcepHeaderError::InvalidMarker {
                    header: name.clone(),
                });
        }
    }
    Ok(None)
}

/// Remove, from a request whose immediate peer is not trusted, every header that claims an
/// identity: the configured vpcep headers and everything starting with `x-vpcguard-`
/// (docs/contract.md §4: "removed before anything else sees them").
///
/// # Performance
/// One pass over the header names; allocates only when something is removed.
pub fn strip_untrusted(
    headers: &mut HeaderMap,
    id_headers: &[HeaderName],
    marker_headers: &[HeaderName],
) {
    // One scan over the names present (a request has a handful) instead of one hash lookup per
    // configured name: `remove` hashes the name and probes even when it is absent, which is
    // nearly always (callgrind, BENCHMARKS.md). `HeaderName`s are stored lowercase, so the
    // prefix test is case-insensitive.
    let claims = |k: &HeaderName| {
        k.as_str().starts_with(IDENTITY_HEADER_PREFIX)
            || id_headers.contains(k)
            || marker_headers.contains(k)
    };
    if !headers.keys().any(claims) {
        return;
    }
    let found: Vec<HeaderName> = headers.keys().filter(|k| claims(k)).cloned().collect();
    for name in found {
        headers.remove(name);
    }
}

/// The header's value when present, requiring all its lines to agree.
fn single_value<'a>(
    headers: &'a HeaderMap,
    name: &HeaderName,
) -> Result<Option<&'a [u8]>, VpcepHeaderError> {
    let mut lines = headers.get_all(name).iter();
    let Some(first) = lines.next() else {
        return Ok(None);
    };
    if lines.any(|other| other != first) {
        return Err(VpcepHeaderError::Conflicting {
            header: name.clone(),
        });
    }
    Ok(Some(first.as_bytes()))
}

/// `[A-Za-z0-9-]{1,64}`.
fn is_vpcep_id(v: &[u8]) -> bool {
    (1..=MAX_VPCEP_ID_LEN).contains(&v.len())
        && v.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-')
}

/// A decimal u64: digits only (no sign, no whitespace), leading zeros allowed.
fn parse_marker(v: &[u8]) -> Option<u64> {
    if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    v.iter().try_fold(0u64, |acc, &d| {
        acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}
