//! The `ip_range` grammar of docs/contract.md §3 (single address, CIDR, `start-end`; IPv4 or IPv6) and
//! IPv4-mapped normalisation.
//!
//! Owns: [`parse_ip_range`], [`IpRange`]. Does not own: the compiled set
//! (`iptable.rs`) or which entry ids/flags are valid (`snapshot.rs`). No I/O.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

/// The seed's `ip_type`: how an `ip_range` was written (docs/contract.md §3: 3 single, 2 CIDR, 1 range).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpType {
    /// `start-end`; `ip_type` 1.
    Range = 1,
    /// `addr/prefix`; `ip_type` 2.
    Cidr = 2,
    /// A single address; `ip_type` 3.
    Single = 3,
}

/// An inclusive address interval of one family. IPv4-mapped IPv6 is already folded into `V4`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpRange {
    /// IPv4 addresses `start..=end` as integers.
    V4 {
        /// First address.
        start: u32,
        /// Last address (inclusive).
        end: u32,
    },
    /// IPv6 addresses `start..=end` as integers.
    V6 {
        /// First address.
        start: u128,
        /// Last address (inclusive).
        end: u128,
    },
}

impl IpRange {
    /// Whether `ip` (IPv4-mapped addresses folded to IPv4 first) lies in the interval. Linear helper for
    /// tests and one-off checks; hot paths use [`IpTable::lookup`](super::IpTable::lookup).
    pub fn contains(&self, ip: IpAddr) -> bool {
        // docs/contract.md §3: IPv4-mapped IPv6 addresses are matched as IPv4.
        match (self, ip.to_canonical()) {
            (IpRange::V4 { start, end }, IpAddr::V4(a)) => (*start..=*end).contains(&u32::from(a)),
            (IpRange::V6 { start, end }, IpAddr::V6(a)) => (*start..=*end).contains(&u128::from(a)),
            _ => false,
        }
    }

    /// The first address, for the seed's `ip_start`.
    pub fn first(&self) -> IpAddr {
        match *self {
            IpRange::V4 { start, .. } => IpAddr::V4(Ipv4Addr::from(start)),
            IpRange::V6 { start, .. } => IpAddr::V6(Ipv6Addr::from(start)),
        }
    }

    /// The last address, for the seed's `ip_end`.
    pub fn last(&self) -> IpAddr {
        match *self {
            IpRange::V4 { end, .. } => IpAddr::V4(Ipv4Addr::from(end)),
            IpRange::V6 { end, .. } => IpAddr::V6(Ipv6Addr::from(end)),
        }
    }

    /// Both ends IPv4 (or IPv4-mapped) → `V4`; both plain IPv6 → `V6` (even when only one end is
    /// mapped, e.g. `::/80`); one plain IPv4 and one plain IPv6 → `None`.
    fn from_bounds(start: IpAddr, end: IpAddr) -> Option<IpRange> {
        let v4 = |s: Ipv4Addr, e: Ipv4Addr| IpRange::V4 {
            start: s.into(),
            end: e.into(),
        };
        match (start, end) {
            (IpAddr::V4(s), IpAddr::V4(e)) => Some(v4(s, e)),
            (IpAddr::V6(s), IpAddr::V6(e)) => match (s.to_ipv4_mapped(), e.to_ipv4_mapped()) {
                (Some(s4), Some(e4)) => Some(v4(s4, e4)),
                _ => Some(IpRange::V6 {
                    start: s.into(),
                    end: e.into(),
                }),
            },
            (IpAddr::V4(s), IpAddr::V6(e)) => e.to_ipv4_mapped().map(|e4| v4(s, e4)),
            (IpAddr::V6(s), IpAddr::V4(e)) => s.to_ipv4_mapped().map(|s4| v4(s4, e)),
        }
    }
}

/// A parsed `ip_range`: the interval and how it was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParsedIpRange {
    /// The addresses covered.
    pub range: IpRange,
    /// Single, CIDR or range.
    pub ip_type: IpType,
}

/// Why an `ip_range` string was rejected; the text is for people (the caller adds the position).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidIpRange(pub String);

impl fmt::Display for InvalidIpRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Parses the `ip_range` grammar of docs/contract.md §3: a single address, a CIDR, or `start-end`, IPv4 or
/// IPv6. Strict on purpose, since a typo in an allowlist silently widens or narrows access:
/// no whitespace anywhere, a CIDR must have its host bits clear, both ends of a range must be of
/// one family (after IPv4-mapped folding) with `start <= end`. An entry whose first *and* last
/// address are IPv4-mapped is folded into IPv4; a wider IPv6 entry stays IPv6 only.
pub fn parse_ip_range(text: &str) -> Result<ParsedIpRange, InvalidIpRange> {
    let bad = |why: String| Err(InvalidIpRange(why));
    if text.is_empty() {
        return bad("is empty; expected an address, a CIDR or start-end".into());
    }
    if text.chars().any(char::is_whitespace) {
        return bad("contains whitespace (write `1.1.1.1-1.1.1.9`, no spaces)".into());
    }
    if text.contains('/') {
        return parse_cidr(text);
    }
    if let Some((lo, hi)) = text.split_once('-') {
        let (Ok(start), Ok(end)) = (lo.parse::<IpAddr>(), hi.parse::<IpAddr>()) else {
            return bad("is not a valid start-end range of two IP addresses".into());
        };
        let Some(range) = IpRange::from_bounds(start, end) else {
            return bad(format!("mixes address families ({lo} and {hi})"));
        };
        let ordered = match range {
            IpRange::V4 { start, end } => start <= end,
            IpRange::V6 { start, end } => start <= end,
        };
        if !ordered {
            return bad(format!("start {lo} is greater than end {hi}"));
        }
        return Ok(ParsedIpRange {
            range,
            ip_type: IpType::Range,
        });
    }
    match text.parse::<IpAddr>() {
        Ok(ip) => IpRange::from_bounds(ip, ip)
            .map(|range| ParsedIpRange {
                range,
                ip_type: IpType::Single,
            })
            .ok_or_else(|| InvalidIpRange("is not a valid IP address".into())),
        Err(_) => bad("is not a valid IP address, CIDR or start-end range".into()),
    }
}

fn parse_cidr(text: &str) -> Result<ParsedIpRange, InvalidIpRange> {
    let net: IpNet = text
        .parse()
        .map_err(|_| InvalidIpRange("is not a valid CIDR (address/prefix)".into()))?;
    if net.addr() != net.network() {
        return Err(InvalidIpRange(format!(
            "has host bits set; did you mean {}/{}",
            net.network(),
            net.prefix_len()
        )));
    }
    let range = IpRange::from_bounds(net.network(), net.broadcast())
        .ok_or_else(|| InvalidIpRange("is not a valid CIDR".into()))?;
    Ok(ParsedIpRange {
        range,
        ip_type: IpType::Cidr,
    })
}

#[cfg(test)]
mod tests;
