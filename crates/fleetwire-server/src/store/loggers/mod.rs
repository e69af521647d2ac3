//! Sensor loggers: provisioning (keys), the readings they upload, their closed epochs, and their
//! newest battery and firmware status.
//!
//! **Exactly once.** A batch's readings, gaps, alarms, the closed epoch it opens after and the
//! logger's new mark are written in one transaction, only if the stored mark is still the one
//! the batch follows (`after`); otherwise nothing is written and the caller learns the mark
//! found. Readings are also unique by `(logger, epoch, seq)` (SQLite) or `(logger, at, epoch,
//! seq)` (PostgreSQL, where a unique key must hold the partition key; a slot's time is fixed
//! by its batch, so a resent slot has the same `at`) and inserted with "do nothing" on a
//! duplicate.
//!
//! **Group commit.** [`Loggers::commit`] applies many writes, from many connections, in one
//! transaction and answers each; the caller acknowledges only after it returns, when the
//! commit is durable (SQLite: `synchronous = FULL`; PostgreSQL: `synchronous_commit = on`).
//!
//! **PostgreSQL layout.** `sensor_readings` is range-partitioned by month of `at` (one table
//! per calendar month, `sensor_readings_YYYYMM`) with the unique index `(logger, at, epoch,
//! seq)`, which also serves "this logger between these times". The service creates each
//! month's partition before the first write into it ([`Loggers::ensure_month`]) and a few
//! months ahead; readings outside the months it will create (a logger whose clock is years
//! off) land in the default partition. A year of ten million loggers is then twelve tables
//! whose indexes each cover one month, and dropping old data is `DROP TABLE` of a month.

pub(crate) mod postgres;
pub(crate) mod sqlite;
#[cfg(test)]
mod tests;

use fleetwire_sensor::cloud::StatusStamp;
use fleetwire_sensor::{
    AlarmKind, Batch, Channel, ChannelKind, EpochEnd, LoggerId, Mark, Status, Unit,
};

use super::backend::Backend;
use super::{Store, StoreError};

/// A logger to provision: its name and its 256-bit key.
#[derive(Debug, Clone)]
pub(crate) struct NewLogger {
    pub(crate) name: String,
    pub(crate) key: [u8; 32],
}

/// What an upload needs to know of a logger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LoggerState {
    /// The key its batches are authenticated with.
    pub(crate) key: [u8; 32],
    /// The last slot stored.
    pub(crate) stored: Option<Mark>,
    /// Its most recent closed epochs, oldest first.
    pub(crate) closed: Vec<EpochEnd>,
    /// The stamp of its newest stored status.
    pub(crate) status: Option<StatusStamp>,
}

/// A logger as `logger list` shows it.
#[derive(Debug, Clone)]
pub(crate) struct LoggerRow {
    pub(crate) id: u64,
    pub(crate) name: String,
    pub(crate) stored: Option<Mark>,
    pub(crate) last_upload: Option<i64>,
    pub(crate) battery_percent: Option<i64>,
    pub(crate) firmware: Option<String>,
    pub(crate) readings: i64,
}

/// One stored reading: its slot, time and values in the logger's units.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ReadingRow {
    pub(crate) at: i64,
    pub(crate) epoch: u32,
    pub(crate) seq: u64,
    pub(crate) channels: Vec<Channel>,
    /// One per channel; `None` where the logger had no value.
    pub(crate) values: Vec<Option<i64>>,
}

/// A write that gates an acknowledgement.
#[derive(Debug, Clone)]
pub(crate) enum Write {
    /// A batch, stored only if the logger's mark is still `after`.
    Batch {
        after: Option<Mark>,
        closes: Option<EpochEnd>,
        batch: Batch,
    },
    /// A status, kept only if its stamp is newer than the stored one.
    Status {
        logger: LoggerId,
        stamp: StatusStamp,
        status: Status,
    },
}

/// How a write went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Written (or, for a status older than the stored one, rightly kept out).
    Stored,
    /// The stored mark was not the one the batch follows: nothing written.
    Conflict { stored: Option<Mark> },
}

/// The loggers repository.
pub(crate) struct Loggers<'a>(pub(super) &'a Store);

