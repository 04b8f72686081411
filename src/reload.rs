//! The one writer of published state (SPEC §8, STYLE §2.2). Every reload — file watcher, SIGHUP,
//! `POST /-/reload` — is a command on one queue, served by one task, so reloads never race each
//! other and a half-built generation is never visible: loading, validating and compiling run on a
//! blocking thread, off the request path, and only a complete [`Loaded`] is swapped in.
//!
//! An invalid version changes nothing: it is logged as `file:line:column: message`, counted in
//! `config_reloads_total{result="failure"}` and reported to whoever asked. A version whose files
//! hash the same as the one in force is not published again (the watcher sees many events per
//! save); an explicit reload of unchanged files answers `unchanged`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::config::Config;
use crate::config::load::{ConfigError, Fingerprint, Loaded};
use crate::metrics::ReloadFile;
use crate::state::{LastReload, Shared};

/// What asked for a reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// The file watcher, after its debounce window.
    Watch,
    /// SIGHUP.
    Signal,
    /// `POST /-/reload`.
    Admin,
}

impl Trigger {
    fn as_str(self) -> &'static str {
        match self {
            Trigger::Watch => "watch",
            Trigger::Signal => "signal",
            Trigger::Admin => "admin",
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

enum Command {
    Reload {
        trigger: Trigger,
        reply: Option<oneshot::Sender<Outcome>>,
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
        }
    }
}

/// Commands waiting beyond this are refused rather than queued without bound.
const QUEUE: usize = 256;

impl Writer {
    /// Start the writer task for the config at `config_path`.
    pub fn spawn(shared: Arc<Shared>, config_path: PathBuf) -> Writer {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(rx, shared, config_path));
        Writer { tx }
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
        }
    }
}

impl Task {
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

/// The directories to watch for `config` loaded from `config_path`: the parents of the config
/// file, the policy file and the TLS files (SPEC §8), deduplicated.
pub fn watched_dirs(config_path: &Path, config: &Config) -> Vec<PathBuf> {
    let mut files = vec![config_path.to_path_buf(), config.policy.path.clone()];
    if let Some(t) = &config.listen.tls {
        files.push(t.cert.clone());
        files.push(t.key.clone());
    }
    let mut dirs: Vec<PathBuf> = files
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
    let mut files = vec![config_path.to_path_buf(), config.policy.path.clone()];
    if let Some(t) = &config.listen.tls {
        files.push(t.cert.clone());
        files.push(t.key.clone());
    }
    files
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
