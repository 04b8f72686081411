//! Bounds on the data path (docs/contract.md §2, §6): the response deadline counted from the end
//! of the request body, the listen backlog, HTTP/2 stream and buffer limits, tunnels as
//! connections, and the stream idle timeout. Real sockets on 127.0.0.1:0, short real timeouts
//! under a bounding `within`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::upstream::Upstream;
use common::{OPEN_POLICY, STATIC_TENANT, TestProxy, config_plain, within};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn echo(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap()
}

/// A body that sends `chunks` chunks of `size` bytes, `gap` apart: a slow but steady upload
/// (the gaps are the stimulus, not synchronisation).
fn slow_body(chunks: u32, size: usize, gap: Duration) -> reqwest::Body {
    let stream = futures_util::stream::unfold(0u32, move |i| async move {
        if i == chunks {
            return None;
        }
        if i > 0 {
            #[allow(clippy::disallowed_methods)] // the upload's pace is the stimulus
            tokio::time::sleep(gap).await;
        }
        Some((
            Ok::<_, std::io::Error>(Bytes::from(vec![b'u'; size])),
            i + 1,
        ))
    });
    reqwest::Body::wrap_stream(stream)
}

/// The proxy in front of `up` (plain HTTP, every request in the static tenant), with `upstream`
/// lines added under `upstream:` and `extra` top-level YAML.
async fn proxy(up: std::net::SocketAddr, upstream: &str, extra: &str) -> TestProxy {
    let config = config_plain(up, &format!("{STATIC_TENANT}{extra}")).replacen(
        "upstream:\n",
        &format!("upstream:\n{upstream}"),
        1,
    );
    TestProxy::start(&config, OPEN_POLICY, false).await
}

#[tokio::test]
async fn response_timeout_slow_upload_to_fast_upstream_is_200() {
    let up = Upstream::start().await;
    let proxy = proxy(up.addr, "  response_timeout: 1s\n", "").await;
    for http2 in [false, true] {
        // 9 chunks 250 ms apart: the body takes 2 s, twice the response timeout.
        let r = within(
            20,
            proxy
                .client(http2)
                .post(format!("{}/upload", proxy.base()))
                .body(slow_body(9, 1024, Duration::from_millis(250)))
                .send(),
        )
        .await
        .unwrap();
        assert_eq!(r.status(), 200, "client http2={http2}");
        assert_eq!(echo(&r.text().await.unwrap())["body_bytes"], 9 * 1024);
    }
}

/// Ask for a WebSocket upgrade to the upstream's `/ws` on a new connection: the connection and the
/// response head (lowercased; `None` when the proxy closed the connection first). A 101 leaves
/// the connection a tunnel to the upstream's echo.
async fn upgrade(addr: std::net::SocketAddr) -> (TcpStream, Option<String>) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let asked = s
        .write_all(
            b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
              Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        )
        .await;
    if asked.is_err() {
        return (s, None);
    }
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match within(10, s.read(&mut byte)).await {
            Ok(1) => head.push(byte[0]),
            _ => return (s, None),
        }
    }
    (
        s,
        Some(String::from_utf8(head).unwrap().to_ascii_lowercase()),
    )
}

/// One round trip through a tunnel; false if it is closed.
async fn ping(s: &mut TcpStream) -> bool {
    if s.write_all(b"ping").await.is_err() {
        return false;
    }
    let mut echo = [0u8; 4];
    within(10, s.read_exact(&mut echo)).await.is_ok() && &echo == b"ping"
}

/// The cap covers hyper-util's client too (upgrades go through it): an open tunnel holds its
/// upstream connection, so with `max_connections: 1` a second upgrade waits `connect_timeout`
/// and gets 503 `VG.00050302`; once the first tunnel is gone, upgrades work again.
#[tokio::test]
async fn upstream_max_connections_open_tunnel_holds_its_connection_next_upgrade_is_503() {
    let up = Upstream::start().await;
    let proxy = proxy(
        up.addr,
        "  max_connections: 1\n  connect_timeout: 300ms\n",
        "",
    )
    .await;
    let (mut first, head) = upgrade(proxy.addr()).await;
    assert!(head.unwrap().starts_with("http/1.1 101"));
    assert!(ping(&mut first).await);
    let (mut second, head) = upgrade(proxy.addr()).await;
    let head = head.unwrap();
    assert!(head.starts_with("http/1.1 503"), "{head}");
    let (_, body) = common::read_response_body(&mut second, &head).await;
    assert_eq!(common::error_code(&body), "VG.00050302");
    assert_eq!(proxy.app.shared.metrics.upstream_overflows_total.get(), 1);
    // The tunnel ends; its upstream connection closes, and the next upgrade gets it.
    drop(first);
    within(10, async {
        loop {
            if let (mut s, Some(h)) = upgrade(proxy.addr()).await
                && h.starts_with("http/1.1 101")
            {
                assert!(ping(&mut s).await);
                return;
            }
        }
    })
    .await;
}

/// `listen.backlog` reaches listen(2): `ss` shows a listening socket's backlog as its Send-Q.
#[tokio::test]
async fn listen_backlog_configured_is_the_sockets_backlog() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("vpcguard.yaml");
    std::fs::write(
        &cfg,
        "listen:\n  address: \"127.0.0.1:0\"\n  backlog: 37\nadmin:\n  address: \"127.0.0.1:0\"\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("policy.yaml"), OPEN_POLICY).unwrap();
    let loaded = vpcguard::config::load(&cfg).unwrap();
    let listeners = vpcguard::app::bind(&loaded).await.unwrap();
    let port = listeners.data.local_addr().unwrap().port();
    let out = match std::process::Command::new("ss")
        .args(["-ltnH", &format!("sport = :{port}")])
        .output()
    {
        Ok(out) if out.status.success() => out,
        other => {
            eprintln!("SKIPPED the backlog assertion: `ss` (iproute2) did not run: {other:?}");
            return;
        }
    };
    let text = String::from_utf8(out.stdout).unwrap();
    // State Recv-Q Send-Q Local Peer: for a listening socket Send-Q is the backlog.
    let cols: Vec<&str> = text.split_whitespace().collect();
    assert_eq!(cols.first(), Some(&"LISTEN"), "{text}");
    assert_eq!(cols.get(2), Some(&"37"), "{text}");
}
