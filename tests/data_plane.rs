//! The data plane seen from outside (docs/contract.md §5 5xx/413 rows, §6, §10): real TLS, real upstream, real
//! clients (reqwest, hyper, raw sockets).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::upstream::{self, Upstream};
use common::{
    OPEN_POLICY, STATIC_TENANT, TENANT, TestProxy, config_plain, config_tls, error_code, within,
};
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn tls_proxy(up: &Upstream, extra: &str) -> TestProxy {
    TestProxy::start(
        &config_tls(up.addr, &format!("{STATIC_TENANT}{extra}")),
        OPEN_POLICY,
        true,
    )
    .await
}

fn echo(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap()
}

#[tokio::test]
async fn tls_h1_and_h2_reach_upstream_with_forwarding_headers() {
    let up = Upstream::start().await;
    let proxy = tls_proxy(&up, "").await;
    for http2 in [false, true] {
        let resp = proxy
            .client(http2)
            .get(format!("{}/some/path?q=1", proxy.base()))
            .header("connection", "x-secret")
            .header("x-secret", "1")
            .header("x-vpcguard-tenant", "spoofed")
            .send()
            .await
            .unwrap();
        let want_version = if http2 {
            reqwest::Version::HTTP_2
        } else {
            reqwest::Version::HTTP_11
        };
        assert_eq!(resp.version(), want_version);
        assert_eq!(resp.status(), 200);
        let rid = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
        assert_eq!(rid.len(), 32, "generated request id");
        // Hop-by-hop headers of the upstream response are gone, including those it named.
        assert!(resp.headers().get("x-upstream-private").is_none());
        assert!(resp.headers().get("keep-alive").is_none());
        let e = echo(&resp.text().await.unwrap());
        let h = &e["headers"];
        assert_eq!(e["path"], "/some/path");
        assert_eq!(e["query"], "q=1");
        assert_eq!(e["version"], "HTTP/1.1");
        assert_eq!(h["x-forwarded-for"][0], "127.0.0.1");
        assert_eq!(h["x-forwarded-proto"][0], "https");
        let host = format!("localhost:{}", proxy.addr().port());
        assert_eq!(h["x-forwarded-host"][0], host);
        assert_eq!(h["host"][0], host, "Host preserved");
        assert_eq!(h["x-request-id"][0], rid);
        assert!(
            h.get("x-secret").is_none(),
            "header named in Connection stripped"
        );
        assert_eq!(
            h["x-vpcguard-tenant"][0], TENANT,
            "identity set, never copied"
        );
        assert_eq!(h["x-vpcguard-client-ip"][0], "127.0.0.1");
        assert_eq!(h["x-vpcguard-decision"][0], "allow");
    }
}

#[tokio::test]
async fn request_id_valid_is_kept_invalid_is_replaced() {
    let up = Upstream::start().await;
    let proxy = tls_proxy(&up, "").await;
    let c = proxy.client(false);
    let r = c
        .get(format!("{}/", proxy.base()))
        .header("x-request-id", "trace-123")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "trace-123");
    let r = c
        .get(format!("{}/", proxy.base()))
        .header("x-request-id", "bad id with spaces")
        .send()
        .await
        .unwrap();
    assert_ne!(r.headers()["x-request-id"], "bad id with spaces");
}

async fn status_and_code(proxy: &TestProxy, path: &str) -> (u16, String, bool) {
    let r = proxy
        .client(false)
        .get(format!("{}{path}", proxy.base()))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let has_id = r.headers().contains_key("x-request-id");
    assert_eq!(r.headers()["content-type"], "application/json");
    (status, error_code(&r.text().await.unwrap()), has_id)
}

