//! The state every connection and request reads: one `ArcSwap<Generation>` (config, compiled rules,
//! upstream client, generation), the certificate store, metrics, readiness, and the in-memory record
//! of VPC endpoint connections seen but not yet known (`pendingAcceptance`).
//!
//! Only the writer (`reload`) publishes, and every publication goes through one swap
//! ([`Shared::publish`] for a reloaded config, [`Shared::publish_policy`] for an admin write, both
//! via `swap`) (docs/design.md §2.2); requests `load` the generation once and keep that `Arc` for their
//! whole life, so in-flight requests finish on the rules they began with (docs/contract.md §8).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use tokio::sync::{mpsc, watch};

use crate::cert_store::CertStore;
use crate::config::Config;
use crate::config::load::{Fingerprint, Loaded};
use crate::metrics::Metrics;
use crate::policy::{IdKind, Snapshot};
use crate::upstream::Forwarder;

/// One published generation of everything reloadable.
#[derive(Debug)]
pub struct Generation {
    /// Increases by one with every successful publish.
    pub number: u64,
    pub config: Arc<Config>,
    pub config_sha256: String,
    pub policy: Arc<Snapshot>,
    pub policy_sha256: String,
    pub forwarder: Forwarder,
    /// The files this generation was loaded from (the watcher compares against it).
    pub fingerprint: Fingerprint,
    /// The served certificate was generated in memory (a reload keeps it rather than make another).
    pub tls_self_signed: bool,
}

/// The outcome of the last reload attempt, for `/status`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LastReload {
    /// RFC 3339 UTC.
    pub time: String,
    /// `watch`, `signal`, `admin` or `api`.
    pub trigger: &'static str,
    /// `success`, `unchanged` or `failure`.
    pub result: &'static str,
    /// The generation in force afterwards.
    pub generation: u64,
    /// `file:line:column: message` on failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A marker seen on a service with `approval_required` and no matching connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingSeen {
    pub service_id: String,
    pub marker_id: u64,
    /// The tenant of the request that carried it, recorded as the connection's `domain_id`
    /// (docs/contract.md §4 step 1); `None` when the tenant is unknown.
    pub tenant: Option<String>,
    /// RFC 3339 UTC time of the first request that carried it.
    pub first_seen: String,
}

/// Shared by the accept loop, every connection and the admin listener.
#[derive(Debug)]
pub struct Shared {
    current: ArcSwap<Generation>,
    generation_tx: watch::Sender<u64>,
    /// `None` when the data plane is plain HTTP.
    pub certs: Option<Arc<CertStore>>,
    pub metrics: Metrics,
    pub registry: prometheus::Registry,
    draining: AtomicBool,
    pending: Mutex<BTreeMap<(String, u64), PendingSeen>>,
    last_reload: Mutex<Option<LastReload>>,
    /// Counts reload attempts that ended (published, failed, or asked for explicitly).
    attempts_tx: watch::Sender<u64>,
    /// Newly seen pending markers, to be persisted by the writer.
    pending_tx: mpsc::Sender<PendingSeen>,
    pending_rx: Mutex<Option<mpsc::Receiver<PendingSeen>>>,
    /// False until a policy is in force: with `policy.store: etcd` the first generation has an
    /// empty placeholder policy until etcd (or the cache) answers (docs/contract.md §11).
    policy_ready: AtomicBool,
    /// The policy store's health (`None` for the file store).
    store_status: Mutex<Option<crate::store::StoreStatus>>,
}

/// Pending markers waiting to be written beyond this are retried at their next request.
const PENDING_QUEUE: usize = 1024;

