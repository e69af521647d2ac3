//! Slow and partial I/O on the sensor port (issue 10, siblings): a peer that trickles bytes, and
//! one that stops reading, before and after authenticating, is cut by the connection deadline
//! and gives its slot back; what one connection may queue is bounded (frame size, uploads per
//! connection), and one source cannot hold more than its share of connections.
//!
//! The deadline here is 1 s (30 s by default). Nothing asserts how long anything took: the
//! cut is shown by the session's close reason (`Timeout`) and the freed slot.
#![allow(clippy::disallowed_methods)]

mod sensor_common;

use std::net::SocketAddr;
use std::time::Duration;

use fleetwire_sensor::cloud::CloudConfig;
use fleetwire_sensor::codec::{Upload, encode_upload};
use fleetwire_sensor::{CloseReason, LoggerId, SensorError};
use fleetwire_tokio::sensor::{Limits, Notice, SensorHandle};
use sensor_common::{TestServer, batch, key, start_configured};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::broadcast;

const DEADLINE: Duration = Duration::from_secs(1);

async fn server(limits: Limits) -> TestServer {
    let cloud = CloudConfig {
        deadline: DEADLINE,
        ..CloudConfig::default()
    };
    start_configured(&[1], None, cloud, limits, None, true).await
}

/// One upload frame of logger 1: `count` readings from `first_seq`.
fn frame(first_seq: u64, count: u64, last: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let upload = Upload {
        batch: batch(1, first_seq, count),
        settings_version: 0,
        last,
    };
    encode_upload(&mut out, &key(1), &upload).unwrap();
    out
}

async fn connect_from(from: &str, to: SocketAddr, rcvbuf: Option<u32>) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    if let Some(size) = rcvbuf {
        socket.set_recv_buffer_size(size).unwrap();
    }
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    socket.connect(to).await.unwrap()
}

/// The next `Closed` notice (within 20 s, far beyond the 1 s deadline).
async fn closed(notices: &mut broadcast::Receiver<Notice>) -> (CloseReason, u32) {
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if let Ok(Notice::Closed { reason, stats, .. }) = notices.recv().await {
                return (reason, stats.uploads);
            }
        }
    })
    .await
    .expect("the session closes")
}

