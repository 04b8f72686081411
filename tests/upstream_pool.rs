//! The upstream connection pool (`src/proxy/pool.rs`) seen from the upstream's side: a raw TCP
//! HTTP/1.1 server written here counts the connections vpcguard opens and sees when it closes them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{OPEN_POLICY, STATIC_TENANT, TestProxy, admin_block, within};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

/// How the raw upstream answers each request.
#[derive(Clone, Copy)]
enum Mode {
    /// `200` with a 2-byte body; `204` for `/empty`; `HEAD` gets a head with `Content-Length: 2`.
    KeepAlive,
    /// As `KeepAlive`, then closes the connection without announcing it (no `Connection: close`),
    /// so every kept connection goes stale.
    CloseAfterEach,
    /// A head announcing 1 MiB, 1 KiB of it, then nothing (the connection stays open).
    Stall,
    /// As `KeepAlive`, but each answer waits until [`RawUpstream::release`].
    Hold,
    /// A head announcing 1 TiB, then zeros as fast as the proxy takes them.
    Endless,
    /// Reads everything (the request body too) and never answers.
    Drain,
}

struct RawUpstream {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    /// One message per connection the proxy closed (read returned 0 or failed).
    closed: mpsc::UnboundedReceiver<()>,
    /// One message per request head read.
    heads: mpsc::UnboundedReceiver<()>,
    release: watch::Sender<bool>,
}

impl RawUpstream {
    async fn start(mode: Mode) -> RawUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let (tx, closed) = mpsc::unbounded_channel();
        let (heads_tx, heads) = mpsc::unbounded_channel();
        let (release, released) = watch::channel(false);
        let count = accepted.clone();
        tokio::spawn(async move {
            loop {
                let Ok((s, _)) = listener.accept().await else {
                    return;
                };
                count.fetch_add(1, Ordering::SeqCst);
                let tx = tx.clone();
                let seen = Seen {
                    heads: heads_tx.clone(),
                    released: released.clone(),
                };
                tokio::spawn(async move {
                    serve(s, mode, seen).await;
                    let _ = tx.send(());
                });
            }
        });
        RawUpstream {
            addr,
            accepted,
            closed,
            heads,
            release,
        }
    }

    /// Let every held request (and every later one) answer.
    fn release(&self) {
        self.release.send_replace(true);
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

/// What a connection tells the test, and waits on.
struct Seen {
    heads: mpsc::UnboundedSender<()>,
    released: watch::Receiver<bool>,
}

/// Answer requests (heads only; the tests send no bodies) until the peer closes or `mode` ends
/// the connection.
async fn serve(mut s: TcpStream, mode: Mode, mut seen: Seen) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        buf.drain(..head_end);
        let _ = seen.heads.send(());
        if let Mode::Drain = mode {
            while let Ok(n) = s.read(&mut chunk).await {
                if n == 0 {
                    return;
                }
            }
            return;
        }
        if let Mode::Endless = mode {
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1099511627776\r\n\r\n")
                .await;
            let zeros = vec![0u8; 65536];
            while s.write_all(&zeros).await.is_ok() {}
            return;
        }
        if let Mode::Hold = mode
            && seen.released.wait_for(|r| *r).await.is_err()
        {
            return;
        }
        let answer: Vec<u8> = match mode {
            Mode::Stall => {
                let mut a = b"HTTP/1.1 200 OK\r\nContent-Length: 1048576\r\n\r\n".to_vec();
                a.extend(std::iter::repeat_n(b'z', 1024));
                a
            }
            _ if head.starts_with("HEAD ") => {
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n".to_vec()
            }
            _ if head.starts_with("GET /empty ") => b"HTTP/1.1 204 No Content\r\n\r\n".to_vec(),
            _ => b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec(),
        };
        if s.write_all(&answer).await.is_err() {
            return;
        }
        match mode {
            Mode::KeepAlive | Mode::Hold | Mode::Endless | Mode::Drain => {}
            Mode::CloseAfterEach => return,
            Mode::Stall => {
                // Hold the connection until the proxy gives up on it.
                while let Ok(n) = s.read(&mut chunk).await {
                    if n == 0 {
                        return;
                    }
                }
                return;
            }
        }
    }
}

async fn proxy_for(up: &RawUpstream, upstream_extra: &str) -> TestProxy {
    let config = format!(
        "upstream:\n  url: \"http://{}\"\n{upstream_extra}{STATIC_TENANT}{}",
        up.addr,
        admin_block("")
    );
    TestProxy::start(&config, OPEN_POLICY, false).await
}

