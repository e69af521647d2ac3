//! Remote commands over UDP 4700 with tokio: one task per socket owns the sans-IO machine
//! ([`fleetwire_command::CommandServer`] or [`fleetwire_command::CommandPlayer`]), reads the
//! wall clock, and moves datagrams. Everything else goes through a handle (requests answered
//! over a oneshot) and an event channel.
//!
//! The TCP fallback: when the machine routes a datagram into the player's session, the driver
//! does not own that session; it hands the sealed bytes out as
//! [`ServerDriverEvent::ViaSession`] / [`PlayerDriverEvent::ViaSession`] for the session
//! owner to send as fleetwire-session's `CommandDatagram` message, and takes what arrived that
//! way back with `session_input`.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use std::sync::Arc;
//! use fleetwire_command::{Action, CommandSpec, ServerConfig};
//! use fleetwire_tokio::command::*;
//!
//! let (handle, task, mut events) =
//!     CommandServerTask::bind("0.0.0.0:4700".parse().unwrap(), Arc::new(ServerConfig::default())).await?;
//! tokio::spawn(task.run(std::future::pending()));
//! // On every login: handle.player_online(player, key, session_addr).await;
//! while let Some(ev) = events.recv().await {
//!     match ev {
//!         ServerDriverEvent::Command(e) => println!("{e:?}"),
//!         ServerDriverEvent::ViaSession { player, datagram } => { /* session.send_command_datagram */ }
//!         _ => {}
//!     }
//! }
//! # let _ = handle; Ok(())
//! # }
//! ```

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fleetwire_command::{
    ApiMisuse, CommandId, CommandInfo, CommandKey, CommandPlayer, CommandServer, CommandSpec,
    Outcome, PlayerConfig, PlayerEvent, Route, RoutePolicy, ServerConfig, ServerEvent, UnixTime,
};
use fleetwire_session::PlayerId;
use ring::rand::{SecureRandom, SystemRandom};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

/// Events for the server application.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServerDriverEvent {
    /// From the machine: a state change, a route change.
    Command(ServerEvent),
    /// Send this sealed datagram inside `player`'s session (its `CommandDatagram` message).
    ViaSession {
        /// The player.
        player: PlayerId,
        /// The sealed datagram.
        datagram: Vec<u8>,
    },
}

/// Events for the player application.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PlayerDriverEvent {
    /// From the machine: run a command (then [`PlayerHandle::report`]).
    Command(PlayerEvent),
    /// Send this sealed datagram inside the session (its `CommandDatagram` message).
    ViaSession(Vec<u8>),
}

/// Why a handle call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DriverError {
    /// The machine refused the call.
    #[error(transparent)]
    Misuse(#[from] ApiMisuse),
    /// The driver task has stopped.
    #[error("the command driver has stopped")]
    Stopped,
}

type Reply<T> = oneshot::Sender<T>;

enum ServerRequest {
    Send(PlayerId, CommandSpec, Reply<Result<CommandId, ApiMisuse>>),
    Cancel(PlayerId, CommandId, Reply<Result<(), ApiMisuse>>),
    Online(
        PlayerId,
        CommandKey,
        SocketAddr,
        Reply<Result<(), ApiMisuse>>,
    ),
    Offline(PlayerId),
    Policy(PlayerId, RoutePolicy, Reply<Result<(), ApiMisuse>>),
    SessionInput(PlayerId, Vec<u8>),
    List(PlayerId, Reply<(Vec<CommandInfo>, Option<Route>)>),
}

/// Talks to a running [`CommandServerTask`]. Cheap to clone. Calls wait for the task, so
/// spawn its `run` first.
#[derive(Debug, Clone)]
pub struct CommandHandle {
    tx: mpsc::Sender<ServerRequest>,
}

impl std::fmt::Debug for ServerRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerRequest")
    }
}

