//! The session machines on the suite's deterministic harness (`fleetwire_testkit::Pair`): a
//! client application and a server application (which answers player lookups from `lookup`),
//! each recording its events, joined by two perfect links in virtual time.
#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;
use std::time::Instant;

use fleetwire_session::*;
use fleetwire_testkit::{Endpoint, Link, LinkConfig, VirtualClock};

/// The player side: the machine, every event, and every byte it sent.
#[derive(Debug)]
pub struct ClientApp {
    pub client: Client,
    pub events: Vec<ClientEvent>,
    /// Every byte the client sent, in order (also while the link is down).
    pub bytes: Vec<u8>,
}

impl Endpoint for ClientApp {
    fn handle_input(&mut self, now: Instant, data: &[u8]) {
        let _ = self.client.handle_input(now, data);
    }
    fn handle_timeout(&mut self, now: Instant) {
        self.client.handle_timeout(now);
    }
    fn handle_close(&mut self, now: Instant) {
        self.client.handle_close(now);
    }
    fn process_events(&mut self, _now: Instant) {
        while let Some(event) = self.client.poll_event() {
            self.events.push(event);
        }
    }
    fn poll_transmit(&mut self, buf: &mut Vec<u8>) -> bool {
        let Some(t) = self.client.poll_transmit(buf) else {
            return false;
        };
        self.bytes.extend_from_slice(&buf[buf.len() - t.len..]);
        true
    }
    fn poll_timeout(&self) -> Option<Instant> {
        self.client.poll_timeout()
    }
}

/// The server side: the connection machine, what the store answers, every event.
#[derive(Debug)]
pub struct ServerApp {
    pub server: ServerConnection,
    pub lookup: PlayerLookup,
    pub events: Vec<ServerEvent>,
}

impl Endpoint for ServerApp {
    fn handle_input(&mut self, now: Instant, data: &[u8]) {
        let _ = self.server.handle_input(now, data);
    }
    fn handle_timeout(&mut self, now: Instant) {
        self.server.handle_timeout(now);
    }
    fn handle_close(&mut self, now: Instant) {
        self.server.handle_close(now);
    }
    fn process_events(&mut self, now: Instant) {
        while let Some(event) = self.server.poll_event() {
            if let ServerEvent::LookupPlayer { .. } = &event {
                self.server
                    .resolve_player(now, self.lookup.clone())
                    .unwrap();
            }
            self.events.push(event);
        }
    }
    fn poll_transmit(&mut self, buf: &mut Vec<u8>) -> bool {
        self.server.poll_transmit(buf).is_some()
    }
    fn poll_timeout(&self) -> Option<Instant> {
        self.server.poll_timeout()
    }
}

/// One client and one server connection: `a` is the player, `b` the server.
pub type Pair = fleetwire_testkit::Pair<ClientApp, ServerApp>;

pub fn secret(n: u8) -> PlayerSecret {
    PlayerSecret::from_bytes([n; 32])
}

pub fn player(n: u8) -> PlayerId {
    PlayerId::from_bytes([n; 16])
}

pub fn known(secret: &PlayerSecret, approved: bool) -> PlayerLookup {
    PlayerLookup::Known {
        verifier: secret.verifier(),
        approved,
        config_hash: None,
    }
}

pub fn pair(client: ClientConfig, server: ServerConfig, lookup: PlayerLookup) -> Pair {
    pair_with_nonce(client, server, lookup, [0x42; 32])
}

pub fn pair_with_nonce(
    client: ClientConfig,
    server: ServerConfig,
    lookup: PlayerLookup,
    nonce: [u8; 32],
) -> Pair {
    let clock = VirtualClock::new();
    let now = clock.now();
    let client = ClientApp {
        client: Client::new(Arc::new(client), now, ChannelBinding::NONE),
        events: Vec::new(),
        bytes: Vec::new(),
    };
    let server = ServerApp {
        server: ServerConnection::new(Arc::new(server), now, nonce, ChannelBinding::NONE),
        lookup,
        events: Vec::new(),
    };
    let link = || Link::new(LinkConfig::perfect(), 0);
    fleetwire_testkit::Pair::new(client, server, link(), link(), clock)
}

/// The standard pair: player 1 with secret 1, approved.
pub fn standard() -> Pair {
    pair(
        ClientConfig::new(player(1), secret(1)),
        ServerConfig::default(),
        known(&secret(1), true),
    )
}

/// What the session tests ask of the pair, beyond the harness itself.
pub trait SessionPair {
    /// The current virtual time.
    fn now(&self) -> Instant;
    /// Jumps to the next timeout of either side, fires it and handles what follows at that
    /// instant. False when neither side has anything left to do.
    fn advance(&mut self) -> bool;
    /// Takes the network down (`false`: everything sent is lost) or brings it back.
    fn set_link_up(&mut self, up: bool);
    /// The reasons of the client's `Closed` events.
    fn client_closed(&self) -> Vec<&SessionError>;
    /// The reasons of the server's `Closed` events.
    fn server_closed(&self) -> Vec<&SessionError>;
}

impl SessionPair for Pair {
    fn now(&self) -> Instant {
        self.clock.now()
    }

    fn advance(&mut self) -> bool {
        self.settle();
        if !self.step() {
            return false;
        }
        self.settle();
        true
    }

    fn set_link_up(&mut self, up: bool) {
        self.a_to_b.set_up(up);
        self.b_to_a.set_up(up);
    }

    fn client_closed(&self) -> Vec<&SessionError> {
        self.a
            .events
            .iter()
            .filter_map(|e| match e {
                ClientEvent::Closed { reason } => Some(reason),
                _ => None,
            })
            .collect()
    }

    fn server_closed(&self) -> Vec<&SessionError> {
        self.b
            .events
            .iter()
            .filter_map(|e| match e {
                ServerEvent::Closed { reason } => Some(reason),
                _ => None,
            })
            .collect()
    }
}
