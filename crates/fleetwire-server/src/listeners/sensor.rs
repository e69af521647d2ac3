//! Sensor uploads (TCP 14354, TLS): fleetwire-tokio's `SensorServer` driving fleetwire-sensor's
//! cloud machine, with the store behind [`crate::service::loggers`]: lookups straight from the
//! repository, writes through the group committer (acknowledged only once durable), and the
//! gate that refuses sources that keep failing to authenticate.

use std::sync::Arc;

use fleetwire_sensor::cloud::{CloudConfig, LoggerRecord, StatusStamp};
use fleetwire_sensor::{Batch, CloseReason, EpochEnd, LoggerId, LoggerKey, Mark, Status};
use fleetwire_tokio::sensor::lockout::LockoutUploadGate;
use fleetwire_tokio::sensor::{
    Limits, LoggerStore, Notice, OpenGate, SensorServer, StoreError, StoreOutcome, Transport,
    UploadGate,
};
use fleetwire_tokio::source::Source;
use ring::rand::{SecureRandom, SystemRandom};
use tokio::sync::broadcast::error::RecvError;

use crate::app::{App, Service};
use crate::config::SensorSettings;
use crate::service::loggers::{
    CLOSED_EPOCHS_LOOKED_UP, GroupCommit, MAX_REPORTED_SOURCES, Rejections, rejection_reason,
    report_rejections,
};
use crate::store::Store;
use crate::store::loggers::{Outcome, Write};
use crate::unix_now;

/// Group committers on PostgreSQL (each holds one pooled connection while it commits).
const POSTGRES_WRITERS: usize = 4;

/// Starts the sensor upload listener (TCP 14354) and its notice logger.
pub(crate) async fn start(app: &App) -> Result<Service, String> {
    let settings = &app.config.sensor;
    let transport = if settings.danger_plaintext {
        tracing::warn!("sensor.danger_plaintext is set: readings travel unencrypted");
        Transport::DangerPlaintext
    } else {
        Transport::Tls(app.tls.clone())
    };
    let config = CloudConfig {
        deadline: std::time::Duration::from_secs(settings.deadline_secs.max(1)),
        ..CloudConfig::default()
    };
    let limits = Limits {
        max_connections: settings.max_connections.max(1),
        max_connections_per_source: settings.max_connections_per_source.max(1),
        ..Limits::default()
    };
    let writers = if app.store.kind() == "sqlite" {
        1
    } else {
        POSTGRES_WRITERS.min(app.config.store.pool_size.max(2) - 1)
    };
    let store = Loggers {
        store: app.store.clone(),
        writer: GroupCommit::start(&app.store, writers),
    };
    let server = SensorServer::bind(settings.listen, transport, Arc::new(config), limits, store)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", settings.listen))?
        .with_gate(upload_gate(settings)?);
    let addr = server.local_addr().map_err(|e| e.to_string())?;
    let mode = if settings.danger_plaintext {
        "PLAINTEXT"
    } else {
        "TLS"
    };
    println!("sensor uploads on {addr} (TCP, {mode})");
    let report = std::time::Duration::from_secs(settings.rejection_report_secs.max(1));
    let mut logger = tokio::spawn(log_notices(
        server.handle().subscribe(),
        app.store.clone(),
        report,
    ));
    let mut stop = app.shutdown.clone();
    Ok(tokio::spawn(async move {
        let result = server
            .run(async move {
                let _ = stop.wait_for(|s| *s).await;
            })
            .await;
        // The notice logger ends when the last connection is gone; it writes what it counted.
        if tokio::time::timeout(std::time::Duration::from_secs(5), &mut logger)
            .await
            .is_err()
        {
            logger.abort();
        }
        result.map_err(|e| e.to_string())
    }))
}

/// What the sensor driver asks of the store: lookups from the repository, writes through the
/// group committer.
struct Loggers {
    store: Store,
    writer: GroupCommit,
}

fn driver_error(e: &crate::store::StoreError) -> StoreError {
    StoreError(e.to_string())
}

