//! The framed transfer listener (TCP 4702, TLS): a player connects, logs in with the same
//! Ed25519 challenge-response as on the session port (bound to this TLS connection), and the
//! server pushes every content item assigned to it over that one connection with the transfer
//! `Sender` (a window of chunks, SACK, resume: chunks the player already holds are not sent),
//! then closes TLS in an orderly way. The layout is in docs/PROTOCOL.md ("Framed transfer
//! connection").
//!
//! - No content byte is read or sent before the login succeeded. Before it, a peer holds one
//!   connection slot, a 512-byte buffer and a frame of at most 256 bytes, for at most the
//!   session login deadline (`[session] login_timeout_secs`); a refused login is told why with
//!   the session `Close` message and logged as a security event.
//! - Unknown and removed players fail exactly like a wrong secret; unapproved ones are told so.
//!   A player removed or unapproved while its transfer runs is cut off within two seconds.
//! - Chunk bytes sent are added to the same per-player account as the HTTP(S) chunk endpoints
//!   (`content list`).
//! - After the login: one connection per player (a new login closes the previous one), a write
//!   deadline (`write_timeout_secs`), files offered one at a time with a window that fits
//!   `max_in_flight_bytes`, and chunks read as the socket drains (`send_framed_many`), so a
//!   player that stops reading is cut and pins a bounded amount meanwhile. At most
//!   `max_connections_per_source` connections from one source, logged in or not.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use fleetwire_session::{PlayerId, ServerConfig};
use fleetwire_tokio::framed::{Outgoing, accept_player, send_framed_many, tls_binding};
use fleetwire_tokio::session::SourceGate;
use fleetwire_tokio::source::Source;
use fleetwire_tokio::transfer::SendOptions;
use fleetwire_transfer::{RateLimit, SenderConfig};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, oneshot};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::app::{App as Ctx, Service};
use crate::listeners::http::PerSource;
use crate::listeners::session::StoreDirectory;
use crate::service::content::ContentService;
use crate::store::Store;
use crate::unix_now;

/// Everything a connection task needs.
struct Listener {
    store: Store,
    content: Arc<ContentService>,
    acceptor: TlsAcceptor,
    login: Arc<ServerConfig>,
    directory: StoreDirectory,
    send: SendOptions,
    gate: Arc<dyn SourceGate>,
    /// The one framed connection each logged-in player may hold (hole 15: a new login replaces
    /// the old connection, so one credential holds one connection's memory).
    players: Mutex<HashMap<PlayerId, (u64, oneshot::Sender<()>)>>,
    next_login: AtomicU64,
}

impl Listener {
    /// Registers `player`'s new connection and closes its previous one, if any. The returned
    /// guard unregisters it (unless a newer one replaced it); `replaced` completes when a newer
    /// connection of the same player logs in.
    fn register(self: &Arc<Self>, player: PlayerId) -> (Registration, oneshot::Receiver<()>) {
        let (tx, replaced) = oneshot::channel();
        let generation = self.next_login.fetch_add(1, Ordering::Relaxed);
        let old = self
            .players
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(player, (generation, tx));
        if let Some((_, old)) = old {
            let _ = old.send(());
        }
        let registration = Registration {
            listener: self.clone(),
            player,
            generation,
        };
        (registration, replaced)
    }
}

/// A player's registered framed connection; unregistered when dropped.
struct Registration {
    listener: Arc<Listener>,
    player: PlayerId,
    generation: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut players = self
            .listener
            .players
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if players
            .get(&self.player)
            .is_some_and(|(g, _)| *g == self.generation)
        {
            players.remove(&self.player);
        }
    }
}

