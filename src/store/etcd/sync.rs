//! The task that follows the store (docs/contract.md §11 "Reading", "Faults"):
//!
//! 1. one consistent, paginated read of the prefix at revision R (`client::read_all`);
//! 2. a watch from R+1; events are applied in revision order and published once the watch is
//!    quiet for 2 ms, at most [`COALESCE`] after the first unpublished one (at once when a
//!    local write waits for it);
//! 3. each published state is decoded and validated whole: a valid one goes to the writer (and
//!    to the cache file, atomically), an invalid one is reported and the rules in force stay;
//! 4. a compacted or cancelled watch re-reads; a failed call marks the store down, backs off
//!    (100 ms doubling to 5 s) and resumes from the last revision;
//! 5. while etcd is unreachable at start, the cache file is served once.
//!
//! Network I/O through `client.rs`; file I/O (cache) on blocking threads.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_client::{Client, EventType, WatchOptions};
use tokio::sync::mpsc;

use super::client::{self, Entry, StoreError};
use super::{EtcdStore, RawState};
use crate::metrics::StoreOp;
use crate::policy::{PolicyFile, Snapshot, parse_policy, render_policy};
use crate::reload::compile_options;
use crate::store::{StoreUpdate, records};

/// The longest a watched change waits to be published with the ones after it.
pub const COALESCE: Duration = Duration::from_millis(100);
/// A watch quiet for this long has delivered the burst it was in: publish.
const QUIET: Duration = Duration::from_millis(2);
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// With nothing watched for this long, ask etcd for a progress notification: a dead peer
/// then shows as an error even if keep-alives did not catch it.
const IDLE: Duration = Duration::from_secs(10);

enum WatchEnd {
    /// Compacted past our revision, or cancelled by the server: read everything again.
    Reread,
    Failed(StoreError),
    /// The writer is gone.
    Closed,
}

struct Follower {
    store: EtcdStore,
    updates: mpsc::Sender<StoreUpdate>,
    records: BTreeMap<String, Entry>,
    revision: i64,
    /// Changes applied to `records` but not yet published.
    dirty: Option<Instant>,
    /// Something was published from etcd (not only the cache).
    loaded: bool,
    tried_cache: bool,
}

