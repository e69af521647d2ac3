//! The connection is cut after the server stored a batch but before the logger heard the ack
//! (through a loopback TCP relay that the test cuts). The logger keeps its data, uploads it again
//! with newer readings next wake: the stored batch is a duplicate, the new one is stored, and
//! every reading is in the store exactly once.
#![cfg(feature = "sensor")]
#![allow(clippy::disallowed_methods)]
mod sensor_common;

use std::sync::Arc;
use std::time::Duration;

use fleetwire_sensor::{CloseReason, LoggerId, Mark, SensorError};
use fleetwire_tokio::sensor::upload;
use sensor_common::*;
use tokio::net::{TcpListener, TcpStream};

#[tokio::test]
async fn cut_after_store_then_resume_stores_everything_once() {
    let gate = Arc::new(Gate::default());
    let server = start(&[31], Some(gate.clone())).await;
    let transport = logger_tls(server.fingerprint);

    // A relay on loopback that the test can cut.
    let relay = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let relay_addr = relay.local_addr().unwrap();
    let target = server.addr;
    let pipe = tokio::spawn(async move {
        let (mut a, _) = relay.accept().await.unwrap();
        let mut b = TcpStream::connect(target).await.unwrap();
        let _ = tokio::io::copy_bidirectional(&mut a, &mut b).await;
    });

    let first = vec![batch(31, 0, 100)];
    let logger = {
        let (transport, first) = (transport.clone(), first.clone());
        tokio::spawn(
            async move { upload(relay_addr, &transport, config(31, key(31)), first).await },
        )
    };
    // The server wrote the batch durably and waits: cut the connection before the ack leaves.
    tokio::time::timeout(Duration::from_secs(20), gate.written.notified())
        .await
        .expect("batch stored");
    pipe.abort();
    let _ = pipe.await;
    gate.release.notify_one();
    let report = tokio::time::timeout(Duration::from_secs(20), logger)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(report.reason, CloseReason::Error(SensorError::PeerClosed));
    assert_eq!(report.stored, [], "no ack heard: the logger frees nothing");

    // Next wake: the unacknowledged batch and 50 new readings, straight to the server.
    let resume = tokio::spawn({
        let gate = gate.clone();
        async move {
            loop {
                gate.written.notified().await;
                gate.release.notify_one();
            }
        }
    });
    let next = vec![batch(31, 0, 100), batch(31, 100, 50)];
    let report = tokio::time::timeout(
        Duration::from_secs(20),
        upload(server.addr, &transport, config(31, key(31)), next),
    )
    .await
    .unwrap()
    .unwrap();
    resume.abort();
    assert_eq!(report.reason, CloseReason::Finished);
    assert_eq!(report.stored, [Mark { epoch: 0, seq: 149 }]);
    let data = server.store.data.lock().unwrap();
    let logged = &data[&LoggerId(31)];
    assert_eq!(logged.readings.len(), 150);
    assert_eq!(logged.double_writes, 0);
    assert_eq!(
        logged.writes, 2,
        "the resent batch was a duplicate, not written"
    );
}