/// Binds the framed transfer listener and serves until shutdown.
pub(crate) async fn start(ctx: &Arc<Ctx>) -> Result<Service, String> {
    let settings = ctx.config.transfer.clone();
    let listener = TcpListener::bind(settings.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", settings.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    println!("framed transfer on {addr} (TLS)");
    let rate = (settings.max_bytes_per_sec > 0).then(|| RateLimit {
        bytes_per_sec: settings.max_bytes_per_sec,
        // At least one full chunk message must fit.
        burst: settings.max_bytes_per_sec.max(2 << 20),
    });
    let shared = Arc::new(Listener {
        store: ctx.store.clone(),
        content: ctx.content.clone(),
        acceptor: TlsAcceptor::from(ctx.tls.clone()),
        login: Arc::new(ctx.config.session.machine_config()),
        directory: StoreDirectory(ctx.store.clone()),
        send: SendOptions {
            config: Arc::new(SenderConfig {
                window: settings.window.max(1),
                connection_rate: rate,
                ..SenderConfig::default()
            }),
            write_timeout: Duration::from_secs(settings.write_timeout_secs.max(1)),
            max_in_flight_bytes: settings.max_in_flight_bytes.max(1),
            ..SendOptions::default()
        },
        gate: ctx.player_gate.clone(),
        players: Mutex::default(),
        next_login: AtomicU64::new(0),
    });
    let slots = Arc::new(Semaphore::new(settings.max_connections.max(1)));
    let sources = Arc::new(PerSource::new(settings.max_connections_per_source.max(1)));
    let mut stop = ctx.shutdown.clone();
    Ok(tokio::spawn(async move {
        let mut connections = JoinSet::new();
        loop {
            tokio::select! {
                changed = stop.changed() => {
                    if changed.is_err() || *stop.borrow() {
                        break;
                    }
                }
                accepted = listener.accept() => match accepted {
                    Ok((tcp, peer)) => {
                        if let Err(why) = shared.gate.admit(peer.ip()) {
                            tracing::debug!(%peer, "framed transfer: refused: {why}");
                            continue; // dropping the stream closes it
                        }
                        let Some(source_slot) = sources.try_acquire(Source::of_peer(peer)) else {
                            tracing::debug!(%peer, "framed transfer: per-source limit reached");
                            continue; // dropping the stream closes it
                        };
                        let Ok(permit) = slots.clone().try_acquire_owned() else {
                            tracing::debug!(%peer, "framed transfer: connection limit reached");
                            continue; // dropping the stream closes it
                        };
                        let shared = shared.clone();
                        connections.spawn(async move {
                            serve_connection(&shared, tcp, peer).await;
                            drop((permit, source_slot));
                        });
                    }
                    Err(e) => {
                        tracing::warn!("framed transfer accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
        // Transfers resume on the next connection: cutting them is safe.
        connections.shutdown().await;
        Ok(())
    }))
}

async fn serve_connection(shared: &Arc<Listener>, tcp: TcpStream, peer: SocketAddr) {
    let accepted = Instant::now();
    let _ = tcp.set_nodelay(true);
    let deadline = shared.login.login_timeout;
    let mut tls = match tokio::time::timeout(deadline, shared.acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            tracing::debug!(%peer, "framed transfer: TLS handshake failed: {e}");
            if e.kind() != std::io::ErrorKind::UnexpectedEof {
                shared.gate.login_failed(peer.ip(), None, None);
            }
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "framed transfer: TLS handshake did not finish in time");
            shared.gate.login_failed(peer.ip(), None, None);
            return;
        }
    };
    let Ok(binding) = tls_binding(tls.get_ref().1) else {
        return;
    };
    // The machine enforces the login deadline; the outer bound only guards a stuck lookup.
    let login = accept_player(
        &mut tls,
        binding,
        shared.login.clone(),
        &shared.directory,
        accepted,
        &*shared.gate,
        peer.ip(),
    );
    let failure = match tokio::time::timeout(deadline + Duration::from_secs(2), login).await {
        Ok(Ok(player)) => Ok(player),
        Ok(Err(failed)) if failed.refused => {
            // Already counted by the gate; refusals are not written one by one.
            tracing::debug!(%peer, claimed = ?failed.claimed, "framed transfer: refused");
            return;
        }
        Ok(Err(failed)) => Err((failed.claimed, failed.reason.to_string())),
        Err(_) => {
            shared.gate.login_failed(peer.ip(), None, None);
            Err((None, "login did not finish in time".to_owned()))
        }
    };
    let player = match failure {
        Ok(player) => player,
        Err((claimed, reason)) => {
            tracing::warn!(%peer, ?claimed, "framed transfer login failed: {reason}");
            security_event(shared, "transfer_login_failed", None, peer, reason).await;
            return;
        }
    };
    tracing::info!(%player, %peer, "framed transfer: logged in");
    push_content(shared, tls, player, peer).await;
}

/// After the login: every item assigned to `player`, until done, cut off (revoked), or
/// replaced by the player's newer connection.
async fn push_content<S>(shared: &Arc<Listener>, mut tls: S, player: PlayerId, peer: SocketAddr)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (_registration, replaced) = shared.register(player);
    let files = match assigned(shared, player).await {
        Ok(files) => files,
        Err(e) => {
            tracing::error!(%player, "framed transfer: cannot list content: {e}");
            return;
        }
    };
    let count = files.len();
    let send = send_framed_many(&mut tls, files, &shared.send, |bytes| {
        shared.content.record_sent(player, bytes);
    });
    tokio::select! {
        result = send => match result {
            Ok(report) => tracing::info!(
                %player,
                files = count,
                completed = report.completed.len(),
                failed = report.failed.len(),
                bytes = report.chunk_bytes_sent,
                "framed transfer finished"
            ),
            Err(e) => tracing::info!(%player, "framed transfer ended: {e}"),
        },
        _ = replaced => {
            tracing::info!(%player, %peer, "framed transfer: replaced by the player's newer connection");
        }
        () = revoked(shared.store.clone(), player) => {
            tracing::warn!(%player, "revoked during a framed transfer: disconnecting");
            security_event(
                shared,
                "transfer_revoked",
                Some(player),
                peer,
                "removed or unapproved during a transfer".into(),
            )
            .await;
        }
    }
}

/// The player's content as outgoing files, each manifest checked against the server's own
/// content key (a store edited behind the server's back sends nothing it did not sign), each
/// file on this node's disk (fetched from the store first where needed).
async fn assigned(shared: &Listener, player: PlayerId) -> Result<Vec<Outgoing>, String> {
    let items = shared
        .content
        .assigned(player)
        .await
        .map_err(|e| e.to_string())?;
    Ok(items
        .into_iter()
        .filter_map(|item| {
            let manifest = shared.content.verified_manifest(&item.manifest)?;
            Some(Outgoing {
                manifest,
                file: item.file,
            })
        })
        .collect())
}

/// Completes when the player is removed or unapproved (checked every two seconds).
async fn revoked(store: Store, player: PlayerId) {
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    loop {
        tick.tick().await;
        if let Ok(revoked) = store.players().revoked_among(vec![player]).await {
            if !revoked.is_empty() {
                return;
            }
        }
    }
}

async fn security_event(
    shared: &Listener,
    kind: &'static str,
    player: Option<PlayerId>,
    peer: SocketAddr,
    detail: String,
) {
    let event = crate::store::audit::SecurityEvent {
        at: unix_now(),
        kind,
        player,
        peer: Some(peer.to_string()),
        detail,
    };
    if let Err(e) = shared.store.audit().record(vec![event]).await {
        tracing::error!("recording a security event failed: {e}");
    }
}
