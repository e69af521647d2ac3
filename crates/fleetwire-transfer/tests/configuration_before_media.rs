//! Many transfers on one connection: a configuration file offered after two media files still
//! completes first, and every file arrives intact.
#![allow(clippy::wildcard_imports)]
mod common;

use std::time::Duration;

use common::*;
use fleetwire_testkit::{LinkConfig, VirtualClock};
use fleetwire_transfer::FileKind;

#[test]
fn configuration_overtakes_media() {
    let media1 = file_bytes(128 * 1024, 1);
    let media2 = file_bytes(128 * 1024, 2);
    let config = file_bytes(8 * 1024, 3);
    let clock = VirtualClock::new();
    let mut sender = SenderApp::new(sender_config(8), clock.now());
    let m1 = sender.offer(
        clock.now(),
        signed(FileKind::Media, 1, 1, 1024, &media1),
        media1.clone(),
        None,
    );
    let m2 = sender.offer(
        clock.now(),
        signed(FileKind::Media, 2, 1, 1024, &media2),
        media2.clone(),
        None,
    );
    let c = sender.offer(
        clock.now(),
        signed(FileKind::Configuration, 3, 1, 1024, &config),
        config.clone(),
        None,
    );
    let receiver = ReceiverApp::trusting_test_key(clock.now());
    let link = LinkConfig {
        bandwidth: Some(1_000_000),
        delay: Duration::from_millis(10),
        ..LinkConfig::perfect()
    };
    let mut p = pair(sender, receiver, link, 1, clock);
    assert!(p.run_until(Duration::from_secs(600), 1_000_000, |p| p.a.finished()));
    let order: Vec<_> = p.b.completion_times.iter().map(|&(t, _)| t).collect();
    assert_eq!(order[0], c, "configuration must complete first");
    assert_eq!(order.len(), 3);
    for (t, bytes) in &p.b.completed {
        let want = if *t == m1 {
            &media1
        } else if *t == m2 {
            &media2
        } else {
            &config
        };
        assert_eq!(bytes, want);
    }
}
