//! Lockout decisions with 1,000,000 tracked keys, side by side with governor's keyed limiter
//! (`DefaultKeyedRateLimiter<u64>`, also 1,000,000 keys), in one run; plus bytes per tracked key
//! for both, counted by an instrumented global allocator.
//!
//! Two comparisons:
//! - raw: the engine with `&mut` access and a fixed `now`, governor as it is (its own clock read
//!   and sharded locks on every call) — what each structure costs alone;
//! - as the example server uses it (`decisions_1M_keys_as_server`): the engine behind one
//!   `std::sync::Mutex`, the wall clock read (`SystemTime::now`) for every decision, shared by 1
//!   and by 2 threads (one per core), beside governor shared by the same threads through an
//!   `Arc`. Times there are wall time per decision over all threads (1 / throughput); the bench
//!   also prints the CPU time per decision (`report:` lines), summed over the threads from
//!   `/proc/thread-self/schedstat`.
//!
//! `benches/criterion.sh fleetwire-auth lockout 3` (three runs, medians, ratios), or once:
//! `cargo bench -p fleetwire-auth --bench lockout`

use std::alloc::System;
use std::hint::black_box;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use fleetwire_auth::UnixTime;
use fleetwire_auth::lockout::{LockoutConfig, LockoutEngine, LockoutKey, Outcome};
use fleetwire_auth::throttle::{Rate, Throttle, ThrottleConfig};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const KEYS: u64 = 1_000_000;
const BATCH: usize = 64;

#[allow(clippy::cast_possible_wrap)] // heap sizes are far below i64::MAX
fn live_bytes(region: &Region<'_, System>) -> i64 {
    let s = region.change();
    s.bytes_allocated as i64 - s.bytes_deallocated as i64 + s.bytes_reallocated as i64
}

/// A cheap stream of key indices spread over all keys, so lookups miss the caches as in
/// production.
struct Keys(u64);
impl Keys {
    #[inline]
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % KEYS
    }
}

fn lockout_engine(now: UnixTime) -> LockoutEngine {
    let mut cfg = LockoutConfig::web_cms();
    cfg.max_keys = KEYS as u32;
    cfg.max_failures = 100;
    let mut e = LockoutEngine::new(cfg, [7; 16]).expect("valid config");
    for k in 0..KEYS {
        let key = k.to_le_bytes();
        let t = e
            .begin_attempt(&LockoutKey::untrusted("", &key), now)
            .expect("open");
        e.finish(t, Outcome::Failure, now);
    }
    e
}

fn throttle(now: UnixTime) -> Throttle {
    let rate = Rate {
        burst: 1_000_000,
        per_period: 1_000_000,
        period_ms: 1,
    };
    let mut th = Throttle::new(
        ThrottleConfig {
            per_source: rate,
            global: rate,
            max_sources: KEYS as u32,
        },
        [7; 16],
    );
    for k in 0..KEYS {
        th.check("", &k.to_le_bytes(), now).expect("open");
    }
    th
}

fn governor_limiter() -> DefaultKeyedRateLimiter<u64> {
    let quota = Quota::per_second(NonZeroU32::new(1_000_000).expect("non-zero"));
    let limiter = RateLimiter::keyed(quota);
    for k in 0..KEYS {
        let _ = limiter.check_key(&k);
    }
    limiter
}

fn memory_report(now: UnixTime) {
    let region = Region::new(GLOBAL);
    let e = lockout_engine(now);
    let lockout = live_bytes(&region);
    drop(e);
    let region = Region::new(GLOBAL);
    let th = throttle(now);
    let thr = live_bytes(&region);
    drop(th);
    let region = Region::new(GLOBAL);
    let g = governor_limiter();
    let gov = live_bytes(&region);
    drop(g);
    #[allow(clippy::cast_precision_loss)]
    let per = |b: i64| b as f64 / KEYS as f64;
    println!("report: bytes per tracked key with {KEYS} keys (live heap bytes / keys):");
    println!("report:   fleetwire lockout engine : {:6.1}", per(lockout));
    println!("report:   fleetwire throttle       : {:6.1}", per(thr));
    println!("report:   governor keyed limiter   : {:6.1}", per(gov));
}

