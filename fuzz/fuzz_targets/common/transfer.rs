//! The transfer fuzz harness shared by `transfer_sender` and `transfer_receiver`: one machine
//! fed arbitrary messages (raw, or re-checksummed so they decode, or with the real signed
//! manifest spliced in as an offer) with time passing between them, and now and then the
//! transport ending (`handle_close`). No panic, at most one Closed event, chunks verified only
//! if they match the signed manifest, and (sender) at most one terminal event per transfer,
//! every transfer ended by the time `Closed` comes.
use std::sync::Arc;
use std::time::{Duration, Instant};

use fleetwire_transfer::*;

#[path = "coverage.rs"]
mod coverage;

/// Which machine the harness drives.
#[allow(dead_code)] // each target constructs one role
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The server side.
    Sender,
    /// The player side.
    Receiver,
}

fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0x82F6_3B78 } else { crc >> 1 };
        }
    }
    !crc
}

/// Feeds `data` to the machine playing `role`.
pub fn run(data: &[u8], role: Role) {
    let signer = ContentSigner::from_seed(&[9; 32]);
    let file: Vec<u8> = (0..8192u32).map(|i| i as u8).collect();
    let manifest = Manifest::build(FileKind::Media, 1, 1, 512, &file).unwrap().sign(&signer);
    #[allow(clippy::disallowed_methods)]
    let mut now = Instant::now();
    let mut machine = Machine::new(role, now, &signer, manifest.clone(), &file);
    let mut input = data;
    let mut buf = Vec::new();
    let mut closed = 0;
    while input.len() >= 3 {
        let len = usize::from(input[0]).min(input.len() - 3);
        let mode = input[1];
        now += Duration::from_millis(u64::from(input[2]) * 8);
        let mut msg = input[3..3 + len].to_vec();
        input = &input[3 + len..];
        if mode & 1 == 1 {
            let crc = crc32c(&msg);
            msg.extend_from_slice(&crc.to_be_bytes());
        }
        if mode & 2 == 2 {
            // Splice in the real manifest as an offer (encode appends: replace the bytes).
            msg.clear();
            Message::Offer { transfer: u32::from(mode >> 4), window: 8, manifest: manifest.as_bytes() }.encode(&mut msg);
        }
        closed += machine.step(now, &msg, &mut buf, &file, mode & 0x0f == 0x0c);
    }
    assert!(closed <= 1);
}

struct Machine {
    sender: Option<Sender>,
    receiver: Option<Receiver>,
    /// Sender: terminal events seen per transfer (ids 1 and 2).
    ended: [u8; 3],
}

impl Machine {
    fn new(role: Role, now: Instant, signer: &ContentSigner, manifest: SignedManifest, file: &[u8]) -> Self {
        if role == Role::Sender {
            let mut s = Sender::new(Arc::new(SenderConfig::default()), now);
            s.offer(now, manifest.clone(), ChunkSource::Memory(file.to_vec()), None).unwrap();
            s.offer(now, manifest, ChunkSource::OnDemand, Some(RateLimit { bytes_per_sec: 10_000, burst: 2048 })).unwrap();
            Self { sender: Some(s), receiver: None, ended: [0; 3] }
        } else {
            let r = Receiver::new(Arc::new(ReceiverConfig::new(vec![signer.public_key()])), now);
            Self { sender: None, receiver: Some(r), ended: [0; 3] }
        }
    }

    fn step(&mut self, now: Instant, msg: &[u8], buf: &mut Vec<u8>, file: &[u8], close: bool) -> usize {
        let mut closed = 0;
        if let Some(s) = &mut self.sender {
            let _ = s.handle_input(now, msg);
            if s.poll_timeout().is_some_and(|t| t <= now) {
                s.handle_timeout(now);
            }
            if close {
                s.handle_close(now);
            }
            while let Some(ev) = s.poll_event() {
                match ev {
                    SenderEvent::ChunkNeeded { transfer, index, offset, len } => {
                        let o = offset as usize;
                        s.provide_chunk(now, transfer, index, &file[o..o + len]).unwrap();
                    }
                    SenderEvent::Completed { transfer } | SenderEvent::Failed { transfer, .. } | SenderEvent::Cancelled { transfer } => {
                        let n = &mut self.ended[transfer.0 as usize];
                        *n += 1;
                        assert_eq!(*n, 1, "two terminal events for transfer {}", transfer.0);
                    }
                    SenderEvent::Closed { .. } => {
                        assert_eq!(self.ended[1..], [1, 1], "Closed before every transfer ended");
                        closed += 1;
                    }
                    _ => {}
                }
            }
            let mut n = 0;
            loop {
                buf.clear(); // poll_transmit appends
                if s.poll_transmit(buf).is_none() {
                    break;
                }
                n += 1;
                assert!(n < 10_000, "transmit loop");
            }
        }
        if let Some(r) = &mut self.receiver {
            if let Err(e) = r.handle_input(now, msg) {
                coverage::note(|| format!("input-err:{}", coverage::kind(&e)));
            }
            if r.poll_timeout().is_some_and(|t| t <= now) {
                r.handle_timeout(now);
            }
            if close {
                r.handle_close(now);
            }
            while let Some(ev) = r.poll_event() {
                coverage::note(|| match &ev {
                    ReceiverEvent::Closed { reason } => format!("closed:{}", coverage::kind(reason)),
                    ReceiverEvent::Failed { reason, .. } => format!("failed:{}", coverage::kind(reason)),
                    e => format!("event:{}", coverage::kind(e)),
                });
                match ev {
                    ReceiverEvent::ChunkVerified { transfer, index, offset, data } => {
                        let o = offset as usize;
                        assert_eq!(&file[o..o + data.len()], &data[..], "unverified data accepted");
                        r.chunk_stored(now, transfer, index).unwrap();
                    }
                    ReceiverEvent::Closed { .. } => closed += 1,
                    _ => {}
                }
            }
            loop {
                buf.clear(); // poll_transmit appends
                if r.poll_transmit(buf).is_none() {
                    break;
                }
                if let Ok(m) = Message::decode(buf) {
                    coverage::note(|| format!("sent:{}", coverage::kind(&m)));
                }
            }
        }
        closed
    }
}
