//! When the connection ends (`handle_close`: the peer closed it or it broke, or the idle
//! timeout), every open transfer ends with exactly one terminal event carrying the connection's
//! reason, `Closed` comes once and last, nothing is sent afterwards, and the receiver's resume
//! record stays usable: a new connection resumes from it without re-sending what was stored.
#![allow(clippy::wildcard_imports)]
mod common;

use std::time::Duration;

use common::*;
use fleetwire_testkit::{Endpoint, LinkConfig, VirtualClock};
use fleetwire_transfer::{
    FileKind, Message, Partial, ReceiverConfig, ReceiverEvent, SenderConfig, TransferError,
    TransferId,
};

fn link() -> LinkConfig {
    LinkConfig {
        delay: Duration::from_millis(5),
        ..LinkConfig::perfect()
    }
}

#[test]
fn handle_close_fails_open_transfers_once_and_the_partial_resumes() {
    let config_file = file_bytes(3000, 1);
    let media = file_bytes(256 * 1024, 2);
    let media_manifest = signed(FileKind::Media, 2, 1, 1024, &media);
    let clock = VirtualClock::new();
    let mut sender = SenderApp::new(sender_config(4), clock.now());
    let small = sender.offer(
        clock.now(),
        signed(FileKind::Configuration, 1, 1, 1024, &config_file),
        config_file.clone(),
        None,
    );
    let big = sender.offer(clock.now(), media_manifest.clone(), media.clone(), None);
    let receiver = ReceiverApp::trusting_test_key(clock.now());
    let mut p = pair(sender, receiver, link(), 1, clock);
    assert!(p.run_until(Duration::from_secs(10), 1_000_000, |p| {
        p.a.completed.contains(&small) && p.b.arrived.len() > 20
    }));
    assert!(p.b.completed.iter().any(|(t, _)| *t == small));

    // The transport breaks; each side's driver tells its machine.
    let now = p.clock.now();
    p.a.sender.handle_close(now);
    p.b.receiver.handle_close(now);
    p.a.process_events(now);
    p.b.process_events(now);
    assert_eq!(p.a.completed, vec![small]);
    assert_eq!(p.a.failed, vec![(big, TransferError::ConnectionLost)]);
    assert_eq!(p.a.closed, Some(TransferError::ConnectionLost));
    assert_eq!(p.b.failed, vec![(big, TransferError::ConnectionLost)]);
    assert_eq!(p.b.closed, Some(TransferError::ConnectionLost));
    assert_eq!(
        p.b.completed.len(),
        1,
        "only the configuration file completed"
    );
    assert!(
        TransferError::ConnectionLost
            .to_string()
            .contains("a new connection resumes it")
    );

    // Closed is final: nothing more is sent or scheduled, later inputs change nothing.
    let mut buf = Vec::new();
    assert!(p.a.sender.poll_transmit(&mut buf).is_none());
    assert!(p.b.receiver.poll_transmit(&mut buf).is_none());
    assert_eq!(p.a.sender.poll_timeout(), None);
    assert_eq!(p.b.receiver.poll_timeout(), None);
    let later = now + Duration::from_secs(1);
    p.a.sender.handle_close(later);
    p.b.receiver.handle_close(later);
    p.a.sender.handle_timeout(later + Duration::from_secs(600));
    p.b.receiver
        .handle_timeout(later + Duration::from_secs(600));
    Message::Cancel { transfer: big.0 }.encode(&mut buf);
    assert_eq!(p.a.sender.handle_input(later, &buf), Ok(()));
    assert_eq!(p.b.receiver.handle_input(later, &buf), Ok(()));
    assert_eq!(p.a.sender.poll_event(), None);
    assert_eq!(p.b.receiver.poll_event(), None);
    assert!(p.a.sender.poll_transmit(&mut buf).is_none());
    assert!(p.b.receiver.poll_transmit(&mut buf).is_none());

    // The resume record outlives the connection and holds every chunk the player stored.
    let stored: Vec<u32> =
        p.b.arrived
            .iter()
            .filter(|(t, _)| *t == big)
            .map(|&(_, i)| i)
            .collect();
    let partial =
        p.b.receiver
            .partial(big)
            .expect("the record survives the close");
    assert_eq!(partial.stored().count() as usize, stored.len());
    assert!(stored.iter().all(|&i| partial.stored().contains(i)));
    let keys = [signer().public_key()];
    let partial = Partial::decode(&partial.encode(), &keys, 1 << 16).unwrap();
    let disk = p.b.disk[&big].clone();

    // A new connection resumes: the stored chunks are not sent again, the file completes.
    let mut clock = p.clock;
    clock.advance(Duration::from_secs(1));
    let mut sender = SenderApp::new(sender_config(4), clock.now());
    let again = sender.offer(clock.now(), media_manifest, media.clone(), None);
    let mut receiver = ReceiverApp::trusting_test_key(clock.now());
    receiver.receiver.add_partial(partial);
    receiver.resume_disk = Some(disk);
    let mut p = pair(sender, receiver, link(), 2, clock);
    assert!(p.run_until(Duration::from_secs(60), 1_000_000, |p| {
        !p.b.completed.is_empty()
    }));
    assert_eq!(p.b.completed[0].1, media);
    assert_eq!(p.a.accepted, vec![(again, stored.len() as u32)]);
    assert!(
        p.a.sent_chunks.iter().all(|(_, i)| !stored.contains(i)),
        "a chunk stored before the close was sent again"
    );
    assert!(p.a.failed.is_empty() && p.b.failed.is_empty());
}

