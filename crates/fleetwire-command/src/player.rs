//! The player side: opens the server's datagrams, runs each command once, acknowledges it on
//! the path it came by, and reports results until the server confirms them.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use fleetwire_core::{Transmit, UnixTime};

use crate::error::{ApiMisuse, CommandError};
use crate::key::{CommandKey, Direction};
use crate::model::{Command, CommandId, MAX_FAILURE_MESSAGE, Outcome, Route};
use crate::replay::ReplayWindow;
use crate::rng::Jitter;
use crate::server::millis;
use crate::wire::{self, Frame, HEADER_LEN, Header, MAX_PLAINTEXT_LEN};

/// How a player receives commands.
#[derive(Debug, Clone)]
pub struct PlayerConfig {
    /// The server's command address (UDP 4700). Datagrams from anywhere else are dropped (a
    /// server on a multi-homed host must answer from the address players send to).
    pub server: SocketAddr,
    /// How often the player says Hello over UDP when otherwise silent, so the server learns
    /// its address and a NAT keeps the mapping open. Default 25 s.
    pub keepalive: Duration,
    /// First retransmission timeout of a result. Default 1 s.
    pub initial_rto: Duration,
    /// Ceiling of the result retransmission timeout. Default 30 s.
    pub max_rto: Duration,
    /// Most command ids remembered for duplicate suppression. Default 4096.
    pub max_remembered: usize,
    /// How long past a command's time-to-live its id is remembered and its result resent.
    /// Default 1 min.
    pub grace: Duration,
}

impl PlayerConfig {
    /// Defaults for a server at `server`.
    pub fn new(server: SocketAddr) -> Self {
        Self {
            server,
            keepalive: Duration::from_secs(25),
            initial_rto: Duration::from_secs(1),
            max_rto: Duration::from_secs(30),
            max_remembered: 4096,
            grace: Duration::from_secs(60),
        }
    }
}

/// What the player application must do.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PlayerEvent {
    /// Run this command, then report how it went with [`CommandPlayer::report`]. Each command
    /// id is given out once, however often it arrives. Commands that arrive together come
    /// highest priority first.
    Execute(Command),
    /// The machine closed ([`CommandPlayer::handle_close`]). The last event, exactly once.
    Closed {
        /// Why.
        reason: CommandError,
    },
}

/// Counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlayerStats {
    /// Datagrams handed to `handle_input` or `handle_session_input`.
    pub datagrams_in: u64,
    /// Datagrams produced by `poll_transmit`.
    pub datagrams_out: u64,
    /// Bytes produced by `poll_transmit`.
    pub bytes_out: u64,
    /// Hellos sent (keepalive traffic, not commands).
    pub hellos: u64,
    /// Commands given to the application.
    pub executed: u64,
    /// Copies of commands already given out (retransmissions, duplicates).
    pub duplicates: u64,
    /// Commands refused because their id is below what the duplicate memory still holds.
    pub refused_old: u64,
    /// Dropped: not a datagram, or garbage after authentication.
    pub dropped_decode: u64,
    /// Dropped: not this login's key.
    pub dropped_unknown_key: u64,
    /// Dropped: not from the server's address.
    pub dropped_wrong_address: u64,
    /// Dropped: replayed or older than the window.
    pub dropped_replay: u64,
    /// Dropped: the tag did not verify.
    pub dropped_bad_tag: u64,
    /// Dropped: authenticated but against the protocol.
    pub dropped_protocol: u64,
}

/// The player's command machine. One per player; [`CommandPlayer::rekey`] after each new
/// login keeps its duplicate memory and unconfirmed results.
///
/// See the [crate docs](crate) for the run loop.
#[derive(Debug)]
pub struct CommandPlayer {
    config: Arc<PlayerConfig>,
    now: UnixTime,
    jitter: Jitter,
    key: CommandKey,
    window: ReplayWindow,
    tx_seq: u64,
    /// Command ids given out, with when they may be forgotten.
    seen: BTreeMap<CommandId, UnixTime>,
    /// Ids at or below this were evicted from `seen`: refused, never run.
    floor: Option<CommandId>,
    /// Given out, not reported yet.
    running: BTreeMap<CommandId, UnixTime>,
    results: Vec<PendingResult>,
    last_route: Route,
    next_hello: UnixTime,
    /// True once the server answered over UDP under the current key.
    confirmed: bool,
    hellos: u32,
    out: VecDeque<(Route, Vec<u8>)>,
    events: VecDeque<PlayerEvent>,
    stats: PlayerStats,
    closed: bool,
}

