//! Player login + heartbeat over TCP (TLS by default) with tokio.
//!
//! [`SessionServer`] accepts players, runs one [`ServerConnection`] per connection in its own
//! task, keeps the fleet's [`Presence`], and publishes [`Notice`]s. [`run_player`] is the player
//! side: one session from connect to close.
//!
//! Memory: a server holds thousands of idle players, so an idle connection keeps as little as
//! possible — about 6 KiB of heap in all (docs/BENCHMARKS.md, "Idle TLS players"). The server
//! speaks TLS through rustls' unbuffered API rather than `tokio_rustls`: an idle connection
//! waits for socket readiness with no read buffer of its own, reads into one scratch buffer per
//! worker thread and decrypts whole records there; only the bytes of an incomplete record are
//! kept per connection, and output buffers are released after each write. The handshake runs
//! in its own boxed future, freed once it is done, so the task an idle player keeps is only as
//! large as the session loop. The player side ([`run_player`]) uses `tokio_rustls`.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use fleetwire_session::{
    CHANNEL_BINDING_LABEL, ChannelBinding, Client, ClientConfig, ClientEvent, CloseCode,
    ConfigHash, PlayerId, PlayerLookup, PlayerStatus, Presence, PresenceConfig, PresenceEvent,
    ServerConfig, ServerConnection, ServerEvent, ServerState, SessionError,
};
use ring::rand::{SecureRandom, SystemRandom};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore, broadcast, watch};
use tokio_rustls::TlsConnector;

use crate::source::{PerSourceCap, SourceSlot};
use crate::tls::ExportKeyingMaterial;

mod link;

use link::{Link, Read};

/// Where the server finds players. Called once per login attempt, after the Hello.
pub trait PlayerDirectory: Send + Sync + 'static {
    /// Looks a player up. Return [`PlayerLookup::Unknown`] for anything not provisioned.
    fn lookup(&self, player_id: PlayerId) -> impl Future<Output = PlayerLookup> + Send;
}

/// A fixed in-memory directory, for tests and embedding.
impl<H: std::hash::BuildHasher + Send + Sync + 'static> PlayerDirectory
    for HashMap<PlayerId, PlayerLookup, H>
{
    async fn lookup(&self, player_id: PlayerId) -> PlayerLookup {
        self.get(&player_id)
            .cloned()
            .unwrap_or(PlayerLookup::Unknown)
    }
}

/// Decides whether a connection may try to log in — for example a lockout after repeated
/// failed logins ([`crate::login_gate::LockoutGate`]). Asked twice per connection: at accept,
/// by source address alone ([`SourceGate::admit`]), and when the `Hello` names a player
/// ([`SourceGate::admit_player`]), so that one misconfigured player behind a NAT address can be
/// refused without refusing its neighbours.
pub trait SourceGate: Send + Sync + 'static {
    /// `Err(why)` refuses the connection (it is closed at once and reported as
    /// [`Notice::Refused`]).
    fn admit(&self, source: IpAddr) -> Result<(), String>;
    /// The connection's `Hello` claims `player`. `Err(why)` ends the login at once, before the
    /// lookup and the signature check (reported as [`Notice::Refused`], not as a new failure).
    fn admit_player(&self, source: IpAddr, player: &PlayerId) -> Result<(), String>;
    /// An admitted connection logged in as `player`.
    fn logged_in(&self, source: IpAddr, player: &PlayerId);
    /// An admitted connection ended without logging in. `claimed` is the player its `Hello`
    /// named, if one arrived; `reason` is the session's reason, or `None` when the TLS
    /// handshake failed or timed out (a peer that closes before sending anything, such as a
    /// TCP health check, is not reported).
    fn login_failed(
        &self,
        source: IpAddr,
        claimed: Option<&PlayerId>,
        reason: Option<&SessionError>,
    );
}

/// The close message a player gets when the gate refuses it after its `Hello`.
pub const REFUSED: &str =
    "too many failed logins of this player from this address: try again later";

/// Admits every source (the default).
#[derive(Debug, Clone, Copy, Default)]
pub struct OpenGate;