impl LoggerStore for Loggers {
    async fn lookup(&self, logger: LoggerId) -> Result<Option<LoggerRecord>, StoreError> {
        let found = self
            .store
            .loggers()
            .lookup(logger, CLOSED_EPOCHS_LOOKED_UP)
            .await
            .map_err(|e| driver_error(&e))?;
        Ok(found.map(|s| LoggerRecord {
            key: LoggerKey::from_bytes(s.key),
            stored: s.stored,
            closed: s.closed,
            status: s.status,
            settings: None,
            server_time: u64::try_from(unix_now()).unwrap_or(0),
        }))
    }

    async fn store_batch(
        &self,
        after: Option<Mark>,
        closes: Option<EpochEnd>,
        batch: Batch,
    ) -> Result<StoreOutcome, StoreError> {
        self.writer
            .write(Write::Batch {
                after,
                closes,
                batch,
            })
            .await
            .map(outcome)
            .map_err(|e| driver_error(&e))
    }

    async fn store_status(
        &self,
        logger: LoggerId,
        stamp: StatusStamp,
        status: Status,
    ) -> Result<(), StoreError> {
        self.writer
            .write(Write::Status {
                logger,
                stamp,
                status,
            })
            .await
            .map(|_| ())
            .map_err(|e| driver_error(&e))
    }
}

fn outcome(o: Outcome) -> StoreOutcome {
    match o {
        Outcome::Stored => StoreOutcome::Stored,
        Outcome::Conflict { stored } => StoreOutcome::Conflict { stored },
    }
}

/// The gate the `[sensor]` settings ask for.
fn upload_gate(settings: &SensorSettings) -> Result<Arc<dyn UploadGate>, String> {
    if settings.failed_uploads_per_source == 0 {
        return Ok(Arc::new(OpenGate));
    }
    let mut secret = [0u8; 16];
    SystemRandom::new()
        .fill(&mut secret)
        .map_err(|_| "no randomness for the sensor gate")?;
    let gate = LockoutUploadGate::for_uploads(
        settings.failed_uploads_per_source,
        settings.max_tracked_sources,
        secret,
    )
    .map_err(|e| format!("[sensor] failed_uploads_per_source: {e}"))?;
    Ok(Arc::new(gate))
}

/// Logs notices; counts rejected connections per source and writes them as counted security
/// events once per `report` (and when the listener stops).
async fn log_notices(
    mut notices: tokio::sync::broadcast::Receiver<Notice>,
    store: Store,
    report: std::time::Duration,
) {
    let mut rejections = Rejections::new(MAX_REPORTED_SOURCES, unix_now());
    let mut tick = tokio::time::interval(report);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        let notice = tokio::select! {
            n = notices.recv() => n,
            _ = tick.tick() => {
                report_rejections(&mut rejections, &store, unix_now()).await;
                continue;
            }
        };
        let notice = match notice {
            Ok(n) => n,
            Err(RecvError::Lagged(n)) => {
                tracing::debug!("sensor notice log skipped {n}");
                continue;
            }
            Err(RecvError::Closed) => {
                report_rejections(&mut rejections, &store, unix_now()).await;
                return;
            }
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
                authenticated,
                reason: CloseReason::Error(e),
                stats,
                ..
            } => {
                tracing::debug!(?logger, %peer, "sensor upload failed: {e}");
                if !authenticated {
                    if let Some(why) = rejection_reason(&e, stats.bytes_received) {
                        rejections.rejected(Source::of_peer(peer), why, logger);
                    }
                }
            }
            Notice::Refused { peer, why } => {
                tracing::debug!(%peer, "sensor connection refused: {why}");
                rejections.refused(Source::of_peer(peer));
            }
            Notice::HandshakeFailed { peer, why, counted } => {
                tracing::debug!(%peer, "sensor TLS handshake failed: {why}");
                if counted {
                    rejections.rejected(Source::of_peer(peer), "TLS handshake", None);
                }
            }
            Notice::StoreFailed { logger, error } => {
                tracing::error!(%logger, "sensor store failed: {error}");
            }
            other => tracing::trace!("{other:?}"),
        }
    }
}
