//! Issue 10, hole 9: rejected sensor connections must not make the server write without bound.
//! 60 uploads naming an unknown logger from one address (no credentials at all) used to add 60
//! security events and 60 audit-chain entries. Now the address is refused at accept after the
//! gate's threshold (20 by default), the failures are written as one counted event per source
//! and minute, and a logger from another address still uploads.
#![allow(clippy::disallowed_methods)] // a real clock

use fleetwire_sensor::{CloseReason, LoggerKey, RejectReason, SensorError};

mod common;
mod sensor_support;
use common::data_dir;
use sensor_support::{add_logger, batch, interrupt, serve, wake_from, write_config};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_failures_from_one_source_write_a_bounded_number_of_events() {
    let data = data_dir("sensor-rejections");
    write_config(&data, "");
    let (good, key) = add_logger(&data);
    let (mut server, addr) = serve(&data, &[]);

    let mut rejected = 0;
    let mut refused_at_accept = 0;
    for i in 0..60 {
        let w = wake_from(
            "127.0.0.1",
            addr,
            999_999,
            LoggerKey::from_bytes([7; 32]),
            vec![batch(999_999, 0, 5)],
        )
        .await;
        match w.reason {
            CloseReason::Error(SensorError::Rejected {
                reason: RejectReason::UnknownLogger,
            }) => {
                assert_eq!(
                    refused_at_accept, 0,
                    "attempt {i}: answered after a refusal"
                );
                rejected += 1;
            }
            CloseReason::Error(SensorError::PeerClosed) if w.received == 0 => {
                refused_at_accept += 1;
            }
            other => panic!("attempt {i}: {other:?}"),
        }
    }
    assert_eq!(
        (rejected, refused_at_accept),
        (20, 40),
        "the source is refused at accept after 20 failures"
    );

    // A logger behind another address is unaffected.
    let w = wake_from("127.0.0.2", addr, good, key, vec![batch(good, 0, 30)]).await;
    assert_eq!(w.reason, CloseReason::Finished, "{w:?}");
    assert_eq!(w.acks, 1);

    // Stop (the server writes what it aggregated), then count what the failures wrote.
    interrupt(server.id(), &mut server);
    let events = query(
        &data,
        "SELECT detail FROM security_events WHERE kind = 'logger_rejected'",
    );
    let audited: i64 = query(
        &data,
        "SELECT count(*) FROM auth_audit WHERE event LIKE '%logger_rejected%'",
    )[0]
    .parse()
    .unwrap();
    assert!(
        (1..=2).contains(&events.len()),
        "one counted event per source and minute, got {}: {events:?}",
        events.len()
    );
    assert_eq!(audited, i64::try_from(events.len()).unwrap());
    assert!(
        events[0].contains("127.0.0.1") && events[0].contains("unknown logger"),
        "{events:?}"
    );
    let counted: u64 = events
        .iter()
        .filter_map(|e| e.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    assert_eq!(counted, 20, "the events count every rejection: {events:?}");
    assert_eq!(
        cli_readings(&data, good),
        30,
        "the other source's readings are stored"
    );
    let _ = std::fs::remove_dir_all(&data);
}

fn cli_readings(data: &std::path::Path, logger: u64) -> usize {
    let out = common::cli(data, &["readings", &logger.to_string()]);
    out.lines().count() - 1
}

/// One text column of `sql`'s rows, from the store of `data`: the SQLite file, or the
/// PostgreSQL database its fleetwire.toml names (`FLEETWIRE_TEST_STORE=postgres`).
fn query(data: &std::path::Path, sql: &str) -> Vec<String> {
    let toml = std::fs::read_to_string(data.join("fleetwire.toml")).unwrap();
    if let Some(url) = toml.lines().find_map(|l| l.strip_prefix("url = ")) {
        let out = std::process::Command::new("psql")
            .arg(url.trim_matches('"'))
            .args(["-v", "ON_ERROR_STOP=1", "-qAt", "-c", sql])
            .output()
            .expect("psql");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        return String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect();
    }
    let db = rusqlite::Connection::open(data.join("fleetwire.db")).unwrap();
    let mut stmt = db.prepare(sql).unwrap();
    stmt.query_map([], |r| {
        Ok(match r.get_ref(0)? {
            rusqlite::types::ValueRef::Integer(n) => n.to_string(),
            v => v.as_str()?.to_owned(),
        })
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}