impl SourceGate for OpenGate {
    fn admit(&self, _: IpAddr) -> Result<(), String> {
        Ok(())
    }
    fn admit_player(&self, _: IpAddr, _: &PlayerId) -> Result<(), String> {
        Ok(())
    }
    fn logged_in(&self, _: IpAddr, _: &PlayerId) {}
    fn login_failed(&self, _: IpAddr, _: Option<&PlayerId>, _: Option<&SessionError>) {}
}

/// How the server speaks to players.
#[derive(Clone)]
pub enum Transport {
    /// TLS 1.3 or 1.2 with this configuration.
    Tls(Arc<rustls::ServerConfig>),
    /// No encryption: anyone on the path reads and alters every status. Tests and labs only.
    DangerPlaintext,
}

/// Per-server limits. A hostile peer costs at most one connection slot for `login_timeout`.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections held at once; the next is dropped at accept. Default 20,000.
    pub max_connections: usize,
    /// How long a write may block on a peer that does not read. Default 10 s.
    pub write_timeout: Duration,
    /// Connections from one source (IPv4 address or IPv6 /64) that may be logging in at once;
    /// the next is dropped at accept. Logged-in players do not count, so a site of thousands of
    /// screens behind one address reconnecting together is limited only while their TLS
    /// handshakes and logins are in flight. Default 256.
    pub max_logins_per_source: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 20_000,
            write_timeout: Duration::from_secs(10),
            max_logins_per_source: 256,
        }
    }
}

/// What the server reports, for logs, audit and stores.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Notice {
    /// A player logged in.
    LoggedIn {
        /// The player.
        player_id: PlayerId,
        /// Its address.
        peer: SocketAddr,
    },
    /// A login failed (authentication, approval, protocol, timeout).
    LoginFailed {
        /// The identity claimed, if the Hello arrived.
        claimed: Option<PlayerId>,
        /// The address.
        peer: SocketAddr,
        /// Why.
        reason: SessionError,
    },
    /// A heartbeat arrived.
    Heartbeat {
        /// The player.
        player_id: PlayerId,
        /// Its status.
        status: PlayerStatus,
    },
    /// A logged-in player's connection ended.
    Disconnected {
        /// The player.
        player_id: PlayerId,
        /// Why.
        reason: SessionError,
    },
    /// The player showed a sign of life after being offline.
    Online {
        /// The player.
        player_id: PlayerId,
    },
    /// The player was silent past the limit, or left in an orderly way.
    Offline {
        /// The player.
        player_id: PlayerId,
    },
    /// A connection was dropped at accept or during the TLS handshake.
    Refused {
        /// The address.
        peer: SocketAddr,
        /// Why.
        why: String,
    },
}

/// A cheap handle to a running server: presence queries and control of connected players.
#[derive(Clone)]
pub struct ServerHandle {
    shared: Arc<Shared>,
}

/// The player session server.
pub struct SessionServer<D> {
    listener: TcpListener,
    transport: Transport,
    directory: Arc<D>,
    gate: Arc<dyn SourceGate>,
    shared: Arc<Shared>,
}

struct Shared {
    config: Arc<ServerConfig>,
    limits: Limits,
    presence: Mutex<Presence>,
    connections: Mutex<HashMap<PlayerId, (u64, Arc<Control>)>>,
    notices: broadcast::Sender<Notice>,
    slots: Arc<Semaphore>,
    /// Connections not yet logged in, per source.
    logging_in: Arc<PerSourceCap>,
    next_id: AtomicU64,
    rng: SystemRandom,
}

#[derive(Default)]
struct Control {
    pending: Mutex<Vec<Command>>,
    notify: Notify,
}

enum Command {
    SetConfigHash(Option<ConfigHash>),
    Close(CloseCode, String),
}

