//! A deterministic pair: one client, one server connection, virtual time that jumps to the next
//! timeout, and a recorder of every byte and event.
#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use fleetwire_session::*;

pub struct Pair {
    pub now: Instant,
    pub client: Client,
    pub server: ServerConnection,
    pub lookup: PlayerLookup,
    pub client_events: Vec<ClientEvent>,
    pub server_events: Vec<ServerEvent>,
    /// Every byte the client sent, in order.
    pub client_bytes: Vec<u8>,
    /// When false, the link drops everything (a dead network).
    pub link_up: bool,
}

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

impl Pair {
    pub fn new(client: ClientConfig, server: ServerConfig, lookup: PlayerLookup) -> Self {
        Self::with_nonce(client, server, lookup, [0x42; 32])
    }

    pub fn with_nonce(
        client: ClientConfig,
        server: ServerConfig,
        lookup: PlayerLookup,
        nonce: [u8; 32],
    ) -> Self {
        let now = Instant::now();
        Self {
            now,
            client: Client::new(Arc::new(client), now, ChannelBinding::NONE),
            server: ServerConnection::new(Arc::new(server), now, nonce, ChannelBinding::NONE),
            lookup,
            client_events: Vec::new(),
            server_events: Vec::new(),
            client_bytes: Vec::new(),
            link_up: true,
        }
    }

    /// The standard pair: player 1 with secret 1, approved.
    pub fn standard() -> Self {
        Self::new(
            ClientConfig::new(player(1), secret(1)),
            ServerConfig::default(),
            known(&secret(1), true),
        )
    }

    /// Moves bytes and events until nothing more happens at the current time.
    pub fn drive(&mut self) {
        for _ in 0..100 {
            let mut progress = false;
            let mut buf = Vec::new();
            while self.client.poll_transmit(&mut buf).is_some() {}
            if !buf.is_empty() {
                progress = true;
                self.client_bytes.extend_from_slice(&buf);
                if self.link_up {
                    let _ = self.server.handle_input(self.now, &buf);
                }
            }
            while let Some(event) = self.server.poll_event() {
                progress = true;
                if let ServerEvent::LookupPlayer { .. } = &event {
                    self.server
                        .resolve_player(self.now, self.lookup.clone())
                        .unwrap();
                }
                self.server_events.push(event);
            }
            let mut buf = Vec::new();
            while self.server.poll_transmit(&mut buf).is_some() {}
            if !buf.is_empty() {
                progress = true;
                if self.link_up {
                    let _ = self.client.handle_input(self.now, &buf);
                }
            }
            while let Some(event) = self.client.poll_event() {
                progress = true;
                self.client_events.push(event);
            }
            if !progress {
                return;
            }
        }
        panic!("the pair never went idle");
    }

    /// Jumps to the earliest timeout of either side, fires it, and drives. Returns false when
    /// neither side has a timeout.
    pub fn step(&mut self) -> bool {
        let next = match (self.client.poll_timeout(), self.server.poll_timeout()) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) | (None, Some(a)) => a,
            (None, None) => return false,
        };
        self.now = self.now.max(next);
        self.client.handle_timeout(self.now);
        self.server.handle_timeout(self.now);
        self.drive();
        true
    }

    /// Steps until `d` of virtual time has passed or nothing is left to do.
    pub fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now < end {
            let next = [self.client.poll_timeout(), self.server.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(t) if t <= end => {
                    self.step();
                }
                _ => {
                    self.now = end;
                }
            }
        }
    }

    pub fn client_closed(&self) -> Vec<&SessionError> {
        self.client_events
            .iter()
            .filter_map(|e| match e {
                ClientEvent::Closed { reason } => Some(reason),
                _ => None,
            })
            .collect()
    }

    pub fn server_closed(&self) -> Vec<&SessionError> {
        self.server_events
            .iter()
            .filter_map(|e| match e {
                ServerEvent::Closed { reason } => Some(reason),
                _ => None,
            })
            .collect()
    }
}
