//! How much memory one connection, and one logger credential, can pin on the sensor port (issue
//! 10, siblings). A measurement, run by hand; it prints the figures for docs/SECURITY.md:
//!
//! `cargo test -p fleetwire-tokio --test sensor_memory -- --ignored --nocapture --test-threads 1`
//!
//! Method: `SensorServer` alone (TLS as deployed, an in-memory store, `MALLOC_ARENA_MAX=2` as the
//! example server sets it) runs in a child process (this test binary in its server role), so
//! nothing else in it allocates; the parent opens `N` connections from loopback, puts each in a
//! state and leaves it silent, and reads the child's resident set (`VmRSS`) before and after.
//! The figure is the difference divided by `N`. Kernel socket buffers are not in it.
#![allow(clippy::disallowed_methods, clippy::cast_precision_loss)]

mod sensor_common;

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use fleetwire_sensor::cloud::CloudConfig;
use fleetwire_sensor::codec::{Upload, encode_upload};
use fleetwire_tokio::sensor::Limits;
use rustls::pki_types::ServerName;
use sensor_common::{batch, key, start_configured};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

const N: usize = 1000;
const ROLE: &str = "FLEETWIRE_SENSOR_MEMORY_SERVER";

/// The server role: start, print `addr fingerprint`, serve until stdin closes.
#[test]
#[ignore = "the server role of sensor_memory_per_connection"]
fn server_role() {
    if std::env::var_os(ROLE).is_none() {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let cloud = CloudConfig {
            deadline: Duration::from_secs(300),
            ..CloudConfig::default()
        };
        let limits = Limits {
            max_connections_per_source: 100_000,
            ..Limits::default()
        };
        let s = start_configured(&[1], None, cloud, limits, None, false).await;
        println!("{} {}", s.addr, hex::encode(s.fingerprint));
        tokio::task::spawn_blocking(|| {
            let _ = std::io::stdin().read_to_end(&mut Vec::new());
        })
        .await
        .unwrap();
        drop(s);
    });
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// A header announcing a 65,536-byte body and 65,000 bytes of it.
fn partial_frame() -> Vec<u8> {
    let mut f = vec![2, 1, 0, 1, 0, 0];
    f.extend(std::iter::repeat_n(0x55, 65_000));
    f
}

type Conn = tokio_rustls::client::TlsStream<TcpStream>;

async fn open(addr: SocketAddr, tls: &TlsConnector) -> Conn {
    let tcp = TcpStream::connect(addr).await.unwrap();
    tls.connect(ServerName::try_from("fleetwire.local").unwrap(), tcp)
        .await
        .unwrap()
}

async fn upload_one(c: &mut Conn, first_seq: u64) {
    let mut first = Vec::new();
    let upload = Upload {
        batch: batch(1, first_seq, 10),
        settings_version: 0,
        last: false,
    };
    encode_upload(&mut first, &key(1), &upload).unwrap();
    c.write_all(&first).await.unwrap();
    let mut ack = [0u8; 128];
    assert!(c.read(&mut ack).await.unwrap() > 0, "acknowledged");
}

#[derive(Clone, Copy, Debug)]
enum Case {
    /// TLS handshake done, nothing sent.
    Idle,
    /// The largest frame's header and all but a few bytes of its body, unauthenticated.
    PartialFrame,
    /// One authenticated upload (logger 1's key on every connection), then the partial frame.
    AuthenticatedThenPartialFrame,
}

/// One case on a fresh server process: RSS before and after, KiB.
async fn measure(case: Case) -> (u64, u64) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "server_role", "--ignored", "--nocapture"])
        .env(ROLE, "1")
        .env("MALLOC_ARENA_MAX", "2")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    while !line.contains(':') {
        line.clear();
        assert!(out.read_line(&mut line).unwrap() > 0, "server role exited");
    }
    let mut parts = line.split_whitespace();
    let addr: SocketAddr = parts.next().unwrap().parse().unwrap();
    let mut fp = [0u8; 32];
    hex::decode_to_slice(parts.next().unwrap(), &mut fp).unwrap();
    let tls = TlsConnector::from(fleetwire_tokio::tls::pinned_client_config(fp).unwrap());
    let pid = child.id();
    // Warm up: one-time allocations of the runtime, TLS and the store.
    for i in 0..50 {
        let mut c = open(addr, &tls).await;
        upload_one(&mut c, 1_000_000 + i * 10).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = rss_kib(pid);
    let mut held = Vec::new();
    for i in 0..N {
        let mut c = open(addr, &tls).await;
        match case {
            Case::Idle => {}
            Case::PartialFrame => c.write_all(&partial_frame()).await.unwrap(),
            Case::AuthenticatedThenPartialFrame => {
                upload_one(&mut c, i as u64 * 10).await;
                c.write_all(&partial_frame()).await.unwrap();
            }
        }
        c.flush().await.unwrap();
        held.push(c);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = rss_kib(pid);
    drop(held);
    drop(child.stdin.take());
    let _ = child.wait();
    (before, after)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run by hand, prints figures"]
async fn memory_pinned_per_connection_and_per_credential() {
    println!("sensor port (SensorServer alone, TLS), {N} connections, each silent after:");
    for case in [
        Case::Idle,
        Case::PartialFrame,
        Case::AuthenticatedThenPartialFrame,
    ] {
        let (before, after) = measure(case).await;
        println!(
            "  {case:?}: RSS {before} -> {after} KiB = {:.1} KiB per connection",
            after.saturating_sub(before) as f64 / N as f64
        );
    }
}