#[derive(Debug)]
struct PendingResult {
    id: CommandId,
    outcome: Outcome,
    attempts: u32,
    next_attempt: UnixTime,
    give_up: UnixTime,
}

impl CommandPlayer {
    /// A player machine under the key of its current login. The first datagram it sends is a
    /// Hello, so the server learns its address at once. `seed` drives retransmission jitter.
    ///
    /// Sequence numbers start at zero for each key, so never start a second machine under a
    /// key the first one used (the server would take its datagrams for replays): after a
    /// restart of the player application, log in again and use the new login's key.
    pub fn new(config: Arc<PlayerConfig>, now: UnixTime, key: CommandKey, seed: u64) -> Self {
        Self {
            config,
            now,
            jitter: Jitter::new(seed),
            key,
            window: ReplayWindow::new(),
            tx_seq: 0,
            seen: BTreeMap::new(),
            floor: None,
            running: BTreeMap::new(),
            results: Vec::new(),
            last_route: Route::Udp,
            next_hello: now,
            confirmed: false,
            hellos: 0,
            out: VecDeque::new(),
            events: VecDeque::new(),
            stats: PlayerStats::default(),
            closed: false,
        }
    }

    /// A new login: from now on only datagrams under `key` open. Duplicate memory and
    /// unconfirmed results are kept; a Hello goes out at once.
    pub fn rekey(&mut self, now: UnixTime, key: CommandKey) {
        self.tick(now);
        self.key = key;
        self.window = ReplayWindow::new();
        self.tx_seq = 0;
        self.next_hello = self.now;
        self.confirmed = false;
        self.hellos = 0;
        for r in &mut self.results {
            r.next_attempt = self.now;
        }
        self.handle_timeout(now);
    }

    /// One UDP datagram from `from`. Anything not from the server, not under this login's key,
    /// not fresh or not authentic is dropped, counted and never answered.
    pub fn handle_input(
        &mut self,
        now: UnixTime,
        from: SocketAddr,
        data: &[u8],
    ) -> Result<(), CommandError> {
        self.tick(now);
        if self.closed {
            return Ok(());
        }
        self.stats.datagrams_in += 1;
        let result = if from == self.config.server {
            self.accept(Route::Udp, data)
        } else {
            Err(CommandError::WrongAddress {
                from,
                expected: self.config.server.ip(),
            })
        };
        self.count(result)
    }

    /// One sealed datagram that arrived inside the session (fleetwire-session's
    /// `ClientEvent::CommandDatagram`). Its acknowledgement goes back the same way.
    pub fn handle_session_input(&mut self, now: UnixTime, data: &[u8]) -> Result<(), CommandError> {
        self.tick(now);
        if self.closed {
            return Ok(());
        }
        self.stats.datagrams_in += 1;
        let result = self.accept(Route::Session, data);
        self.count(result)
    }

    /// Time passed: a keepalive Hello, results not confirmed yet. Early or spurious calls do
    /// nothing.
    pub fn handle_timeout(&mut self, now: UnixTime) {
        self.tick(now);
        if self.closed {
            return;
        }
        let now = self.now;
        if now >= self.next_hello {
            let mut p = Vec::new();
            Frame::Hello.encode(&mut p);
            self.out.push_back((Route::Udp, p));
            // Until the server answers over UDP, repeat sooner (1 s, 2 s, 4 s, …): a lost
            // Hello must not leave the server sending to a stale NAT port for a whole interval.
            let keepalive = millis(self.config.keepalive).max(1);
            let wait = if self.confirmed {
                keepalive
            } else {
                1000u64
                    .saturating_mul(1 << self.hellos.min(20))
                    .min(keepalive)
            };
            self.hellos = self.hellos.saturating_add(1);
            self.stats.hellos += 1;
            self.next_hello = now.plus_millis(wait);
        }
        self.results.retain(|r| now < r.give_up);
        let mut plaintext = Vec::new();
        let initial = millis(self.config.initial_rto).max(1);
        let max = millis(self.config.max_rto).max(initial);
        for r in &mut self.results {
            if r.next_attempt > now {
                continue;
            }
            let start = plaintext.len();
            Frame::Result {
                id: r.id,
                outcome: r.outcome.clone(),
            }
            .encode(&mut plaintext);
            if plaintext.len() > MAX_PLAINTEXT_LEN {
                let tail = plaintext.split_off(start);
                self.out
                    .push_back((self.last_route, std::mem::replace(&mut plaintext, tail)));
            }
            let rto = initial.saturating_mul(1 << r.attempts.min(20)).min(max);
            r.attempts += 1;
            r.next_attempt = now.plus_millis(self.jitter.spread(rto, 20));
        }
        if !plaintext.is_empty() {
            self.out.push_back((self.last_route, plaintext));
        }
    }

