//! The watchdog: a corrupt, missing or unparsable file falls back to last-known-good and asks
//! for a fresh copy, at most `max_restore_attempts` times in a row, on request or on schedule.
#![allow(clippy::wildcard_imports)]
mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use fleetwire_testkit::VirtualClock;
use fleetwire_transfer::{FileCheck, FileKind, Watchdog, WatchdogConfig, WatchdogEvent};

fn events(w: &mut Watchdog) -> Vec<WatchdogEvent> {
    std::iter::from_fn(|| w.poll_event()).collect()
}

#[test]
fn corrupt_new_config_falls_back_and_requests_fresh() {
    let clock = VirtualClock::new();
    let now = clock.now();
    let mut w = Watchdog::new(
        Arc::new(WatchdogConfig::new(vec![signer().public_key()])),
        now,
    );
    let v1 = file_bytes(4096, 1);
    let v2 = file_bytes(4096, 2);
    w.install(
        now,
        signed(FileKind::Configuration, 1, 1, 1024, &v1).as_bytes(),
    )
    .unwrap();
    assert_eq!(w.verify_file(now, 1, Some(&v1)).unwrap(), FileCheck::Ok);
    w.install(
        now,
        signed(FileKind::Configuration, 1, 2, 1024, &v2).as_bytes(),
    )
    .unwrap();
    let mut bad = v2.clone();
    bad[2000] ^= 1;
    assert_eq!(
        w.verify_file(now, 1, Some(&bad)).unwrap(),
        FileCheck::Corrupt {
            first_bad_chunk: Some(1)
        }
    );
    let ev = events(&mut w);
    assert!(ev.contains(&WatchdogEvent::Fallback {
        file_id: 1,
        from_version: 2,
        to_version: 1
    }));
    assert!(ev.contains(&WatchdogEvent::RequestFresh {
        file_id: 1,
        version: 2,
        attempt: 1
    }));
    assert_eq!(w.current(1).unwrap().version(), 1);
}

#[test]
fn parse_failure_and_missing_file_are_anomalies() {
    let clock = VirtualClock::new();
    let now = clock.now();
    let mut w = Watchdog::new(
        Arc::new(WatchdogConfig::new(vec![signer().public_key()])),
        now,
    );
    let v = file_bytes(100, 1);
    w.install(
        now,
        signed(FileKind::Configuration, 4, 1, 1024, &v).as_bytes(),
    )
    .unwrap();
    w.report(now, 4, FileCheck::ParseFailed).unwrap();
    assert_eq!(w.verify_file(now, 4, None).unwrap(), FileCheck::Missing);
    let ev = events(&mut w);
    assert_eq!(
        ev.iter()
            .filter(|e| matches!(e, WatchdogEvent::Anomaly { .. }))
            .count(),
        2
    );
    assert_eq!(
        ev.iter()
            .filter(|e| matches!(e, WatchdogEvent::RequestFresh { .. }))
            .count(),
        2
    );
}

#[test]
fn restore_attempts_are_capped() {
    let clock = VirtualClock::new();
    let now = clock.now();
    let mut w = Watchdog::new(
        Arc::new(WatchdogConfig::new(vec![signer().public_key()])),
        now,
    );
    let v = file_bytes(100, 1);
    w.install(now, signed(FileKind::Media, 9, 1, 1024, &v).as_bytes())
        .unwrap();
    for _ in 0..10 {
        w.verify_file(now, 9, Some(b"rotten")).unwrap();
    }
    let ev = events(&mut w);
    assert_eq!(
        ev.iter()
            .filter(|e| matches!(e, WatchdogEvent::RequestFresh { .. }))
            .count(),
        3
    );
    assert_eq!(
        ev.iter()
            .filter(|e| matches!(e, WatchdogEvent::GaveUp { .. }))
            .count(),
        1
    );
    // A good copy resets the count.
    w.verify_file(now, 9, Some(&v)).unwrap();
    w.verify_file(now, 9, None).unwrap();
    assert!(
        events(&mut w)
            .iter()
            .any(|e| matches!(e, WatchdogEvent::RequestFresh { attempt: 1, .. }))
    );
}

#[test]
fn scheduled_checks_and_untrusted_manifests() {
    let mut clock = VirtualClock::new();
    let mut config = WatchdogConfig::new(vec![signer().public_key()]);
    config.check_interval = Some(Duration::from_secs(60));
    let mut w = Watchdog::new(Arc::new(config), clock.now());
    let v = file_bytes(100, 1);
    w.install(
        clock.now(),
        signed(FileKind::Media, 2, 1, 1024, &v).as_bytes(),
    )
    .unwrap();
    w.handle_timeout(clock.now()); // early: no-op
    assert!(w.poll_event().is_none());
    clock.advance_to(w.poll_timeout().unwrap());
    w.handle_timeout(clock.now());
    assert_eq!(
        w.poll_event(),
        Some(WatchdogEvent::VerifyNeeded {
            file_id: 2,
            version: 1
        })
    );
    let evil = fleetwire_transfer::ContentSigner::from_seed(&[3; 32]);
    let forged = fleetwire_transfer::Manifest::build(FileKind::Media, 2, 5, 1024, &v)
        .unwrap()
        .sign(&evil);
    assert!(w.install(clock.now(), forged.as_bytes()).is_err());
    assert_eq!(w.current(2).unwrap().version(), 1);
}
