#![no_main]
//! The LAN-share machine fed arbitrary steps while it fetches a small signed file from two
//! peers and seeds another: raw datagrams, correctly signed share messages with arbitrary
//! fields and piece bytes, stored chunks, provided chunks (right or wrong) and clock jumps. It
//! never panics, and every chunk it hands out as verified is exactly the signed one.
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use fleetwire_core::UnixTime;
use fleetwire_session::PlayerId;
use fleetwire_sync::share::*;
use fleetwire_sync::wire::{Message, seal};
use fleetwire_sync::*;
use fleetwire_transfer::{ContentSigner, FileKind, Manifest};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
enum Step {
    Raw(Vec<u8>),
    Piece { chunk: u8, piece: u8, data: Vec<u8>, from_b: bool, correct: bool },
    Request { chunk: u8, first: u16, n: u16 },
    Missing,
    Stored(u8),
    Provide { chunk: u8, correct: bool },
    Advance(u16),
}

fuzz_target!(|steps: Vec<Step>| {
    let signer = ContentSigner::from_seed(&[3; 32]);
    let file: Vec<u8> = (0..9000u32).map(|i| (i % 253) as u8).collect();
    let m = Manifest::build(FileKind::Media, 1, 1, 2048, &file).unwrap().sign(&signer);
    let key = GroupKey::new(1, [2; 32]);
    let t0 = Instant::now();
    let mut now = t0;
    let config = ShareConfig::new(GroupId(1), PlayerId::from_bytes([1; 16]), vec![signer.public_key()]);
    let mut s = Share::new(Arc::new(config), now, UnixTime::from_secs(1), key.clone());
    s.seed(m.clone());
    let a: SocketAddr = "10.0.0.2:16733".parse().unwrap();
    let b: SocketAddr = "10.0.0.3:16733".parse().unwrap();
    let fetch = s.fetch(now, m.clone(), vec![a, b], None).unwrap();
    let mut seq = 0u64;
    let mut buf = Vec::new();
    for step in steps {
        seq += 1;
        let signed = |msg: &Message<'_>| {
            let mut d = Vec::new();
            seal(&key, GroupId(1), PlayerId::from_bytes([2; 16]), seq, msg, &mut d);
            d
        };
        match step {
            Step::Raw(bytes) => {
                let _ = s.handle_input(now, a, &bytes);
            }
            Step::Piece { chunk, piece, data, from_b, correct } => {
                let (c, p) = (u32::from(chunk % 6), u16::from(piece % 3));
                let start = m.chunk_offset(c) as usize + usize::from(p) * 1024;
                let bytes = if correct && start < file.len() {
                    file[start..(start + 1024).min(file.len()).min(m.chunk_offset(c) as usize + m.chunk_len(c))].to_vec()
                } else {
                    data
                };
                if bytes.is_empty() || bytes.len() > 1024 {
                    continue;
                }
                let d = signed(&Message::SharePiece { file: 1, version: 1, chunk: c, piece: p, data: &bytes });
                let _ = s.handle_input(now, if from_b { b } else { a }, &d);
            }
            Step::Request { chunk, first, n } => {
                let d = signed(&Message::ShareRequest { file: 1, version: 1, chunk: u32::from(chunk % 8), ranges: vec![(first, n.max(1))] });
                let _ = s.handle_input(now, a, &d);
            }
            Step::Missing => {
                let d = signed(&Message::ShareMissing { file: 1, version: 1 });
                let _ = s.handle_input(now, a, &d);
            }
            Step::Stored(c) => {
                let _ = s.chunk_stored(now, fetch, u32::from(c % 6));
            }
            Step::Provide { chunk, correct } => {
                let c = u32::from(chunk % 5);
                let o = m.chunk_offset(c) as usize;
                let mut bytes = file[o..o + m.chunk_len(c)].to_vec();
                if !correct {
                    bytes[0] ^= 1;
                }
                let _ = s.provide_chunk(now, 1, 1, c, &bytes);
            }
            Step::Advance(ms) => {
                now += Duration::from_millis(u64::from(ms));
                s.handle_timeout(now);
            }
        }
        while let Some(t) = s.poll_transmit(&mut buf) {
            assert!(t.len <= 1200);
            buf.clear();
        }
        while let Some(e) = s.poll_event() {
            if let ShareEvent::ChunkVerified { index, data, .. } = e {
                assert!(m.chunk_matches(index, &data), "an unsigned chunk was accepted");
            }
        }
    }
});
