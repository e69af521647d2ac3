//! The command line: `serve` and the operator commands. The top layer: it builds what a
//! command needs from the layers below and prints the outcome.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::Config;
use crate::store::Store;

mod audit;
mod backup;
mod content;
mod logger;
mod player;
mod serve;
mod store;
mod thing;
mod user;

#[derive(Parser)]
#[command(
    name = "fleetwire-server",
    version,
    about = "The fleetwire example server"
)]
struct Cli {
    /// Where the store, the TLS identity and fleetwire.toml live.
    #[arg(long, env = "FLEETWIRE_DATA", default_value = "fleetwire-data")]
    data_dir: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (creates the data directory on first run).
    Serve,
    /// Provision and manage signage players.
    #[command(subcommand)]
    Player(player::PlayerCommand),
    /// Provision and list sensor loggers.
    #[command(subcommand)]
    Logger(logger::LoggerCommand),
    /// Print a logger's readings in real units (CSV or JSON).
    Readings(logger::ReadingsArgs),
    /// Manage user accounts (read a new password from standard input).
    #[command(subcommand)]
    User(user::UserCommand),
    /// Check the audit log.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Backups of the embedded store: take, list, restore.
    #[command(subcommand)]
    Backup(backup::BackupCommand),
    /// Move the embedded store into PostgreSQL (for several nodes sharing one fleet).
    #[command(subcommand)]
    Store(store::StoreCommand),
    /// Publish content to players (signed manifests, served over HTTP and HTTPS).
    #[command(subcommand)]
    Content(content::ContentCommand),
    /// Things end users subscribe to: create (prints the code), list, show, revoke a user, rotate the code.
    #[command(subcommand)]
    Thing(thing::ThingCommand),
}

/// Parses the command line, runs the command, and maps the outcome to an exit code.
pub fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_ansi(false)
        .with_writer(crate::util::logging::EscapedStderr)
        .init();
    let cli = Cli::parse();
    if matches!(cli.command, Command::Serve) {
        limit_malloc_arenas();
    }
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// glibc's malloc gives each thread that allocates its own arena and keeps freed memory per
/// arena. With thousands of connection tasks moving between worker and blocking threads, the
/// server's RSS grew about twice as fast as its live heap (15 KB vs 6.3 KB per idle TLS player);
/// two arenas keep the two close at the same heartbeat latency (docs/BENCHMARKS.md, idle TLS
/// players; mimalloc was tried: it cut memory too but raised the heartbeat p99 from 2–3 ms to 17–83
/// ms). glibc reads
/// the limit only from the environment at start, so `serve` re-executes itself once with
/// `MALLOC_ARENA_MAX=2` unless the variable is already set (set it to override).
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::os::unix::process::CommandExt as _;
        if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
            return;
        }
        let Ok(exe) = std::env::current_exe() else {
            return;
        };
        let err = std::process::Command::new(exe)
            .args(std::env::args_os().skip(1))
            .env("MALLOC_ARENA_MAX", "2")
            .exec();
        tracing::warn!("could not re-execute with MALLOC_ARENA_MAX=2 ({err}); continuing");
    }
}

fn run(cli: Cli) -> Result<(), String> {
    crate::util::datadir::secure(&cli.data_dir)?;
    let config = Config::load_or_create(&cli.data_dir.join("fleetwire.toml"))?;
    let runtime = match cli.command {
        Command::Serve => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            // Blocking work is store access (and hashing on its own bounded pool): a few
            // threads suffice, and a login burst must not spawn hundreds of threads, each with
            // its own malloc arena.
            .max_blocking_threads(8)
            .build(),
        _ => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
    }
    .map_err(|e| e.to_string())?;
    runtime.block_on(async move {
        let command = match cli.command {
            Command::Backup(cmd) if cmd.needs_closed_store() => {
                return backup::run(cmd, &config, None, &cli.data_dir).await;
            }
            other => other,
        };
        let store = Store::open(&config.store, &cli.data_dir)
            .await
            .map_err(|e| e.to_string())?;
        match command {
            Command::Serve => serve::serve(&cli.data_dir, config, store).await,
            Command::Player(cmd) => player::run(cmd, &store).await,
            Command::Logger(cmd) => logger::run(cmd, &store).await,
            Command::Readings(args) => logger::readings(&args, &store).await,
            Command::User(cmd) => user::user_cli(cmd, &store, &cli.data_dir).await,
            Command::Audit(cmd) => audit::run(cmd, &store).await,
            Command::Backup(cmd) => backup::run(cmd, &config, Some(&store), &cli.data_dir).await,
            Command::Store(cmd) => store::run(cmd, &store, &cli.data_dir).await,
            Command::Content(cmd) => {
                content::run(cmd, &cli.data_dir, &config.content, &store).await
            }
            Command::Thing(cmd) => thing::run(cmd, &config, &store).await,
        }
    })
}
