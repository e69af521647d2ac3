//! `player`: provision, list, approve and remove signage players.

use std::fmt::Write as _;
use std::path::PathBuf;

use clap::Subcommand;
use fleetwire_session::PlayerId;

use crate::service::players::provision;
use crate::store::Store;
use crate::unix_now;
use crate::util::secret_file::{Overwrite, SecretFile};
use crate::util::term::escape;

#[derive(Subcommand)]
pub(crate) enum PlayerCommand {
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
        /// Write `id,secret` lines to this new file (created 0600; an existing file or link is
        /// refused) instead of printing them.
        #[arg(long)]
        secrets_out: Option<PathBuf>,
        /// With --secrets-out: replace an existing file (atomically, by a new 0600 file).
        #[arg(long, requires = "secrets_out")]
        force: bool,
    },
    /// List players with their approval and presence (on any node).
    List,
    /// Approve a player waiting for approval.
    Approve {
        /// The player id.
        id: PlayerId,
    },
    /// Remove a player; if it is online (on any node) it is disconnected within two seconds.
    Remove {
        /// The player id.
        id: PlayerId,
    },
}

/// Runs a `player` command.
pub(crate) async fn run(cmd: PlayerCommand, store: &Store) -> Result<(), String> {
    match cmd {
        PlayerCommand::Add {
            name,
            approved,
            count,
            secrets_out,
            force,
        } => {
            // The file first: a path that cannot take the secrets provisions nothing.
            let file = secrets_out
                .as_deref()
                .map(|p| SecretFile::create(p, Overwrite::with_force(force)))
                .transpose()
                .map_err(|e| e.to_string())?;
            let made = provision(store, &name, approved, count, unix_now())
                .await
                .map_err(|e| e.to_string())?;
            if let (Some(path), Some(file)) = (secrets_out, file) {
                let mut lines = String::new();
                for (id, s) in &made {
                    let _ = writeln!(lines, "{id},{}", s.to_hex());
                }
                file.commit(lines.as_bytes()).map_err(|e| e.to_string())?;
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
        PlayerCommand::List => list(store).await,
        PlayerCommand::Approve { id } => {
            if store
                .players()
                .approve(id)
                .await
                .map_err(|e| e.to_string())?
            {
                println!("approved {id}");
                Ok(())
            } else {
                Err(format!("no player {id}"))
            }
        }
        PlayerCommand::Remove { id } => {
            if store
                .players()
                .remove(id)
                .await
                .map_err(|e| e.to_string())?
            {
                println!("removed {id}; if it is online it is disconnected within two seconds");
                Ok(())
            } else {
                Err(format!("no player {id}"))
            }
        }
    }
}

/// `player list`: names from the operator and status strings from the players themselves, all
/// printed escaped (`term`), never raw.
async fn list(store: &Store) -> Result<(), String> {
    let now = unix_now();
    let rows = store.players().list(now).await.map_err(|e| e.to_string())?;
    println!(
        "{:<36}  {:<12} {:<8} {:<7} {:<10} CONTENT",
        "ID", "NAME", "APPROVED", "ONLINE", "LAST SEEN"
    );
    for r in &rows {
        let seen = r
            .last_seen
            .map_or("never".to_owned(), |t| format!("{}s ago", (now - t).max(0)));
        println!(
            "{:<36}  {:<12} {:<8} {:<7} {:<10} {} {}",
            r.id.to_string(),
            escape(&r.name),
            if r.approved { "yes" } else { "pending" },
            if r.online { "online" } else { "offline" },
            seen,
            escape(r.content.as_deref().unwrap_or("")),
            r.versions
                .as_deref()
                .map(|v| format!("({})", escape(v)))
                .unwrap_or_default(),
        );
    }
    let online = rows.iter().filter(|r| r.online).count();
    println!("{} players, {online} online", rows.len());
    Ok(())
}
