//! A simulated LAN of `Share` machines: seeded links between every pair (fleetwire-testkit),
//! files on each node's "disk", and a fetcher that writes verified chunks and reports them
//! stored. A node can be killed, or made hostile (it flips a byte in every piece it sends and
//! signs the result with the group key it holds).
#![allow(dead_code, unreachable_pub, clippy::missing_panics_doc)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fleetwire_core::UnixTime;
use fleetwire_session::PlayerId;
use fleetwire_sync::share::*;
use fleetwire_sync::*;
use fleetwire_testkit::{Link, LinkConfig, VirtualClock};
use fleetwire_transfer::{ContentSigner, FileKind, Manifest, SignedManifest};

pub const GROUP: GroupId = GroupId(5);

pub fn key() -> GroupKey {
    GroupKey::new(1, [0x24; 32])
}

pub fn signer() -> ContentSigner {
    ContentSigner::from_seed(&[0x99; 32])
}

pub fn file(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| ((i * 31 + usize::from(seed) * 7) % 251) as u8)
        .collect()
}

pub fn signed(data: &[u8], chunk: u32) -> SignedManifest {
    Manifest::build(FileKind::Media, 42, 3, chunk, data)
        .unwrap()
        .sign(&signer())
}

pub fn addr(i: usize) -> SocketAddr {
    SocketAddr::from(([10, 1, 0, i as u8 + 1], 16733))
}

pub struct Node {
    pub share: Share,
    pub disk: HashMap<(u64, u64), (SignedManifest, Vec<u8>)>,
    /// What the fetch wrote so far (the file being assembled).
    pub written: Vec<u8>,
    pub events: Vec<ShareEvent>,
    pub alive: bool,
    pub hostile: bool,
    /// Verified chunks are stored at once unless this is false.
    pub store: bool,
}

pub struct ShareLan {
    pub clock: VirtualClock,
    pub nodes: Vec<Node>,
    pub links: Vec<Vec<Link>>,
}

impl ShareLan {
    pub fn new(n: usize, link: &LinkConfig, seed: u64) -> Self {
        let clock = VirtualClock::new();
        let origin = clock.now();
        let nodes = (0..n)
            .map(|i| {
                let config = ShareConfig::new(
                    GROUP,
                    PlayerId::from_bytes([i as u8 + 1; 16]),
                    vec![signer().public_key()],
                );
                Node {
                    share: Share::new(
                        Arc::new(config),
                        origin,
                        UnixTime::from_secs(1_700_000_000),
                        key(),
                    ),
                    disk: HashMap::new(),
                    written: Vec::new(),
                    events: Vec::new(),
                    alive: true,
                    hostile: false,
                    store: true,
                }
            })
            .collect();
        let links = (0..n)
            .map(|a| {
                (0..n)
                    .map(|b| {
                        Link::new(link.clone(), seed * 100 + (a * 16 + b) as u64)
                            .with_origin(origin)
                    })
                    .collect()
            })
            .collect();
        Self {
            clock,
            nodes,
            links,
        }
    }

    pub fn now(&self) -> Instant {
        self.clock.now()
    }

    /// Node `i` holds `data` and seeds it.
    pub fn give(&mut self, i: usize, m: &SignedManifest, data: &[u8]) {
        self.nodes[i]
            .disk
            .insert((m.file_id(), m.version()), (m.clone(), data.to_vec()));
        self.nodes[i].share.seed(m.clone());
    }

    pub fn fetch(&mut self, i: usize, m: &SignedManifest, peers: &[usize]) -> FetchId {
        let now = self.now();
        self.nodes[i].written = vec![0; m.length() as usize];
        let peers = peers.iter().map(|&p| addr(p)).collect();
        let id = self.nodes[i]
            .share
            .fetch(now, m.clone(), peers, None)
            .unwrap();
        self.flush();
        id
    }