#[tokio::test]
async fn upstream_refused_is_502_vg00050201() {
    let addr = upstream::refused().await;
    let proxy = TestProxy::start(&config_tls(addr, STATIC_TENANT), OPEN_POLICY, true).await;
    assert_eq!(
        status_and_code(&proxy, "/").await,
        (502, "VG.00050201".to_owned(), true)
    );
    let (_, metrics) = proxy.admin_get("/metrics").await;
    assert!(
        metrics.contains("vpcguard_upstream_errors_total{kind=\"connect\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn upstream_garbage_is_502_vg00050202() {
    let addr = upstream::garbage().await;
    let proxy = TestProxy::start(&config_tls(addr, STATIC_TENANT), OPEN_POLICY, true).await;
    assert_eq!(
        status_and_code(&proxy, "/").await,
        (502, "VG.00050202".to_owned(), true)
    );
}

#[tokio::test]
async fn upstream_slow_is_504_vg00050401() {
    let up = Upstream::start().await;
    let proxy = tls_proxy(&up, "").await;
    // Rewrite with a short response timeout.
    drop(proxy);
    let proxy = TestProxy::start(
        &format!(
            "listen:\n  tls: {{}}\nupstream:\n  url: \"http://{}\"\n  response_timeout: 300ms\n{STATIC_TENANT}",
            up.addr
        ),
        OPEN_POLICY,
        true,
    )
    .await;
    assert_eq!(
        status_and_code(&proxy, "/hold").await,
        (504, "VG.00050401".to_owned(), true)
    );
    up.release();
}

#[tokio::test]
async fn body_over_max_body_bytes_is_413_declared_and_streamed() {
    let up = Upstream::start().await;
    let proxy = tls_proxy(&up, "limits:\n  max_body_bytes: 1024\n").await;
    let c = proxy.client(false);
    // Declared length over the limit.
    let r = c
        .post(format!("{}/upload", proxy.base()))
        .body(vec![b'x'; 2048])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert!(r.headers().contains_key("x-request-id"));
    assert_eq!(error_code(&r.text().await.unwrap()), "VG.00041301");
    // Chunked, no declared length: cut while streaming.
    let chunks: Vec<Result<Bytes, std::io::Error>> =
        (0..8).map(|_| Ok(Bytes::from(vec![b'y'; 512]))).collect();
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let r = proxy
        .client(true)
        .post(format!("{}/upload", proxy.base()))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert_eq!(error_code(&r.text().await.unwrap()), "VG.00041301");
    // Under the limit passes.
    let r = c
        .post(format!("{}/upload", proxy.base()))
        .body(vec![b'x'; 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(echo(&r.text().await.unwrap())["body_bytes"], 1024);
}

#[tokio::test]
async fn large_bodies_stream_both_ways() {
    let up = Upstream::start().await;
    let proxy = tls_proxy(&up, "").await;
    let c = proxy.client(true);
    const SIZE: u64 = 64 * 1024 * 1024;
    let r = c
        .get(format!("{}/download/{SIZE}", proxy.base()))
        .send()
        .await
        .unwrap();
    let mut got = 0u64;
    let mut stream = r.bytes_stream();
    use futures_util::StreamExt;
    while let Some(chunk) = stream.next().await {
        got += chunk.unwrap().len() as u64;
    }
    assert_eq!(got, SIZE);
    let chunks = futures_util::stream::iter(
        (0..(SIZE / 65536)).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![1u8; 65536]))),
    );
    let r = c
        .post(format!("{}/upload", proxy.base()))
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(echo(&r.text().await.unwrap())["body_bytes"], SIZE);
}

/// Read from `s` until the peer closes; true if it closed (EOF or reset) in time.
async fn closed_by_peer(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => return true,
            Ok(_) => {}
        }
    }
}

