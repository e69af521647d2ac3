//! Groups are isolated by id and every message is authenticated with the group key: another
//! group's traffic, a stranger without the key, a tampered byte and a replayed datagram are all
//! dropped and counted, and change nothing. A pong is never larger than its ping.
mod common;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use fleetwire_core::UnixTime;
use fleetwire_sync::*;

fn member(n: u8, group: GroupId, key: GroupKey, now: Instant) -> SyncMember {
    let mut c = SyncConfig::new(group, id(n), vec![timeline_addr(0), timeline_addr(1)]);
    c.clock_port = 16732;
    SyncMember::new(Arc::new(c), now, UnixTime::from_secs(1_700_000_000), key)
}

fn drain(m: &mut SyncMember) -> Vec<(SyncTransmit, Vec<u8>)> {
    let mut out = Vec::new();
    let mut buf = Vec::new();
    while let Some(t) = m.poll_transmit(&mut buf) {
        out.push((t, std::mem::take(&mut buf)));
    }
    out
}

#[test]
fn strangers_other_groups_tampering_and_replays_are_dropped() {
    #[allow(clippy::disallowed_methods)]
    let t0 = Instant::now();
    let mut a = member(1, GROUP, key(), t0);
    let mut other_group = member(2, GroupId(78), key(), t0);
    let mut stranger = member(3, GROUP, GroupKey::new(1, [0x43; 32]), t0);
    let mut rotated = member(4, GROUP, GroupKey::new(9, [0x42; 32]), t0);
    for m in [&mut other_group, &mut stranger, &mut rotated] {
        m.handle_timeout(t0);
    }
    let from = timeline_addr(1);
    for (t, d) in drain(&mut other_group) {
        let _ = t;
        assert!(matches!(
            a.handle_input(t0, from, &d),
            Err(SyncError::OtherGroup {
                theirs: 78,
                ours: 77
            })
        ));
    }
    for (_, d) in drain(&mut stranger) {
        assert_eq!(a.handle_input(t0, from, &d), Err(SyncError::BadTag));
    }
    for (_, d) in drain(&mut rotated) {
        assert_eq!(
            a.handle_input(t0, from, &d),
            Err(SyncError::UnknownEpoch { epoch: 9 })
        );
    }
    assert!(a.members().is_empty(), "nothing was learned from them");

    // A genuine member's beacon is accepted once; a replay or a flipped bit is not.
    let mut b = member(2, GROUP, key(), t0);
    b.handle_timeout(t0);
    let beacons = drain(&mut b);
    let (_, d) = &beacons[0];
    a.handle_input(t0, from, d).unwrap();
    assert_eq!(a.members(), vec![id(2)]);
    assert!(matches!(
        a.handle_input(t0, from, d),
        Err(SyncError::Replay { .. })
    ));
    for i in 0..d.len() {
        let mut bad = d.clone();
        bad[i] ^= 0x10;
        assert!(a.handle_input(t0, from, &bad).is_err(), "byte {i}");
    }
    let s = a.stats();
    // The other group's two beacons, then the flipped bytes: 1 version, 8 group, 4 epoch, the
    // rest fail the tag.
    assert_eq!(s.dropped_other_group, 2 + 8);
    assert_eq!(s.dropped_decode, 1);
    assert_eq!(s.dropped_auth, 2 + 2 + 4 + (d.len() as u64 - 13));
    assert_eq!(s.dropped_replay, 1);

    // After a key rotation the previous epoch is still accepted, an older one is refused.
    a.set_key(GroupKey::new(2, [0x44; 32])).unwrap();
    assert_eq!(
        a.set_key(GroupKey::new(1, [0x42; 32])),
        Err(ApiMisuse::StaleKey {
            given: 1,
            current: 2
        })
    );
    b.handle_timeout(t0 + Duration::from_secs(1));
    let (_, d) = &drain(&mut b)[0];
    a.handle_input(t0 + Duration::from_secs(1), from, d)
        .unwrap();
}

#[test]
fn a_pong_is_never_larger_than_its_ping() {
    let mut lan = Lan::new(2, jittery(Duration::from_micros(100), Duration::ZERO), 1);
    lan.add(1, 0.0, Duration::ZERO);
    lan.add(2, 0.0, Duration::ZERO);
    lan.run_for(Duration::from_secs(5));
    // Every datagram the leader sent on the clock port answered a ping of the same size.
    let leader = &lan.screens[0].member;
    let follower = &lan.screens[1].member;
    assert!(follower.stats().pings > 10);
    assert!(leader.stats().datagrams_out > 0);
    let mut ping = Vec::new();
    let mut pong = Vec::new();
    let k = key();
    wire::seal(
        &k,
        GROUP,
        id(2),
        1,
        &wire::Message::Ping { t1: 1 },
        &mut ping,
    );
    wire::seal(
        &k,
        GROUP,
        id(1),
        1,
        &wire::Message::Pong {
            t1: 1,
            t2: 2,
            t3: 3,
            term: 4,
        },
        &mut pong,
    );
    assert!(pong.len() <= ping.len());
    // Two groups on one LAN never mix: a second group's screens keep their own leader.
    let mut lan = Lan::new(4, jittery(Duration::from_micros(100), Duration::ZERO), 2);
    lan.add(1, 0.0, Duration::ZERO);
    lan.add(2, 0.0, Duration::ZERO);
    lan.config.group = GroupId(78);
    lan.add(3, 0.0, Duration::ZERO);
    lan.add(4, 0.0, Duration::ZERO);
    lan.run_for(Duration::from_secs(10));
    assert_eq!(
        lan.leaders(),
        vec![Some(id(1)), Some(id(1)), Some(id(3)), Some(id(3))]
    );
    assert!(lan.screens[0].member.stats().dropped_other_group > 0);
}
