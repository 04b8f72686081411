//! The per-connection pipeline, and the only place that sequences its stages:
//!
//! `accept → PROXY header (trusted peers only) → TLS handshake → HTTP/1.1 or HTTP/2 → per request:
//! decide → forward | deny` (the per-request part is `http.rs`).
//!
//! Every wait on the peer has a deadline: `proxy_header_timeout`, `tls_handshake_timeout`, then
//! `header_read_timeout` / `keepalive_timeout` (`idle.rs`). A connection that fails a stage is closed
//! and counted in `connection_rejects_total{reason}`.

use std::future::{Future, poll_fn};
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;

use super::drain::{Signal, Watcher};
use super::http::{ConnInfo, handle};
use super::idle::{Activity, IdleTimeoutIo};
use super::rewind::Rewind;
use super::sniff::{Http, sniff};
use super::streams::{H2Conn, Streams};
use super::tunnel::{ConnSlot, SlotCell};
use crate::config::model::{Limits, ProxyProtocolMode};
use crate::identity::client_ip::ClientIpSource;
use crate::metrics::RejectReason;
use crate::proxy_protocol::{self, Command, Detect, Parsed, ProxyHeader};
use crate::state::Shared;

/// HTTP/2 response bytes buffered per stream beyond what the socket took (hyper's default is
/// 400 KiB). With the stream cap it bounds what a client that opens every stream and reads nothing
/// costs (docs/contract.md §6): about `max_concurrent_streams` × (this + one upstream chunk,
/// `upstream`'s 16 KiB read buffer); measured 8 MiB for 100 streams (was 260+ MiB for 256).
const H2_SEND_BUF: usize = 16 * 1024;
/// Request bytes a client may send on one stream before the proxy has passed them on (hyper's
/// default, stated): the flow-control window we grant per stream.
const H2_STREAM_WINDOW: u32 = 1024 * 1024;
/// Request bytes a client may send over all its streams before the proxy has passed them on: the
/// bound on buffered uploads per connection.
const H2_CONN_WINDOW: u32 = 1024 * 1024;
/// Streams a client may open and reset before they are accepted (h2's default, stated; the rapid
/// reset attack, CVE-2023-44487).
const H2_PENDING_ACCEPT_RESETS: usize = 20;
/// Streams the proxy may reset for the client's protocol errors before it sends GOAWAY (h2's
/// default is 1,024; MadeYouReset, CVE-2025-8671).
const H2_LOCAL_ERROR_RESETS: usize = 256;

/// Serve one accepted connection to completion. `slot` keeps it counted (`max_connections`,
/// `connections_active`) until it ends, or, if it is upgraded, until its tunnel ends.
pub async fn serve(
    shared: Arc<Shared>,
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
    watcher: Watcher,
    slot: ConnSlot,
) {
    shared.metrics.connections_total.inc();
    let _ = stream.set_nodelay(true);
    // Stages 1 and 2 in a block of their own: what they leave behind (the parsed PROXY header,
    // the config snapshot, the stream they borrowed) then ends with the block instead of being
    // kept in the connection's task for as long as the connection is open (a task is sized for
    // its largest state; `-Zprint-type-sizes`, BENCHMARKS.md "A parked connection").
    let (io, info, activity, limits) = {
        let mut stream = stream;
        let current = shared.current();
        let cfg = &current.config;

        // 1. PROXY header, read before TLS so that its bytes never reach rustls. Boxed for the
        //    same reason: its future (a timer and a buffer) is needed only while it reads.
        let peer_ip = peer.ip().to_canonical();
        let may_send = cfg.listen.proxy_protocol_from.contains(peer_ip);
        let pp = match cfg.listen.proxy_protocol {
            ProxyProtocolMode::Off => Ok((Bytes::new(), None)),
            mode => {
                Box::pin(read_proxy_header(
                    &mut stream,
                    may_send,
                    mode,
                    &cfg.vpcep.tlv,
                    cfg.limits.proxy_header_timeout,
                ))
                .await
            }
        };
        let (leftover, header) = match pp {
            Ok(pp) => pp,
            Err(Rejected::Quiet) => return,
            Err(Rejected::Counted(reason, why)) => {
                shared.metrics.count_reject(reason);
                tracing::info!(%peer, reason = reason.as_str(), why, "connection rejected");
                return;
            }
        };

        // 2. Connection facts: the PROXY source replaces the peer (LOCAL keeps the socket address).
        let (conn_ip, conn_ip_source, endpoint) = match header {
            Some(ProxyHeader {
                command: Command::Proxy,
                source: Some(src),
                endpoint,
                ..
            }) => (
                src.ip().to_canonical(),
                ClientIpSource::ProxyProtocol,
                endpoint,
            ),
            Some(h) => (peer_ip, ClientIpSource::Socket, h.endpoint),
            None => (peer_ip, ClientIpSource::Socket, None),
        };
        let activity = Arc::new(Activity::default());
        let info = Arc::new(ConnInfo {
            peer,
            conn_ip,
            conn_ip_source,
            endpoint,
            tls: tls.is_some(),
            activity: activity.clone(),
            slot: SlotCell::new(slot),
        });
        let limits = cfg.limits.clone();
        (Rewind::new(leftover, stream), info, activity, limits)
    };
    // Whatever ends the connection frees its slot, unless a tunnel took it over.
    let _free = FreeSlot(info.clone());

    // 3. TLS, under its deadline. Each branch is boxed, so that the connection's task, which
    //    stays allocated for as long as the connection is open, holds only the branch it takes:
    //    inline, a plain connection carried the TLS branch's ~4.4 KB and a TLS one the plain
    //    branch's share (`-Zprint-type-sizes`, DHAT; BENCHMARKS.md "Memory per idle keep-alive
    //    connection").
    match tls {
        None => {
            Box::pin(serve_http(
                shared, info, io, None, &limits, activity, watcher,
            ))
            .await
        }
        Some(acceptor) => {
            Box::pin(serve_tls(
                shared, info, io, acceptor, &limits, activity, watcher,
            ))
            .await
        }
    }
}

