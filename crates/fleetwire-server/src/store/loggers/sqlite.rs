//! The loggers repository on SQLite: one transaction per group of writes, each write in its
//! own savepoint (one conflict or failure does not undo the others), one sync at the commit.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::{
    LoggerRow, LoggerState, NewLogger, Outcome, ReadingRow, Write, alarm_kind, channel_spec,
    firmware, format_values, id_sql, key32, mark, parse_spec, parse_values, to_sql,
};
use crate::store::StoreError;
use fleetwire_sensor::cloud::StatusStamp;
use fleetwire_sensor::{Batch, EpochEnd, LoggerId, Mark, Status};

/// The tables of this repository (part of the SQLite baseline, version 1).
pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS loggers (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL DEFAULT '',
    key         BLOB NOT NULL,
    created_at  INTEGER NOT NULL,
    mark_epoch  INTEGER,
    mark_seq    INTEGER,
    last_upload INTEGER
);
CREATE TABLE IF NOT EXISTS sensor_channel_sets (
    id   INTEGER PRIMARY KEY,
    spec TEXT NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS sensor_readings (
    logger      INTEGER NOT NULL,
    epoch       INTEGER NOT NULL,
    seq         INTEGER NOT NULL,
    at          INTEGER NOT NULL,
    channel_set INTEGER NOT NULL,
    vals        TEXT NOT NULL,
    UNIQUE (logger, epoch, seq)
);
CREATE INDEX IF NOT EXISTS sensor_readings_by_time ON sensor_readings (logger, at);
CREATE TABLE IF NOT EXISTS sensor_gaps (
    logger INTEGER NOT NULL,
    epoch  INTEGER NOT NULL,
    seq    INTEGER NOT NULL,
    count  INTEGER NOT NULL,
    UNIQUE (logger, epoch, seq)
);
CREATE TABLE IF NOT EXISTS sensor_alarms (
    logger  INTEGER NOT NULL,
    epoch   INTEGER NOT NULL,
    seq     INTEGER NOT NULL,
    channel INTEGER NOT NULL,
    kind    TEXT NOT NULL,
    value   INTEGER
);
-- Closed epochs: slots 0..next_seq of `epoch` are stored; `abandoned`: the logger lost its
-- numbering there, later slots of it are lost (a gap of unknown length).
CREATE TABLE IF NOT EXISTS sensor_epochs (
    logger    INTEGER NOT NULL,
    epoch     INTEGER NOT NULL,
    next_seq  INTEGER NOT NULL,
    abandoned INTEGER NOT NULL,
    closed_at INTEGER NOT NULL,
    UNIQUE (logger, epoch)
);
-- The newest battery and firmware status, by (epoch, counter).
CREATE TABLE IF NOT EXISTS sensor_status (
    logger      INTEGER PRIMARY KEY,
    epoch       INTEGER NOT NULL,
    counter     INTEGER NOT NULL,
    battery_mv  INTEGER NOT NULL,
    battery_pct INTEGER NOT NULL,
    firmware    TEXT NOT NULL,
    at          INTEGER NOT NULL
);
";

pub(super) fn add(
    conn: &mut Connection,
    loggers: &[NewLogger],
    now: i64,
) -> Result<Vec<u64>, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut ids = Vec::with_capacity(loggers.len());
    {
        let next: i64 =
            tx.query_row("SELECT COALESCE(MAX(id), 1000) + 1 FROM loggers", [], |r| {
                r.get(0)
            })?;
        let mut insert =
            tx.prepare("INSERT INTO loggers (id, name, key, created_at) VALUES (?1, ?2, ?3, ?4)")?;
        for (id, l) in (next..).zip(loggers) {
            insert.execute(params![id, l.name, &l.key[..], now])?;
            ids.push(u64::try_from(id).unwrap_or(0));
        }
    }
    tx.commit()?;
    Ok(ids)
}

