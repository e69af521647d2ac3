//! A logger uploads three batches over real TLS on loopback: every reading is stored exactly
//! once, the ack frees exactly what was stored, and uploading the same batches again (as after a
//! lost ack) stores nothing twice.
#![cfg(feature = "sensor")]
#![allow(clippy::disallowed_methods)]
mod sensor_common;

use std::time::Duration;

use fleetwire_sensor::{CloseReason, LoggerId, Mark};
use fleetwire_tokio::sensor::{Notice, upload};
use sensor_common::*;

#[tokio::test]
async fn upload_is_stored_exactly_once() {
    let server = start(&[11], None).await;
    let mut notices = server.handle.subscribe();
    let transport = logger_tls(server.fingerprint);
    let batches = vec![batch(11, 0, 100), batch(11, 100, 100), batch(11, 200, 50)];
    let report = tokio::time::timeout(
        Duration::from_secs(20),
        upload(
            server.addr,
            &transport,
            config(11, key(11)),
            batches.clone(),
        ),
    )
    .await
    .expect("upload within 20 s")
    .expect("connected");
    assert_eq!(report.reason, CloseReason::Finished);
    assert_eq!(report.stored, [Mark { epoch: 0, seq: 249 }]);
    assert_eq!(report.stats.batches_acked, 3);
    assert!(
        report.wire_bytes_sent > report.stats.bytes_sent,
        "TLS adds bytes"
    );
    {
        let data = server.store.data.lock().unwrap();
        let logged = &data[&LoggerId(11)];
        assert_eq!(logged.readings.len(), 250);
        assert_eq!(logged.double_writes, 0);
        assert_eq!(logged.readings[&(0, 7)], vec![Some(207), Some(448)]);
    }

    // The same flight again: all duplicates, nothing written.
    let again = tokio::time::timeout(
        Duration::from_secs(20),
        upload(server.addr, &transport, config(11, key(11)), batches),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(again.reason, CloseReason::Finished);
    assert_eq!(again.stored, [Mark { epoch: 0, seq: 249 }]);
    let data = server.store.data.lock().unwrap();
    let logged = &data[&LoggerId(11)];
    assert_eq!(
        (logged.readings.len(), logged.writes, logged.double_writes),
        (250, 3, 0)
    );
    drop(data);

    let mut stored = 0;
    let mut duplicates = 0;
    let mut finished = 0;
    while let Ok(n) = notices.try_recv() {
        match n {
            Notice::Stored { readings, .. } => stored += readings,
            Notice::Duplicate { .. } => duplicates += 1,
            Notice::Closed {
                reason: CloseReason::Finished,
                logger: Some(LoggerId(11)),
                ..
            } => finished += 1,
            _ => {}
        }
    }
    assert_eq!((stored, duplicates, finished), (250, 3, 2));
}
