#![no_main]
//! A sync member fed arbitrary steps: raw datagrams, datagrams correctly signed with the group
//! key around arbitrary bodies (any type, any sender), playlists and clock jumps. It never
//! panics, never answers a datagram with a larger one, and its Play events never go back in
//! group time.
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use fleetwire_core::UnixTime;
use fleetwire_session::PlayerId;
use fleetwire_sync::*;
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
enum Step {
    Raw(Vec<u8>),
    Signed { msg_type: u8, sender: u8, seq: u32, body: Vec<u8> },
    Playlist { id: u8, items: Vec<(u8, u16)> },
    Advance(u16),
}

fuzz_target!(|steps: Vec<Step>| {
    let t0 = Instant::now();
    let mut now = t0;
    let me = PlayerId::from_bytes([5; 16]);
    let key = GroupKey::new(1, [1; 32]);
    let peers: Vec<SocketAddr> = vec!["10.0.0.1:16733".parse().unwrap(), "10.0.0.2:16733".parse().unwrap()];
    let mut m = SyncMember::new(Arc::new(SyncConfig::new(GroupId(1), me, peers)), now, UnixTime::from_secs(1), key.clone());
    let from: SocketAddr = "10.0.0.2:16732".parse().unwrap();
    let mut last_start = 0;
    let mut buf = Vec::new();
    for step in steps {
        let mut input_len = None;
        match step {
            Step::Raw(b) => {
                input_len = Some(b.len());
                let _ = m.handle_input(now, from, &b);
            }
            Step::Signed { msg_type, sender, seq, body } => {
                // Hand-built header + body, signed like a member would.
                let mut d = vec![1, msg_type];
                d.extend_from_slice(&1u64.to_be_bytes());
                d.extend_from_slice(&1u32.to_be_bytes());
                d.extend_from_slice(&[sender % 8; 16]);
                d.extend_from_slice(&u64::from(seq).to_be_bytes());
                d.extend_from_slice(&body);
                let tag = ring::hmac::sign(&ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &[1; 32]), &d);
                d.extend_from_slice(&tag.as_ref()[..16]);
                input_len = Some(d.len());
                let _ = m.handle_input(now, from, &d);
            }
            Step::Playlist { id, items } => {
                let items = items.into_iter().map(|(i, d)| Item { id: u64::from(i), duration_ms: u32::from(d) }).collect();
                let _ = m.set_playlist(now, Playlist { id: u64::from(id), items });
            }
            Step::Advance(ms) => {
                now += Duration::from_millis(u64::from(ms));
                m.handle_timeout(now);
            }
        }
        // Only a pong answers a datagram directly; it is never larger than its ping.
        if let Some(n) = input_len {
            while let Some(t) = m.poll_transmit(&mut buf) {
                if t.port == Port::Clock {
                    assert!(t.transmit.len <= n);
                }
                buf.clear();
            }
        }
        while m.poll_transmit(&mut buf).is_some() {
            buf.clear();
        }
        while let Some(e) = m.poll_event() {
            if let SyncEvent::Play { start, .. } = e {
                assert!(start >= last_start, "a Play went back in group time");
                last_start = start;
            }
        }
    }
    let _ = key;
});
