//! Sensor loggers: the upload listener (TCP 14354, TLS), exactly-once storage of readings, logger
//! keys in the store, and the `logger` and `readings` commands.
//!
//! **Keys.** A logger authenticates every batch with an HMAC key shared with the cloud, so the
//! cloud must hold the key itself (not a verifier): `logger add` draws a random 256-bit key,
//! keeps it in the store's `loggers` table and prints it (or writes `id,key` lines to a 0600
//! file) once. The key reaches the firmware at manufacture or on the bench: the provisioning tool
//! writes the id and the key into the logger's protected flash over its wired interface (USB or
//! serial), never over the air. Because the store holds live keys, the store file and its backups
//! are secrets.
//!
//! **Exactly once.** `sensor_readings` has `UNIQUE (logger, epoch, seq)`, and a batch's readings,
//! gaps, alarms and the logger's new mark are written in one `IMMEDIATE` transaction that first
//! checks that the stored mark is still the one the batch follows.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Subcommand;
use fleetwire_sensor::cloud::{CloudConfig, LoggerRecord};
use fleetwire_sensor::{AlarmKind, Batch, Channel, ChannelKind, LoggerId, LoggerKey, Mark, Unit};
use fleetwire_tokio::sensor::{
    Limits, LoggerStore, Notice, SensorServer, StoreError, StoreOutcome, Transport,
};
use ring::rand::{SecureRandom, SystemRandom};
use rusqlite::{OptionalExtension, TransactionBehavior, params};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::error::RecvError;

use crate::serve::{Ctx, Service};
use crate::store::Store;
use crate::unix_now;

/// `[sensor]` in fleetwire.toml: sensor uploads (TCP 14354).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct SensorSettings {
    /// Where loggers connect.
    pub(crate) listen: std::net::SocketAddr,
    /// Connections held at once.
    pub(crate) max_connections: usize,
    /// How long one connection may take, TLS handshake included, in seconds.
    pub(crate) deadline_secs: u64,
    /// Serve without TLS. Readings still carry their MAC, but anyone on the path can read them.
    pub(crate) danger_plaintext: bool,
}

impl Default for SensorSettings {
    fn default() -> Self {
        Self {
            listen: std::net::SocketAddr::from(([0, 0, 0, 0], 14354)),
            max_connections: 10_000,
            deadline_secs: 30,
            danger_plaintext: false,
        }
    }
}

