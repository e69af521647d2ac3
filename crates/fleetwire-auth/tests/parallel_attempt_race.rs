//! Reserve-before-verify: parallel attempts cannot slip past the failure count (the race behind
//! ASP.NET Identity's CVE-2023-33170 and django-axes #592).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Barrier, Mutex};

use fleetwire_auth::UnixTime;
use fleetwire_auth::lockout::{LockoutConfig, LockoutEngine, LockoutKey, Outcome};

#[test]
fn interleaved_reservations_never_exceed_budget() {
    let mut e = LockoutEngine::new(LockoutConfig::web_cms(), [1; 16]).unwrap();
    let now = UnixTime::from_secs(1_000);
    let key = LockoutKey::untrusted("login", b"victim");
    // 50 requests arrive before any verification finishes.
    let tickets: Vec<_> = (0..50)
        .filter_map(|_| e.begin_attempt(&key, now).ok())
        .collect();
    assert_eq!(tickets.len(), 5, "only the budget is handed out");
    for t in tickets {
        e.finish(t, Outcome::Failure, now);
    }
    assert!(e.begin_attempt(&key, now).is_err());
}

#[test]
fn threads_racing_verify_at_most_budget_times() {
    let engine = Arc::new(Mutex::new(
        LockoutEngine::new(LockoutConfig::web_cms(), [2; 16]).unwrap(),
    ));
    let verifications = Arc::new(AtomicU32::new(0));
    let barrier = Arc::new(Barrier::new(32));
    let now = UnixTime::from_secs(2_000);
    let handles: Vec<_> = (0..32)
        .map(|_| {
            let (engine, verifications, barrier) =
                (engine.clone(), verifications.clone(), barrier.clone());
            std::thread::spawn(move || {
                let key = LockoutKey::untrusted("login", b"victim");
                barrier.wait();
                let ticket = engine.lock().unwrap().begin_attempt(&key, now);
                if let Ok(ticket) = ticket {
                    // The slow password check runs outside the lock, as on a real server.
                    verifications.fetch_add(1, Ordering::SeqCst);
                    std::thread::yield_now();
                    engine.lock().unwrap().finish(ticket, Outcome::Failure, now);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(verifications.load(Ordering::SeqCst), 5);
}
