//! Shared test applications: a sender app and a receiver app that play the application side
//! (answer `ChunkNeeded`, write verified chunks to an in-memory disk, report them stored) and
//! implement the testkit's `Endpoint`, so a `Pair` can drive them over simulated links.
#![allow(dead_code, unreachable_pub, missing_docs, clippy::wildcard_imports)]

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fleetwire_testkit::{Endpoint, Link, LinkConfig, Pair, VirtualClock};
use fleetwire_transfer::*;

pub const SEED_KEY: [u8; 32] = [0x5a; 32];

pub fn signer() -> ContentSigner {
    ContentSigner::from_seed(&SEED_KEY)
}

pub fn file_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = fleetwire_testkit::Rng::new(seed);
    let mut v = vec![0u8; len];
    rng.fill(&mut v);
    v
}

pub fn signed(kind: FileKind, id: u64, version: u64, chunk: u32, data: &[u8]) -> SignedManifest {
    Manifest::build(kind, id, version, chunk, data)
        .unwrap()
        .sign(&signer())
}

#[derive(Debug)]
pub struct SenderApp {
    pub sender: Sender,
    pub files: HashMap<TransferId, Arc<Vec<u8>>>,
    pub completed: Vec<TransferId>,
    pub failed: Vec<(TransferId, TransferError)>,
    pub closed: Option<TransferError>,
    pub accepted: Vec<(TransferId, u32)>,
    /// Every chunk index sent, per transfer, in order (for resume accounting).
    pub sent_chunks: Vec<(TransferId, u32)>,
}

impl SenderApp {
    pub fn new(config: SenderConfig, now: Instant) -> Self {
        Self {
            sender: Sender::new(Arc::new(config), now),
            files: HashMap::new(),
            completed: Vec::new(),
            failed: Vec::new(),
            closed: None,
            accepted: Vec::new(),
            sent_chunks: Vec::new(),
        }
    }

    pub fn offer(
        &mut self,
        now: Instant,
        manifest: SignedManifest,
        data: Vec<u8>,
        rate: Option<RateLimit>,
    ) -> TransferId {
        let id = self
            .sender
            .offer(now, manifest, ChunkSource::OnDemand, rate)
            .unwrap();
        self.files.insert(id, Arc::new(data));
        id
    }

    pub fn finished(&self) -> bool {
        self.closed.is_some() || self.completed.len() + self.failed.len() == self.files.len()
    }
}

impl Endpoint for SenderApp {
    fn handle_input(&mut self, now: Instant, data: &[u8]) {
        let _ = self.sender.handle_input(now, data);
    }
    fn handle_timeout(&mut self, now: Instant) {
        self.sender.handle_timeout(now);
    }
    fn handle_close(&mut self, now: Instant) {
        self.sender.handle_close(now);
    }
    fn process_events(&mut self, now: Instant) {
        while let Some(ev) = self.sender.poll_event() {
            match ev {
                SenderEvent::ChunkNeeded {
                    transfer,
                    index,
                    offset,
                    len,
                } => {
                    let file = self.files[&transfer].clone();
                    let o = offset as usize;
                    self.sender
                        .provide_chunk(now, transfer, index, &file[o..o + len])
                        .unwrap();
                }
                SenderEvent::Completed { transfer } => self.completed.push(transfer),
                SenderEvent::Failed { transfer, reason } => self.failed.push((transfer, reason)),
                SenderEvent::Cancelled { transfer } => {
                    self.failed.push((transfer, TransferError::Cancelled));
                }
                SenderEvent::Closed { reason } => {
                    assert!(self.closed.is_none(), "Closed emitted twice");
                    self.closed = Some(reason);
                }
                SenderEvent::Accepted {
                    transfer,
                    already_held,
                    ..
                } => self.accepted.push((transfer, already_held)),
                _ => {}
            }
        }
    }
    fn poll_transmit(&mut self, buf: &mut Vec<u8>) -> bool {
        let Some(t) = self.sender.poll_transmit(buf) else {
            return false;
        };
        let message = &buf[buf.len() - t.len..];
        if let Ok(Message::Chunk {
            transfer, index, ..
        }) = Message::decode(message)
        {
            self.sent_chunks.push((TransferId(transfer), index));
        }
        true
    }
    fn poll_timeout(&self) -> Option<Instant> {
        self.sender.poll_timeout()
    }
}