    /// The transport ended (the UDP socket closed): the machine stops.
    pub fn handle_close(&mut self, now: UnixTime) {
        self.tick(now);
        if self.closed {
            return;
        }
        self.closed = true;
        self.out.clear();
        self.events.push_back(PlayerEvent::Closed {
            reason: CommandError::Closed,
        });
    }

    /// Reports how a command given out with [`PlayerEvent::Execute`] ended. The result is
    /// resent until the server confirms it.
    pub fn report(
        &mut self,
        now: UnixTime,
        id: CommandId,
        outcome: Outcome,
    ) -> Result<(), ApiMisuse> {
        self.tick(now);
        if self.closed {
            return Err(ApiMisuse::Closed);
        }
        if let Outcome::Failed { message } = &outcome {
            if message.len() > MAX_FAILURE_MESSAGE {
                return Err(ApiMisuse::TooLong {
                    field: "failure message",
                    len: message.len(),
                    max: MAX_FAILURE_MESSAGE,
                });
            }
        }
        let Some(forget) = self.running.remove(&id) else {
            return Err(if self.results.iter().any(|r| r.id == id) {
                ApiMisuse::TooLate {
                    id,
                    state: "reported",
                }
            } else {
                ApiMisuse::UnknownCommand { id }
            });
        };
        self.results.push(PendingResult {
            id,
            outcome,
            attempts: 0,
            next_attempt: self.now,
            give_up: forget.max(self.now.plus_millis(millis(self.config.grace))),
        });
        self.handle_timeout(now);
        Ok(())
    }

    /// Appends the next datagram to `buf`. `to` is the server's address, or `None` to send it
    /// inside the session (fleetwire-session's `Client::send_command_datagram`).
    #[must_use]
    pub fn poll_transmit(&mut self, buf: &mut Vec<u8>) -> Option<Transmit> {
        let (route, plaintext) = self.out.pop_front()?;
        let header = Header {
            direction: Direction::ToServer,
            key_id: self.key.id(),
            seq: self.tx_seq,
        };
        self.tx_seq += 1;
        let len = wire::seal(&self.key, header, &plaintext, buf);
        self.stats.datagrams_out += 1;
        self.stats.bytes_out += len as u64;
        Some(Transmit {
            len,
            to: (route == Route::Udp).then_some(self.config.server),
        })
    }

