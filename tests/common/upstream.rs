//! A real upstream for integration tests: a hyper server (HTTP/1.1 + h2c) on 127.0.0.1:0 whose
//! behaviour is chosen by path:
//!
//! - `/hold` — tells the test it arrived (`held` channel), answers 200 "released" once
//!   [`Upstream::release`] is called (for shutdown and timeout tests; no sleeps).
//! - `/download/N` — streams N zero bytes in 64 KiB chunks.
//! - `/trailers` — body "hello" followed by trailers `grpc-status: 0`.
//! - `/ws` — answers `Upgrade: websocket` with 101 and echoes raw bytes afterwards.
//! - anything else — 200 JSON describing the request (method, path, version, headers, body bytes
//!   counted while streaming, never stored).
#![allow(clippy::unwrap_used, dead_code)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc};

type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

/// A running upstream.
pub struct Upstream {
    pub addr: SocketAddr,
    release: Arc<Notify>,
    pub held: mpsc::UnboundedReceiver<()>,
}

impl Upstream {
    /// Start on 127.0.0.1:0.
    pub async fn start() -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let release = Arc::new(Notify::new());
        let (tx, held) = mpsc::unbounded_channel();
        let rel = release.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let rel = rel.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    let svc =
                        hyper::service::service_fn(move |req| handle(req, rel.clone(), tx.clone()));
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Upstream {
            addr,
            release,
            held,
        }
    }

    /// Start on 127.0.0.1:0 behind TLS with `cert_pem`/`key_pem`, offering `alpn` (empty: no
    /// ALPN, so clients speak HTTP/1.1); the second value counts accepted TLS connections.
    pub async fn start_tls(
        cert_pem: &str,
        key_pem: &str,
        alpn: &[&[u8]],
    ) -> (Upstream, Arc<std::sync::atomic::AtomicUsize>) {
        use rustls_pki_types::pem::PemObject;
        let certs = rustls_pki_types::CertificateDer::pem_slice_iter(cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
        let mut cfg = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let release = Arc::new(Notify::new());
        let (tx, held) = mpsc::unbounded_channel();
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (rel, count) = (release.clone(), accepted.clone());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (rel, tx, acceptor) = (rel.clone(), tx.clone(), acceptor.clone());
                let count = count.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(stream).await else {
                        return;
                    };
                    count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let svc =
                        hyper::service::service_fn(move |req| handle(req, rel.clone(), tx.clone()));
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection_with_upgrades(TokioIo::new(tls), svc)
                        .await;
                });
            }
        });
        (
            Upstream {
                addr,
                release,
                held,
            },
            accepted,
        )
    }

    /// Let every held request (and the next one) answer.
    pub fn release(&self) {
        self.release.notify_waiters();
        self.release.notify_one();
    }
}

fn full(s: impl Into<Bytes>) -> Body {
    http_body_util::Full::new(s.into()).boxed()
}

async fn handle(
    mut req: Request<Incoming>,
    release: Arc<Notify>,
    held: mpsc::UnboundedSender<()>,
) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_owned();
    if path == "/hold" {
        let notified = release.notified();
        let _ = held.send(());
        notified.await;
        return Ok(Response::new(full("released")));
    }
    if let Some(n) = path.strip_prefix("/download/") {
        let total: u64 = n.parse().unwrap();
        let stream = futures_util::stream::unfold(total, |left| async move {
            if left == 0 {
                return None;
            }
            let n = left.min(64 * 1024);
            let chunk = Bytes::from(vec![0u8; n as usize]);
            Some((Ok::<_, Infallible>(Frame::data(chunk)), left - n))
        });
        return Ok(Response::new(StreamBody::new(stream).boxed()));
    }
    if path == "/trailers" {
        let mut trailers = http::HeaderMap::new();
        trailers.insert("grpc-status", "0".parse().unwrap());
        let frames = vec![
            Ok::<_, Infallible>(Frame::data(Bytes::from_static(b"hello"))),
            Ok(Frame::trailers(trailers)),
        ];
        let mut resp = Response::new(StreamBody::new(futures_util::stream::iter(frames)).boxed());
        resp.headers_mut()
            .insert("content-type", "application/grpc".parse().unwrap());
        return Ok(resp);
    }
    if path == "/ws" {
        let on_upgrade = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            let Ok(up) = on_upgrade.await else { return };
            let mut io = TokioIo::new(up);
            let mut buf = [0u8; 1024];
            loop {
                match io.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        if io.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                }
            }
        });
        let mut resp = Response::new(full(""));
        *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        resp.headers_mut()
            .insert("connection", "upgrade".parse().unwrap());
        resp.headers_mut()
            .insert("upgrade", "websocket".parse().unwrap());
        return Ok(resp);
    }
    // Echo: count the body while streaming it away.
    let (parts, mut body) = req.into_parts();
    let mut body_bytes: u64 = 0;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => {
                if let Some(d) = f.data_ref() {
                    body_bytes += d.len() as u64;
                }
            }
            Err(_) => break,
        }
    }
    let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in &parts.headers {
        headers
            .entry(k.as_str().to_owned())
            .or_default()
            .push(v.to_str().unwrap_or("<binary>").to_owned());
    }
    let body = serde_json::json!({
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "query": parts.uri.query(),
        "authority": parts.uri.authority().map(|a| a.as_str()),
        "version": format!("{:?}", parts.version),
        "headers": headers,
        "body_bytes": body_bytes,
    });
    let mut resp = Response::new(full(body.to_string()));
    resp.headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    // Hop-by-hop headers the proxy must strip on the way back.
    resp.headers_mut()
        .insert("connection", "x-upstream-private".parse().unwrap());
    resp.headers_mut()
        .insert("x-upstream-private", "secret".parse().unwrap());
    resp.headers_mut()
        .insert("keep-alive", "timeout=5".parse().unwrap());
    Ok(resp)
}

/// A raw TCP "upstream" that answers any request with bytes that are not HTTP.
pub async fn garbage() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(b"SSH-2.0-OpenSSH_9.0 not http at all\r\n\r\n")
                    .await;
                let _ = s.shutdown().await;
            });
        }
    });
    addr
}

/// An address where nothing listens (bound, then closed).
pub async fn refused() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    addr
}
