//! Multi-screen sync with tokio: one task owns the two UDP sockets (clock 16732, timeline
//! 16733), a [`fleetwire_sync::SyncMember`] and, optionally, a LAN-share machine
//! ([`fleetwire_sync::share::Share`]) on the timeline socket; datagrams there are handed to
//! one or the other by type ([`fleetwire_sync::wire::kind`]). The application talks to it
//! through a [`MemberHandle`] and reads [`MemberEvent`]s; file data never enters the driver
//! (the application answers `ChunkNeeded` and writes `ChunkVerified`).
//!
//! Receive times are taken as the socket read returns, so the clock exchange measures the
//! network, not the task's queue.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use fleetwire_session::PlayerId;
use fleetwire_sync::share::{FetchId, Share, ShareConfig, ShareEvent};
use fleetwire_sync::wire::Kind;
use fleetwire_sync::{
    ApiMisuse, ClockStatus, GroupKey, Playlist, Port, Role, SyncConfig, SyncEvent, SyncMember,
};
use fleetwire_transfer::{Partial, SignedManifest};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

use crate::command::wall_clock;

/// The member's two sockets. Bind them first (their ports go into the other members'
/// configuration), then [`MemberTask::new`].
#[derive(Debug)]
pub struct SyncSockets {
    clock: UdpSocket,
    timeline: UdpSocket,
}

impl SyncSockets {
    /// Binds the clock socket (`0.0.0.0:16732`) and the timeline socket (`0.0.0.0:16733`).
    /// Set `SO_BROADCAST` yourself (`set_broadcast`) if `announce_to` is a broadcast address.
    pub async fn bind(clock: SocketAddr, timeline: SocketAddr) -> io::Result<Self> {
        Ok(Self {
            clock: UdpSocket::bind(clock).await?,
            timeline: UdpSocket::bind(timeline).await?,
        })
    }

    /// The clock socket's address.
    pub fn clock_addr(&self) -> io::Result<SocketAddr> {
        self.clock.local_addr()
    }

    /// The timeline socket's address.
    pub fn timeline_addr(&self) -> io::Result<SocketAddr> {
        self.timeline.local_addr()
    }

    /// Allows sending to a broadcast address on the timeline socket.
    pub fn set_broadcast(&self, on: bool) -> io::Result<()> {
        self.timeline.set_broadcast(on)
    }
}

/// Events for the application.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum MemberEvent {
    /// From the sync member (`Play`, `LeaderChanged`, `Synchronized`).
    Sync(SyncEvent),
    /// From the share machine.
    Share(ShareEvent),
}

/// Why a handle call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MemberError {
    /// A machine refused the call.
    #[error(transparent)]
    Misuse(#[from] ApiMisuse),
    /// The member was started without LAN sharing.
    #[error("LAN sharing is not enabled on this member")]
    NoShare,
    /// The driver task has stopped.
    #[error("the sync driver has stopped")]
    Stopped,
}

/// The member's state, for status pages and benchmarks.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberStatus {
    /// Leading or following.
    pub role: Role,
    /// The leader followed.
    pub leader: Option<PlayerId>,
    /// The term.
    pub term: u64,
    /// The clock, once synchronized.
    pub clock: Option<ClockStatus>,
    /// The group clock now, once synchronized.
    pub group_now: Option<u64>,
}

type Reply<T> = oneshot::Sender<T>;

enum Request {
    Playlist(Playlist, Reply<Result<(), ApiMisuse>>),
    Key(GroupKey, Reply<Result<(), ApiMisuse>>),
    Status(Reply<MemberStatus>),
    Seed(SignedManifest, Reply<Result<(), MemberError>>),
    Provide(u64, u64, u32, Vec<u8>, Reply<Result<(), MemberError>>),
    Fetch(
        SignedManifest,
        Vec<SocketAddr>,
        Option<Partial>,
        Reply<Result<FetchId, MemberError>>,
    ),
    Stored(FetchId, u32, Reply<Result<(), MemberError>>),
}

/// Talks to a running [`MemberTask`]. Cheap to clone. Calls wait for the task, so spawn its
/// `run` first.
#[derive(Debug, Clone)]
pub struct MemberHandle {
    tx: mpsc::Sender<Request>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Request")
    }
}

