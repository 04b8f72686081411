use std::net::IpAddr;

use proptest::prelude::*;

use super::*;
use crate::policy::iprange::parse_ip_range;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn entry(range: &str, rights: Rights) -> TableEntry {
    TableEntry {
        range: parse_ip_range(range).unwrap().range,
        rights,
    }
}

const V: Rights = Rights(1);
const D: Rights = Rights(2);
const U: Rights = Rights(4);

#[test]
fn iptable_overlapping_entries_union_rights_and_attribute_per_right() {
    let table = IpTable::build([
        entry("10.1.0.0/16", V.union(D)),    // 0
        entry("10.1.2.0/24", U),             // 1
        entry("10.1.2.128/25", Rights::ALL), // 2
        entry("192.0.2.7", Rights::NONE),    // 3
    ]);
    // (ip, rights, best entry, entry for upload)
    type Want = Option<(Rights, u32, u32)>;
    let cases: &[(&str, Want)] = &[
        ("10.1.0.1", Some((V.union(D), 0, 0))),
        ("10.1.2.1", Some((Rights::ALL, 0, 1))),
        ("10.1.2.200", Some((Rights::ALL, 2, 1))),
        ("10.1.255.255", Some((V.union(D), 0, 0))),
        ("10.2.0.0", None),
        ("192.0.2.7", Some((Rights::NONE, 3, 3))),
        ("::ffff:10.1.0.1", Some((V.union(D), 0, 0))),
        ("2001:db8::1", None),
    ];
    for &(addr, want) in cases {
        let got = table
            .lookup(ip(addr))
            .map(|h| (h.rights, h.entry, h.entry_for(Right::Upload)));
        assert_eq!(got, want, "case {addr}");
    }
}

#[test]
fn iptable_adjacent_equal_intervals_are_coalesced() {
    let table = IpTable::build([
        entry("10.0.0.0/25", V),
        entry("10.0.0.128/25", V),
        entry("10.0.1.0-10.0.1.9", V),
    ]);
    // Same rights but different entries: attribution differs, so three intervals stay.
    assert_eq!(table.len(), 3);
    let table = IpTable::build([entry("10.0.0.0/24", V), entry("10.0.0.0/25", V)]);
    // [0,127] has {0,1}, [128,255] has {0}; best entry is 0 in both and rights equal → one.
    assert_eq!(table.len(), 1);
}

#[test]
fn iptable_whole_space_entries_reach_the_top_address() {
    let table = IpTable::build([entry("0.0.0.0/0", V), entry("::/0", U)]);
    for addr in [
        "0.0.0.0",
        "255.255.255.255",
        "::",
        "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
    ] {
        assert!(table.lookup(ip(addr)).is_some(), "case {addr}");
    }
    assert_eq!(
        table.lookup(ip("::ffff:1.2.3.4")).map(|h| h.rights),
        Some(V)
    );
}

#[test]
fn iptable_empty_finds_nothing() {
    let table = IpTable::build([]);
    assert!(table.is_empty());
    assert_eq!(table.lookup(ip("10.0.0.1")), None);
}

// === property: lookup agrees with a linear scan ===