impl CommandHandle {
    /// Queues a command (see `CommandServer::send`).
    pub async fn send(
        &self,
        player: PlayerId,
        spec: CommandSpec,
    ) -> Result<CommandId, DriverError> {
        let (tx, rx) = oneshot::channel();
        self.request(ServerRequest::Send(player, spec, tx), rx)
            .await?
            .map_err(Into::into)
    }

    /// Cancels a command not yet delivered.
    pub async fn cancel(&self, player: PlayerId, id: CommandId) -> Result<(), DriverError> {
        let (tx, rx) = oneshot::channel();
        self.request(ServerRequest::Cancel(player, id, tx), rx)
            .await?
            .map_err(Into::into)
    }

    /// A player logged in: its command key and session address.
    pub async fn player_online(
        &self,
        player: PlayerId,
        key: CommandKey,
        session_addr: SocketAddr,
    ) -> Result<(), DriverError> {
        let (tx, rx) = oneshot::channel();
        self.request(ServerRequest::Online(player, key, session_addr, tx), rx)
            .await?
            .map_err(Into::into)
    }

    /// A player's session ended.
    pub async fn player_offline(&self, player: PlayerId) -> Result<(), DriverError> {
        self.tx
            .send(ServerRequest::Offline(player))
            .await
            .map_err(|_| DriverError::Stopped)
    }

    /// The operator's route setting.
    pub async fn set_route_policy(
        &self,
        player: PlayerId,
        policy: RoutePolicy,
    ) -> Result<(), DriverError> {
        let (tx, rx) = oneshot::channel();
        self.request(ServerRequest::Policy(player, policy, tx), rx)
            .await?
            .map_err(Into::into)
    }

    /// A sealed datagram that arrived inside `player`'s session.
    pub async fn session_input(
        &self,
        player: PlayerId,
        datagram: Vec<u8>,
    ) -> Result<(), DriverError> {
        self.tx
            .send(ServerRequest::SessionInput(player, datagram))
            .await
            .map_err(|_| DriverError::Stopped)
    }

    /// A player's unfinished commands and its current route.
    pub async fn commands(
        &self,
        player: PlayerId,
    ) -> Result<(Vec<CommandInfo>, Option<Route>), DriverError> {
        let (tx, rx) = oneshot::channel();
        self.request(ServerRequest::List(player, tx), rx).await
    }

    async fn request<T>(
        &self,
        req: ServerRequest,
        rx: oneshot::Receiver<T>,
    ) -> Result<T, DriverError> {
        self.tx.send(req).await.map_err(|_| DriverError::Stopped)?;
        rx.await.map_err(|_| DriverError::Stopped)
    }
}

/// The server's command socket and machine, ready to run.
#[derive(Debug)]
pub struct CommandServerTask {
    socket: UdpSocket,
    machine: CommandServer,
    rx: mpsc::Receiver<ServerRequest>,
    events: mpsc::Sender<ServerDriverEvent>,
}

