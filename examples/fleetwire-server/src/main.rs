//! `fleetwire-server`: the example server that runs every fleetwire protocol on one machine with
//! an embedded store and zero configuration.
//!
//! ```text
//! fleetwire-server serve                      # first run creates ./fleetwire-data
//! fleetwire-server player add --name lobby    # prints the player's id and secret once
//! fleetwire-server player list                # who is provisioned, approved, online
//! ```

#![allow(clippy::disallowed_methods)] // the server reads the clock
#![allow(clippy::print_stdout)] // a command-line program prints

mod certs;
mod config;
mod serve;
mod store;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use fleetwire_session::{PlayerId, PlayerSecret};
use ring::rand::{SecureRandom, SystemRandom};

use crate::store::Store;

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
    Player(PlayerCommand),
}

#[derive(Subcommand)]
enum PlayerCommand {
    /// Provision players; prints each id and secret once (the store keeps only a verifier).
    Add {
        /// A name for the operator.
        #[arg(long, default_value = "")]
        name: String,
        /// Approve at once instead of waiting for `player approve`.
        #[arg(long)]
        approved: bool,
        /// How many players to provision.
        #[arg(long, default_value_t = 1)]
        count: usize,
        /// Write `id,secret` lines to this file (created, mode 0600) instead of printing them.
        #[arg(long)]
        secrets_out: Option<PathBuf>,
    },
    /// List players with their approval and presence.
    List,
    /// Approve a player waiting for approval.
    Approve {
        /// The player id.
        id: PlayerId,
    },
    /// Remove a player; if it is online it is disconnected within two seconds.
    Remove {
        /// The player id.
        id: PlayerId,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<(), String> {
    std::fs::create_dir_all(&cli.data_dir)
        .map_err(|e| format!("cannot create {}: {e}", cli.data_dir.display()))?;
    let store = Arc::new(Store::open(&cli.data_dir.join("fleetwire.db"))?);
    match cli.command {
        Command::Serve => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?
            .block_on(serve::serve(&cli.data_dir, store)),
        Command::Player(cmd) => player(cmd, &store),
    }
}

fn player(cmd: PlayerCommand, store: &Store) -> Result<(), String> {
    match cmd {
        PlayerCommand::Add {
            name,
            approved,
            count,
            secrets_out,
        } => {
            let rng = SystemRandom::new();
            let mut made = Vec::with_capacity(count);
            for _ in 0..count {
                let mut id = [0u8; 16];
                let mut secret = [0u8; 32];
                rng.fill(&mut id)
                    .and_then(|()| rng.fill(&mut secret))
                    .map_err(|_| "no system randomness")?;
                made.push((PlayerId::from_bytes(id), PlayerSecret::from_bytes(secret)));
            }
            let rows: Vec<_> = made.iter().map(|(id, s)| (*id, s.verifier())).collect();
            store
                .add_players(&rows, &name, approved, unix_now())
                .map_err(|e| e.to_string())?;
            let mut lines = String::new();
            for (id, s) in &made {
                lines.push_str(&id.to_string());
                lines.push(',');
                lines.push_str(&s.to_hex());
                lines.push('\n');
            }
            if let Some(path) = secrets_out {
                write_secret_file(&path, lines.as_bytes())?;
                println!(
                    "{count} players added; ids and secrets in {}",
                    path.display()
                );
            } else {
                for (id, secret) in &made {
                    println!("player id: {id}\nsecret:    {}", secret.to_hex());
                }
                println!(
                    "Store the secret on the player now: it is not kept and cannot be shown again."
                );
            }
            if !approved {
                println!("Waiting for approval: fleetwire-server player approve <id>");
            }
            Ok(())
        }
        PlayerCommand::List => {
            let rows = store.list().map_err(|e| e.to_string())?;
            println!(
                "{:<36}  {:<12} {:<8} {:<7} {:<10} CONTENT",
                "ID", "NAME", "APPROVED", "ONLINE", "LAST SEEN"
            );
            let now = unix_now();
            for r in &rows {
                let seen = r
                    .last_seen
                    .map_or("never".to_owned(), |t| format!("{}s ago", (now - t).max(0)));
                println!(
                    "{:<36}  {:<12} {:<8} {:<7} {:<10} {} {}",
                    r.id.to_string(),
                    r.name,
                    if r.approved { "yes" } else { "pending" },
                    if r.online { "online" } else { "offline" },
                    seen,
                    r.content.as_deref().unwrap_or(""),
                    r.versions
                        .as_deref()
                        .map(|v| format!("({v})"))
                        .unwrap_or_default(),
                );
            }
            let online = rows.iter().filter(|r| r.online).count();
            println!("{} players, {online} online", rows.len());
            Ok(())
        }
        PlayerCommand::Approve { id } => {
            if store.approve(&id).map_err(|e| e.to_string())? {
                println!("approved {id}");
                Ok(())
            } else {
                Err(format!("no player {id}"))
            }
        }
        PlayerCommand::Remove { id } => {
            if store.remove(&id).map_err(|e| e.to_string())? {
                println!("removed {id}; if it is online it is disconnected within two seconds");
                Ok(())
            } else {
                Err(format!("no player {id}"))
            }
        }
    }
}

fn write_secret_file(path: &std::path::Path, bytes: &[u8]) -> Result<(), String> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
        .open(path)
        .and_then(|mut f| f.write_all(bytes))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Seconds since the Unix epoch.
pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
