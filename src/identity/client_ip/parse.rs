//! Hop-list parsers for `X-Forwarded-For`, `Forwarded` (RFC 7239) and `X-Real-IP`.
//!
//! Owns: syntax only — turning header lines into a left-to-right list of [`Hop`]s. Does not own:
//! trust (the walk lives in the parent module). No I/O.

use std::borrow::Cow;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use http::HeaderMap;

use super::{ForwardHeader, ForwardedError, MAX_HOPS};

/// One entry of a forwarding chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Hop {
    /// A usable address, already normalised.
    Addr(IpAddr),
    /// `unknown`, an obfuscated identifier, or a `Forwarded` element without `for=`.
    Unknown,
}

/// Parse every line of `header`, in order, as one list (docs/contract.md §4: "All header lines of a repeated
/// header are merged").
///
/// Empty list elements are ignored (RFC 9110 §5.6.1), so an absent header and one that lists no
/// hops both give an empty list.
pub(super) fn hops(header: ForwardHeader, headers: &HeaderMap) -> Result<Vec<Hop>, ForwardedError> {
    let malformed = malformed(header);
    let mut hops = Vec::new();
    for value in headers.get_all(header.name()) {
        // Why: `to_str` refuses obs-text and controls; a trusted proxy only writes ASCII.
        let line = value.to_str().map_err(|_| malformed)?;
        match header {
            ForwardHeader::Forwarded => forwarded_line(line, &mut hops)?,
            ForwardHeader::XForwardedFor | ForwardHeader::XRealIp => {
                for element in line.split(',').map(trim_ows).filter(|e| !e.is_empty()) {
                    let hop = address_element(element).ok_or(malformed)?;
                    push(header, &mut hops, hop)?;
                }
            }
        }
    }
    Ok(hops)
}

fn malformed(header: ForwardHeader) -> ForwardedError {
    match header {
        ForwardHeader::XForwardedFor => ForwardedError::MalformedXForwardedFor,
        ForwardHeader::Forwarded => ForwardedError::MalformedForwarded,
        ForwardHeader::XRealIp => ForwardedError::MalformedXRealIp,
    }
}

/// Append one hop, enforcing [`MAX_HOPS`] and X-Real-IP's single address.
fn push(header: ForwardHeader, hops: &mut Vec<Hop>, hop: Hop) -> Result<(), ForwardedError> {
    if header == ForwardHeader::XRealIp && !hops.is_empty() {
        return Err(ForwardedError::MalformedXRealIp);
    }
    if hops.len() >= MAX_HOPS {
        return Err(ForwardedError::TooManyHops { limit: MAX_HOPS });
    }
    hops.push(hop);
    Ok(())
}

fn trim_ows(s: &str) -> &str {
    s.trim_matches([' ', '\t'])
}

/// One `X-Forwarded-For` / `X-Real-IP` element: `a.b.c.d`, `a.b.c.d:port`, `v6`, `[v6]`,
/// `[v6]:port`, or `unknown` (Squid writes it when it hides the client).
fn address_element(s: &str) -> Option<Hop> {
    if s.eq_ignore_ascii_case("unknown") {
        return Some(Hop::Unknown);
    }
    if let Some(rest) = s.strip_prefix('[') {
        let (inner, after) = rest.split_once(']')?;
        if !after.is_empty() && !is_port(after.strip_prefix(':')?) {
            return None;
        }
        return inner.parse::<Ipv6Addr>().ok().map(|a| addr(a.into()));
    }
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(addr(ip));
    }
    // Only IPv4 may carry an unbracketed port: `2001:db8::1:80` parsed as an address above.
    let (host, port) = s.split_once(':')?;
    is_port(port).then_some(())?;
    host.parse::<Ipv4Addr>().ok().map(|a| addr(a.into()))
}

fn addr(ip: IpAddr) -> Hop {
    Hop::Addr(ip.to_canonical())
}

/// `port = 1*5DIGIT` that fits a u16.
fn is_port(s: &str) -> bool {
    (1..=5).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit()) && s.parse::<u16>().is_ok()
}

// === Forwarded (RFC 7239) ===

