//! Sensor loggers: provisioning (keys), durable group commit of what uploads bring, the
//! monthly readings partitions (PostgreSQL), and the counted reports of rejected connections.
//!
//! **Keys.** A logger authenticates every batch with an HMAC key shared with the cloud, so the
//! cloud must hold the key itself (not a verifier): `logger add` draws a random 256-bit key,
//! keeps it in the store's `loggers` table and prints it (or writes `id,key` lines to a 0600
//! file) once. The key reaches the firmware at manufacture or on the bench: the provisioning tool
//! writes the id and the key into the logger's protected flash over its wired interface (USB or
//! serial), never over the air. Because the store holds live keys, the store and its backups
//! are secrets.
//!
//! **Durable before acknowledged (group commit).** The acknowledgement tells the logger to free
//! its readings, so they must be durable first. Every write that gates an acknowledgement
//! (batches, statuses) goes to a [`GroupCommit`]: a writer takes all the writes waiting from
//! every connection, applies them in one transaction ([`crate::store::loggers`]), commits
//! (SQLite: `synchronous = FULL` syncs the write-ahead log; PostgreSQL: the commit returns after
//! the WAL flush), and only then answers them all: one sync covers many batches, and no ack
//! leaves before its sync. SQLite has one writer (one connection); PostgreSQL several, whose
//! groups lock the loggers they touch in id order.
//!
//! **Rejected connections.** Connections that fail to authenticate are counted per source and
//! written as one `logger_rejected` security event per source per report period (default a
//! minute, at most 1,000 sources per period plus one row for the rest) with the counts and
//! reasons ([`Rejections`]). An unauthenticated peer therefore cannot make the server write,
//! log or audit without bound.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt::Write as _;
use std::sync::Arc;

use fleetwire_sensor::{LoggerId, SensorError};
use fleetwire_tokio::source::Source;
use ring::rand::{SecureRandom, SystemRandom};
use tokio::sync::{Mutex, mpsc, oneshot};

use crate::store::audit::SecurityEvent;
use crate::store::loggers::{NewLogger, Outcome, Write};
use crate::store::{Store, StoreError};
use crate::util::civil;

/// Closed epochs handed to the cloud machine per lookup (the most recent).
pub(crate) const CLOSED_EPOCHS_LOOKED_UP: u32 = 64;

/// Why provisioning failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProvisionError {
    /// Nothing to do.
    #[error("--count must be at least 1")]
    NoneAsked,
    /// No randomness for keys.
    #[error("no system randomness")]
    NoRandomness,
    /// The store refused.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Provisions `count` loggers named `name`, each with a random 256-bit key; their ids and
/// keys, to be written into the loggers once.
pub(crate) async fn provision(
    store: &Store,
    name: &str,
    count: usize,
    now: i64,
) -> Result<Vec<(u64, [u8; 32])>, ProvisionError> {
    if count == 0 {
        return Err(ProvisionError::NoneAsked);
    }
    let rng = SystemRandom::new();
    let mut keys = Vec::with_capacity(count);
    for _ in 0..count {
        let mut key = [0u8; 32];
        rng.fill(&mut key)
            .map_err(|_| ProvisionError::NoRandomness)?;
        keys.push(key);
    }
    let rows = keys
        .iter()
        .map(|key| NewLogger {
            name: name.to_owned(),
            key: *key,
        })
        .collect();
    let ids = store.loggers().add(rows, now).await?;
    Ok(ids.into_iter().zip(keys).collect())
}

type Reply = oneshot::Sender<Result<Outcome, StoreError>>;

/// Most writes in one group commit.
const MAX_GROUP: usize = 512;

/// Months before the current one whose readings get a partition of their own (older backlogs
/// go to the default partition).
const MONTHS_BACK: i64 = 24;
/// Months after the current one made ahead (and accepted into partitions of their own).
const MONTHS_AHEAD: i64 = 2;

/// The group committer: writers that each apply every write waiting, from every connection, in
/// one transaction, then answer them all. Ends when every handle is dropped.
#[derive(Clone)]
pub(crate) struct GroupCommit {
    jobs: mpsc::UnboundedSender<(Write, Reply)>,
}

