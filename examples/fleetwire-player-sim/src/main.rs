//! `fleetwire-player-sim`: logs in N players from an `id,secret` file (as written by
//! `fleetwire-server player add --count N --secrets-out FILE`) and keeps them heartbeating, with
//! the same reconnect loop (exponential backoff, full jitter) a real player uses. Prints logins
//! per second, login latency, heartbeat round-trip p50/p99 and failures. It is also the load
//! generator for the benchmarks in docs/BENCHMARKS.md.

#![allow(clippy::disallowed_methods)] // a driver reads the clock
#![allow(clippy::print_stdout)]
#![allow(clippy::cast_sign_loss, clippy::cast_possible_truncation)] // percentile ranks

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use clap::Parser;
use fleetwire_session::{Backoff, ClientConfig, ClientEvent, PlayerId, PlayerSecret, PlayerStatus};
use fleetwire_tokio::session::{PlayerTransport, run_player};
use fleetwire_tokio::tls;
use ring::rand::{SecureRandom, SystemRandom};
use rustls::pki_types::ServerName;
use tokio::sync::{Semaphore, watch};

#[derive(Parser)]
#[command(name = "fleetwire-player-sim", version, about)]
struct Args {
    /// The server's session address.
    #[arg(long, default_value = "127.0.0.1:4701")]
    server: SocketAddr,
    /// The server certificate's SHA-256 fingerprint, as `fleetwire-server serve` prints it.
    #[arg(long)]
    fingerprint: Option<String>,
    /// Connect without TLS (the server must run with `danger_plaintext`).
    #[arg(long)]
    danger_plaintext: bool,
    /// `id,secret` lines, one player each.
    #[arg(long)]
    players: PathBuf,
    /// Use only the first N players of the file.
    #[arg(long)]
    count: Option<usize>,
    /// How long to run after the last player started, in seconds.
    #[arg(long, default_value_t = 30)]
    duration: u64,
    /// Logins in flight at once during the ramp.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
}

#[derive(Default)]
struct Tally {
    login_ms: Vec<f64>,
    rtt_ms: Vec<f64>,
    failures: HashMap<String, u64>,
    online: usize,
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let args = Args::parse();
    let players = read_players(&args.players, args.count)?;
    let transport = if args.danger_plaintext {
        PlayerTransport::DangerPlaintext
    } else {
        let fp = args
            .fingerprint
            .as_deref()
            .and_then(tls::parse_fingerprint)
            .ok_or("--fingerprint HEX is required for TLS (or pass --danger-plaintext)")?;
        PlayerTransport::Tls {
            config: tls::pinned_client_config(fp).map_err(|e| e.to_string())?,
            server_name: ServerName::try_from("fleetwire.local").map_err(|e| e.to_string())?,
        }
    };
    let tally = Arc::new(Mutex::new(Tally::default()));
    let ramp = Arc::new(Semaphore::new(args.concurrency.max(1)));
    let (stop_tx, stop_rx) = watch::channel(false);
    let started = Instant::now();
    println!("starting {} players against {}", players.len(), args.server);
    let mut tasks = Vec::with_capacity(players.len());
    for (id, secret) in players {
        let config = Arc::new(ClientConfig::new(id, secret));
        tasks.push(tokio::spawn(player_loop(
            args.server,
            transport.clone(),
            config,
            tally.clone(),
            ramp.clone(),
            stop_rx.clone(),
        )));
    }
    // Wait until every player has logged in once (or failed), then run for the duration.
    let total = tasks.len();
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let t = tally.lock().unwrap_or_else(PoisonError::into_inner);
        let tried = t.login_ms.len() + t.failures.values().sum::<u64>() as usize;
        if tried >= total || started.elapsed() > Duration::from_secs(600) {
            break;
        }
    }
    let ramp_time = started.elapsed();
    let logins = tally
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .login_ms
        .len();
    println!(
        "ramp: {logins} logins in {:.2} s = {:.0} logins/s",
        ramp_time.as_secs_f64(),
        logins as f64 / ramp_time.as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(args.duration)).await;
    let _ = stop_tx.send(true);
    for t in tasks {
        let _ = t.await;
    }
    let mut t = tally.lock().unwrap_or_else(PoisonError::into_inner);
    report(&mut t);
    Ok(())
}

