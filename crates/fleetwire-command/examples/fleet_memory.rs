//! Benchmark: the server machine with 10,000 players online and one command in flight to each
//! (UDP unanswered, so every command stays `Sent` and is retransmitted): memory (heap growth
//! measured as resident set, `VmRSS`) and CPU time of `send` for all, and of every timer
//! firing over ten simulated minutes of retransmissions.
//!
//! `cargo run --release -p fleetwire-command --example fleet_memory [-- players]`
#![allow(
    missing_docs,
    clippy::wildcard_imports,
    clippy::disallowed_methods,
    clippy::cast_precision_loss
)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fleetwire_command::*;
use fleetwire_session::{ChannelBinding, PlayerId};

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn main() {
    let n: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000);
    let config = ServerConfig {
        // Stay on UDP: the point is the retransmission timers of every player.
        fallback_after: u32::MAX,
        ..ServerConfig::default()
    };
    let t0 = UnixTime::from_secs(1_700_000_000);
    let ids: Vec<PlayerId> = (0..n)
        .map(|i| {
            let mut b = [0u8; 16];
            b[..4].copy_from_slice(&i.to_be_bytes());
            PlayerId::from_bytes(b)
        })
        .collect();
    let keys: Vec<CommandKey> = ids
        .iter()
        .map(|p| CommandKey::derive(&ChannelBinding([1; 32]), &[2; 32], p))
        .collect();
    let rss0 = rss_kib();
    let mut s = CommandServer::new(Arc::new(config), t0, 1);
    let start = Instant::now();
    for (i, (p, k)) in ids.iter().zip(&keys).enumerate() {
        let addr = SocketAddr::from(([10, (i >> 16) as u8, (i >> 8) as u8, i as u8], 50000));
        s.player_online(t0, *p, k.clone(), addr).unwrap();
    }
    let online = start.elapsed();
    let rss1 = rss_kib();
    let mut buf = Vec::with_capacity(2048);
    let start = Instant::now();
    for p in &ids {
        s.send(
            t0,
            *p,
            CommandSpec::new(Action::RefreshContent, Duration::from_secs(3600)),
        )
        .unwrap();
        while s.poll_transmit(&mut buf).is_some() {
            buf.clear();
        }
    }
    while s.poll_event().is_some() {}
    let send = start.elapsed();
    let rss2 = rss_kib();
    // Ten simulated minutes of retransmissions.
    let start = Instant::now();
    let mut fired = 0u64;
    let mut datagrams = 0u64;
    let end = t0.plus_secs(600);
    while let Some(t) = s.poll_timeout() {
        if t > end {
            break;
        }
        s.handle_timeout(t);
        fired += 1;
        while s.poll_transmit(&mut buf).is_some() {
            buf.clear();
            datagrams += 1;
        }
        while s.poll_event().is_some() {}
    }
    let timers = start.elapsed();
    println!("{n} players online, one command in flight to each, UDP unanswered");
    println!(
        "player_online for all: {:.1} ms ({:.2} µs each); RSS +{} KiB ({:.0} B/player)",
        online.as_secs_f64() * 1e3,
        online.as_secs_f64() * 1e6 / f64::from(n),
        rss1.saturating_sub(rss0),
        (rss1.saturating_sub(rss0) * 1024) as f64 / f64::from(n)
    );
    println!(
        "send (seal + first transmission) for all: {:.1} ms ({:.2} µs each); RSS +{} KiB ({:.0} B/command)",
        send.as_secs_f64() * 1e3,
        send.as_secs_f64() * 1e6 / f64::from(n),
        rss2.saturating_sub(rss1),
        (rss2.saturating_sub(rss1) * 1024) as f64 / f64::from(n)
    );
    println!(
        "10 simulated minutes: {fired} timer firings, {datagrams} retransmissions, {:.1} ms CPU ({:.2} µs per retransmission)",
        timers.as_secs_f64() * 1e3,
        timers.as_secs_f64() * 1e6 / datagrams.max(1) as f64
    );
    println!(
        "total RSS growth {} KiB for {n} players",
        rss_kib().saturating_sub(rss0)
    );
    assert_eq!(s.player_count(), n as usize);
}