#[tokio::test]
async fn over_max_connections_is_closed_and_counted() {
    let up = Upstream::start().await;
    let proxy = TestProxy::start(
        &config_plain(
            up.addr,
            &format!("{STATIC_TENANT}limits:\n  max_connections: 1\n"),
        ),
        OPEN_POLICY,
        false,
    )
    .await;
    // The first connection completes a request and stays open (keep-alive).
    let mut first = TcpStream::connect(proxy.addr()).await.unwrap();
    first
        .write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 4096];
    let n = within(5, first.read(&mut buf)).await.unwrap();
    assert!(
        std::str::from_utf8(&buf[..n])
            .unwrap()
            .starts_with("HTTP/1.1 200")
    );
    // The second is closed at once.
    let mut second = TcpStream::connect(proxy.addr()).await.unwrap();
    let _ = second.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").await;
    assert!(within(5, closed_by_peer(&mut second)).await);
    let (_, metrics) = proxy.admin_get("/metrics").await;
    assert!(
        metrics.contains("vpcguard_connection_rejects_total{reason=\"limit\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn slow_request_headers_are_cut_after_header_read_timeout() {
    let up = Upstream::start().await;
    let proxy = TestProxy::start(
        &config_plain(
            up.addr,
            &format!("{STATIC_TENANT}limits:\n  header_read_timeout: 300ms\n"),
        ),
        OPEN_POLICY,
        false,
    )
    .await;
    let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\nX-Slow: ")
        .await
        .unwrap();
    assert!(within(5, closed_by_peer(&mut s)).await);
}

#[tokio::test]
async fn stalled_tls_handshake_is_cut_after_tls_handshake_timeout() {
    let up = Upstream::start().await;
    let proxy = tls_proxy(&up, "limits:\n  tls_handshake_timeout: 300ms\n").await;
    let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
    // The first bytes of a ClientHello record header, then nothing.
    s.write_all(&[0x16, 0x03, 0x01]).await.unwrap();
    assert!(within(5, closed_by_peer(&mut s)).await);
    let (_, metrics) = proxy.admin_get("/metrics").await;
    assert!(
        metrics.contains("vpcguard_connection_rejects_total{reason=\"timeout\"} 1"),
        "{metrics}"
    );
}

/// A WebSocket upgrade through `proxy`: the 101 comes back and bytes echo through the tunnel.
async fn websocket_round_trip(proxy: &TestProxy) {
    let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
    websocket_upgrade_on(&mut s).await;
}

/// Upgrade the HTTP/1.1 connection `s` to a WebSocket tunnel and send bytes through it.
async fn websocket_upgrade_on(s: &mut TcpStream) {
    s.write_all(
        b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
          Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .await
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        within(5, s.read_exact(&mut byte)).await.unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap().to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: websocket"), "{head}");
    s.write_all(b"ping-through-tunnel").await.unwrap();
    let mut echo = [0u8; 19];
    within(5, s.read_exact(&mut echo)).await.unwrap();
    assert_eq!(&echo, b"ping-through-tunnel");
}

#[tokio::test]
async fn websocket_upgrade_passes_through() {
    let up = Upstream::start().await;
    let proxy = TestProxy::start(&config_plain(up.addr, STATIC_TENANT), OPEN_POLICY, false).await;
    websocket_round_trip(&proxy).await;
}

/// A proxy in front of the `https://` upstream on `port` (as `localhost`), trusting `ca_pem`
/// through `upstream.tls.ca`, with `upstream_extra` lines (indented) under `upstream:`.
async fn https_upstream_proxy(port: u16, ca_pem: &str, upstream_extra: &str) -> TestProxy {
    let config = format!(
        "upstream:\n  url: \"https://localhost:{port}\"\n{upstream_extra}  tls: {{ ca: upstream-ca.pem }}\n{STATIC_TENANT}"
    );
    let ca = ca_pem.to_owned();
    TestProxy::start_with(&config, OPEN_POLICY, false, move |dir| {
        std::fs::write(dir.join("upstream-ca.pem"), ca).unwrap();
    })
    .await
}

/// An `https://` upstream that would pick h2 for ALPN still gets upgrades: their connection
/// offers only http/1.1.
#[tokio::test]
async fn websocket_upgrade_passes_through_to_an_https_upstream_that_prefers_h2() {
    common::install_provider();
    let pki = common::pki();
    let (up, accepted) =
        Upstream::start_tls(&pki.cert_pem, &pki.key_pem, &[b"h2", b"http/1.1"]).await;
    let proxy = https_upstream_proxy(up.addr.port(), &pki.ca_pem, "").await;
    websocket_round_trip(&proxy).await;
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1);
}

/// The streamed-body limit on the h2c client path (hyper-util's client, not the HTTP/1.1 pool):
/// the 413 must come from the body's own error, whatever the HTTP/2 client does with it.
#[tokio::test]
async fn body_over_max_body_bytes_streamed_to_h2c_upstream_is_413() {
    common::install_provider();
    let up = Upstream::start().await;
    let proxy = TestProxy::start(
        &format!(
            "listen:\n  tls: {{}}\nupstream:\n  url: \"h2c://{}\"\nlimits:\n  max_body_bytes: 1024\n{STATIC_TENANT}",
            up.addr
        ),
        OPEN_POLICY,
        true,
    )
    .await;
    for http2 in [false, true] {
        let chunks: Vec<Result<Bytes, std::io::Error>> =
            (0..8).map(|_| Ok(Bytes::from(vec![b'y'; 512]))).collect();
        let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
        let r = proxy
            .client(http2)
            .post(format!("{}/upload", proxy.base()))
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 413, "client http2={http2}");
        assert_eq!(error_code(&r.text().await.unwrap()), "VG.00041301");
    }
}

