//! Which HTTP a connection speaks when ALPN has not said (plain TCP, or a TLS client that offered
//! no ALPN): HTTP/2 with prior knowledge if its first bytes are the connection preface (RFC 9113
//! §3.3, §3.4), else HTTP/1.1. The bytes read to decide are returned, to be replayed to the
//! server (`rewind.rs`) exactly as they came.
//!
//! Does I/O (`sniff` reads); `classify` is pure.

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

/// The HTTP a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Http {
    H1,
    H2,
}

/// The HTTP/2 connection preface (RFC 9113 §3.4).
pub const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// The most the protocol sniff reads at once; all of it is replayed to hyper (usually the whole
/// first request, in the same read as whatever the socket has next).
const SNIFF_READ: usize = 1024;

/// What the first bytes of a connection say: HTTP/2 with prior knowledge (RFC 9113 §3.3) once
/// they are the whole preface, HTTP/1.1 as soon as they cannot become it, `None` = read more.
pub fn classify(first: &[u8]) -> Option<Http> {
    let n = first.len().min(H2_PREFACE.len());
    if first.get(..n) != H2_PREFACE.get(..n) {
        Some(Http::H1)
    } else if n == H2_PREFACE.len() {
        Some(Http::H2)
    } else {
        None
    }
}

/// Read until [`classify`] decides; returns the bytes read, to be replayed. An end of stream
/// before that is HTTP/1.1 (hyper then sees the short request and ends the connection).
pub async fn sniff<IO: AsyncRead + Unpin>(io: &mut IO) -> std::io::Result<(Http, Bytes)> {
    let mut buf = BytesMut::with_capacity(SNIFF_READ);
    loop {
        if let Some(http) = classify(&buf) {
            return Ok((http, buf.freeze()));
        }
        if io.read_buf(&mut buf).await? == 0 {
            return Ok((Http::H1, buf.freeze()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_bytes_tell_http2_prior_knowledge_from_http1() {
        let preface: &[u8] = H2_PREFACE;
        let cases: &[(&[u8], Option<Http>)] = &[
            (b"", None),
            (b"P", None),
            (b"PRI * HTTP/2.0\r\n", None),
            (preface.get(..23).unwrap_or_default(), None),
            (preface, Some(Http::H2)),
            (
                b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x12\x04",
                Some(Http::H2),
            ),
            (b"GET / HTTP/1.1\r\n", Some(Http::H1)),
            (b"G", Some(Http::H1)),
            (b"PRI * HTTP/1.1\r\n\r\n", Some(Http::H1)),
            (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\r", Some(Http::H1)),
        ];
        for (first, want) in cases {
            assert_eq!(
                classify(first),
                *want,
                "{:?}",
                String::from_utf8_lossy(first)
            );
        }
    }

    /// The sniff returns exactly the bytes it read (that it stops at the read that decides is
    /// the fuzz target's to show, over arbitrary read sizes).
    #[tokio::test]
    async fn sniff_returns_the_bytes_it_read() {
        let (mut client, mut server) = tokio::io::duplex(4096);
        use tokio::io::AsyncWriteExt;
        client
            .write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            .await
            .expect("write");
        let (http, first) = sniff(&mut server).await.expect("sniff");
        assert_eq!(http, Http::H1);
        assert_eq!(&first[..], b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");

        let (mut client, mut server) = tokio::io::duplex(4096);
        client.write_all(&H2_PREFACE[..10]).await.expect("write");
        client.write_all(&H2_PREFACE[10..]).await.expect("write");
        drop(client);
        let (http, first) = sniff(&mut server).await.expect("sniff");
        assert_eq!(http, Http::H2);
        assert_eq!(&first[..], &H2_PREFACE[..]);

        let (client, mut server) = tokio::io::duplex(4096);
        drop(client);
        let (http, first) = sniff(&mut server).await.expect("sniff");
        assert_eq!(
            (http, first.len()),
            (Http::H1, 0),
            "end of stream first: HTTP/1.1, nothing"
        );
    }
}
