#![no_main]
//! The player's command machine fed arbitrary steps: raw datagrams (from the server's address
//! and elsewhere), datagrams sealed with the right key around arbitrary plaintext, session
//! input, reports, re-keys and clock jumps (both ways). It never panics, never answers a
//! datagram with a larger one, gives each command id out at most once, and ends with at most
//! one `Closed`.
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;

use arbitrary::Arbitrary;
use fleetwire_command::wire::{Header, seal};
use fleetwire_command::*;
use fleetwire_session::{ChannelBinding, PlayerId};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
enum Step {
    Raw(Vec<u8>, bool),
    Sealed { seq: u16, plaintext: Vec<u8>, session: bool },
    Report { id: u8, failed: Option<String> },
    Rekey(u8),
    Advance(u16),
    Back(u16),
    Close,
}

fuzz_target!(|steps: Vec<Step>| {
    let server: SocketAddr = "192.0.2.1:4700".parse().unwrap();
    let player = PlayerId::from_bytes([1; 16]);
    let mut key = CommandKey::derive(&ChannelBinding([5; 32]), &[0; 32], &player);
    let mut now = UnixTime::from_secs(1_700_000_000);
    let mut p = CommandPlayer::new(Arc::new(PlayerConfig::new(server)), now, key.clone(), 1);
    let mut given = HashSet::new();
    let mut closed = 0;
    let mut buf = Vec::new();
    for step in steps {
        let mut input_len = None;
        match step {
            Step::Raw(bytes, from_server) => {
                let from = if from_server { server } else { "203.0.113.1:4700".parse().unwrap() };
                input_len = Some(bytes.len());
                let _ = p.handle_input(now, from, &bytes);
            }
            Step::Sealed { seq, plaintext, session } => {
                let mut d = Vec::new();
                let h = Header { direction: Direction::ToPlayer, key_id: key.id(), seq: u64::from(seq) };
                seal(&key, h, &plaintext, &mut d);
                input_len = Some(d.len());
                let _ = if session { p.handle_session_input(now, &d) } else { p.handle_input(now, server, &d) };
            }
            Step::Report { id, failed } => {
                let outcome = failed.map_or(Outcome::Succeeded, |message| Outcome::Failed { message });
                let _ = p.report(now, CommandId(u64::from(id)), outcome);
            }
            Step::Rekey(n) => {
                key = CommandKey::derive(&ChannelBinding([5; 32]), &[n; 32], &player);
                p.rekey(now, key.clone());
            }
            Step::Advance(ms) => {
                now = now.plus_millis(u64::from(ms) * 50);
                p.handle_timeout(now);
            }
            Step::Back(ms) => {
                now = UnixTime::from_millis(now.as_millis().saturating_sub(u64::from(ms)));
                p.handle_timeout(now);
            }
            Step::Close => p.handle_close(now),
        }
        // Direct replies first: never larger than what caused them.
        while let Some(t) = p.poll_transmit(&mut buf) {
            if let Some(n) = input_len {
                assert!(t.len <= n, "{n}-byte datagram answered with {} bytes", t.len);
            }
            assert!(t.len <= MAX_DATAGRAM_LEN);
            buf.clear();
        }
        while let Some(e) = p.poll_event() {
            assert_eq!(closed, 0, "event after Closed: {e:?}");
            match e {
                PlayerEvent::Execute(c) => assert!(given.insert(c.id), "{} given out twice", c.id),
                PlayerEvent::Closed { .. } => closed += 1,
                _ => {}
            }
        }
    }
});
