//! `fleetwire-server serve`: every listener, the presence writer and the revocation sweep.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use fleetwire_session::{CloseCode, PlayerId, PlayerLookup};
use fleetwire_tokio::session::{
    Limits, Notice, PlayerDirectory, ServerHandle, SessionServer, Transport,
};
use fleetwire_tokio::tls;
use tokio::sync::broadcast::error::RecvError;

use crate::config::Config;
use crate::store::{Seen, Store};
use crate::{certs, unix_now};

/// Looks players up in the store, off the async executor.
struct StoreDirectory(Arc<Store>);

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

pub(crate) async fn serve(data_dir: &Path, store: Arc<Store>) -> Result<(), String> {
    let config = Config::load_or_create(&data_dir.join("fleetwire.toml"))?;
    let settings = &config.session;
    let transport = if settings.danger_plaintext {
        tracing::warn!("danger_plaintext is set: player traffic is NOT encrypted");
        Transport::DangerPlaintext
    } else {
        let identity = certs::load_or_create(&data_dir.join("tls"))?;
        let fp = tls::format_fingerprint(&tls::fingerprint(&identity.chain[0]));
        if identity.created {
            println!(
                "created a self-signed certificate in {}",
                data_dir.join("tls").display()
            );
        }
        println!("certificate fingerprint (SHA-256): {fp}");
        Transport::Tls(tls::server_config(identity.chain, identity.key).map_err(|e| e.to_string())?)
    };
    store.reset_presence().map_err(|e| e.to_string())?;
    let limits = Limits {
        max_connections: settings.max_connections,
        ..Limits::default()
    };
    let server = SessionServer::bind(
        settings.listen,
        transport,
        Arc::new(settings.machine_config()),
        limits,
        StoreDirectory(store.clone()),
    )
    .await
    .map_err(|e| format!("cannot listen on {}: {e}", settings.listen))?;
    let addr = server.local_addr().map_err(|e| e.to_string())?;
    println!(
        "player sessions on {addr} (TCP, {})",
        if settings.danger_plaintext {
            "PLAINTEXT"
        } else {
            "TLS"
        }
    );
    println!("data directory: {}", data_dir.display());
    let handle = server.handle();
    let writer = tokio::spawn(record_notices(handle.clone(), store.clone()));
    let sweeper = tokio::spawn(revocation_sweep(handle, store.clone()));
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("Ctrl-C: closing player sessions");
    };
    server.run(shutdown).await.map_err(|e| e.to_string())?;
    sweeper.abort();
    // Let the writer drain what the shutdown produced.
    tokio::time::sleep(Duration::from_millis(300)).await;
    writer.abort();
    store.reset_presence().map_err(|e| e.to_string())?;
    println!("stopped");
    Ok(())
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
            tracing::debug!(player = %player_id, content = %status.content, "heartbeat");
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