impl<D: PlayerDirectory> SessionServer<D> {
    /// Binds the listener.
    pub async fn bind(
        addr: SocketAddr,
        transport: Transport,
        config: Arc<ServerConfig>,
        limits: Limits,
        directory: D,
    ) -> io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let transport = match transport {
            Transport::Tls(tls) => Transport::Tls(link::capturing_config(&tls)),
            Transport::DangerPlaintext => Transport::DangerPlaintext,
        };
        let now = Instant::now();
        let presence = Presence::new(PresenceConfig::new(config.silence_limit()), now);
        let (notices, _) = broadcast::channel(4096);
        let shared = Arc::new(Shared {
            config,
            limits,
            presence: Mutex::new(presence),
            connections: Mutex::new(HashMap::new()),
            notices,
            slots: Arc::new(Semaphore::new(limits.max_connections)),
            logging_in: PerSourceCap::new(limits.max_logins_per_source),
            next_id: AtomicU64::new(1),
            rng: SystemRandom::new(),
        });
        Ok(Self {
            listener,
            transport,
            directory: Arc::new(directory),
            gate: Arc::new(OpenGate),
            shared,
        })
    }

    /// Puts `gate` in front of every login (the default admits everyone).
    #[must_use]
    pub fn with_gate(mut self, gate: Arc<dyn SourceGate>) -> Self {
        self.gate = gate;
        self
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// A handle for presence queries and control.
    pub fn handle(&self) -> ServerHandle {
        ServerHandle {
            shared: self.shared.clone(),
        }
    }

    /// Serves until `shutdown` completes, then closes every session with a `Close` message and
    /// waits up to two seconds for them to finish.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> io::Result<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let ticker = tokio::spawn(presence_ticker(self.shared.clone(), stop_rx.clone()));
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                accepted = self.listener.accept() => match accepted {
                    Ok((tcp, peer)) => self.admit(tcp, peer, stop_rx.clone()),
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
            }
        }
        let _ = stop_tx.send(true);
        let all = u32::try_from(self.shared.limits.max_connections).unwrap_or(u32::MAX);
        let _ =
            tokio::time::timeout(Duration::from_secs(2), self.shared.slots.acquire_many(all)).await;
        ticker.abort();
        Ok(())
    }

    fn admit(&self, tcp: TcpStream, peer: SocketAddr, stop: watch::Receiver<bool>) {
        let Ok(permit) = self.shared.slots.clone().try_acquire_owned() else {
            let _ = self.shared.notices.send(Notice::Refused {
                peer,
                why: "connection limit reached".into(),
            });
            return; // dropping the stream closes it
        };
        if let Err(why) = self.gate.admit(peer.ip()) {
            self.shared.notice(Notice::Refused { peer, why });
            return; // dropping the stream closes it
        }
        let Some(login_slot) = self.shared.logging_in.try_acquire(peer.ip()) else {
            self.shared.notice(Notice::Refused {
                peer,
                why: format!(
                    "{} connections from this address are already logging in",
                    self.shared.logging_in.max()
                ),
            });
            return;
        };
        let _ = tcp.set_nodelay(true);
        let shared = self.shared.clone();
        let directory = self.directory.clone();
        let gate = self.gate.clone();
        let transport = self.transport.clone();
        tokio::spawn(async move {
            let accepted = Instant::now();
            let conn = Conn {
                shared,
                directory,
                gate,
                peer,
                accepted,
            };
            match transport {
                Transport::DangerPlaintext => {
                    conn.serve(
                        Link::Plain(tcp),
                        ChannelBinding::NONE,
                        Vec::new(),
                        stop,
                        login_slot,
                    )
                    .await;
                }
                Transport::Tls(config) => {
                    // Boxed: the handshake's state is freed once it is done, so the task an
                    // idle player keeps is only as large as the session loop.
                    let handshake = Box::pin(tokio::time::timeout(
                        conn.shared.config.login_timeout,
                        link::accept_tls(tcp, config, CHANNEL_BINDING_LABEL),
                    ))
                    .await;
                    match handshake {
                        Ok(Ok((link, binding, early))) => {
                            conn.serve(link, ChannelBinding(binding), early, stop, login_slot)
                                .await;
                        }
                        Ok(Err(e)) => {
                            if e.kind() != io::ErrorKind::UnexpectedEof {
                                conn.gate.login_failed(peer.ip(), None, None);
                            }
                            conn.shared.notice(Notice::Refused {
                                peer,
                                why: format!("TLS handshake failed: {e}"),
                            });
                        }
                        Err(_) => {
                            conn.gate.login_failed(peer.ip(), None, None);
                            conn.shared.notice(Notice::Refused {
                                peer,
                                why: "TLS handshake did not finish within the login deadline"
                                    .into(),
                            });
                        }
                    }
                }
            }
            drop(permit);
        });
    }
}