#[tokio::test]
async fn grpc_style_trailers_pass_through_h2c_upstream() {
    common::install_provider();
    let up = Upstream::start().await;
    let proxy = TestProxy::start(
        &format!(
            "listen:\n  tls: {{}}\nupstream:\n  url: \"h2c://{}\"\n{STATIC_TENANT}",
            up.addr
        ),
        OPEN_POLICY,
        true,
    )
    .await;
    // A raw HTTP/2 client over TLS so trailers are visible.
    let mut roots = rustls::RootCertStore::empty();
    let ca = rustls_pki_types::CertificateDer::from_pem_slice(
        proxy.pki.as_ref().unwrap().ca_pem.as_bytes(),
    )
    .unwrap();
    roots.add(ca).unwrap();
    let mut cfg = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = TcpStream::connect(proxy.addr()).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(cfg))
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .unwrap();
    let (mut send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tls),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let req = http::Request::post(format!(
        "https://localhost:{}/trailers",
        proxy.addr().port()
    ))
    .header("te", "trailers")
    .header("content-type", "application/grpc")
    .body(http_body_util::Full::new(Bytes::from_static(b"\0\0\0\0\0")))
    .unwrap();
    let resp = within(10, send.send_request(req)).await.unwrap();
    assert_eq!(resp.status(), 200);
    let collected = within(10, resp.into_body().collect()).await.unwrap();
    let trailers = collected.trailers().cloned().expect("trailers");
    assert_eq!(trailers["grpc-status"], "0");
    assert_eq!(collected.to_bytes(), "hello");
}

use rustls_pki_types::pem::PemObject;

#[tokio::test]
async fn shutdown_lets_in_flight_request_finish_and_refuses_new_connections() {
    shutdown_drains(false).await;
}

/// The same over HTTP/2 (ALPN h2): the open stream is finished after the drain's GOAWAY.
#[tokio::test]
async fn shutdown_lets_in_flight_h2_stream_finish() {
    shutdown_drains(true).await;
}

async fn shutdown_drains(http2: bool) {
    let mut up = Upstream::start().await;
    let proxy = tls_proxy(&up, "").await;
    let client = proxy.client(http2);
    // Keeps the connection open (pooled) after the response: the drain must close it, not wait
    // out `shutdown_grace` (25 s) for it.
    let keep = client.clone();
    let url = format!("{}/hold", proxy.base());
    let in_flight = tokio::spawn(async move { client.get(url).send().await });
    within(10, up.held.recv()).await.unwrap();
    proxy.app.shutdown();
    let (status, _) = proxy.admin_get("/readyz").await;
    assert_eq!(status, 503, "readiness fails while draining");
    // The listener is closed: new connections are refused. The accept loop has no event to
    // wait on from here, so poll (bounded) until a connect is refused.
    within(10, async {
        while let Ok(s) = TcpStream::connect(proxy.addr()).await {
            drop(s);
            tokio::task::yield_now().await;
        }
    })
    .await;
    up.release();
    let resp = within(10, in_flight).await.unwrap().unwrap();
    assert_eq!(resp.status(), 200);
    let want = if http2 {
        http::Version::HTTP_2
    } else {
        http::Version::HTTP_11
    };
    assert_eq!(resp.version(), want);
    assert_eq!(resp.text().await.unwrap(), "released");
    within(10, proxy.app.wait()).await;
    drop(keep);
}

#[tokio::test]
async fn many_concurrent_requests_over_h2_all_succeed() {
    let up = Upstream::start().await;
    let proxy = tls_proxy(&up, "").await;
    let c = proxy.client(true);
    let mut tasks = Vec::new();
    for i in 0..200 {
        let c = c.clone();
        let url = format!("{}/n/{i}", proxy.base());
        tasks.push(tokio::spawn(async move {
            c.get(url).send().await.unwrap().status()
        }));
    }
    for t in tasks {
        assert_eq!(within(30, t).await.unwrap(), 200);
    }
    let _ = Duration::ZERO;
}

