//! The writer task: one bounded queue of commands (reloads, mutations), served in order by one
//! task, so reloads and admin writes never race and each finds the state the previous one left.
//!
//! File I/O runs on blocking threads (`persist.rs`, `config::load`); this task only sequences,
//! publishes through `state::Shared`, counts and records.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot};

use super::persist::{self, remove_stale_temp_files};
use super::{Mutation, Outcome, Trigger, WriteError, restart_needed};
use crate::config::Config;
use crate::config::load::{ConfigError, Fingerprint, Loaded, Phase};
use crate::config::model::Store;
use crate::metrics::ReloadFile;
use crate::policy::{Connection, ConnectionStatus, Located, PolicyFile};
use crate::state::{LastReload, PendingSeen, Shared};
use crate::store::{Backend, StoreUpdate};

enum Command {
    Reload {
        trigger: Trigger,
        reply: Option<oneshot::Sender<Outcome>>,
    },
    Mutate {
        apply: Mutation,
        reply: oneshot::Sender<Result<Done, WriteError>>,
    },
}

/// A handle on the writer task. Cheap to clone; the task ends when every handle is dropped.
#[derive(Debug, Clone)]
pub struct Writer {
    tx: mpsc::Sender<Command>,
    /// Where the policy lives: the writer's seam (`store`).
    backend: Backend,
}

/// What a served mutation came to.
#[derive(Debug)]
enum Done {
    /// Written and published, or refused by the mutation itself: nothing more to wait for.
    Finished,
    /// Committed in etcd at this revision; the caller waits until it is published here.
    #[cfg_attr(not(feature = "etcd"), allow(dead_code))]
    Committed(i64),
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Reload { trigger, .. } => write!(f, "Reload({trigger:?})"),
            Command::Mutate { .. } => write!(f, "Mutate"),
        }
    }
}

/// Commands waiting beyond this are refused rather than queued without bound.
const QUEUE: usize = 256;

impl Writer {
    /// Start the writer task for the config at `config_path`.
    pub fn spawn(shared: Arc<Shared>, config_path: PathBuf) -> Writer {
        let (tx, rx) = mpsc::channel(QUEUE);
        let (store_tx, store_rx) = mpsc::channel(QUEUE);
        let backend = match shared.current().config.policy.store.clone() {
            Store::File => {
                drop(store_tx);
                remove_stale_temp_files(&shared.current().config.policy.path);
                Backend::File
            }
            #[cfg(feature = "etcd")]
            Store::Etcd(settings) => Backend::Etcd(crate::store::etcd::EtcdStore::spawn(
                shared.clone(),
                *settings,
                store_tx,
            )),
            #[cfg(not(feature = "etcd"))]
            Store::Etcd(_) => {
                // Config validation refuses `store: etcd` in a build without the feature.
                drop(store_tx);
                Backend::File
            }
        };
        let writer = Writer {
            tx,
            backend: backend.clone(),
        };
        if let Some(pending) = shared.take_pending_queue() {
            tokio::spawn(persist_pending(pending, shared.clone(), writer.clone()));
        }
        tokio::spawn(run(rx, store_rx, shared, config_path, backend));
        writer
    }

    /// The policy store this writer writes to.
    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// Reload now and wait for the outcome.
    pub async fn reload(&self, trigger: Trigger) -> Outcome {
        let (reply, rx) = oneshot::channel();
        let cmd = Command::Reload {
            trigger,
            reply: Some(reply),
        };
        if self.tx.send(cmd).await.is_err() {
            return Outcome::Failed {
                error: "the reload task has stopped".to_owned(),
            };
        }
        rx.await.unwrap_or(Outcome::Failed {
            error: "the reload task has stopped".to_owned(),
        })
    }

