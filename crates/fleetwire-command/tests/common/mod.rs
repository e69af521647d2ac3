//! A deterministic world for command tests: one `CommandServer`, several `CommandPlayer`s, a
//! simulated UDP link each way per player and a reliable session link each way (fleetwire-
//! testkit `Link`s), all in virtual time that jumps to the next timeout or arrival.
#![allow(dead_code, unreachable_pub, clippy::missing_panics_doc)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fleetwire_command::*;
use fleetwire_session::{ChannelBinding, PlayerId};
use fleetwire_testkit::{Link, LinkConfig, VirtualClock};

/// Wall-clock milliseconds at the start of every run.
pub const T0: u64 = 1_700_000_000_000;

pub fn server_addr() -> SocketAddr {
    "192.0.2.1:4700".parse().unwrap()
}

pub fn player_id(n: u16) -> PlayerId {
    let mut b = [0u8; 16];
    b[..2].copy_from_slice(&n.to_be_bytes());
    b[15] = 0xaa;
    PlayerId::from_bytes(b)
}

/// The key of login number `login` of player `n` (different logins, different nonces).
pub fn key(n: u16, login: u8) -> CommandKey {
    let mut nonce = [login; 32];
    nonce[..2].copy_from_slice(&n.to_be_bytes());
    CommandKey::derive(&ChannelBinding([0x5c; 32]), &nonce, &player_id(n))
}

pub struct Node {
    pub id: PlayerId,
    pub machine: CommandPlayer,
    /// The player's UDP address as the server sees it (after any NAT).
    pub udp_addr: SocketAddr,
    /// The address of its TCP session.
    pub session_addr: SocketAddr,
    pub up: Link,
    pub down: Link,
    pub session_up: Link,
    pub session_down: Link,
    pub session_online: bool,
    /// Every command given out for execution, with when.
    pub executed: Vec<(Command, UnixTime)>,
    /// Report every executed command at once with this outcome (None: do not report).
    pub auto_report: Option<Outcome>,
    pub login: u8,
}

pub struct World {
    pub clock: VirtualClock,
    pub origin: Instant,
    pub server: CommandServer,
    pub nodes: Vec<Node>,
    pub server_events: Vec<(ServerEvent, UnixTime)>,
    /// (input length, reply length) of every direct reply to a datagram.
    pub replies: Vec<(usize, usize)>,
    /// Every datagram the server put on a UDP link, with its player index (for replays).
    pub captured_down: Vec<(usize, Vec<u8>)>,
    /// Every datagram a player put on a UDP link.
    pub captured_up: Vec<(usize, Vec<u8>)>,
    pub steps: u64,
}

impl World {
    /// A server and `players` players on links configured by `udp` (both ways), sessions with
    /// 20 ms of delay, all online.
    pub fn new(players: u16, udp: &LinkConfig, config: ServerConfig, seed: u64) -> Self {
        let clock = VirtualClock::new();
        let origin = clock.now();
        let now = UnixTime::from_millis(T0);
        let server = CommandServer::new(Arc::new(config), now, seed);
        let mut w = Self {
            clock,
            origin,
            server,
            nodes: Vec::new(),
            server_events: Vec::new(),
            replies: Vec::new(),
            captured_down: Vec::new(),
            captured_up: Vec::new(),
            steps: 0,
        };
        for n in 0..players {
            w.add_node(n, udp, seed);
        }
        for i in 0..w.nodes.len() {
            w.login(i);
        }
        w.flush();
        w
    }

    fn add_node(&mut self, n: u16, udp: &LinkConfig, seed: u64) {
        let ip = format!("10.{}.{}.2", n >> 8, n & 0xff);
        let session = LinkConfig {
            delay: Duration::from_millis(20),
            ..LinkConfig::perfect()
        };
        let s = seed.wrapping_mul(1000).wrapping_add(u64::from(n) * 4);
        let mut config = PlayerConfig::new(server_addr());
        config.keepalive = Duration::from_secs(25);
        let origin = self.origin;
        self.nodes.push(Node {
            id: player_id(n),
            machine: CommandPlayer::new(Arc::new(config), self.now(), key(n, 0), s),
            udp_addr: format!("{ip}:40000").parse().unwrap(),
            session_addr: format!("{ip}:51000").parse().unwrap(),
            up: Link::new(udp.clone(), s + 1).with_origin(origin),
            down: Link::new(udp.clone(), s + 2).with_origin(origin),
            session_up: Link::new(session.clone(), s + 3).with_origin(origin),
            session_down: Link::new(session, s + 4).with_origin(origin),
            session_online: false,
            executed: Vec::new(),
            auto_report: Some(Outcome::Succeeded),
            login: 0,
        });
    }

    pub fn now(&self) -> UnixTime {
        UnixTime::from_millis(T0 + self.clock.elapsed().as_millis() as u64)
    }

