//! Sensor loggers end to end: provision loggers with `logger add`, serve with every listener on
//! an ephemeral port, upload with the library's logger driver over TLS, resend after a lost ack,
//! and read the values back in real units with `readings` (CSV and JSON).
#![allow(clippy::disallowed_methods, clippy::too_many_lines)] // a real clock; one story

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use fleetwire_sensor::logger::LoggerConfig;
use fleetwire_sensor::{
    Batch, Channel, CloseReason, LoggerId, LoggerKey, Mark, RejectReason, SensorError,
};
use fleetwire_tokio::sensor::{LoggerTransport, upload};
use fleetwire_tokio::tls;
use rustls::pki_types::ServerName;

mod common;
use common::{BIN, cli, data_dir};

fn cli_err(data: &Path, args: &[&str]) -> String {
    let out = Command::new(BIN)
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .output()
        .unwrap();
    assert!(!out.status.success(), "{args:?} should fail");
    String::from_utf8(out.stderr).unwrap()
}

fn key_from_hex(s: &str) -> LoggerKey {
    let mut key = [0u8; 32];
    hex::decode_to_slice(s.trim(), &mut key).unwrap();
    LoggerKey::from_bytes(key)
}

/// Readings from 2025-06-15T15:06:40Z, five minutes apart: temperature in tenths of °C and
/// humidity in whole percent.
fn batch(logger: u64, first_seq: u64, count: u64) -> Batch {
    Batch {
        logger: LoggerId(logger),
        epoch: 0,
        first_seq,
        start: 1_750_000_000 + first_seq * 300,
        interval_s: 300,
        channels: vec![Channel::TEMPERATURE_DECI_C, Channel::HUMIDITY_PCT],
        values: (first_seq..first_seq + count)
            .flat_map(|s| {
                let s = i32::try_from(s).unwrap();
                [Some(-15 + s), Some(40 + s % 3)]
            })
            .collect(),
        ..Batch::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provision_upload_resend_and_read_back() {
    let data = data_dir("sensor-e2e");
    common::write_config(
        &data,
        "[session]\nlisten = \"127.0.0.1:0\"\n\
         [http]\nhttps_listen = \"127.0.0.1:0\"\nhttp_listen = \"127.0.0.1:0\"\n\
         [sensor]\nlisten = \"127.0.0.1:0\"\n[transfer]\nlisten = \"127.0.0.1:0\"\n",
    );
    let added = cli(&data, &["logger", "add", "--name", "cold-room"]);
    let line = |prefix: &str| {
        added
            .lines()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap()
            .trim()
            .to_owned()
    };
    let id: u64 = line("logger id:").parse().unwrap();
    let key = key_from_hex(&line("key:"));
    cli(
        &data,
        &[
            "logger",
            "add",
            "--count",
            "3",
            "--secrets-out",
            data.join("loggers.csv").to_str().unwrap(),
        ],
    );
    let csv = std::fs::read_to_string(data.join("loggers.csv")).unwrap();
    assert_eq!(csv.lines().count(), 3);
    let (other_id, _) = csv.lines().next().unwrap().split_once(',').unwrap();
    let other_id: u64 = other_id.parse().unwrap();
    let list = cli(&data, &["logger", "list"]);
    assert!(
        list.contains("cold-room") && list.contains("4 loggers"),
        "{list}"
    );

    let mut server = Command::new(BIN)
        .arg("--data-dir")
        .arg(&data)
        .arg("serve")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(server.stdout.take().unwrap());
    let (mut fingerprint, mut addr) = (None, None);
    let mut text = String::new();
    while !text.starts_with("data directory") {
        text.clear();
        assert!(
            stdout.read_line(&mut text).unwrap() > 0,
            "server exited early"
        );
        if let Some(fp) = text.strip_prefix("certificate fingerprint (SHA-256): ") {
            fingerprint = tls::parse_fingerprint(fp.trim());
        }
        if let Some(rest) = text.strip_prefix("sensor uploads on ") {
            addr = rest.split_whitespace().next().and_then(|a| a.parse().ok());
        }
    }
    let addr: std::net::SocketAddr = addr.expect("sensor listener printed");
    let transport = LoggerTransport::Tls {
        config: tls::pinned_client_config(fingerprint.unwrap()).unwrap(),
        server_name: ServerName::try_from("fleetwire.local").unwrap(),
    };
    let config = Arc::new(LoggerConfig::new(LoggerId(id), key.clone()));
    let within = Duration::from_secs(30);

    // First wake: two batches, 30 readings.
    let report = tokio::time::timeout(
        within,
        upload(
            addr,
            &transport,
            config.clone(),
            vec![batch(id, 0, 20), batch(id, 20, 10)],
        ),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(report.reason, CloseReason::Finished);
    assert_eq!(report.stored, [Mark { epoch: 0, seq: 29 }]);

    // Next wake as if the ack was lost: the same batches plus ten new readings.
    let report = tokio::time::timeout(
        within,
        upload(
            addr,
            &transport,
            config.clone(),
            vec![batch(id, 0, 20), batch(id, 20, 10), batch(id, 30, 10)],
        ),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(report.reason, CloseReason::Finished);
    assert_eq!(report.stored, [Mark { epoch: 0, seq: 39 }]);

    // Another logger's id with this logger's key: rejected, nothing stored.
    let wrong = Arc::new(LoggerConfig::new(LoggerId(other_id), key));
    let report = tokio::time::timeout(
        within,
        upload(addr, &transport, wrong, vec![batch(other_id, 0, 5)]),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(
        report.reason,
        CloseReason::Error(SensorError::Rejected {
            reason: RejectReason::BadMac
        })
    );

    // Read back in real units: 40 readings exactly once, two channels each.
    let out = cli(&data, &["readings", &id.to_string(), "--format", "csv"]);
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("time,epoch,seq,quantity,value,unit"));
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 80, "{out}");
    assert_eq!(rows[0], "2025-06-15T15:06:40Z,0,0,temperature,-1.5,°C");
    assert_eq!(rows[1], "2025-06-15T15:06:40Z,0,0,humidity,40,%RH");
    assert_eq!(rows[79], "2025-06-15T18:21:40Z,0,39,humidity,40,%RH");
    let seqs: std::collections::BTreeSet<&str> =
        rows.iter().map(|r| r.split(',').nth(2).unwrap()).collect();
    assert_eq!(seqs.len(), 40);

    // --since in RFC 3339 and in unix seconds agree; JSON carries the same values.
    let since = cli(
        &data,
        &[
            "readings",
            &id.to_string(),
            "--since",
            "2025-06-15T20:21:40+02:00",
            "--format",
            "json",
        ],
    );
    let json: serde_json::Value = serde_json::from_str(&since).unwrap();
    let readings = json.as_array().unwrap();
    assert_eq!(readings.len(), 1, "{since}");
    assert_eq!(readings[0]["seq"], 39);
    assert_eq!(readings[0]["values"][0]["value"].as_f64(), Some(2.4));
    assert_eq!(readings[0]["values"][0]["unit"], "°C");
    let unix = cli(
        &data,
        &[
            "readings",
            &id.to_string(),
            "--since",
            "1750011700",
            "--format",
            "json",
        ],
    );
    assert_eq!(since, unix);

    // Bad input gets a clear error.
    let err = cli_err(
        &data,
        &["readings", &id.to_string(), "--since", "yesterday"],
    );
    assert!(err.contains("RFC 3339"), "{err}");
    let err = cli_err(&data, &["readings", "999999"]);
    assert!(err.contains("no logger 999999"), "{err}");
    let list = cli(&data, &["logger", "list"]);
    assert!(list.contains("0:39"), "{list}");

    Command::new("kill")
        .args(["-INT", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(server.wait().unwrap().success());
    let _ = std::fs::remove_dir_all(&data);
}
