//! One access log line as JSON, written by hand: byte for byte what tracing-subscriber's JSON
//! formatter (`flatten_event(true)`, no spans) prints for the `vpcguard::access` event, so that
//! switching writers changes nothing users see. Key order, escaping (serde_json's rules) and
//! number formatting (zmij, as serde_json) follow that formatter; `tests` compare the two.
//!
//! Owns the line shape only; queueing and writing are in `writer.rs`. Pure: no I/O, and the clock
//! is passed in.

use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{SystemTime, UNIX_EPOCH};

use http::Version;

/// The fields of one access log line (SPEC §2 `log.access_log`), borrowed from the request.
#[derive(Clone, Debug)]
pub struct Record<'a> {
    pub request_id: &'a str,
    pub peer: SocketAddr,
    pub client_ip: IpAddr,
    pub method: &'a str,
    pub path: &'a str,
    pub version: Version,
    pub status: u16,
    /// `allow`, `deny`, `report_deny`, or `none` (answered by the proxy itself).
    pub decision: &'a str,
    pub reason: &'a str,
    /// Empty when none was resolved.
    pub tenant: &'a str,
    /// Empty when none was resolved.
    pub vpcep_id: &'a str,
    pub bytes_sent: u64,
    pub complete: bool,
    pub duration_ms: f64,
    /// `None` leaves the key out (tracing records nothing for a `None` field).
    pub upstream_ms: Option<f64>,
    /// `None` leaves the key out.
    pub error: Option<&'a str>,
}

/// Append `rec` as one JSON object and a newline to `out`, stamped with `now`.
///
/// # Performance
/// One pass of appends into `out` (no allocation once it has grown to a line's size): integers
/// through itoa, floats through zmij, IPv4 addresses by hand, strings scanned once for escapes.
pub fn write_line(rec: &Record<'_>, now: SystemTime, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"timestamp\":\"");
    write_timestamp(now, out);
    out.extend_from_slice(b"\",\"level\":\"INFO\",\"message\":\"access\"");
    str_field(out, "request_id", rec.request_id);
    key(out, "peer");
    out.push(b'"');
    write_socket_addr(rec.peer, out);
    out.push(b'"');
    key(out, "client_ip");
    out.push(b'"');
    write_ip(rec.client_ip, out);
    out.push(b'"');
    str_field(out, "method", rec.method);
    str_field(out, "path", rec.path);
    str_field(out, "version", version_str(rec.version));
    key(out, "status");
    write_u64(u64::from(rec.status), out);
    str_field(out, "decision", rec.decision);
    str_field(out, "reason", rec.reason);
    str_field(out, "tenant", rec.tenant);
    str_field(out, "vpcep_id", rec.vpcep_id);
    key(out, "bytes_sent");
    write_u64(rec.bytes_sent, out);
    key(out, "complete");
    out.extend_from_slice(if rec.complete { b"true" } else { b"false" });
    key(out, "duration_ms");
    write_f64(rec.duration_ms, out);
    if let Some(ms) = rec.upstream_ms {
        key(out, "upstream_ms");
        write_f64(ms, out);
    }
    if let Some(e) = rec.error {
        str_field(out, "error", e);
    }
    out.extend_from_slice(b",\"target\":\"vpcguard::access\"}\n");
}

/// `,"name":` — `name` is one of ours and needs no escaping.
fn key(out: &mut Vec<u8>, name: &str) {
    out.extend_from_slice(b",\"");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\":");
}

fn str_field(out: &mut Vec<u8>, name: &str, value: &str) {
    key(out, name);
    write_str(value, out);
}

/// What each byte becomes inside a JSON string: 0 = itself, `u` = `\u00XX`, else `\` + the byte.
/// serde_json's table: control characters, `"` and `\`; DEL and non-ASCII pass through.
const ESCAPE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = b'u';
        i += 1;
    }
    t[0x08] = b'b';
    t[0x09] = b't';
    t[0x0a] = b'n';
    t[0x0c] = b'f';
    t[0x0d] = b'r';
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t
};