    /// Apply `f` to the policy, validate, persist (atomically, or in one guarded etcd
    /// transaction), publish. The outer `Result` is the writer's (`Ok` means the change is
    /// stored and enforced by this instance, or `f` refused it and nothing was written); the
    /// inner one is `f`'s own. `f` sees the policy as it is stored now (hand edits included);
    /// with etcd it may run again on a newer version when another instance wrote first.
    pub async fn mutate<R, E>(
        &self,
        mut f: impl FnMut(&mut PolicyFile) -> Result<R, E> + Send + 'static,
    ) -> Result<Result<R, E>, WriteError>
    where
        R: Send + 'static,
        E: Send + 'static,
    {
        let slot = Arc::new(Mutex::new(None));
        let out = slot.clone();
        let apply: Mutation = Box::new(move |file| {
            let r = f(file);
            let proceed = r.is_ok();
            if let Ok(mut g) = out.lock() {
                *g = Some(r);
            }
            proceed
        });
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Mutate { apply, reply })
            .await
            .map_err(|_| WriteError::Stopped)?;
        let done = rx.await.map_err(|_| WriteError::Stopped)??;
        match (done, &self.backend) {
            (Done::Finished, _) => {}
            #[cfg(feature = "etcd")]
            (Done::Committed(revision), Backend::Etcd(store)) => {
                store.wait_applied(revision).await?;
            }
            (Done::Committed(_), _) => {}
        }
        let r = slot.lock().ok().and_then(|mut g| g.take());
        r.ok_or(WriteError::Stopped)
    }

    /// Ask for a reload without waiting (the watcher). A full queue already holds a reload that
    /// will see the newest files, so dropping this one loses nothing.
    pub fn request_reload(&self, trigger: Trigger) {
        let _ = self.tx.try_send(Command::Reload {
            trigger,
            reply: None,
        });
    }
}

struct Task {
    shared: Arc<Shared>,
    config_path: PathBuf,
    backend: Backend,
    /// The fingerprint of the last version that failed, so the watcher does not re-report the
    /// same broken files on every unrelated event in their directory.
    last_failed: Option<Fingerprint>,
}

async fn run(
    mut rx: mpsc::Receiver<Command>,
    mut store_rx: mpsc::Receiver<StoreUpdate>,
    shared: Arc<Shared>,
    config_path: PathBuf,
    backend: Backend,
) {
    let mut task = Task {
        shared,
        config_path,
        backend,
        last_failed: None,
    };
    loop {
        let cmd = tokio::select! {
            cmd = rx.recv() => match cmd {
                Some(cmd) => cmd,
                None => return,
            },
            Some(update) = store_rx.recv() => {
                task.store_update(update);
                continue;
            }
        };
        match cmd {
            Command::Reload { trigger, reply } => {
                let outcome = task.reload(trigger).await;
                if let Some(reply) = reply {
                    let _ = reply.send(outcome);
                }
            }
            Command::Mutate { apply, reply } => {
                let _ = reply.send(task.mutate(apply).await);
            }
        }
    }
}

impl Task {
    async fn mutate(&mut self, apply: Mutation) -> Result<Done, WriteError> {
        match &self.backend {
            Backend::File => self.mutate_file(apply).await.map(|_| Done::Finished),
            #[cfg(feature = "etcd")]
            Backend::Etcd(store) => Ok(match store.mutate(apply).await? {
                Some(revision) => Done::Committed(revision),
                None => Done::Finished,
            }),
        }
    }

    /// Publish what the policy store sent (docs/contract.md §11): a valid state becomes the
    /// next generation; an invalid one changes nothing and is counted and reported.
    fn store_update(&mut self, update: StoreUpdate) {
        match update {
            StoreUpdate::Publish {
                snapshot,
                sha256,
                revision,
            } => {
                let generation = self.shared.publish_policy(*snapshot, sha256);
                let m = &self.shared.metrics;
                m.config_reloads_total
                    .with_label_values(&[ReloadFile::Policy.as_str(), "success"])
                    .inc();
                m.config_last_reload_successful.set(1);
                m.config_last_reload_success_timestamp_seconds
                    .set(i64::try_from(crate::time::unix_now()).unwrap_or(i64::MAX));
                tracing::info!(generation, revision, "policy from the store published");
                self.record(Trigger::Store, "success", generation, None);
                #[cfg(feature = "etcd")]
                if let Backend::Etcd(store) = &self.backend {
                    store.mark_applied(revision);
                }
            }
            StoreUpdate::Invalid { error, revision } => {
                tracing::error!(revision, "the policy store holds an invalid policy");
                self.count_failure(Trigger::Store, ReloadFile::Policy, error);
            }
        }
    }