async fn player_loop(
    server: SocketAddr,
    transport: PlayerTransport,
    config: Arc<ClientConfig>,
    tally: Arc<Mutex<Tally>>,
    ramp: Arc<Semaphore>,
    mut stop: watch::Receiver<bool>,
) {
    let rng = SystemRandom::new();
    let mut backoff = Backoff::default();
    let (_status_tx, status_rx) = watch::channel(PlayerStatus {
        content: "sim-loop".into(),
        free_storage_bytes: 1 << 33,
        versions: "player-sim 0.1".into(),
        config_hash: None,
    });
    let mut first = true;
    while !*stop.borrow() {
        let permit = if first {
            ramp.clone().acquire_owned().await.ok()
        } else {
            None
        };
        let begun = Instant::now();
        let mut permit = permit;
        let mut logged_in = false;
        let tally_events = tally.clone();
        let on_event = |e: &ClientEvent| {
            let mut t = tally_events.lock().unwrap_or_else(PoisonError::into_inner);
            match e {
                ClientEvent::LoggedIn { .. } => {
                    t.login_ms.push(begun.elapsed().as_secs_f64() * 1e3);
                    t.online += 1;
                    logged_in = true;
                    permit.take();
                }
                ClientEvent::HeartbeatAcked { rtt, .. } => t.rtt_ms.push(rtt.as_secs_f64() * 1e3),
                ClientEvent::Closed { .. } if logged_in => t.online -= 1,
                _ => {}
            }
        };
        let mut stop_signal = stop.clone();
        let result = run_player(
            server,
            &transport,
            config.clone(),
            status_rx.clone(),
            on_event,
            async move {
                let _ = stop_signal.wait_for(|s| *s).await;
            },
        )
        .await;
        first = false;
        let reason = match result {
            Ok(reason) => reason.to_string(),
            Err(e) => format!("connect: {e}"),
        };
        if *stop.borrow() {
            break;
        }
        *tally
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .failures
            .entry(reason)
            .or_default() += 1;
        if logged_in {
            backoff.reset();
        }
        let mut random = [0u8; 8];
        let _ = rng.fill(&mut random);
        let delay = backoff.next_delay(u64::from_le_bytes(random));
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            _ = stop.wait_for(|s| *s) => break,
        }
    }
}

fn report(t: &mut Tally) {
    let pct = |v: &mut Vec<f64>, p: f64| -> f64 {
        if v.is_empty() {
            return f64::NAN;
        }
        v.sort_by(f64::total_cmp);
        // Nearest rank.
        let rank = (v.len() - 1) as f64 * p;
        v[(rank.round() as usize).min(v.len() - 1)]
    };
    let (l50, l99) = (pct(&mut t.login_ms, 0.50), pct(&mut t.login_ms, 0.99));
    let (r50, r99) = (pct(&mut t.rtt_ms, 0.50), pct(&mut t.rtt_ms, 0.99));
    let r_max = t.rtt_ms.last().copied().unwrap_or(f64::NAN);
    println!(
        "logins: {} (latency p50 {l50:.2} ms, p99 {l99:.2} ms)",
        t.login_ms.len()
    );
    println!(
        "heartbeats acknowledged: {} (round trip p50 {r50:.2} ms, p99 {r99:.2} ms, max {r_max:.2} ms)",
        t.rtt_ms.len()
    );
    let failures: u64 = t.failures.values().sum();
    println!("failures: {failures}");
    for (reason, n) in &t.failures {
        println!("  {n} × {reason}");
    }
}

fn read_players(
    path: &PathBuf,
    count: Option<usize>,
) -> Result<Vec<(PlayerId, PlayerSecret)>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = Vec::new();
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let (id, secret) = line
            .split_once(',')
            .ok_or_else(|| format!("{}:{}: expected id,secret", path.display(), n + 1))?;
        let id: PlayerId = id
            .parse()
            .map_err(|e| format!("{}:{}: {e}", path.display(), n + 1))?;
        let secret: PlayerSecret = secret
            .parse()
            .map_err(|e| format!("{}:{}: {e}", path.display(), n + 1))?;
        out.push((id, secret));
        if count.is_some_and(|c| out.len() >= c) {
            break;
        }
    }
    Ok(out)
}
