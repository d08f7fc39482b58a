//! The `ottr` command line: migrate, node, status, check, binlog.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use ottr::error::chain;
use ottr::meta::{self, MetaDb};
use ottr::node::{self, NodeOptions};
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

/// Decoding and loading allocate a little for every row; mimalloc serves that with a third
/// of the node's CPU that glibc's malloc took under the benchmark's 100-change transactions.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Binlog-based MySQL/MariaDB synchronisation, configured and observed with SQL.
#[derive(Parser)]
#[command(name = "ottr", version, about)]
struct Cli {
    /// Log as JSON lines instead of text.
    #[arg(long, global = true)]
    log_json: bool,
    /// The metadata database's password, from this file (so that it stays out of the
    /// process list); OTTR_META_PASSWORD gives it from the environment.
    #[arg(
        long,
        global = true,
        env = "OTTR_META_PASSWORD_FILE",
        value_name = "PATH"
    )]
    meta_password_file: Option<std::path::PathBuf>,
    /// `file:PATH` references of configuration rows (passwords, TLS keys) resolve only to
    /// files inside this directory; without it, no file references resolve.
    #[arg(long, global = true, env = "OTTR_SECRETS_DIR", value_name = "DIR")]
    secrets_dir: Option<std::path::PathBuf>,
    /// `env:NAME` references of configuration rows resolve only for names with this prefix.
    #[arg(
        long,
        global = true,
        env = "OTTR_SECRET_ENV_PREFIX",
        default_value = ottr::config::DEFAULT_ENV_PREFIX
    )]
    secret_env_prefix: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Creates or upgrades the metadata schema, then re-creates its views and procedures.
    Migrate {
        /// The metadata database, e.g. mysql://root@127.0.0.1:3307/ottr
        #[arg(long, env = "OTTR_META")]
        meta: String,
        /// Migrate only up to this schema version (views and procedures need the newest).
        #[arg(long, hide = true)]
        target: Option<i64>,
    },
    /// Runs a node: registers, claims pipelines through leases and runs them.
    Node {
        /// The metadata database; several comma-separated URLs (a primary and its replicas)
        /// make the node follow the writable one after a failover.
        #[arg(long, env = "OTTR_META")]
        meta: String,
        /// This node's name, unique among live nodes and kept across restarts.
        #[arg(long, env = "OTTR_NODE_NAME")]
        name: String,
        /// The host name shown in v_node_status (default: this machine's name).
        #[arg(long)]
        host: Option<String>,
        /// Coordinate through ZooKeeper (host:port,…): node liveness by ephemeral nodes and
        /// pipeline ownership by election, for faster failover than leases alone.
        #[arg(long, env = "OTTR_ZK", value_name = "HOST:PORT,...")]
        zk: Option<String>,
        /// The installation's ZooKeeper identity, `user:password` in this file: the node
        /// authenticates with it (digest) and makes its nodes readable and writable by that
        /// identity only.
        #[arg(long, env = "OTTR_ZK_AUTH_FILE", value_name = "PATH")]
        zk_auth_file: Option<std::path::PathBuf>,
    },
    /// Prints pipelines (with lag and throughput), nodes and open alerts as tables.
    Status {
        #[arg(long, env = "OTTR_META")]
        meta: String,
        /// Redraw every SECONDS (default 2) until Ctrl-C.
        #[arg(long, value_name = "SECONDS", num_args = 0..=1, default_missing_value = "2")]
        watch: Option<f64>,
    },
    /// Prints the decoded binlog events of a data source, one per line (one per changed row).
    Binlog {
        #[arg(long, env = "OTTR_META")]
        meta: String,
        #[arg(long)]
        data_source: String,
        /// FILE:POS, a MariaDB GTID position (0-1-42), or end.
        #[arg(long, default_value = "end")]
        from: String,
        /// Stop after this many events.
        #[arg(long)]
        limit: Option<u64>,
        /// Keep printing new events instead of stopping at the current end.
        #[arg(long)]
        follow: bool,
        /// The replica server id to use; it must differ from every replica of the source.
        #[arg(long)]
        server_id: Option<u32>,
    },
    /// Prechecks a data source: reachable, binlog settings, privileges.
    Check {
        #[arg(long, env = "OTTR_META")]
        meta: String,
        /// The data source's name, as given to add_data_source.
        #[arg(long)]
        data_source: String,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = EnvFilter::try_from_env("OTTR_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if cli.log_json {
        subscriber.json().init();
    } else {
        subscriber.init();
    }
    match run(cli).await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {}", error_text(&error));
            ExitCode::FAILURE
        }
    }
}

fn error_text(error: &anyhow::Error) -> String {
    match error.downcast_ref::<ottr::Error>() {
        Some(inner) => chain(inner),
        None => format!("{error:#}"),
    }
}

