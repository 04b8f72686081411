//! The one writer of published state (SPEC §8, STYLE §2.2). Every reload — file watcher, SIGHUP,
//! `POST /-/reload` — is a command on one queue, served by one task, so reloads never race each
//! other and a half-built generation is never visible: loading, validating and compiling run on a
//! blocking thread, off the request path, and only a complete [`Loaded`] is swapped in.
//!
//! Admin API mutations and newly seen pending markers are commands on the same queue: each one
//! re-reads the policy file (so an operator's hand edit is the base, never overwritten), applies
//! the change, validates the whole result, writes it atomically (temp file, fsync, rename, fsync
//! the directory) and only then publishes — so concurrent mutations serialize, none is lost, and
//! an answer of success means the change is on disk and enforced.
//!
//! An invalid version changes nothing: it is logged as `file:line:column: message`, counted in
//! `config_reloads_total{result="failure"}` and reported to whoever asked. A version whose files
//! hash the same as the one in force is not published again (the watcher sees many events per
//! save); an explicit reload of unchanged files answers `unchanged`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot};

use crate::admin::error::{ApiError, ErrorKind};
use crate::config::Config;
use crate::config::load::{ConfigError, Fingerprint, Loaded, sha256_hex};
use crate::metrics::ReloadFile;
use crate::policy::{
    CompileOptions, Connection, ConnectionStatus, Located, PolicyError, PolicyFile, Snapshot,
    parse_policy, render_policy,
};
use crate::state::{LastReload, PendingSeen, Shared};

/// What asked for a reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// The file watcher, after its debounce window.
    Watch,
    /// SIGHUP.
    Signal,
    /// `POST /-/reload`.
    Admin,
    /// A policy change through the admin API (or a pending marker being recorded).
    Api,
}

impl Trigger {
    fn as_str(self) -> &'static str {
        match self {
            Trigger::Watch => "watch",
            Trigger::Signal => "signal",
            Trigger::Admin => "admin",
            Trigger::Api => "api",
        }
    }
}

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A new generation is in force.
    Published { generation: u64 },
    /// The files are byte-for-byte what is in force; nothing was swapped.
    Unchanged { generation: u64 },
    /// The new version is invalid; the current generation keeps serving.
    Failed { error: String },
}

/// A change to the policy file, applied by the writer to the freshest version of it.
pub type Mutation = Box<dyn FnOnce(&mut PolicyFile) -> Result<(), ApiError> + Send>;

enum Command {
    Reload {
        trigger: Trigger,
        reply: Option<oneshot::Sender<Outcome>>,
    },
    Mutate {
        apply: Mutation,
        reply: oneshot::Sender<Result<u64, ApiError>>,
    },
}

/// A handle on the writer task. Cheap to clone; the task ends when every handle is dropped.
#[derive(Debug, Clone)]
pub struct Writer {
    tx: mpsc::Sender<Command>,
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
        remove_stale_temp_files(&shared.current().config.policy.path);
        let (tx, rx) = mpsc::channel(QUEUE);
        let writer = Writer { tx };
        if let Some(pending) = shared.take_pending_queue() {
            tokio::spawn(persist_pending(pending, shared.clone(), writer.clone()));
        }
        tokio::spawn(run(rx, shared, config_path));
        writer
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

    /// Apply `f` to the policy file, validate, persist atomically, publish; `Ok` means the change
    /// is on disk and enforced. `f` sees the file as it is on disk now (hand edits included).
    pub async fn mutate<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut PolicyFile) -> Result<R, ApiError> + Send + 'static,
    ) -> Result<R, ApiError> {
        let slot = Arc::new(Mutex::new(None));
        let out = slot.clone();
        let apply: Mutation = Box::new(move |file| {
            let r = f(file)?;
            if let Ok(mut g) = out.lock() {
                *g = Some(r);
            }
            Ok(())
        });
        let (reply, rx) = oneshot::channel();
        let stopped = || ApiError::internal("the policy writer has stopped");
        self.tx
            .send(Command::Mutate { apply, reply })
            .await
            .map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())??;
        let r = slot.lock().ok().and_then(|mut g| g.take());
        r.ok_or_else(stopped)
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
    /// The fingerprint of the last version that failed, so the watcher does not re-report the
    /// same broken files on every unrelated event in their directory.
    last_failed: Option<Fingerprint>,
}