/// The tables of this module.
pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS loggers (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL DEFAULT '',
    key         BLOB NOT NULL,
    created_at  INTEGER NOT NULL,
    mark_epoch  INTEGER,
    mark_seq    INTEGER,
    last_upload INTEGER,
    battery_mv  INTEGER,
    battery_pct INTEGER,
    firmware    TEXT
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
";

/// Looks keys up and writes batches, off the async executor.
struct SqlLoggers(Arc<Store>);

impl LoggerStore for SqlLoggers {
    async fn lookup(&self, logger: LoggerId) -> Result<Option<LoggerRecord>, StoreError> {
        let store = self.0.clone();
        tokio::task::spawn_blocking(move || lookup(&store, logger))
            .await
            .map_err(|e| StoreError(e.to_string()))?
            .map_err(|e| StoreError(e.to_string()))
    }

    async fn store_batch(
        &self,
        after: Option<Mark>,
        batch: Batch,
    ) -> Result<StoreOutcome, StoreError> {
        let store = self.0.clone();
        tokio::task::spawn_blocking(move || write_batch(&store, after, &batch))
            .await
            .map_err(|e| StoreError(e.to_string()))?
            .map_err(|e| StoreError(e.to_string()))
    }
}

/// Starts the sensor upload listener (TCP 14354) and its notice logger.
pub(crate) async fn start(ctx: &Ctx) -> Result<Service, String> {
    let settings = &ctx.config.sensor;
    let transport = if settings.danger_plaintext {
        tracing::warn!("sensor.danger_plaintext is set: readings travel unencrypted");
        Transport::DangerPlaintext
    } else {
        Transport::Tls(ctx.tls.clone())
    };
    let config = CloudConfig {
        deadline: std::time::Duration::from_secs(settings.deadline_secs.max(1)),
        ..CloudConfig::default()
    };
    let limits = Limits {
        max_connections: settings.max_connections.max(1),
        ..Limits::default()
    };
    let server = SensorServer::bind(
        settings.listen,
        transport,
        Arc::new(config),
        limits,
        SqlLoggers(ctx.store.clone()),
    )
    .await
    .map_err(|e| format!("cannot listen on {}: {e}", settings.listen))?;
    let addr = server.local_addr().map_err(|e| e.to_string())?;
    let mode = if settings.danger_plaintext {
        "PLAINTEXT"
    } else {
        "TLS"
    };
    println!("sensor uploads on {addr} (TCP, {mode})");
    let logger = tokio::spawn(log_notices(server.handle(), ctx.store.clone()));
    let mut stop = ctx.shutdown.clone();
    Ok(tokio::spawn(async move {
        let result = server
            .run(async move {
                let _ = stop.wait_for(|s| *s).await;
            })
            .await;
        logger.abort();
        result.map_err(|e| e.to_string())
    }))
}

/// Logs notices; failed authentications go to the security events table.
async fn log_notices(handle: fleetwire_tokio::sensor::SensorHandle, store: Arc<Store>) {
    let mut notices = handle.subscribe();
    loop {
        let notice = match notices.recv().await {
            Ok(n) => n,
            Err(RecvError::Lagged(n)) => {
                tracing::debug!("sensor notice log skipped {n}");
                continue;
            }
            Err(RecvError::Closed) => return,
        };
        match notice {
            Notice::Stored {
                logger,
                last,
                readings,
            } => tracing::debug!(%logger, ?last, readings, "stored"),
            Notice::Closed {
                logger,
                peer,
                reason: fleetwire_sensor::CloseReason::Error(e),
                ..
            } => {
                tracing::info!(?logger, %peer, "sensor upload failed: {e}");
                if matches!(
                    e,
                    fleetwire_sensor::SensorError::BadMac { .. }
                        | fleetwire_sensor::SensorError::UnknownLogger { .. }
                ) {
                    let store = store.clone();
                    let detail = format!(
                        "logger {}: {e}",
                        logger.map_or("?".into(), |l| l.to_string())
                    );
                    let row = (
                        unix_now(),
                        "logger_rejected",
                        None,
                        Some(peer.to_string()),
                        detail,
                    );
                    let _ = tokio::task::spawn_blocking(move || store.record_events(&[row])).await;
                }
            }
            Notice::StoreFailed { logger, error } => {
                tracing::error!(%logger, "sensor store failed: {error}");
            }
            Notice::Status { logger, status } => {
                let store = store.clone();
                let _ = tokio::task::spawn_blocking(move || {
                    store.conn().execute(
                        "UPDATE loggers SET battery_mv = ?2, battery_pct = ?3, firmware = ?4 WHERE id = ?1",
                        params![
                            id_sql(logger),
                            status.battery_mv,
                            status.battery_percent,
                            format!("{}.{}.{}", status.firmware.major, status.firmware.minor, status.firmware.patch)
                        ],
                    )
                })
                .await;
            }
            other => tracing::trace!("{other:?}"),
        }
    }
}

fn id_sql(id: LoggerId) -> i64 {
    i64::try_from(id.0).unwrap_or(i64::MAX)
}

fn lookup(store: &Store, logger: LoggerId) -> rusqlite::Result<Option<LoggerRecord>> {
    let row = store
        .conn()
        .query_row(
            "SELECT key, mark_epoch, mark_seq FROM loggers WHERE id = ?1",
            [id_sql(logger)],
            |r| {
                Ok((
                    r.get::<_, Vec<u8>>(0)?,
                    r.get::<_, Option<u32>>(1)?,
                    r.get::<_, Option<i64>>(2)?,
                ))
            },
        )
        .optional()?;
    Ok(row.and_then(|(key, epoch, seq)| {
        let key = <[u8; 32]>::try_from(key.as_slice()).ok()?;
        Some(LoggerRecord {
            key: LoggerKey::from_bytes(key),
            stored: mark(epoch, seq),
            settings: None,
            server_time: u64::try_from(unix_now()).unwrap_or(0),
        })
    }))
}

fn mark(epoch: Option<u32>, seq: Option<i64>) -> Option<Mark> {
    Some(Mark {
        epoch: epoch?,
        seq: u64::try_from(seq?).ok()?,
    })
}

/// The conditional write: readings, gaps, alarms and the new mark, or nothing.
fn write_batch(
    store: &Store,
    after: Option<Mark>,
    batch: &Batch,
) -> rusqlite::Result<StoreOutcome> {
    let logger = id_sql(batch.logger);
    let mut conn = store.conn();
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let current = tx
        .query_row(
            "SELECT mark_epoch, mark_seq FROM loggers WHERE id = ?1",
            [logger],
            |r| Ok(mark(r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let Some(current) = current else {
        // The logger was removed while uploading.
        return Ok(StoreOutcome::Conflict { stored: None });
    };
    if current != after {
        return Ok(StoreOutcome::Conflict { stored: current });
    }
    let Some(last) = batch.last() else {
        return Ok(StoreOutcome::Stored);
    };
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
            vals.clear();
            for (i, v) in r.values.iter().enumerate() {
                if i > 0 {
                    vals.push(',');
                }
                if let Some(v) = v {
                    let _ = write!(vals, "{v}");
                }
            }
            insert.execute(params![
                logger,
                epoch,
                i64::try_from(r.seq).unwrap_or(i64::MAX),
                i64::try_from(r.time).unwrap_or(i64::MAX),
                set,
                vals
            ])?;
        }
    }
    insert_extras(&tx, logger, batch)?;
    let n = tx.execute(
        "UPDATE loggers SET mark_epoch = ?2, mark_seq = ?3, last_upload = ?4 WHERE id = ?1 AND mark_epoch IS ?5 AND mark_seq IS ?6",
        params![
            logger,
            last.epoch,
            i64::try_from(last.seq).unwrap_or(i64::MAX),
            unix_now(),
            after.map(|m| m.epoch),
            after.map(|m| i64::try_from(m.seq).unwrap_or(i64::MAX)),
        ],
    )?;
    if n != 1 {
        return Ok(StoreOutcome::Conflict { stored: current });
    }
    tx.commit()?;
    Ok(StoreOutcome::Stored)
}

/// The batch's gaps and alarms, inside the caller's transaction.
fn insert_extras(
    tx: &rusqlite::Transaction<'_>,
    logger: i64,
    batch: &Batch,
) -> rusqlite::Result<()> {
    let epoch = batch.epoch;
    let mut gap = tx.prepare_cached(
        "INSERT INTO sensor_gaps (logger, epoch, seq, count) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for g in &batch.gaps {
        gap.execute(params![
            logger,
            epoch,
            i64::try_from(g.seq).unwrap_or(i64::MAX),
            i64::try_from(g.count).unwrap_or(i64::MAX)
        ])?;
    }
    let mut alarm = tx.prepare_cached(
        "INSERT INTO sensor_alarms (logger, epoch, seq, channel, kind, value) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for a in &batch.alarms {
        let (kind, value) = match a.kind {
            AlarmKind::High { value } => ("high", Some(value)),
            AlarmKind::Low { value } => ("low", Some(value)),
            AlarmKind::Cleared => ("cleared", None),
            AlarmKind::ProbeFault => ("probe_fault", None),
            AlarmKind::ProbeDisconnected => ("probe_disconnected", None),
        };
        alarm.execute(params![
            logger,
            epoch,
            i64::try_from(a.seq).unwrap_or(i64::MAX),
            a.channel,
            kind,
            value
        ])?;
    }
    Ok(())
}

/// `kind:unit:exponent` per channel, comma-separated.
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

#[derive(Subcommand)]
pub(crate) enum LoggerCommand {
    /// Provision loggers; prints each id and key once, for the provisioning tool to write into
    /// the logger's flash.
    Add {
        /// A name for the operator.
        #[arg(long, default_value = "")]
        name: String,
        /// How many loggers to provision.
        #[arg(long, default_value_t = 1)]
        count: usize,
        /// Write `id,key` lines to this file (created, mode 0600) instead of printing them.
        #[arg(long)]
        secrets_out: Option<PathBuf>,
    },
    /// List loggers with their stored mark, last upload and battery.
    List,
}

/// Runs a `logger` command.
pub(crate) fn cli(cmd: LoggerCommand, store: &Store) -> Result<(), String> {
    match cmd {
        LoggerCommand::Add {
            name,
            count,
            secrets_out,
        } => {
            if count == 0 {
                return Err("--count must be at least 1".into());
            }
            let rng = SystemRandom::new();
            let mut made = Vec::with_capacity(count);
            let mut conn = store.conn();
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(|e| e.to_string())?;
            {
                let next: i64 = tx
                    .query_row("SELECT COALESCE(MAX(id), 1000) + 1 FROM loggers", [], |r| {
                        r.get(0)
                    })
                    .map_err(|e| e.to_string())?;
                let mut insert = tx
                    .prepare(
                        "INSERT INTO loggers (id, name, key, created_at) VALUES (?1, ?2, ?3, ?4)",
                    )
                    .map_err(|e| e.to_string())?;
                for i in 0..count {
                    let mut key = [0u8; 32];
                    rng.fill(&mut key).map_err(|_| "no system randomness")?;
                    let id = next + i64::try_from(i).map_err(|e| e.to_string())?;
                    insert
                        .execute(params![id, name, &key[..], unix_now()])
                        .map_err(|e| e.to_string())?;
                    made.push((id, hex::encode(key)));
                }
            }
            tx.commit().map_err(|e| e.to_string())?;
            drop(conn);
            if let Some(path) = secrets_out {
                let lines = made.iter().fold(String::new(), |mut acc, (id, k)| {
                    let _ = writeln!(acc, "{id},{k}");
                    acc
                });
                crate::secret_file::write(
                    &path,
                    lines.as_bytes(),
                    crate::secret_file::Overwrite::Refuse,
                )
                .map_err(|e| e.to_string())?;
                println!("{count} loggers added; ids and keys in {}", path.display());
            } else {
                for (id, key) in &made {
                    println!("logger id: {id}\nkey:       {key}");
                }
                println!(
                    "Write the id and key into the logger's flash with the provisioning tool now: \
                     this command does not show the key again."
                );
            }
            Ok(())
        }
        LoggerCommand::List => list(store),
    }
}

/// `logger list`.
fn list(store: &Store) -> Result<(), String> {
    let conn = store.conn();
    let mut stmt = conn
        .prepare(
            "SELECT id, name, mark_epoch, mark_seq, last_upload, battery_pct, firmware, \
             (SELECT COUNT(*) FROM sensor_readings r WHERE r.logger = loggers.id) \
             FROM loggers ORDER BY id",
        )
        .map_err(|e| e.to_string())?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                mark(r.get(2)?, r.get(3)?),
                r.get::<_, Option<i64>>(4)?,
                r.get::<_, Option<i64>>(5)?,
                r.get::<_, Option<String>>(6)?,
                r.get::<_, i64>(7)?,
            ))
        })
        .map_err(|e| e.to_string())?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    println!(
        "{:<8} {:<12} {:<14} {:<10} {:<12} {:<8} FIRMWARE",
        "ID", "NAME", "STORED MARK", "READINGS", "LAST UPLOAD", "BATTERY"
    );
    let now = unix_now();
    for (id, name, mark, last, battery, firmware, readings) in &rows {
        println!(
            "{:<8} {:<12} {:<14} {:<10} {:<12} {:<8} {}",
            id,
            name,
            mark.map_or("-".into(), |m| format!("{}:{}", m.epoch, m.seq)),
            readings,
            last.map_or("never".into(), |t| format!("{}s ago", (now - t).max(0))),
            battery.map_or("-".into(), |b| format!("{b}%")),
            firmware.as_deref().unwrap_or("-"),
        );
    }
    println!("{} loggers", rows.len());
    Ok(())
}

