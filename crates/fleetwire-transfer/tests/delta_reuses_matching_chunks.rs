//! A receiver that holds version 1 gets version 2 by fetching only the chunks that changed;
//! the others are copied locally (and checked again). An older version is refused.
#![allow(clippy::wildcard_imports)]
mod common;

use common::*;
use fleetwire_testkit::{LinkConfig, VirtualClock};
use fleetwire_transfer::{FileKind, TransferError};

#[test]
fn only_changed_chunks_travel() {
    let v1 = file_bytes(64 * 1024, 1);
    let mut v2 = v1.clone();
    // Change chunks 3 and 40 (1 KiB chunks).
    v2[3 * 1024 + 10] ^= 0xff;
    v2[40 * 1024] ^= 0xff;
    let m1 = signed(FileKind::Media, 8, 1, 1024, &v1);
    let m2 = signed(FileKind::Media, 8, 2, 1024, &v2);
    let clock = VirtualClock::new();
    let mut sender = SenderApp::new(sender_config(16), clock.now());
    sender.offer(clock.now(), m2, v2.clone(), None);
    let mut receiver = ReceiverApp::trusting_test_key(clock.now());
    receiver.receiver.hold(m1);
    receiver.held_files.insert((8, 1), v1.clone());
    let mut p = pair(sender, receiver, LinkConfig::perfect(), 1, clock);
    assert!(run(&mut p));
    assert_eq!(p.b.completed[0].1, v2);
    let mut sent: Vec<u32> = p.a.sent_chunks.iter().map(|&(_, i)| i).collect();
    sent.sort_unstable();
    assert_eq!(sent, vec![3, 40]);
    assert_eq!(p.b.receiver.stats().reused_chunks, 62);
    assert_eq!(p.a.accepted[0].1, 62);
}

#[test]
fn a_corrupt_local_copy_is_fetched_instead() {
    let v1 = file_bytes(8 * 1024, 1);
    let mut v2 = v1.clone();
    v2[0] ^= 1;
    let clock = VirtualClock::new();
    let mut sender = SenderApp::new(sender_config(4), clock.now());
    sender.offer(
        clock.now(),
        signed(FileKind::Media, 8, 2, 1024, &v2),
        v2.clone(),
        None,
    );
    let mut receiver = ReceiverApp::trusting_test_key(clock.now());
    receiver
        .receiver
        .hold(signed(FileKind::Media, 8, 1, 1024, &v1));
    let mut rotten = v1.clone();
    rotten[5000] ^= 1; // chunk 4 rotted on disk
    receiver.held_files.insert((8, 1), rotten);
    let mut p = pair(sender, receiver, LinkConfig::perfect(), 1, clock);
    assert!(run(&mut p));
    assert_eq!(p.b.completed[0].1, v2);
    let mut sent: Vec<u32> = p.a.sent_chunks.iter().map(|&(_, i)| i).collect();
    sent.sort_unstable();
    assert_eq!(sent, vec![0, 4]);
}

#[test]
fn rollback_to_an_older_version_is_refused() {
    let v1 = file_bytes(4096, 1);
    let v2 = file_bytes(4096, 2);
    let clock = VirtualClock::new();
    let mut sender = SenderApp::new(sender_config(4), clock.now());
    sender.offer(
        clock.now(),
        signed(FileKind::Configuration, 8, 1, 1024, &v1),
        v1,
        None,
    );
    let mut receiver = ReceiverApp::trusting_test_key(clock.now());
    receiver
        .receiver
        .hold(signed(FileKind::Configuration, 8, 2, 1024, &v2));
    let mut p = pair(sender, receiver, LinkConfig::perfect(), 1, clock);
    assert!(run(&mut p));
    assert!(p.b.completed.is_empty());
    assert!(matches!(
        p.b.failed[0].1,
        TransferError::StaleVersion { .. }
    ));
}