pub(super) async fn run(store: EtcdStore, updates: mpsc::Sender<StoreUpdate>) {
    let mut f = Follower {
        store,
        updates,
        records: BTreeMap::new(),
        revision: 0,
        dirty: None,
        loaded: false,
        tried_cache: false,
    };
    let mut backoff = BACKOFF_MIN;
    let mut need_read = true;
    loop {
        if f.updates.is_closed() {
            return;
        }
        let result = async {
            let c = f.store.client().await?;
            if need_read {
                f.read(&c).await?;
                need_read = false;
            }
            Ok::<_, StoreError>(c)
        }
        .await;
        let end = match result {
            Ok(c) => {
                backoff = BACKOFF_MIN;
                f.watch(&c).await
            }
            Err(e) => {
                let op = if need_read {
                    StoreOp::Range
                } else {
                    StoreOp::Watch
                };
                f.failed(op, &e).await;
                if !f.loaded && !f.tried_cache {
                    f.tried_cache = true;
                    f.serve_cache().await;
                }
                if !f.pause(backoff).await {
                    return;
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
                continue;
            }
        };
        match end {
            WatchEnd::Reread => {
                tracing::warn!(
                    revision = f.revision,
                    "etcd watch compacted or cancelled; reading the prefix again"
                );
                need_read = true;
            }
            WatchEnd::Failed(e) => {
                f.failed(StoreOp::Watch, &e).await;
                if !f.pause(backoff).await {
                    return;
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
            WatchEnd::Closed => return,
        }
    }
}

impl Follower {
    async fn read(&mut self, c: &Client) -> Result<(), StoreError> {
        let s = &self.store.inner.settings;
        let (revision, records) = client::read_all(c, &s.prefix, s.request_timeout).await?;
        tracing::info!(revision, keys = records.len(), "read the policy from etcd");
        self.records = records;
        self.revision = revision;
        self.store.update_status(|st| {
            st.up = true;
            st.revision = revision;
        });
        self.publish().await;
        Ok(())
    }

    async fn watch(&mut self, c: &Client) -> WatchEnd {
        let s = &self.store.inner.settings;
        let opts = WatchOptions::new()
            .with_prefix()
            .with_start_revision(self.revision + 1)
            .with_progress_notify();
        let mut wc = c.watch_client();
        let mut stream = match client::bounded(
            s.request_timeout,
            wc.watch(s.prefix.clone(), Some(opts)),
        )
        .await
        {
            Ok(w) => w,
            Err(e) => return WatchEnd::Failed(e),
        };
        self.store.update_status(|st| {
            st.up = true;
            st.error = None;
        });
        tracing::info!(from = self.revision + 1, "watching etcd");
        let mut idle_since = Instant::now();
        loop {
            // Debounce with a cap: publish once the watch has been quiet for QUIET, and at the
            // latest COALESCE after the first unpublished change (a steady stream of changes is
            // published every 100 ms, an isolated one at once).
            let wait = match self.dirty {
                Some(t) => QUIET.min(COALESCE.saturating_sub(t.elapsed())),
                None => IDLE,
            };
            tokio::select! {
                _ = self.updates.closed() => return WatchEnd::Closed,
                _ = self.store.inner.wake.notified() => {
                    if self.dirty.is_some() && self.wanted_reached() {
                        self.publish().await;
                    }
                }
                msg = tokio::time::timeout(wait, stream.message()) => match msg {
                    Err(_) if self.dirty.is_some() => self.publish().await,
                    Err(_) => {
                        if idle_since.elapsed() >= IDLE * 3 {
                            return WatchEnd::Failed(StoreError::Timeout(IDLE * 3));
                        }
                        if let Err(e) = stream.request_progress().await {
                            return WatchEnd::Failed(StoreError::Etcd(e));
                        }
                    }
                    Ok(Err(e)) => return WatchEnd::Failed(StoreError::Etcd(e)),
                    Ok(Ok(None)) => {
                        return WatchEnd::Failed(StoreError::Setup("the watch stream ended".to_owned()));
                    }
                    Ok(Ok(Some(resp))) => {
                        idle_since = Instant::now();
                        if resp.compact_revision() > 0 || resp.canceled() {
                            return WatchEnd::Reread;
                        }
                        self.apply(&resp);
                        let revision = resp.header().map_or(self.revision, |h| h.revision());
                        self.store.update_status(|st| st.revision = revision.max(st.revision));
                        if self.dirty.is_some() && self.wanted_reached() {
                            self.publish().await;
                        }
                    }
                }
            }
        }
    }

    /// Apply one watch response's events (already in revision order).
    fn apply(&mut self, resp: &etcd_client::WatchResponse) {
        let plen = self.store.inner.settings.prefix.len();
        for ev in resp.events() {
            let Some(kv) = ev.kv() else { continue };
            let key =
                String::from_utf8_lossy(kv.key().get(plen..).unwrap_or_default()).into_owned();
            match ev.event_type() {
                EventType::Put => {
                    self.records.insert(
                        key,
                        Entry {
                            value: kv.value().to_vec(),
                            mod_revision: kv.mod_revision(),
                        },
                    );
                }
                EventType::Delete => {
                    self.records.remove(&key);
                }
            }
            self.revision = self.revision.max(kv.mod_revision());
            self.dirty.get_or_insert_with(Instant::now);
        }
        // A progress notification (no events) also says how far the store is.
        if resp.events().is_empty() {
            if let Some(h) = resp.header() {
                if self.dirty.is_none() && h.revision() > self.revision {
                    self.revision = h.revision();
                    self.share(None);
                }
            }
        }
    }

    /// A local write waits for a revision the records have reached.
    fn wanted_reached(&self) -> bool {
        let w = self.store.inner.wanted.lock().map(|w| *w).unwrap_or(0);
        w > 0 && w <= self.revision
    }

    /// Share the records with writers, keeping the validation result of the last publication
    /// unless `valid` replaces it.
    fn share(&self, valid: Option<Option<Result<Arc<PolicyFile>, String>>>) {
        let keep = self.store.inner.state.borrow().valid.clone();
        let raw = RawState {
            revision: self.revision,
            records: self.records.clone(),
            valid: valid.unwrap_or(keep),
        };
        self.store.inner.state.send_replace(Arc::new(raw));
    }

    /// Decode and validate the records, share them, and hand the writer the result.
    async fn publish(&mut self) {
        self.dirty = None;
        if let Ok(mut w) = self.store.inner.wanted.lock() {
            if *w <= self.revision {
                *w = 0;
            }
        }
        let shared = self.store.inner.shared.clone();
        let prefix = self.store.inner.settings.prefix.clone();
        let records = self.records.clone();
        let revision = self.revision;
        let done = tokio::task::spawn_blocking(move || {
            let opts = compile_options(&shared.current().config);
            let file = records::decode(
                records
                    .iter()
                    .map(|(k, e)| (k.as_str(), e.value.as_slice())),
            )
            .map_err(|e| format!("{prefix}{}: {}", e.key, e.message))?;
            let snapshot = Snapshot::compile(&file, &opts).map_err(|e| e.render(&prefix))?;
            let text = render_policy(&file).map_err(|e| e.to_string())?;
            Ok::<_, String>((file, snapshot, text))
        })
        .await;
        let (valid, update, text) = match done {
            Ok(Ok((file, snapshot, text))) => {
                let sha256 = crate::config::load::sha256_hex(text.as_bytes());
                let update = StoreUpdate::Publish {
                    snapshot: Box::new(snapshot),
                    sha256,
                    revision,
                };
                (Ok(Arc::new(file)), update, Some(text))
            }
            Ok(Err(error)) => (
                Err(error.clone()),
                StoreUpdate::Invalid { error, revision },
                None,
            ),
            Err(_) => {
                let error = "the validation thread panicked".to_owned();
                (
                    Err(error.clone()),
                    StoreUpdate::Invalid { error, revision },
                    None,
                )
            }
        };
        let error = valid.as_ref().err().cloned();
        self.share(Some(Some(valid)));
        self.store.update_status(|st| {
            st.error = error;
            if text.is_some() {
                st.serving = "etcd";
            }
        });
        if let Some(text) = text {
            self.loaded = true;
            let _ = self.updates.send(update).await;
            self.write_cache(text, revision).await;
        } else {
            let _ = self.updates.send(update).await;
        }
    }

    async fn write_cache(&self, text: String, revision: i64) {
        let Some(path) = self.store.inner.settings.cache.clone() else {
            return;
        };
        let body = format!("# vpcguard: the policy of etcd at revision {revision}\n{text}");
        let r = tokio::task::spawn_blocking(move || {
            crate::reload::write_atomically(&path, body.as_bytes()).map_err(|e| (path, e))
        })
        .await;
        if let Ok(Err((path, e))) = r {
            tracing::warn!(file = %path.display(), error = %e, "cannot write the policy cache");
        }
    }

    /// etcd is unreachable at start: serve the cache file, if there is a valid one.
    async fn serve_cache(&mut self) {
        let Some(path) = self.store.inner.settings.cache.clone() else {
            tracing::error!(
                "etcd is unreachable and policy.etcd.cache is off: not ready until etcd answers"
            );
            return;
        };
        let shared = self.store.inner.shared.clone();
        let p = path.clone();
        let loaded = tokio::task::spawn_blocking(move || {
            let text = std::fs::read_to_string(&p).map_err(|e| e.to_string())?;
            let file = parse_policy(&text).map_err(|e| e.render(&p.display().to_string()))?;
            let opts = compile_options(&shared.current().config);
            let snapshot =
                Snapshot::compile(&file, &opts).map_err(|e| e.render(&p.display().to_string()))?;
            Ok::<_, String>((snapshot, crate::config::load::sha256_hex(text.as_bytes())))
        })
        .await;
        match loaded {
            Ok(Ok((snapshot, sha256))) => {
                tracing::warn!(file = %path.display(), "etcd is unreachable at start: serving the cached policy");
                self.store.update_status(|st| st.serving = "cache");
                let _ = self
                    .updates
                    .send(StoreUpdate::Publish {
                        snapshot: Box::new(snapshot),
                        sha256,
                        revision: 0,
                    })
                    .await;
            }
            Ok(Err(e)) => {
                tracing::error!(file = %path.display(), error = %e, "etcd is unreachable and there is no usable cache: not ready until etcd answers");
            }
            Err(_) => {}
        }
    }

    async fn failed(&self, op: StoreOp, e: &StoreError) {
        tracing::warn!(error = %e, op = op.as_str(), "etcd call failed; serving the rules in force");
        self.store.count_error(op);
        self.store.update_status(|st| {
            st.up = false;
            st.error = Some(e.to_string());
        });
        self.store.drop_client().await;
    }

    /// Back off for `d` (false: the writer is gone, stop).
    #[allow(clippy::disallowed_methods)] // reason: reconnect backoff, not synchronisation
    async fn pause(&self, d: Duration) -> bool {
        tokio::select! {
            _ = self.updates.closed() => false,
            _ = tokio::time::sleep(d) => true,
        }
    }
}
