//! The server side: every player's command queue, delivery with retransmission, the route
//! choice (UDP or the player's session) and the state of every command.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use fleetwire_core::{Transmit, UnixTime};
use fleetwire_session::PlayerId;

use crate::error::{ApiMisuse, CommandError};
use crate::key::{CommandKey, Direction, KeyId};
use crate::model::{
    Action, Command, CommandId, CommandSpec, CommandState, Failure, MAX_CUSTOM_PAYLOAD, MAX_TTL,
    Outcome, Priority, Route, RoutePolicy,
};
use crate::replay::ReplayWindow;
use crate::rng::Jitter;
use crate::wire::{self, Frame, HEADER_LEN, Header, MAX_PLAINTEXT_LEN};

/// Server policy for command delivery.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Most unfinished commands (pending, sent or delivered) held per player; beyond it
    /// `send` fails with [`ApiMisuse::QueueFull`]. Default 64.
    pub max_pending_per_player: usize,
    /// Most players tracked. Default 1,000,000.
    pub max_players: usize,
    /// First retransmission timeout, before a round trip was measured. Default 1 s.
    pub initial_rto: Duration,
    /// Floor of the retransmission timeout. Default 200 ms.
    pub min_rto: Duration,
    /// Ceiling of the retransmission timeout (backoff stops doubling here). Default 30 s.
    pub max_rto: Duration,
    /// Each retransmission timeout is spread by ± this percentage (injected randomness), so a
    /// fleet's retries do not line up. Default 20.
    pub jitter_percent: u8,
    /// With [`RoutePolicy::Auto`], a command sent this many times over UDP without an
    /// acknowledgement moves the player to its session. Default 3.
    pub fallback_after: u32,
    /// How long a player stays on its session after falling back, before UDP is tried again.
    /// Default 10 min.
    pub fallback_hold: Duration,
    /// Retransmission interval over the session (TCP already retransmits; this only covers a
    /// session that died without notice). Default 30 s.
    pub session_retry: Duration,
    /// How long after delivery the server waits for the player's result before the command
    /// fails with [`Failure::NoResult`]. Default 10 min.
    pub result_timeout: Duration,
    /// The UDP port a player listens on, used until the player's first datagram shows its real
    /// (possibly translated) address. Default 4700.
    pub player_port: u16,
    /// The first command id this server assigns. Persist [`CommandServer::next_command_id`]
    /// and start from it after a restart, so ids are never reused. Default 1.
    pub first_command_id: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            max_pending_per_player: 64,
            max_players: 1_000_000,
            initial_rto: Duration::from_secs(1),
            min_rto: Duration::from_millis(200),
            max_rto: Duration::from_secs(30),
            jitter_percent: 20,
            fallback_after: 3,
            fallback_hold: Duration::from_secs(600),
            session_retry: Duration::from_secs(30),
            result_timeout: Duration::from_secs(600),
            player_port: 4700,
            first_command_id: 1,
        }
    }
}

/// What happened, for the server application (store it, audit it, show it).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServerEvent {
    /// A command moved to a new state. Terminal states are reported once, after which the
    /// machine forgets the command.
    StateChanged {
        /// The player.
        player: PlayerId,
        /// The command.
        id: CommandId,
        /// Its new state.
        state: CommandState,
    },
    /// The route to a player changed (UDP did not get through, or came back).
    RouteChanged {
        /// The player.
        player: PlayerId,
        /// The new route.
        route: Route,
    },
    /// The machine closed ([`CommandServer::handle_close`]). The last event, exactly once.
    Closed {
        /// Why.
        reason: CommandError,
    },
}

/// One datagram to send: `transmit.len` bytes appended to the caller's buffer, for `player`.
/// `transmit.to` is the UDP destination, or `None` to send it inside the player's session
/// (fleetwire-session's `ServerConnection::send_command_datagram`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerTransmit {
    /// The bytes appended and where they go.
    pub transmit: Transmit,
    /// The player it is for.
    pub player: PlayerId,
}