/// `readings` output formats.
#[derive(Clone, Copy, clap::ValueEnum)]
pub(crate) enum Format {
    /// One line per reading and channel: time,epoch,seq,quantity,value,unit.
    Csv,
    /// An array of readings with their values in real units.
    Json,
}

/// Arguments of `readings`.
#[derive(clap::Args)]
pub(crate) struct ReadingsArgs {
    /// The logger id.
    logger: u64,
    /// Only readings at or after this time: unix seconds or RFC 3339
    /// (`2025-06-15T12:00:00Z`, `2025-06-15T14:00:00+02:00`).
    #[arg(long, value_parser = parse_time)]
    since: Option<i64>,
    /// Output format.
    #[arg(long, value_enum, default_value = "csv")]
    format: Format,
}

/// Runs `readings`: what a logger uploaded, in real units.
pub(crate) fn readings(args: &ReadingsArgs, store: &Store) -> Result<(), String> {
    let logger = i64::try_from(args.logger).map_err(|_| "logger id out of range")?;
    let conn = store.conn();
    let known: Option<i64> = conn
        .query_row("SELECT id FROM loggers WHERE id = ?1", [logger], |r| {
            r.get(0)
        })
        .optional()
        .map_err(|e| e.to_string())?;
    if known.is_none() {
        return Err(format!(
            "no logger {} (see `fleetwire-server logger list`)",
            args.logger
        ));
    }
    let mut stmt = conn
        .prepare(
            "SELECT r.at, r.epoch, r.seq, s.spec, r.vals FROM sensor_readings r \
             JOIN sensor_channel_sets s ON s.id = r.channel_set \
             WHERE r.logger = ?1 AND r.at >= ?2 ORDER BY r.at, r.epoch, r.seq",
        )
        .map_err(|e| e.to_string())?;
    let rows = stmt
        .query_map(params![logger, args.since.unwrap_or(i64::MIN)], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, u32>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
            ))
        })
        .map_err(|e| e.to_string())?;
    let mut out = String::new();
    let mut specs: std::collections::HashMap<String, Vec<Channel>> =
        std::collections::HashMap::new();
    if matches!(args.format, Format::Csv) {
        out.push_str("time,epoch,seq,quantity,value,unit\n");
    } else {
        out.push('[');
    }
    let mut first = true;
    for row in rows {
        let (at, epoch, seq, spec, vals) = row.map_err(|e| e.to_string())?;
        let channels = specs
            .entry(spec)
            .or_insert_with_key(|s| parse_spec(s))
            .clone();
        let time = format_rfc3339(at);
        let values: Vec<(Channel, Option<String>)> = channels
            .iter()
            .zip(vals.split(','))
            .map(|(c, v)| (*c, v.parse::<i64>().ok().map(|v| decimal(v, c.exponent))))
            .collect();
        match args.format {
            Format::Csv => {
                for (c, v) in &values {
                    let _ = writeln!(
                        out,
                        "{time},{epoch},{seq},{},{},{}",
                        quantity(c.kind),
                        v.as_deref().unwrap_or(""),
                        unit(c.unit)
                    );
                }
            }
            Format::Json => {
                if !first {
                    out.push(',');
                }
                let _ = write!(
                    out,
                    "\n  {{\"time\":\"{time}\",\"unix\":{at},\"epoch\":{epoch},\"seq\":{seq},\"values\":["
                );
                for (i, (c, v)) in values.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    let _ = write!(
                        out,
                        "{{\"quantity\":\"{}\",\"value\":{},\"unit\":\"{}\"}}",
                        quantity(c.kind),
                        v.as_deref().unwrap_or("null"),
                        unit(c.unit)
                    );
                }
                out.push_str("]}");
            }
        }
        first = false;
    }
    if matches!(args.format, Format::Json) {
        out.push_str(if first { "]\n" } else { "\n]\n" });
    }
    print!("{out}");
    Ok(())
}