/// The metadata password given apart from the URL: from `--meta-password-file`, or from
/// OTTR_META_PASSWORD.
async fn meta_password(file: Option<&std::path::Path>) -> Result<Option<String>> {
    if let Some(file) = file {
        let bytes = ottr::config::read_public_file(file, "metadata password file")
            .await
            .map_err(anyhow::Error::msg)?;
        let text = String::from_utf8(bytes).map_err(|_| {
            anyhow::anyhow!("metadata password file {} is not UTF-8", file.display())
        })?;
        return Ok(Some(text.trim_end_matches(['\r', '\n']).to_owned()));
    }
    Ok(std::env::var("OTTR_META_PASSWORD").ok())
}

/// Opens the metadata database; warns when the URL carries a password (the process list
/// shows it).
fn open_meta(url: &str, password: Option<&str>) -> Result<MetaDb> {
    warn_about_url_password(url);
    Ok(MetaDb::open_as(url, password)?)
}

fn warn_about_url_password(url: &str) {
    if meta::redact_url(url) != url {
        tracing::warn!(
            "the metadata URL holds a password, which any user of this machine can read in the process list: give it with --meta-password-file or OTTR_META_PASSWORD"
        );
    }
}

async fn run(cli: Cli) -> Result<ExitCode> {
    ottr::config::install_policy(cli.secrets_dir.as_deref(), Some(&cli.secret_env_prefix))
        .map_err(anyhow::Error::msg)?;
    let password = meta_password(cli.meta_password_file.as_deref()).await?;
    let password = password.as_deref();
    match cli.command {
        Command::Migrate { meta, target } => {
            warn_about_url_password(&meta);
            let report = meta::migrate_as(&meta, password, target).await?;
            if report.from == report.to {
                println!(
                    "metadata schema is at version {} (no migration needed); {} views and procedures re-created",
                    report.to, report.objects
                );
            } else {
                println!(
                    "metadata schema migrated from version {} to {}; {} views and procedures re-created",
                    report.from, report.to, report.objects
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Node {
            meta,
            name,
            host,
            zk,
            zk_auth_file,
        } => {
            let meta = open_meta(&meta, password)?;
            let host = host.unwrap_or_else(hostname);
            let shutdown = CancellationToken::new();
            tokio::spawn(stop_on_signal(shutdown.clone()));
            let zk_auth = match zk_auth_file {
                None => None,
                Some(file) => {
                    let bytes = ottr::config::read_public_file(&file, "ZooKeeper identity file")
                        .await
                        .map_err(anyhow::Error::msg)?;
                    let text = String::from_utf8(bytes)
                        .ok()
                        .map(|text| text.trim().to_owned());
                    anyhow::ensure!(
                        text.as_ref().is_some_and(|text| text.contains(':')),
                        "ZooKeeper identity file {} must hold user:password",
                        file.display()
                    );
                    text
                }
            };
            node::run(
                meta,
                NodeOptions {
                    name,
                    host,
                    zk,
                    zk_auth,
                },
                shutdown,
            )
            .await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Status { meta, watch: None } => {
            let meta = open_meta(&meta, password)?;
            print!("{}", ottr::status::status_report(&meta).await?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Status {
            meta,
            watch: Some(seconds),
        } => {
            anyhow::ensure!(
                seconds.is_finite() && (0.1..=3600.0).contains(&seconds),
                "--watch takes 0.1 to 3600 seconds, not {seconds}"
            );
            let meta = open_meta(&meta, password)?;
            let stop = CancellationToken::new();
            let stopper = stop.clone();
            tokio::spawn(async move {
                let _ = tokio::signal::ctrl_c().await;
                stopper.cancel();
            });
            let every = std::time::Duration::from_secs_f64(seconds);
            ottr::status::watch_status(&meta, every, stop, &mut std::io::stdout()).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Binlog {
            meta,
            data_source,
            from,
            limit,
            follow,
            server_id,
        } => {
            let meta = open_meta(&meta, password)?;
            let from = from
                .parse()
                .map_err(|error: ottr::model::ParsePositionError| {
                    anyhow::anyhow!("--from: {error}")
                })?;
            let request = ottr::inspect::BinlogRequest {
                data_source,
                from,
                limit,
                follow,
                server_id: server_id.unwrap_or(2_000_000 + std::process::id() % 1_000_000),
            };
            ottr::inspect::print_binlog(&meta, &request, &mut std::io::stdout().lock()).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Check { meta, data_source } => {
            let meta = open_meta(&meta, password)?;
            let (report, passed) = ottr::status::check_report(&meta, &data_source).await?;
            print!("{report}");
            Ok(if passed {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}

/// Cancels `shutdown` at SIGTERM or SIGINT.
async fn stop_on_signal(shutdown: CancellationToken) -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
    tokio::select! {
        _ = terminate.recv() => {}
        _ = interrupt.recv() => {}
    }
    tracing::info!(
        "signal received: stopping pipelines and releasing leases (a second signal exits at once)"
    );
    shutdown.cancel();
    tokio::select! {
        _ = terminate.recv() => {}
        _ = interrupt.recv() => {}
    }
    tracing::warn!("second signal: exiting without releasing leases");
    std::process::exit(130);
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .ok()
        .filter(|name| !name.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".to_owned())
}