impl Shared {
    /// State for a first successful load (generation 1).
    pub fn new(
        loaded: Loaded,
        certs: Option<Arc<CertStore>>,
        metrics: Metrics,
        registry: prometheus::Registry,
    ) -> Arc<Self> {
        let store_is_etcd = !matches!(
            loaded.config.policy.store,
            crate::config::model::Store::File
        );
        let current = generation_from(loaded, 1, &metrics);
        metrics.policy_generation.set(1);
        // The startup load is the first successful load (Prometheus's own
        // `prometheus_config_last_reload_successful` is 1 from the start too): an alert on `== 0`
        // must not fire on every fresh process.
        metrics.config_last_reload_successful.set(1);
        metrics
            .config_last_reload_success_timestamp_seconds
            .set(i64::try_from(crate::time::unix_now()).unwrap_or(i64::MAX));
        set_entry_gauges(&metrics, &current.policy);
        let (generation_tx, _) = watch::channel(1);
        let (pending_tx, pending_rx) = mpsc::channel(PENDING_QUEUE);
        Arc::new(Self {
            current: ArcSwap::from_pointee(current),
            generation_tx,
            certs,
            metrics,
            registry,
            draining: AtomicBool::new(false),
            pending: Mutex::new(BTreeMap::new()),
            last_reload: Mutex::new(None),
            attempts_tx: watch::channel(0).0,
            pending_tx,
            pending_rx: Mutex::new(Some(pending_rx)),
            policy_ready: AtomicBool::new(!store_is_etcd),
            store_status: Mutex::new(None),
        })
    }

    /// True once a policy is in force (always with the file store).
    pub fn is_policy_ready(&self) -> bool {
        self.policy_ready.load(Ordering::Acquire)
    }

    /// The policy store's health, for `/status` (`None` for the file store).
    pub fn store_status(&self) -> Option<crate::store::StoreStatus> {
        self.store_status.lock().ok().and_then(|g| g.clone())
    }

    /// Record the policy store's health (the etcd store does).
    pub fn set_store_status(&self, status: crate::store::StoreStatus) {
        if let Ok(mut g) = self.store_status.lock() {
            *g = Some(status);
        }
    }

    /// The generation in force. Hold the `Arc` for one request; never across a reload wait.
    pub fn current(&self) -> Arc<Generation> {
        self.current.load_full()
    }

    /// Publish a newly loaded config and policy (a reload). A self-signed certificate already
    /// being served is kept rather than replaced by a fresh one.
    pub fn publish(&self, mut loaded: Loaded) -> u64 {
        let (number, key) = self.swap(|old, number| {
            if loaded.tls_self_signed && old.tls_self_signed {
                loaded.tls = None;
            }
            let key = loaded.tls.clone();
            (generation_from(loaded, number, &self.metrics), key)
        });
        if let (Some(store), Some(key)) = (&self.certs, key) {
            store.store(key);
        }
        number
    }

    /// Publish a new policy under the config in force (an admin write). The fingerprint is the
    /// current one with the policy hash replaced, so the watcher does not reload the file the
    /// writer just wrote.
    pub fn publish_policy(&self, policy: Snapshot, policy_sha256: String) -> u64 {
        let number = self
            .swap(|old, number| {
                let mut fingerprint = old.fingerprint.clone();
                // A policy from etcd has no file for the watcher to compare.
                if old.config.policy.store == crate::config::model::Store::File {
                    fingerprint.policy = hex::decode(&policy_sha256)
                        .ok()
                        .and_then(|v| <[u8; 32]>::try_from(v).ok());
                }
                let next = Generation {
                    number,
                    config: old.config.clone(),
                    config_sha256: old.config_sha256.clone(),
                    policy: Arc::new(policy),
                    policy_sha256,
                    forwarder: old.forwarder.clone(),
                    fingerprint,
                    tls_self_signed: old.tls_self_signed,
                };
                (next, ())
            })
            .0;
        self.policy_ready.store(true, Ordering::Release);
        number
    }

    /// The one swap: build the next generation from the one in force, store it, and tell the
    /// gauges and the generation watchers. Returns the new number and `build`'s extra value.
    fn swap<T>(&self, build: impl FnOnce(&Generation, u64) -> (Generation, T)) -> (u64, T) {
        let old = self.current.load_full();
        let number = old.number + 1;
        let (next, extra) = build(&old, number);
        drop(old);
        set_entry_gauges(&self.metrics, &next.policy);
        self.current.store(Arc::new(next));
        self.metrics
            .policy_generation
            .set(i64::try_from(number).unwrap_or(i64::MAX));
        self.generation_tx.send_replace(number);
        (number, extra)
    }