/// `v × 10^exponent` as an exact decimal string.
fn decimal(v: i64, exponent: i8) -> String {
    if exponent >= 0 {
        let mut s = v.to_string();
        if v != 0 {
            s.extend(std::iter::repeat_n('0', exponent.unsigned_abs() as usize));
        }
        return s;
    }
    let places = exponent.unsigned_abs() as usize;
    let digits = v.unsigned_abs().to_string();
    let digits = format!("{digits:0>width$}", width = places + 1);
    let (int, frac) = digits.split_at(digits.len() - places);
    format!("{}{int}.{frac}", if v < 0 { "-" } else { "" })
}

fn quantity(kind: ChannelKind) -> String {
    match kind {
        ChannelKind::TEMPERATURE => "temperature".into(),
        ChannelKind::HUMIDITY => "humidity".into(),
        ChannelKind::PRESSURE => "pressure".into(),
        ChannelKind::CO2 => "co2".into(),
        ChannelKind::VOLTAGE => "voltage".into(),
        ChannelKind::CURRENT => "current".into(),
        ChannelKind::LIGHT => "light".into(),
        ChannelKind(other) => format!("kind{other}"),
    }
}

fn unit(unit: Unit) -> String {
    match unit {
        Unit::CELSIUS => "°C".into(),
        Unit::PERCENT_RH => "%RH".into(),
        Unit::HECTOPASCAL => "hPa".into(),
        Unit::PPM => "ppm".into(),
        Unit::VOLT => "V".into(),
        Unit::AMPERE => "A".into(),
        Unit::LUX => "lx".into(),
        Unit(other) => format!("unit{other}"),
    }
}

