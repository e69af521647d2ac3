//! Live heap bytes per idle TLS player held by `SessionServer`, counted by the allocator (not
//! RSS): the server runs in this process, the players in a `fleetwire-player-sim` child process.
//!
//! `cargo build --release -p fleetwire-player-sim && \
//!  cargo run --release -p fleetwire-benches --example session_memory -- 2000`
#![allow(clippy::disallowed_methods, clippy::print_stdout, missing_docs)]

use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use fleetwire_benches::{Counting, live_bytes};
use fleetwire_session::{PlayerId, PlayerLookup, PlayerSecret, ServerConfig};
use fleetwire_tokio::session::{Limits, SessionServer, Transport};
use fleetwire_tokio::tls;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

#[global_allocator]
static ALLOC: Counting = Counting;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(2000);
    let dir = std::env::temp_dir().join(format!("fw-mem-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut directory = HashMap::new();
    let mut csv = std::fs::File::create(dir.join("players.csv")).unwrap();
    for i in 0..n as u64 {
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&i.to_le_bytes());
        id[8] = 0xfe;
        let mut seed = [7u8; 32];
        seed[..8].copy_from_slice(&i.to_le_bytes());
        let (id, secret) = (PlayerId::from_bytes(id), PlayerSecret::from_bytes(seed));
        writeln!(csv, "{id},{}", secret.to_hex()).unwrap();
        directory.insert(
            id,
            PlayerLookup::Known {
                verifier: secret.verifier(),
                approved: true,
                config_hash: None,
            },
        );
    }
    drop(csv);
    let cert = rcgen::generate_simple_self_signed(vec!["fleetwire.local".into()]).unwrap();
    let der = cert.cert.der().clone();
    let fp = tls::format_fingerprint(&tls::fingerprint(&der));
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der()));
    let config = tls::server_config(vec![CertificateDer::from(der.to_vec())], key).unwrap();
    let session = ServerConfig {
        heartbeat_interval: Duration::from_secs(5),
        ..ServerConfig::default()
    };
    let server = SessionServer::bind(
        "127.0.0.1:0".parse().unwrap(),
        Transport::Tls(config),
        Arc::new(session),
        Limits::default(),
        directory,
    )
    .await
    .unwrap();
    let addr = server.local_addr().unwrap();
    let handle = server.handle();
    tokio::spawn(server.run(std::future::pending()));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = live_bytes();
    let rss_before = rss_kib();
    let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
    let sim = std::process::Command::new(format!("{target}/release/fleetwire-player-sim"))
        .args([
            "--server",
            &addr.to_string(),
            "--fingerprint",
            &fp,
            "--duration",
            "20",
        ])
        .arg("--players")
        .arg(dir.join("players.csv"))
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("build fleetwire-player-sim (release) first");
    while handle.online().len() < n {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(6)).await; // every player heartbeated once
    let held = live_bytes();
    let rss_held = rss_kib();
    println!(
        "{n} idle TLS players: live heap {} -> {} bytes = {:.0} bytes/player",
        before,
        held,
        (held - before) as f64 / n as f64
    );
    println!(
        "resident (RSS) {rss_before} KiB -> {rss_held} KiB = {:.0} bytes/player",
        (rss_held.saturating_sub(rss_before) * 1024) as f64 / n as f64
    );
    let mut sim = sim;
    let _ = sim.kill();
    let _ = std::fs::remove_dir_all(&dir);
}

/// This process's resident set in KiB, from /proc (0 where there is none).
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}
