//! The etcd store handle (docs/contract.md §11): the records as last read (shared with the sync
//! task, which keeps them current), guarded writes for the writer, and read-your-writes.
//!
//! A mutation is applied to the policy the records spell at revision R, validated whole, turned
//! into the records that differ, and written in ONE transaction that succeeds only if
//! - no key under the prefix was modified after R (a range compare: no concurrent put, so a
//!   limit such as `limits.max_vpceps_per_tenant` that this instance checked still holds), and
//! - every key it replaces or deletes still has the mod revision it was read at, and every key
//!   it creates is still absent (create-if-absent; catches concurrent deletes too).
//!
//! A failed compare means someone else won: the mutation waits for the watch to bring the
//! newer records and runs again on them (it may then refuse itself, e.g. 409), all within
//! `request_timeout`. Network I/O (through `client.rs`); runs on the writer task.

mod client;
mod sync;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use etcd_client::{Client, Compare, CompareOp, Txn, TxnOpResponse};
use tokio::sync::{Notify, mpsc, watch};

pub use client::{Entry, MAX_TXN_OPS, StoreError, connect, push, read_all};

use super::records::{self, Change};
use super::{StoreStatus, StoreUpdate};
use crate::config::model::EtcdSettings;
use crate::metrics::StoreOp;
use crate::policy::{PolicyFile, Snapshot};
use crate::reload::{Mutation, WriteError, compile_options};
use crate::state::Shared;

/// The records under the prefix at one revision, and the policy they spell when it validates.
#[derive(Debug, Default)]
pub struct RawState {
    /// The etcd revision these records were read or watched up to (0: never read).
    pub revision: i64,
    pub records: BTreeMap<String, Entry>,
    /// The decoded, validated policy, or why not (`{prefix}key: message`).
    pub valid: Option<Result<Arc<PolicyFile>, String>>,
}

/// A handle on the etcd store. Cheap to clone.
#[derive(Debug, Clone)]
pub struct EtcdStore {
    inner: Arc<Inner>,
}

struct Inner {
    settings: EtcdSettings,
    shared: Arc<Shared>,
    /// The client, once connected; replaced after a failure.
    client: tokio::sync::Mutex<Option<Client>>,
    state: watch::Sender<Arc<RawState>>,
    /// The newest revision the writer has published.
    applied: watch::Sender<i64>,
    /// The newest revision a local write waits to see published (publication skips the
    /// coalescing window for it).
    wanted: Mutex<i64>,
    wake: Notify,
    status: Mutex<StoreStatus>,
    /// `status.up`, watchable: a write waits (briefly) for a reconnect in progress.
    up: watch::Sender<bool>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore")
            .field("endpoints", &self.settings.endpoints)
            .field("prefix", &self.settings.prefix)
            .finish_non_exhaustive()
    }
}

impl EtcdStore {
    /// Start following the store: the sync task reads the prefix, watches it and sends the
    /// writer what to publish on `updates`. It ends when `updates` closes (the writer ended).
    pub fn spawn(
        shared: Arc<Shared>,
        settings: EtcdSettings,
        updates: mpsc::Sender<StoreUpdate>,
    ) -> EtcdStore {
        let status = StoreStatus {
            kind: "etcd",
            up: false,
            revision: 0,
            serving: "none",
            error: None,
        };
        shared.set_store_status(status.clone());
        let store = EtcdStore {
            inner: Arc::new(Inner {
                settings,
                shared,
                client: tokio::sync::Mutex::new(None),
                state: watch::channel(Arc::new(RawState::default())).0,
                applied: watch::channel(0).0,
                wanted: Mutex::new(0),
                wake: Notify::new(),
                status: Mutex::new(status),
                up: watch::channel(false).0,
            }),
        };
        tokio::spawn(sync::run(store.clone(), updates));
        store
    }

    /// The revision the writer just published (it calls this after the swap).
    pub fn mark_applied(&self, revision: i64) {
        self.inner.applied.send_if_modified(|r| {
            let newer = revision > *r;
            if newer {
                *r = revision;
            }
            newer
        });
    }

