//! Signage players: the session listener (TCP 4701), presence in the store, revocation, and the
//! `player` commands.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use fleetwire_session::{CloseCode, PlayerId, PlayerLookup};
use fleetwire_tokio::session::{
    Limits, Notice, PlayerDirectory, ServerHandle, SessionServer, Transport,
};
use tokio::sync::broadcast::error::RecvError;

use crate::serve::{Ctx, Service};
use crate::store::{Seen, Store};
use crate::unix_now;
use crate::util::secret_file::{Overwrite, SecretFile};
use crate::util::term::escape;
use clap::Subcommand;
use fleetwire_session::PlayerSecret;
use ring::rand::{SecureRandom, SystemRandom};

/// Looks players up in the store, off the async executor (also used by the framed transfer
/// listener's login).
pub(crate) struct StoreDirectory(pub(crate) Arc<Store>);

impl PlayerDirectory for StoreDirectory {
    async fn lookup(&self, player_id: PlayerId) -> PlayerLookup {
        let store = self.0.clone();
        let found = tokio::task::spawn_blocking(move || store.lookup(&player_id)).await;
        match found {
            Ok(Ok(lookup)) => lookup,
            Ok(Err(e)) => {
                tracing::error!("player lookup failed: {e}");
                PlayerLookup::Unknown
            }
            Err(e) => {
                tracing::error!("player lookup task failed: {e}");
                PlayerLookup::Unknown
            }
        }
    }
}

/// Starts the player session server (TCP 4701), its presence writer and revocation sweep.
pub(crate) async fn start(ctx: &Ctx) -> Result<Service, String> {
    let settings = &ctx.config.session;
    let transport = if settings.danger_plaintext {
        tracing::warn!("session.danger_plaintext is set: player traffic is NOT encrypted");
        Transport::DangerPlaintext
    } else {
        Transport::Tls(ctx.tls.clone())
    };
    ctx.store.reset_presence().map_err(|e| e.to_string())?;
    let limits = Limits {
        max_connections: settings.max_connections,
        max_logins_per_source: settings.max_logins_per_source,
        ..Limits::default()
    };
    let server = SessionServer::bind(
        settings.listen,
        transport,
        Arc::new(settings.machine_config()),
        limits,
        StoreDirectory(ctx.store.clone()),
    )
    .await
    .map_err(|e| format!("cannot listen on {}: {e}", settings.listen))?;
    let server = server.with_gate(ctx.player_gate.clone());
    let addr = server.local_addr().map_err(|e| e.to_string())?;
    let mode = if settings.danger_plaintext {
        "PLAINTEXT"
    } else {
        "TLS"
    };
    println!("player sessions on {addr} (TCP, {mode})");
    let handle = server.handle();
    ctx.sessions
        .set(handle.clone())
        .map_err(|_| "player sessions started twice")?;
    let writer = tokio::spawn(record_notices(handle.clone(), ctx.store.clone()));
    let sweeper = tokio::spawn(revocation_sweep(handle, ctx.store.clone()));
    let store = ctx.store.clone();
    let mut stop = ctx.shutdown.clone();
    Ok(tokio::spawn(async move {
        let result = server
            .run(async move {
                let _ = stop.wait_for(|s| *s).await;
            })
            .await;
        sweeper.abort();
        // Let the writer drain what the shutdown produced.
        tokio::time::sleep(Duration::from_millis(300)).await;
        writer.abort();
        let _ = store.reset_presence();
        result.map_err(|e| e.to_string())
    }))
}

use crate::store::EventRow as Event;

