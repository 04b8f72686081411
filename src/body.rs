//! Body types of the data path: the boxed streaming body both directions use, a byte-limit wrapper
//! for request bodies (`limits.max_body_bytes`), a wrapper that tells when a request body has
//! ended (where `upstream.response_timeout` starts), the idle timer of an exchange
//! (`limits.stream_idle_timeout`: [`ExchangeIdle`], [`IdleBody`]), and a wrapper that runs a
//! completion hook when a response body is finished or dropped (access log and duration
//! histogram).
//!
//! Nothing here buffers a body: every wrapper passes frames through as they arrive (docs/contract.md §6).
//! No I/O of its own.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Empty, Full};

mod idle;

pub use idle::{ExchangeIdle, IdleBody, StreamClock, StreamIdle};

/// Any error a body can carry.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body type of every request and response on the data path.
pub type ProxyBody = http_body_util::combinators::BoxBody<Bytes, BoxError>;

/// A complete in-memory body (error responses, self check).
pub fn full(bytes: impl Into<Bytes>) -> ProxyBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// An empty body.
pub fn empty() -> ProxyBody {
    Empty::new().map_err(|never| match never {}).boxed()
}

/// Box any body whose error converts into [`BoxError`].
pub fn boxed<B>(body: B) -> ProxyBody
where
    B: Body<Data = Bytes> + Send + Sync + 'static,
    B::Error: Into<BoxError>,
{
    body.map_err(Into::into).boxed()
}

/// Returned by [`LimitedBody`] when the limit is crossed. The HTTP client carries it as the
/// source of its own error, where [`is_caused_by`] finds it, so the forwarder answers 413 rather
/// than a gateway error.
#[derive(Debug, thiserror::Error)]
#[error("request body exceeds max_body_bytes")]
pub struct BodyTooLarge;

/// Whether `E` is `err` or anywhere in its chain of sources (linkerd's `is_error`).
pub fn is_caused_by<E: std::error::Error + 'static>(
    err: &(dyn std::error::Error + 'static),
) -> bool {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if e.is::<E>() {
            return true;
        }
        cur = e.source();
    }
    false
}

/// A request body that fails with [`BodyTooLarge`] once more than `limit` bytes have passed.
pub struct LimitedBody<B> {
    inner: B,
    remaining: u64,
}

impl<B> LimitedBody<B> {
    /// Wrap `inner`.
    pub fn new(inner: B, limit: u64) -> Self {
        Self {
            inner,
            remaining: limit,
        }
    }
}

impl<B> Body for LimitedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let len = data.len() as u64;
                    if len > this.remaining {
                        return Poll::Ready(Some(Err(Box::new(BodyTooLarge))));
                    }
                    this.remaining -= len;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A body that tells, through the receiver [`signal_end`] returns, that it is over: its last
/// frame passed, it failed, or it was dropped (the HTTP client stopped sending it). A body that is
/// empty from the start (never polled by the client) is over at once.
pub struct EndSignal<B> {
    inner: B,
    /// Dropped when the body is over, which completes the receiver.
    done: Option<tokio::sync::oneshot::Sender<()>>,
}

/// Wrap `inner`; the receiver completes (with `Err`, the sender having gone) when it is over.
pub fn signal_end<B: Body>(inner: B) -> (EndSignal<B>, tokio::sync::oneshot::Receiver<()>) {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let done = (!inner.is_end_stream()).then_some(tx);
    (EndSignal { inner, done }, rx)
}

impl<B> Body for EndSignal<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(_))) if !this.inner.is_end_stream() => {}
            Poll::Ready(_) => this.done = None,
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Runs once when a response body ends or is dropped (client gone, connection closed).
pub trait OnComplete: Send + Sync + 'static {
    /// `bytes` is what passed through; `complete` is false when the body ended early (error or
    /// drop before end of stream).
    fn complete(&mut self, bytes: u64, complete: bool);
}

/// A response body that counts bytes and calls its [`OnComplete`] exactly once.
pub struct CompletionBody<B, C: OnComplete> {
    inner: B,
    bytes: u64,
    ended: bool,
    hook: Option<C>,
}

impl<B, C: OnComplete> CompletionBody<B, C> {
    /// Wrap `inner`.
    pub fn new(inner: B, hook: C) -> Self {
        Self {
            inner,
            bytes: 0,
            ended: false,
            hook: Some(hook),
        }
    }

    fn finish(&mut self) {
        if let Some(mut hook) = self.hook.take() {
            hook.complete(self.bytes, self.ended);
        }
    }
}

impl<B, C> Body for CompletionBody<B, C>
where
    B: Body<Data = Bytes, Error = BoxError> + Unpin,
    C: OnComplete + Unpin,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.bytes += data.len() as u64;
                }
                if this.inner.is_end_stream() {
                    this.ended = true;
                    this.finish();
                }
            }
            Poll::Ready(None) => {
                this.ended = true;
                this.finish();
            }
            Poll::Ready(Some(Err(_))) => this.finish(),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B, C: OnComplete> Drop for CompletionBody<B, C> {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::Arc;

    #[tokio::test]
    async fn limited_body_over_limit_fails_with_body_too_large() {
        let body = LimitedBody::new(Full::new(Bytes::from_static(b"12345")), 4);
        let err = body.collect().await.unwrap_err();
        assert!(is_caused_by::<BodyTooLarge>(&*err), "{err}");
    }

    #[tokio::test]
    async fn limited_body_at_limit_passes() {
        let body = LimitedBody::new(Full::new(Bytes::from_static(b"1234")), 4);
        assert_eq!(body.collect().await.unwrap().to_bytes(), "1234");
    }

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] BoxError);

    #[test]
    fn is_caused_by_walks_the_source_chain() {
        let nested = Outer(Box::new(Outer(Box::new(BodyTooLarge))));
        assert!(is_caused_by::<BodyTooLarge>(&nested));
        let other = Outer(Box::new(std::io::Error::other("x")));
        assert!(!is_caused_by::<BodyTooLarge>(&other));
    }

    #[tokio::test]
    async fn end_signal_fires_after_the_last_frame_not_before() {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, BoxError>>(2);
        let stream = Box::pin(futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|f| (f, rx))
        }));
        let (mut body, mut done) = signal_end(http_body_util::StreamBody::new(stream));
        tx.send(Ok(Frame::data(Bytes::from_static(b"a"))))
            .await
            .unwrap();
        body.frame().await.unwrap().unwrap();
        assert!(
            done.try_recv()
                .is_err_and(|e| e == tokio::sync::oneshot::error::TryRecvError::Empty)
        );
        drop(tx);
        assert!(body.frame().await.is_none());
        assert!(done.await.is_err(), "sender gone: the body is over");
    }

    #[tokio::test]
    async fn end_signal_empty_body_is_over_at_once() {
        let (_body, done) = signal_end(empty());
        assert!(done.await.is_err());
    }

    struct Record(Arc<std::sync::Mutex<Vec<(u64, bool)>>>);
    impl OnComplete for Record {
        fn complete(&mut self, bytes: u64, complete: bool) {
            self.0.lock().unwrap().push((bytes, complete));
        }
    }

    #[tokio::test]
    async fn completion_body_reports_once_with_byte_count() {
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let body = CompletionBody::new(full("hello"), Record(seen.clone()));
        body.collect().await.unwrap();
        assert_eq!(*seen.lock().unwrap(), vec![(5, true)]);
    }

    #[test]
    fn completion_body_dropped_early_reports_incomplete() {
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        drop(CompletionBody::new(full("hello"), Record(seen.clone())));
        assert_eq!(*seen.lock().unwrap(), vec![(0, false)]);
    }
}
