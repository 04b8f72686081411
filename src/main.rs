//! Thin entry point: parse the command line, install the crypto provider, load the config (exit 78
//! when invalid), then run, check, explain or hash a token. Exit codes: 0 ok, 64 usage, 78 config,
//! 1 runtime failure (e.g. an address already in use).
#![forbid(unsafe_code)]

use std::io::Read;
use std::path::Path;
use std::process::ExitCode;

use clap::Parser;
use vpcguard::cli::{Cli, Command, PolicyCommand};
use vpcguard::config::{self, Loaded};

/// See the `mimalloc` feature in Cargo.toml.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const EX_USAGE: u8 = 64;
const EX_CONFIG: u8 = 78;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { EX_USAGE } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    // Exactly one provider, installed before any TLS use (docs/design.md §7.1).
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    match cli.command {
        Command::Run { config } => run(&config),
        Command::Check { config } => check(&config),
        Command::Explain {
            config,
            tenant,
            ip,
            vpcep,
            marker,
            method,
            path,
        } => explain(
            &config,
            &tenant,
            ip,
            vpcep.as_deref(),
            marker,
            &method,
            &path,
        ),
        Command::HashToken => hash_token(),
        Command::Demo { port } => demo(port),
        Command::Policy { action } => policy(action),
    }
}

/// `policy pull` / `policy push`: the config is parsed alone (the store, not the policy file,
/// holds the rules).
fn policy(action: PolicyCommand) -> ExitCode {
    let path = match &action {
        PolicyCommand::Pull { config } | PolicyCommand::Push { config, .. } => config.clone(),
    };
    let config = match std::fs::read_to_string(&path)
        .map_err(|e| format!("{}: {e}", path.display()))
        .and_then(|t| config::parse(&t, &path).map_err(|e| e.to_string()))
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(EX_CONFIG);
        }
    };
    let result = match action {
        PolicyCommand::Pull { .. } => {
            vpcguard::store::command::pull(&config).map(|text| print!("{text}"))
        }
        PolicyCommand::Push { policy, .. } => match std::fs::read_to_string(&policy) {
            Ok(text) => {
                let name = policy.display().to_string();
                vpcguard::store::command::push(&config, &name, &text).map(|p| {
                    eprintln!(
                        "{name}: pushed, {} records changed (revision {})",
                        p.changes, p.revision
                    );
                })
            }
            Err(e) => {
                eprintln!("{}: {e}", policy.display());
                return ExitCode::from(EX_USAGE);
            }
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// Worker threads: `TOKIO_WORKER_THREADS` (tokio's own variable) if set, else one per CPU this
/// process may run on (cgroup quotas and affinity included).
fn workers() -> Result<usize, String> {
    let bad = |v: &dyn std::fmt::Debug| {
        format!("TOKIO_WORKER_THREADS={v:?}: expected a number of worker threads, at least 1")
    };
    match std::env::var("TOKIO_WORKER_THREADS") {
        Ok(v) => match v.trim().parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(bad(&v)),
        },
        Err(std::env::VarError::NotUnicode(v)) => Err(bad(&v)),
        Err(std::env::VarError::NotPresent) => {
            Ok(std::thread::available_parallelism().map_or(1, std::num::NonZero::get))
        }
    }
}

fn load_or_exit(path: &Path) -> Result<Loaded, ExitCode> {
    config::load(path).map_err(|e| {
        eprintln!("{e}");
        ExitCode::from(EX_CONFIG)
    })
}

fn run(path: &Path) -> ExitCode {
    let workers = match workers() {
        Ok(n) => n,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(EX_CONFIG);
        }
    };
    let loaded = match load_or_exit(path) {
        Ok(l) => l,
        Err(code) => return code,
    };
    // Held to the end: dropping it writes the queued access lines (see its docs).
    let log = vpcguard::logging::init(&loaded.config.log);
    // One worker: tokio's single-threaded scheduler, which does the same work without the
    // multi-threaded one's cross-thread queues, atomics and second thread (linkerd2-proxy does
    // the same on one core; BENCHMARKS.md has the CPU per request it saves).
    let mut builder = if workers == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(workers);
        b
    };
    let rt = match builder
        .enable_all()
        // A worker going idle hands its queued access lines to the writer thread.
        .on_thread_park(vpcguard::access_log::on_worker_park)
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async move {
        let signals = match vpcguard::signals::Signals::install() {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot install signal handlers");
                return ExitCode::FAILURE;
            }
        };
        if loaded.tls_self_signed {
            tracing::warn!(
                "no certificate files found: serving a self-signed certificate for \"localhost\" generated in memory"
            );
        }
        let listeners = match vpcguard::app::bind(&loaded).await {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "cannot bind");
                return ExitCode::FAILURE;
            }
        };
        let app = match vpcguard::app::App::start(loaded, listeners, path.to_path_buf()) {
            Ok(app) => app,
            Err(e) => {
                tracing::error!(error = %e, "cannot start");
                return ExitCode::FAILURE;
            }
        };
        tracing::info!(data = %app.data_addr, admin = %app.admin_addr, "vpcguard listening");
        signals.run_until_shutdown(&app).await;
        app.wait().await;
        // Every request has finished: write their access lines before the last line.
        drop(log);
        tracing::info!("shutdown complete");
        ExitCode::SUCCESS
    })
}