/// Waits (up to 20 s) until the server holds no connection.
async fn drained(handle: &SensorHandle) {
    tokio::time::timeout(Duration::from_secs(20), async {
        while handle.connections() > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("every slot is given back");
}

/// Writes `bytes` one at a time, 50 ms apart, until the server cuts the connection; returns
/// how many were written before that showed.
async fn trickle(tcp: &mut TcpStream, bytes: &[u8]) -> usize {
    let mut buf = [0u8; 256];
    for (i, b) in bytes.iter().enumerate() {
        if tcp.write_all(&[*b]).await.is_err() {
            return i;
        }
        // Anything the server sent (acks) is read; an EOF means it closed.
        if let Ok(Ok(0)) = tokio::time::timeout(Duration::from_millis(50), tcp.read(&mut buf)).await
        {
            return i;
        }
    }
    bytes.len()
}

#[tokio::test]
async fn trickling_before_authentication_is_cut_at_the_deadline() {
    let s = server(Limits::default()).await;
    let mut notices = s.handle.subscribe();
    let mut tcp = connect_from("127.0.0.1", s.addr, None).await;
    // A valid upload, one byte every 50 ms: about 3 s for the whole frame.
    let f = frame(0, 40, true);
    let sent = trickle(&mut tcp, &f).await;
    assert!(
        sent < f.len(),
        "cut before the frame was complete ({sent}/{})",
        f.len()
    );
    let (reason, uploads) = closed(&mut notices).await;
    assert_eq!(
        reason,
        CloseReason::Error(SensorError::Timeout {
            waiting_for: "waiting for the first upload"
        })
    );
    assert_eq!(uploads, 0);
    drained(&s.handle).await;
    assert!(s.store.data.lock().unwrap().is_empty(), "nothing stored");
}

#[tokio::test]
async fn trickling_after_authentication_is_cut_at_the_deadline() {
    let s = server(Limits::default()).await;
    let mut notices = s.handle.subscribe();
    let mut tcp = connect_from("127.0.0.1", s.addr, None).await;
    // One whole upload (authenticated, stored, acknowledged), then the next one trickled.
    tcp.write_all(&frame(0, 10, false)).await.unwrap();
    let mut ack = [0u8; 256];
    let n = tokio::time::timeout(Duration::from_secs(20), tcp.read(&mut ack))
        .await
        .unwrap()
        .unwrap();
    assert!(n > 0, "the first upload is acknowledged");
    let f = frame(10, 40, true);
    let sent = trickle(&mut tcp, &f).await;
    assert!(
        sent < f.len(),
        "cut before the frame was complete ({sent}/{})",
        f.len()
    );
    let (reason, uploads) = closed(&mut notices).await;
    assert_eq!(
        reason,
        CloseReason::Error(SensorError::Timeout {
            waiting_for: "waiting for the last upload"
        })
    );
    assert_eq!(uploads, 1);
    drained(&s.handle).await;
    assert_eq!(
        s.store.data.lock().unwrap()[&LoggerId(1)].readings.len(),
        10,
        "the acknowledged batch stays stored"
    );
}

#[tokio::test]
async fn a_peer_that_stops_reading_is_cut_and_gives_its_slot_back() {
    let s = server(Limits::default()).await;
    let mut notices = s.handle.subscribe();
    // Before authenticating: a partial frame, then silence; never reads.
    let mut silent = connect_from("127.0.0.1", s.addr, Some(1024)).await;
    silent.write_all(&frame(0, 5, true)[..10]).await.unwrap();
    let (reason, _) = closed(&mut notices).await;
    assert!(
        matches!(reason, CloseReason::Error(SensorError::Timeout { .. })),
        "{reason:?}"
    );
    drained(&s.handle).await;

    // After authenticating: 1,000 uploads (each acknowledged), never reading an ack, with a
    // 1 KiB receive buffer. The server's writes stop at the deadline at the latest.
    let mut deaf = connect_from("127.0.0.1", s.addr, Some(1024)).await;
    let mut flight = Vec::new();
    for i in 0..1000 {
        flight.extend(frame(i, 1, i == 999));
    }
    let _ = tokio::time::timeout(Duration::from_secs(20), deaf.write_all(&flight)).await;
    let (reason, uploads) = closed(&mut notices).await;
    assert!(uploads > 0, "authenticated");
    assert!(
        matches!(
            reason,
            CloseReason::Finished | CloseReason::Error(SensorError::Timeout { .. })
        ),
        "{reason:?}"
    );
    drained(&s.handle).await;
    drop((silent, deaf));
}

#[tokio::test]
async fn what_one_connection_queues_is_bounded() {
    let s = server(Limits::default()).await;
    let mut notices = s.handle.subscribe();
    // A header announcing 4 GiB: closed at the header, nothing buffered.
    let mut tcp = connect_from("127.0.0.1", s.addr, None).await;
    tcp.write_all(&[2, 1, 0xff, 0xff, 0xff, 0xff])
        .await
        .unwrap();
    let (reason, _) = closed(&mut notices).await;
    assert!(
        matches!(reason, CloseReason::Error(SensorError::Decode(_))),
        "{reason:?}"
    );
    // More uploads than the per-connection limit (1,024): closed at the limit. The acks are
    // read while writing so neither side waits on the other.
    let tcp = connect_from("127.0.0.1", s.addr, None).await;
    let (mut rx, mut tx) = tcp.into_split();
    let mut flight = Vec::new();
    for i in 0..1100 {
        flight.extend(frame(i, 1, false));
    }
    let reader = tokio::spawn(async move {
        let mut sink = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(20), rx.read_to_end(&mut sink)).await;
    });
    let _ = tokio::time::timeout(Duration::from_secs(20), tx.write_all(&flight)).await;
    let (reason, uploads) = closed(&mut notices).await;
    assert_eq!(
        reason,
        CloseReason::Error(SensorError::UnexpectedMessage {
            msg_type: 1,
            context: "more uploads than the per-connection limit"
        })
    );
    assert_eq!(uploads, 1024);
    reader.await.unwrap();
    drained(&s.handle).await;
}

#[tokio::test]
async fn one_source_holds_at_most_its_share_of_connections() {
    let s = server(Limits {
        max_connections_per_source: 2,
        ..Limits::default()
    })
    .await;
    let mut notices = s.handle.subscribe();
    let first = connect_from("127.0.0.1", s.addr, None).await;
    let second = connect_from("127.0.0.1", s.addr, None).await;
    tokio::time::timeout(Duration::from_secs(5), async {
        while s.handle.connections() < 2 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap();
    // The third from that source is closed at accept; another source is served.
    let mut third = connect_from("127.0.0.1", s.addr, None).await;
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(5), third.read(&mut buf)).await;
    assert!(matches!(read, Ok(Ok(0) | Err(_))), "{read:?}");
    let why = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Ok(Notice::Refused { peer, why }) = notices.recv().await {
                return (peer, why);
            }
        }
    })
    .await
    .unwrap();
    assert!(why.1.contains("per-source limit"), "{why:?}");
    assert_eq!(why.0.ip().to_string(), "127.0.0.1");
    let mut other = connect_from("127.0.0.2", s.addr, None).await;
    other.write_all(&frame(0, 3, true)).await.unwrap();
    let mut ack = [0u8; 256];
    let n = tokio::time::timeout(Duration::from_secs(20), other.read(&mut ack))
        .await
        .unwrap()
        .unwrap();
    assert!(n > 0, "the other source is answered");
    drop((first, second));
    drained(&s.handle).await;
}
