//! Wrong key: a datagram under another login's key id is dropped as unknown; one that claims
//! the right key id but was sealed with another key fails its tag. Neither is answered or
//! moves the replay window.
mod common;
use std::time::Duration;

use common::*;
use fleetwire_command::wire::{Frame, Header, seal};
use fleetwire_command::*;
use fleetwire_testkit::LinkConfig;

fn hello_under(key: &CommandKey, claimed: KeyId, seq: u64) -> Vec<u8> {
    let mut plain = Vec::new();
    Frame::Result {
        id: CommandId(1),
        outcome: Outcome::Succeeded,
    }
    .encode(&mut plain);
    let mut out = Vec::new();
    seal(
        key,
        Header {
            direction: Direction::ToServer,
            key_id: claimed,
            seq,
        },
        &plain,
        &mut out,
    );
    out
}

#[test]
fn wrong_keys_are_dropped_unanswered() {
    let mut w = World::new(2, &LinkConfig::perfect(), ServerConfig::default(), 5);
    w.run_for(Duration::from_secs(1));
    let id = w.send(0, Action::PurgeCache, Duration::from_secs(60));
    w.nodes[0].auto_report = None;
    assert!(w.run_until(Duration::from_secs(5), |w| w.final_state(id)
        == Some(CommandState::Delivered)));
    let from = w.nodes[0].udp_addr;
    let stranger = key(500, 9);
    let replies = w.replies.len();
    // A key id no login has.
    assert_eq!(
        w.deliver_to_server(from, &hello_under(&stranger, stranger.id(), 1_000)),
        Err(CommandError::UnknownKey)
    );
    // Player 0's key id, but sealed with another key (player 1's): the tag fails.
    let forged = hello_under(&key(1, 0), key(0, 0).id(), 1_000);
    assert_eq!(
        w.deliver_to_server(from, &forged),
        Err(CommandError::BadTag)
    );
    assert_eq!(w.server.stats().dropped_bad_tag, 1);
    assert_eq!(w.server.stats().dropped_unknown_key, 1);
    assert_eq!(
        w.replies.len(),
        replies,
        "a wrong-key datagram was answered"
    );
    // The forged "result" changed nothing, and did not consume sequence number 1000.
    assert_eq!(
        w.server.command(w.nodes[0].id, id).unwrap().state,
        CommandState::Delivered
    );
    let genuine = hello_under(&key(0, 0), key(0, 0).id(), 1_000);
    w.deliver_to_server(from, &genuine).unwrap();
    w.flush();
    assert_eq!(w.final_state(id), Some(CommandState::Succeeded));

    // The player side: a server datagram under a key that is not this login's.
    let mut plain = Vec::new();
    Frame::ResultAck(vec![CommandId(1)]).encode(&mut plain);
    let mut dg = Vec::new();
    let other = key(0, 7);
    seal(
        &other,
        Header {
            direction: Direction::ToPlayer,
            key_id: key(0, 0).id(),
            seq: 5,
        },
        &plain,
        &mut dg,
    );
    assert_eq!(
        w.deliver_to_player(0, server_addr(), &dg),
        Err(CommandError::BadTag)
    );
    assert_eq!(w.nodes[0].machine.stats().dropped_bad_tag, 1);
}
