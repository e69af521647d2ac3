//! An on-path attacker rewrites chunk data (and fixes the message checksum, which is no MAC):
//! the receiver rejects every tampered chunk, the sender sends it again, and the file that
//! completes is the server's. A manifest signed by another key is refused outright.
#![allow(clippy::wildcard_imports)]
mod common;

use std::time::Instant;

use common::*;
use fleetwire_testkit::{Endpoint, Link, LinkConfig, Pair, Rng, VirtualClock};
use fleetwire_transfer::{ContentSigner, FileKind, Manifest, Message, TransferError};

/// Tampers with a fraction of the chunks it forwards to the receiver.
struct Attacker {
    inner: ReceiverApp,
    rng: Rng,
    rate: f64,
    tampered: u64,
}

impl Endpoint for Attacker {
    fn handle_input(&mut self, now: Instant, data: &[u8]) {
        if let Ok(Message::Chunk {
            transfer,
            index,
            seq,
            data: d,
        }) = Message::decode(data)
        {
            if !d.is_empty() && self.rng.chance(self.rate) {
                let mut evil = d.to_vec();
                let at = self.rng.below(evil.len() as u64) as usize;
                evil[at] ^= 0x01;
                let mut buf = Vec::new();
                Message::Chunk {
                    transfer,
                    index,
                    seq,
                    data: &evil,
                }
                .encode(&mut buf);
                self.tampered += 1;
                return self.inner.handle_input(now, &buf);
            }
        }
        self.inner.handle_input(now, data);
    }
    fn handle_timeout(&mut self, now: Instant) {
        self.inner.handle_timeout(now);
    }
    fn handle_close(&mut self, now: Instant) {
        self.inner.handle_close(now);
    }
    fn process_events(&mut self, now: Instant) {
        self.inner.process_events(now);
    }
    fn poll_transmit(&mut self, buf: &mut Vec<u8>) -> bool {
        self.inner.poll_transmit(buf)
    }
    fn poll_timeout(&self) -> Option<Instant> {
        self.inner.poll_timeout()
    }
}

#[test]
fn tampered_chunks_are_never_accepted() {
    for seed in 0..50 {
        let data = file_bytes(64 * 1024, seed);
        let clock = VirtualClock::new();
        let mut sender = SenderApp::new(sender_config(16), clock.now());
        sender.offer(
            clock.now(),
            signed(FileKind::Media, 1, 1, 1024, &data),
            data.clone(),
            None,
        );
        let attacker = Attacker {
            inner: ReceiverApp::trusting_test_key(clock.now()),
            rng: Rng::new(seed),
            rate: 0.3,
            tampered: 0,
        };
        let mut p = Pair::new(
            sender,
            attacker,
            Link::new(LinkConfig::perfect(), seed),
            Link::new(LinkConfig::perfect(), seed + 1),
            clock,
        );
        assert!(
            p.run_until(std::time::Duration::from_secs(600), 1_000_000, |p| p
                .a
                .finished())
        );
        assert!(p.b.tampered > 0);
        assert_eq!(p.b.inner.rejected_chunks, p.b.tampered, "seed {seed}");
        assert_eq!(p.b.inner.receiver.stats().rejected_chunks, p.b.tampered);
        assert_eq!(p.b.inner.completed[0].1, data, "seed {seed}");
    }
}

#[test]
fn manifest_from_an_untrusted_key_is_refused() {
    let data = file_bytes(4096, 1);
    let evil = ContentSigner::from_seed(&[1; 32]);
    let manifest = Manifest::build(FileKind::Configuration, 1, 9, 1024, &data)
        .unwrap()
        .sign(&evil);
    let clock = VirtualClock::new();
    let mut sender = SenderApp::new(sender_config(4), clock.now());
    sender.offer(clock.now(), manifest, data, None);
    let receiver = ReceiverApp::trusting_test_key(clock.now());
    let mut p = pair(sender, receiver, LinkConfig::perfect(), 1, clock);
    assert!(run(&mut p));
    assert!(p.b.completed.is_empty() && p.b.arrived.is_empty());
    assert_eq!(p.b.failed[0].1, TransferError::BadSignature);
    assert!(matches!(p.a.failed[0].1, TransferError::Rejected(_)));
}