    async fn mutate_file(&mut self, apply: Mutation) -> Result<Option<u64>, WriteError> {
        let cur = self.shared.current();
        let (config, snapshot, sha) = (
            cur.config.clone(),
            cur.policy.clone(),
            cur.policy_sha256.clone(),
        );
        drop(cur);
        let written = blocking(move || persist::write_mutation(&config, &snapshot, &sha, apply))
            .await
            .ok_or(WriteError::Stopped)??;
        let Some(written) = written else {
            return Ok(None);
        };
        let generation = self.shared.publish_policy(written.snapshot, written.sha256);
        let m = &self.shared.metrics;
        m.config_reloads_total
            .with_label_values(&[ReloadFile::Policy.as_str(), "success"])
            .inc();
        tracing::info!(
            generation,
            "policy changed through the admin API and written"
        );
        self.record(Trigger::Api, "success", generation, None);
        Ok(Some(generation))
    }

    async fn reload(&mut self, trigger: Trigger) -> Outcome {
        let cur = self.shared.current();
        let path = self.config_path.clone();
        let config = cur.config.clone();
        let on_disk = blocking(move || Fingerprint::read(&path, &config)).await;
        if let Some(fp) = &on_disk {
            if *fp == cur.fingerprint {
                return self.finish_unchanged(trigger, cur.number);
            }
            if trigger == Trigger::Watch && self.last_failed.as_ref() == Some(fp) {
                tracing::debug!("watched files still hold the version that failed; not retrying");
                return Outcome::Failed {
                    error: "unchanged since the last failure".to_owned(),
                };
            }
        }
        let path = self.config_path.clone();
        let phase = Phase::Reload {
            self_signed: cur.tls_self_signed,
        };
        let current_policy = cur.policy.clone();
        let current_sha = cur.policy_sha256.clone();
        let loaded = blocking(move || {
            let mut loaded = crate::config::load_as(&path, phase)?;
            if loaded.config.policy.store != Store::File {
                // The policy is the store's: keep it, compiled under the new config's options.
                let opts = super::compile_options(&loaded.config);
                let snapshot = crate::policy::Snapshot::compile(current_policy.file(), &opts)
                    .map_err(|source| ConfigError::Policy {
                        path: loaded.config.policy.path.clone(),
                        source,
                    })?;
                loaded.policy = Arc::new(snapshot);
                loaded.policy_sha256 = current_sha;
            }
            Ok::<_, ConfigError>(loaded)
        })
        .await;
        match loaded {
            Some(Ok(loaded)) => self.publish(trigger, loaded, &cur.config, &cur.fingerprint),
            Some(Err(e)) => {
                let file = e.source_file(&cur.config);
                self.last_failed = on_disk;
                self.fail(trigger, file, &e)
            }
            None => {
                let error = "the reload thread panicked".to_owned();
                self.count_failure(trigger, ReloadFile::Config, error)
            }
        }
    }

    fn publish(
        &mut self,
        trigger: Trigger,
        loaded: Loaded,
        old: &Config,
        old_fp: &Fingerprint,
    ) -> Outcome {
        let changed = loaded.fingerprint.changed(old_fp);
        if changed.is_empty() {
            // The files changed and changed back between the check and the load.
            return self.finish_unchanged(trigger, self.shared.current().number);
        }
        for what in restart_needed(old, &loaded.config) {
            tracing::warn!(
                setting = what,
                "changed in the config file; takes effect after a restart"
            );
        }
        let generation = self.shared.publish(loaded);
        self.last_failed = None;
        let m = &self.shared.metrics;
        for f in &changed {
            m.config_reloads_total
                .with_label_values(&[f.as_str(), "success"])
                .inc();
        }
        m.config_last_reload_successful.set(1);
        m.config_last_reload_success_timestamp_seconds
            .set(i64::try_from(crate::time::unix_now()).unwrap_or(i64::MAX));
        let files: Vec<&str> = changed.iter().map(|f| f.as_str()).collect();
        tracing::info!(generation, trigger = trigger.as_str(), files = ?files, "reloaded");
        self.record(trigger, "success", generation, None);
        Outcome::Published { generation }
    }

    fn finish_unchanged(&self, trigger: Trigger, generation: u64) -> Outcome {
        if trigger != Trigger::Watch {
            tracing::info!(
                generation,
                trigger = trigger.as_str(),
                "reload: files unchanged"
            );
            self.record(trigger, "unchanged", generation, None);
        }
        Outcome::Unchanged { generation }
    }