impl Loggers<'_> {
    /// Provisions `loggers` in one transaction with the next free ids (from 1001); their ids.
    pub(crate) async fn add(
        &self,
        loggers: Vec<NewLogger>,
        now: i64,
    ) -> Result<Vec<u64>, StoreError> {
        match self.0.backend() {
            Backend::Sqlite(_) => self.0.sqlite(move |c| sqlite::add(c, &loggers, now)).await,
            Backend::Postgres(_) => {
                postgres::add(&mut self.0.postgres().await?, &loggers, now).await
            }
        }
    }

    /// What an upload needs of `logger` (with up to `closed_epochs` recent closed epochs);
    /// `None` for an unknown logger.
    pub(crate) async fn lookup(
        &self,
        logger: LoggerId,
        closed_epochs: u32,
    ) -> Result<Option<LoggerState>, StoreError> {
        let id = id_sql(logger);
        match self.0.backend() {
            Backend::Sqlite(_) => {
                self.0
                    .sqlite(move |c| sqlite::lookup(c, id, closed_epochs))
                    .await
            }
            Backend::Postgres(_) => {
                postgres::lookup(&self.0.postgres().await?, id, closed_epochs).await
            }
        }
    }

    /// Applies `writes` in one transaction and commits it durably. The outer error fails them
    /// all (nothing was committed); inner errors fail one write (SQLite: its savepoint was
    /// rolled back, the others committed).
    pub(crate) async fn commit(
        &self,
        writes: Vec<Write>,
        now: i64,
    ) -> Result<Vec<Result<Outcome, StoreError>>, StoreError> {
        match self.0.backend() {
            Backend::Sqlite(_) => {
                self.0
                    .sqlite(move |c| sqlite::commit(c, &writes, now))
                    .await
            }
            Backend::Postgres(_) => {
                postgres::commit(&mut self.0.postgres().await?, &writes, now).await
            }
        }
    }

    /// Makes sure readings of the calendar month starting at unix time `start` (UTC) and
    /// ending before `end` have their own partition (PostgreSQL; a no-op on SQLite).
    pub(crate) async fn ensure_month(&self, start: i64, end: i64) -> Result<(), StoreError> {
        match self.0.backend() {
            Backend::Sqlite(_) => Ok(()),
            Backend::Postgres(_) => {
                postgres::ensure_month(&mut self.0.postgres().await?, start, end).await
            }
        }
    }

    /// Every logger, by id.
    pub(crate) async fn list(&self) -> Result<Vec<LoggerRow>, StoreError> {
        match self.0.backend() {
            Backend::Sqlite(_) => self.0.sqlite(sqlite::list).await,
            Backend::Postgres(_) => postgres::list(&self.0.postgres().await?).await,
        }
    }

    /// Whether `logger` is provisioned.
    pub(crate) async fn exists(&self, logger: LoggerId) -> Result<bool, StoreError> {
        let id = id_sql(logger);
        match self.0.backend() {
            Backend::Sqlite(_) => self.0.sqlite(move |c| sqlite::exists(c, id)).await,
            Backend::Postgres(_) => postgres::exists(&self.0.postgres().await?, id).await,
        }
    }

    /// The readings of `logger` at or after `since`, by time then slot.
    pub(crate) async fn readings(
        &self,
        logger: LoggerId,
        since: i64,
    ) -> Result<Vec<ReadingRow>, StoreError> {
        let id = id_sql(logger);
        match self.0.backend() {
            Backend::Sqlite(_) => self.0.sqlite(move |c| sqlite::readings(c, id, since)).await,
            Backend::Postgres(_) => postgres::readings(&self.0.postgres().await?, id, since).await,
        }
    }
}

/// A logger id as the stores keep it.
fn id_sql(id: LoggerId) -> i64 {
    i64::try_from(id.0).unwrap_or(i64::MAX)
}

/// A stored non-negative count or slot.
fn to_sql(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A stored mark, if both halves are set.
fn mark(epoch: Option<i64>, seq: Option<i64>) -> Option<Mark> {
    Some(Mark {
        epoch: u32::try_from(epoch?).ok()?,
        seq: u64::try_from(seq?).ok()?,
    })
}

/// A stored 32-byte key.
fn key32(bytes: &[u8]) -> Result<[u8; 32], StoreError> {
    <[u8; 32]>::try_from(bytes)
        .map_err(|_| StoreError::Invalid(format!("a logger key of {} bytes", bytes.len())))
}

/// `kind:unit:exponent` per channel, comma-separated (the stored channel set).
fn channel_spec(channels: &[Channel]) -> String {
    channels
        .iter()
        .map(|c| format!("{}:{}:{}", c.kind.0, c.unit.0, c.exponent))
        .collect::<Vec<_>>()
        .join(",")
}

fn parse_spec(spec: &str) -> Vec<Channel> {
    spec.split(',')
        .filter_map(|c| {
            let mut it = c.split(':');
            Some(Channel {
                kind: ChannelKind(it.next()?.parse().ok()?),
                unit: Unit(it.next()?.parse().ok()?),
                exponent: it.next()?.parse().ok()?,
            })
        })
        .collect()
}

/// A reading's values as stored: comma-separated, empty where missing.
fn format_values(values: &[Option<i32>], out: &mut String) {
    use std::fmt::Write as _;
    out.clear();
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        if let Some(v) = v {
            let _ = write!(out, "{v}");
        }
    }
}

fn parse_values(vals: &str) -> Vec<Option<i64>> {
    vals.split(',').map(|v| v.parse().ok()).collect()
}

/// An alarm as stored: its kind's name and value.
fn alarm_kind(kind: AlarmKind) -> (&'static str, Option<i32>) {
    match kind {
        AlarmKind::High { value } => ("high", Some(value)),
        AlarmKind::Low { value } => ("low", Some(value)),
        AlarmKind::Cleared => ("cleared", None),
        AlarmKind::ProbeFault => ("probe_fault", None),
        AlarmKind::ProbeDisconnected => ("probe_disconnected", None),
    }
}

/// A status's firmware as stored.
fn firmware(status: &Status) -> String {
    format!(
        "{}.{}.{}",
        status.firmware.major, status.firmware.minor, status.firmware.patch
    )
}
