//! A partial of version 1 is discarded when version 2 is offered; the file that completes is
//! version 2, byte for byte. An offer older than the partial is refused (no rollback).
#![allow(clippy::wildcard_imports)]
mod common;

use common::*;
use fleetwire_testkit::{LinkConfig, VirtualClock};
use fleetwire_transfer::{Bitmap, FileKind, Partial, TransferError};
use std::time::Duration;

fn partial_of(version: u64, data: &[u8], stored: &[u32]) -> Partial {
    // Build a partial the way a receiver would, by running a transfer and stopping early.
    let manifest = signed(FileKind::Media, 3, version, 1024, data);
    let clock = VirtualClock::new();
    let mut sender = SenderApp::new(sender_config(1), clock.now());
    sender.offer(clock.now(), manifest, data.to_vec(), None);
    let receiver = ReceiverApp::trusting_test_key(clock.now());
    let mut p = pair(sender, receiver, LinkConfig::perfect(), 1, clock);
    p.run_until(Duration::from_secs(60), 1_000_000, |p| {
        p.b.arrived.len() >= stored.len()
    });
    let partial =
        p.b.receiver
            .partial(fleetwire_transfer::TransferId(1))
            .unwrap();
    let _ = Bitmap::new(0);
    partial
}

#[test]
fn newer_version_discards_the_partial() {
    let v1 = file_bytes(16 * 1024, 1);
    let v2 = file_bytes(16 * 1024, 2);
    let partial = partial_of(1, &v1, &[0, 1, 2, 3]);
    assert!(partial.stored().count() >= 4);
    let clock = VirtualClock::new();
    let mut sender = SenderApp::new(sender_config(8), clock.now());
    sender.offer(
        clock.now(),
        signed(FileKind::Media, 3, 2, 1024, &v2),
        v2.clone(),
        None,
    );
    let mut receiver = ReceiverApp::trusting_test_key(clock.now());
    receiver.receiver.add_partial(partial);
    let mut p = pair(sender, receiver, LinkConfig::perfect(), 2, clock);
    assert!(run(&mut p));
    assert_eq!(p.b.discarded, vec![(3, 1)]);
    assert_eq!(
        p.a.accepted[0].1, 0,
        "nothing of version 1 may count as held"
    );
    assert_eq!(p.b.completed[0].1, v2);
}

#[test]
fn older_version_than_the_partial_is_refused() {
    let v1 = file_bytes(8 * 1024, 1);
    let v2 = file_bytes(8 * 1024, 2);
    let partial = partial_of(2, &v2, &[0, 1]);
    let clock = VirtualClock::new();
    let mut sender = SenderApp::new(sender_config(8), clock.now());
    sender.offer(
        clock.now(),
        signed(FileKind::Media, 3, 1, 1024, &v1),
        v1,
        None,
    );
    let mut receiver = ReceiverApp::trusting_test_key(clock.now());
    receiver.receiver.add_partial(partial);
    let mut p = pair(sender, receiver, LinkConfig::perfect(), 2, clock);
    assert!(run(&mut p));
    assert!(p.b.completed.is_empty());
    assert!(matches!(p.a.failed[0].1, TransferError::Rejected(_)));
    assert!(matches!(
        p.b.failed[0].1,
        TransferError::StaleVersion {
            offered: 1,
            held: 2,
            ..
        }
    ));
}