    fn instant(&self, t: UnixTime) -> Instant {
        self.origin + Duration::from_millis(t.as_millis().saturating_sub(T0))
    }

    /// Player `i` (re)logs in: a new key on both sides, the session up.
    pub fn login(&mut self, i: usize) {
        let now = self.now();
        let node = &mut self.nodes[i];
        let k = key(
            u16::from(node.id.as_bytes()[0]) * 256 + u16::from(node.id.as_bytes()[1]),
            node.login,
        );
        node.session_online = true;
        if node.login > 0 {
            node.machine.rekey(now, k.clone());
        }
        self.server
            .player_online(now, node.id, k, node.session_addr)
            .unwrap();
    }

    /// Player `i` logs in again (a new login: the key rotates).
    pub fn relogin(&mut self, i: usize) {
        self.nodes[i].login += 1;
        self.login(i);
    }

    /// Player `i`'s session ends (the player goes offline; its UDP is unaffected).
    pub fn logout(&mut self, i: usize) {
        let now = self.now();
        self.nodes[i].session_online = false;
        self.nodes[i].session_up.clear();
        self.nodes[i].session_down.clear();
        self.server.player_offline(now, self.nodes[i].id);
    }

    pub fn send(&mut self, i: usize, action: Action, ttl: Duration) -> CommandId {
        let now = self.now();
        let id = self
            .server
            .send(now, self.nodes[i].id, CommandSpec::new(action, ttl))
            .unwrap();
        self.flush();
        id
    }

    /// Drains every machine's events and transmissions onto the links.
    pub fn flush(&mut self) {
        let now = self.now();
        let t = self.clock.now();
        while let Some(ev) = self.server.poll_event() {
            self.server_events.push((ev, now));
        }
        let mut buf = Vec::new();
        while let Some(st) = self.server.poll_transmit(&mut buf) {
            let i = self.index(st.player);
            let data = std::mem::take(&mut buf);
            self.route_down(i, st.transmit.to, data, t);
        }
        for i in 0..self.nodes.len() {
            self.player_events(i);
            self.flush_player(i, t);
        }
    }

    fn player_events(&mut self, i: usize) {
        let now = self.now();
        let node = &mut self.nodes[i];
        while let Some(ev) = node.machine.poll_event() {
            if let PlayerEvent::Execute(c) = ev {
                let id = c.id;
                node.executed.push((c, now));
                if let Some(outcome) = node.auto_report.clone() {
                    node.machine.report(now, id, outcome).unwrap();
                }
            }
        }
    }

    fn flush_player(&mut self, i: usize, t: Instant) -> usize {
        let mut buf = Vec::new();
        let mut total = 0;
        while let Some(tr) = self.nodes[i].machine.poll_transmit(&mut buf) {
            total = total.max(tr.len);
            let data = std::mem::take(&mut buf);
            let node = &mut self.nodes[i];
            match tr.to {
                Some(to) => {
                    assert_eq!(to, server_addr());
                    self.captured_up.push((i, data.clone()));
                    node.up.send(t, data);
                }
                None if node.session_online => node.session_up.send(t, data),
                None => {}
            }
        }
        total
    }

    fn route_down(&mut self, i: usize, to: Option<SocketAddr>, data: Vec<u8>, t: Instant) {
        let node = &mut self.nodes[i];
        match to {
            // Only the player's real address reaches it (a guessed port before its Hello is lost).
            Some(to) if to == node.udp_addr => {
                self.captured_down.push((i, data.clone()));
                node.down.send(t, data);
            }
            None if node.session_online => node.session_down.send(t, data),
            _ => {}
        }
    }

    pub fn index(&self, player: PlayerId) -> usize {
        self.nodes.iter().position(|n| n.id == player).unwrap()
    }

    /// Delivers a datagram to the server as if from `from`; records the direct reply size.
    pub fn deliver_to_server(&mut self, from: SocketAddr, data: &[u8]) -> Result<(), CommandError> {
        let now = self.now();
        let r = self.server.handle_input(now, from, data);
        self.drain_server_replies(data.len());
        r
    }

    pub fn deliver_to_server_session(&mut self, i: usize, data: &[u8]) -> Result<(), CommandError> {
        let now = self.now();
        let r = self
            .server
            .handle_session_input(now, self.nodes[i].id, data);
        self.drain_server_replies(data.len());
        r
    }

    fn drain_server_replies(&mut self, input: usize) {
        let t = self.clock.now();
        let mut buf = Vec::new();
        while let Some(st) = self.server.poll_transmit(&mut buf) {
            self.replies.push((input, st.transmit.len));
            let i = self.index(st.player);
            let data = std::mem::take(&mut buf);
            self.route_down(i, st.transmit.to, data, t);
        }
    }