impl CommandServerTask {
    /// Binds the UDP socket (`0.0.0.0:4700` in production). Returns the handle, the task to run
    /// and the event stream.
    pub async fn bind(
        addr: SocketAddr,
        config: Arc<ServerConfig>,
    ) -> io::Result<(CommandHandle, Self, mpsc::Receiver<ServerDriverEvent>)> {
        let socket = UdpSocket::bind(addr).await?;
        let (tx, rx) = mpsc::channel(256);
        let (etx, erx) = mpsc::channel(1024);
        let machine = CommandServer::new(config, wall_clock(), random_seed());
        Ok((
            CommandHandle { tx },
            Self {
                socket,
                machine,
                rx,
                events: etx,
            },
            erx,
        ))
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Runs until `shutdown` completes or every handle is dropped.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) -> io::Result<()> {
        tokio::pin!(shutdown);
        let mut rbuf = vec![0u8; 2048];
        let mut out = Vec::new();
        loop {
            while let Some(t) = self.machine.poll_transmit(&mut out) {
                let datagram = &out[out.len() - t.transmit.len..];
                if let Some(to) = t.transmit.to {
                    if let Err(e) = self.socket.send_to(datagram, to).await {
                        tracing::debug!(%to, error = %e, "command datagram not sent");
                    }
                } else {
                    let ev = ServerDriverEvent::ViaSession {
                        player: t.player,
                        datagram: datagram.to_vec(),
                    };
                    if self.events.send(ev).await.is_err() {
                        return Ok(());
                    }
                }
                out.clear();
            }
            while let Some(e) = self.machine.poll_event() {
                if self
                    .events
                    .send(ServerDriverEvent::Command(e))
                    .await
                    .is_err()
                {
                    return Ok(());
                }
            }
            let sleep = sleep_until_wall(self.machine.poll_timeout());
            tokio::select! {
                () = &mut shutdown => break,
                r = self.socket.recv_from(&mut rbuf) => match r {
                    Ok((n, from)) => {
                        if let Err(e) = self.machine.handle_input(wall_clock(), from, &rbuf[..n]) {
                            tracing::debug!(%from, error = %e, "command datagram dropped");
                        }
                    }
                    // ICMP port unreachable and the like surface here on some systems.
                    Err(e) => tracing::debug!(error = %e, "command socket receive error"),
                },
                req = self.rx.recv() => match req {
                    Some(req) => self.on_request(req),
                    None => break,
                },
                () = sleep => self.machine.handle_timeout(wall_clock()),
            }
        }
        self.machine.handle_close(wall_clock());
        Ok(())
    }

    fn on_request(&mut self, req: ServerRequest) {
        let now = wall_clock();
        let m = &mut self.machine;
        match req {
            ServerRequest::Send(p, spec, reply) => drop(reply.send(m.send(now, p, spec))),
            ServerRequest::Cancel(p, id, reply) => drop(reply.send(m.cancel(now, p, id))),
            ServerRequest::Online(p, key, addr, reply) => {
                drop(reply.send(m.player_online(now, p, key, addr)));
            }
            ServerRequest::Offline(p) => m.player_offline(now, p),
            ServerRequest::Policy(p, policy, reply) => {
                drop(reply.send(m.set_route_policy(now, p, policy)));
            }
            ServerRequest::SessionInput(p, d) => {
                if let Err(e) = m.handle_session_input(now, p, &d) {
                    tracing::debug!(player = %p, error = %e, "command datagram from session dropped");
                }
            }
            ServerRequest::List(p, reply) => drop(reply.send((m.commands(p), m.route_to(p)))),
        }
    }
}

enum PlayerRequest {
    Report(CommandId, Outcome, Reply<Result<(), ApiMisuse>>),
    Rekey(CommandKey),
    SessionInput(Vec<u8>),
}

/// Talks to a running [`CommandPlayerTask`]. Cheap to clone. Calls wait for the task, so
/// spawn its `run` first.
#[derive(Debug, Clone)]
pub struct PlayerHandle {
    tx: mpsc::Sender<PlayerRequest>,
}

impl std::fmt::Debug for PlayerRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PlayerRequest")
    }
}

impl PlayerHandle {
    /// Reports how a command ended.
    pub async fn report(&self, id: CommandId, outcome: Outcome) -> Result<(), DriverError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(PlayerRequest::Report(id, outcome, tx))
            .await
            .map_err(|_| DriverError::Stopped)?;
        rx.await
            .map_err(|_| DriverError::Stopped)?
            .map_err(Into::into)
    }

    /// A new login's key.
    pub async fn rekey(&self, key: CommandKey) -> Result<(), DriverError> {
        self.tx
            .send(PlayerRequest::Rekey(key))
            .await
            .map_err(|_| DriverError::Stopped)
    }

    /// A sealed datagram that arrived inside the session.
    pub async fn session_input(&self, datagram: Vec<u8>) -> Result<(), DriverError> {
        self.tx
            .send(PlayerRequest::SessionInput(datagram))
            .await
            .map_err(|_| DriverError::Stopped)
    }
}

