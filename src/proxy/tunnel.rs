//! Upgraded connections (WebSocket): after a 101, bytes are copied both ways between the client
//! and the upstream until either side closes (docs/contract.md §6). A tunnel
//!
//! - **counts as a connection**: it takes over its client connection's [`ConnSlot`] (the
//!   `limits.max_connections` permit and the `connections_active` count), which would otherwise
//!   be freed when hyper hands the connection over, and counts in `tunnels_active`;
//! - is under **`limits.stream_idle_timeout`**: closed when no byte moves either way for that long;
//! - is **re-judged on every new generation**: the facts the admitting decision was made on are
//!   kept ([`Admission`]) and decided again against the new rules; a denial (in `enforce` mode)
//!   closes it;
//! - is part of the **drain** ([`Tunnels`]): shutdown waits for tunnels like for requests, and
//!   closes those still open at the end of `limits.shutdown_grace`.
//!
//! Does network I/O (the copy); the decision is `verdict` + `policy::decide`, as for a request.

use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use http::{HeaderMap, Method};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use prometheus::IntGauge;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, watch};
use tokio_util::sync::CancellationToken;

use super::idle::InFlight;
use crate::body::StreamClock;
use crate::config::model::Mode;
use crate::policy::{self, Outcome, VpcepRef};
use crate::state::{Generation, Shared};
use crate::verdict::{self, Described};

// === impl ConnSlot ===

/// What keeps one client connection counted: its `limits.max_connections` permit and its
/// `connections_active` count, with the state and drain it belongs to. Held by the connection
/// task, and taken over by a tunnel when the connection is upgraded.
#[derive(Debug)]
pub struct ConnSlot {
    _permit: OwnedSemaphorePermit,
    active: IntGauge,
    shared: Arc<Shared>,
    tunnels: Tunnels,
}

impl ConnSlot {
    /// Count a newly accepted connection (`connections_active` goes up until the slot drops).
    pub fn new(permit: OwnedSemaphorePermit, shared: Arc<Shared>, tunnels: Tunnels) -> Self {
        let active = shared.metrics.connections_active.clone();
        active.inc();
        Self {
            _permit: permit,
            active,
            shared,
            tunnels,
        }
    }
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        self.active.dec();
    }
}

/// A connection's slot, until the connection ends or a tunnel takes it.
#[derive(Debug)]
pub struct SlotCell(Mutex<Option<ConnSlot>>);

impl SlotCell {
    /// Hold `slot`.
    pub fn new(slot: ConnSlot) -> Self {
        Self(Mutex::new(Some(slot)))
    }

    /// The slot, once (`None` after that).
    pub fn take(&self) -> Option<ConnSlot> {
        self.0.lock().ok().and_then(|mut s| s.take())
    }
}

// === impl Tunnels ===

/// The listener's register of open tunnels: how many are open (for the drain), and the signal that
/// closes them at the end of the shutdown grace. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Tunnels(Arc<Register>);

#[derive(Debug)]
struct Register {
    open: watch::Sender<usize>,
    close: CancellationToken,
    gauge: IntGauge,
}

impl Tunnels {
    /// A register counting open tunnels in `gauge` (`tunnels_active`).
    pub fn new(gauge: IntGauge) -> Self {
        Self(Arc::new(Register {
            open: watch::Sender::new(0),
            close: CancellationToken::new(),
            gauge,
        }))
    }

    fn enter(&self) -> Open {
        self.0.open.send_modify(|n| *n += 1);
        self.0.gauge.inc();
        Open(self.clone())
    }

    /// Resolves when no tunnel is open (the caller bounds the wait).
    pub async fn all_closed(&self) {
        let mut rx = self.0.open.subscribe();
        let _ = rx.wait_for(|n| *n == 0).await;
    }

    /// Close every open tunnel, and any opened later (the end of the shutdown grace).
    pub fn close_all(&self) {
        self.0.close.cancel();
    }
}

/// One open tunnel in the register.
struct Open(Tunnels);

impl Drop for Open {
    fn drop(&mut self) {
        let r = &self.0.0;
        r.gauge.dec();
        r.open.send_modify(|n| *n = n.saturating_sub(1));
    }
}

// === impl Admission ===

/// A VPC endpoint as the admitting decision saw it, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnedVpcep {
    Id(String),
    Marker(u64),
}

/// The facts a tunnel was admitted on, owned, so that the decision can be made again against a
/// new generation: the request's method, path (as the routes and tenant rules saw it), client IP,
/// VPC endpoint, and what the tenant rules read (the headers and the host).
#[derive(Debug)]
pub struct Admission {
    /// The generation that admitted it.
    generation: u64,
    method: Method,
    path: String,
    client_ip: IpAddr,
    vpcep: Option<OwnedVpcep>,
    headers: HeaderMap,
    host: Option<String>,
}