    /// Delivers a datagram to player `i` as if from `from`; records the direct reply size.
    pub fn deliver_to_player(
        &mut self,
        i: usize,
        from: SocketAddr,
        data: &[u8],
    ) -> Result<(), CommandError> {
        let now = self.now();
        let r = self.nodes[i].machine.handle_input(now, from, data);
        let t = self.clock.now();
        let mut buf = Vec::new();
        while let Some(tr) = self.nodes[i].machine.poll_transmit(&mut buf) {
            self.replies.push((data.len(), tr.len));
            let data = std::mem::take(&mut buf);
            let node = &mut self.nodes[i];
            match tr.to {
                Some(_) => {
                    self.captured_up.push((i, data.clone()));
                    node.up.send(t, data);
                }
                None if node.session_online => node.session_up.send(t, data),
                None => {}
            }
        }
        r
    }

    pub fn deliver_to_player_session(&mut self, i: usize, data: &[u8]) -> Result<(), CommandError> {
        let now = self.now();
        let r = self.nodes[i].machine.handle_session_input(now, data);
        let t = self.clock.now();
        let mut buf = Vec::new();
        while let Some(tr) = self.nodes[i].machine.poll_transmit(&mut buf) {
            self.replies.push((data.len(), tr.len));
            let data = std::mem::take(&mut buf);
            let node = &mut self.nodes[i];
            match tr.to {
                Some(_) => node.up.send(t, data),
                None if node.session_online => node.session_up.send(t, data),
                None => {}
            }
        }
        r
    }

    fn next_event(&self) -> Option<Instant> {
        let mut next: Option<Instant> = self.server.poll_timeout().map(|t| self.instant(t));
        for n in &self.nodes {
            for t in [
                n.machine.poll_timeout().map(|t| self.instant(t)),
                n.up.next_arrival(),
                n.down.next_arrival(),
                n.session_up.next_arrival(),
                n.session_down.next_arrival(),
            ]
            .into_iter()
            .flatten()
            {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        }
        next
    }

    /// Jumps to the next event and handles everything due then. False when nothing is left.
    pub fn step(&mut self) -> bool {
        self.flush();
        let Some(at) = self.next_event() else {
            return false;
        };
        self.clock.advance_to(at);
        // Timers are in whole milliseconds: never run ahead of the timer that woke us.
        let t = self.clock.now();
        self.steps += 1;
        let sa = server_addr();
        for i in 0..self.nodes.len() {
            while let Some(d) = self.nodes[i].down.recv(t) {
                let _ = self.deliver_to_player(i, sa, &d);
                self.player_events(i);
            }
            while let Some(d) = self.nodes[i].session_down.recv(t) {
                let _ = self.deliver_to_player_session(i, &d);
                self.player_events(i);
            }
            while let Some(d) = self.nodes[i].up.recv(t) {
                let from = self.nodes[i].udp_addr;
                let _ = self.deliver_to_server(from, &d);
            }
            while let Some(d) = self.nodes[i].session_up.recv(t) {
                let _ = self.deliver_to_server_session(i, &d);
            }
        }
        let now = self.now();
        if self.server.poll_timeout().is_some_and(|x| x <= now) {
            self.server.handle_timeout(now);
        }
        for n in &mut self.nodes {
            if n.machine.poll_timeout().is_some_and(|x| x <= now) {
                n.machine.handle_timeout(now);
            }
        }
        self.flush();
        true
    }

    /// Runs until `done`, or `limit` of virtual time passes. Returns whether `done` held.
    pub fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&Self) -> bool) -> bool {
        let end = self.clock.now() + limit;
        loop {
            if done(self) {
                return true;
            }
            if self.clock.now() >= end || self.steps > 10_000_000 {
                return false;
            }
            match self.next_event() {
                Some(t) if t <= end => {
                    self.step();
                }
                _ => {
                    self.clock.advance_to(end);
                    self.flush();
                    return done(self);
                }
            }
        }
    }

    /// Runs for `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) {
        self.run_until(d, |_| false);
    }

    /// The states reported for one command, in order.
    pub fn states(&self, id: CommandId) -> Vec<CommandState> {
        self.server_events
            .iter()
            .filter_map(|(e, _)| match e {
                ServerEvent::StateChanged { id: i, state, .. } if *i == id => Some(state.clone()),
                _ => None,
            })
            .collect()
    }

    pub fn final_state(&self, id: CommandId) -> Option<CommandState> {
        self.states(id).last().cloned()
    }

    /// How many times player `i` was told to run `id`.
    pub fn runs(&self, i: usize, id: CommandId) -> usize {
        self.nodes[i]
            .executed
            .iter()
            .filter(|(c, _)| c.id == id)
            .count()
    }

    /// Largest direct reply relative to its cause.
    pub fn assert_no_amplification(&self) {
        for &(input, reply) in &self.replies {
            assert!(
                reply <= input,
                "a {input}-byte datagram caused a {reply}-byte reply"
            );
        }
    }
}