fn demo(port: u16) -> ExitCode {
    let log = vpcguard::logging::init(&vpcguard::config::model::Log {
        format: vpcguard::config::model::LogFormat::Text,
        level: "warn".to_owned(),
        access_log: false,
    });
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async move {
        let signals = match vpcguard::signals::Signals::install() {
            Ok(s) => s,
            Err(e) => {
                eprintln!("cannot install signal handlers: {e}");
                return ExitCode::FAILURE;
            }
        };
        let demo = match vpcguard::demo::Demo::start(port).await {
            Ok(d) => d,
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::FAILURE;
            }
        };
        println!("{}", demo.walkthrough());
        signals.run_until_shutdown(&demo.app).await;
        demo.wait().await;
        drop(log);
        ExitCode::SUCCESS
    })
}

fn check(path: &Path) -> ExitCode {
    let loaded = match load_or_exit(path) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let c = loaded.policy.counts();
    println!("{}: OK", path.display());
    println!("  listen:      {}", loaded.config.listen.address);
    println!("  upstream:    {}", loaded.config.upstream.authority);
    println!(
        "  tls:         {}",
        match (&loaded.config.listen.tls, loaded.tls_self_signed) {
            (None, _) => "off (plain HTTP)",
            (Some(_), true) => "self-signed for localhost (no certificate files)",
            (Some(_), false) => "certificate files",
        }
    );
    if let config::model::Store::Etcd(e) = &loaded.config.policy.store {
        // The policy is etcd's: `check` validates the config and TLS files; the records are
        // validated by every instance as it reads them, and by `policy pull`.
        println!(
            "  policy:      etcd store {} at {} (not read by check; see `vpcguard policy pull`)",
            e.prefix,
            e.endpoints.join(",")
        );
        return ExitCode::SUCCESS;
    }
    println!("  tenants:     {}", c.tenants);
    println!("  endpoints:   {}", c.vpceps);
    println!("  ip entries:  {}", c.ip_ranges);
    println!("  connections: {}", c.connections);
    println!("  projects:    {}", c.projects);
    println!("  policy sha256: {}", loaded.policy_sha256);
    ExitCode::SUCCESS
}

fn explain(
    path: &Path,
    tenant: &str,
    ip: std::net::IpAddr,
    vpcep: Option<&str>,
    marker: Option<u64>,
    method: &str,
    req_path: &str,
) -> ExitCode {
    let loaded = match load_or_exit(path) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let Ok(method) = http::Method::from_bytes(method.to_ascii_uppercase().as_bytes()) else {
        eprintln!("--method {method:?} is not an HTTP method");
        return ExitCode::from(EX_USAGE);
    };
    let out = vpcguard::verdict::explain(&loaded, tenant, ip, vpcep, marker, &method, req_path);
    println!("{out:#}");
    ExitCode::SUCCESS
}

fn hash_token() -> ExitCode {
    let mut token = String::new();
    if std::io::stdin().read_to_string(&mut token).is_err() {
        eprintln!("cannot read the token from stdin");
        return ExitCode::from(EX_USAGE);
    }
    let token = token.trim_end_matches(['\r', '\n']);
    if token.is_empty() {
        eprintln!("empty token");
        return ExitCode::from(EX_USAGE);
    }
    println!("sha256:{}", config::load::sha256_hex(token.as_bytes()));
    ExitCode::SUCCESS
}
