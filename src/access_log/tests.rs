//! The hand-written line against the tracing JSON formatter it replaces, byte for byte.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::Version;
use serde_json::json;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;

use super::*;

fn record() -> Record<'static> {
    Record {
        request_id: "19da741d10fd944bb6fd44215253b4e3",
        peer: "127.0.0.1:40200".parse().unwrap(),
        client_ip: "10.1.2.3".parse().unwrap(),
        method: "GET",
        path: "/a%22b",
        version: Version::HTTP_11,
        status: 404,
        decision: "allow",
        reason: "none",
        tenant: "389efb76b1354e4482eabeed00000000",
        vpcep_id: "",
        bytes_sent: 335,
        complete: true,
        duration_ms: 21.634234,
        upstream_ms: Some(21.243841999999997),
        error: None,
    }
}

/// Every shape the proxy produces: allowed and forwarded, denied before the upstream, upstream
/// failure, refused body, self check, and client-controlled text that needs escaping.
fn cases() -> Vec<(&'static str, Record<'static>)> {
    let base = record();
    let v6: SocketAddr = "[2001:db8::7]:51000".parse().unwrap();
    vec![
        ("allow", base.clone()),
        (
            "deny",
            Record {
                status: 403,
                decision: "deny",
                reason: "unknown_tenant",
                tenant: "",
                bytes_sent: 73,
                duration_ms: 0.197159,
                upstream_ms: None,
                ..base.clone()
            },
        ),
        (
            "upstream error",
            Record {
                status: 502,
                error: Some("connect"),
                upstream_ms: Some(0.296425),
                ..base.clone()
            },
        ),
        (
            "body too large",
            Record {
                status: 413,
                error: Some("body_too_large"),
                upstream_ms: None,
                ..base.clone()
            },
        ),
        (
            "self check",
            Record {
                status: 200,
                decision: "none",
                reason: "self_check",
                path: "/v1/vpcep-authorization",
                upstream_ms: None,
                ..base.clone()
            },
        ),
        (
            "escaping, v6, h2, early end",
            Record {
                request_id: "",
                peer: v6,
                client_ip: IpAddr::from([0, 0, 0, 0, 0, 0xffff, 0x0a00, 1]),
                method: "PROPFIND",
                path: "/a\"b\\c/\u{1}\n\t/é/🦀",
                version: Version::HTTP_2,
                tenant: "tenant \"x\"",
                vpcep_id: "vpce-\u{7f}",
                bytes_sent: 0,
                complete: false,
                duration_ms: 1.0,
                upstream_ms: Some(1e-7),
                ..base.clone()
            },
        ),
        (
            "non-finite",
            Record {
                duration_ms: f64::NAN,
                upstream_ms: Some(f64::INFINITY),
                bytes_sent: u64::MAX,
                status: 0,
                ..base
            },
        ),
    ]
}

/// A timer printing a fixed text, so both lines carry the same timestamp.
struct Fixed(String);

impl FormatTime for Fixed {
    fn format_time(&self, w: &mut Writer<'_>) -> std::fmt::Result {
        w.write_str(&self.0)
    }
}

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// What the tracing path prints for `rec` with `logging::init`'s JSON settings.
fn tracing_line(rec: &Record<'_>, timer: impl FormatTime + Send + Sync + 'static) -> String {
    let captured = Captured::default();
    let sink = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_timer(timer)
        .with_writer(move || sink.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, || emit_event(rec));
    let bytes = captured.0.lock().unwrap().clone();
    String::from_utf8(bytes).unwrap()
}

fn our_line(rec: &Record<'_>, now: SystemTime) -> String {
    let mut out = Vec::new();
    json::write_line(rec, now, &mut out);
    String::from_utf8(out).unwrap()
}

fn timestamp(now: SystemTime) -> String {
    let line = our_line(&record(), now);
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    v["timestamp"].as_str().unwrap().to_owned()
}

#[test]
fn json_line_is_byte_for_byte_the_tracing_line() {
    let now = UNIX_EPOCH + Duration::from_nanos(1_795_427_139_990_419_123);
    let fixed = timestamp(now);
    assert_eq!(fixed, "2026-11-23T09:45:39.990419Z");
    for (name, rec) in cases() {
        assert_eq!(
            our_line(&rec, now),
            tracing_line(&rec, Fixed(fixed.clone())),
            "case {name}"
        );
    }
}

#[test]
fn json_line_parses_back_to_the_fields() {
    let now = UNIX_EPOCH + Duration::from_secs(1_795_427_139);
    let line = our_line(&record(), now);
    assert!(line.ends_with("}\n") && !line[..line.len() - 1].contains('\n'));
    let got: serde_json::Value = serde_json::from_str(&line).unwrap();
    let want = json!({
        "timestamp": "2026-11-23T09:45:39.000000Z",
        "level": "INFO",
        "message": "access",
        "request_id": "19da741d10fd944bb6fd44215253b4e3",
        "peer": "127.0.0.1:40200",
        "client_ip": "10.1.2.3",
        "method": "GET",
        "path": "/a%22b",
        "version": "HTTP/1.1",
        "status": 404,
        "decision": "allow",
        "reason": "none",
        "tenant": "389efb76b1354e4482eabeed00000000",
        "vpcep_id": "",
        "bytes_sent": 335,
        "complete": true,
        "duration_ms": 21.634234,
        "upstream_ms": 21.243841999999997,
        "target": "vpcguard::access",
    });
    assert_eq!(got, want);
    // `None` leaves the key out, as tracing does; the client-controlled path survives escaping.
    for (name, rec) in cases() {
        let got: serde_json::Value = serde_json::from_str(&our_line(&rec, now)).unwrap();
        assert_eq!(got["path"], rec.path, "case {name}");
        assert_eq!(got["tenant"], rec.tenant, "case {name}");
        assert_eq!(
            got.get("upstream_ms").is_some(),
            rec.upstream_ms.is_some(),
            "case {name}"
        );
        assert_eq!(
            got.get("error").and_then(|e| e.as_str()),
            rec.error,
            "case {name}"
        );
    }
}

#[test]
fn json_timestamp_matches_the_tracing_timer() {
    // The real timer reads the clock itself: its text must fall between ours before and after
    // (same fixed-width format, so text order is time order).
    let before = timestamp(SystemTime::now());
    let line = tracing_line(&record(), tracing_subscriber::fmt::time::SystemTime);
    let after = timestamp(SystemTime::now());
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    let theirs = v["timestamp"].as_str().unwrap();
    assert_eq!(theirs.len(), before.len(), "{theirs} vs {before}");
    assert!(
        before.as_str() <= theirs && theirs <= after.as_str(),
        "{before} <= {theirs} <= {after}"
    );
}