/// Stage 3 for a TLS listener: the handshake under `tls_handshake_timeout`, then HTTP.
async fn serve_tls(
    shared: Arc<Shared>,
    info: Arc<ConnInfo>,
    io: Rewind<TcpStream>,
    acceptor: TlsAcceptor,
    limits: &Limits,
    activity: Arc<Activity>,
    watcher: Watcher,
) {
    let peer = info.peer;
    // Boxed: the TLS stream (~1.3 KB, rustls' connection state) is then stored once, on the
    // heap, instead of in the handshake's result, here, and in each stage it is moved through,
    // for as long as the connection is open (`-Zprint-type-sizes`: six copies unboxed). The
    // result is matched as a temporary, which ends with this statement; a named one stayed.
    //
    // The handshake's future is boxed too: inline, it (rustls' state again, mid-handshake) would
    // size the connection's task for as long as the connection is open.
    let handshake = Box::pin(acceptor.accept(io));
    let tls_io = match tokio::time::timeout(limits.tls_handshake_timeout, handshake).await {
        Ok(Ok(tls_io)) => Box::new(tls_io),
        Ok(Err(e)) => {
            shared.metrics.count_reject(RejectReason::Tls);
            tracing::debug!(%peer, error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => {
            shared.metrics.count_reject(RejectReason::Timeout);
            tracing::info!(%peer, "TLS handshake timed out");
            return;
        }
    };
    // ALPN decides (RFC 9113 §3.2); without it, the first bytes do, as on plain TCP.
    let http = match tls_io.get_ref().1.alpn_protocol() {
        Some(b"h2") => Some(Http::H2),
        Some(b"http/1.1") => Some(Http::H1),
        _ => None,
    };
    serve_http(shared, info, tls_io, http, limits, activity, watcher).await
}

/// Frees the connection's slot when `serve` returns.
struct FreeSlot(Arc<ConnInfo>);

impl Drop for FreeSlot {
    fn drop(&mut self) {
        drop(self.0.slot.take());
    }
}

/// Stage 4, HTTP: hyper's HTTP/1.1 connection (with upgrades) or HTTP/2 connection, as ALPN
/// (`http`) or else the first bytes say, watched by the drain.
///
/// # Performance
/// hyper's own builders rather than hyper-util's auto builder: the auto builder reads the first
/// 24 bytes and hands them to hyper as a read of their own, which made hyper double its 8 KiB
/// HTTP/1.1 read buffer for the whole life of every connection; here ALPN skips the sniff, and
/// the sniffed bytes are replayed together with what the socket has next (`rewind.rs`).
async fn serve_http<IO>(
    shared: Arc<Shared>,
    info: Arc<ConnInfo>,
    io: IO,
    http: Option<Http>,
    limits: &Limits,
    activity: Arc<Activity>,
    mut watcher: Watcher,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let peer = info.peer;
    // In a block: the sniff borrows the stream, which would otherwise keep a second copy of it
    // in this future for the connection's life.
    let (http, io) = {
        let mut io = IdleTimeoutIo::new(
            io,
            activity.clone(),
            limits.header_read_timeout,
            limits.keepalive_timeout,
        )
        .with_write_stall(
            limits.stream_idle_timeout,
            shared.metrics.stream_timeouts.clone(),
        );
        let (http, first) = match http {
            Some(http) => (http, Bytes::new()),
            // Under `header_read_timeout`, like every read before a request (idle.rs).
            None => match watcher.unless_draining(sniff(&mut io)).await {
                Some(Ok(found)) => found,
                Some(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "connection ended before its first request");
                    return;
                }
                None => return,
            },
        };
        (http, Rewind::new(first, io))
    };
    if http == Http::H1 {
        return serve_h1(shared, info, io, limits, &activity, watcher).await;
    }
    let svc = hyper::service::service_fn(move |req| handle(shared.clone(), info.clone(), req));
    // Its streams run in this task (streams.rs). Boxed inside: inline, hyper's HTTP/2 connection
    // would size this future, and so every HTTP/1.1 connection's task too, parked ones included
    // (BENCHMARKS.md "A parked connection").
    let streams = Streams::default();
    let conn = h2(limits, streams.clone()).serve_connection(TokioIo::new(io), svc);
    let mut conn = pin!(H2Conn::new(conn, streams));
    if let Err(e) = watcher
        .watch(conn.as_mut(), |c| {
            if let Some(c) = c.conn() {
                c.graceful_shutdown();
            }
        })
        .await
    {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}

/// How long an HTTP/1.1 connection stays at rest (no request in flight, nothing read or written)
/// before it parks.
const PARK_AFTER: Duration = Duration::from_secs(1);

/// HTTP/1.1: hyper's connection (with upgrades), watched by the drain, and parked when at rest:
/// after [`PARK_AFTER`] with no request in flight and no read or write, hyper's connection is
/// taken apart without closing the socket, which frees its 8 KiB read and 8 KiB write buffers,
/// and a new one is built when the client sends again. nginx frees a keep-alive connection's
/// buffers the same way; HAProxy returns them to a pool. `keepalive_timeout` runs on (idle.rs).
///
/// A connection parks only where hyper stands between two exchanges: asked to shut down
/// gracefully, it must finish at once without reading or writing anything (so no exchange was
/// cut short, and no response said `Connection: close`); the bytes it had read but not parsed
/// are replayed to the next connection. If it does not finish at once, it is not parked: keep-
/// alive is off then, and it closes after its exchange.
async fn serve_h1<IO>(
    shared: Arc<Shared>,
    info: Arc<ConnInfo>,
    mut io: Rewind<IdleTimeoutIo<IO>>,
    limits: &Limits,
    activity: &Activity,
    watcher: Watcher,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let peer = info.peer;
    // The drain, looked at on every turn the cheap way (drain.rs), kept for the whole connection.
    let (mut rx, begun) = watcher.split();
    let mut drain = Signal::new(&begun);
    let mut changed = pin!(rx.changed());
    loop {
        let svc = {
            let (shared, info) = (shared.clone(), info.clone());
            hyper::service::service_fn(move |req| handle(shared.clone(), info.clone(), req))
        };
        // Boxed, so that a parked connection's task, which is sized for its largest state,
        // holds a pointer while hyper runs and no room for hyper's connection while parked.
        let mut conn = Box::new(
            h1(limits)
                .serve_connection(TokioIo::new(io), svc)
                .with_upgrades(),
        );
        // In a block of its own, so that the tick is not kept in the parked task.
        {
            // Looked at every `PARK_AFTER`: at rest, with no IO since the last look, it parks.
            // Boxed: the future keeps room for whatever is live in more than one of its states
            // in all of them, so an inline timer (112 bytes) would stay in the parked task.
            #[allow(clippy::disallowed_methods)] // a deadline, not synchronisation
            let mut tick = Box::pin(tokio::time::sleep(PARK_AFTER));
            let mut tick_registered = false;
            let mut seen = activity.io_calls();
            // Only a connection that has had an exchange is asked: hyper counts a new one as busy,
            // and one that did not finish at once when asked would lose keep-alive.
            let born = activity.rests();
            let mut draining = false;
            loop {
                // One turn: hyper's connection on every wake-up; the drain and the tick, each
                // registered with one poll, after that by a flag (`Sleep::is_elapsed`, `Begun`): a
                // poll of each on every wake-up cost ~470 instructions per request (callgrind).
                let turn = poll_fn(|cx| {
                    if let Poll::Ready(ended) = std::pin::Pin::new(&mut *conn).poll(cx) {
                        return Poll::Ready(Turn::Ended(ended));
                    }
                    if draining {
                        return Poll::Pending;
                    }
                    if drain.poll_begun(changed.as_mut(), cx).is_ready() {
                        return Poll::Ready(Turn::Drain);
                    }
                    if tick_registered {
                        if tick.is_elapsed() {
                            return Poll::Ready(Turn::Tick);
                        }
                    } else {
                        tick_registered = true;
                        if tick.as_mut().poll(cx).is_ready() {
                            return Poll::Ready(Turn::Tick);
                        }
                    }
                    Poll::Pending
                })
                .await;
                match turn {
                    Turn::Ended(ended) => {
                        if let Err(e) = ended {
                            tracing::debug!(%peer, error = %e, "connection ended with an error");
                        }
                        return;
                    }
                    Turn::Drain => {
                        draining = true;
                        std::pin::Pin::new(&mut *conn).graceful_shutdown();
                    }
                    Turn::Tick => {
                        let calls = activity.io_calls();
                        if calls != seen || !activity.at_rest() || activity.rests() == born {
                            seen = calls;
                            tick.as_mut().reset(after(PARK_AFTER));
                            tick_registered = false;
                            continue;
                        }
                        activity.set_parking(true);
                        std::pin::Pin::new(&mut *conn).graceful_shutdown();
                        let polled =
                            poll_fn(|cx| Poll::Ready(std::pin::Pin::new(&mut *conn).poll(cx)))
                                .await;
                        activity.set_parking(false);
                        match polled {
                            Poll::Ready(Ok(())) if activity.io_calls() == calls => break,
                            Poll::Ready(ended) => {
                                if let Err(e) = ended {
                                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                                }
                                return;
                            }
                            // Between exchanges after all: keep-alive is off now, it finishes and closes.
                            Poll::Pending => draining = true,
                        }
                    }
                }
            }
        }
        // Parked: hyper's buffers go with its connection. In a block, so that hyper's parts end
        // here and are not kept in the parked task.
        let (mut prefix, mut inner) = {
            // The box moves in, so that it is freed here: a box moved out of is freed only
            // where its variable ends (massif: 832 bytes per parked connection otherwise).
            let conn = conn;
            let Some(parts) = (*conn).into_parts() else {
                return;
            };
            let (rest, inner) = parts.io.into_inner().into_parts();
            // What hyper read and did not parse comes before what was still to be replayed.
            let mut prefix = Vec::with_capacity(parts.read_buf.len() + rest.len());
            prefix.extend_from_slice(&parts.read_buf);
            prefix.extend_from_slice(&rest);
            (prefix, inner)
        };
        if prefix.is_empty() {
            // Wait for the next request's first byte, under the keep-alive deadline (idle.rs);
            // hyper reads the rest. One byte: the buffer is part of the parked task, and a
            // larger one would save only a read per wake-up of a connection idle 1 s or more.
            // A drain closes a parked connection at once.
            let mut buf = [0u8; 1];
            let parked = Parked::new(&shared.metrics.connections_parked);
            let read = {
                let mut read = pin!(inner.read(&mut buf));
                poll_fn(|cx| {
                    if drain.poll_begun(changed.as_mut(), cx).is_ready() {
                        return Poll::Ready(None);
                    }
                    read.as_mut().poll(cx).map(Some)
                })
                .await
            };
            drop(parked);
            match read {
                None | Some(Ok(0)) => return,
                Some(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "connection ended while parked");
                    return;
                }
                Some(Ok(n)) => prefix.extend_from_slice(buf.get(..n).unwrap_or_default()),
            }
        }
        io = Rewind::new(Bytes::from(prefix), inner);
    }
}

/// What ended a turn of [`serve_h1`]'s loop.
enum Turn {
    Ended(hyper::Result<()>),
    Drain,
    Tick,
}

/// Holds `connections_parked` one higher while alive.
struct Parked<'a>(&'a prometheus::IntGauge);