impl GroupCommit {
    /// Starts `writers` writers on `store` (SQLite: use 1).
    pub(crate) fn start(store: &Store, writers: usize) -> Self {
        let (jobs, queue) = mpsc::unbounded_channel::<(Write, Reply)>();
        let queue = Arc::new(Mutex::new(queue));
        let months = Arc::new(std::sync::Mutex::new(HashSet::new()));
        for _ in 0..writers.max(1) {
            let (store, queue, months) = (store.clone(), queue.clone(), months.clone());
            tokio::spawn(async move {
                loop {
                    let group = {
                        let mut queue = queue.lock().await;
                        let Some(first) = queue.recv().await else {
                            return;
                        };
                        let mut group = vec![first];
                        while group.len() < MAX_GROUP {
                            match queue.try_recv() {
                                Ok(job) => group.push(job),
                                Err(_) => break,
                            }
                        }
                        group
                    };
                    let (writes, replies): (Vec<Write>, Vec<Reply>) = group.into_iter().unzip();
                    let now = crate::unix_now();
                    ensure_months(&store, &months, &writes, now).await;
                    match store.loggers().commit(writes, now).await {
                        Ok(results) => {
                            for (reply, result) in replies.into_iter().zip(results) {
                                let _ = reply.send(result);
                            }
                        }
                        Err(e) => {
                            for reply in replies {
                                let _ = reply
                                    .send(Err(StoreError::Query(format!("commit failed: {e}"))));
                            }
                        }
                    }
                }
            });
        }
        Self { jobs }
    }

    /// Queues `write`; resolves once it is committed durably (or failed).
    pub(crate) async fn write(&self, write: Write) -> Result<Outcome, StoreError> {
        let stopped = || StoreError::Unavailable("the sensor writer stopped".into());
        let (reply, answer) = oneshot::channel();
        self.jobs.send((write, reply)).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

/// Makes sure the months `writes` write readings into, and the current month and the next
/// [`MONTHS_AHEAD`], have their partitions (PostgreSQL), once per process. A month whose
/// partition cannot be made (the default partition already holds rows of it) keeps using the
/// default partition: logged, not fatal.
async fn ensure_months(
    store: &Store,
    known: &std::sync::Mutex<HashSet<(i64, i64)>>,
    writes: &[Write],
    now: i64,
) {
    if store.kind() == "sqlite" {
        return;
    }
    let (year, month) = civil::month_of(now);
    let index = |(y, m): (i64, i64)| y * 12 + m - 1;
    let current = index((year, month));
    let mut wanted: BTreeSet<(i64, i64)> = (0..=MONTHS_AHEAD)
        .map(|k| {
            (
                (current + k).div_euclid(12),
                (current + k).rem_euclid(12) + 1,
            )
        })
        .collect();
    for w in writes {
        if let Write::Batch { batch, .. } = w {
            let (Some(first), Some(last)) = (batch.readings().next(), batch.readings().last())
            else {
                continue;
            };
            for t in [first.time, last.time] {
                let m = civil::month_of(i64::try_from(t).unwrap_or(i64::MAX));
                if (current - MONTHS_BACK..=current + MONTHS_AHEAD).contains(&index(m)) {
                    wanted.insert(m);
                }
            }
        }
    }
    let missing: Vec<(i64, i64)> = {
        let known = known
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        wanted.into_iter().filter(|m| !known.contains(m)).collect()
    };
    for (y, m) in missing {
        let (start, end) = civil::month_bounds(y, m);
        if let Err(e) = store.loggers().ensure_month(start, end).await {
            tracing::warn!(
                "readings partition for {y:04}-{m:02} not made ({e}); they go to the default partition"
            );
        }
        known
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert((y, m));
    }
}

/// Why an unauthenticated connection failed, as the security event names it; `None` if it says
/// nothing about the peer (a health check, a store failure).
pub(crate) fn rejection_reason(e: &SensorError, bytes_received: u64) -> Option<&'static str> {
    Some(match e {
        SensorError::BadMac { .. } => "bad MAC",
        SensorError::UnknownLogger { .. } => "unknown logger",
        SensorError::LoggerMismatch { .. } => "logger mismatch",
        SensorError::Decode(_) => "malformed",
        SensorError::UnexpectedMessage { .. } => "unexpected message",
        SensorError::TooMuchBuffered { .. } => "too much buffered",
        SensorError::Timeout { .. } if bytes_received > 0 => "deadline",
        SensorError::PeerClosed if bytes_received > 0 => "closed mid-upload",
        _ => return None,
    })
}

/// Most sources reported individually per period; the rest are summed into one row.
pub(crate) const MAX_REPORTED_SOURCES: usize = 1000;

/// Rejected and refused connections per source, since the last report.
pub(crate) struct Rejections {
    max_sources: usize,
    since: i64,
    sources: BTreeMap<Source, Tally>,
    others: Tally,
    other_sources: u64,
}

#[derive(Default)]
struct Tally {
    rejected: u64,
    refused: u64,
    reasons: BTreeMap<&'static str, u64>,
    loggers: BTreeSet<u64>,
}

/// Logger ids named per source in one event.
const LOGGERS_NAMED: usize = 8;

impl Tally {
    fn describe(&self, from: &str, secs: i64) -> String {
        let mut out = format!(
            "{} rejected sensor connections from {from} in {secs} s:",
            self.rejected
        );
        for (i, (why, n)) in self.reasons.iter().enumerate() {
            let _ = write!(out, "{} {why} x{n}", if i == 0 { "" } else { "," });
        }
        if !self.loggers.is_empty() {
            let ids: Vec<String> = self.loggers.iter().map(u64::to_string).collect();
            let _ = write!(out, "; loggers named: {}", ids.join(", "));
            if self.loggers.len() >= LOGGERS_NAMED {
                out.push_str(", …");
            }
        }
        if self.refused > 0 {
            let _ = write!(out, "; {} more refused at accept", self.refused);
        }
        out
    }
}

impl Rejections {
    /// Counts from `now`, reporting at most `max_sources` sources individually.
    pub(crate) fn new(max_sources: usize, now: i64) -> Self {
        Self {
            max_sources,
            since: now,
            sources: BTreeMap::new(),
            others: Tally::default(),
            other_sources: 0,
        }
    }

