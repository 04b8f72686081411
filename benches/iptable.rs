//! IP-set benchmarks: `IpTable::lookup` (sorted disjoint intervals, one `partition_point`) at 10 /
//! 10,000 / 100,000 / 1,000,000 entries, IPv4 and IPv6 separately, against a naive linear scan of
//! the same entries (what nginx's `allow` list does), and the time to build the table.
//!
//! Run: `cargo bench --bench iptable` (release profile; `-- lookup` for lookups only, add
//! `--warm-up-time 1 --measurement-time 3` for a quick pass). Results are recorded here, never
//! asserted.
//!
//! Entries: random CIDRs (IPv4 /16–/32, IPv6 /48–/128 under 2001:db8::/32) and 1 in 5 a `start-end`
//! range, overlapping freely; probes: 1,024 random addresses of the same family, so both hits and
//! misses are timed, walked in order so no branch predictor learns one answer.
//!
//! 2026-11-23, shared 2-core workplace VM (another build running), rustc 1.95,
//! `-- --warm-up-time 1 --measurement-time 3`:
//!
//! | entries | v4 lookup | v6 lookup | v4 naive scan | v6 naive scan |
//! |---|---|---|---|---|
//! | 10 | 11.2 ns | 20.2 ns | 13.9 ns | 16.4 ns |
//! | 10,000 | 27.5 ns | 28.5 ns | 27.9 µs | 26.6 µs |
//! | 100,000 | 62.9 ns | 43.5 ns | 332 µs | 336 µs |
//! | 1,000,000 | 175 ns | 90.6 ns | (not run) | (not run) |
//!
//! Build: 13.7 ms for 100,000 IPv4 entries, 260 ms for 1,000,000.
//!
//! The lookup grows with log n and stays under 100 ns up to 100k entries; the 1M IPv4 table
//! (starts + ends + hits, ~20 MB) no longer fits in cache, hence 175 ns. The scan grows linearly:
//! at 100k it is ~5,000× slower. Whole-proxy numbers: BENCHMARKS.md.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use vpcguard::policy::{IpRange, IpTable, Rights, TableEntry};

const SIZES: [usize; 4] = [10, 10_000, 100_000, 1_000_000];
const V6_BASE: u128 = 0x2001_0db8u128 << 96;

/// A deterministic pseudo-random sequence (xorshift64*), so every run benches the same data.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

fn v4_entries(n: usize) -> Vec<TableEntry> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    (0..n)
        .map(|i| {
            let r = rng.next();
            let addr = (r >> 32) as u32;
            let (start, end) = if i % 5 == 4 {
                (addr, addr.saturating_add((r % 4096) as u32))
            } else {
                let len = 16 + (r % 17) as u32;
                let mask = if len == 32 {
                    u32::MAX
                } else {
                    !(u32::MAX >> len)
                };
                (addr & mask, (addr & mask) | !mask)
            };
            entry(IpRange::V4 { start, end }, i)
        })
        .collect()
}

fn v6_entries(n: usize) -> Vec<TableEntry> {
    let mut rng = Rng(0x5851_F42D_4C95_7F2D);
    (0..n)
        .map(|i| {
            let r = rng.next();
            let addr = V6_BASE | (u128::from(r) << 32) | u128::from(rng.next() as u32);
            let (start, end) = if i % 5 == 4 {
                (addr, addr.saturating_add(u128::from(r % 65536)))
            } else {
                let len = 48 + (r % 81) as u32;
                let mask = if len == 128 {
                    u128::MAX
                } else {
                    !(u128::MAX >> len)
                };
                (addr & mask, (addr & mask) | !mask)
            };
            entry(IpRange::V6 { start, end }, i)
        })
        .collect()
}

fn entry(range: IpRange, i: usize) -> TableEntry {
    let rights = Rights::from_flags(1, (i % 2) as u8, 0);
    TableEntry { range, rights }
}

fn probes_v4() -> Vec<IpAddr> {
    let mut rng = Rng(42);
    (0..1024)
        .map(|_| IpAddr::V4(Ipv4Addr::from((rng.next() >> 32) as u32)))
        .collect()
}

fn probes_v6() -> Vec<IpAddr> {
    let mut rng = Rng(43);
    (0..1024)
        .map(|_| IpAddr::V6(Ipv6Addr::from(V6_BASE | (u128::from(rng.next()) << 32))))
        .collect()
}

/// The baseline: scan every entry, as a linear allow list does.
fn naive_contains(entries: &[(u128, u128)], ip: IpAddr) -> bool {
    let x = match ip {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    };
    entries.iter().any(|&(s, e)| s <= x && x <= e)
}

fn bounds(e: &TableEntry) -> (u128, u128) {
    match e.range {
        IpRange::V4 { start, end } => (u128::from(start), u128::from(end)),
        IpRange::V6 { start, end } => (start, end),
    }
}

fn bench_family(c: &mut Criterion, family: &str, make: fn(usize) -> Vec<TableEntry>) {
    let probes = if family == "v4" {
        probes_v4()
    } else {
        probes_v6()
    };
    let mut group = c.benchmark_group(format!("lookup_{family}"));
    for n in SIZES {
        let entries = make(n);
        let table = IpTable::build(entries.iter().copied());
        group.bench_with_input(BenchmarkId::new("iptable", n), &n, |b, _| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) & 1023;
                black_box(table.lookup(black_box(probes[i])))
            })
        });
        if n <= 100_000 {
            let naive: Vec<_> = entries.iter().map(bounds).collect();
            group.bench_with_input(BenchmarkId::new("naive_scan", n), &n, |b, _| {
                let mut i = 0;
                b.iter(|| {
                    i = (i + 1) & 1023;
                    black_box(naive_contains(&naive, black_box(probes[i])))
                })
            });
        }
    }
    group.finish();
}

fn bench_lookup(c: &mut Criterion) {
    bench_family(c, "v4", v4_entries);
    bench_family(c, "v6", v6_entries);
}

fn bench_build(c: &mut Criterion) {
    let mut group = c.benchmark_group("build");
    group.sample_size(10);
    for n in [100_000usize, 1_000_000] {
        let entries = v4_entries(n);
        group.bench_with_input(BenchmarkId::new("v4", n), &n, |b, _| {
            b.iter(|| black_box(IpTable::build(entries.iter().copied())))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_lookup, bench_build);
criterion_main!(benches);
