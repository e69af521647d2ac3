//! Token-bucket caps: a transfer capped at 100 kB/s takes at least size/rate seconds of virtual
//! time, and a connection cap binds the sum of its transfers.
#![allow(clippy::wildcard_imports)]
mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use fleetwire_testkit::{LinkConfig, VirtualClock};
use fleetwire_transfer::{FileKind, RateLimit, SenderConfig};

fn elapsed_for(config: SenderConfig, caps: &[Option<RateLimit>], len: usize) -> Duration {
    let clock = VirtualClock::new();
    let start = clock.now();
    let mut sender = SenderApp::new(config, clock.now());
    for (i, cap) in caps.iter().enumerate() {
        let data = file_bytes(len, i as u64);
        let id = i as u64 + 1;
        sender.offer(
            clock.now(),
            signed(FileKind::Media, id, 1, 1024, &data),
            data,
            *cap,
        );
    }
    let receiver = ReceiverApp::trusting_test_key(clock.now());
    let link = LinkConfig {
        delay: Duration::from_millis(5),
        ..LinkConfig::perfect()
    };
    let mut p = pair(sender, receiver, link, 1, clock);
    assert!(p.run_until(Duration::from_secs(600), 1_000_000, |p| p.a.finished()));
    assert_eq!(p.b.completed.len(), caps.len());
    let _ = Arc::new(());
    p.b.completion_times
        .iter()
        .map(|&(_, t)| t - start)
        .max()
        .unwrap()
}

#[test]
fn per_transfer_cap_is_respected() {
    let cap = RateLimit {
        bytes_per_sec: 100_000,
        burst: 4096,
    };
    let t = elapsed_for(sender_config(32), &[Some(cap)], 100_000);
    assert!(t >= Duration::from_millis(950), "{t:?}");
    assert!(t <= Duration::from_millis(1300), "{t:?}");
    let uncapped = elapsed_for(sender_config(32), &[None], 100_000);
    assert!(uncapped < Duration::from_millis(200), "{uncapped:?}");
}

#[test]
fn connection_cap_binds_all_transfers() {
    let config = SenderConfig {
        connection_rate: Some(RateLimit {
            bytes_per_sec: 200_000,
            burst: 4096,
        }),
        ..sender_config(32)
    };
    let t = elapsed_for(config, &[None, None], 100_000);
    assert!(t >= Duration::from_millis(950), "{t:?}");
}
