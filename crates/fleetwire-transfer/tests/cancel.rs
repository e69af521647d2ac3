//! Either side can cancel: the other is told and ends the transfer with one terminal event.
#![allow(clippy::wildcard_imports)]
mod common;

use std::time::Duration;

use common::*;
use fleetwire_testkit::{LinkConfig, VirtualClock};
use fleetwire_transfer::{FileKind, TransferError, TransferId};

fn started() -> fleetwire_testkit::Pair<SenderApp, ReceiverApp> {
    let data = file_bytes(256 * 1024, 1);
    let clock = VirtualClock::new();
    let mut sender = SenderApp::new(sender_config(4), clock.now());
    sender.offer(
        clock.now(),
        signed(FileKind::Media, 1, 1, 1024, &data),
        data,
        None,
    );
    let receiver = ReceiverApp::trusting_test_key(clock.now());
    let link = LinkConfig {
        delay: Duration::from_millis(5),
        ..LinkConfig::perfect()
    };
    let mut p = pair(sender, receiver, link, 1, clock);
    p.run_until(Duration::from_secs(10), 1_000_000, |p| {
        p.b.arrived.len() > 10
    });
    p
}

#[test]
fn sender_cancels() {
    let mut p = started();
    let now = p.clock.now();
    p.a.sender.cancel(now, TransferId(1)).unwrap();
    assert!(p.run_until(Duration::from_secs(10), 1_000_000, |p| {
        !p.b.failed.is_empty()
    }));
    assert_eq!(
        p.b.failed,
        vec![(TransferId(1), TransferError::PeerCancelled)]
    );
    assert_eq!(p.a.failed, vec![(TransferId(1), TransferError::Cancelled)]);
    assert!(p.b.completed.is_empty());
}

#[test]
fn receiver_cancels() {
    let mut p = started();
    let now = p.clock.now();
    p.b.receiver.cancel(now, TransferId(1)).unwrap();
    assert!(p.run_until(Duration::from_secs(10), 1_000_000, |p| {
        !p.a.failed.is_empty()
    }));
    assert_eq!(
        p.a.failed,
        vec![(TransferId(1), TransferError::PeerCancelled)]
    );
    assert_eq!(p.b.failed, vec![(TransferId(1), TransferError::Cancelled)]);
    // Nothing more is sent for it once the sender heard.
    let sent = p.a.sent_chunks.len();
    p.run_until(Duration::from_secs(5), 1_000_000, |_| false);
    assert_eq!(p.a.sent_chunks.len(), sent);
}

/// Found by the `transfer_receiver` fuzz target: a sender's cancel arriving after the receiver
/// completed the transfer made it report `Failed` as well as `Completed` (two terminal events;
/// an application could delete the file it had just completed).
#[test]
fn cancel_after_completion_does_not_fail_the_transfer() {
    use fleetwire_transfer::{Message, ReceiverConfig, ReceiverEvent};
    let now = VirtualClock::new().now();
    let data = file_bytes(3000, 7);
    let manifest = signed(FileKind::Media, 1, 1, 1024, &data);
    let mut r = fleetwire_transfer::Receiver::new(
        std::sync::Arc::new(ReceiverConfig::new(vec![signer().public_key()])),
        now,
    );
    let mut msg = Vec::new();
    Message::Offer {
        transfer: 1,
        window: 8,
        manifest: manifest.as_bytes(),
    }
    .encode(&mut msg);
    r.handle_input(now, &msg).unwrap();
    for (i, chunk) in data.chunks(1024).enumerate() {
        let index = u32::try_from(i).unwrap();
        msg.clear();
        Message::Chunk {
            transfer: 1,
            index,
            seq: u64::from(index),
            data: chunk,
        }
        .encode(&mut msg);
        r.handle_input(now, &msg).unwrap();
    }
    let mut events = Vec::new();
    while let Some(ev) = r.poll_event() {
        if let ReceiverEvent::ChunkVerified {
            transfer, index, ..
        } = ev
        {
            r.chunk_stored(now, transfer, index).unwrap();
        } else {
            events.push(ev);
        }
    }
    assert!(
        events
            .iter()
            .any(|e| matches!(e, ReceiverEvent::Completed { .. })),
        "{events:?}"
    );
    msg.clear();
    Message::Cancel { transfer: 1 }.encode(&mut msg);
    r.handle_input(now, &msg).unwrap();
    let after: Vec<_> = std::iter::from_fn(|| r.poll_event()).collect();
    assert!(after.is_empty(), "events after a late cancel: {after:?}");
}
