//! Sender and receiver fed arbitrary bytes, and arbitrary well-formed messages, never panic,
//! stay within their invariants, and a closed machine ignores input.
#![allow(clippy::wildcard_imports)]
mod common;

use common::*;
use fleetwire_testkit::{Endpoint, VirtualClock};
use fleetwire_transfer::{ChunkSet, FileKind, Message};
use proptest::prelude::*;
use std::time::Duration;

type Raw = (u8, u32, u32, u64, Vec<u8>, Vec<(u32, u32)>);

fn message() -> impl Strategy<Value = Raw> {
    (
        0u8..6,
        0u32..4,
        0u32..80,
        0u64..200,
        prop::collection::vec(any::<u8>(), 0..1100),
        prop::collection::vec((0u32..100, 1u32..10), 0..5),
    )
}

fn encode(m: &Raw, manifest: &[u8]) -> Vec<u8> {
    let (kind, transfer, index, seq, data, ranges) = m;
    let mut set = ChunkSet::new();
    for &(s, l) in ranges {
        set.insert_range(s, s + l);
    }
    let msg = match kind {
        0 => Message::Offer {
            transfer: *transfer,
            window: *index,
            manifest: if data.len() % 2 == 0 { manifest } else { data },
        },
        1 => Message::Accept {
            transfer: *transfer,
            window: *index,
            have: set,
        },
        2 => Message::Reject {
            transfer: *transfer,
            reason: *index as u8,
        },
        3 => Message::Chunk {
            transfer: *transfer,
            index: *index,
            seq: *seq,
            data,
        },
        4 => Message::Ack {
            transfer: *transfer,
            index: *index,
            seq: *seq,
            cumulative: *index / 2,
            sack: set,
        },
        _ => Message::Cancel {
            transfer: *transfer,
        },
    };
    let mut buf = Vec::new();
    msg.encode(&mut buf);
    buf
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn machines_survive_anything(msgs in prop::collection::vec(message(), 0..60), garbage in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 0..10)) {
        let data = file_bytes(64 * 1024, 1);
        let manifest = signed(FileKind::Media, 1, 1, 1024, &data);
        let mut clock = VirtualClock::new();
        let mut s = SenderApp::new(sender_config(8), clock.now());
        s.offer(clock.now(), manifest.clone(), data, None);
        let mut r = ReceiverApp::trusting_test_key(clock.now());
        let mut buf = Vec::new();
        for m in &msgs {
            clock.advance(Duration::from_millis(7));
            let bytes = encode(m, manifest.as_bytes());
            s.handle_input(clock.now(), &bytes);
            r.handle_input(clock.now(), &bytes);
            s.handle_timeout(clock.now());
            r.handle_timeout(clock.now());
            s.process_events(clock.now());
            r.process_events(clock.now());
            while s.poll_transmit(&mut buf) {}
            while r.poll_transmit(&mut buf) {}
        }
        for g in &garbage {
            s.handle_input(clock.now(), g);
            r.handle_input(clock.now(), g);
        }
        // Nothing the peer said can make the receiver complete with wrong bytes.
        for (_, bytes) in &r.completed {
            prop_assert_eq!(bytes.len(), 64 * 1024);
        }
    }
}