/// A command as the server sees it (for listings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandInfo {
    /// Its id.
    pub id: CommandId,
    /// The action.
    pub action: Action,
    /// Its priority.
    pub priority: Priority,
    /// When it was created.
    pub created: UnixTime,
    /// When its time-to-live ends.
    pub deadline: UnixTime,
    /// Its state.
    pub state: CommandState,
    /// Transmissions so far (both routes).
    pub attempts: u32,
}

/// Counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServerStats {
    /// Datagrams handed to `handle_input` or `handle_session_input`.
    pub datagrams_in: u64,
    /// Datagrams produced by `poll_transmit`.
    pub datagrams_out: u64,
    /// Of those, sent inside a session.
    pub session_out: u64,
    /// Bytes produced by `poll_transmit`.
    pub bytes_out: u64,
    /// Command transmissions after the first.
    pub retransmissions: u64,
    /// Hellos answered (keepalive traffic, not commands).
    pub hello_acks: u64,
    /// Dropped: not a datagram, or garbage after authentication.
    pub dropped_decode: u64,
    /// Dropped: unknown key id.
    pub dropped_unknown_key: u64,
    /// Dropped: not from the player's session address.
    pub dropped_wrong_address: u64,
    /// Dropped: replayed or older than the window.
    pub dropped_replay: u64,
    /// Dropped: the tag did not verify.
    pub dropped_bad_tag: u64,
    /// Dropped: authenticated but against the protocol.
    pub dropped_protocol: u64,
}

/// The command server: one per server process, holding every player's queue.
///
/// See the [crate docs](crate) for the run loop.
#[derive(Debug)]
pub struct CommandServer {
    config: Arc<ServerConfig>,
    now: UnixTime,
    jitter: Jitter,
    next_id: u64,
    slots: Vec<Slot>,
    by_player: HashMap<PlayerId, u32>,
    by_key: HashMap<KeyId, u32>,
    timers: BTreeSet<(UnixTime, u32)>,
    out: VecDeque<Out>,
    events: VecDeque<ServerEvent>,
    stats: ServerStats,
    closed: bool,
}

#[derive(Debug)]
struct Slot {
    player: PlayerId,
    key: Option<CommandKey>,
    session_ip: Option<IpAddr>,
    udp: Option<SocketAddr>,
    tx_seq: u64,
    window: Option<ReplayWindow>,
    policy: RoutePolicy,
    fallback_until: Option<UnixTime>,
    /// Smoothed round trip and its variation, in milliseconds (RFC 6298).
    rtt: Option<(u64, u64)>,
    commands: Vec<Entry>,
    scheduled: Option<UnixTime>,
}

#[derive(Debug)]
struct Entry {
    id: CommandId,
    action: Action,
    priority: Priority,
    created: UnixTime,
    deadline: UnixTime,
    state: CommandState,
    attempts: u32,
    udp_attempts: u32,
    first_sent: Option<UnixTime>,
    next_attempt: UnixTime,
    result_deadline: Option<UnixTime>,
}

#[derive(Debug)]
struct Out {
    slot: u32,
    to: Option<SocketAddr>,
    plaintext: Vec<u8>,
}

impl CommandServer {
    /// A server with no players. `seed` drives the retransmission jitter (any value; a
    /// different one per process keeps a fleet's servers from retrying in step).
    pub fn new(config: Arc<ServerConfig>, now: UnixTime, seed: u64) -> Self {
        let next_id = config.first_command_id.max(1);
        Self {
            config,
            now,
            jitter: Jitter::new(seed),
            next_id,
            slots: Vec::new(),
            by_player: HashMap::new(),
            by_key: HashMap::new(),
            timers: BTreeSet::new(),
            out: VecDeque::new(),
            events: VecDeque::new(),
            stats: ServerStats::default(),
            closed: false,
        }
    }