fn bench(c: &mut Criterion, now: UnixTime) {
    let mut group = c.benchmark_group("decisions_1M_keys");
    group.throughput(Throughput::Elements(1));

    let mut e = lockout_engine(now);
    let mut keys = Keys(0x2545_F491_4F6C_DD1D);
    group.bench_function("fleetwire_lockout_status", |b| {
        b.iter(|| {
            let k = keys.next().to_le_bytes();
            black_box(e.status(&LockoutKey::untrusted("", &k), now))
        });
    });
    group.bench_function("fleetwire_lockout_begin_attempt", |b| {
        b.iter(|| {
            let k = keys.next().to_le_bytes();
            // Refused or reserved, both are decisions; successes are never finished here so
            // the table stays at 1,000,000 keys.
            black_box(e.begin_attempt(&LockoutKey::untrusted("", &k), now).is_ok())
        });
    });
    group.finish();

    // The batch calls: 64 keys per call, the same key stream; throughput per decision.
    let mut group = c.benchmark_group("decisions_1M_keys_batch64");
    group.throughput(Throughput::Elements(BATCH as u64));
    let mut statuses = Vec::with_capacity(BATCH);
    group.bench_function("fleetwire_lockout_statuses", |b| {
        b.iter(|| {
            let subjects: [[u8; 8]; BATCH] = std::array::from_fn(|_| keys.next().to_le_bytes());
            let batch = subjects.each_ref().map(|s| LockoutKey::untrusted("", s));
            statuses.clear();
            e.statuses(&batch, now, &mut statuses);
            black_box(&statuses);
        });
    });
    let mut results = Vec::with_capacity(BATCH);
    group.bench_function("fleetwire_lockout_begin_attempts", |b| {
        b.iter(|| {
            let subjects: [[u8; 8]; BATCH] = std::array::from_fn(|_| keys.next().to_le_bytes());
            let batch = subjects.each_ref().map(|s| LockoutKey::untrusted("", s));
            results.clear();
            e.begin_attempts(&batch, now, &mut results);
            black_box(&results);
        });
    });
    group.finish();
    drop(e);

    let mut group = c.benchmark_group("decisions_1M_keys");
    group.throughput(Throughput::Elements(1));
    let mut th = throttle(now);
    group.bench_function("fleetwire_throttle_check", |b| {
        b.iter(|| {
            let k = keys.next().to_le_bytes();
            black_box(th.check("", &k, now).is_ok())
        });
    });
    drop(th);

    let g = governor_limiter();
    group.bench_function("governor_keyed_check_key", |b| {
        b.iter(|| {
            let k = keys.next();
            black_box(g.check_key(&k).is_ok())
        });
    });
    group.finish();
}

/// CPU time this thread has run, in nanoseconds (Linux).
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Runs `iters` decisions spread over `threads` threads started together; returns the wall
/// time, and adds the threads' CPU time and the decisions to `cpu`.
#[allow(clippy::disallowed_methods)] // a bench measures real time
fn shared_run(
    threads: u64,
    iters: u64,
    cpu: &(AtomicU64, AtomicU64),
    decide: impl Fn(&mut Keys) + Sync,
) -> Duration {
    let per = iters.div_ceil(threads);
    let start = Barrier::new(threads as usize + 1);
    std::thread::scope(|s| {
        for t in 0..threads {
            let (start, decide) = (&start, &decide);
            s.spawn(move || {
                let mut keys = Keys(0x2545_F491_4F6C_DD1D ^ (t + 1).wrapping_mul(0x9E37_79B9));
                start.wait();
                let c0 = thread_cpu_ns();
                for _ in 0..per {
                    decide(&mut keys);
                }
                cpu.0.fetch_add(thread_cpu_ns() - c0, Ordering::Relaxed);
                cpu.1.fetch_add(per, Ordering::Relaxed);
            });
        }
        start.wait();
        let t0 = Instant::now();
        // The scope joins the threads before returning.
        t0
    })
    .elapsed()
}

/// The wall clock, as the server reads it for every decision.
#[allow(clippy::disallowed_methods)] // what the server does: the point of this comparison
fn wall_now() -> UnixTime {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    UnixTime::from_millis(ms)
}

fn bench_as_server(c: &mut Criterion, now: UnixTime) {
    let mut group = c.benchmark_group("decisions_1M_keys_as_server");
    group.throughput(Throughput::Elements(1));
    let engine = Mutex::new(lockout_engine(now));
    let limiter = governor_limiter();
    let mut reports = Vec::new();
    for threads in [1u64, 2] {
        let cpu = (AtomicU64::new(0), AtomicU64::new(0));
        group.bench_function(
            format!("fleetwire_lockout_mutex_clock_{threads}_threads"),
            |b| {
                b.iter_custom(|iters| {
                    shared_run(threads, iters, &cpu, |keys| {
                        let subject = keys.next().to_le_bytes();
                        let time = wall_now();
                        let mut locked = engine
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner);
                        let key = LockoutKey::untrusted("", &subject);
                        black_box(locked.begin_attempt(&key, time).is_ok());
                    })
                });
            },
        );
        reports.push((
            format!("fleetwire lockout, Mutex + clock, {threads} thread(s)"),
            cpu,
        ));
        let cpu = (AtomicU64::new(0), AtomicU64::new(0));
        group.bench_function(format!("governor_keyed_check_key_{threads}_threads"), |b| {
            b.iter_custom(|iters| {
                shared_run(threads, iters, &cpu, |keys| {
                    let key = keys.next();
                    black_box(limiter.check_key(&key).is_ok());
                })
            });
        });
        reports.push((format!("governor keyed, shared, {threads} thread(s)"), cpu));
    }
    group.finish();
    for (name, (ns, n)) in reports {
        let (ns, n) = (ns.load(Ordering::Relaxed), n.load(Ordering::Relaxed).max(1));
        #[allow(clippy::cast_precision_loss)]
        let per = ns as f64 / n as f64;
        println!("report: CPU per decision, {name}: {per:.0} ns");
    }
}

fn main() {
    let now = UnixTime::from_millis(1_700_000_000_000);
    memory_report(now);
    let mut c = Criterion::default()
        .configure_from_args()
        .sample_size(20)
        .warm_up_time(std::time::Duration::from_secs(1))
        .measurement_time(std::time::Duration::from_secs(3));
    bench(&mut c, now);
    bench_as_server(&mut c, now);
    c.final_summary();
}