impl Admission {
    /// Keep the facts a request was admitted on by `generation`: its method, canonical path,
    /// client IP, endpoint, and what the tenant rules read (its canonical headers and host).
    pub fn new(
        generation: u64,
        method: &Method,
        path: &str,
        client_ip: IpAddr,
        vpcep: Option<VpcepRef<'_>>,
        headers: &HeaderMap,
        host: Option<&str>,
    ) -> Self {
        Self {
            generation,
            method: method.clone(),
            path: path.to_owned(),
            client_ip,
            vpcep: vpcep.map(|v| match v {
                VpcepRef::Id(id) => OwnedVpcep::Id(id.to_owned()),
                VpcepRef::Marker(m) => OwnedVpcep::Marker(m),
            }),
            headers: headers.clone(),
            host: host.map(str::to_owned),
        }
    }

    /// Whether `generation`'s rules still let the request through: allowed, or denied in
    /// `report` mode (which forwards denials). The tenant rules are applied again too (an
    /// unusable claim under the new rules is a denial). An unknown marker is not recorded again.
    pub fn admitted_by(&self, generation: &Generation) -> bool {
        let report = generation.config.policy.mode == Mode::Report;
        let config = &generation.config;
        let Ok(claim) = verdict::claim(config, &self.headers, self.host.as_deref(), &self.path)
        else {
            return report;
        };
        let described = Described {
            method: &self.method,
            path: &self.path,
            client_ip: self.client_ip,
            vpcep: self.vpcep.as_ref().map(|v| match v {
                OwnedVpcep::Id(id) => VpcepRef::Id(id),
                OwnedVpcep::Marker(m) => VpcepRef::Marker(*m),
            }),
            tenant: claim.as_ref(),
        };
        let facts = verdict::facts(config, &described);
        match policy::decide(&generation.policy, &facts).outcome {
            Outcome::Allow => true,
            Outcome::Deny(_) => report,
        }
    }
}

// === the tunnel ===

/// Start the tunnel of an upgraded exchange: wait for both sides to be handed over, then copy
/// until either closes, `idle` passes with nothing moving, a new generation denies it, or the
/// drain closes it. `slot` keeps the client connection counted and `in_flight` keeps its
/// keep-alive deadline off for as long as the tunnel lives.
pub fn spawn(
    client: OnUpgrade,
    upstream: OnUpgrade,
    slot: ConnSlot,
    in_flight: InFlight,
    admission: Admission,
    idle: Duration,
) {
    tokio::spawn(async move {
        let _open = slot.tunnels.enter();
        let why = run(client, upstream, &slot, admission, idle).await;
        tracing::debug!(why, "tunnel closed");
        drop(in_flight);
        drop(slot);
    });
}

/// The tunnel's life; returns why it ended.
async fn run(
    client: OnUpgrade,
    upstream: OnUpgrade,
    slot: &ConnSlot,
    admission: Admission,
    idle: Duration,
) -> &'static str {
    let shared = &slot.shared;
    let closing = slot.tunnels.0.close.clone();
    let mut generations = shared.subscribe();
    if *generations.borrow_and_update() != admission.generation {
        // Published between the decision and now: judge again at once.
        generations.mark_changed();
    }
    let sides = async { tokio::try_join!(client, upstream) };
    let (client, upstream) = tokio::select! {
        sides = tokio::time::timeout(idle, sides) => match sides {
            Ok(Ok(pair)) => pair,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "upgrade failed");
                return "upgrade_failed";
            }
            Err(_) => return "idle",
        },
        _ = closing.cancelled() => return "shutdown",
    };
    let clock = StreamClock::new();
    let mut client = Moving::new(TokioIo::new(client), &clock);
    let mut upstream = Moving::new(TokioIo::new(upstream), &clock);
    let mut copy = std::pin::pin!(tokio::io::copy_bidirectional(&mut client, &mut upstream));
    loop {
        tokio::select! {
            done = &mut copy => {
                if let Err(e) = done {
                    tracing::debug!(error = %e, "tunnel ended with an error");
                }
                return "closed";
            }
            _ = clock.idle(idle) => return "idle",
            _ = closing.cancelled() => return "shutdown",
            changed = generations.changed() => {
                if changed.is_err() {
                    return "shutdown";
                }
                let current = shared.current();
                if !admission.admitted_by(&current) {
                    tracing::info!(
                        generation = current.number,
                        client_ip = %admission.client_ip,
                        "tunnel closed: the new rules deny it"
                    );
                    return "revoked";
                }
            }
        }
    }
}

/// An I/O that touches a [`StreamClock`] whenever bytes move through it.
struct Moving<'c, T> {
    io: T,
    clock: &'c StreamClock,
}

impl<'c, T> Moving<'c, T> {
    fn new(io: T, clock: &'c StreamClock) -> Self {
        Self { io, clock }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Moving<'_, T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.clock.touch();
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Moving<'_, T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = polled
            && n > 0
        {
            self.clock.touch();
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