async fn run(mut rx: mpsc::Receiver<Command>, shared: Arc<Shared>, config_path: PathBuf) {
    let mut task = Task {
        shared,
        config_path,
        last_failed: None,
    };
    while let Some(cmd) = rx.recv().await {
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
    async fn mutate(&mut self, apply: Mutation) -> Result<u64, ApiError> {
        let cur = self.shared.current();
        let (config, snapshot, sha) = (
            cur.config.clone(),
            cur.policy.clone(),
            cur.policy_sha256.clone(),
        );
        drop(cur);
        let written = blocking(move || write_mutation(&config, &snapshot, &sha, apply))
            .await
            .unwrap_or_else(|| Err(ApiError::internal("the policy writer panicked")))?;
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
        Ok(generation)
    }

    async fn reload(&mut self, trigger: Trigger) -> Outcome {
        let cur = self.shared.current();
        let path = self.config_path.clone();
        let config = cur.config.clone();
        let on_disk = blocking(move || Fingerprint::read(&path, &config)).await;
        if let Some(fp) = &on_disk {
            if *fp == cur.fingerprint {
                return self.finish_unchanged(trigger, cur.generation);
            }
            if trigger == Trigger::Watch && self.last_failed.as_ref() == Some(fp) {
                tracing::debug!("watched files still hold the version that failed; not retrying");
                return Outcome::Failed {
                    error: "unchanged since the last failure".to_owned(),
                };
            }
        }
        let path = self.config_path.clone();
        let loaded = blocking(move || crate::config::load(&path)).await;
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
            return self.finish_unchanged(trigger, self.shared.current().generation);
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
            .set(crate::time::unix_now() as i64);
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
        let generation = self.shared.current().generation;
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

/// What a mutation wrote.
struct Written {
    snapshot: Snapshot,
    sha256: String,
}

/// Read the policy file, apply `apply`, validate, write atomically. Blocking.
fn write_mutation(
    config: &Config,
    current: &Snapshot,
    current_sha: &str,
    apply: Mutation,
) -> Result<Written, ApiError> {
    let path = &config.policy.path;
    let text = std::fs::read_to_string(path).map_err(|e| {
        ApiError::conflict(format!(
            "cannot read the policy file {}: {e}; not overwriting it",
            path.display()
        ))
    })?;
    let opts = compile_options(config);
    let mut file = if sha256_hex(text.as_bytes()) == current_sha {
        current.file().clone()
    } else {
        // Edited by hand since it was loaded: that version is the base, if it is valid.
        let changed = |e: PolicyError| {
            ApiError::conflict(format!(
                "the policy file was edited and is not valid; fix it first: {}",
                e.render(&path.display().to_string())
            ))
        };
        let file = parse_policy(&text).map_err(changed)?;
        Snapshot::compile(&file, &opts).map_err(changed)?;
        file
    };
    apply(&mut file)?;
    let snapshot = Snapshot::compile(&file, &opts).map_err(|e| {
        let kind = match e {
            PolicyError::TooManyEndpoints { .. } => ErrorKind::Quota,
            PolicyError::DuplicateId { .. } => ErrorKind::Conflict,
            PolicyError::Render(_) => ErrorKind::Internal,
            _ => ErrorKind::BadParam,
        };
        ApiError::new(kind, e.to_string())
    })?;
    let rendered = render_policy(&file)
        .map_err(|e| ApiError::internal(format!("cannot render the policy: {e}")))?;
    write_atomically(path, rendered.as_bytes())
        .map_err(|e| ApiError::internal(format!("cannot write {}: {e}", path.display())))?;
    Ok(Written {
        snapshot,
        sha256: sha256_hex(rendered.as_bytes()),
    })
}

/// The options a policy is compiled under.
pub fn compile_options(config: &Config) -> CompileOptions {
    CompileOptions {
        unknown_tenant_allow: config.policy.unknown_tenant_allow,
        max_vpceps_per_tenant: config.limits.max_vpceps_per_tenant,
    }
}

/// Replace `path` with `bytes` so that a reader (or a crash) sees the old file or the new one,
/// never a mix: write a temporary file in the same directory, fsync it, rename it over, fsync the
/// directory. A symlinked path is resolved first, so the link survives.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let real = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let dir = match real.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = real
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        if let Ok(meta) = std::fs::metadata(&real) {
            f.set_permissions(meta.permissions())?;
        }
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, &real)?;
        std::fs::File::open(&dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Remove temporary files a killed process left beside `path` (`.NAME.PID.tmp`, see
/// [`write_atomically`]); the file itself is always whole, so they hold nothing to recover.
fn remove_stale_temp_files(path: &Path) {
    let real = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let (Some(dir), Some(name)) = (real.parent(), real.file_name()) else {
        return;
    };
    let prefix = format!(".{}.", name.to_string_lossy());
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        if n.starts_with(&prefix) && n.ends_with(".tmp") {
            tracing::info!(file = %e.path().display(), "removing a temporary file left by an interrupted write");
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// The connection id a marker seen without one is recorded under (SPEC §3 makes a connection's
/// `id` its VPC endpoint id, which a bare marker does not carry).
pub fn pending_connection_id(marker_id: u64) -> String {
    format!("marker-{marker_id}")
}

/// Persist newly seen pending markers, one mutation each, through the writer.
async fn persist_pending(mut rx: mpsc::Receiver<PendingSeen>, shared: Arc<Shared>, writer: Writer) {
    while let Some(seen) = rx.recv().await {
        let PendingSeen {
            service_id,
            marker_id,
            first_seen,
        } = seen.clone();
        let result = writer
            .mutate(move |file| {
                let Some(svc) = file
                    .endpoint_services
                    .iter_mut()
                    .find(|s| *s.id.get() == service_id)
                else {
                    return Ok(());
                };
                if svc
                    .connections
                    .iter()
                    .any(|c| *c.marker_id.get() == marker_id)
                {
                    return Ok(());
                }
                svc.connections.push(Connection {
                    id: Located::new(pending_connection_id(marker_id)),
                    marker_id: Located::new(marker_id),
                    domain_id: None,
                    status: Located::new(ConnectionStatus::PendingAcceptance.as_str().to_owned()),
                    created_at: Some(first_seen.clone()),
                    updated_at: Some(first_seen),
                    description: None,
                });
                Ok(())
            })
            .await;
        if let Err(e) = result {
            tracing::error!(error = %e, service_id = seen.service_id, marker_id = seen.marker_id, "cannot persist the pending connection");
        }
        shared.forget_pending(&seen.service_id, seen.marker_id);
    }
}

/// Run blocking file work off the runtime's workers; `None` if it panicked.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    tokio::task::spawn_blocking(f).await.ok()
}

/// Settings read once at startup: a reload that changes them logs that a restart is needed.
pub fn restart_needed(old: &Config, new: &Config) -> Vec<&'static str> {
    let mut out = Vec::new();
    if old.listen.address != new.listen.address {
        out.push("listen.address");
    }
    if old.admin.address != new.admin.address {
        out.push("admin.address");
    }
    let tls = |c: &Config| c.listen.tls.as_ref().map(|t| t.min_version);
    if tls(old) != tls(new) {
        out.push("listen.tls (enabled, min_version)");
    }
    if old.limits.max_connections != new.limits.max_connections {
        out.push("limits.max_connections");
    }
    if old.limits.shutdown_grace != new.limits.shutdown_grace {
        out.push("limits.shutdown_grace");
    }
    if old.log.format != new.log.format || old.log.level != new.log.level {
        out.push("log");
    }
    out
}

/// The files a load reads: the config, the policy, and the TLS certificate and key.
fn watched_files(config_path: &Path, config: &Config) -> Vec<PathBuf> {
    let mut files = vec![config_path.to_path_buf(), config.policy.path.clone()];
    if let Some(t) = &config.listen.tls {
        files.push(t.cert.clone());
        files.push(t.key.clone());
    }
    files
}

/// The directories to watch for `config` loaded from `config_path`: the parents of the config
/// file, the policy file and the TLS files (SPEC §8), deduplicated.
pub fn watched_dirs(config_path: &Path, config: &Config) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = watched_files(config_path, config)
        .iter()
        .map(|f| match f.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        })
        .collect();
    dirs.sort();
    dirs.dedup();
    dirs
}

/// The file names in those directories whose events matter: the watched files themselves, and
/// Kubernetes' `..data` style entries (a ConfigMap volume swaps a `..data` symlink).
pub fn watched_names(config_path: &Path, config: &Config) -> Vec<std::ffi::OsString> {
    watched_files(config_path, config)
        .iter()
        .filter_map(|f| f.file_name().map(|n| n.to_os_string()))
        .collect()
}

/// Whether an event on `path` can change a watched file.
pub fn is_relevant(path: &Path, names: &[std::ffi::OsString]) -> bool {
    match path.file_name() {
        Some(n) => names.iter().any(|w| w == n) || n.to_string_lossy().starts_with(".."),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;

    #[test]
    fn relevant_names_are_the_files_and_kubernetes_dot_dot_entries() {
        let names = vec![OsString::from("policy.yaml"), OsString::from("cert.pem")];
        assert!(is_relevant(Path::new("/etc/vg/policy.yaml"), &names));
        assert!(is_relevant(Path::new("/etc/vg/..data"), &names));
        assert!(is_relevant(
            Path::new("/etc/vg/..2026_11_23_10_00_00.1"),
            &names
        ));
        assert!(!is_relevant(Path::new("/etc/vg/policy.yaml.swp"), &names));
        assert!(!is_relevant(Path::new("/etc/vg/access.log"), &names));
        assert!(!is_relevant(Path::new("/"), &names));
    }

    #[test]
    fn restart_needed_names_listener_changes_only() {
        let base = Path::new("/tmp");
        let a = crate::config::load::parse("", &base.join("a.yaml")).unwrap();
        let b = crate::config::load::parse(
            "listen: { address: \"127.0.0.1:1\" }\nupstream: { connect_timeout: 1s }\n",
            &base.join("a.yaml"),
        )
        .unwrap();
        assert_eq!(restart_needed(&a, &b), vec!["listen.address"]);
        assert!(restart_needed(&a, &a).is_empty());
    }

    #[test]
    fn watched_dirs_are_deduplicated_parents() {
        let dir = Path::new("/etc/vg");
        let c = crate::config::load::parse(
            "listen: { tls: { cert: tls/c.pem, key: tls/k.pem } }\npolicy: { path: policy.yaml }\n",
            &dir.join("vpcguard.yaml"),
        )
        .unwrap();
        assert_eq!(
            watched_dirs(&dir.join("vpcguard.yaml"), &c),
            vec![PathBuf::from("/etc/vg"), PathBuf::from("/etc/vg/tls")]
        );
    }
}