impl<'a> Parked<'a> {
    fn new(gauge: &'a prometheus::IntGauge) -> Self {
        gauge.inc();
        Self(gauge)
    }
}

impl Drop for Parked<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// `d` from now (a day from now if that is not representable, which `PARK_AFTER` always is).
fn after(d: Duration) -> tokio::time::Instant {
    let now = tokio::time::Instant::now();
    now.checked_add(d)
        .or_else(|| now.checked_add(Duration::from_secs(86_400)))
        .unwrap_or(now)
}

/// hyper's HTTP/1.1 server settings.
fn h1(limits: &Limits) -> http1::Builder {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        // Deadlines are enforced by IdleTimeoutIo, which tells idle from slow (idle.rs).
        .header_read_timeout(None)
        .max_buf_size(
            usize::try_from(limits.max_header_bytes)
                .unwrap_or(usize::MAX)
                .max(8192),
        );
    builder
}

/// hyper's HTTP/2 server settings.
fn h2(limits: &Limits, streams: Streams) -> http2::Builder<Streams> {
    let mut builder = http2::Builder::new(streams);
    builder
        .timer(TokioTimer::new())
        .max_header_list_size(limits.max_header_bytes)
        .max_concurrent_streams(limits.max_concurrent_streams)
        .max_send_buf_size(H2_SEND_BUF)
        .initial_stream_window_size(H2_STREAM_WINDOW)
        .initial_connection_window_size(H2_CONN_WINDOW)
        .max_pending_accept_reset_streams(H2_PENDING_ACCEPT_RESETS)
        .max_local_error_reset_streams(H2_LOCAL_ERROR_RESETS);
    builder
}

