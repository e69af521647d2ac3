//! LAN sharing: a player fetches a file a group peer holds, over simulated UDP with loss; the
//! file arrives byte for byte, each chunk checked against the signed manifest, and a lost
//! datagram costs one piece, not a chunk. Strangers get nothing; a request for a file the peer
//! lacks gets a "missing" reply smaller than the request.
#[path = "share_common/mod.rs"]
mod share_common;
use std::time::Duration;

use fleetwire_sync::share::*;
use fleetwire_sync::*;
use fleetwire_testkit::LinkConfig;
use share_common::*;

fn lan_link(loss: f64) -> LinkConfig {
    LinkConfig {
        bandwidth: Some(100_000_000 / 8),
        delay: Duration::from_micros(300),
        queue_limit: 1 << 20,
        loss,
        ..LinkConfig::perfect()
    }
}

#[test]
fn a_file_arrives_whole_and_loss_costs_pieces_not_chunks() {
    for (seed, loss) in [(1, 0.0), (2, 0.05), (3, 0.2)] {
        let data = file(3_000_000 + 777, seed as u8);
        let m = signed(&data, 256 * 1024);
        let mut lan = ShareLan::new(2, &lan_link(loss), seed);
        lan.give(0, &m, &data);
        lan.fetch(1, &m, &[0]);
        assert!(
            lan.run_until(Duration::from_secs(120), |l| l.completed(1)),
            "loss {loss}"
        );
        assert_eq!(lan.nodes[1].written, data, "loss {loss}");
        let sent = lan.nodes[0].share.stats().bytes_out as f64 / data.len() as f64;
        eprintln!(
            "loss {loss}: seeder sent {sent:.3} × the file, {} pieces asked again",
            lan.nodes[1].share.stats().pieces_rerequested
        );
        // Each lost piece is sent again alone: overhead ≈ header + loss, never whole chunks.
        assert!(sent < 1.08 + 1.5 * loss, "loss {loss}: {sent}");
        assert_eq!(lan.nodes[1].share.stats().chunks_rejected, 0);
    }
}

#[test]
fn strangers_get_nothing_and_missing_files_get_a_smaller_no() {
    let data = file(100_000, 4);
    let m = signed(&data, 16 * 1024);
    let mut lan = ShareLan::new(3, &lan_link(0.0), 9);
    lan.give(0, &m, &data);
    let now = lan.now();
    // A stranger (wrong key) asks node 0 for a chunk: dropped, unanswered.
    let mut req = Vec::new();
    let msg = wire::Message::ShareRequest {
        file: 42,
        version: 3,
        chunk: 0,
        ranges: vec![(0, 16)],
    };
    wire::seal(
        &GroupKey::new(1, [1; 32]),
        GROUP,
        fleetwire_session::PlayerId::from_bytes([9; 16]),
        1,
        &msg,
        &mut req,
    );
    assert_eq!(
        lan.nodes[0].share.handle_input(now, addr(2), &req),
        Err(SyncError::BadTag)
    );
    let mut buf = Vec::new();
    assert!(lan.nodes[0].share.poll_transmit(&mut buf).is_none());
    // A member asks node 1, which lacks the file: one reply, smaller than the request.
    let mut req = Vec::new();
    wire::seal(
        &key(),
        GROUP,
        fleetwire_session::PlayerId::from_bytes([3; 16]),
        1,
        &msg,
        &mut req,
    );
    lan.nodes[1].share.handle_input(now, addr(2), &req).unwrap();
    let t = lan.nodes[1].share.poll_transmit(&mut buf).unwrap();
    assert!(t.len < req.len(), "{} ≥ {}", t.len, req.len());
    assert!(lan.nodes[1].share.poll_transmit(&mut buf).is_none());
    // Fetching from node 1 (lacks it) then node 0: node 1 is dropped at once, node 0 serves.
    lan.fetch(2, &m, &[1, 0]);
    assert!(lan.run_until(Duration::from_secs(10), |l| l.completed(2)));
    assert!(lan.nodes[2].events.iter().any(|e| matches!(
        e,
        ShareEvent::PeerDropped {
            misbehaved: false,
            ..
        }
    )));
    assert_eq!(lan.nodes[2].written, data);
}

#[test]
fn overlapping_ranges_never_make_a_seeder_send_more_than_the_chunk() {
    let data = file(64 * 1024, 5);
    let m = signed(&data, 16 * 1024);
    let mut lan = ShareLan::new(2, &lan_link(0.0), 10);
    lan.give(0, &m, &data);
    let now = lan.now();
    // 16 copies of "the whole chunk and more" in one request.
    let msg = wire::Message::ShareRequest {
        file: 42,
        version: 3,
        chunk: 1,
        ranges: vec![(0, u16::MAX); 16],
    };
    let mut req = Vec::new();
    wire::seal(
        &key(),
        GROUP,
        fleetwire_session::PlayerId::from_bytes([2; 16]),
        1,
        &msg,
        &mut req,
    );
    lan.nodes[0].share.handle_input(now, addr(1), &req).unwrap();
    // The seeder reads the chunk, then sends each of its 16 pieces once.
    let ev = lan.nodes[0].share.poll_event().unwrap();
    assert_eq!(
        ev,
        ShareEvent::ChunkNeeded {
            file_id: 42,
            version: 3,
            index: 1
        }
    );
    lan.nodes[0]
        .share
        .provide_chunk(now, 42, 3, 1, &data[16 * 1024..32 * 1024])
        .unwrap();
    let mut buf = Vec::new();
    let mut n = 0;
    while lan.nodes[0].share.poll_transmit(&mut buf).is_some() {
        n += 1;
        buf.clear();
    }
    assert_eq!(n, 16);
}
