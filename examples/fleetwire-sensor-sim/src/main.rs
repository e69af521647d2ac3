//! `fleetwire-sensor-sim`: runs N sensor loggers from a `logger,key` file (as written by
//! `fleetwire-server logger add --count N --secrets-out FILE`). Each logger starts with a backlog
//! of days of readings at its own interval (1–15 minutes, one to three channels, random-walk
//! values, occasional gaps where its memory lost slots), wakes every few seconds with the
//! readings a sped-up clock produced since, uploads them with the library's logger driver
//! (`fleetwire_tokio::sensor::upload`), frees only what the cloud acknowledged, and sometimes
//! drops the connection mid-upload. Prints uploads/s, readings/s, bytes per reading on the wire
//! and failures; it is the load generator of the sensor benchmark in docs/BENCHMARKS.md.

#![allow(clippy::disallowed_methods)] // a driver reads the clock
#![allow(clippy::print_stdout)]
#![allow(clippy::cast_sign_loss, clippy::cast_possible_wrap)] // simulated values and rates

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use clap::Parser;
use fleetwire_sensor::logger::LoggerConfig;
use fleetwire_sensor::{Batch, Channel, CloseReason, Gap, LoggerId, LoggerKey};
use fleetwire_tokio::sensor::{LoggerTransport, upload};
use fleetwire_tokio::tls;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rustls::pki_types::ServerName;
use tokio::sync::Semaphore;

#[derive(Parser)]
#[command(name = "fleetwire-sensor-sim", version, about)]
struct Args {
    /// The server's sensor address.
    #[arg(long, default_value = "127.0.0.1:14354")]
    server: SocketAddr,
    /// The server certificate's SHA-256 fingerprint, as `fleetwire-server serve` prints it.
    #[arg(long)]
    fingerprint: Option<String>,
    /// Connect without TLS (the server must run with `[sensor] danger_plaintext = true`).
    #[arg(long)]
    danger_plaintext: bool,
    /// `logger,key` lines, one logger each.
    #[arg(long)]
    loggers: PathBuf,
    /// Use only the first N loggers of the file.
    #[arg(long)]
    count: Option<usize>,
    /// Days of readings each logger holds at start.
    #[arg(long, default_value_t = 2.0)]
    backlog_days: f64,
    /// How long to run, in seconds.
    #[arg(long, default_value_t = 30)]
    duration: u64,
    /// Real seconds between a logger's wakes (jittered ±50 %).
    #[arg(long, default_value_t = 10.0)]
    wake_secs: f64,
    /// Simulated seconds per real second (how fast new readings accumulate).
    #[arg(long, default_value_t = 360.0)]
    speedup: f64,
    /// Probability that a wake's connection is dropped mid-upload.
    #[arg(long, default_value_t = 0.05)]
    cut_prob: f64,
    /// Uploads in flight at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Most logging slots per batch.
    #[arg(long, default_value_t = 480)]
    batch_max: usize,
    /// Seed of the simulation.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// End the run as soon as every logger's initial backlog is acknowledged (an ingest
    /// measurement without the wakes that follow).
    #[arg(long)]
    stop_when_drained: bool,
}

#[derive(Default)]
struct Tally {
    uploads_ok: AtomicU64,
    uploads_failed: AtomicU64,
    cuts: AtomicU64,
    readings_acked: AtomicU64,
    readings_sent_ok: AtomicU64,
    proto_bytes_ok: AtomicU64,
    wire_bytes_ok: AtomicU64,
    backlogs_done: AtomicU64,
    failures: Mutex<BTreeMap<String, u64>>,
}

impl Tally {
    fn fail(&self, why: String) {
        self.uploads_failed.fetch_add(1, Ordering::Relaxed);
        *self
            .failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(why)
            .or_default() += 1;
    }
}

/// One logging slot: the values of every channel, or `None` if the logger's memory lost it.
type Slot = Option<Vec<i32>>;

struct SimLogger {
    id: LoggerId,
    config: Arc<LoggerConfig>,
    interval: u64,
    channels: Vec<Channel>,
    /// Slots not yet acknowledged, from `first_seq`.
    pending: VecDeque<Slot>,
    first_seq: u64,
    /// Simulated unix time of slot `first_seq`.
    first_time: u64,
    /// Simulated clock.
    clock: f64,
    walk: Vec<i32>,
    gap_left: u32,
    rng: ChaCha8Rng,
}