/// Why a connection is closed before TLS.
enum Rejected {
    /// The peer went away before sending anything useful: not an attack, not counted.
    Quiet,
    Counted(RejectReason, &'static str),
}

/// Read the PROXY header, if this peer may send one.
///
/// I/O contract: reads from `stream` into a buffer until the header is complete (or, for a peer
/// that sends none, until the first bytes show it is not one); returns the bytes read past the
/// header, which the caller must replay to the next stage, and the parsed header. Nothing is read
/// when the listener does not take PROXY headers.
async fn read_proxy_header(
    stream: &mut TcpStream,
    may_send: bool,
    mode: ProxyProtocolMode,
    rules: &[proxy_protocol::TlvRule],
    deadline: std::time::Duration,
) -> Result<(Bytes, Option<ProxyHeader>), Rejected> {
    if mode == ProxyProtocolMode::Off {
        return Ok((Bytes::new(), None));
    }
    let work = async {
        let mut buf = BytesMut::with_capacity(256);
        loop {
            match step(&buf, may_send, mode, rules)? {
                Some(Step::Done(len, header)) => {
                    let mut buf = buf;
                    let rest = buf.split_off(len);
                    return Ok((rest.freeze(), header));
                }
                Some(Step::NotPresent) => return Ok((buf.freeze(), None)),
                None => {}
            }
            match stream.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return Err(Rejected::Quiet),
                Ok(_) => {}
            }
        }
    };
    match tokio::time::timeout(deadline, work).await {
        Ok(r) => r,
        Err(_) => Err(Rejected::Counted(
            RejectReason::Timeout,
            "proxy_header_timeout",
        )),
    }
}