/// One GET to the plain listener at `proxy` over HTTP/1.1 (with `Host: host`) or h2c prior
/// knowledge (with `:authority` `host`); the upstream's echo.
async fn get_as_host(proxy: std::net::SocketAddr, http2: bool, host: &str) -> serde_json::Value {
    let tcp = TcpStream::connect(proxy).await.unwrap();
    let io = hyper_util::rt::TokioIo::new(tcp);
    let empty = http_body_util::Empty::<Bytes>::new();
    let resp = if http2 {
        let (mut send, conn) =
            hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
                .await
                .unwrap();
        tokio::spawn(conn);
        let req = http::Request::get(format!("http://{host}/echo"))
            .body(empty)
            .unwrap();
        within(10, send.send_request(req)).await.unwrap()
    } else {
        let (mut send, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
        tokio::spawn(conn);
        let req = http::Request::get("/echo")
            .header("host", host)
            .body(empty)
            .unwrap();
        within(10, send.send_request(req)).await.unwrap()
    };
    assert_eq!(resp.status(), 200);
    let body = within(10, resp.into_body().collect()).await.unwrap();
    serde_json::from_slice(&body.to_bytes()).unwrap()
}

#[tokio::test]
async fn preserve_host_sets_host_for_http1_and_authority_for_h2c_upstreams() {
    let up = Upstream::start().await;
    let upstream = up.addr.to_string();
    let host = "svc.example:8443";
    for scheme in ["http", "h2c"] {
        for preserve in [true, false] {
            let config = format!(
                "upstream:\n  url: \"{scheme}://{upstream}\"\n  preserve_host: {preserve}\n{STATIC_TENANT}"
            );
            let proxy = TestProxy::start(&config, OPEN_POLICY, false).await;
            for http2 in [false, true] {
                let e = get_as_host(proxy.addr(), http2, host).await;
                let case =
                    format!("{scheme} upstream, preserve_host {preserve}, client http2 {http2}");
                let h = &e["headers"];
                assert_eq!(h["x-forwarded-host"][0], host, "{case}");
                let want = if preserve { host } else { upstream.as_str() };
                if scheme == "h2c" {
                    assert_eq!(e["version"], "HTTP/2.0", "{case}");
                    assert_eq!(e["authority"], want, "{case}: :authority");
                    // RFC 9113 §8.3.1: the host travels in :authority, never also as Host.
                    assert!(h.get("host").is_none(), "{case}: {h}");
                } else {
                    assert_eq!(e["version"], "HTTP/1.1", "{case}");
                    assert_eq!(h["host"], serde_json::json!([want]), "{case}");
                }
            }
        }
    }
}

/// `https://` upstreams (`upstream.tls.ca` trusts the test CA): each TLS connection's ALPN picks
/// HTTP/2 or HTTP/1.1, and `preserve_host` is honoured on both: the client's host as `:authority`
/// and no `Host` on h2, as `Host` on HTTP/1.1. An h2 upstream carries every request on one
/// multiplexed connection; an HTTP/1.1 one reuses pooled connections.
#[tokio::test]
async fn https_upstream_alpn_picks_h2_or_http1_and_preserve_host_holds_on_both() {
    common::install_provider();
    let pki = common::pki();
    let host = "svc.example:8443";
    let cases: [(&str, &[&[u8]], &str); 4] = [
        ("h2 only", &[b"h2"], "HTTP/2.0"),
        ("h2 and http/1.1", &[b"h2", b"http/1.1"], "HTTP/2.0"),
        ("http/1.1 only", &[b"http/1.1"], "HTTP/1.1"),
        ("no ALPN", &[], "HTTP/1.1"),
    ];
    for (name, alpn, version) in cases {
        for preserve in [true, false] {
            let (up, accepted) = Upstream::start_tls(&pki.cert_pem, &pki.key_pem, alpn).await;
            let upstream = format!("localhost:{}", up.addr.port());
            let extra = format!("  preserve_host: {preserve}\n");
            let proxy = https_upstream_proxy(up.addr.port(), &pki.ca_pem, &extra).await;
            let mut sent = 0;
            for http2 in [false, true, false, true] {
                let e = get_as_host(proxy.addr(), http2, host).await;
                sent += 1;
                let case = format!("{name}, preserve_host {preserve}, client http2 {http2}");
                let h = &e["headers"];
                let want = if preserve { host } else { upstream.as_str() };
                assert_eq!(e["version"], version, "{case}");
                if version == "HTTP/2.0" {
                    assert_eq!(e["authority"], want, "{case}: :authority");
                    // RFC 9113 §8.3.1: the host travels in :authority, never also as Host.
                    assert!(h.get("host").is_none(), "{case}: {h}");
                } else {
                    assert_eq!(h["host"], serde_json::json!([want]), "{case}");
                }
            }
            let n = accepted.load(std::sync::atomic::Ordering::SeqCst);
            if version == "HTTP/2.0" {
                assert_eq!(
                    n, 1,
                    "{name}: one multiplexed connection carried {sent} requests"
                );
            } else {
                assert!(
                    n < sent,
                    "{name}: {n} connections for {sent} sequential requests"
                );
            }
        }
    }
}

/// An `https://` upstream whose certificate the configured CA did not sign is not reached: 502
/// `VG.00050201`, counted as a connect error. Renaming the right CA over `upstream.tls.ca` is a
/// reload (the watcher fingerprints it), after which the upstream is reached.
#[tokio::test]
async fn https_upstream_with_an_untrusted_certificate_is_a_502_until_its_ca_is_rotated_in() {
    common::install_provider();
    let (trusted, other) = (common::pki(), common::pki());
    let (up, accepted) =
        Upstream::start_tls(&other.cert_pem, &other.key_pem, &[b"h2", b"http/1.1"]).await;
    let proxy = https_upstream_proxy(up.addr.port(), &trusted.ca_pem, "").await;
    let r = proxy
        .client(false)
        .get(format!("{}/x", proxy.base()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    assert_eq!(error_code(&r.text().await.unwrap()), "VG.00050201");
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 0);
    let (_, metrics) = proxy.admin_get("/metrics").await;
    assert!(
        metrics.contains("vpcguard_upstream_errors_total{kind=\"connect\"} 1"),
        "{metrics}"
    );
    let tmp = proxy.path("upstream-ca.pem.tmp");
    std::fs::write(&tmp, &other.ca_pem).unwrap();
    std::fs::rename(&tmp, proxy.path("upstream-ca.pem")).unwrap();
    proxy.wait_generation(2).await;
    let r = proxy
        .client(false)
        .get(format!("{}/x", proxy.base()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the rotated CA is in force");
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1);
}

/// The h2c client keeps one multiplexed upstream connection for sequential and concurrent
/// requests, closes it after `upstream.idle_timeout` with nothing on it, and dials again after.
#[tokio::test]
async fn h2c_upstream_one_connection_closed_when_idle_then_redialled() {
    let up = Upstream::start().await;
    let config = format!(
        "upstream:\n  url: \"h2c://{}\"\n  idle_timeout: 1s\n{STATIC_TENANT}",
        up.addr
    );
    let proxy = TestProxy::start(&config, OPEN_POLICY, false).await;
    let open = || {
        let m = &proxy.app.shared.metrics;
        m.upstream_connections.with_label_values(&["active"]).get()
    };
    let c = proxy.client(false);
    for _ in 0..5 {
        let r = c.get(format!("{}/a", proxy.base())).send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
    let all = (0..10).map(|i| {
        let c = c.clone();
        let url = format!("{}/b{i}", proxy.base());
        tokio::spawn(async move { c.get(url).send().await.unwrap().status().as_u16() })
    });
    for s in futures_util::future::join_all(all).await {
        assert_eq!(s.unwrap(), 200);
    }
    assert_eq!(open(), 1, "one upstream connection carried all 15 requests");
    // Polling a gauge: the close has no event a test can await.
    let mut poll = tokio::time::interval(Duration::from_millis(50));
    within(10, async {
        while open() != 0 {
            poll.tick().await;
        }
    })
    .await;
    let r = c.get(format!("{}/c", proxy.base())).send().await.unwrap();
    assert_eq!(r.status(), 200, "a closed idle connection is dialled again");
    assert_eq!(open(), 1);
}

/// TLS resumption (issue 14: a sidecar's callers reconnect often): a second connection from the
/// same client resumes, for TLS 1.3 and TLS 1.2 (stateless tickets; rustls' client stores them).
#[tokio::test]
async fn tls_sessions_resume_on_tls12_and_tls13() {
    let up = Upstream::start().await;
    let proxy = tls_proxy(&up, "").await;
    let ca = rustls_pki_types::CertificateDer::from_pem_slice(
        proxy.pki.as_ref().unwrap().ca_pem.as_bytes(),
    )
    .unwrap();
    for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.clone()).unwrap();
        let cfg = rustls::ClientConfig::builder_with_protocol_versions(&[version])
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(cfg));
        let mut kinds = Vec::new();
        for _ in 0..2 {
            let tcp = TcpStream::connect(proxy.addr()).await.unwrap();
            let mut tls = within(10, connector.connect("localhost".try_into().unwrap(), tcp))
                .await
                .unwrap();
            tls.write_all(b"GET /r HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                .await
                .unwrap();
            let mut out = Vec::new();
            // Reading the answer also takes in the TLS 1.3 tickets sent after the handshake.
            let _ = within(10, tls.read_to_end(&mut out)).await;
            assert!(out.starts_with(b"HTTP/1.1 200"), "{version:?}");
            kinds.push(tls.get_ref().1.handshake_kind());
        }
        assert_eq!(
            kinds,
            [
                Some(rustls::HandshakeKind::Full),
                Some(rustls::HandshakeKind::Resumed)
            ],
            "{version:?}"
        );
    }
    // And TLS 1.2 resumes by ticket, not only by session id (testssl.sh found none before):
    // openssl shows the ticket the server sent.
    let addr = proxy.addr().to_string();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("openssl")
            .args([
                "s_client",
                "-tls1_2",
                "-servername",
                "localhost",
                "-connect",
                &addr,
            ])
            .stdin(std::process::Stdio::null())
            .output()
            .expect("openssl is installed (see scripts/test.sh)")
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("TLS session ticket lifetime hint"),
        "no TLS 1.2 ticket: {text}"
    );
}

/// A refused request with a body still gets its answer: the body is drained before the refusal
/// (else hyper closes with unread bytes, the kernel resets, and curl got no answer for 14 of 40
/// TLS POSTs). curl, a fresh TLS connection per request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denied_post_with_a_body_gets_its_403_every_time() {
    let up = Upstream::start().await;
    let config = config_tls(
        up.addr,
        "tenant:\n  - static: \"ffffffffffffffffffffffffffffffff\"\n",
    );
    let proxy = TestProxy::start(&config, OPEN_POLICY, true).await;
    let url = format!("{}/upload", proxy.base());
    let resolve = format!("localhost:{}:127.0.0.1", proxy.addr().port());
    let out = tokio::task::spawn_blocking(move || {
        let mut codes = Vec::new();
        for _ in 0..40 {
            let out = std::process::Command::new("curl")
                .args([
                    "-sk",
                    "--max-time",
                    "10",
                    "--resolve",
                    &resolve,
                    "-X",
                    "POST",
                ])
                .args(["-d", "x", "-w", "\n%{http_code}", &url])
                .output()
                .expect("curl is installed (see scripts/test.sh)");
            codes.push(String::from_utf8_lossy(&out.stdout).into_owned());
        }
        codes
    })
    .await
    .unwrap();
    for got in out {
        let (body, status) = got.rsplit_once('\n').unwrap();
        assert_eq!(status, "403", "{got}");
        assert_eq!(error_code(body), "VG.00040305");
    }
}