    /// Record the outcome of a reload attempt.
    pub fn set_last_reload(&self, r: LastReload) {
        if let Ok(mut g) = self.last_reload.lock() {
            *g = Some(r);
        }
        self.attempts_tx.send_modify(|n| *n += 1);
    }

    /// Watch the number of finished reload attempts (tests wait on it to see a failure land).
    pub fn subscribe_attempts(&self) -> watch::Receiver<u64> {
        self.attempts_tx.subscribe()
    }

    /// The outcome of the last reload attempt, if any.
    pub fn last_reload(&self) -> Option<LastReload> {
        self.last_reload.lock().ok().and_then(|g| g.clone())
    }

    /// Watch the generation number (tests and the admin API wait on it).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.generation_tx.subscribe()
    }

    /// SIGTERM received: readiness fails from now on.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }

    /// True once shutdown has begun.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Record an unknown marker as pending (first sighting wins), with the request's `tenant` as
    /// its `domain_id`, and queue it for the writer, which persists it in the policy file
    /// (docs/contract.md §4 step 1). Returns true if it was new.
    ///
    /// At most `limits.max_pending_connections` are recorded: the `pendingAcceptance` connections
    /// of the policy in force plus the markers on their way to the file. Beyond that the marker
    /// is not recorded (the request is still denied) and `pending_connections_dropped_total`
    /// counts it. A marker written but not yet forgotten counts twice for that moment, so the cap
    /// errs on the side of recording fewer.
    pub fn record_pending(
        &self,
        service_id: &str,
        marker_id: u64,
        tenant: Option<&str>,
        now: String,
    ) -> bool {
        let Ok(mut map) = self.pending.lock() else {
            return false;
        };
        let key = (service_id.to_owned(), marker_id);
        if map.contains_key(&key) {
            return false;
        }
        let cur = self.current();
        let limit = cur.config.limits.max_pending_connections;
        if cur.policy.pending_connections().saturating_add(map.len()) >= limit {
            self.metrics.pending_connections_dropped_total.inc();
            return false;
        }
        drop(cur);
        let seen = PendingSeen {
            service_id: service_id.to_owned(),
            marker_id,
            // Tenants of the policy already match the `domain_id` rule; anything else would make
            // the write fail validation and lose the marker, so it is left out instead.
            tenant: tenant
                .filter(|t| crate::policy::validate::is_valid(IdKind::DomainId, t))
                .map(str::to_owned),
            first_seen: now,
        };
        if self.pending_tx.try_send(seen.clone()).is_err() {
            // The writer is behind: forget it so the next request through the marker retries.
            return false;
        }
        map.insert(key, seen);
        true
    }

    /// Drop a marker from the in-memory set once it is persisted (or could not be).
    pub fn forget_pending(&self, service_id: &str, marker_id: u64) {
        if let Ok(mut map) = self.pending.lock() {
            map.remove(&(service_id.to_owned(), marker_id));
        }
    }

    /// The receiving end of the pending-marker queue (the writer takes it once).
    pub fn take_pending_queue(&self) -> Option<mpsc::Receiver<PendingSeen>> {
        self.pending_rx.lock().ok().and_then(|mut g| g.take())
    }

    /// The markers recorded as pending so far.
    pub fn pending(&self) -> Vec<PendingSeen> {
        self.pending
            .lock()
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }
}

fn generation_from(loaded: Loaded, number: u64, metrics: &Metrics) -> Generation {
    let forwarder = Forwarder::new(
        &loaded.config.upstream,
        loaded.upstream_tls.clone(),
        metrics,
    );
    Generation {
        number,
        config: loaded.config,
        config_sha256: loaded.config_sha256,
        policy: loaded.policy,
        policy_sha256: loaded.policy_sha256,
        forwarder,
        fingerprint: loaded.fingerprint,
        tls_self_signed: loaded.tls_self_signed,
    }
}

fn set_entry_gauges(metrics: &Metrics, policy: &Snapshot) {
    let c = policy.counts();
    for (kind, n) in [
        ("tenant", c.tenants),
        ("vpcep", c.vpceps),
        ("ip_range", c.ip_ranges),
        ("connection", c.connections),
        ("project", c.projects),
    ] {
        metrics
            .policy_entries
            .with_label_values(&[kind])
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }
}