    /// When to call [`CommandPlayer::handle_timeout`] next.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<UnixTime> {
        if self.closed {
            return None;
        }
        self.results
            .iter()
            .map(|r| r.next_attempt.min(r.give_up))
            .chain([self.next_hello])
            .min()
    }

    /// The next event.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<PlayerEvent> {
        self.events.pop_front()
    }

    /// The duplicate memory, to persist across a restart of the player application (with
    /// [`CommandPlayer::remember`]), so a command that ran just before a restart never runs
    /// twice.
    pub fn remembered(&self) -> Vec<(CommandId, UnixTime)> {
        self.seen.iter().map(|(&id, &t)| (id, t)).collect()
    }

    /// Restores duplicate memory saved with [`CommandPlayer::remembered`].
    pub fn remember(&mut self, id: CommandId, until: UnixTime) {
        if until > self.now {
            self.insert_seen(id, until);
        }
    }

    /// The route of the last authentic datagram from the server.
    pub fn route(&self) -> Route {
        self.last_route
    }

    /// Counters.
    pub fn stats(&self) -> PlayerStats {
        self.stats
    }

    // ---- helpers ----

    fn tick(&mut self, now: UnixTime) {
        self.now = self.now.max(now);
    }

    fn count(&mut self, result: Result<(), CommandError>) -> Result<(), CommandError> {
        if let Err(e) = &result {
            let s = &mut self.stats;
            match e {
                CommandError::Decode(_) => s.dropped_decode += 1,
                CommandError::UnknownKey => s.dropped_unknown_key += 1,
                CommandError::WrongAddress { .. } => s.dropped_wrong_address += 1,
                CommandError::Replay { .. } => s.dropped_replay += 1,
                CommandError::BadTag => s.dropped_bad_tag += 1,
                CommandError::Protocol(_) | CommandError::Closed => s.dropped_protocol += 1,
            }
        }
        result
    }

    fn accept(&mut self, route: Route, data: &[u8]) -> Result<(), CommandError> {
        let (header, sealed) = wire::Header::decode(data)?;
        if header.direction != Direction::ToPlayer {
            return Err(CommandError::Protocol("a datagram meant for the server"));
        }
        if header.key_id != self.key.id() {
            return Err(CommandError::UnknownKey);
        }
        if !self.window.check(header.seq) {
            return Err(CommandError::Replay { seq: header.seq });
        }
        let mut sealed = sealed.to_vec();
        let plaintext = self
            .key
            .open(
                Direction::ToPlayer,
                header.seq,
                &data[..HEADER_LEN],
                &mut sealed,
            )
            .ok_or(CommandError::BadTag)?;
        self.window.mark(header.seq);
        let frames = wire::decode_frames(plaintext)?;
        if frames.iter().any(|f| f.direction() != Direction::ToPlayer) {
            return Err(CommandError::Protocol("a frame meant for the server"));
        }
        self.last_route = route;
        let now = self.now;
        if route == Route::Udp && !self.confirmed {
            self.confirmed = true;
            self.next_hello = self
                .next_hello
                .max(now.plus_millis(millis(self.config.keepalive).max(1)));
        }
        let grace = millis(self.config.grace);
        let mut acks = Vec::new();
        let mut fresh = Vec::new();
        for frame in frames {
            match frame {
                Frame::Command(c) => {
                    acks.push(c.id);
                    if self.seen.contains_key(&c.id) {
                        self.stats.duplicates += 1;
                    } else if self.floor.is_some_and(|f| c.id <= f) {
                        self.stats.refused_old += 1;
                    } else {
                        let forget = now.plus_millis(millis(c.ttl_remaining)).plus_millis(grace);
                        self.insert_seen(c.id, forget);
                        self.running.insert(c.id, forget);
                        fresh.push(c);
                    }
                }
                Frame::ResultAck(ids) => self.results.retain(|r| !ids.contains(&r.id)),
                Frame::HelloAck | Frame::Ack(_) | Frame::Result { .. } | Frame::Hello => {}
            }
        }
        fresh.sort_by(|a, b| b.priority.cmp(&a.priority).then(a.id.cmp(&b.id)));
        for c in fresh {
            self.stats.executed += 1;
            self.events.push_back(PlayerEvent::Execute(c));
        }
        if !acks.is_empty() {
            // A reply never larger than what caused it: each Command frame is longer than its
            // id in the Ack.
            acks.dedup();
            let mut p = Vec::new();
            Frame::Ack(acks).encode(&mut p);
            self.out.push_back((route, p));
        }
        Ok(())
    }

    fn insert_seen(&mut self, id: CommandId, until: UnixTime) {
        let now = self.now;
        if self.seen.len() >= self.config.max_remembered.max(1) {
            self.seen.retain(|_, t| *t > now);
            self.running.retain(|_, t| *t > now);
        }
        while self.seen.len() >= self.config.max_remembered.max(1) {
            let Some((old, _)) = self.seen.pop_first() else {
                break;
            };
            self.floor = Some(self.floor.map_or(old, |f| f.max(old)));
        }
        self.seen.insert(id, until);
    }
}
