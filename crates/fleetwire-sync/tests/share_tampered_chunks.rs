//! LAN sharing with a peer that sends tampered chunks (a group member: its datagrams carry a
//! valid group HMAC, only the bytes are wrong): every chunk from it fails its signed digest,
//! is rejected and reported, the peer is dropped, and the file completes from an honest peer
//! byte for byte. No tampered byte is ever handed to the application.
#[path = "share_common/mod.rs"]
mod share_common;
use std::time::Duration;

use fleetwire_sync::share::*;
use fleetwire_testkit::LinkConfig;
use share_common::*;

#[test]
fn a_hostile_peer_is_caught_by_the_digest_and_dropped() {
    let data = file(700_000, 3);
    let m = signed(&data, 32 * 1024);
    let link = LinkConfig {
        delay: Duration::from_micros(400),
        ..LinkConfig::perfect()
    };
    let mut lan = ShareLan::new(3, &link, 7);
    lan.give(0, &m, &data);
    lan.give(1, &m, &data);
    lan.nodes[0].hostile = true;
    lan.fetch(2, &m, &[0, 1]);
    assert!(lan.run_until(Duration::from_secs(30), |l| l.completed(2)));
    assert_eq!(lan.nodes[2].written, data);
    let ev = &lan.nodes[2].events;
    assert!(
        ev.iter()
            .any(|e| matches!(e, ShareEvent::ChunkRejected { peer, .. } if *peer == addr(0)))
    );
    assert!(ev.iter().any(
        |e| matches!(e, ShareEvent::PeerDropped { misbehaved: true, peer, .. } if *peer == addr(0))
    ));
    // Every verified chunk is exactly the server's.
    for e in ev {
        if let ShareEvent::ChunkVerified { index, data: d, .. } = e {
            assert!(m.chunk_matches(*index, d));
        }
    }
    assert_eq!(lan.nodes[2].share.stats().chunks_rejected, 1);
}

#[test]
fn with_only_hostile_peers_the_server_is_asked_and_nothing_bad_is_kept() {
    let data = file(300_000, 4);
    let m = signed(&data, 32 * 1024);
    let mut lan = ShareLan::new(2, &LinkConfig::perfect(), 8);
    lan.give(0, &m, &data);
    lan.nodes[0].hostile = true;
    lan.fetch(1, &m, &[0]);
    assert!(lan.run_until(Duration::from_secs(30), |l| l.fell_back(1).is_some()));
    assert_eq!(lan.fell_back(1).unwrap().stored().count(), 0);
    assert!(
        !lan.nodes[1]
            .events
            .iter()
            .any(|e| matches!(e, ShareEvent::ChunkVerified { .. }))
    );
}
