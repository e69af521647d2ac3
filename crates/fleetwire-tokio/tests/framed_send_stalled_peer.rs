//! `send_framed_many` against a peer that accepts the offer and then reads nothing: the send
//! fails with a write timeout (it does not wait forever, and the sender's own idle timeout
//! cannot run while a write is blocked), and the window is lowered to fit
//! `max_in_flight_bytes`, so few chunks are ever read from disk.
#![allow(clippy::disallowed_methods)]

mod transfer_common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use fleetwire_tokio::framed::{Outgoing, send_framed_many};
use fleetwire_tokio::transfer::{Error, SendOptions};
use fleetwire_transfer::{Receiver, ReceiverConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use transfer_common::{manifest, temp_dir, test_file, trusted};

const CHUNK: u32 = 64 * 1024;

#[tokio::test(start_paused = true)]
async fn a_peer_that_stops_reading_is_cut_at_the_write_deadline() {
    let dir = temp_dir("framed-stalled-peer");
    let data = test_file(64 * CHUNK as usize, 31);
    let path = dir.join("file.bin");
    std::fs::write(&path, &data).unwrap();
    let files = vec![Outgoing {
        manifest: manifest(&data, CHUNK),
        file: path,
    }];
    // 64 KiB of pipe between them: the sender blocks after a frame or two.
    let (mut server, mut player) = tokio::io::duplex(64 * 1024);
    let options = SendOptions {
        write_timeout: Duration::from_secs(30),
        max_in_flight_bytes: 4 * u64::from(CHUNK),
        ..SendOptions::default()
    };
    let sending = tokio::spawn(async move {
        let mut sent = 0u64;
        let result = send_framed_many(&mut server, files, &options, |n| sent += n).await;
        (result, sent)
    });

    // The player accepts the offer, then reads nothing more.
    let mut receiver = Receiver::new(Arc::new(ReceiverConfig::new(trusted())), Instant::now());
    let mut pending = Vec::new();
    let mut buf = vec![0u8; 4096];
    let mut out = Vec::new();
    loop {
        while pending.len() >= 6 {
            let len = u32::from_be_bytes([pending[2], pending[3], pending[4], pending[5]]) as usize;
            if pending.len() < 6 + len {
                break;
            }
            let _ = receiver.handle_input(Instant::now(), &pending[6..6 + len]);
            pending.drain(..6 + len);
        }
        while receiver.poll_event().is_some() {}
        if receiver.poll_transmit(&mut out).is_some() {
            let mut frame = vec![1, out[1]];
            frame.extend_from_slice(&u32::try_from(out.len()).unwrap().to_be_bytes());
            frame.extend_from_slice(&out);
            player.write_all(&frame).await.unwrap();
            break;
        }
        let n = player.read(&mut buf).await.unwrap();
        assert!(n > 0);
        pending.extend_from_slice(&buf[..n]);
    }

    // Virtual time: the 30 s deadline passes at once, but only if nothing else keeps it alive.
    let (result, sent) = tokio::time::timeout(Duration::from_secs(600), sending)
        .await
        .expect("the sender never gave up on a peer that reads nothing")
        .unwrap();
    match result {
        Err(Error::Connection { source, .. }) => {
            assert_eq!(source.kind(), std::io::ErrorKind::TimedOut, "{source}");
        }
        other => panic!("expected a write timeout, got {other:?}"),
    }
    // At most the window (4 chunks) was ever handed to the stream.
    assert!(sent <= 4 * u64::from(CHUNK), "{sent} chunk bytes written");
    drop(player);
}