    /// A player's session (re)appeared: `key` from its login ([`CommandKey::derive`]),
    /// `session_addr` the address of its TCP session. Datagrams are accepted only from that
    /// IP address; everything still within its time-to-live is sent again now.
    pub fn player_online(
        &mut self,
        now: UnixTime,
        player: PlayerId,
        key: CommandKey,
        session_addr: SocketAddr,
    ) -> Result<(), ApiMisuse> {
        self.tick(now);
        if self.closed {
            return Err(ApiMisuse::Closed);
        }
        let idx = self.slot_for(player)?;
        let now = self.now;
        let slot = &mut self.slots[idx as usize];
        if let Some(old) = slot.key.take() {
            self.by_key.remove(&old.id());
        }
        self.by_key.insert(key.id(), idx);
        slot.key = Some(key);
        slot.tx_seq = 0;
        slot.window = Some(ReplayWindow::new());
        if slot.session_ip != Some(session_addr.ip()) {
            slot.udp = None;
        }
        slot.session_ip = Some(session_addr.ip());
        if slot.fallback_until.take().is_some() && slot.policy == RoutePolicy::Auto {
            self.events.push_back(ServerEvent::RouteChanged {
                player,
                route: Route::Udp,
            });
        }
        for e in &mut slot.commands {
            if matches!(e.state, CommandState::Pending | CommandState::Sent) {
                e.next_attempt = now;
                e.udp_attempts = 0;
            }
        }
        self.process_slot(idx);
        Ok(())
    }

    /// The player's session ended: nothing is sent to it until it comes back; its commands
    /// wait within their time-to-live. Datagrams under its old key are dropped from now on.
    pub fn player_offline(&mut self, now: UnixTime, player: PlayerId) {
        self.tick(now);
        let Some(&idx) = self.by_player.get(&player) else {
            return;
        };
        let slot = &mut self.slots[idx as usize];
        if let Some(old) = slot.key.take() {
            self.by_key.remove(&old.id());
        }
        slot.window = None;
        self.reschedule(idx);
    }

    /// Queues a command for `player` (online or not) and sends it at once if the player is
    /// reachable. Returns its id.
    pub fn send(
        &mut self,
        now: UnixTime,
        player: PlayerId,
        spec: CommandSpec,
    ) -> Result<CommandId, ApiMisuse> {
        self.tick(now);
        let id = CommandId(self.next_id);
        self.insert(player, id, spec, self.now)?;
        self.next_id += 1;
        Ok(id)
    }

    /// Puts back a command kept across a server restart (its original id and creation time).
    /// One already past its time-to-live is reported `Expired` at once.
    pub fn restore(
        &mut self,
        now: UnixTime,
        player: PlayerId,
        id: CommandId,
        spec: CommandSpec,
        created: UnixTime,
    ) -> Result<(), ApiMisuse> {
        self.tick(now);
        self.insert(player, id, spec, created)?;
        self.next_id = self.next_id.max(id.0.saturating_add(1));
        Ok(())
    }

    /// Cancels a command that was not delivered yet (a copy already on its way may still
    /// arrive and run; its acknowledgement is then ignored).
    pub fn cancel(
        &mut self,
        now: UnixTime,
        player: PlayerId,
        id: CommandId,
    ) -> Result<(), ApiMisuse> {
        self.tick(now);
        let idx = *self
            .by_player
            .get(&player)
            .ok_or(ApiMisuse::UnknownCommand { id })?;
        let slot = &mut self.slots[idx as usize];
        let pos = slot
            .commands
            .iter()
            .position(|e| e.id == id)
            .ok_or(ApiMisuse::UnknownCommand { id })?;
        let state = &slot.commands[pos].state;
        if !matches!(state, CommandState::Pending | CommandState::Sent) {
            return Err(ApiMisuse::TooLate {
                id,
                state: state.name(),
            });
        }
        slot.commands.swap_remove(pos);
        self.events.push_back(ServerEvent::StateChanged {
            player,
            id,
            state: CommandState::Cancelled,
        });
        self.reschedule(idx);
        Ok(())
    }

