//! An IO wrapper that replays bytes already read from a stream before reading from it again.
//!
//! The PROXY header reader has to read to find the header's end; whatever it read past the header
//! (the start of the TLS ClientHello or of the HTTP request) must reach the next stage unchanged.
//! Model: linkerd `io/src/prefixed.rs`. Writes pass straight through.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// `inner`, with `prefix` read first.
#[derive(Debug)]
pub struct Rewind<T> {
    prefix: Bytes,
    inner: T,
}

impl<T> Rewind<T> {
    /// Replay `prefix`, then read from `inner`.
    pub fn new(prefix: Bytes, inner: T) -> Self {
        Self { prefix, inner }
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &T {
        &self.inner
    }

    /// The bytes not replayed yet, and the stream.
    pub fn into_parts(self) -> (Bytes, T) {
        (self.prefix, self.inner)
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Rewind<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.prefix.is_empty() {
            return Pin::new(&mut self.inner).poll_read(cx, buf);
        }
        let n = self.prefix.len().min(buf.remaining());
        buf.put_slice(self.prefix.get(..n).unwrap_or_default());
        self.prefix.advance(n);
        if self.prefix.is_empty() {
            // Let go of the buffer the prefix was read into (an empty view still holds it).
            self.prefix = Bytes::new();
            // Fill the rest of this read from the stream if it has bytes now, so the reader
            // sees one read's worth rather than the prefix alone: hyper sizes its read buffer
            // from its reads, and a short first read made it double the buffer for the life of
            // the connection. The prefix counts as this read's result whatever the stream says:
            // a Pending has registered the waker; an error is not returned here, and the next
            // read sees it again or an end of stream (a socket reports a reset once), which ends
            // the connection either way.
            if buf.remaining() > 0 {
                let _ = Pin::new(&mut self.inner).poll_read(cx, buf);
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Rewind<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn rewind_replays_prefix_then_inner() {
        let inner: &[u8] = b" world";
        let mut io = Rewind::new(Bytes::from_static(b"hello"), inner);
        let mut out = String::new();
        io.read_to_string(&mut out).await.unwrap();
        assert_eq!(out, "hello world");
    }

    /// The read that ends the prefix takes what the stream has too, in order.
    #[tokio::test]
    async fn the_last_prefix_read_is_filled_from_the_stream() {
        let inner: &[u8] = b" world";
        let mut io = Rewind::new(Bytes::from_static(b"hello"), inner);
        let mut buf = [0u8; 64];
        let n = io.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"hello world");
        assert_eq!(io.read(&mut buf).await.unwrap(), 0);
    }

    /// An error after the prefix does not take the prefix with it.
    #[tokio::test]
    async fn an_error_after_the_prefix_comes_on_the_next_read() {
        struct Broken;
        impl AsyncRead for Broken {
            fn poll_read(
                self: Pin<&mut Self>,
                _: &mut Context<'_>,
                _: &mut ReadBuf<'_>,
            ) -> Poll<io::Result<()>> {
                Poll::Ready(Err(io::Error::other("boom")))
            }
        }
        let mut io = Rewind::new(Bytes::from_static(b"hi"), Broken);
        let mut buf = [0u8; 8];
        assert_eq!(io.read(&mut buf).await.unwrap(), 2);
        assert_eq!(&buf[..2], b"hi");
        assert!(io.read(&mut buf).await.is_err());
    }

    #[tokio::test]
    async fn rewind_prefix_larger_than_read_buffer_is_split() {
        let inner: &[u8] = b"";
        let mut io = Rewind::new(Bytes::from_static(b"abcdef"), inner);
        let mut buf = [0u8; 4];
        assert_eq!(io.read(&mut buf).await.unwrap(), 4);
        assert_eq!(&buf, b"abcd");
        assert_eq!(io.read(&mut buf).await.unwrap(), 2);
        assert_eq!(&buf[..2], b"ef");
    }
}