#[tokio::test]
async fn sequential_requests_share_one_upstream_connection_whatever_the_body() {
    let up = RawUpstream::start(Mode::KeepAlive).await;
    let proxy = proxy_for(&up, "").await;
    // Fresh client connections each time, so only the upstream side can be reusing.
    for path in ["/a", "/empty", "/b", "/empty", "/c"] {
        let c = proxy.client(false);
        let r = c
            .get(format!("{}{path}", proxy.base()))
            .send()
            .await
            .unwrap();
        let expect = if path == "/empty" { 204 } else { 200 };
        assert_eq!(r.status(), expect, "{path}");
        r.bytes().await.unwrap();
        let r = c
            .head(format!("{}{path}", proxy.base()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "HEAD {path}");
    }
    assert_eq!(
        up.accepted(),
        1,
        "every exchange reused the first connection"
    );
}

#[tokio::test]
async fn concurrent_requests_open_at_most_one_connection_each_then_reuse_them() {
    let up = RawUpstream::start(Mode::KeepAlive).await;
    let proxy = proxy_for(&up, "").await;
    let c = proxy.client(false);
    for _round in 0..3 {
        let mut all = Vec::new();
        for i in 0..8 {
            let c = c.clone();
            let url = format!("{}/r{i}", proxy.base());
            all.push(tokio::spawn(async move {
                let r = c.get(url).send().await.unwrap();
                assert_eq!(r.status(), 200);
                r.text().await.unwrap()
            }));
        }
        for t in all {
            assert_eq!(within(10, t).await.unwrap(), "ok");
        }
    }
    let n = up.accepted();
    assert!(
        (1..=8).contains(&n),
        "{n} upstream connections for 8 at a time"
    );
}

#[tokio::test]
async fn connections_the_upstream_closes_are_never_a_client_error() {
    let up = RawUpstream::start(Mode::CloseAfterEach).await;
    let proxy = proxy_for(&up, "").await;
    let c = proxy.client(false);
    for i in 0..50 {
        let r = c
            .get(format!("{}/s{i}", proxy.base()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "request {i}");
        assert_eq!(r.text().await.unwrap(), "ok");
    }
    assert_eq!(up.accepted(), 50, "one new connection per request");
}

#[tokio::test]
async fn idle_upstream_connections_are_closed_after_idle_timeout() {
    let mut up = RawUpstream::start(Mode::KeepAlive).await;
    let proxy = proxy_for(&up, "  idle_timeout: 1s\n").await;
    let r = proxy.client(false).get(proxy.base()).send().await.unwrap();
    assert_eq!(r.text().await.unwrap(), "ok");
    // Nothing else closes it: the raw upstream keeps connections forever.
    within(10, up.closed.recv()).await.unwrap();
    let r = proxy.client(false).get(proxy.base()).send().await.unwrap();
    assert_eq!(r.text().await.unwrap(), "ok");
    assert_eq!(up.accepted(), 2, "the expired connection was not reused");
}

#[tokio::test]
async fn a_response_abandoned_mid_body_takes_its_connection_with_it() {
    let mut up = RawUpstream::start(Mode::Stall).await;
    let proxy = proxy_for(&up, "").await;
    let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
    s.write_all(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    while !got.windows(4).any(|w| w == b"zzzz") {
        let n = within(10, s.read(&mut chunk)).await.unwrap();
        assert!(n > 0, "proxy closed before the body started");
        got.extend_from_slice(&chunk[..n]);
    }
    assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 200"));
    // The client goes away; the half-read upstream connection must be closed, not pooled.
    drop(s);
    within(10, up.closed.recv()).await.unwrap();
    assert_eq!(up.accepted(), 1);
}

/// `upstream.max_connections`: with 2 allowed and the upstream holding every answer, 5 requests
/// at once open 2 upstream connections; the other 3 wait `connect_timeout`, then get 503
/// `VG.00050302`, counted; the 2 finish once the upstream answers.
#[tokio::test]
async fn upstream_max_connections_over_cap_waits_then_503_vg00050302() {
    let mut up = RawUpstream::start(Mode::Hold).await;
    let proxy = proxy_for(&up, "  max_connections: 2\n  connect_timeout: 300ms\n").await;
    let c = proxy.client(false);
    let mut all = Vec::new();
    for i in 0..5 {
        let c = c.clone();
        let url = format!("{}/h{i}", proxy.base());
        all.push(tokio::spawn(async move {
            let r = c.get(url).send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.text().await.unwrap())
        }));
    }
    // Two heads reach the upstream and are held there.
    for _ in 0..2 {
        within(10, up.heads.recv()).await.unwrap();
    }
    let metrics = &proxy.app.shared.metrics;
    // The three over the cap are answered without the upstream.
    let mut answered = Vec::new();
    let mut held = Vec::new();
    for t in all {
        if t.is_finished() {
            answered.push(t);
        } else {
            held.push(t);
        }
    }
    let started = std::time::Instant::now();
    let three = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while held.iter().filter(|t| t.is_finished()).count() < 3 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(
        three.is_ok(),
        "3 requests not answered while 2 are held; {} upstream connections",
        up.accepted()
    );
    let waited = started.elapsed();
    let (done, still): (Vec<_>, Vec<_>) = held.into_iter().partition(|t| t.is_finished());
    answered.extend(done);
    assert_eq!(answered.len(), 3, "3 answered while 2 are held");
    assert!(waited < std::time::Duration::from_secs(5), "{waited:?}");
    for t in answered {
        let (status, body) = t.await.unwrap();
        assert_eq!(status, 503);
        assert_eq!(common::error_code(&body), "VG.00050302");
    }
    assert_eq!(
        up.accepted(),
        2,
        "at most max_connections upstream connections"
    );
    assert_eq!(metrics.upstream_overflows_total.get(), 3);
    let (_, text) = proxy.admin_get("/metrics").await;
    assert!(
        text.contains("vpcguard_upstream_connections{state=\"active\"} 2"),
        "{text}"
    );
    up.release();
    for t in still {
        assert_eq!(within(10, t).await.unwrap(), (200, "ok".to_owned()));
    }
    assert!(
        up.heads.try_recv().is_err(),
        "no third head reached the upstream"
    );
    let (_, text) = proxy.admin_get("/metrics").await;
    for line in [
        "vpcguard_upstream_connections{state=\"active\"} 0",
        "vpcguard_upstream_connections{state=\"idle\"} 2",
        "vpcguard_upstream_overflows_total 3",
    ] {
        assert!(text.contains(line), "missing {line}: {text}");
    }
}

/// `limits.stream_idle_timeout` for the tests below.
const IDLE_300MS: &str = "limits:\n  stream_idle_timeout: 300ms\n";

/// Wait (bounded) until the proxy holds no client and no upstream connection.
async fn all_connections_freed(proxy: &TestProxy) {
    let m = &proxy.app.shared.metrics;
    let up = |s| m.upstream_connections.with_label_values(&[s]).get();
    within(10, async {
        while m.connections_active.get() != 0 || up("active") != 0 {
            tokio::task::yield_now().await;
        }
    })
    .await;
}

fn stream_timeouts(proxy: &TestProxy, side: &str) -> u64 {
    let m = &proxy.app.shared.metrics;
    m.stream_timeouts_total.with_label_values(&[side]).get()
}

/// A client that stops reading a large response: once nothing has moved for the idle timeout the
/// client connection is closed, and the upstream connection with it.
#[tokio::test]
async fn stream_idle_client_stops_reading_response_is_closed_and_frees_upstream() {
    let mut up = RawUpstream::start(Mode::Endless).await;
    let proxy = proxy_for(&up, IDLE_300MS).await;
    let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
    s.write_all(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut chunk = [0u8; 4096];
    let n = within(10, s.read(&mut chunk)).await.unwrap();
    assert!(String::from_utf8_lossy(&chunk[..n]).starts_with("HTTP/1.1 200"));
    // Read nothing more: the proxy fills the socket buffers, then stalls.
    within(10, up.closed.recv()).await.unwrap();
    all_connections_freed(&proxy).await;
    assert_eq!(stream_timeouts(&proxy, "client"), 1);
    assert_eq!(up.accepted(), 1);
}

/// An upload that stalls before any response: 408 `VG.00040801`, and the upstream connection
/// (which was reading the body) is closed.
#[tokio::test]
async fn stream_idle_stalled_upload_is_408_vg00040801_and_frees_upstream() {
    let mut up = RawUpstream::start(Mode::Drain).await;
    let proxy = proxy_for(&up, IDLE_300MS).await;
    let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
    s.write_all(b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n0123456789")
        .await
        .unwrap();
    let (status, body) = within(10, common::read_response(&mut s)).await;
    assert_eq!(status, 408);
    assert_eq!(common::error_code(&body), "VG.00040801");
    within(10, up.closed.recv()).await.unwrap();
    drop(s);
    all_connections_freed(&proxy).await;
    assert_eq!(stream_timeouts(&proxy, "client"), 1);
    assert_eq!(stream_timeouts(&proxy, "upstream"), 0);
}

/// An upstream body that stalls: the response is cut (the client connection closed) and the
/// upstream connection closed.
#[tokio::test]
async fn stream_idle_stalled_upstream_body_is_closed_and_frees_upstream() {
    let mut up = RawUpstream::start(Mode::Stall).await;
    let proxy = proxy_for(&up, IDLE_300MS).await;
    let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
    s.write_all(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    let ended = within(10, async {
        loop {
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&chunk[..n]),
            }
        }
    });
    ended.await;
    assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 200"));
    assert!(
        got.ends_with(&[b'z'; 16]),
        "the 1 KiB that came, then the cut"
    );
    within(10, up.closed.recv()).await.unwrap();
    all_connections_freed(&proxy).await;
    assert_eq!(stream_timeouts(&proxy, "upstream"), 1);
}

/// An upstream that never answers, with no response timeout: the exchange still ends after the
/// idle timeout, 504 `VG.00050401`.
#[tokio::test]
async fn stream_idle_silent_upstream_without_response_timeout_is_504() {
    let mut up = RawUpstream::start(Mode::Drain).await;
    let proxy = proxy_for(&up, &format!("  response_timeout: \"0\"\n{IDLE_300MS}")).await;
    let r = within(10, proxy.client(false).get(proxy.base()).send())
        .await
        .unwrap();
    assert_eq!(r.status(), 504);
    assert_eq!(common::error_code(&r.text().await.unwrap()), "VG.00050401");
    within(10, up.closed.recv()).await.unwrap();
    assert_eq!(stream_timeouts(&proxy, "upstream"), 1);
}
