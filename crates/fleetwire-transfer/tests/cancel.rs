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