const SIM_START: u64 = 1_750_000_000;

#[tokio::main]
async fn main() -> Result<(), String> {
    let args = Args::parse();
    let loggers = read_loggers(&args.loggers, args.count)?;
    if loggers.is_empty() {
        return Err(format!("no loggers in {}", args.loggers.display()));
    }
    if !(0.0..=1.0).contains(&args.cut_prob) {
        return Err("--cut-prob must be between 0 and 1".into());
    }
    let transport = if args.danger_plaintext {
        LoggerTransport::DangerPlaintext
    } else {
        let fp = args
            .fingerprint
            .as_deref()
            .and_then(tls::parse_fingerprint)
            .ok_or("--fingerprint HEX is required for TLS (or pass --danger-plaintext)")?;
        LoggerTransport::Tls {
            config: tls::pinned_client_config(fp).map_err(|e| e.to_string())?,
            server_name: ServerName::try_from("fleetwire.local").map_err(|e| e.to_string())?,
        }
    };
    let n = loggers.len();
    let tally = Arc::new(Tally::default());
    let gate = Arc::new(Semaphore::new(args.concurrency.max(1)));
    let args = Arc::new(args);
    let started = Instant::now();
    let end = started + Duration::from_secs(args.duration);
    let mut backlog_readings = 0u64;
    let mut tasks = Vec::with_capacity(n);
    for (i, (id, key)) in loggers.into_iter().enumerate() {
        let mut sim = SimLogger::new(id, key, args.seed.wrapping_add(i as u64), &args);
        backlog_readings += sim.readings_pending();
        let (tally, gate, transport, args) =
            (tally.clone(), gate.clone(), transport.clone(), args.clone());
        tasks.push(tokio::spawn(async move {
            sim.run(&args, &transport, &gate, &tally, end).await;
        }));
    }
    println!(
        "{n} loggers against {}, backlog {backlog_readings} readings ({:.1} days each)",
        args.server, args.backlog_days
    );
    let mut last = (Instant::now(), 0u64, 0u64);
    let mut drained_at = None;
    'run: while Instant::now() < end {
        // Report every 5 s; watch for the drained backlog every 50 ms.
        let report_at = (Instant::now() + Duration::from_secs(5)).min(end);
        while Instant::now() < report_at {
            tokio::time::sleep(Duration::from_millis(50).min(report_at - Instant::now())).await;
            if drained_at.is_none() && tally.backlogs_done.load(Ordering::Relaxed) == n as u64 {
                drained_at = Some(started.elapsed());
                if args.stop_when_drained {
                    break 'run;
                }
            }
        }
        let now = Instant::now();
        let ups = tally.uploads_ok.load(Ordering::Relaxed);
        let reads = tally.readings_acked.load(Ordering::Relaxed);
        let dt = (now - last.0).as_secs_f64();
        println!(
            "t={:>5.1}s  uploads/s {:>7.1}  readings/s {:>9.0}  failed {}  cut {}  backlogs stored {}/{n}",
            (now - started).as_secs_f64(),
            (ups - last.1) as f64 / dt,
            (reads - last.2) as f64 / dt,
            tally.uploads_failed.load(Ordering::Relaxed),
            tally.cuts.load(Ordering::Relaxed),
            tally.backlogs_done.load(Ordering::Relaxed),
        );
        last = (now, ups, reads);
    }
    for t in tasks {
        t.abort();
    }
    summary(&tally, started, n, backlog_readings, drained_at);
    Ok(())
}