impl ServerHandle {
    /// Subscribes to notices. A subscriber that falls more than 4,096 notices behind loses the
    /// oldest (it sees `RecvError::Lagged`), so a slow logger never holds the server back.
    pub fn subscribe(&self) -> broadcast::Receiver<Notice> {
        self.shared.notices.subscribe()
    }

    /// True if the player is online.
    pub fn is_online(&self, player_id: &PlayerId) -> bool {
        self.shared.presence().is_online(player_id)
    }

    /// The online players.
    pub fn online(&self) -> Vec<PlayerId> {
        self.shared.presence().online().copied().collect()
    }

    /// Connections held now.
    pub fn connections(&self) -> usize {
        self.shared.limits.max_connections - self.shared.slots.available_permits()
    }

    /// Tells a connected player its new configuration hash (it hears it in the next heartbeat
    /// reply). Returns false if the player is not connected.
    pub fn set_config_hash(&self, player_id: &PlayerId, hash: Option<ConfigHash>) -> bool {
        self.command(player_id, Command::SetConfigHash(hash))
    }

    /// Disconnects a player now, telling it why (for example after it was removed).
    pub fn disconnect(&self, player_id: &PlayerId, code: CloseCode, message: &str) -> bool {
        self.command(player_id, Command::Close(code, message.to_owned()))
    }

    fn command(&self, player_id: &PlayerId, command: Command) -> bool {
        let control = self
            .shared
            .connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(player_id)
            .map(|(_, c)| c.clone());
        match control {
            Some(control) => {
                control.push(command);
                true
            }
            None => false,
        }
    }
}

impl Shared {
    fn notice(&self, notice: Notice) {
        let _ = self.notices.send(notice);
    }