/// One `Forwarded` line: `1#forwarded-element`, `forwarded-element = [ pair ] *( ";" [ pair ] )`.
///
/// Lenient only where senders commonly differ from the grammar: optional whitespace around `;`
/// and `,`, and parameter names in any case (RFC 7239 §4 says they are case-insensitive).
fn forwarded_line(line: &str, hops: &mut Vec<Hop>) -> Result<(), ForwardedError> {
    const BAD: ForwardedError = ForwardedError::MalformedForwarded;
    let mut cur = Cursor { s: line, i: 0 };
    loop {
        let mut non_empty = false;
        let mut for_value: Option<Cow<'_, str>> = None;
        loop {
            cur.skip_ows();
            if !matches!(cur.peek(), None | Some(b',' | b';')) {
                let (name, value) = cur.pair().ok_or(BAD)?;
                non_empty = true;
                if name.eq_ignore_ascii_case("for") {
                    // RFC 7239 §4: a parameter MUST NOT occur more than once per element.
                    if for_value.replace(value).is_some() {
                        return Err(BAD);
                    }
                }
                cur.skip_ows();
            }
            match cur.peek() {
                Some(b';') => cur.i += 1,
                Some(b',') | None => break,
                Some(_) => return Err(BAD),
            }
        }
        if non_empty {
            // An element without `for=` is a proxy that did not say who sent to it.
            let hop = match for_value {
                Some(v) => node(&v).ok_or(BAD)?,
                None => Hop::Unknown,
            };
            push(ForwardHeader::Forwarded, hops, hop)?;
        }
        if cur.peek().is_none() {
            return Ok(());
        }
        cur.i += 1; // the ','
    }
}

/// RFC 7239 §6 `node = nodename [ ":" node-port ]`.
fn node(v: &str) -> Option<Hop> {
    if let Some(rest) = v.strip_prefix('[') {
        let (inner, after) = rest.split_once(']')?;
        node_port_suffix(after)?;
        return inner.parse::<Ipv6Addr>().ok().map(|a| addr(a.into()));
    }
    let (name, after) = v.split_at(v.find(':').unwrap_or(v.len()));
    node_port_suffix(after)?;
    if name.eq_ignore_ascii_case("unknown") {
        return Some(Hop::Unknown);
    }
    if let Some(obf) = name.strip_prefix('_') {
        return is_obfuscated(obf).then_some(Hop::Unknown);
    }
    // IPv6 MUST be bracketed (RFC 7239 §6); an unbracketed one fails here.
    name.parse::<Ipv4Addr>().ok().map(|a| addr(a.into()))
}

/// Empty, or `":" (port / obfport)`.
fn node_port_suffix(after: &str) -> Option<()> {
    if after.is_empty() {
        return Some(());
    }
    let port = after.strip_prefix(':')?;
    (is_port(port) || port.strip_prefix('_').is_some_and(is_obfuscated)).then_some(())
}

/// The part after `_` of `obfnode` / `obfport`: `1*( ALPHA / DIGIT / "." / "_" / "-" )`.
fn is_obfuscated(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A byte cursor over one ASCII header line.
struct Cursor<'a> {
    s: &'a str,
    i: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.i).copied()
    }

    fn skip_ows(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
    }

    /// `token "=" ( token / quoted-string )`, no whitespace around `=`.
    fn pair(&mut self) -> Option<(&'a str, Cow<'a, str>)> {
        let name = self.token()?;
        (self.peek() == Some(b'=')).then_some(())?;
        self.i += 1;
        let value = if self.peek() == Some(b'"') {
            self.quoted()?
        } else {
            Cow::Borrowed(self.token()?)
        };
        Some((name, value))
    }

    /// `1*tchar` (RFC 9110 §5.6.2).
    fn token(&mut self) -> Option<&'a str> {
        let start = self.i;
        while self.peek().is_some_and(is_tchar) {
            self.i += 1;
        }
        (self.i > start).then(|| &self.s[start..self.i])
    }

    /// `DQUOTE *( qdtext / quoted-pair ) DQUOTE` (RFC 9110 §5.6.4), unescaped.
    fn quoted(&mut self) -> Option<Cow<'a, str>> {
        self.i += 1; // opening quote
        let start = self.i;
        let mut owned: Option<String> = None;
        loop {
            let b = self.peek()?;
            self.i += 1;
            match b {
                b'"' => {
                    let raw = &self.s[start..self.i - 1];
                    return Some(owned.map_or(Cow::Borrowed(raw), Cow::Owned));
                }
                b'\\' => {
                    let escaped = self
                        .peek()
                        .filter(|&e| e == b'\t' || (b' '..=b'~').contains(&e))?;
                    self.i += 1;
                    let buf = owned.get_or_insert_with(|| self.s[start..self.i - 2].to_owned());
                    buf.push(char::from(escaped));
                }
                b'\t' | b' '..=b'~' => {
                    if let Some(buf) = owned.as_mut() {
                        buf.push(char::from(b));
                    }
                }
                _ => return None,
            }
        }
    }
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}
