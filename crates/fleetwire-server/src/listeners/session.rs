//! Player sessions (TCP 4701): the login and heartbeat listener, presence written in batches,
//! this node's liveness in the store, and the revocation sweep.

use std::sync::Arc;
use std::time::Duration;

use fleetwire_session::{CloseCode, PlayerId, PlayerLookup};
use fleetwire_tokio::session::{
    Limits, Notice, PlayerDirectory, ServerHandle, SessionServer, SourceGate, Transport,
};
use tokio::sync::broadcast::error::RecvError;

use crate::app::{App, Service};
use crate::config::SessionSettings;
use crate::service::players::PresenceBatch;
use crate::store::Store;
use crate::store::players::Seen;
use crate::unix_now;

/// Looks players up in the store (also used by the framed transfer listener's login).
pub(crate) struct StoreDirectory(pub(crate) Store);

impl PlayerDirectory for StoreDirectory {
    async fn lookup(&self, player_id: PlayerId) -> PlayerLookup {
        match self.0.players().lookup(player_id).await {
            Ok(lookup) => lookup,
            Err(e) => {
                // An unreachable store refuses the login (as an unknown player would be).
                tracing::error!("player lookup failed: {e}");
                PlayerLookup::Unknown
            }
        }
    }
}

/// Binds the session listener (so its handle exists before the `App` is built).
pub(crate) async fn bind(
    settings: &SessionSettings,
    store: &Store,
    tls: &Arc<rustls::ServerConfig>,
    gate: Arc<dyn SourceGate>,
) -> Result<SessionServer<StoreDirectory>, String> {
    let transport = if settings.danger_plaintext {
        tracing::warn!("session.danger_plaintext is set: player traffic is NOT encrypted");
        Transport::DangerPlaintext
    } else {
        Transport::Tls(tls.clone())
    };
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
        StoreDirectory(store.clone()),
    )
    .await
    .map_err(|e| format!("cannot listen on {}: {e}", settings.listen))?;
    Ok(server.with_gate(gate))
}

/// Runs the bound listener with its presence writer, node heartbeat and revocation sweep.
pub(crate) async fn start(
    app: &Arc<App>,
    server: SessionServer<StoreDirectory>,
) -> Result<Service, String> {
    let addr = server.local_addr().map_err(|e| e.to_string())?;
    let mode = if app.config.session.danger_plaintext {
        "PLAINTEXT"
    } else {
        "TLS"
    };
    // A previous run of this node id cannot exist (ids are random per start); say we are alive.
    app.store
        .players()
        .node_alive(app.node.clone(), unix_now())
        .await
        .map_err(|e| e.to_string())?;
    println!("player sessions on {addr} (TCP, {mode})");
    let writer = tokio::spawn(record_notices(app.clone()));
    let sweeper = tokio::spawn(revocation_sweep(app.sessions.clone(), app.store.clone()));
    let app = app.clone();
    let mut stop = app.shutdown.clone();
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
        let _ = app.store.players().node_gone(app.node.clone()).await;
        result.map_err(|e| e.to_string())
    }))
}

/// Logs every notice and writes presence and security events in batches once a second; says
/// the node is alive every few seconds.
async fn record_notices(app: Arc<App>) {
    let mut notices = app.sessions.subscribe();
    let mut batch = PresenceBatch::default();
    let mut flush = tokio::time::interval(Duration::from_secs(1));
    let mut ticks = 0u64;
    loop {
        tokio::select! {
            notice = notices.recv() => match notice {
                Ok(n) => note(n, &mut batch),
                Err(RecvError::Lagged(n)) => tracing::warn!("notice writer fell behind, {n} notices skipped"),
                Err(RecvError::Closed) => return,
            },
            _ = flush.tick() => {
                ticks += 1;
                let now = unix_now();
                if ticks % 5 == 0 {
                    if let Err(e) = app.store.players().node_alive(app.node.clone(), now).await {
                        tracing::error!("cannot mark this node alive: {e}");
                    }
                }
                if let Err(e) = batch.flush(&app.store, &app.node, now).await {
                    tracing::error!("store write failed: {e}");
                }
            }
        }
    }
}

fn note(notice: Notice, batch: &mut PresenceBatch) {
    let now = unix_now();
    match notice {
        Notice::LoggedIn { player_id, peer } => {
            tracing::info!(player = %player_id, %peer, "login");
            batch.logged_in(now, player_id, peer.to_string());
        }
        Notice::LoginFailed {
            claimed,
            peer,
            reason,
        } => {
            tracing::warn!(player = ?claimed, %peer, "login failed: {reason}");
            batch.login_failed(now, claimed, peer.to_string(), &reason);
        }
        Notice::Heartbeat { player_id, status } => {
            tracing::debug!(player = %player_id, content = ?status.content, "heartbeat");
            batch.heartbeat(Seen {
                id: player_id,
                at: now,
                status,
            });
        }
        Notice::Disconnected { player_id, reason } => {
            tracing::info!(player = %player_id, "disconnected: {reason}");
            batch.disconnected(now, player_id, &reason);
        }
        Notice::Online { player_id } => {
            tracing::info!(player = %player_id, "online");
            batch.transition(player_id, true);
        }
        Notice::Offline { player_id } => {
            tracing::info!(player = %player_id, "offline");
            batch.transition(player_id, false);
        }
        Notice::Refused { peer, why } => {
            tracing::debug!(%peer, "refused: {why}");
            batch.refused();
        }
        other => tracing::debug!("{other:?}"),
    }
}

/// Every two seconds, disconnects this node's players that were removed or unapproved (from
/// the command line, the API or another node), so a revocation takes effect while they are
/// connected.
async fn revocation_sweep(handle: ServerHandle, store: Store) {
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    loop {
        tick.tick().await;
        let online = handle.online();
        if online.is_empty() {
            continue;
        }
        match store.players().revoked_among(online).await {
            Ok(revoked) => {
                for id in revoked {
                    tracing::warn!(player = %id, "revoked while online: disconnecting");
                    handle.disconnect(
                        &id,
                        CloseCode::Revoked,
                        "this player was removed or unapproved by an administrator",
                    );
                }
            }
            Err(e) => tracing::error!("revocation sweep: {e}"),
        }
    }
}
