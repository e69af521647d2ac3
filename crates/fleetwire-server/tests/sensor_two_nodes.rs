//! Two server nodes on one PostgreSQL database: a logger cut mid-upload on node A reconnects to
//! node B, and the store ends with every reading exactly once while the logger's acks from B
//! cover all of them. Needs `FLEETWIRE_TEST_PG` (`eval "$(scripts/pg.sh start)"`).
#![allow(clippy::disallowed_methods)] // a real clock

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fleetwire_sensor::logger::{self, LoggerConfig, LoggerSession};
use fleetwire_sensor::{Batch, CloseReason, LoggerId, LoggerKey, Mark};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

mod common;
mod sensor_support;
use sensor_support::{add_logger, batch, interrupt, serve};

/// A node's data directory: every listener on an ephemeral port, plaintext sensor uploads,
/// the shared database.
fn node(tag: &str, url: &str) -> std::path::PathBuf {
    let data = common::data_dir(tag);
    std::fs::write(
        data.join("fleetwire.toml"),
        format!(
            "[session]\nlisten = \"127.0.0.1:0\"\n\
             [http]\nhttps_listen = \"127.0.0.1:0\"\nhttp_listen = \"127.0.0.1:0\"\n\
             [transfer]\nlisten = \"127.0.0.1:0\"\n\
             [sensor]\nlisten = \"127.0.0.1:0\"\ndanger_plaintext = true\n\
             [store]\nurl = {url:?}\n"
        ),
    )
    .unwrap();
    data
}

/// One wake sending `batches`; with `cut_at`, only that many bytes go out and the connection
/// is dropped without reading an answer. The last mark the cloud acknowledged, and how it ended.
async fn wake(
    server: SocketAddr,
    id: u64,
    key: LoggerKey,
    batches: Vec<Batch>,
    cut_at: Option<usize>,
) -> (Option<Mark>, Option<CloseReason>, usize) {
    let mut tcp = TcpStream::connect(server).await.unwrap();
    let mut lg = LoggerSession::new(
        Arc::new(LoggerConfig::new(LoggerId(id), key)),
        Instant::now(),
        batches,
    )
    .unwrap();
    let mut out = Vec::new();
    while lg.poll_transmit(&mut out).is_some() {}
    if let Some(n) = cut_at {
        tcp.write_all(&out[..n.min(out.len())]).await.unwrap();
        drop(tcp);
        return (None, None, out.len());
    }
    tcp.write_all(&out).await.unwrap();
    let mut buf = [0u8; 4096];
    let mut acked = None;
    loop {
        while let Some(ev) = lg.poll_event() {
            match ev {
                logger::Event::Acked { stored, .. } => acked = acked.max(stored),
                logger::Event::Closed { reason } => return (acked, Some(reason), out.len()),
                _ => {}
            }
        }
        let read = tokio::time::timeout(Duration::from_secs(20), tcp.read(&mut buf))
            .await
            .expect("the server answers or closes within 20 s");
        match read {
            Ok(0) | Err(_) => lg.handle_close(Instant::now()),
            Ok(n) => {
                let _ = lg.handle_input(Instant::now(), &buf[..n]);
            }
        }
    }
}

fn psql(url: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .arg(url)
        .args(["-v", "ON_ERROR_STOP=1", "-qAt", "-c", sql])
        .output()
        .expect("psql");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn stored_readings(url: &str, id: u64) -> (i64, i64) {
    let row = psql(
        url,
        &format!(
            "SELECT count(*), count(DISTINCT (epoch, seq)) FROM sensor_readings WHERE logger = {id}"
        ),
    );
    let (a, b) = row.split_once('|').unwrap();
    (a.parse().unwrap(), b.parse().unwrap())
}

fn readings_lines(data: &Path, id: u64) -> usize {
    common::cli(data, &["readings", &id.to_string()])
        .lines()
        .count()
        - 1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logger_cut_on_one_node_finishes_on_another_with_each_reading_once() {
    let url = common::shared_postgres("sensor_two_nodes");
    let (a, b) = (node("sensor-node-a", &url), node("sensor-node-b", &url));
    let (id, key) = add_logger(&a);
    let (mut server_a, addr_a) = serve(&a, &[]);
    let (mut server_b, addr_b) = serve(&b, &[]);
    // Six batches of 100 readings, one minute apart.
    let batches: Vec<Batch> = (0..6).map(|i| batch(id, i * 100, 100)).collect();

    // Node A gets 60 % of the upload's bytes, then the connection is cut.
    let total = {
        let mut lg = LoggerSession::new(
            Arc::new(LoggerConfig::new(LoggerId(id), key.clone())),
            Instant::now(),
            batches.clone(),
        )
        .unwrap();
        let mut out = Vec::new();
        while lg.poll_transmit(&mut out).is_some() {}
        out.len()
    };
    wake(
        addr_a,
        id,
        key.clone(),
        batches.clone(),
        Some(total * 6 / 10),
    )
    .await;
    // Whatever A stored is committed before B is asked (A's commit can still be racing B's
    // lookup in real life; the conditional write covers that, the repository tests race it).
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut on_a = stored_readings(&url, id).0;
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = stored_readings(&url, id).0;
        if now == on_a && now > 0 || Instant::now() > deadline {
            break;
        }
        on_a = now;
    }
    assert!(
        (1..600).contains(&on_a),
        "node A stored part of the upload before the cut: {on_a}"
    );

    // The logger never saw an ack: it sends everything again, to node B.
    let (acked, reason, _) = wake(addr_b, id, key.clone(), batches.clone(), None).await;
    assert_eq!(reason, Some(CloseReason::Finished));
    assert_eq!(
        acked,
        Some(Mark { epoch: 0, seq: 599 }),
        "B's acks cover every slot"
    );
    assert_eq!(
        stored_readings(&url, id),
        (600, 600),
        "each reading stored exactly once"
    );

    // And a resend to A (an ack lost on the way from B) stores nothing new.
    let (acked, reason, _) = wake(addr_a, id, key, batches, None).await;
    assert_eq!(
        (acked, reason),
        (
            Some(Mark { epoch: 0, seq: 599 }),
            Some(CloseReason::Finished)
        )
    );
    assert_eq!(stored_readings(&url, id), (600, 600));
    assert_eq!(readings_lines(&b, id), 600, "`readings` on node B");

    interrupt(server_a.id(), &mut server_a);
    interrupt(server_b.id(), &mut server_b);
}
