//! LAN sharing with a peer that disappears mid-transfer: the fetch moves to the next peer; with
//! no peer left it falls back to the server, handing over a resume record, and the server's
//! transfer (fleetwire-transfer `Sender`/`Receiver`) sends only the chunks still missing.
#[path = "share_common/mod.rs"]
mod share_common;
use std::sync::Arc;
use std::time::Duration;

use fleetwire_sync::share::*;
use fleetwire_testkit::LinkConfig;
use fleetwire_transfer::*;
use share_common::*;

fn link() -> LinkConfig {
    LinkConfig {
        bandwidth: Some(50_000_000 / 8),
        delay: Duration::from_micros(500),
        loss: 0.02,
        ..LinkConfig::perfect()
    }
}

#[test]
fn the_next_peer_finishes_when_one_disappears() {
    let data = file(2_000_000, 1);
    let m = signed(&data, 64 * 1024);
    let mut lan = ShareLan::new(3, &link(), 5);
    lan.give(0, &m, &data);
    lan.give(1, &m, &data);
    lan.fetch(2, &m, &[0, 1]);
    // Run until about a third has arrived, then peer 0 loses power.
    assert!(lan.run_until(
        Duration::from_secs(30),
        |l| l.nodes[2].share.stats().pieces_in > 600
    ));
    lan.nodes[0].alive = false;
    assert!(lan.run_until(Duration::from_secs(60), |l| l.completed(2)));
    assert_eq!(lan.nodes[2].written, data);
    assert!(lan.nodes[2].events.iter().any(
        |e| matches!(e, ShareEvent::PeerDropped { misbehaved: false, peer, .. } if *peer == addr(0))
    ));
    assert!(lan.nodes[1].share.stats().pieces_out > 0);
}

#[test]
fn with_no_peer_left_the_server_sends_only_what_is_missing() {
    let data = file(1_500_000, 2);
    let m = signed(&data, 64 * 1024);
    let mut lan = ShareLan::new(2, &link(), 6);
    lan.give(0, &m, &data);
    lan.fetch(1, &m, &[0]);
    assert!(lan.run_until(
        Duration::from_secs(30),
        |l| l.nodes[1].share.stats().pieces_in > 700
    ));
    lan.nodes[0].alive = false;
    assert!(lan.run_until(Duration::from_secs(30), |l| l.fell_back(1).is_some()));
    let partial = lan.fell_back(1).unwrap();
    let have = partial.stored().count();
    assert!(have >= 5 && have < m.chunk_count(), "{have}");
    // The server's transfer resumes from the record.
    let t0 = lan.now();
    let mut sender = Sender::new(Arc::new(SenderConfig::default()), t0);
    let mut receiver = Receiver::new(
        Arc::new(ReceiverConfig::new(vec![signer().public_key()])),
        t0,
    );
    receiver.add_partial(partial);
    sender
        .offer(t0, m.clone(), ChunkSource::Memory(data.clone()), None)
        .unwrap();
    let mut written = lan.nodes[1].written.clone();
    let mut buf = Vec::new();
    let mut done = false;
    for _ in 0..10_000 {
        // Transmit appends to the buffer: one message at a time.
        while sender.poll_transmit(&mut buf).is_some() {
            let _ = receiver.handle_input(t0, &buf);
            buf.clear();
        }
        while let Some(ev) = receiver.poll_event() {
            match ev {
                ReceiverEvent::ChunkVerified {
                    transfer,
                    index,
                    offset,
                    data,
                } => {
                    written[offset as usize..offset as usize + data.len()].copy_from_slice(&data);
                    receiver.chunk_stored(t0, transfer, index).unwrap();
                }
                ReceiverEvent::Completed { .. } => done = true,
                _ => {}
            }
        }
        while receiver.poll_transmit(&mut buf).is_some() {
            let _ = sender.handle_input(t0, &buf);
            buf.clear();
        }
        while sender.poll_event().is_some() {}
        if done {
            break;
        }
    }
    assert!(done);
    assert_eq!(written, data);
    // Only the chunks the peer had not delivered came from the server.
    let from_server = sender.stats().chunks_sent;
    assert_eq!(from_server, u64::from(m.chunk_count() - have));
}
