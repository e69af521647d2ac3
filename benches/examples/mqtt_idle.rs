//! Holds N idle MQTT 3.1.1 clients over TLS against a broker (mosquitto) and measures the
//! PINGREQ → PINGRESP round trip, the MQTT equivalent of a fleetwire heartbeat. The broker's
//! certificate is pinned by its SHA-256 fingerprint, as fleetwire players pin theirs.
//!
//! `cargo run --release -p fleetwire-benches --example mqtt_idle -- --broker 127.0.0.1:18883 \
//!     --fingerprint HEX --clients 19000 --keepalive 10 --duration 60`
#![allow(clippy::disallowed_methods, clippy::print_stdout, missing_docs)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use fleetwire_tokio::tls;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio_rustls::TlsConnector;

#[derive(Parser)]
struct Args {
    #[arg(long)]
    broker: SocketAddr,
    #[arg(long)]
    fingerprint: String,
    #[arg(long, default_value_t = 1000)]
    clients: usize,
    /// Keep-alive in seconds; each client pings once per keep-alive.
    #[arg(long, default_value_t = 10)]
    keepalive: u16,
    /// Seconds to hold the clients after the ramp.
    #[arg(long, default_value_t = 60)]
    duration: u64,
    /// Connects in flight at once (mosquitto's listen backlog is 100).
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
}

fn connect_packet(id: &str, keepalive: u16) -> Vec<u8> {
    let mut var = vec![0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x02];
    var.extend_from_slice(&keepalive.to_be_bytes());
    var.extend_from_slice(&(id.len() as u16).to_be_bytes());
    var.extend_from_slice(id.as_bytes());
    let mut packet = vec![0x10, var.len() as u8];
    packet.extend_from_slice(&var);
    packet
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let fp = tls::parse_fingerprint(&args.fingerprint).expect("--fingerprint HEX");
    let connector = TlsConnector::from(tls::pinned_client_config(fp).unwrap());
    let rtts = Arc::new(Mutex::new(Vec::<f64>::new()));
    let connected = Arc::new(Mutex::new(0usize));
    let failures = Arc::new(Mutex::new(0usize));
    let ramp = Arc::new(Semaphore::new(args.concurrency));
    let stop_at = Arc::new(Mutex::new(None::<Instant>));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..args.clients {
        let (connector, rtts, connected, failures, ramp, stop_at) = (
            connector.clone(),
            rtts.clone(),
            connected.clone(),
            failures.clone(),
            ramp.clone(),
            stop_at.clone(),
        );
        let (broker, keepalive) = (args.broker, args.keepalive);
        tasks.push(tokio::spawn(async move {
            let permit = ramp.acquire_owned().await.unwrap();
            let result: std::io::Result<()> = async {
                let tcp = TcpStream::connect(broker).await?;
                tcp.set_nodelay(true)?;
                let name = ServerName::try_from("fleetwire.local").unwrap();
                let mut s = connector.connect(name, tcp).await?;
                s.write_all(&connect_packet(&format!("idle-{i}"), keepalive))
                    .await?;
                s.flush().await?;
                let mut ack = [0u8; 4];
                s.read_exact(&mut ack).await?;
                if ack[0] != 0x20 || ack[3] != 0 {
                    return Err(std::io::Error::other("connection refused by broker"));
                }
                *connected.lock().unwrap() += 1;
                drop(permit);
                // Spread the pings over the keep-alive period.
                let period = Duration::from_secs(u64::from(keepalive));
                tokio::time::sleep(period.mul_f64((i % 1000) as f64 / 1000.0)).await;
                loop {
                    if stop_at.lock().unwrap().is_some_and(|t| Instant::now() >= t) {
                        return Ok(());
                    }
                    let sent = Instant::now();
                    s.write_all(&[0xC0, 0x00]).await?;
                    s.flush().await?;
                    let mut resp = [0u8; 2];
                    s.read_exact(&mut resp).await?;
                    if resp != [0xD0, 0x00] {
                        return Err(std::io::Error::other("unexpected reply to PINGREQ"));
                    }
                    rtts.lock()
                        .unwrap()
                        .push(sent.elapsed().as_secs_f64() * 1e3);
                    tokio::time::sleep(period).await;
                }
            }
            .await;
            if result.is_err() {
                *failures.lock().unwrap() += 1;
            }
        }));
    }
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let done = *connected.lock().unwrap() + *failures.lock().unwrap();
        if done >= args.clients {
            break;
        }
    }
    println!(
        "ramp: {} connected in {:.2} s, {} failed",
        connected.lock().unwrap(),
        started.elapsed().as_secs_f64(),
        failures.lock().unwrap()
    );
    *stop_at.lock().unwrap() = Some(Instant::now() + Duration::from_secs(args.duration));
    for t in tasks {
        let _ = t.await;
    }
    let mut v = rtts.lock().unwrap().clone();
    v.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        v.get(((v.len().max(1) - 1) as f64 * p).round() as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    println!(
        "pings acknowledged: {} (round trip p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms)",
        v.len(),
        pct(0.5),
        pct(0.99),
        v.last().copied().unwrap_or(f64::NAN)
    );
    println!("failures: {}", failures.lock().unwrap());
}