#[allow(clippy::many_single_char_names)] // date arithmetic's usual names
/// Unix seconds, or RFC 3339 with `Z` or a numeric offset (fractional seconds ignored).
fn parse_time(s: &str) -> Result<i64, String> {
    let s = s.trim();
    if let Ok(n) = s.parse::<i64>() {
        return Ok(n);
    }
    let bad = || {
        format!(
            "`{s}` is neither unix seconds nor RFC 3339 (e.g. 2025-06-15T12:00:00Z or 2025-06-15T14:00:00+02:00)"
        )
    };
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return Err(bad());
    }
    let num = |r: std::ops::Range<usize>| -> Result<i64, String> {
        s.get(r)
            .filter(|d| d.bytes().all(|c| c.is_ascii_digit()))
            .and_then(|d| d.parse().ok())
            .ok_or_else(bad)
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month)
        || !(1..=days_in_month(year, month)).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return Err(bad());
    }
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
        rest = &frac[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6 && (rest.starts_with('+') || rest.starts_with('-')) => {
            let (h, m) = (num(s.len() - 5..s.len() - 3)?, num(s.len() - 2..s.len())?);
            if rest.as_bytes()[3] != b':' || h > 23 || m > 59 {
                return Err(bad());
            }
            let o = h * 3600 + m * 60;
            if rest.starts_with('-') { -o } else { o }
        }
        _ => return Err(bad()),
    };
    Ok(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offset)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Unix seconds as `YYYY-MM-DDTHH:MM:SSZ`.