    fn tally(&mut self, source: Source) -> &mut Tally {
        if !self.sources.contains_key(&source) && self.sources.len() >= self.max_sources {
            self.other_sources += 1;
            return &mut self.others;
        }
        self.sources.entry(source).or_default()
    }

    /// A connection from `source` failed to authenticate, for `why` (naming `logger`).
    pub(crate) fn rejected(&mut self, source: Source, why: &'static str, logger: Option<LoggerId>) {
        let tally = self.tally(source);
        tally.rejected += 1;
        *tally.reasons.entry(why).or_default() += 1;
        if let Some(l) = logger {
            if tally.loggers.len() < LOGGERS_NAMED {
                tally.loggers.insert(l.0);
            }
        }
    }

    /// A connection from `source` was refused at accept by the gate.
    pub(crate) fn refused(&mut self, source: Source) {
        self.tally(source).refused += 1;
    }

    /// One event per source with something to report, plus one for the sources beyond the cap.
    pub(crate) fn drain(&mut self, now: i64) -> Vec<SecurityEvent> {
        let secs = (now - self.since).max(0);
        self.since = now;
        let mut rows: Vec<SecurityEvent> = std::mem::take(&mut self.sources)
            .into_iter()
            .filter(|(_, t)| t.rejected > 0)
            .map(|(source, t)| {
                let from = source.to_string();
                let detail = t.describe(&from, secs);
                SecurityEvent {
                    at: now,
                    kind: "logger_rejected",
                    player: None,
                    peer: Some(from),
                    detail,
                }
            })
            .collect();
        let others = std::mem::take(&mut self.others);
        if others.rejected > 0 {
            let from = format!("{} other sources", self.other_sources);
            rows.push(SecurityEvent {
                at: now,
                kind: "logger_rejected",
                player: None,
                peer: None,
                detail: others.describe(&from, secs),
            });
        }
        self.other_sources = 0;
        rows
    }
}

/// Writes what `rejections` counted as security events (and the audit chain).
pub(crate) async fn report_rejections(rejections: &mut Rejections, store: &Store, now: i64) {
    let rows = rejections.drain(now);
    if rows.is_empty() {
        return;
    }
    for e in &rows {
        tracing::info!(peer = e.peer.as_deref().unwrap_or("-"), "{}", e.detail);
    }
    if let Err(e) = store.audit().record(rows).await {
        tracing::error!("recording sensor rejections failed: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejections_are_one_counted_row_per_source_and_the_rest_in_one() {
        let a = Source::of("192.0.2.1".parse().unwrap());
        let b = Source::of("2001:db8::7".parse().unwrap());
        let c = Source::of("192.0.2.3".parse().unwrap());
        let mut r = Rejections::new(2, 1_000);
        for i in 0..50u64 {
            r.rejected(a, "unknown logger", Some(LoggerId(i)));
        }
        r.rejected(a, "bad MAC", Some(LoggerId(7)));
        r.refused(a);
        r.rejected(b, "malformed", None);
        r.refused(c); // refused only: no row
        r.rejected(c, "deadline", None);
        let rows = r.drain(r.since + 60);
        assert_eq!(rows.len(), 3, "{rows:?}");
        assert_eq!(rows[0].peer.as_deref(), Some("192.0.2.1"));
        assert!(
            rows[0].detail.starts_with("51 rejected sensor connections from 192.0.2.1 in 60 s: bad MAC x1, unknown logger x50; loggers named: 0, 1,"),
            "{}",
            rows[0].detail
        );
        assert!(
            rows[0].detail.ends_with("…; 1 more refused at accept"),
            "{}",
            rows[0].detail
        );
        assert!(
            rows[1]
                .detail
                .starts_with("1 rejected sensor connections from 2001:db8::/64")
        );
        assert!(
            rows[2]
                .detail
                .starts_with("1 rejected sensor connections from 2 other sources"),
            "{}",
            rows[2].detail
        );
        assert!(r.drain(r.since + 60).is_empty(), "counts start again");
    }
}
