//! Command line (docs/contract.md §1): `run`, `check`, `explain`, `hash-token`, `demo`,
//! `policy pull|push`. Parsing only; `main.rs` acts.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// vpcguard: a TLS-terminating sidecar proxy that admits callers by source IP and VPC endpoint.
#[derive(Debug, Parser)]
#[command(name = "vpcguard", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the proxy until SIGTERM/SIGINT (exit 0 after a graceful shutdown, 78 on invalid config).
    Run {
        /// Config file.
        #[arg(short, long, default_value = "config/vpcguard.yaml")]
        config: PathBuf,
    },
    /// Validate config and policy exactly as a reload would and print a summary (exit 78 if invalid).
    Check {
        /// Config file.
        #[arg(short, long, default_value = "config/vpcguard.yaml")]
        config: PathBuf,
    },
    /// Print the decision the rules would take for the given facts, as JSON.
    Explain {
        /// Config file.
        #[arg(short, long, default_value = "config/vpcguard.yaml")]
        config: PathBuf,
        /// Tenant (enterprise_id).
        #[arg(long)]
        tenant: String,
        /// Client IP address.
        #[arg(long)]
        ip: std::net::IpAddr,
        /// VPC endpoint id the request came through.
        #[arg(long, conflicts_with = "marker")]
        vpcep: Option<String>,
        /// VPC endpoint marker (packet) id the request came through.
        #[arg(long)]
        marker: Option<u64>,
        /// HTTP method (selects the right via `routes`).
        #[arg(long, default_value = "GET")]
        method: String,
        /// Request path (selects the right via `routes`).
        #[arg(long, default_value = "/")]
        path: String,
    },
    /// Read a token on stdin and print `sha256:<hex>` for `admin.tokens`.
    HashToken,
    /// A first run: the proxy with the example policy in front of a built-in echo upstream, and
    /// curl lines for an allow and each documented deny; serves until Ctrl-C.
    Demo {
        /// Port on 127.0.0.1 (0: any free port).
        #[arg(long, default_value_t = 8443)]
        port: u16,
    },
    /// Read or replace the policy of the configured store (file or etcd).
    Policy {
        #[command(subcommand)]
        action: PolicyCommand,
    },
}

/// `vpcguard policy …` (docs/contract.md §1, §11).
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Print the policy of the configured store as a policy file (exit 69 if unreachable).
    Pull {
        /// Config file.
        #[arg(short, long, default_value = "config/vpcguard.yaml")]
        config: PathBuf,
    },
    /// Validate a policy file and make the store hold exactly it; records it lacks are deleted
    /// (exit 78 invalid, 69 unreachable).
    Push {
        /// Config file.
        #[arg(short, long, default_value = "config/vpcguard.yaml")]
        config: PathBuf,
        /// The policy file to push.
        policy: PathBuf,
    },
}