#[allow(clippy::many_single_char_names)] // date arithmetic's usual names
fn format_rfc3339(t: i64) -> String {
    let (days, secs) = (t.div_euclid(86_400), t.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_and_format() {
        assert_eq!(parse_time("1750000000"), Ok(1_750_000_000));
        assert_eq!(parse_time("2025-06-15T15:06:40Z"), Ok(1_750_000_000));
        assert_eq!(parse_time("2025-06-15T17:06:40+02:00"), Ok(1_750_000_000));
        assert_eq!(parse_time("2025-06-15T15:06:40.123Z"), Ok(1_750_000_000));
        assert_eq!(parse_time("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(parse_time("2024-02-29T00:00:00Z"), Ok(1_709_164_800));
        assert!(parse_time("2025-02-29T00:00:00Z").is_err());
        assert!(parse_time("yesterday").unwrap_err().contains("RFC 3339"));
        assert!(parse_time("2025-06-15T15:06:40").is_err());
        assert_eq!(format_rfc3339(1_750_000_000), "2025-06-15T15:06:40Z");
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00Z");
        for t in [0, 951_782_400, 1_709_164_800, 4_102_444_800] {
            assert_eq!(parse_time(&format_rfc3339(t)), Ok(t));
        }
    }

    #[test]
    fn decimals_are_exact() {
        assert_eq!(decimal(215, -1), "21.5");
        assert_eq!(decimal(-5, -1), "-0.5");
        assert_eq!(decimal(7, -2), "0.07");
        assert_eq!(decimal(0, -1), "0.0");
        assert_eq!(decimal(412, 0), "412");
        assert_eq!(decimal(3, 2), "300");
    }
}