/// The player's command socket and machine, ready to run.
#[derive(Debug)]
pub struct CommandPlayerTask {
    socket: UdpSocket,
    machine: CommandPlayer,
    rx: mpsc::Receiver<PlayerRequest>,
    events: mpsc::Sender<PlayerDriverEvent>,
}

impl CommandPlayerTask {
    /// Binds the player's UDP socket (`0.0.0.0:4700`, or any port: the server learns it from
    /// the player's Hello) under the key of the current login.
    pub async fn bind(
        addr: SocketAddr,
        config: Arc<PlayerConfig>,
        key: CommandKey,
    ) -> io::Result<(PlayerHandle, Self, mpsc::Receiver<PlayerDriverEvent>)> {
        let socket = UdpSocket::bind(addr).await?;
        let (tx, rx) = mpsc::channel(64);
        let (etx, erx) = mpsc::channel(256);
        let machine = CommandPlayer::new(config, wall_clock(), key, random_seed());
        Ok((
            PlayerHandle { tx },
            Self {
                socket,
                machine,
                rx,
                events: etx,
            },
            erx,
        ))
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Runs until `shutdown` completes or every handle is dropped.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) -> io::Result<()> {
        tokio::pin!(shutdown);
        let mut rbuf = vec![0u8; 2048];
        let mut out = Vec::new();
        loop {
            while let Some(t) = self.machine.poll_transmit(&mut out) {
                let datagram = &out[out.len() - t.len..];
                if let Some(to) = t.to {
                    if let Err(e) = self.socket.send_to(datagram, to).await {
                        tracing::debug!(%to, error = %e, "command datagram not sent");
                    }
                } else {
                    let ev = PlayerDriverEvent::ViaSession(datagram.to_vec());
                    if self.events.send(ev).await.is_err() {
                        return Ok(());
                    }
                }
                out.clear();
            }
            while let Some(e) = self.machine.poll_event() {
                if self
                    .events
                    .send(PlayerDriverEvent::Command(e))
                    .await
                    .is_err()
                {
                    return Ok(());
                }
            }
            let sleep = sleep_until_wall(self.machine.poll_timeout());
            tokio::select! {
                () = &mut shutdown => break,
                r = self.socket.recv_from(&mut rbuf) => match r {
                    Ok((n, from)) => {
                        if let Err(e) = self.machine.handle_input(wall_clock(), from, &rbuf[..n]) {
                            tracing::debug!(%from, error = %e, "command datagram dropped");
                        }
                    }
                    Err(e) => tracing::debug!(error = %e, "command socket receive error"),
                },
                req = self.rx.recv() => match req {
                    Some(PlayerRequest::Report(id, outcome, reply)) => {
                        drop(reply.send(self.machine.report(wall_clock(), id, outcome)));
                    }
                    Some(PlayerRequest::Rekey(key)) => self.machine.rekey(wall_clock(), key),
                    Some(PlayerRequest::SessionInput(d)) => {
                        if let Err(e) = self.machine.handle_session_input(wall_clock(), &d) {
                            tracing::debug!(error = %e, "command datagram from session dropped");
                        }
                    }
                    None => break,
                },
                () = sleep => self.machine.handle_timeout(wall_clock()),
            }
        }
        self.machine.handle_close(wall_clock());
        Ok(())
    }
}

/// The wall clock, as the command machines take it.
pub fn wall_clock() -> UnixTime {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    UnixTime::from_millis(ms)
}

/// Sleeps until the wall clock reaches `at` (forever for `None`). Re-evaluated on every loop
/// turn, so a clock step only delays or hastens one wake-up.
async fn sleep_until_wall(at: Option<UnixTime>) {
    match at {
        Some(at) => {
            let wait = at.millis_since(wall_clock());
            tokio::time::sleep(Duration::from_millis(wait)).await;
        }
        None => std::future::pending::<()>().await,
    }
}

fn random_seed() -> u64 {
    let mut b = [0u8; 8];
    // A failing system RNG only makes the jitter predictable; it is not a secret.
    let _ = SystemRandom::new().fill(&mut b);
    u64::from_le_bytes(b)
}
