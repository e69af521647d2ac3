//! `fleetwire-login-flood`: sends `POST /v1/auth/login` to a fleetwire server at a fixed rate
//! (open loop: a request is due every 1/rate seconds whether or not earlier ones were answered)
//! over keep-alive HTTPS connections, each bound to its own loopback source address
//! (127.0.1.1, 127.0.1.2, …) so the server sees many origins. Every attempt uses a fresh unknown
//! user name and a wrong password, which costs the server one full Argon2 verification unless it
//! refuses first. Prints answers per status with latency p50/p99, and requests that could not
//! even be sent in time (every connection busy).

#![allow(clippy::disallowed_methods)] // a load generator reads the clock
#![allow(clippy::print_stdout)]
#![allow(clippy::cast_sign_loss, clippy::cast_possible_truncation)] // percentile ranks

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use clap::Parser;
use fleetwire_tokio::tls;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;
use tokio::sync::mpsc;

#[derive(Parser)]
#[command(name = "fleetwire-login-flood", version, about)]
struct Args {
    /// The server's HTTPS API address.
    #[arg(long, default_value = "127.0.0.1:8443")]
    server: SocketAddr,
    /// The server certificate's SHA-256 fingerprint, as `fleetwire-server serve` prints it.
    #[arg(long)]
    fingerprint: String,
    /// Login attempts per second.
    #[arg(long, default_value_t = 200)]
    rate: u32,
    /// How long to flood, in seconds.
    #[arg(long, default_value_t = 30)]
    duration: u64,
    /// Keep-alive connections (each from its own 127.0.1.x source address).
    #[arg(long, default_value_t = 64)]
    connections: u32,
}

#[derive(Default)]
struct Tally {
    by_status: BTreeMap<u16, Vec<f64>>,
    errors: BTreeMap<String, u64>,
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let args = Args::parse();
    let pin = tls::parse_fingerprint(&args.fingerprint).ok_or("--fingerprint: 64 hex digits")?;
    let config = tls::pinned_client_config(pin).map_err(|e| e.to_string())?;
    let tally = Arc::new(Mutex::new(Tally::default()));
    let late = Arc::new(AtomicU64::new(0));
    let conns = args.connections.clamp(1, 250);
    // Due times, queued for whichever connection is free; a full queue means every connection
    // is busy and the attempt is counted as late (not sent).
    let (tx, rx) = mpsc::channel::<Instant>(conns as usize);
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    let counter = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for i in 0..conns {
        let source = IpAddr::V4(Ipv4Addr::new(127, 0, 1, (i % 250 + 1) as u8));
        workers.push(tokio::spawn(worker(
            args.server,
            source,
            config.clone(),
            rx.clone(),
            tally.clone(),
            counter.clone(),
        )));
    }
    println!(
        "flooding {} with {} logins/s for {} s over {conns} connections",
        args.server, args.rate, args.duration
    );
    let start = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / f64::from(args.rate.max(1)));
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut due = 0u64;
    while start.elapsed() < Duration::from_secs(args.duration) {
        tick.tick().await;
        due += 1;
        if tx.try_send(Instant::now()).is_err() {
            late.fetch_add(1, Ordering::Relaxed);
        }
    }
    drop(tx);
    for w in workers {
        let _ = w.await;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let mut t = tally.lock().unwrap_or_else(PoisonError::into_inner);
    let answered: usize = t.by_status.values().map(Vec::len).sum();
    println!(
        "due {due} ({:.0}/s); answered {answered} ({:.0}/s); late (all connections busy) {}",
        due as f64 / elapsed,
        answered as f64 / elapsed,
        late.load(Ordering::Relaxed)
    );
    for (status, v) in &mut t.by_status {
        v.sort_by(f64::total_cmp);
        let pct = |p: f64| v[(((v.len() - 1) as f64 * p).round() as usize).min(v.len() - 1)];
        println!(
            "  {status}: {} (latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms)",
            v.len(),
            pct(0.5),
            pct(0.99),
            v[v.len() - 1]
        );
    }
    for (e, n) in &t.errors {
        println!("  error × {n}: {e}");
    }
    Ok(())
}

async fn worker(
    server: SocketAddr,
    source: IpAddr,
    config: Arc<rustls::ClientConfig>,
    rx: Arc<tokio::sync::Mutex<mpsc::Receiver<Instant>>>,
    tally: Arc<Mutex<Tally>>,
    counter: Arc<AtomicU64>,
) {
    let connector = tokio_rustls::TlsConnector::from(config);
    let mut stream = None;
    loop {
        let Some(due) = rx.lock().await.recv().await else {
            return;
        };
        if stream.is_none() {
            match connect(&connector, server, source).await {
                Ok(s) => stream = Some(s),
                Err(e) => {
                    note_error(&tally, e);
                    continue;
                }
            }
        }
        let Some(s) = stream.as_mut() else { continue };
        let n = counter.fetch_add(1, Ordering::Relaxed);
        let body =
            format!("{{\"user\":\"flood-{n}@example.com\",\"password\":\"Not-The-Password-{n}\"}}");
        let request = format!(
            "POST /v1/auth/login HTTP/1.1\r\nHost: {server}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let result = async {
            s.write_all(request.as_bytes()).await?;
            read_status(s).await
        }
        .await;
        match result {
            Ok((status, close)) => {
                let ms = due.elapsed().as_secs_f64() * 1e3;
                tally
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .by_status
                    .entry(status)
                    .or_default()
                    .push(ms);
                if close {
                    stream = None;
                }
            }
            Err(e) => {
                note_error(&tally, e.to_string());
                stream = None;
            }
        }
    }
}

type Tls = tokio_rustls::client::TlsStream<tokio::net::TcpStream>;

async fn connect(
    connector: &tokio_rustls::TlsConnector,
    server: SocketAddr,
    source: IpAddr,
) -> Result<Tls, String> {
    let socket = TcpSocket::new_v4().map_err(|e| e.to_string())?;
    socket
        .bind(SocketAddr::new(source, 0))
        .map_err(|e| format!("bind {source}: {e}"))?;
    let tcp = socket
        .connect(server)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let name = ServerName::try_from("fleetwire.local").map_err(|e| e.to_string())?;
    connector
        .connect(name, tcp)
        .await
        .map_err(|e| format!("tls: {e}"))
}

/// Reads one response; returns its status and whether the server closes the connection.
async fn read_status(s: &mut (impl AsyncRead + Unpin)) -> std::io::Result<(u16, bool)> {
    let mut buf = Vec::with_capacity(1024);
    let mut byte = [0u8; 512];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut byte).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&byte[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_lowercase();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let mut have = buf.len() - head_end;
    while have < length {
        let n = s.read(&mut byte).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        have += n;
    }
    Ok((status, head.contains("connection: close")))
}

fn note_error(tally: &Mutex<Tally>, e: String) {
    *tally
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .errors
        .entry(e)
        .or_default() += 1;
}
