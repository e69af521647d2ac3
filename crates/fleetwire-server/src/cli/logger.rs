//! `logger add`, `logger list` and `readings`: provisioning loggers and reading back what they
//! uploaded, in real units.

use std::fmt::Write as _;
use std::path::PathBuf;

use clap::Subcommand;
use fleetwire_sensor::{Channel, ChannelKind, LoggerId, Unit};

use crate::service::loggers;
use crate::store::Store;
use crate::unix_now;
use crate::util::civil::{civil_from_days, days_from_civil};

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
pub(crate) async fn run(cmd: LoggerCommand, store: &Store) -> Result<(), String> {
    match cmd {
        LoggerCommand::Add {
            name,
            count,
            secrets_out,
        } => {
            let made = loggers::provision(store, &name, count, unix_now())
                .await
                .map_err(|e| e.to_string())?;
            if let Some(path) = secrets_out {
                let lines = made.iter().fold(String::new(), |mut acc, (id, k)| {
                    let _ = writeln!(acc, "{id},{}", hex::encode(k));
                    acc
                });
                crate::util::secret_file::write(
                    &path,
                    lines.as_bytes(),
                    crate::util::secret_file::Overwrite::Refuse,
                )
                .map_err(|e| e.to_string())?;
                println!("{count} loggers added; ids and keys in {}", path.display());
            } else {
                for (id, key) in &made {
                    println!("logger id: {id}\nkey:       {}", hex::encode(key));
                }
                println!(
                    "Write the id and key into the logger's flash with the provisioning tool now: \
                     this command does not show the key again."
                );
            }
            Ok(())
        }
        LoggerCommand::List => list(store).await,
    }
}

/// `logger list`.
async fn list(store: &Store) -> Result<(), String> {
    let rows = store.loggers().list().await.map_err(|e| e.to_string())?;
    println!(
        "{:<8} {:<12} {:<14} {:<10} {:<12} {:<8} FIRMWARE",
        "ID", "NAME", "STORED MARK", "READINGS", "LAST UPLOAD", "BATTERY"
    );
    let now = unix_now();
    for row in &rows {
        println!(
            "{:<8} {:<12} {:<14} {:<10} {:<12} {:<8} {}",
            row.id,
            row.name,
            row.stored
                .map_or("-".into(), |m| format!("{}:{}", m.epoch, m.seq)),
            row.readings,
            row.last_upload
                .map_or("never".into(), |t| format!("{}s ago", (now - t).max(0))),
            row.battery_percent.map_or("-".into(), |b| format!("{b}%")),
            row.firmware.as_deref().unwrap_or("-"),
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
pub(crate) async fn readings(args: &ReadingsArgs, store: &Store) -> Result<(), String> {
    if i64::try_from(args.logger).is_err() {
        return Err("logger id out of range".into());
    }
    let logger = LoggerId(args.logger);
    if !store
        .loggers()
        .exists(logger)
        .await
        .map_err(|e| e.to_string())?
    {
        return Err(format!(
            "no logger {} (see `fleetwire-server logger list`)",
            args.logger
        ));
    }
    let rows = store
        .loggers()
        .readings(logger, args.since.unwrap_or(i64::MIN))
        .await
        .map_err(|e| e.to_string())?;
    let mut out = String::new();
    if matches!(args.format, Format::Csv) {
        out.push_str("time,epoch,seq,quantity,value,unit\n");
    } else {
        out.push('[');
    }
    let mut first = true;
    for row in rows {
        let (at, epoch, seq) = (row.at, row.epoch, row.seq);
        let time = format_rfc3339(at);
        let values: Vec<(Channel, Option<String>)> = row
            .channels
            .iter()
            .zip(row.values.iter())
            .map(|(c, v)| (*c, v.map(|v| decimal(v, c.exponent))))
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

/// Unix seconds as `YYYY-MM-DDTHH:MM:SSZ`.
fn format_rfc3339(t: i64) -> String {
    let (days, secs) = (t.div_euclid(86_400), t.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
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