enum Step {
    Done(usize, Option<ProxyHeader>),
    NotPresent,
}

/// One parse attempt over what has been read so far; `None` = read more.
fn step(
    buf: &[u8],
    may_send: bool,
    mode: ProxyProtocolMode,
    rules: &[proxy_protocol::TlvRule],
) -> Result<Option<Step>, Rejected> {
    let reject = |why| Err(Rejected::Counted(RejectReason::ProxyHeader, why));
    match proxy_protocol::detect(buf) {
        Detect::NeedMore => Ok(None),
        // Per the PROXY spec §2 the receiver must not guess: a peer outside proxy_protocol_from
        // that sends a header is refused, never believed.
        Detect::V1 | Detect::V2 if !may_send => reject("proxy header from untrusted peer"),
        Detect::NotProxy if may_send && mode == ProxyProtocolMode::Required => {
            reject("proxy header required")
        }
        Detect::NotProxy => Ok(Some(Step::NotPresent)),
        Detect::V1 | Detect::V2 => match proxy_protocol::parse(buf, rules) {
            Ok(Parsed::Incomplete) => Ok(None),
            Ok(Parsed::Complete { header, len }) => Ok(Some(Step::Done(len, Some(header)))),
            Err(e) => reject(e.reason()),
        },
    }
}
