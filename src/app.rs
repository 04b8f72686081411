//! Composition root: takes listeners that are *already bound* (so tests read their ports before
//! anything runs), builds the shared state, spawns the data-plane and admin tasks, and returns an
//! [`App`] handle that reports the addresses and drives shutdown (docs/contract.md §10).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpSocket};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::cert_store::{CertStore, server_config};
use crate::config::load::Loaded;
use crate::metrics::Metrics;
use crate::reload::Writer;
use crate::state::Shared;
use crate::watch::WatchMode;

/// The two listeners, bound by the caller.
#[derive(Debug)]
pub struct Listeners {
    pub data: TcpListener,
    pub admin: TcpListener,
}

/// Bind the addresses a config names; the data listener with `listen.backlog`.
pub async fn bind(loaded: &Loaded) -> std::io::Result<Listeners> {
    let listen = &loaded.config.listen;
    Ok(Listeners {
        data: bind_with_backlog(listen.address, listen.backlog)?,
        admin: TcpListener::bind(loaded.config.admin.address).await?,
    })
}

/// `addr` bound and listening with `backlog` (the kernel caps it at `net.core.somaxconn`), with
/// `SO_REUSEADDR` as `TcpListener::bind` sets it, so a restart does not wait out `TIME_WAIT`.
fn bind_with_backlog(addr: SocketAddr, backlog: u32) -> std::io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}

/// A running proxy.
#[derive(Debug)]
pub struct App {
    pub data_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub shared: Arc<Shared>,
    /// The one writer of published state: reloads (and admin mutations) go through it.
    pub writer: Writer,
    stop: CancellationToken,
    data: JoinHandle<()>,
    admin: JoinHandle<()>,
}

/// Why the app could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot read listener address: {0}")]
    Addr(#[from] std::io::Error),
    #[error("cannot register metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

impl App {
    /// Start serving on `listeners` with the first generation, loaded from `config_path`, which is
    /// watched per `VPCGUARD_WATCH` (see [`WatchMode::from_env`]).
    pub fn start(
        loaded: Loaded,
        listeners: Listeners,
        config_path: PathBuf,
    ) -> Result<App, StartError> {
        Self::start_with(loaded, listeners, config_path, WatchMode::from_env())
    }

    /// [`App::start`] with an explicit watch mode.
    pub fn start_with(
        loaded: Loaded,
        listeners: Listeners,
        config_path: PathBuf,
        watch: WatchMode,
    ) -> Result<App, StartError> {
        let data_addr = listeners.data.local_addr()?;
        let admin_addr = listeners.admin.local_addr()?;
        let registry = prometheus::Registry::new();
        let metrics = Metrics::register(&registry)?;
        if loaded.config.policy.store != crate::config::model::Store::File {
            metrics.store.register(&registry)?;
        }
        let config = loaded.config.clone();
        let (certs, acceptor) = match (&config.listen.tls, &loaded.tls) {
            (Some(files), Some(key)) => {
                let store = Arc::new(CertStore::new(key.clone()));
                let cfg = server_config(store.clone(), files.min_version);
                (Some(store), Some(TlsAcceptor::from(cfg)))
            }
            _ => (None, None),
        };
        let shared = Shared::new(loaded, certs, metrics, registry);
        let writer = Writer::spawn(shared.clone(), config_path.clone());
        crate::watch::spawn(shared.clone(), writer.clone(), config_path, watch);
        let stop = CancellationToken::new();
        let data = tokio::spawn(crate::proxy::listener::run(
            listeners.data,
            shared.clone(),
            acceptor,
            stop.clone(),
            config.limits.max_connections,
            config.limits.shutdown_grace,
        ));
        let admin_stop = CancellationToken::new();
        let admin = tokio::spawn(crate::admin::serve(
            listeners.admin,
            shared.clone(),
            writer.clone(),
            admin_stop.clone(),
        ));
        // The admin listener outlives the data plane's drain so /readyz can say 503 meanwhile.
        let admin_stop_on_exit = admin_stop.clone();
        let data = tokio::spawn(async move {
            let _ = data.await;
            admin_stop_on_exit.cancel();
        });
        Ok(App {
            data_addr,
            admin_addr,
            shared,
            writer,
            stop,
            data,
            admin,
        })
    }

    /// Begin a graceful shutdown: readiness fails, the data listener closes, in-flight requests
    /// drain for up to `limits.shutdown_grace`.
    pub fn shutdown(&self) {
        self.shared.start_draining();
        self.stop.cancel();
    }

    /// Wait until the data plane has drained and the admin listener closed.
    pub async fn wait(self) {
        let _ = self.data.await;
        let _ = self.admin.await;
    }
}