#[derive(Debug)]
pub struct ReceiverApp {
    pub receiver: Receiver,
    pub disk: HashMap<TransferId, Vec<u8>>,
    pub manifests: HashMap<TransferId, SignedManifest>,
    pub completed: Vec<(TransferId, Vec<u8>)>,
    pub failed: Vec<(TransferId, TransferError)>,
    pub closed: Option<TransferError>,
    pub rejected_chunks: u64,
    pub discarded: Vec<(u64, u64)>,
    /// Chunks handed out as verified (arrived), per transfer.
    pub arrived: BTreeSet<(TransferId, u32)>,
    /// Complete older versions on "disk", for delta: (file id, version) → bytes.
    pub held_files: HashMap<(u64, u64), Vec<u8>>,
    /// Transfers, in completion order, with the time they completed.
    pub completion_times: Vec<(TransferId, Instant)>,
    /// Initial file contents for a resumed transfer (the partial file on disk).
    pub resume_disk: Option<Vec<u8>>,
}

impl ReceiverApp {
    pub fn new(config: ReceiverConfig, now: Instant) -> Self {
        Self {
            receiver: Receiver::new(Arc::new(config), now),
            disk: HashMap::new(),
            manifests: HashMap::new(),
            completed: Vec::new(),
            failed: Vec::new(),
            closed: None,
            rejected_chunks: 0,
            discarded: Vec::new(),
            arrived: BTreeSet::new(),
            held_files: HashMap::new(),
            completion_times: Vec::new(),
            resume_disk: None,
        }
    }

    pub fn trusting_test_key(now: Instant) -> Self {
        Self::new(ReceiverConfig::new(vec![signer().public_key()]), now)
    }
}

impl Endpoint for ReceiverApp {
    fn handle_input(&mut self, now: Instant, data: &[u8]) {
        let _ = self.receiver.handle_input(now, data);
    }
    fn handle_timeout(&mut self, now: Instant) {
        self.receiver.handle_timeout(now);
    }
    fn handle_close(&mut self, now: Instant) {
        self.receiver.handle_close(now);
    }
    fn process_events(&mut self, now: Instant) {
        while let Some(ev) = self.receiver.poll_event() {
            match ev {
                ReceiverEvent::Offered {
                    transfer, manifest, ..
                } => {
                    let disk = self
                        .resume_disk
                        .take()
                        .unwrap_or_else(|| vec![0; manifest.length() as usize]);
                    self.disk.insert(transfer, disk);
                    self.manifests.insert(transfer, manifest);
                }
                ReceiverEvent::ChunkVerified {
                    transfer,
                    index,
                    offset,
                    data,
                } => {
                    let disk = self.disk.get_mut(&transfer).unwrap();
                    let o = offset as usize;
                    disk[o..o + data.len()].copy_from_slice(&data);
                    self.arrived.insert((transfer, index));
                    self.receiver.chunk_stored(now, transfer, index).unwrap();
                }
                ReceiverEvent::CopyChunk {
                    transfer,
                    index,
                    from_file_id,
                    from_version,
                    from_offset,
                    len,
                } => {
                    let data = self
                        .held_files
                        .get(&(from_file_id, from_version))
                        .map(|f| f[from_offset as usize..from_offset as usize + len].to_vec())
                        .unwrap_or_default();
                    self.receiver
                        .local_chunk(now, transfer, index, &data)
                        .unwrap();
                }
                ReceiverEvent::ChunkRejected { .. } => self.rejected_chunks += 1,
                ReceiverEvent::Completed { transfer, .. } => {
                    self.completed
                        .push((transfer, self.disk[&transfer].clone()));
                    self.completion_times.push((transfer, now));
                }
                ReceiverEvent::Failed { transfer, reason } => self.failed.push((transfer, reason)),
                ReceiverEvent::Closed { reason } => {
                    assert!(self.closed.is_none(), "Closed emitted twice");
                    self.closed = Some(reason);
                }
                ReceiverEvent::PartialDiscarded { file_id, version } => {
                    self.discarded.push((file_id, version));
                }
                _ => {}
            }
        }
    }
    fn poll_transmit(&mut self, buf: &mut Vec<u8>) -> bool {
        self.receiver.poll_transmit(buf).is_some()
    }
    fn poll_timeout(&self) -> Option<Instant> {
        self.receiver.poll_timeout()
    }
}

/// A pair over perfect links with `delay` each way.
pub fn pair(
    sender: SenderApp,
    receiver: ReceiverApp,
    link: LinkConfig,
    seed: u64,
    clock: VirtualClock,
) -> Pair<SenderApp, ReceiverApp> {
    Pair::new(
        sender,
        receiver,
        Link::new(link.clone(), seed),
        Link::new(link, seed ^ 0xdead_beef),
        clock,
    )
}

pub fn sender_config(window: u32) -> SenderConfig {
    SenderConfig {
        window,
        ..SenderConfig::default()
    }
}

pub fn run(p: &mut Pair<SenderApp, ReceiverApp>) -> bool {
    p.run_until(Duration::from_secs(3600), 10_000_000, |p| {
        p.a.finished()
            && (p.b.closed.is_some()
                || !p.b.completed.is_empty()
                || p.a.closed.is_some()
                || !p.a.failed.is_empty())
    })
}