    fn presence(&self) -> std::sync::MutexGuard<'_, Presence> {
        self.presence.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` on the presence registry and publishes the changes it caused.
    fn with_presence(&self, f: impl FnOnce(&mut Presence)) {
        let mut events = Vec::new();
        {
            let mut presence = self.presence();
            f(&mut presence);
            while let Some(e) = presence.poll_event() {
                events.push(e);
            }
        }
        for e in events {
            self.notice(match e {
                PresenceEvent::Online { player_id } => Notice::Online { player_id },
                PresenceEvent::Offline { player_id, .. } => Notice::Offline { player_id },
                _ => continue,
            });
        }
    }
}

impl Control {
    fn push(&self, command: Command) {
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(command);
        self.notify.notify_one();
    }

    fn take(&self) -> Vec<Command> {
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

async fn presence_ticker(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = tick.tick() => shared.with_presence(|p| p.handle_timeout(Instant::now())),
            _ = stop.changed() => return,
        }
    }
}

/// Who a connection is.
struct Who {
    /// Tells this connection from a newer one of the same player.
    conn_id: u64,
    /// The player, once logged in.
    player: Option<PlayerId>,
    /// The gate refused the claimed player after its `Hello`.
    refused: bool,
    /// This connection's place among its source's logins in flight; given back at login.
    login_slot: Option<SourceSlot>,
}

/// One connection's task.
struct Conn<D> {
    shared: Arc<Shared>,
    directory: Arc<D>,
    gate: Arc<dyn SourceGate>,
    peer: SocketAddr,
    accepted: Instant,
}

impl<D: PlayerDirectory> Conn<D> {
    async fn serve(
        self,
        mut link: Link,
        binding: ChannelBinding,
        early: Vec<u8>,
        mut stop: watch::Receiver<bool>,
        login_slot: SourceSlot,
    ) {
        let shared = &self.shared;
        let mut nonce = [0u8; 32];
        if shared.rng.fill(&mut nonce).is_err() {
            return; // no randomness, no login
        }
        let mut machine =
            ServerConnection::new(shared.config.clone(), self.accepted, nonce, binding);
        let control = Arc::new(Control::default());
        let mut who = Who {
            conn_id: shared.next_id.fetch_add(1, Ordering::Relaxed),
            player: None,
            refused: false,
            login_slot: Some(login_slot),
        };
        if !early.is_empty() {
            let _ = machine.handle_input(Instant::now(), &early);
        }
        drop(early);
        let mut out = Vec::new();
        loop {
            while let Some(event) = machine.poll_event() {
                self.on_event(event, &mut machine, &mut who, &control).await;
            }
            while machine.poll_transmit(&mut out).is_some() {}
            if !out.is_empty() || link.has_output() {
                let written =
                    tokio::time::timeout(shared.limits.write_timeout, link.write_all(&out)).await;
                out = Vec::new(); // an idle connection keeps no output buffer
                if !matches!(written, Ok(Ok(()))) {
                    machine.handle_close(Instant::now());
                    continue;
                }
            }
            if machine.state() == ServerState::Closed {
                let _ = tokio::time::timeout(Duration::from_secs(1), link.shutdown()).await;
                break;
            }
            let deadline = machine.poll_timeout();
            tokio::select! {
                ready = link.readable() => {
                    let read = match ready {
                        Ok(()) => link.read(&mut |data| {
                            let _ = machine.handle_input(Instant::now(), data);
                        }),
                        Err(_) => Read::Closed,
                    };
                    if matches!(read, Read::Closed) {
                        machine.handle_close(Instant::now());
                    }
                },
                () = sleep_until(deadline) => machine.handle_timeout(Instant::now()),
                () = control.notify.notified() => {
                    for command in control.take() {
                        match command {
                            Command::SetConfigHash(h) => machine.set_config_hash(h),
                            Command::Close(code, msg) => { let _ = machine.close(Instant::now(), code, &msg); }
                        }
                    }
                },
                _ = stop.changed() => {
                    let _ = machine.close(Instant::now(), CloseCode::Normal, "server shutting down");
                }
            }
        }
        if let Some(player_id) = who.player {
            let mut connections = shared
                .connections
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if connections
                .get(&player_id)
                .is_some_and(|(id, _)| *id == who.conn_id)
            {
                connections.remove(&player_id);
            }
        }
    }

    /// Acts on one event of the connection's machine.
    async fn on_event(
        &self,
        event: ServerEvent,
        machine: &mut ServerConnection,
        who: &mut Who,
        control: &Arc<Control>,
    ) {
        let shared = &self.shared;
        match event {
            ServerEvent::LookupPlayer { player_id, .. } => {
                if let Err(why) = self.gate.admit_player(self.peer.ip(), &player_id) {
                    who.refused = true;
                    shared.notice(Notice::Refused {
                        peer: self.peer,
                        why,
                    });
                    let _ = machine.close(Instant::now(), CloseCode::AuthFailed, REFUSED);
                    return;
                }
                // Boxed: a directory's future can be large and runs once.
                let lookup = Box::pin(self.directory.lookup(player_id)).await;
                let _ = machine.resolve_player(Instant::now(), lookup);
            }
            ServerEvent::LoggedIn { player_id } => {
                who.player = Some(player_id);
                who.login_slot = None;
                self.gate.logged_in(self.peer.ip(), &player_id);
                self.register(player_id, who.conn_id, control);
                shared.notice(Notice::LoggedIn {
                    player_id,
                    peer: self.peer,
                });
                shared.with_presence(|p| p.seen(Instant::now(), player_id));
            }
            ServerEvent::Heartbeat {
                player_id, status, ..
            } => {
                shared.with_presence(|p| p.seen(Instant::now(), player_id));
                shared.notice(Notice::Heartbeat { player_id, status });
            }
            // A refused claim was already reported; its close is not a new failure.
            ServerEvent::Closed { reason } if !who.refused => {
                self.closed(who.player, machine, reason);
            }
            _ => {}
        }
    }

    /// Records this connection as the player's; an older one is told it was replaced.
    fn register(&self, player_id: PlayerId, conn_id: u64, control: &Arc<Control>) {
        let old = self
            .shared
            .connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(player_id, (conn_id, control.clone()));
        if let Some((_, old)) = old {
            old.push(Command::Close(
                CloseCode::Replaced,
                "a newer connection logged in as this player".into(),
            ));
        }
    }

    fn closed(&self, player: Option<PlayerId>, machine: &ServerConnection, reason: SessionError) {
        let shared = &self.shared;
        if let Some(player_id) = player {
            if matches!(
                reason,
                SessionError::PeerClosed {
                    code: CloseCode::Normal,
                    ..
                }
            ) {
                shared.with_presence(|p| p.gone(Instant::now(), player_id));
            }
            shared.notice(Notice::Disconnected { player_id, reason });
        } else {
            let claimed = machine.player_id();
            self.gate
                .login_failed(self.peer.ip(), claimed.as_ref(), Some(&reason));
            shared.notice(Notice::LoginFailed {
                claimed,
                peer: self.peer,
                reason,
            });
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(t) => tokio::time::sleep_until(t.into()).await,
        None => std::future::pending().await,
    }
}

/// How a player reaches the server.
#[derive(Clone)]
pub enum PlayerTransport {
    /// TLS with this configuration (for example [`crate::tls::pinned_client_config`]).
    Tls {
        /// The client configuration.
        config: Arc<rustls::ClientConfig>,
        /// The name sent in SNI (the pinned verifier ignores it).
        server_name: ServerName<'static>,
    },
    /// No encryption. Tests and labs only.
    DangerPlaintext,
}

/// Runs one player session: connect, log in, heartbeat until the session closes or `shutdown`
/// completes. Every client event is passed to `on_event` (including the final `Closed`).
/// Returns why the session ended. Reconnecting (with [`fleetwire_session::Backoff`]) is the
/// caller's loop.
pub async fn run_player(
    addr: SocketAddr,
    transport: &PlayerTransport,
    config: Arc<ClientConfig>,
    status: watch::Receiver<PlayerStatus>,
    on_event: impl FnMut(&ClientEvent),
    shutdown: impl Future<Output = ()>,
) -> io::Result<SessionError> {
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    match transport {
        PlayerTransport::DangerPlaintext => Ok(drive_player(
            tcp,
            ChannelBinding::NONE,
            config,
            status,
            on_event,
            shutdown,
        )
        .await),
        PlayerTransport::Tls {
            config: tls,
            server_name,
        } => {
            let stream = TlsConnector::from(tls.clone())
                .connect(server_name.clone(), tcp)
                .await?;
            let binding = stream
                .get_ref()
                .1
                .export(CHANNEL_BINDING_LABEL)
                .map_err(io::Error::other)?;
            Ok(drive_player(
                stream,
                ChannelBinding(binding),
                config,
                status,
                on_event,
                shutdown,
            )
            .await)
        }
    }
}

async fn drive_player<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    binding: ChannelBinding,
    config: Arc<ClientConfig>,
    mut status: watch::Receiver<PlayerStatus>,
    mut on_event: impl FnMut(&ClientEvent),
    shutdown: impl Future<Output = ()>,
) -> SessionError {
    let mut client = Client::new(config, Instant::now(), binding);
    let _ = client.set_status(status.borrow_and_update().clone());
    tokio::pin!(shutdown);
    let mut out = Vec::new();
    let mut buf = [0u8; 512];
    let mut status_open = true;
    loop {
        while let Some(event) = client.poll_event() {
            on_event(&event);
            if let ClientEvent::Closed { reason } = event {
                while client.poll_transmit(&mut out).is_some() {}
                let _ = stream.write_all(&out).await;
                let _ = stream.shutdown().await;
                return reason;
            }
        }
        while client.poll_transmit(&mut out).is_some() {}
        if !out.is_empty() {
            let written = async {
                stream.write_all(&out).await?;
                stream.flush().await
            };
            if written.await.is_err() {
                client.handle_close(Instant::now());
            }
            out.clear();
            continue;
        }
        let deadline = client.poll_timeout();
        tokio::select! {
            read = stream.read(&mut buf) => match read {
                Ok(0) | Err(_) => client.handle_close(Instant::now()),
                Ok(n) => { let _ = client.handle_input(Instant::now(), &buf[..n]); }
            },
            () = sleep_until(deadline) => client.handle_timeout(Instant::now()),
            changed = status.changed(), if status_open => match changed {
                Ok(()) => { let _ = client.set_status(status.borrow_and_update().clone()); }
                Err(_) => status_open = false,
            },
            () = &mut shutdown => { let _ = client.close(Instant::now(), "player shutting down"); }
        }
    }
}
