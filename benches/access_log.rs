//! Formatting one access log line: the hand-written formatter (`access_log::write_line`) against
//! the same line as a `#[derive(Serialize)]` struct written with `serde_json::to_writer`, both
//! into one reused buffer. The serde_json variant lives only here, as the measured alternative;
//! before timing, the bench checks that both produce the same bytes.
//!
//! Run: `cargo bench --bench access_log`. Results are recorded here, never asserted.
//!
//! 2026-12-01, 2-core workplace VM (shared), one allowed-request line: hand 242 / 249 ns,
//! serde_json 693 / 710 ns (two runs). Whole proxy under callgrind: serde_json costs ~4,960
//! instructions per request more, so the hand formatter stays (BENCHMARKS.md, "serde_json or the
//! hand formatter").
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use criterion::{Criterion, criterion_group, criterion_main};
use http::Version;
use serde::{Serialize, Serializer};
use vpcguard::access_log::{Record, write_line};

/// The line as serde_json writes it, keys in tracing's order; addresses through serde's own
/// `Serialize` (their `Display` text), non-finite floats as `null` (serde_json's rule).
#[derive(Serialize)]
struct Line<'a> {
    timestamp: Timestamp,
    level: &'static str,
    message: &'static str,
    request_id: &'a str,
    peer: SocketAddr,
    client_ip: IpAddr,
    method: &'a str,
    path: &'a str,
    version: &'static str,
    status: u16,
    decision: &'a str,
    reason: &'a str,
    tenant: &'a str,
    vpcep_id: &'a str,
    bytes_sent: u64,
    complete: bool,
    duration_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    upstream_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    target: &'static str,
}

fn serde_line(rec: &Record<'_>, now: SystemTime, out: &mut Vec<u8>) -> serde_json::Result<()> {
    let line = Line {
        timestamp: Timestamp::new(now),
        level: "INFO",
        message: "access",
        request_id: rec.request_id,
        peer: rec.peer,
        client_ip: rec.client_ip,
        method: rec.method,
        path: rec.path,
        version: match rec.version {
            Version::HTTP_09 => "HTTP/0.9",
            Version::HTTP_10 => "HTTP/1.0",
            Version::HTTP_11 => "HTTP/1.1",
            Version::HTTP_2 => "HTTP/2.0",
            Version::HTTP_3 => "HTTP/3.0",
            _ => "unknown",
        },
        status: rec.status,
        decision: rec.decision,
        reason: rec.reason,
        tenant: rec.tenant,
        vpcep_id: rec.vpcep_id,
        bytes_sent: rec.bytes_sent,
        complete: rec.complete,
        duration_ms: rec.duration_ms,
        upstream_ms: rec.upstream_ms,
        error: rec.error,
        target: "vpcguard::access",
    };
    serde_json::to_writer(&mut *out, &line)?;
    out.push(b'\n');
    Ok(())
}

/// tracing's timestamp text (`YYYY-MM-DDTHH:MM:SS.ffffffZ`, years 0..=9999 only, which is all
/// this bench uses) in a stack buffer, as the serde_json variant would carry it.
struct Timestamp([u8; 27]);

impl Timestamp {
    fn new(now: SystemTime) -> Timestamp {
        let d = now.duration_since(UNIX_EPOCH).unwrap();
        let secs = i64::try_from(d.as_secs()).unwrap();
        let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
        let rem = secs.rem_euclid(86_400) as u32;
        let micros = d.subsec_micros();
        let mut t = *b"0000-00-00T00:00:00.000000Z";
        let mut put = |at: usize, n: u32| {
            t[at] = b'0' + (n / 10 % 10) as u8;
            t[at + 1] = b'0' + (n % 10) as u8;
        };
        let year = year as u32;
        put(0, year / 100);
        put(2, year % 100);
        put(5, month);
        put(8, day);
        put(11, rem / 3600);
        put(14, rem % 3600 / 60);
        put(17, rem % 60);
        put(20, micros / 10_000);
        put(22, micros / 100 % 100);
        put(24, micros % 100);
        Timestamp(t)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(std::str::from_utf8(&self.0).unwrap_or_default())
    }
}

/// `vpcguard::time::civil_from_days` (crate-private), Howard Hinnant's days-to-civil algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// What the proxy logs for an allowed, forwarded request (the load scripts' shape).
fn allowed() -> Record<'static> {
    Record {
        request_id: "19da741d10fd944bb6fd44215253b4e3",
        peer: "127.0.0.1:40200".parse().unwrap(),
        client_ip: "127.0.0.1".parse().unwrap(),
        method: "GET",
        path: "/",
        version: Version::HTTP_11,
        status: 200,
        decision: "allow",
        reason: "none",
        tenant: "bench",
        vpcep_id: "",
        bytes_sent: 2,
        complete: true,
        duration_ms: 0.412733,
        upstream_ms: Some(0.296425),
        error: None,
    }
}

fn same_bytes_check(now: SystemTime) {
    let v6: SocketAddr = "[fe80::1%3]:51000".parse().unwrap();
    let cases = [
        allowed(),
        Record {
            status: 403,
            decision: "deny",
            reason: "unknown_tenant",
            tenant: "",
            upstream_ms: None,
            ..allowed()
        },
        Record {
            status: 502,
            error: Some("connect"),
            ..allowed()
        },
        Record {
            request_id: "",
            peer: v6,
            client_ip: IpAddr::from([0, 0, 0, 0, 0, 0xffff, 0x0a00, 1]),
            method: "PROPFIND",
            path: "/a\"b\\c/\u{1}\n\t/é/🦀\u{7f}",
            version: Version::HTTP_2,
            tenant: "tenant \"x\"",
            complete: false,
            duration_ms: 1.0,
            upstream_ms: Some(1e-7),
            ..allowed()
        },
        Record {
            duration_ms: f64::NAN,
            upstream_ms: Some(f64::INFINITY),
            bytes_sent: u64::MAX,
            ..allowed()
        },
        Record {
            duration_ms: 21.243841999999997,
            upstream_ms: Some(1e16),
            ..allowed()
        },
    ];
    for rec in &cases {
        let (mut hand, mut serde) = (Vec::new(), Vec::new());
        write_line(rec, now, &mut hand);
        serde_line(rec, now, &mut serde).unwrap();
        assert_eq!(
            String::from_utf8(hand).unwrap(),
            String::from_utf8(serde).unwrap(),
            "{rec:?}"
        );
    }
}

fn bench(c: &mut Criterion) {
    let now = UNIX_EPOCH + Duration::from_nanos(1_796_117_139_990_419_123);
    same_bytes_check(now);
    let rec = allowed();
    let mut buf = Vec::with_capacity(1024);
    let mut group = c.benchmark_group("access_log_line");
    group.bench_function("hand", |b| {
        b.iter(|| {
            buf.clear();
            write_line(black_box(&rec), black_box(now), &mut buf);
            black_box(buf.len())
        })
    });
    group.bench_function("serde_json", |b| {
        b.iter(|| {
            buf.clear();
            serde_line(black_box(&rec), black_box(now), &mut buf).unwrap();
            black_box(buf.len())
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