    /// Wait (bounded by `request_timeout`) until this instance enforces `revision`: a write it
    /// committed is answered only once its own data plane applies it (read-your-writes).
    pub async fn wait_applied(&self, revision: i64) -> Result<(), WriteError> {
        if let Ok(mut w) = self.inner.wanted.lock() {
            *w = (*w).max(revision);
        }
        self.inner.wake.notify_one();
        let mut rx = self.inner.applied.subscribe();
        let limit = self.inner.settings.request_timeout;
        match tokio::time::timeout(limit, rx.wait_for(|r| *r >= revision)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(WriteError::Stopped),
            Err(_) => Err(WriteError::Unapplied { revision }),
        }
    }

    /// The store's health, for `/status`.
    pub fn status(&self) -> StoreStatus {
        self.inner
            .status
            .lock()
            .map(|s| s.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    fn update_status(&self, f: impl FnOnce(&mut StoreStatus)) {
        let snapshot = match self.inner.status.lock() {
            Ok(mut s) => {
                f(&mut s);
                s.clone()
            }
            Err(_) => return,
        };
        self.inner
            .up
            .send_if_modified(|u| std::mem::replace(u, snapshot.up) != snapshot.up);
        let m = &self.inner.shared.metrics.store;
        m.up.set(i64::from(snapshot.up));
        m.revision.set(snapshot.revision);
        self.inner.shared.set_store_status(snapshot);
    }

    fn count_error(&self, op: StoreOp) {
        self.inner
            .shared
            .metrics
            .store
            .errors_total
            .with_label_values(&[op.as_str()])
            .inc();
    }

    /// The connected client, connecting first if needed (bounded by `dial_timeout`).
    async fn client(&self) -> Result<Client, StoreError> {
        let mut g = self.inner.client.lock().await;
        if let Some(c) = &*g {
            return Ok(c.clone());
        }
        let c = client::connect(&self.inner.settings).await?;
        *g = Some(c.clone());
        Ok(c)
    }

    /// Forget the client after a transport failure, so the next call dials again.
    async fn drop_client(&self) {
        *self.inner.client.lock().await = None;
    }

    /// Apply `apply` to the policy at the newest revision read, validate it, and commit the
    /// records that differ in one guarded transaction. `Ok(None)`: `apply` refused itself, or
    /// the change is already in the store; `Ok(Some(r))`: committed at revision `r` (the caller
    /// waits for [`EtcdStore::wait_applied`]).
    pub async fn mutate(&self, mut apply: Mutation) -> Result<Option<i64>, WriteError> {
        let limit = self.inner.settings.request_timeout;
        let deadline = Instant::now() + limit;
        let prefix = self.inner.settings.prefix.clone();
        loop {
            // A reconnect in progress (a member lost) gets up to `dial_timeout`; etcd down for
            // longer is a 503 at once, not after `request_timeout`.
            let mut up = self.inner.up.subscribe();
            let wait = self
                .inner
                .settings
                .dial_timeout
                .min(deadline.saturating_duration_since(Instant::now()));
            let reachable = matches!(
                tokio::time::timeout(wait, up.wait_for(|u| *u)).await,
                Ok(Ok(_))
            );
            let state = self.inner.state.borrow().clone();
            if !reachable || state.revision == 0 {
                return Err(WriteError::StoreUnavailable(
                    "etcd is unreachable; the rules in force keep serving".to_owned(),
                ));
            }
            let base = match &state.valid {
                Some(Ok(f)) => f.clone(),
                Some(Err(e)) => return Err(WriteError::EditedInvalid(e.clone())),
                None => return Err(WriteError::StoreUnavailable("not read yet".to_owned())),
            };
            let mut file = (*base).clone();
            if !apply(&mut file) {
                return Ok(None);
            }
            let opts = compile_options(&self.inner.shared.current().config);
            let (old, new) = tokio::task::spawn_blocking(move || {
                Snapshot::compile(&file, &opts).map_err(WriteError::Invalid)?;
                let enc = |f: &PolicyFile| {
                    records::encode(f).map_err(|e| WriteError::Render(e.to_string()))
                };
                Ok::<_, WriteError>((enc(&base)?, enc(&file)?))
            })
            .await
            .map_err(|_| WriteError::Stopped)??;
            let changes = records::diff(&old, &new);
            if changes.is_empty() {
                return Ok(None);
            }
            if changes.len() >= MAX_TXN_OPS {
                return Err(WriteError::TooLarge {
                    changes: changes.len(),
                    max: MAX_TXN_OPS - 1,
                });
            }
            let txn = guarded(&prefix, &state, &changes);
            let left = deadline.saturating_duration_since(Instant::now());
            let resp = match self.client().await {
                Ok(c) => client::bounded(left, c.kv_client().txn(txn)).await,
                Err(e) => Err(e),
            };
            match resp {
                Ok(r) if r.succeeded() => {
                    return Ok(Some(r.header().map_or(state.revision, |h| h.revision())));
                }
                Ok(r) => {
                    // Someone else wrote first: catch up to what they wrote, then run again.
                    let newest = newest_revision(&r).max(state.revision + 1);
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(WriteError::Contended);
                    }
                    self.caught_up(newest, left.min(Duration::from_secs(1)))
                        .await;
                }
                Err(e) => {
                    self.count_error(StoreOp::Txn);
                    if !retryable(&e) || Instant::now() + RETRY_PAUSE >= deadline {
                        return Err(WriteError::StoreUnavailable(e.to_string()));
                    }
                    // Not applied (refused before etcd took it): another member may take it.
                    tracing::debug!(error = %e, "etcd write not taken; retrying");
                    self.drop_client().await;
                    pause(RETRY_PAUSE).await;
                }
            }
            if Instant::now() >= deadline {
                return Err(WriteError::Contended);
            }
        }
    }

    /// Wait up to `limit` for the records to reach `revision`.
    async fn caught_up(&self, revision: i64, limit: Duration) {
        if let Ok(mut w) = self.inner.wanted.lock() {
            *w = (*w).max(revision);
        }
        self.inner.wake.notify_one();
        let mut rx = self.inner.state.subscribe();
        let _ = tokio::time::timeout(limit, rx.wait_for(|s| s.revision >= revision)).await;
    }
}

/// Between attempts of a write that etcd did not take.
const RETRY_PAUSE: Duration = Duration::from_millis(50);

/// A failure after which the write surely did not happen, so trying again cannot apply it
/// twice: gRPC `UNAVAILABLE` (no connection to that member, no leader, leader changed). Any
/// other failure (a connection lost mid-call, a timeout) may have committed: answered 503
/// and not retried, since a retry of a create without an id could create it twice.
fn retryable(e: &StoreError) -> bool {
    match e {
        // 14 = UNAVAILABLE (grpc/doc/statuscodes.md).
        StoreError::Etcd(etcd_client::Error::GRpcStatus(s)) => i32::from(s.code()) == 14,
        _ => false,
    }
}

#[allow(clippy::disallowed_methods)] // reason: a pause between write attempts, not synchronisation
async fn pause(d: Duration) {
    tokio::time::sleep(d).await;
}

/// The transaction for `changes` on `state`: the guards of the module docs, then the changes;
/// on failure, the newest mod revision under the prefix.
fn guarded(prefix: &str, state: &RawState, changes: &[Change]) -> Txn {
    let mut when = Vec::with_capacity(changes.len() + 1);
    when.push(
        Compare::mod_revision(
            prefix.as_bytes().to_vec(),
            CompareOp::Less,
            state.revision + 1,
        )
        .with_prefix(),
    );
    for c in changes {
        let key = format!("{prefix}{}", c.key());
        when.push(match state.records.get(c.key()) {
            Some(e) => Compare::mod_revision(key, CompareOp::Equal, e.mod_revision),
            None => Compare::create_revision(key, CompareOp::Equal, 0),
        });
    }
    let ops: Vec<_> = changes.iter().map(|c| client::op(prefix, c)).collect();
    Txn::new()
        .when(when)
        .and_then(ops)
        .or_else([client::newest_op(prefix)])
}

fn newest_revision(r: &etcd_client::TxnResponse) -> i64 {
    r.op_responses()
        .into_iter()
        .find_map(|op| match op {
            TxnOpResponse::Get(g) => g.kvs().first().map(|k| k.mod_revision()),
            _ => None,
        })
        .unwrap_or(0)
}