/// One HTTP/1.1 response read off `s`: the head (lowercased) and the body, by `Content-Length`.
async fn read_response(s: &mut (impl tokio::io::AsyncRead + Unpin)) -> (String, String) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8(got[..end].to_vec())
                .unwrap()
                .to_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .map_or(0, |v| v.trim().parse().unwrap());
            if got.len() >= end + 4 + len {
                let body = String::from_utf8(got[end + 4..end + 4 + len].to_vec()).unwrap();
                return (head, body);
            }
        }
        let n = within(5, s.read(&mut buf)).await.unwrap();
        assert!(
            n > 0,
            "closed mid-response: {:?}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    }
}

/// The client's pause is the stimulus: long enough for a connection at rest to park (it is
/// looked at every second).
async fn pause_past_park() {
    #[allow(clippy::disallowed_methods)] // the client's pause is what is tested
    tokio::time::sleep(Duration::from_millis(2500)).await;
}

/// Until the proxy has `n` parked connections (bounded polling of a gauge; no event crosses).
async fn parked(proxy: &TestProxy, n: i64) {
    let gauge = &proxy.app.shared.metrics.connections_parked;
    within(5, async {
        while gauge.get() != n {
            #[allow(clippy::disallowed_methods)] // bounded polling of a gauge
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

/// A plain proxy and a client connection to it that has had one exchange and is now parked.
async fn a_parked_connection() -> (Upstream, TestProxy, TcpStream) {
    let up = Upstream::start().await;
    let proxy = TestProxy::start(&config_plain(up.addr, STATIC_TENANT), OPEN_POLICY, false).await;
    let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let (head, _) = read_response(&mut s).await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    parked(&proxy, 1).await;
    (up, proxy, s)
}

/// An HTTP/1.1 keep-alive connection at rest gives up hyper's buffers (parks: the gauge) and
/// serves its next request on the same socket, with keep-alive intact; over TLS too.
#[tokio::test]
async fn idle_keepalive_connection_parks_and_serves_its_next_request() {
    let up = Upstream::start().await;
    let proxy = TestProxy::start(&config_plain(up.addr, STATIC_TENANT), OPEN_POLICY, false).await;
    let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
    for i in 0..3 {
        s.write_all(format!("GET /round/{i} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let (head, body) = read_response(&mut s).await;
        assert!(head.starts_with("http/1.1 200"), "{head}");
        assert!(!head.contains("connection: close"), "{head}");
        assert_eq!(echo(&body)["path"], format!("/round/{i}"));
        // At rest now: it parks, and a request wakes it.
        parked(&proxy, 1).await;
    }
    drop(s);
    parked(&proxy, 0).await;
    let (_, metrics) = proxy.admin_get("/metrics").await;
    assert!(
        metrics.contains("vpcguard_connections_parked 0"),
        "{metrics}"
    );

    let proxy = tls_proxy(&up, "").await;
    let client = proxy.client(false);
    for i in 0..2 {
        let r = client
            .get(format!("{}/tls/{i}", proxy.base()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(echo(&r.text().await.unwrap())["path"], format!("/tls/{i}"));
        parked(&proxy, 1).await;
    }
    assert_eq!(proxy.app.shared.metrics.connections_total.get(), 1);
}

/// Bytes of a request head that came before the connection parked are not lost: the request
/// completes when the rest arrives.
#[tokio::test]
async fn a_head_begun_before_parking_completes_after() {
    let up = Upstream::start().await;
    let proxy = TestProxy::start(&config_plain(up.addr, STATIC_TENANT), OPEN_POLICY, false).await;
    let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
    s.write_all(b"GET /first HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let (head, _) = read_response(&mut s).await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    s.write_all(b"GET /second HTTP/1.1\r\nHo").await.unwrap();
    pause_past_park().await;
    s.write_all(b"st: a\r\n\r\n").await.unwrap();
    let (head, body) = read_response(&mut s).await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(!head.contains("connection: close"), "{head}");
    assert_eq!(echo(&body)["path"], "/second");
}

/// A new connection that waits before its first request keeps alive: its first response does
/// not say `Connection: close`, and it serves a second one. Over TLS with ALPN http/1.1, where
/// hyper's connection exists from the handshake on (a plain connection is handed to hyper only
/// once its first bytes show which HTTP it speaks).
#[tokio::test]
async fn a_connection_silent_before_its_first_request_keeps_alive() {
    let up = Upstream::start().await;
    let proxy = tls_proxy(&up, "").await;
    let ca = rustls_pki_types::CertificateDer::from_pem_slice(
        proxy.pki.as_ref().unwrap().ca_pem.as_bytes(),
    )
    .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca).unwrap();
    let mut cfg = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(cfg));
    let tcp = TcpStream::connect(proxy.addr()).await.unwrap();
    let mut s = within(10, connector.connect("localhost".try_into().unwrap(), tcp))
        .await
        .unwrap();
    assert_eq!(s.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    pause_past_park().await;
    for path in ["/a", "/b"] {
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let (head, body) = read_response(&mut s).await;
        assert!(head.starts_with("http/1.1 200"), "{head}");
        assert!(!head.contains("connection: close"), "{head}");
        assert_eq!(echo(&body)["path"], path);
    }
}

/// The drain closes a parked connection at once (it has nothing in flight): shutdown does not
/// wait out `shutdown_grace` for it, and the client sees the close.
#[tokio::test]
async fn shutdown_closes_a_parked_connection_at_once() {
    let (_up, proxy, mut s) = a_parked_connection().await;
    let metrics = proxy.app.shared.metrics.clone();
    proxy.app.shutdown();
    assert!(within(5, closed_by_peer(&mut s)).await);
    within(5, proxy.app.wait()).await;
    assert_eq!(metrics.connections_parked.get(), 0);
}

/// A connection that parked can still be upgraded: the hyper connection built when the client
/// sends again takes the `Upgrade` request, and the tunnel keeps the connection counted until it
/// ends.
#[tokio::test]
async fn a_parked_connection_can_be_upgraded() {
    let (_up, proxy, mut s) = a_parked_connection().await;
    websocket_upgrade_on(&mut s).await;
    let metrics = &proxy.app.shared.metrics;
    assert_eq!(metrics.tunnels_active.get(), 1);
    assert_eq!(metrics.connections_active.get(), 1);
    assert_eq!(metrics.connections_parked.get(), 0);
    drop(s);
    within(5, async {
        while metrics.tunnels_active.get() != 0 || metrics.connections_active.get() != 0 {
            #[allow(clippy::disallowed_methods)] // bounded polling of gauges
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}