fn summary(
    tally: &Tally,
    started: Instant,
    n: usize,
    backlog_readings: u64,
    drained_at: Option<Duration>,
) {
    let secs = started.elapsed().as_secs_f64();
    let ups = tally.uploads_ok.load(Ordering::Relaxed);
    let reads = tally.readings_acked.load(Ordering::Relaxed);
    let sent_ok = tally.readings_sent_ok.load(Ordering::Relaxed).max(1) as f64;
    println!("--- {secs:.1} s, {n} loggers");
    println!(
        "uploads ok {ups} ({:.1}/s), failed {}, cut on purpose {}",
        ups as f64 / secs,
        tally.uploads_failed.load(Ordering::Relaxed),
        tally.cuts.load(Ordering::Relaxed)
    );
    println!(
        "readings stored {reads} ({:.0}/s over the run)",
        reads as f64 / secs
    );
    match drained_at {
        Some(d) => println!(
            "initial backlog of {backlog_readings} readings stored within {:.2} s ({:.0} readings/s)",
            d.as_secs_f64(),
            backlog_readings as f64 / d.as_secs_f64()
        ),
        None => println!(
            "initial backlog not fully stored: {}/{n} loggers done",
            tally.backlogs_done.load(Ordering::Relaxed)
        ),
    }
    println!(
        "bytes per reading: {:.2} protocol, {:.2} on the wire (TLS records and handshake included, logger to cloud)",
        tally.proto_bytes_ok.load(Ordering::Relaxed) as f64 / sent_ok,
        tally.wire_bytes_ok.load(Ordering::Relaxed) as f64 / sent_ok,
    );
    let failures = tally
        .failures
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    for (why, count) in failures {
        println!("failure x{count}: {why}");
    }
}