#[test]
fn the_idle_timeout_also_ends_each_open_transfer_with_its_own_event() {
    let data = file_bytes(8 * 1024, 3);
    let now = VirtualClock::new().now();

    // A sender whose peer never answers: each offer fails with the idle timeout, then Closed.
    let config = SenderConfig {
        idle_timeout: Duration::from_secs(30),
        ..sender_config(4)
    };
    let mut s = SenderApp::new(config, now);
    let one = s.offer(
        now,
        signed(FileKind::Media, 1, 1, 1024, &data),
        data.clone(),
        None,
    );
    let two = s.offer(
        now,
        signed(FileKind::Media, 2, 1, 1024, &data),
        data.clone(),
        None,
    );
    let idle = TransferError::IdleTimeout { millis: 30_000 };
    let mut buf = Vec::new();
    while let Some(t) = s.sender.poll_timeout() {
        while s.sender.poll_transmit(&mut buf).is_some() {}
        s.sender.handle_timeout(t);
        s.process_events(t);
    }
    assert_eq!(s.failed, vec![(one, idle.clone()), (two, idle.clone())]);
    assert_eq!(s.closed, Some(idle));

    // A receiver that got an offer and then nothing: the transfer fails, its record stays.
    let mut r = fleetwire_transfer::Receiver::new(
        std::sync::Arc::new(ReceiverConfig {
            idle_timeout: Duration::from_secs(30),
            ..ReceiverConfig::new(vec![signer().public_key()])
        }),
        now,
    );
    let manifest = signed(FileKind::Media, 1, 1, 1024, &data);
    buf.clear();
    Message::Offer {
        transfer: 7,
        window: 4,
        manifest: manifest.as_bytes(),
    }
    .encode(&mut buf);
    r.handle_input(now, &buf).unwrap();
    let deadline = r.poll_timeout().unwrap();
    r.handle_timeout(deadline);
    let events: Vec<_> = std::iter::from_fn(|| r.poll_event())
        .filter(|e| !matches!(e, ReceiverEvent::Offered { .. }))
        .collect();
    let idle = TransferError::IdleTimeout { millis: 30_000 };
    assert_eq!(
        events,
        vec![
            ReceiverEvent::Failed {
                transfer: TransferId(7),
                reason: idle.clone()
            },
            ReceiverEvent::Closed { reason: idle }
        ]
    );
    assert!(r.partial(TransferId(7)).is_some());
}