/// Random entries clustered in small address windows so that overlaps, adjacency and shared
/// boundaries are common; with /0, /32 and /128 extremes mixed in.
fn arb_range() -> impl Strategy<Value = String> {
    let v4_addr = (0u32..4, 0u32..64).prop_map(|(hi, lo)| (hi << 30) | lo);
    let v6_addr = (0u128..3, 0u128..64).prop_map(|(hi, lo)| (hi << 126) | lo);
    prop_oneof![
        v4_addr
            .clone()
            .prop_map(|a| std::net::Ipv4Addr::from(a).to_string()),
        (v4_addr.clone(), 0u32..=32).prop_map(|(a, p)| {
            let mask = if p == 0 { 0 } else { u32::MAX << (32 - p) };
            format!("{}/{p}", std::net::Ipv4Addr::from(a & mask))
        }),
        (v4_addr.clone(), v4_addr).prop_map(|(a, b)| format!(
            "{}-{}",
            std::net::Ipv4Addr::from(a.min(b)),
            std::net::Ipv4Addr::from(a.max(b))
        )),
        v6_addr
            .clone()
            .prop_map(|a| std::net::Ipv6Addr::from(a).to_string()),
        (v6_addr.clone(), 0u32..=128).prop_map(|(a, p)| {
            let mask = if p == 0 { 0 } else { u128::MAX << (128 - p) };
            format!("{}/{p}", std::net::Ipv6Addr::from(a & mask))
        }),
        (v6_addr.clone(), v6_addr).prop_map(|(a, b)| format!(
            "{}-{}",
            std::net::Ipv6Addr::from(a.min(b)),
            std::net::Ipv6Addr::from(a.max(b))
        )),
        (0u32..64).prop_map(|lo| format!("::ffff:{}", std::net::Ipv4Addr::from(lo))),
    ]
}

fn arb_probe() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        (0u32..4, 0u32..70)
            .prop_map(|(hi, lo)| IpAddr::from(std::net::Ipv4Addr::from((hi << 30) | lo))),
        (0u128..3, 0u128..70)
            .prop_map(|(hi, lo)| IpAddr::from(std::net::Ipv6Addr::from((hi << 126) | lo))),
        (0u32..70).prop_map(|lo| IpAddr::from(std::net::Ipv4Addr::from(lo).to_ipv6_mapped())),
        Just(ip("255.255.255.255")),
        Just(ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")),
    ]
}

/// The model: union of rights over every containing entry; best = most rights, then file order;
/// per right = first in file order granting it.
fn naive(entries: &[TableEntry], probe: IpAddr) -> Option<(Rights, u32, [u32; 3])> {
    let hits: Vec<(u32, Rights)> = (0u32..)
        .zip(entries)
        .filter(|(_, e)| e.range.contains(probe))
        .map(|(i, e)| (i, e.rights))
        .collect();
    let rights = hits.iter().fold(Rights::NONE, |a, (_, r)| a.union(*r));
    let best = hits.iter().min_by_key(|(i, r)| (3 - r.count(), *i))?.0;
    let per = Right::ALL.map(|right| {
        hits.iter()
            .find(|(_, r)| r.contains(right))
            .map_or(u32::MAX, |(i, _)| *i)
    });
    Some((rights, best, per))
}

/// `ip` moved by one address, saturating at the ends of its family.
fn step(ip: IpAddr, by: i8) -> IpAddr {
    match ip {
        IpAddr::V4(a) => {
            let n = u32::from(a);
            IpAddr::from(std::net::Ipv4Addr::from(if by < 0 {
                n.saturating_sub(1)
            } else {
                n.saturating_add(1)
            }))
        }
        IpAddr::V6(a) => {
            let n = u128::from(a);
            IpAddr::from(std::net::Ipv6Addr::from(if by < 0 {
                n.saturating_sub(1)
            } else {
                n.saturating_add(1)
            }))
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn iptable_lookup_matches_linear_scan(
        ranges in proptest::collection::vec((arb_range(), 0u8..8), 0..40),
        probes in proptest::collection::vec(arb_probe(), 1..40),
    ) {
        let entries: Vec<TableEntry> = ranges
            .iter()
            .map(|(r, bits)| TableEntry { range: parse_ip_range(r).unwrap().range, rights: Rights(*bits) })
            .collect();
        let table = IpTable::build(entries.iter().copied());
        // Every boundary of every entry is probed too.
        let edges = entries.iter().flat_map(|e| {
            let (a, b) = (e.range.first(), e.range.last());
            [a, b, step(a, -1), step(b, 1)]
        });
        for probe in probes.iter().copied().chain(edges) {
            let got = table.lookup(probe).map(|h| {
                (h.rights, h.entry, Right::ALL.map(|r| if h.rights.contains(r) { h.entry_for(r) } else { u32::MAX }))
            });
            prop_assert_eq!(got, naive(&entries, probe), "probe {}", probe);
        }
    }
}
