//! Watching the config, policy and TLS files (docs/contract.md §8). The *directories* holding them are
//! watched, not the files: editors save by renaming a new file over the old one, and Kubernetes
//! swaps a `..data` symlink, and neither is seen by a watch on the old inode.
//!
//! Events are debounced: the first relevant event opens a window that every further event
//! extends; when the directory has been quiet for the whole window, one reload is asked of the
//! writer (which skips it if the files hash the same as what is in force). So a save that writes a
//! file in several steps is loaded once, at its end, and a file rewritten twice within the window
//! ends on the last version.
//!
//! inotify is used when the kernel gives it; if it cannot be set up (e.g. `max_user_watches`
//! exhausted, or a filesystem without events) the files are polled every [`POLL_INTERVAL`].

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::Notify;

use crate::config::Config;
use crate::reload::{Outcome, Trigger, Writer};
use crate::state::Shared;

/// How long the watched directories must be quiet before a reload.
pub const DEBOUNCE: Duration = Duration::from_millis(200);

/// How often files are polled when no event-based watcher is available.
pub const POLL_INTERVAL: Duration = Duration::from_secs(2);

/// How changes are noticed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchMode {
    /// inotify (or the platform's equivalent), polling where it cannot be set up.
    Events,
    /// Poll every [`POLL_INTERVAL`] (network filesystems; `VPCGUARD_WATCH=poll`).
    Poll,
    /// No watching: SIGHUP and `POST /-/reload` only (`VPCGUARD_WATCH=off`).
    Off,
}

impl WatchMode {
    /// From `VPCGUARD_WATCH` (`poll`, `off`; anything else or unset: events).
    pub fn from_env() -> WatchMode {
        match std::env::var("VPCGUARD_WATCH").as_deref() {
            Ok("poll") => WatchMode::Poll,
            Ok("off") => WatchMode::Off,
            _ => WatchMode::Events,
        }
    }
}

/// Start watching; runs until the runtime stops. The first watches are set up before this
/// returns, so a caller that then changes a file is sure to be seen.
pub fn spawn(shared: Arc<Shared>, writer: Writer, config_path: PathBuf, mode: WatchMode) {
    if mode == WatchMode::Off {
        return;
    }
    let wake = Arc::new(Notify::new());
    let cur = shared.current();
    let names = Arc::new(Mutex::new(watched_names(&config_path, &cur.config)));
    let mut dirs = watched_dirs(&config_path, &cur.config);
    let Some(mut watcher) = make_watcher(mode, &wake, &names, &dirs) else {
        return;
    };
    drop(cur);
    let mut generations = shared.subscribe();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = wake.notified() => {
                    // Debounce: wait until a whole window passes without another event.
                    while tokio::time::timeout(DEBOUNCE, wake.notified()).await.is_ok() {}
                    if let Outcome::Failed { error } = writer.reload(Trigger::Watch).await {
                        tracing::debug!(%error, "watched change not applied");
                    }
                }
                changed = generations.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
            }
            // A new config may name other files: follow them.
            let cur = shared.current();
            let new_dirs = watched_dirs(&config_path, &cur.config);
            if let Ok(mut n) = names.lock() {
                *n = watched_names(&config_path, &cur.config);
            }
            if new_dirs != dirs {
                watch_all(watcher.as_mut(), &dirs, &new_dirs);
                dirs = new_dirs;
            }
        }
    });
}

type Names = Arc<Mutex<Vec<OsString>>>;

fn handler(wake: Arc<Notify>, names: Names) -> impl notify::EventHandler + Clone {
    move |res: notify::Result<notify::Event>| {
        let Ok(event) = res else {
            // A queue overflow and the like: re-check the files to be safe.
            wake.notify_one();
            return;
        };
        let relevant = names
            .lock()
            .map(|n| event.paths.iter().any(|p| is_relevant(p, &n)))
            .unwrap_or(true);
        if relevant {
            wake.notify_one();
        }
    }
}

/// An event watcher over `dirs`, or a polling one when events cannot be had for all of them.
fn make_watcher(
    mode: WatchMode,
    wake: &Arc<Notify>,
    names: &Names,
    dirs: &[PathBuf],
) -> Option<Box<dyn Watcher + Send>> {
    if mode == WatchMode::Events {
        match notify::recommended_watcher(handler(wake.clone(), names.clone())) {
            Ok(mut w) => {
                let failed = dirs.iter().find_map(|d| {
                    match w.watch(d, RecursiveMode::NonRecursive) {
                        Ok(()) => None,
                        Err(e) if matches!(e.kind, notify::ErrorKind::PathNotFound) => {
                            tracing::warn!(dir = %d.display(), "watched directory does not exist");
                            None
                        }
                        Err(e) => Some(e),
                    }
                });
                match failed {
                    None => return Some(Box::new(w)),
                    Some(e) => {
                        tracing::warn!(error = %e, "cannot watch file events; polling instead")
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "no file-event watcher; polling instead"),
        }
    }
    let cfg = notify::Config::default()
        .with_poll_interval(POLL_INTERVAL)
        .with_compare_contents(true);
    match notify::PollWatcher::new(handler(wake.clone(), names.clone()), cfg) {
        Ok(mut w) => {
            watch_all(&mut w, &[], dirs);
            Some(Box::new(w))
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot watch files; reload with SIGHUP or POST /-/reload");
            None
        }
    }
}

fn watch_all(watcher: &mut dyn Watcher, old: &[PathBuf], new: &[PathBuf]) {
    for d in old.iter().filter(|d| !new.contains(d)) {
        let _ = watcher.unwatch(d);
    }
    for d in new.iter().filter(|d| !old.contains(d)) {
        watch_one(watcher, d);
    }
}

fn watch_one(watcher: &mut dyn Watcher, dir: &Path) {
    if let Err(e) = watcher.watch(dir, RecursiveMode::NonRecursive) {
        tracing::warn!(dir = %dir.display(), error = %e, "cannot watch directory; changes there need SIGHUP or POST /-/reload");
    } else {
        tracing::debug!(dir = %dir.display(), "watching");
    }
}

/// The files a load reads: the config, the policy, the TLS certificate and key, and
/// `upstream.tls`'s files.
fn watched_files(config_path: &Path, config: &Config) -> Vec<PathBuf> {
    let mut files = vec![config_path.to_path_buf(), config.policy.path.clone()];
    if let Some(t) = &config.listen.tls {
        files.push(t.cert.clone());
        files.push(t.key.clone());
    }
    files.extend(
        crate::config::model::upstream_tls_files(config)
            .into_iter()
            .map(Path::to_path_buf),
    );
    files
}

/// The directories to watch for `config` loaded from `config_path`: the parents of the config
/// file, the policy file and the TLS files (docs/contract.md §8), deduplicated.
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