impl SimLogger {
    fn new(id: LoggerId, key: LoggerKey, seed: u64, args: &Args) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let interval = 60 * rng.gen_range(1..=15u64);
        let all = [
            Channel::TEMPERATURE_DECI_C,
            Channel::HUMIDITY_DECI_PCT,
            Channel::CO2_PPM,
        ];
        let channels = all[..rng.gen_range(1..=3)].to_vec();
        let walk = vec![215, 450, 600][..channels.len()].to_vec();
        let backlog = (args.backlog_days * 86_400.0) as u64;
        let first_time = SIM_START - backlog + rng.gen_range(0..interval);
        let mut sim = Self {
            id,
            config: Arc::new(LoggerConfig::new(id, key)),
            interval,
            channels,
            pending: VecDeque::new(),
            first_seq: 0,
            first_time,
            clock: first_time as f64,
            walk,
            gap_left: 0,
            rng,
        };
        sim.advance(backlog as f64);
        sim
    }

    /// Logs the slots of `secs` simulated seconds.
    fn advance(&mut self, secs: f64) {
        self.clock += secs;
        let next_seq = self.first_seq + self.pending.len() as u64;
        let mut t = self.first_time + (next_seq - self.first_seq) * self.interval;
        while (t as f64) <= self.clock {
            if self.gap_left == 0 && self.rng.gen_bool(0.002) {
                self.gap_left = self.rng.gen_range(1..=20);
            }
            if self.gap_left > 0 {
                self.gap_left -= 1;
                self.pending.push_back(None);
            } else {
                for v in &mut self.walk {
                    *v += self.rng.gen_range(-2..=2);
                }
                self.pending.push_back(Some(self.walk.clone()));
            }
            t += self.interval;
        }
    }

    fn readings_pending(&self) -> u64 {
        self.pending.iter().filter(|s| s.is_some()).count() as u64
    }

    /// The pending slots as batches of at most `max` slots.
    fn batches(&self, max: usize) -> Vec<Batch> {
        let mut out = Vec::new();
        let slots: Vec<&Slot> = self.pending.iter().collect();
        for (c, chunk) in slots.chunks(max.max(1)).enumerate() {
            let first_seq = self.first_seq + (c * max.max(1)) as u64;
            let mut batch = Batch {
                logger: self.id,
                epoch: 0,
                first_seq,
                start: self.first_time + (first_seq - self.first_seq) * self.interval,
                interval_s: u32::try_from(self.interval).unwrap_or(u32::MAX),
                channels: self.channels.clone(),
                ..Batch::default()
            };
            for (k, slot) in chunk.iter().enumerate() {
                let seq = first_seq + k as u64;
                match slot {
                    Some(values) => batch.values.extend(values.iter().map(|v| Some(*v))),
                    None => match batch.gaps.last_mut() {
                        Some(g) if g.seq + g.count == seq => g.count += 1,
                        _ => batch.gaps.push(Gap { seq, count: 1 }),
                    },
                }
            }
            out.push(batch);
        }
        out
    }

    /// Frees the slots up to and including `seq`; returns the readings freed.
    fn free_through(&mut self, seq: u64) -> u64 {
        let mut freed = 0;
        while self.first_seq <= seq {
            match self.pending.pop_front() {
                Some(slot) => freed += u64::from(slot.is_some()),
                None => break,
            }
            self.first_seq += 1;
            self.first_time += self.interval;
        }
        freed
    }

    async fn run(
        &mut self,
        args: &Args,
        transport: &LoggerTransport,
        gate: &Semaphore,
        tally: &Tally,
        end: Instant,
    ) {
        let mut backlog_done = false;
        let mut last_wake = Instant::now();
        // Spread the first wakes over one wake period.
        let first = self.rng.gen_range(0.0..args.wake_secs.max(0.001));
        tokio::time::sleep(Duration::from_secs_f64(first)).await;
        while Instant::now() < end {
            let now = Instant::now();
            self.advance((now - last_wake).as_secs_f64() * args.speedup);
            last_wake = now;
            let mut batches = self.batches(args.batch_max);
            if batches.is_empty() {
                // Nothing new since the last ack: check in (as a logger does to fetch settings).
                let next = self.first_seq + self.pending.len() as u64;
                batches.push(Batch::empty(self.id, 0, next, self.clock as u64));
            }
            let Ok(permit) = gate.acquire().await else {
                return;
            };
            let cut = self.rng.gen_bool(args.cut_prob);
            let attempt = upload(args.server, transport, self.config.clone(), batches);
            let result = if cut {
                let after = Duration::from_millis(self.rng.gen_range(0..30));
                let Ok(result) = tokio::time::timeout(after, attempt).await else {
                    // Dropping the upload closes the socket mid-flight.
                    tally.cuts.fetch_add(1, Ordering::Relaxed);
                    drop(permit);
                    self.sleep(args).await;
                    continue;
                };
                result
            } else {
                attempt.await
            };
            drop(permit);
            match result {
                Ok(report) => {
                    // Acks cover their own epoch only; this simulator logs in epoch 0.
                    if let Some(mark) = report.stored.iter().find(|m| m.epoch == 0) {
                        let freed = self.free_through(mark.seq);
                        tally.readings_acked.fetch_add(freed, Ordering::Relaxed);
                    }
                    if report.reason == CloseReason::Finished {
                        tally.uploads_ok.fetch_add(1, Ordering::Relaxed);
                        tally
                            .readings_sent_ok
                            .fetch_add(report.stats.readings_sent, Ordering::Relaxed);
                        tally
                            .proto_bytes_ok
                            .fetch_add(report.stats.bytes_sent, Ordering::Relaxed);
                        tally
                            .wire_bytes_ok
                            .fetch_add(report.wire_bytes_sent, Ordering::Relaxed);
                        if !backlog_done {
                            backlog_done = true;
                            tally.backlogs_done.fetch_add(1, Ordering::Relaxed);
                        }
                    } else if let CloseReason::Error(e) = report.reason {
                        tally.fail(e.to_string());
                    }
                }
                Err(e) => tally.fail(e.to_string()),
            }
            self.sleep(args).await;
        }
    }

    async fn sleep(&mut self, args: &Args) {
        let secs = args.wake_secs * self.rng.gen_range(0.5..1.5);
        tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    }
}

fn read_loggers(
    path: &std::path::Path,
    count: Option<usize>,
) -> Result<Vec<(LoggerId, LoggerKey)>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |what: &str| format!("{}:{}: {what}", path.display(), i + 1);
        let (id, key) = line
            .split_once(',')
            .ok_or_else(|| bad("expected `logger,key`"))?;
        let id: u64 = id
            .trim()
            .parse()
            .map_err(|_| bad("logger id is not a number"))?;
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(key.trim(), &mut bytes)
            .map_err(|_| bad("key is not 64 hex digits"))?;
        out.push((LoggerId(id), LoggerKey::from_bytes(bytes)));
        if count.is_some_and(|c| out.len() >= c) {
            break;
        }
    }
    Ok(out)
}
