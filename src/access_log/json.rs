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

/// The fields of one access log line (docs/contract.md §2 `log.access_log`), borrowed from the request.
#[derive(Clone, Debug)]
pub struct Record<'a> {
    /// The client's valid `X-Request-Id`, or the one generated for the request.
    pub request_id: &'a str,
    /// The TCP peer.
    pub peer: SocketAddr,
    /// The resolved client IP (PROXY header, trusted forwarding headers, or the peer).
    pub client_ip: IpAddr,
    /// The request method.
    pub method: &'a str,
    /// The request path as received (no query), client-controlled: always escaped.
    pub path: &'a str,
    /// Logged as its `Debug` text (`HTTP/1.1`, `HTTP/2.0`).
    pub version: Version,
    /// The response status sent to the client.
    pub status: u16,
    /// `allow`, `deny`, `report_deny`, or `none` (answered by the proxy itself).
    pub decision: &'a str,
    /// The deny reason label, `none`, or `self_check`.
    pub reason: &'a str,
    /// Empty when none was resolved.
    pub tenant: &'a str,
    /// Empty when none was resolved.
    pub vpcep_id: &'a str,
    /// Response body bytes that passed through.
    pub bytes_sent: u64,
    /// `false` when the response body ended early (error, client gone).
    pub complete: bool,
    /// Request head to end of the response body.
    pub duration_ms: f64,
    /// Time spent on the upstream exchange (to its response head or error); `None` (never
    /// forwarded) leaves the key out, as tracing records nothing for a `None` field.
    pub upstream_ms: Option<f64>,
    /// What went wrong (`connect`, `body_too_large`, …); `None` leaves the key out.
    pub error: Option<&'a str>,
}

