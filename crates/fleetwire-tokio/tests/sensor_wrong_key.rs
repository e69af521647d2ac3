//! A logger with the wrong key is rejected with a clear reason on both sides, and nothing is
//! stored; an unknown logger is told so.
#![cfg(feature = "sensor")]
#![allow(clippy::disallowed_methods)]
mod sensor_common;

use std::time::Duration;

use fleetwire_sensor::{CloseReason, LoggerId, LoggerKey, RejectReason, SensorError};
use fleetwire_tokio::sensor::{Notice, upload};
use sensor_common::*;

#[tokio::test]
async fn wrong_key_is_rejected_with_a_clear_reason() {
    let server = start(&[21], None).await;
    let mut notices = server.handle.subscribe();
    let transport = logger_tls(server.fingerprint);
    let wrong = LoggerKey::from_bytes([0xAA; 32]);
    let report = tokio::time::timeout(
        Duration::from_secs(20),
        upload(
            server.addr,
            &transport,
            config(21, wrong),
            vec![batch(21, 0, 10)],
        ),
    )
    .await
    .unwrap()
    .unwrap();
    let CloseReason::Error(err) = &report.reason else {
        panic!("{:?}", report.reason)
    };
    assert_eq!(
        *err,
        SensorError::Rejected {
            reason: RejectReason::BadMac
        }
    );
    assert!(err.to_string().contains("wrong key"), "{err}");
    assert!(report.stored.is_empty());
    assert!(
        server
            .store
            .data
            .lock()
            .unwrap()
            .get(&LoggerId(21))
            .is_none()
    );

    // The server says which logger failed and why.
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Notice::Closed { logger, reason, .. } = notices.recv().await.unwrap() {
                return (logger, reason);
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(closed.0, Some(LoggerId(21)));
    let CloseReason::Error(SensorError::BadMac { logger, what }) = closed.1 else {
        panic!("{:?}", closed.1)
    };
    assert_eq!((logger, what), (LoggerId(21), "batch"));

    // A logger the server does not know.
    let report = upload(
        server.addr,
        &transport,
        config(99, key(99)),
        vec![batch(99, 0, 1)],
    )
    .await
    .unwrap();
    assert_eq!(
        report.reason,
        CloseReason::Error(SensorError::Rejected {
            reason: RejectReason::UnknownLogger
        })
    );
}
