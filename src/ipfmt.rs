//! The one hot-path IPv4 formatter: `a.b.c.d` (and `:port`) into a stack buffer, byte for byte
//! what `Display` writes, without the formatter machinery. Used for the forwarding headers
//! (`proxy::headers::ip_value`) and the access line (`access_log::json`); IPv6 goes through
//! `Display` at both (zero compression is not worth redoing).
//!
//! Pure; no I/O, no allocation.

use std::net::Ipv4Addr;

/// An IPv4 address (and port) as text; at most `255.255.255.255:65535`, 21 bytes.
#[derive(Clone, Copy)]
pub struct Ipv4Text {
    buf: [u8; 21],
    len: usize,
}

impl Ipv4Text {
    /// Format `ip`, then `:port` when given.
    pub fn new(ip: Ipv4Addr, port: Option<u16>) -> Self {
        let mut t = Ipv4Text {
            buf: [0; 21],
            len: 0,
        };
        for (i, octet) in ip.octets().into_iter().enumerate() {
            if i > 0 {
                t.push(b".");
            }
            t.push(itoa::Buffer::new().format(octet).as_bytes());
        }
        if let Some(port) = port {
            t.push(b":");
            t.push(itoa::Buffer::new().format(port).as_bytes());
        }
        t
    }

    /// The text.
    pub fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or_default()
    }

    fn push(&mut self, bytes: &[u8]) {
        // Never short: 21 bytes hold the longest address and port.
        if let Some(dst) = self.buf.get_mut(self.len..self.len + bytes.len()) {
            dst.copy_from_slice(bytes);
            self.len += bytes.len();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_text_matches_display() {
        const CASES: &[(&str, Option<u16>)] = &[
            ("0.0.0.0", None),
            ("1.2.3.4", Some(0)),
            ("10.0.0.255", Some(80)),
            ("127.0.0.1", None),
            ("192.168.100.9", Some(8443)),
            ("255.255.255.255", Some(65535)),
        ];
        for &(ip, port) in CASES {
            let addr: Ipv4Addr = ip.parse().unwrap();
            let want = match port {
                Some(p) => format!("{addr}:{p}"),
                None => addr.to_string(),
            };
            let got = Ipv4Text::new(addr, port);
            assert_eq!(got.as_bytes(), want.as_bytes(), "case {ip} {port:?}");
        }
    }
}