impl MemberHandle {
    /// The playlist the server assigned.
    pub async fn set_playlist(&self, playlist: Playlist) -> Result<(), MemberError> {
        let (tx, rx) = oneshot::channel();
        Ok(self.call(Request::Playlist(playlist, tx), rx).await??)
    }

    /// A new group key (rotation).
    pub async fn set_key(&self, key: GroupKey) -> Result<(), MemberError> {
        let (tx, rx) = oneshot::channel();
        Ok(self.call(Request::Key(key, tx), rx).await??)
    }

    /// Role, leader and clock.
    pub async fn status(&self) -> Result<MemberStatus, MemberError> {
        let (tx, rx) = oneshot::channel();
        self.call(Request::Status(tx), rx).await
    }

    /// Offers a file to peers (LAN sharing).
    pub async fn seed(&self, manifest: SignedManifest) -> Result<(), MemberError> {
        let (tx, rx) = oneshot::channel();
        self.call(Request::Seed(manifest, tx), rx).await?
    }

    /// Answers `ShareEvent::ChunkNeeded`.
    pub async fn provide_chunk(
        &self,
        file_id: u64,
        version: u64,
        index: u32,
        data: Vec<u8>,
    ) -> Result<(), MemberError> {
        let (tx, rx) = oneshot::channel();
        self.call(Request::Provide(file_id, version, index, data, tx), rx)
            .await?
    }

    /// Fetches a file from peers (their timeline addresses).
    pub async fn fetch(
        &self,
        manifest: SignedManifest,
        peers: Vec<SocketAddr>,
        partial: Option<Partial>,
    ) -> Result<FetchId, MemberError> {
        let (tx, rx) = oneshot::channel();
        self.call(Request::Fetch(manifest, peers, partial, tx), rx)
            .await?
    }

    /// Answers `ShareEvent::ChunkVerified` once the chunk is durable.
    pub async fn chunk_stored(&self, fetch: FetchId, index: u32) -> Result<(), MemberError> {
        let (tx, rx) = oneshot::channel();
        self.call(Request::Stored(fetch, index, tx), rx).await?
    }

    async fn call<T>(&self, req: Request, rx: oneshot::Receiver<T>) -> Result<T, MemberError> {
        self.tx.send(req).await.map_err(|_| MemberError::Stopped)?;
        rx.await.map_err(|_| MemberError::Stopped)
    }
}

/// A sync member (and optional share machine) on its sockets, ready to run.
#[derive(Debug)]
pub struct MemberTask {
    sockets: SyncSockets,
    member: SyncMember,
    share: Option<Share>,
    rx: mpsc::Receiver<Request>,
    events: mpsc::Sender<MemberEvent>,
}

impl MemberTask {
    /// A member on `sockets`; `config.clock_port` is set from the clock socket. With `share`,
    /// LAN sharing runs on the timeline socket too.
    pub fn new(
        sockets: SyncSockets,
        mut config: SyncConfig,
        key: GroupKey,
        share: Option<ShareConfig>,
    ) -> io::Result<(MemberHandle, Self, mpsc::Receiver<MemberEvent>)> {
        config.clock_port = sockets.clock_addr()?.port();
        let now = Instant::now();
        let member = SyncMember::new(Arc::new(config), now, wall_clock(), key.clone());
        let share = share.map(|c| Share::new(Arc::new(c), now, wall_clock(), key));
        let (tx, rx) = mpsc::channel(64);
        let (etx, erx) = mpsc::channel(1024);
        Ok((
            MemberHandle { tx },
            Self {
                sockets,
                member,
                share,
                rx,
                events: etx,
            },
            erx,
        ))
    }