    /// The operator's route setting for a player.
    pub fn set_route_policy(
        &mut self,
        now: UnixTime,
        player: PlayerId,
        policy: RoutePolicy,
    ) -> Result<(), ApiMisuse> {
        self.tick(now);
        let idx = self.slot_for(player)?;
        let before = self.route(idx);
        self.slots[idx as usize].policy = policy;
        let after = self.route(idx);
        if before != after {
            self.events.push_back(ServerEvent::RouteChanged {
                player,
                route: after,
            });
        }
        self.reschedule(idx);
        Ok(())
    }

    /// One UDP datagram from `from`. A datagram that is not authentic, not fresh or not from
    /// the player's session address is dropped, counted and never answered; the reason is
    /// returned for the caller's logs.
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
        let result = self.accept(None, Some(from), data);
        self.count(result)
    }

    /// One sealed datagram that arrived inside `player`'s session (fleetwire-session's
    /// `ServerEvent::CommandDatagram`).
    pub fn handle_session_input(
        &mut self,
        now: UnixTime,
        player: PlayerId,
        data: &[u8],
    ) -> Result<(), CommandError> {
        self.tick(now);
        if self.closed {
            return Ok(());
        }
        self.stats.datagrams_in += 1;
        let result = self.accept(Some(player), None, data);
        self.count(result)
    }

    /// Time passed: retransmits what is due, expires what outlived its time-to-live. Early or
    /// spurious calls do nothing.
    pub fn handle_timeout(&mut self, now: UnixTime) {
        self.tick(now);
        if self.closed {
            return;
        }
        while let Some(&(at, idx)) = self.timers.first() {
            if at > self.now {
                break;
            }
            self.timers.pop_first();
            self.slots[idx as usize].scheduled = None;
            self.process_slot(idx);
        }
    }

    /// The UDP socket is gone: the machine stops. Commands keep the states last reported.
    pub fn handle_close(&mut self, now: UnixTime) {
        self.tick(now);
        if self.closed {
            return;
        }
        self.closed = true;
        self.out.clear();
        self.timers.clear();
        self.events.push_back(ServerEvent::Closed {
            reason: CommandError::Closed,
        });
    }

    /// Appends the next datagram to `buf`.
    #[must_use]
    pub fn poll_transmit(&mut self, buf: &mut Vec<u8>) -> Option<ServerTransmit> {
        while let Some(out) = self.out.pop_front() {
            let slot = &mut self.slots[out.slot as usize];
            let Some(key) = &slot.key else {
                continue;
            };
            let header = Header {
                direction: Direction::ToPlayer,
                key_id: key.id(),
                seq: slot.tx_seq,
            };
            slot.tx_seq += 1;
            let len = wire::seal(key, header, &out.plaintext, buf);
            self.stats.datagrams_out += 1;
            self.stats.bytes_out += len as u64;
            if out.to.is_none() {
                self.stats.session_out += 1;
            }
            return Some(ServerTransmit {
                transmit: Transmit { len, to: out.to },
                player: slot.player,
            });
        }
        None
    }

    /// When to call [`CommandServer::handle_timeout`] next.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<UnixTime> {
        self.timers.first().map(|&(at, _)| at)
    }

    /// The next event.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<ServerEvent> {
        self.events.pop_front()
    }

    /// A player's unfinished commands, highest priority first.
    pub fn commands(&self, player: PlayerId) -> Vec<CommandInfo> {
        let Some(&idx) = self.by_player.get(&player) else {
            return Vec::new();
        };
        let mut v: Vec<CommandInfo> = self.slots[idx as usize]
            .commands
            .iter()
            .map(Entry::info)
            .collect();
        v.sort_by(|a, b| b.priority.cmp(&a.priority).then(a.id.cmp(&b.id)));
        v
    }

    /// One unfinished command.
    pub fn command(&self, player: PlayerId, id: CommandId) -> Option<CommandInfo> {
        let idx = *self.by_player.get(&player)?;
        self.slots[idx as usize]
            .commands
            .iter()
            .find(|e| e.id == id)
            .map(Entry::info)
    }

    /// The route commands to `player` take now.
    pub fn route_to(&self, player: PlayerId) -> Option<Route> {
        self.by_player.get(&player).map(|&idx| self.route(idx))
    }

    /// The id the next command gets (persist it: see [`ServerConfig::first_command_id`]).
    pub fn next_command_id(&self) -> CommandId {
        CommandId(self.next_id)
    }

    /// Players tracked.
    pub fn player_count(&self) -> usize {
        self.slots.len()
    }

    /// Counters.
    pub fn stats(&self) -> ServerStats {
        self.stats
    }

    // ---- helpers ----

    fn tick(&mut self, now: UnixTime) {
        // A wall clock that steps back only pauses the timers.
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

    fn slot_for(&mut self, player: PlayerId) -> Result<u32, ApiMisuse> {
        if let Some(&idx) = self.by_player.get(&player) {
            return Ok(idx);
        }
        if self.slots.len() >= self.config.max_players {
            return Err(ApiMisuse::TooManyPlayers {
                max: self.config.max_players,
            });
        }
        let idx = u32::try_from(self.slots.len()).map_err(|_| ApiMisuse::TooManyPlayers {
            max: u32::MAX as usize,
        })?;
        self.slots.push(Slot {
            player,
            key: None,
            session_ip: None,
            udp: None,
            tx_seq: 0,
            window: None,
            policy: RoutePolicy::Auto,
            fallback_until: None,
            rtt: None,
            commands: Vec::new(),
            scheduled: None,
        });
        self.by_player.insert(player, idx);
        Ok(idx)
    }

    fn insert(
        &mut self,
        player: PlayerId,
        id: CommandId,
        spec: CommandSpec,
        created: UnixTime,
    ) -> Result<(), ApiMisuse> {
        if self.closed {
            return Err(ApiMisuse::Closed);
        }
        check_spec(&spec)?;
        let max = self.config.max_pending_per_player;
        if let Some(&idx) = self.by_player.get(&player) {
            if self.slots[idx as usize].commands.len() >= max {
                return Err(ApiMisuse::QueueFull { player, max });
            }
        }
        let idx = self.slot_for(player)?;
        let ttl_ms = u64::try_from(spec.ttl.as_millis()).unwrap_or(u64::MAX);
        let commands = &mut self.slots[idx as usize].commands;
        if commands.len() == commands.capacity() && commands.len() < 4 {
            // Most players have one or two commands waiting: do not let Vec's first growth
            // reserve four entries for each of 10,000 players.
            commands.reserve_exact(1);
        }
        commands.push(Entry {
            id,
            action: spec.action,
            priority: spec.priority,
            created,
            deadline: created.plus_millis(ttl_ms),
            state: CommandState::Pending,
            attempts: 0,
            udp_attempts: 0,
            first_sent: None,
            next_attempt: self.now,
            result_deadline: None,
        });
        self.process_slot(idx);
        Ok(())
    }

    /// Everything a slot's timer covers: expiry, result timeouts, the end of a fallback, and
    /// the transmissions that are due. Then the slot's timer is set again.
    fn process_slot(&mut self, idx: u32) {
        let now = self.now;
        let slot = &mut self.slots[idx as usize];
        let player = slot.player;
        let mut i = 0;
        while i < slot.commands.len() {
            let e = &slot.commands[i];
            let ended = match e.state {
                CommandState::Pending | CommandState::Sent if now >= e.deadline => {
                    Some(CommandState::Expired)
                }
                CommandState::Delivered if e.result_deadline.is_some_and(|d| now >= d) => {
                    Some(CommandState::Failed(Failure::NoResult))
                }
                _ => None,
            };
            if let Some(state) = ended {
                let id = e.id;
                slot.commands.swap_remove(i);
                self.events
                    .push_back(ServerEvent::StateChanged { player, id, state });
            } else {
                i += 1;
            }
        }
        if slot.commands.is_empty() && slot.commands.capacity() > 4 {
            slot.commands = Vec::new();
        }
        if slot.fallback_until.is_some_and(|t| now >= t) {
            slot.fallback_until = None;
            for e in &mut slot.commands {
                e.udp_attempts = 0;
            }
            if slot.policy == RoutePolicy::Auto {
                self.events.push_back(ServerEvent::RouteChanged {
                    player,
                    route: Route::Udp,
                });
            }
        }
        self.transmit_due(idx);
        self.reschedule(idx);
    }

    fn route(&self, idx: u32) -> Route {
        let slot = &self.slots[idx as usize];
        match slot.policy {
            RoutePolicy::SessionOnly => Route::Session,
            RoutePolicy::Auto if slot.fallback_until.is_some() => Route::Session,
            RoutePolicy::Auto | RoutePolicy::UdpOnly => Route::Udp,
        }
    }

    /// Sends every command that is due, highest priority first, packed into as few datagrams
    /// as fit.
    fn transmit_due(&mut self, idx: u32) {
        let now = self.now;
        let slot = &self.slots[idx as usize];
        if slot.key.is_none() {
            return;
        }
        let is_due = |e: &Entry| {
            matches!(e.state, CommandState::Pending | CommandState::Sent) && e.next_attempt <= now
        };
        if !slot.commands.iter().any(is_due) {
            return;
        }
        // Fall back to the session when UDP went unanswered too often.
        let fallback_after = self.config.fallback_after.max(1);
        if slot.policy == RoutePolicy::Auto
            && slot.fallback_until.is_none()
            && slot
                .commands
                .iter()
                .any(|e| is_due(e) && e.udp_attempts >= fallback_after)
        {
            let hold = millis(self.config.fallback_hold);
            let slot = &mut self.slots[idx as usize];
            slot.fallback_until = Some(now.plus_millis(hold));
            self.events.push_back(ServerEvent::RouteChanged {
                player: slot.player,
                route: Route::Session,
            });
        }
        let route = self.route(idx);
        let slot = &self.slots[idx as usize];
        let to = match route {
            Route::Session => None,
            Route::Udp => {
                let Some(ip) = slot.session_ip else {
                    return;
                };
                Some(
                    slot.udp
                        .unwrap_or_else(|| SocketAddr::new(ip, self.config.player_port)),
                )
            }
        };
        let mut due: Vec<usize> = (0..slot.commands.len())
            .filter(|&i| is_due(&slot.commands[i]))
            .collect();
        due.sort_by(|&a, &b| {
            let (a, b) = (&slot.commands[a], &slot.commands[b]);
            b.priority.cmp(&a.priority).then(a.id.cmp(&b.id))
        });
        let mut plaintext = Vec::new();
        for i in due {
            let rto = self.rto(
                idx,
                self.slots[idx as usize].commands[i].attempts + 1,
                route,
            );
            let slot = &mut self.slots[idx as usize];
            let e = &mut slot.commands[i];
            let frame = Frame::Command(Command {
                id: e.id,
                action: e.action.clone(),
                created: e.created,
                ttl_remaining: Duration::from_millis(e.deadline.millis_since(now).max(1)),
                priority: e.priority,
            });
            let start = plaintext.len();
            frame.encode(&mut plaintext);
            if plaintext.len() > MAX_PLAINTEXT_LEN && start > 0 {
                let tail = plaintext.split_off(start);
                self.out.push_back(Out {
                    slot: idx,
                    to,
                    plaintext: std::mem::replace(&mut plaintext, tail),
                });
            }
            if e.attempts > 0 {
                self.stats.retransmissions += 1;
            }
            e.attempts += 1;
            if route == Route::Udp {
                e.udp_attempts += 1;
            }
            e.first_sent.get_or_insert(now);
            e.next_attempt = now.plus_millis(rto);
            if e.state == CommandState::Pending {
                e.state = CommandState::Sent;
                self.events.push_back(ServerEvent::StateChanged {
                    player: slot.player,
                    id: e.id,
                    state: CommandState::Sent,
                });
            }
        }
        if !plaintext.is_empty() {
            self.out.push_back(Out {
                slot: idx,
                to,
                plaintext,
            });
        }
    }

    /// The retransmission timeout for a command's `attempt`-th transmission (1-based):
    /// RFC 6298 from the measured round trip, doubled per attempt, capped, jittered.
    fn rto(&mut self, idx: u32, attempt: u32, route: Route) -> u64 {
        let c = &self.config;
        let base = self.slots[idx as usize]
            .rtt
            .map_or(millis(c.initial_rto), |(srtt, var)| srtt + 4 * var)
            .clamp(millis(c.min_rto), millis(c.max_rto).max(1));
        let shift = attempt.saturating_sub(1).min(20);
        let mut rto = base
            .saturating_mul(1 << shift)
            .min(millis(c.max_rto).max(1));
        if route == Route::Session {
            rto = rto.max(millis(c.session_retry));
        }
        self.jitter.spread(rto, c.jitter_percent)
    }

    fn reschedule(&mut self, idx: u32) {
        let slot = &mut self.slots[idx as usize];
        let sendable = slot.key.is_some();
        let next = slot
            .commands
            .iter()
            .filter_map(|e| match e.state {
                CommandState::Pending | CommandState::Sent => Some(if sendable {
                    e.next_attempt.min(e.deadline)
                } else {
                    e.deadline
                }),
                CommandState::Delivered => e.result_deadline,
                _ => None,
            })
            .chain(slot.fallback_until)
            .min();
        if slot.scheduled == next {
            return;
        }
        if let Some(old) = slot.scheduled.take() {
            self.timers.remove(&(old, idx));
        }
        if let Some(at) = next {
            self.timers.insert((at, idx));
            slot.scheduled = Some(at);
        }
    }

    /// Authenticates a datagram and acts on its frames. `player` is set for session input,
    /// `from` for UDP input.
    fn accept(
        &mut self,
        player: Option<PlayerId>,
        from: Option<SocketAddr>,
        data: &[u8],
    ) -> Result<(), CommandError> {
        let (header, sealed) = Header::decode(data)?;
        if header.direction != Direction::ToServer {
            return Err(CommandError::Protocol("a datagram meant for a player"));
        }
        let idx = match player {
            Some(p) => {
                let idx = *self.by_player.get(&p).ok_or(CommandError::UnknownKey)?;
                if self.slots[idx as usize].key.as_ref().map(CommandKey::id) != Some(header.key_id)
                {
                    return Err(CommandError::UnknownKey);
                }
                idx
            }
            None => *self
                .by_key
                .get(&header.key_id)
                .ok_or(CommandError::UnknownKey)?,
        };
        let slot = &mut self.slots[idx as usize];
        if let (Some(from), Some(ip)) = (from, slot.session_ip) {
            if from.ip() != ip {
                return Err(CommandError::WrongAddress { from, expected: ip });
            }
        }
        let (Some(key), Some(window)) = (&slot.key, &mut slot.window) else {
            return Err(CommandError::UnknownKey);
        };
        if !window.check(header.seq) {
            return Err(CommandError::Replay { seq: header.seq });
        }
        let mut sealed = sealed.to_vec();
        let plaintext = key
            .open(
                Direction::ToServer,
                header.seq,
                &data[..HEADER_LEN],
                &mut sealed,
            )
            .ok_or(CommandError::BadTag)?;
        window.mark(header.seq);
        let frames = wire::decode_frames(plaintext)?;
        if frames.iter().any(|f| f.direction() != Direction::ToServer) {
            return Err(CommandError::Protocol("a frame meant for a player"));
        }
        if let Some(from) = from {
            if slot.udp != Some(from) {
                // The player's (possibly translated) UDP address: send there from now on, and
                // soon, since earlier copies may have gone to a stale port.
                slot.udp = Some(from);
                let now = self.now;
                for e in &mut slot.commands {
                    if matches!(e.state, CommandState::Sent) {
                        e.next_attempt = e.next_attempt.min(now);
                    }
                }
            }
        }
        self.on_frames(idx, from, frames);
        self.reschedule(idx);
        Ok(())
    }

    fn on_frames(&mut self, idx: u32, from: Option<SocketAddr>, frames: Vec<Frame>) {
        let now = self.now;
        let result_timeout = millis(self.config.result_timeout);
        let slot = &mut self.slots[idx as usize];
        let player = slot.player;
        let mut result_acks = Vec::new();
        let mut hello = false;
        for frame in frames {
            match frame {
                Frame::Ack(ids) => {
                    for id in ids {
                        let Some(e) = slot.commands.iter_mut().find(|e| e.id == id) else {
                            continue;
                        };
                        if !matches!(e.state, CommandState::Pending | CommandState::Sent) {
                            continue;
                        }
                        e.state = CommandState::Delivered;
                        e.result_deadline = Some(now.max(e.deadline).plus_millis(result_timeout));
                        // Karn: only a command sent once gives an unambiguous sample.
                        if e.attempts == 1 && from.is_some() {
                            if let Some(sent) = e.first_sent {
                                update_rtt(&mut slot.rtt, now.millis_since(sent));
                            }
                        }
                        self.events.push_back(ServerEvent::StateChanged {
                            player,
                            id,
                            state: CommandState::Delivered,
                        });
                    }
                }
                Frame::Result { id, outcome } => {
                    result_acks.push(id);
                    let Some(pos) = slot.commands.iter().position(|e| e.id == id) else {
                        continue;
                    };
                    if !matches!(
                        slot.commands[pos].state,
                        CommandState::Pending | CommandState::Sent | CommandState::Delivered
                    ) {
                        continue;
                    }
                    slot.commands.swap_remove(pos);
                    let state = match outcome {
                        Outcome::Succeeded => CommandState::Succeeded,
                        Outcome::Failed { message } => {
                            CommandState::Failed(Failure::Player { message })
                        }
                    };
                    self.events
                        .push_back(ServerEvent::StateChanged { player, id, state });
                }
                Frame::Hello => hello = true,
                Frame::Command(_) | Frame::ResultAck(_) | Frame::HelloAck => {}
            }
        }
        if hello && from.is_some() && result_acks.is_empty() {
            // The same size as the Hello that caused it.
            self.stats.hello_acks += 1;
            let mut plaintext = Vec::new();
            Frame::HelloAck.encode(&mut plaintext);
            self.out.push_back(Out {
                slot: idx,
                to: from,
                plaintext,
            });
        }
        if !result_acks.is_empty() {
            // A reply never larger than what caused it: each Result frame is at least as long
            // as its id in the ResultAck.
            result_acks.dedup();
            let mut plaintext = Vec::new();
            Frame::ResultAck(result_acks).encode(&mut plaintext);
            self.out.push_back(Out {
                slot: idx,
                to: from,
                plaintext,
            });
        }
    }
}