pub(super) fn lookup(
    conn: &mut Connection,
    logger: i64,
    closed_epochs: u32,
) -> Result<Option<LoggerState>, StoreError> {
    let row = conn
        .query_row(
            "SELECT key, mark_epoch, mark_seq FROM loggers WHERE id = ?1",
            [logger],
            |r| {
                Ok((
                    r.get::<_, Vec<u8>>(0)?,
                    r.get::<_, Option<i64>>(1)?,
                    r.get::<_, Option<i64>>(2)?,
                ))
            },
        )
        .optional()?;
    let Some((key, epoch, seq)) = row else {
        return Ok(None);
    };
    let key = key32(&key)?;
    let mut closed: Vec<EpochEnd> = conn
        .prepare_cached(
            "SELECT epoch, next_seq, abandoned FROM sensor_epochs WHERE logger = ?1 \
             ORDER BY epoch DESC LIMIT ?2",
        )?
        .query_map(params![logger, closed_epochs], |r| {
            Ok(EpochEnd {
                epoch: r.get(0)?,
                next_seq: u64::try_from(r.get::<_, i64>(1)?).unwrap_or(0),
                abandoned: r.get(2)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    closed.reverse();
    let status = conn
        .query_row(
            "SELECT epoch, counter FROM sensor_status WHERE logger = ?1",
            [logger],
            |r| {
                Ok(StatusStamp {
                    epoch: r.get(0)?,
                    counter: r.get(1)?,
                })
            },
        )
        .optional()?;
    Ok(Some(LoggerState {
        key,
        stored: mark(epoch, seq),
        closed,
        status,
    }))
}

/// Applies `writes` in one transaction, each in its own savepoint, and commits (one sync of the
/// write-ahead log with `synchronous = FULL`). Every result is final only once the commit
/// succeeded: if it fails, every write fails.
pub(super) fn commit(
    conn: &mut Connection,
    writes: &[Write],
    now: i64,
) -> Result<Vec<Result<Outcome, StoreError>>, StoreError> {
    let mut tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut results = Vec::with_capacity(writes.len());
    for write in writes {
        let result = match tx.savepoint() {
            Ok(mut sp) => {
                let applied = match write {
                    Write::Batch {
                        after,
                        closes,
                        batch,
                    } => write_batch(&sp, *after, *closes, batch, now),
                    Write::Status {
                        logger,
                        stamp,
                        status,
                    } => write_status(&sp, *logger, *stamp, status, now).map(|()| Outcome::Stored),
                };
                match applied {
                    Ok(Outcome::Stored) => sp.commit().map(|()| Outcome::Stored),
                    Ok(conflict) => {
                        let _ = sp.rollback();
                        Ok(conflict)
                    }
                    Err(e) => {
                        let _ = sp.rollback();
                        Err(e)
                    }
                }
            }
            Err(e) => Err(e),
        };
        results.push(result.map_err(StoreError::from));
    }
    // The savepoints released into `tx`; now the one commit and its sync.
    tx.set_drop_behavior(rusqlite::DropBehavior::Rollback);
    tx.commit()?;
    Ok(results)
}

/// The conditional write, inside the caller's transaction (a savepoint): readings, gaps, alarms,
/// the closed epoch and the new mark, or nothing.
fn write_batch(
    tx: &Connection,
    after: Option<Mark>,
    closes: Option<EpochEnd>,
    batch: &Batch,
    now: i64,
) -> rusqlite::Result<Outcome> {
    let logger = id_sql(batch.logger);
    let current = tx
        .query_row(
            "SELECT mark_epoch, mark_seq FROM loggers WHERE id = ?1",
            [logger],
            |r| Ok(mark(r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let Some(current) = current else {
        // The logger was removed while uploading.
        return Ok(Outcome::Conflict { stored: None });
    };
    if current != after {
        return Ok(Outcome::Conflict { stored: current });
    }
    let Some(last) = batch.last() else {
        return Ok(Outcome::Stored);
    };
    if let Some(end) = closes {
        tx.execute(
            "INSERT INTO sensor_epochs (logger, epoch, next_seq, abandoned, closed_at) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![logger, end.epoch, to_sql(end.next_seq), end.abandoned, now],
        )?;
    }
    let epoch = batch.epoch;
    {
        let spec = channel_spec(&batch.channels);
        tx.execute(
            "INSERT OR IGNORE INTO sensor_channel_sets (spec) VALUES (?1)",
            [&spec],
        )?;
        let set: i64 = tx.query_row(
            "SELECT id FROM sensor_channel_sets WHERE spec = ?1",
            [&spec],
            |r| r.get(0),
        )?;
        let mut insert = tx.prepare_cached(
            "INSERT INTO sensor_readings (logger, epoch, seq, at, channel_set, vals) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        let mut vals = String::new();
        for r in batch.readings() {
            format_values(r.values, &mut vals);
            insert.execute(params![
                logger,
                epoch,
                to_sql(r.seq),
                to_sql(r.time),
                set,
                vals
            ])?;
        }
    }
    insert_extras(tx, logger, batch)?;
    let n = tx.execute(
        "UPDATE loggers SET mark_epoch = ?2, mark_seq = ?3, last_upload = ?4 WHERE id = ?1 AND mark_epoch IS ?5 AND mark_seq IS ?6",
        params![
            logger,
            last.epoch,
            to_sql(last.seq),
            now,
            after.map(|m| m.epoch),
            after.map(|m| to_sql(m.seq)),
        ],
    )?;
    if n != 1 {
        return Ok(Outcome::Conflict { stored: current });
    }
    Ok(Outcome::Stored)
}

/// Keeps `status` if it is newer, by (epoch, counter), than the stored one.
fn write_status(
    tx: &Connection,
    logger: LoggerId,
    stamp: StatusStamp,
    status: &Status,
    now: i64,
) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO sensor_status (logger, epoch, counter, battery_mv, battery_pct, firmware, at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
         ON CONFLICT (logger) DO UPDATE SET epoch = excluded.epoch, counter = excluded.counter, \
         battery_mv = excluded.battery_mv, battery_pct = excluded.battery_pct, \
         firmware = excluded.firmware, at = excluded.at \
         WHERE (excluded.epoch, excluded.counter) > (sensor_status.epoch, sensor_status.counter)",
        params![
            id_sql(logger),
            stamp.epoch,
            stamp.counter,
            status.battery_mv,
            status.battery_percent,
            firmware(status),
            now
        ],
    )?;
    Ok(())
}

/// The batch's gaps and alarms, inside the caller's transaction.
fn insert_extras(tx: &Connection, logger: i64, batch: &Batch) -> rusqlite::Result<()> {
    let epoch = batch.epoch;
    let mut gap = tx.prepare_cached(
        "INSERT INTO sensor_gaps (logger, epoch, seq, count) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for g in &batch.gaps {
        gap.execute(params![logger, epoch, to_sql(g.seq), to_sql(g.count)])?;
    }
    let mut alarm = tx.prepare_cached(
        "INSERT INTO sensor_alarms (logger, epoch, seq, channel, kind, value) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for a in &batch.alarms {
        let (kind, value) = alarm_kind(a.kind);
        alarm.execute(params![
            logger,
            epoch,
            to_sql(a.seq),
            a.channel,
            kind,
            value
        ])?;
    }
    Ok(())
}

pub(super) fn list(conn: &mut Connection) -> Result<Vec<LoggerRow>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT id, name, mark_epoch, mark_seq, last_upload, \
         (SELECT battery_pct FROM sensor_status s WHERE s.logger = loggers.id), \
         (SELECT firmware FROM sensor_status s WHERE s.logger = loggers.id), \
         (SELECT COUNT(*) FROM sensor_readings r WHERE r.logger = loggers.id) \
         FROM loggers ORDER BY id",
    )?;
    let rows = stmt
        .query_map([], |r| {
            Ok(LoggerRow {
                id: u64::try_from(r.get::<_, i64>(0)?).unwrap_or(0),
                name: r.get(1)?,
                stored: mark(r.get(2)?, r.get(3)?),
                last_upload: r.get(4)?,
                battery_percent: r.get(5)?,
                firmware: r.get(6)?,
                readings: r.get(7)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

pub(super) fn exists(conn: &mut Connection, logger: i64) -> Result<bool, StoreError> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM loggers WHERE id = ?1")?
        .exists([logger])?)
}

pub(super) fn readings(
    conn: &mut Connection,
    logger: i64,
    since: i64,
) -> Result<Vec<ReadingRow>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT r.at, r.epoch, r.seq, s.spec, r.vals FROM sensor_readings r \
         JOIN sensor_channel_sets s ON s.id = r.channel_set \
         WHERE r.logger = ?1 AND r.at >= ?2 ORDER BY r.at, r.epoch, r.seq",
    )?;
    let rows = stmt
        .query_map(params![logger, since], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, u32>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows
        .into_iter()
        .map(|(at, epoch, seq, spec, vals)| ReadingRow {
            at,
            epoch,
            seq: u64::try_from(seq).unwrap_or(0),
            channels: parse_spec(&spec),
            values: parse_values(&vals),
        })
        .collect())
}