/// Logs every notice and writes presence and security events to the store, in batches, so a
/// fleet's heartbeats cost one transaction a second, not one per heartbeat.
async fn record_notices(handle: ServerHandle, store: Arc<Store>) {
    let mut notices = handle.subscribe();
    let mut changes: Vec<(PlayerId, bool)> = Vec::new();
    let mut seen: HashMap<PlayerId, Seen> = HashMap::new();
    let mut events: Vec<Event> = Vec::new();
    let mut refused = 0u64;
    let mut flush = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            notice = notices.recv() => match notice {
                Ok(n) => note(n, &mut changes, &mut seen, &mut events, &mut refused),
                Err(RecvError::Lagged(n)) => tracing::warn!("notice writer fell behind, {n} notices skipped"),
                Err(RecvError::Closed) => return,
            },
            _ = flush.tick() => {
                if refused > 0 {
                    events.push((unix_now(), "connections_refused", None, None, format!("{refused} connections refused (limit or TLS)")));
                    refused = 0;
                }
                if changes.is_empty() && seen.is_empty() && events.is_empty() {
                    continue;
                }
                let (c, s, e) = (std::mem::take(&mut changes), std::mem::take(&mut seen), std::mem::take(&mut events));
                let store = store.clone();
                let result = tokio::task::spawn_blocking(move || {
                    let seen: Vec<Seen> = s.into_values().collect();
                    store.set_online(&c, &seen)?;
                    store.record_events(&e)
                }).await;
                if let Ok(Err(e)) = result {
                    tracing::error!("store write failed: {e}");
                }
            }
        }
    }
}

fn note(
    notice: Notice,
    changes: &mut Vec<(PlayerId, bool)>,
    seen: &mut HashMap<PlayerId, Seen>,
    events: &mut Vec<Event>,
    refused: &mut u64,
) {
    let now = unix_now();
    match notice {
        Notice::LoggedIn { player_id, peer } => {
            tracing::info!(player = %player_id, %peer, "login");
            events.push((
                now,
                "login",
                Some(player_id),
                Some(peer.to_string()),
                String::new(),
            ));
        }
        Notice::LoginFailed {
            claimed,
            peer,
            reason,
        } => {
            tracing::warn!(player = ?claimed, %peer, "login failed: {reason}");
            events.push((
                now,
                "login_failed",
                claimed,
                Some(peer.to_string()),
                reason.to_string(),
            ));
        }
        Notice::Heartbeat { player_id, status } => {
            tracing::debug!(player = %player_id, content = ?status.content, "heartbeat");
            seen.insert(
                player_id,
                Seen {
                    id: player_id,
                    at: now,
                    status,
                },
            );
        }
        Notice::Disconnected { player_id, reason } => {
            tracing::info!(player = %player_id, "disconnected: {reason}");
            events.push((
                now,
                "disconnected",
                Some(player_id),
                None,
                reason.to_string(),
            ));
        }
        Notice::Online { player_id } => {
            tracing::info!(player = %player_id, "online");
            changes.push((player_id, true));
        }
        Notice::Offline { player_id } => {
            tracing::info!(player = %player_id, "offline");
            changes.push((player_id, false));
        }
        Notice::Refused { peer, why } => {
            tracing::debug!(%peer, "refused: {why}");
            *refused += 1;
        }
        other => tracing::debug!("{other:?}"),
    }
}

/// Every two seconds, disconnects online players that were removed or unapproved from the
/// command line, so a revocation takes effect while the server runs.
async fn revocation_sweep(handle: ServerHandle, store: Arc<Store>) {
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    loop {
        tick.tick().await;
        let online = handle.online();
        if online.is_empty() {
            continue;
        }
        let store = store.clone();
        let revoked = tokio::task::spawn_blocking(move || store.revoked_among(&online)).await;
        if let Ok(Ok(revoked)) = revoked {
            for id in revoked {
                tracing::warn!(player = %id, "revoked while online: disconnecting");
                handle.disconnect(
                    &id,
                    CloseCode::Revoked,
                    "this player was removed or unapproved by an administrator",
                );
            }
        }
    }
}

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

/// Runs a `player` command.
pub(crate) fn cli(cmd: PlayerCommand, store: &Store) -> Result<(), String> {
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
            if name.chars().any(crate::util::term::is_unsafe) {
                return Err("--name: no control or bidirectional-override characters".into());
            }
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
            if let (Some(path), Some(file)) = (secrets_out, file) {
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
        PlayerCommand::List => list(store),
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

/// `player list`: names from the operator and status strings from the players themselves, all
/// printed escaped (`term`), never raw.
fn list(store: &Store) -> Result<(), String> {
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
