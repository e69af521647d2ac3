//! Benchmark: command delivery at 10 % and 30 % datagram loss (each way) in the simulator
//! (fleetwire-testkit links, virtual time), fleetwire-command against a naive fire-and-forget
//! sender (one datagram per command, no acknowledgement: what Xibo's XMR and info-beamer's UDP
//! commands do) over the same links in the same run.
//!
//! UDP only (the TCP session fallback is switched off, so every datagram crosses the lossy
//! link). Reports, per loss rate: commands run exactly once within their time-to-live, latency from
//! creation to execution on the player (p50/p99/max), and datagrams per command (both ways for
//! fleetwire-command, keepalives excluded; one for the naive sender).
//!
//! `cargo run --release -p fleetwire-command --example delivery [-- players commands]`
#![allow(
    missing_docs,
    clippy::wildcard_imports,
    clippy::disallowed_methods,
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::*;
use fleetwire_command::*;
use fleetwire_testkit::{Link, LinkConfig, VirtualClock};

fn link(loss: f64) -> LinkConfig {
    LinkConfig {
        delay: Duration::from_millis(25),
        loss,
        reorder: 0.05,
        reorder_delay: Duration::from_millis(20),
        ..LinkConfig::perfect()
    }
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    if v.is_empty() {
        return f64::NAN;
    }
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

struct Outcome {
    exactly_once: usize,
    total: usize,
    lat: Vec<f64>,
    per_command: f64,
    retries: u64,
}

fn fleetwire(players: u16, commands: usize, loss: f64, seed: u64) -> Outcome {
    let ttl = Duration::from_secs(600);
    // UDP only: the session fallback would carry commands over the (simulated, lossless) TCP
    // session and flatter the result.
    let config = ServerConfig {
        fallback_after: u32::MAX,
        ..ServerConfig::default()
    };
    let mut w = World::new(players, &link(loss), config, seed);
    w.run_for(Duration::from_secs(1));
    let stats = |w: &World| {
        let p: u64 = w
            .nodes
            .iter()
            .map(|n| n.machine.stats().datagrams_out - n.machine.stats().hellos)
            .sum();
        w.server.stats().datagrams_out - w.server.stats().hello_acks + p
    };
    let before = stats(&w);
    let mut created: HashMap<CommandId, (usize, UnixTime)> = HashMap::new();
    for k in 0..commands {
        for i in 0..usize::from(players) {
            let id = w.send(i, Action::SetVolume((k % 100) as u8), ttl);
            created.insert(id, (i, w.now()));
        }
        w.run_for(Duration::from_secs(2));
    }
    w.run_for(ttl);
    let mut exactly_once = 0;
    let mut lat = Vec::new();
    for (&id, &(i, at)) in &created {
        let runs: Vec<_> = w.nodes[i]
            .executed
            .iter()
            .filter(|(c, _)| c.id == id)
            .collect();
        if runs.len() == 1 && runs[0].1.millis_since(at) <= ttl.as_millis() as u64 {
            exactly_once += 1;
        }
        if let Some((_, t)) = runs.first() {
            lat.push(t.millis_since(at) as f64);
        }
    }
    // Keepalive Hellos and their acknowledgements are not per-command traffic.
    let total = (stats(&w) - before) as f64;
    Outcome {
        exactly_once,
        total: created.len(),
        lat,
        per_command: total / created.len() as f64,
        retries: w.server.stats().retransmissions,
    }
}

fn naive(players: u16, commands: usize, loss: f64, seed: u64) -> Outcome {
    let clock = VirtualClock::new();
    let mut exactly_once = 0;
    let mut lat = Vec::new();
    for i in 0..players {
        let mut l = Link::new(link(loss), seed * 7919 + u64::from(i)).with_origin(clock.now());
        let t0 = clock.now();
        for k in 0..commands {
            let mut d = vec![0; 60];
            d[..8].copy_from_slice(&(k as u64).to_be_bytes());
            l.send(t0 + Duration::from_secs(2 * k as u64), d);
        }
        let mut got = 0;
        while let Some(at) = l.next_arrival() {
            let d = l.recv(at).unwrap();
            let k = u64::from_be_bytes(d[..8].try_into().unwrap());
            got += 1;
            lat.push((at - (t0 + Duration::from_secs(2 * k))).as_secs_f64() * 1e3);
        }
        exactly_once += got;
    }
    Outcome {
        exactly_once,
        total: usize::from(players) * commands,
        lat,
        per_command: 1.0,
        retries: 0,
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let players: u16 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(20);
    let commands: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(50);
    let seeds: u64 = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(5);
    println!(
        "{players} players × {commands} commands (one per player every 2 s), TTL 10 min, link 25 ms each way, 5 % reordering, loss both ways; {seeds} seeds"
    );
    println!(
        "{:>5} {:>18} {:>24} {:>9} {:>9} {:>9} {:>12} {:>8}",
        "loss",
        "sender",
        "run once within TTL",
        "p50 ms",
        "p99 ms",
        "max ms",
        "dgrams/cmd",
        "retries"
    );
    let wall = Instant::now();
    for loss in [0.10, 0.30] {
        let run = |f: fn(u16, usize, f64, u64) -> Outcome| {
            let mut all = f(players, commands, loss, 1);
            let mut dgrams = all.per_command * all.total as f64;
            for seed in 2..=seeds {
                let o = f(players, commands, loss, seed);
                all.exactly_once += o.exactly_once;
                dgrams += o.per_command * o.total as f64;
                all.total += o.total;
                all.lat.extend(o.lat);
                all.retries += o.retries;
            }
            all.per_command = dgrams / all.total as f64;
            all
        };
        for (name, mut o) in [
            ("fleetwire-command", run(fleetwire)),
            ("fire-and-forget", run(naive)),
        ] {
            let p50 = percentile(&mut o.lat, 0.5);
            let p99 = percentile(&mut o.lat, 0.99);
            let max = percentile(&mut o.lat, 1.0);
            println!(
                "{:>4.0}% {:>18} {:>10}/{:<6} {:>6.2}% {:>9.0} {:>9.0} {:>9.0} {:>12.2} {:>8}",
                loss * 100.0,
                name,
                o.exactly_once,
                o.total,
                100.0 * o.exactly_once as f64 / o.total as f64,
                p50,
                p99,
                max,
                o.per_command,
                o.retries
            );
        }
    }
    println!(
        "(simulated; wall-clock time for the whole run {:.1} s)",
        wall.elapsed().as_secs_f64()
    );
}