    /// Runs until `shutdown` completes or every handle is dropped.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) -> io::Result<()> {
        tokio::pin!(shutdown);
        let mut cbuf = vec![0u8; 2048];
        let mut tbuf = vec![0u8; 2048];
        let mut out = Vec::new();
        loop {
            if !self.flush(&mut out).await {
                return Ok(());
            }
            let next = [
                self.member.poll_timeout(),
                self.share.as_ref().and_then(Share::poll_timeout),
            ]
            .into_iter()
            .flatten()
            .min();
            let sleep = async move {
                match next {
                    Some(t) => tokio::time::sleep_until(t.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = &mut shutdown => break,
                r = self.sockets.clock.recv_from(&mut cbuf) => {
                    let now = Instant::now();
                    if let Ok((n, from)) = r {
                        let _ = self.member.handle_input(now, from, &cbuf[..n]);
                    }
                }
                r = self.sockets.timeline.recv_from(&mut tbuf) => {
                    let now = Instant::now();
                    if let Ok((n, from)) = r {
                        let data = &tbuf[..n];
                        match (fleetwire_sync::wire::kind(data), self.share.as_mut()) {
                            (Some(Kind::Share), Some(share)) => {
                                let _ = share.handle_input(now, from, data);
                            }
                            (Some(Kind::Sync), _) => {
                                let _ = self.member.handle_input(now, from, data);
                            }
                            _ => {}
                        }
                    }
                }
                req = self.rx.recv() => match req {
                    Some(req) => self.on_request(req),
                    None => break,
                },
                () = sleep => {
                    let now = Instant::now();
                    self.member.handle_timeout(now);
                    if let Some(s) = self.share.as_mut() {
                        s.handle_timeout(now);
                    }
                }
            }
        }
        let now = Instant::now();
        self.member.handle_close(now);
        if let Some(s) = self.share.as_mut() {
            s.handle_close(now);
        }
        Ok(())
    }

    /// Sends everything queued and forwards events. False if the application is gone.
    async fn flush(&mut self, out: &mut Vec<u8>) -> bool {
        while let Some(t) = self.member.poll_transmit(out) {
            if let Some(to) = t.transmit.to {
                let socket = match t.port {
                    Port::Clock => &self.sockets.clock,
                    Port::Timeline => &self.sockets.timeline,
                };
                if let Err(e) = socket.send_to(out, to).await {
                    tracing::debug!(%to, error = %e, "sync datagram not sent");
                }
            }
            out.clear();
        }
        if let Some(share) = self.share.as_mut() {
            while let Some(t) = share.poll_transmit(out) {
                if let Some(to) = t.to {
                    if let Err(e) = self.sockets.timeline.send_to(out, to).await {
                        tracing::debug!(%to, error = %e, "share datagram not sent");
                    }
                }
                out.clear();
            }
        }
        while let Some(e) = self.member.poll_event() {
            if self.events.send(MemberEvent::Sync(e)).await.is_err() {
                return false;
            }
        }
        if let Some(share) = self.share.as_mut() {
            while let Some(e) = share.poll_event() {
                if self.events.send(MemberEvent::Share(e)).await.is_err() {
                    return false;
                }
            }
        }
        true
    }

    fn on_request(&mut self, req: Request) {
        let now = Instant::now();
        match req {
            Request::Playlist(p, reply) => drop(reply.send(self.member.set_playlist(now, p))),
            Request::Key(k, reply) => {
                if let Some(s) = self.share.as_mut() {
                    s.set_key(k.clone());
                }
                drop(reply.send(self.member.set_key(k)));
            }
            Request::Status(reply) => {
                let m = &self.member;
                drop(reply.send(MemberStatus {
                    role: m.role(),
                    leader: m.leader(),
                    term: m.term(),
                    clock: m.clock(now),
                    group_now: m.group_time(now),
                }));
            }
            Request::Seed(manifest, reply) => {
                drop(reply.send(self.share_mut().map(|s| s.seed(manifest))));
            }
            Request::Provide(f, v, i, data, reply) => {
                let r = self
                    .share_mut()
                    .and_then(|s| s.provide_chunk(now, f, v, i, &data).map_err(Into::into));
                drop(reply.send(r));
            }
            Request::Fetch(m, peers, partial, reply) => {
                let r = self
                    .share_mut()
                    .and_then(|s| s.fetch(now, m, peers, partial).map_err(Into::into));
                drop(reply.send(r));
            }
            Request::Stored(fetch, index, reply) => {
                let r = self
                    .share_mut()
                    .and_then(|s| s.chunk_stored(now, fetch, index).map_err(Into::into));
                drop(reply.send(r));
            }
        }
    }

    fn share_mut(&mut self) -> Result<&mut Share, MemberError> {
        self.share.as_mut().ok_or(MemberError::NoShare)
    }
}
