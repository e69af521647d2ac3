//! No amplification: garbage, truncated, oversized, replayed and wrong-key datagrams get no
//! reply at all; authentic ones get at most an acknowledgement that is never larger than the
//! datagram that caused it, on both machines.
mod common;
use std::time::Duration;

use common::*;
use fleetwire_command::wire::{Frame, Header, seal};
use fleetwire_command::*;
use fleetwire_testkit::{LinkConfig, Rng};

#[test]
fn nothing_is_answered_with_more_bytes_than_arrived() {
    let mut w = World::new(1, &LinkConfig::perfect(), ServerConfig::default(), 31);
    w.run_for(Duration::from_secs(1));
    let from = w.nodes[0].udp_addr;
    let sa = server_addr();
    let mut rng = Rng::new(31);
    // The Hello / HelloAck exchange of the login is the only reply so far.
    let before = w.replies.len();
    // Garbage of every size, to both sides: no reply at all.
    for len in 0..1300 {
        let mut junk = vec![0u8; len % 1300];
        rng.fill(&mut junk);
        if len % 3 == 0 && len > 2 {
            junk[0] = 1;
            junk[1] = 2;
        }
        let _ = w.deliver_to_server(from, &junk);
        let _ = w.deliver_to_player(0, sa, &junk);
    }
    assert_eq!(w.replies.len(), before, "garbage was answered");

    // Authentic datagrams with as many frames as fit: the replies stay smaller.
    let k = key(0, 0);
    for n in [1usize, 2, 10, 60] {
        let mut plain = Vec::new();
        for i in 0..n {
            Frame::Result {
                id: CommandId(u64::MAX - i as u64),
                outcome: Outcome::Succeeded,
            }
            .encode(&mut plain);
        }
        let mut dg = Vec::new();
        seal(
            &k,
            Header {
                direction: Direction::ToServer,
                key_id: k.id(),
                seq: 10_000 + n as u64,
            },
            &plain,
            &mut dg,
        );
        w.deliver_to_server(from, &dg).unwrap();
        let mut plain = Vec::new();
        for i in 0..n {
            Frame::Command(Command {
                id: CommandId(u64::MAX - i as u64),
                action: Action::Reboot,
                created: UnixTime::from_millis(0),
                ttl_remaining: Duration::from_millis(1),
                priority: Priority(0),
            })
            .encode(&mut plain);
        }
        let mut dg = Vec::new();
        seal(
            &k,
            Header {
                direction: Direction::ToPlayer,
                key_id: k.id(),
                seq: 10_000 + n as u64,
            },
            &plain,
            &mut dg,
        );
        w.deliver_to_player(0, sa, &dg).unwrap();
    }
    assert_eq!(
        w.replies.len() - before,
        8,
        "one acknowledgement per authentic datagram"
    );
    w.assert_no_amplification();
    // Replays of those: no reply.
    let n = w.replies.len();
    for (_, d) in w.captured_up.clone() {
        let _ = w.deliver_to_server(from, &d);
    }
    assert_eq!(w.replies.len(), n);
}

#[test]
fn a_lossy_busy_run_never_amplifies() {
    let link = LinkConfig {
        delay: Duration::from_millis(20),
        loss: 0.2,
        duplicate: 0.2,
        corrupt: 0.1,
        ..LinkConfig::perfect()
    };
    let mut w = World::new(4, &link, ServerConfig::default(), 32);
    for k in 0..40u8 {
        w.send(
            usize::from(k % 4),
            Action::Custom(vec![k; 200]),
            Duration::from_secs(120),
        );
        w.run_for(Duration::from_millis(100));
    }
    w.run_for(Duration::from_secs(200));
    assert!(w.replies.len() > 40);
    w.assert_no_amplification();
    let corrupted: u64 = w
        .nodes
        .iter()
        .map(|n| n.down.stats().corrupted + n.up.stats().corrupted)
        .sum();
    let bad_tags = w.server.stats().dropped_bad_tag
        + w.nodes
            .iter()
            .map(|n| n.machine.stats().dropped_bad_tag + n.machine.stats().dropped_decode)
            .sum::<u64>()
        + w.server.stats().dropped_decode;
    assert!(
        corrupted > 0 && bad_tags >= corrupted / 2,
        "{corrupted} corrupted, {bad_tags} dropped"
    );
}