impl Entry {
    fn info(&self) -> CommandInfo {
        CommandInfo {
            id: self.id,
            action: self.action.clone(),
            priority: self.priority,
            created: self.created,
            deadline: self.deadline,
            state: self.state.clone(),
            attempts: self.attempts,
        }
    }
}

fn update_rtt(rtt: &mut Option<(u64, u64)>, sample: u64) {
    *rtt = Some(match *rtt {
        None => (sample, sample / 2),
        Some((srtt, var)) => {
            let var = (3 * var + srtt.abs_diff(sample)) / 4;
            let srtt = (7 * srtt + sample) / 8;
            (srtt, var)
        }
    });
}

pub(crate) fn check_spec(spec: &CommandSpec) -> Result<(), ApiMisuse> {
    if spec.ttl.is_zero() || spec.ttl > MAX_TTL || spec.ttl.as_millis() == 0 {
        return Err(ApiMisuse::BadTtl {
            millis: spec.ttl.as_millis(),
        });
    }
    match &spec.action {
        Action::SetVolume(v) if *v > 100 => Err(ApiMisuse::BadVolume(*v)),
        Action::Custom(p) if p.len() > MAX_CUSTOM_PAYLOAD => Err(ApiMisuse::TooLong {
            field: "custom payload",
            len: p.len(),
            max: MAX_CUSTOM_PAYLOAD,
        }),
        _ => Ok(()),
    }
}

pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