/// Append `s` as a quoted JSON string, escaped as serde_json does (lowercase `\u00xx`).
pub fn write_str(s: &str, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    out.push(b'"');
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc = ESCAPE[usize::from(b)];
        if esc == 0 {
            continue;
        }
        out.extend_from_slice(&bytes[start..i]);
        match esc {
            b'u' => out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 0xf)],
            ]),
            c => out.extend_from_slice(&[b'\\', c]),
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

fn write_u64(n: u64, out: &mut Vec<u8>) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// serde_json's rule: finite numbers in zmij's shortest form (`3.0`, `1e-7`, `1e+16`), others `null`.
fn write_f64(x: f64, out: &mut Vec<u8>) {
    if x.is_finite() {
        out.extend_from_slice(zmij::Buffer::new().format_finite(x).as_bytes());
    } else {
        out.extend_from_slice(b"null");
    }
}

fn write_ipv4(ip: Ipv4Addr, out: &mut Vec<u8>) {
    let mut digits = itoa::Buffer::new();
    for (i, octet) in ip.octets().into_iter().enumerate() {
        if i > 0 {
            out.push(b'.');
        }
        out.extend_from_slice(digits.format(octet).as_bytes());
    }
}

/// As `Display`; IPv6 goes through `Display` itself (zero compression is not worth redoing).
fn write_ip(ip: IpAddr, out: &mut Vec<u8>) {
    match ip {
        IpAddr::V4(v4) => write_ipv4(v4, out),
        IpAddr::V6(v6) => {
            let _ = write!(out, "{v6}");
        }
    }
}

/// As `Display`: `a.b.c.d:port`, or `[v6%scope]:port` through `Display`.
fn write_socket_addr(addr: SocketAddr, out: &mut Vec<u8>) {
    match addr {
        SocketAddr::V4(v4) => {
            write_ipv4(*v4.ip(), out);
            out.push(b':');
            write_u64(u64::from(v4.port()), out);
        }
        SocketAddr::V6(v6) => {
            let _ = write!(out, "{v6}");
        }
    }
}

/// `Version`'s `Debug` text, which the tracing event recorded (`version = ?…`).
fn version_str(v: Version) -> &'static str {
    match v {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_11 => "HTTP/1.1",
        Version::HTTP_2 => "HTTP/2.0",
        Version::HTTP_3 => "HTTP/3.0",
        // `Version` is closed today; a future variant is logged without breaking the line.
        _ => "unknown",
    }
}

/// tracing-subscriber's `SystemTime` timer: `YYYY-MM-DDTHH:MM:SS.ffffffZ` (microseconds,
/// truncated), years outside 0..=9999 as `+YYYYY` / `-YYYY`.
fn write_timestamp(now: SystemTime, out: &mut Vec<u8>) {
    let (secs, nanos) = match now.duration_since(UNIX_EPOCH) {
        Ok(d) => (
            i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            d.subsec_nanos(),
        ),
        Err(e) => {
            let d = e.duration();
            let secs = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
            match d.subsec_nanos() {
                0 => (-secs, 0),
                n => (-secs - 1, 1_000_000_000 - n),
            }
        }
    };
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (year, month, day) = crate::time::civil_from_days(days);
    if (0..=9999).contains(&year) {
        // In range, so the casts below cannot truncate.
        let y = year as u32;
        two_digits(y / 100, out);
        two_digits(y % 100, out);
    } else if year > 9999 {
        let _ = write!(out, "+{year}");
    } else {
        let _ = write!(out, "{year:05}");
    }
    let rem = rem as u32; // 0..86_400
    out.push(b'-');
    two_digits(month, out);
    out.push(b'-');
    two_digits(day, out);
    out.push(b'T');
    two_digits(rem / 3600, out);
    out.push(b':');
    two_digits(rem % 3600 / 60, out);
    out.push(b':');
    two_digits(rem % 60, out);
    out.push(b'.');
    let micros = nanos / 1_000;
    two_digits(micros / 10_000, out);
    two_digits(micros / 100 % 100, out);
    two_digits(micros % 100, out);
    out.push(b'Z');
}

/// `n` in 0..100 as two ASCII digits.
fn two_digits(n: u32, out: &mut Vec<u8>) {
    out.extend_from_slice(&[b'0' + (n / 10 % 10) as u8, b'0' + (n % 10) as u8]);
}

#[cfg(test)]
mod tests;