    fn flush(&mut self) {
        let now = self.now();
        for i in 0..self.nodes.len() {
            if !self.nodes[i].alive {
                continue;
            }
            while let Some(ev) = self.nodes[i].share.poll_event() {
                let node = &mut self.nodes[i];
                match &ev {
                    ShareEvent::ChunkNeeded {
                        file_id,
                        version,
                        index,
                    } => {
                        if let Some((m, data)) = node.disk.get(&(*file_id, *version)) {
                            let start = m.chunk_offset(*index) as usize;
                            let end = start + m.chunk_len(*index);
                            let chunk = data[start..end].to_vec();
                            let _ = node
                                .share
                                .provide_chunk(now, *file_id, *version, *index, &chunk);
                        }
                    }
                    ShareEvent::ChunkVerified {
                        fetch,
                        index,
                        offset,
                        data,
                    } => {
                        let o = *offset as usize;
                        node.written[o..o + data.len()].copy_from_slice(data);
                        if node.store {
                            node.share.chunk_stored(now, *fetch, *index).unwrap();
                        }
                    }
                    _ => {}
                }
                node.events.push(ev);
            }
            let mut buf = Vec::new();
            while let Some(t) = self.nodes[i].share.poll_transmit(&mut buf) {
                let data = std::mem::take(&mut buf);
                let data = if self.nodes[i].hostile {
                    tamper(&data)
                } else {
                    data
                };
                let Some(to) = t.to else { continue };
                let j = usize::from(match to.ip() {
                    std::net::IpAddr::V4(v) => v.octets()[3],
                    std::net::IpAddr::V6(_) => unreachable!(),
                }) - 1;
                if j < self.nodes.len() {
                    self.links[i][j].send(now, data);
                }
            }
        }
    }

    fn next_event(&self) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        for n in self.nodes.iter().filter(|n| n.alive) {
            if let Some(t) = n.share.poll_timeout() {
                next = Some(next.map_or(t, |x| x.min(t)));
            }
        }
        for row in &self.links {
            for l in row {
                if let Some(t) = l.next_arrival() {
                    next = Some(next.map_or(t, |x| x.min(t)));
                }
            }
        }
        next
    }

    pub fn step(&mut self) -> bool {
        self.flush();
        let Some(at) = self.next_event() else {
            return false;
        };
        self.clock.advance_to(at);
        let now = self.now();
        let n = self.nodes.len();
        for a in 0..n {
            for b in 0..n {
                while let Some(d) = self.links[a][b].recv(now) {
                    if self.nodes[a].alive && self.nodes[b].alive {
                        let _ = self.nodes[b].share.handle_input(now, addr(a), &d);
                    }
                }
            }
        }
        for node in self.nodes.iter_mut().filter(|n| n.alive) {
            if node.share.poll_timeout().is_some_and(|t| t <= now) {
                node.share.handle_timeout(now);
            }
        }
        self.flush();
        true
    }

    /// Runs until `done` or `limit` of virtual time.
    pub fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&Self) -> bool) -> bool {
        let end = self.now() + limit;
        loop {
            if done(self) {
                return true;
            }
            match self.next_event() {
                Some(t) if t <= end => {
                    self.step();
                }
                _ => return done(self),
            }
        }
    }

    pub fn completed(&self, i: usize) -> bool {
        self.nodes[i]
            .events
            .iter()
            .any(|e| matches!(e, ShareEvent::Completed { .. }))
    }

    pub fn fell_back(&self, i: usize) -> Option<fleetwire_transfer::Partial> {
        self.nodes[i].events.iter().find_map(|e| match e {
            ShareEvent::FallBackToServer { partial, .. } => Some(partial.clone()),
            _ => None,
        })
    }
}

/// A hostile peer's rewrite: pieces get one byte flipped, then are signed again with the group
/// key (a member holds it).
fn tamper(d: &[u8]) -> Vec<u8> {
    let Ok((h, signed, _)) = wire::decode_header(d) else {
        return d.to_vec();
    };
    let Ok(wire::Message::SharePiece {
        file,
        version,
        chunk,
        piece,
        data,
    }) = wire::decode_body(&h, signed)
    else {
        return d.to_vec();
    };
    let mut bad = data.to_vec();
    bad[0] ^= 0x01;
    let mut out = Vec::new();
    wire::seal(
        &key(),
        h.group,
        h.sender,
        h.seq,
        &wire::Message::SharePiece {
            file,
            version,
            chunk,
            piece,
            data: &bad,
        },
        &mut out,
    );
    out
}