/// Append `rec` as one JSON object and a newline to `out`, stamped with `now`.
///
/// # Performance
/// About twenty appends into `out` (one reservation up front): the text between values is one
/// literal each, strings are checked for escapes eight bytes at a time, integers go through
/// itoa, floats through zmij, the timestamp and IPv4 addresses through stack buffers.
pub fn write_line(rec: &Record<'_>, now: SystemTime, out: &mut Vec<u8>) {
    out.reserve(
        400 + rec.request_id.len() + rec.path.len() + rec.tenant.len() + rec.vpcep_id.len(),
    );
    out.extend_from_slice(b"{\"timestamp\":\"");
    write_timestamp(now, out);
    out.extend_from_slice(b"\",\"level\":\"INFO\",\"message\":\"access\",\"request_id\":\"");
    write_escaped(rec.request_id, out);
    out.extend_from_slice(b"\",\"peer\":\"");
    write_socket_addr(rec.peer, out);
    out.extend_from_slice(b"\",\"client_ip\":\"");
    write_ip(rec.client_ip, out);
    out.extend_from_slice(b"\",\"method\":\"");
    write_escaped(rec.method, out);
    out.extend_from_slice(b"\",\"path\":\"");
    write_escaped(rec.path, out);
    out.extend_from_slice(b"\",\"version\":\"");
    out.extend_from_slice(version_str(rec.version).as_bytes());
    out.extend_from_slice(b"\",\"status\":");
    write_u64(u64::from(rec.status), out);
    out.extend_from_slice(b",\"decision\":\"");
    write_escaped(rec.decision, out);
    out.extend_from_slice(b"\",\"reason\":\"");
    write_escaped(rec.reason, out);
    out.extend_from_slice(b"\",\"tenant\":\"");
    write_escaped(rec.tenant, out);
    out.extend_from_slice(b"\",\"vpcep_id\":\"");
    write_escaped(rec.vpcep_id, out);
    out.extend_from_slice(b"\",\"bytes_sent\":");
    write_u64(rec.bytes_sent, out);
    out.extend_from_slice(if rec.complete {
        b",\"complete\":true,\"duration_ms\":"
    } else {
        b",\"complete\":false,\"duration_ms\":"
    });
    write_f64(rec.duration_ms, out);
    if let Some(ms) = rec.upstream_ms {
        out.extend_from_slice(b",\"upstream_ms\":");
        write_f64(ms, out);
    }
    if let Some(e) = rec.error {
        out.extend_from_slice(b",\"error\":\"");
        write_escaped(e, out);
        out.push(b'"');
    }
    out.extend_from_slice(b",\"target\":\"vpcguard::access\"}\n");
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

/// Append the inside of a JSON string for `s` (no quotes), escaped as serde_json does
/// (lowercase `\u00xx`).
pub fn write_escaped(s: &str, out: &mut Vec<u8>) {
    let bytes = s.as_bytes();
    if !needs_escape(bytes) {
        out.extend_from_slice(bytes);
        return;
    }
    const HEX: &[u8; 16] = b"0123456789abcdef";
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
}

/// Whether any byte of `bytes` is in [`ESCAPE`]: eight bytes per step (the usual zero-byte
/// tricks; each test is exact as a yes/no), the tail through the table.
fn needs_escape(bytes: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let has_zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH != 0;
    let mut words = bytes.chunks_exact(8);
    for chunk in &mut words {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let w = u64::from_le_bytes(word);
        // A byte below 0x20, or one equal to `"` or `\`.
        let control = w.wrapping_sub(ONES * 0x20) & !w & HIGH != 0;
        if control
            || has_zero(w ^ (ONES * u64::from(b'"')))
            || has_zero(w ^ (ONES * u64::from(b'\\')))
        {
            return true;
        }
    }
    words
        .remainder()
        .iter()
        .any(|&b| ESCAPE[usize::from(b)] != 0)
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

/// `a.b.c.d` (and `:port`) through the one IPv4 formatter, then one append.
fn write_ipv4(ip: Ipv4Addr, port: Option<u16>, out: &mut Vec<u8>) {
    out.extend_from_slice(crate::ipfmt::Ipv4Text::new(ip, port).as_bytes());
}

/// As `Display`; IPv6 goes through `Display` itself (zero compression is not worth redoing).
fn write_ip(ip: IpAddr, out: &mut Vec<u8>) {
    match ip {
        IpAddr::V4(v4) => write_ipv4(v4, None, out),
        IpAddr::V6(v6) => {
            let _ = write!(out, "{v6}");
        }
    }
}

/// As `Display`: `a.b.c.d:port`, or `[v6%scope]:port` through `Display`.
fn write_socket_addr(addr: SocketAddr, out: &mut Vec<u8>) {
    match addr {
        SocketAddr::V4(v4) => write_ipv4(*v4.ip(), Some(v4.port()), out),
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
    let (year, month, day) = crate::time::civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400) as u32; // 0..86_400
    let micros = nanos / 1_000;
    // "-MM-DDTHH:MM:SS.ffffffZ" after the year.
    let mut t = *b"-00-00T00:00:00.000000Z";
    let mut put = |at: usize, n: u32| {
        t[at] = b'0' + (n / 10 % 10) as u8;
        t[at + 1] = b'0' + (n % 10) as u8;
    };
    put(1, month);
    put(4, day);
    put(7, rem / 3600);
    put(10, rem % 3600 / 60);
    put(13, rem % 60);
    put(16, micros / 10_000);
    put(18, micros / 100 % 100);
    put(20, micros % 100);
    match year {
        0..=9999 => {
            // In range, so the casts cannot truncate.
            let y = year as u32;
            let digits = [y / 1000, y / 100 % 10, y / 10 % 10, y % 10];
            out.extend_from_slice(&digits.map(|d| b'0' + d as u8));
        }
        10_000.. => {
            let _ = write!(out, "+{year}");
        }
        _ => {
            let _ = write!(out, "{year:05}");
        }
    }
    out.extend_from_slice(&t);
}

#[cfg(test)]
mod tests;