    fn fail(&self, trigger: Trigger, file: ReloadFile, e: &ConfigError) -> Outcome {
        self.count_failure(trigger, file, e.to_string())
    }

    fn count_failure(&self, trigger: Trigger, file: ReloadFile, error: String) -> Outcome {
        let m = &self.shared.metrics;
        m.config_reloads_total
            .with_label_values(&[file.as_str(), "failure"])
            .inc();
        m.config_last_reload_successful.set(0);
        tracing::error!(error = %error, trigger = trigger.as_str(), "reload failed; keeping the current rules");
        let generation = self.shared.current().number;
        self.record(trigger, "failure", generation, Some(error.clone()));
        Outcome::Failed { error }
    }

    fn record(
        &self,
        trigger: Trigger,
        result: &'static str,
        generation: u64,
        error: Option<String>,
    ) {
        self.shared.set_last_reload(LastReload {
            time: crate::time::now_rfc3339(),
            trigger: trigger.as_str(),
            result,
            generation,
            error,
        });
    }
}

/// Run blocking file work off the runtime's workers; `None` if it panicked.
pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    tokio::task::spawn_blocking(f).await.ok()
}

/// The connection id a marker seen without one is recorded under (docs/contract.md §3 makes a connection's
/// `id` its VPC endpoint id, which a bare marker does not carry).
pub fn pending_connection_id(marker_id: u64) -> String {
    format!("marker-{marker_id}")
}

/// The connection record a pending marker becomes (docs/contract.md §3, §4 step 1): id
/// `marker-<marker_id>`, status `pendingAcceptance`, the request's tenant as `domain_id`, first
/// seen as `created_at` and `updated_at`. The writer persists exactly this record, and the
/// connections API lists it from memory until then.
pub fn pending_connection(seen: &PendingSeen) -> Connection {
    Connection {
        id: Located::new(pending_connection_id(seen.marker_id)),
        marker_id: Located::new(seen.marker_id),
        domain_id: seen.tenant.clone().map(Located::new),
        status: Located::new(ConnectionStatus::PendingAcceptance.as_str().to_owned()),
        created_at: Some(seen.first_seen.clone()),
        updated_at: Some(seen.first_seen.clone()),
        description: None,
    }
}

/// Why a pending marker was not written (nothing is: the mutation refuses itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NotWritten {
    /// Its service is gone from the file, or the file already has a connection with its marker.
    Moot,
    /// The file already holds `limits.max_pending_connections` pending connections.
    Full,
}

/// Persist newly seen pending markers, one mutation each, through the writer. The cap is checked
/// again on the file being written (hand edits may have added pending connections since the
/// request counted them).
async fn persist_pending(mut rx: mpsc::Receiver<PendingSeen>, shared: Arc<Shared>, writer: Writer) {
    while let Some(seen) = rx.recv().await {
        let limit = shared.current().config.limits.max_pending_connections;
        let record = pending_connection(&seen);
        let service_id = seen.service_id.clone();
        let result = writer
            .mutate(move |file| {
                let pending = file
                    .endpoint_services
                    .iter()
                    .flat_map(|s| &s.connections)
                    .filter(|c| *c.status.get() == ConnectionStatus::PendingAcceptance.as_str())
                    .count();
                let Some(svc) = file
                    .endpoint_services
                    .iter_mut()
                    .find(|s| *s.id.get() == service_id)
                else {
                    return Err(NotWritten::Moot);
                };
                if svc
                    .connections
                    .iter()
                    .any(|c| c.marker_id.get() == record.marker_id.get())
                {
                    return Err(NotWritten::Moot);
                }
                if pending >= limit {
                    return Err(NotWritten::Full);
                }
                svc.connections.push(record.clone());
                Ok(())
            })
            .await;
        match result {
            Ok(Ok(())) | Ok(Err(NotWritten::Moot)) => {}
            Ok(Err(NotWritten::Full)) => {
                shared.metrics.pending_connections_dropped_total.inc();
                tracing::warn!(
                    service_id = seen.service_id,
                    marker_id = seen.marker_id,
                    limit,
                    "limits.max_pending_connections reached; the marker is not recorded"
                );
            }
            Err(e) => {
                tracing::error!(error = %e, service_id = seen.service_id, marker_id = seen.marker_id, "cannot persist the pending connection");
            }
        }
        shared.forget_pending(&seen.service_id, seen.marker_id);
    }
}
