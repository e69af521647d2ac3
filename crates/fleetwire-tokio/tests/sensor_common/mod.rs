#![allow(dead_code, unreachable_pub, clippy::disallowed_methods)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use fleetwire_sensor::cloud::{CloudConfig, LoggerRecord, StatusStamp};
use fleetwire_sensor::logger::LoggerConfig;
use fleetwire_sensor::{Batch, Channel, EpochEnd, LoggerId, LoggerKey, Mark, Status};
use fleetwire_tokio::sensor::{
    Limits, LoggerStore, LoggerTransport, SensorHandle, SensorServer, StoreError, StoreOutcome,
    Transport, UploadGate,
};
use fleetwire_tokio::tls;
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::sync::{Notify, oneshot};

/// An in-memory store with the same exactly-once rule as a database: readings keyed by
/// (logger, epoch, seq), written with the mark under one lock, conditional on the mark.
#[derive(Default)]
pub struct MemStore {
    pub keys: HashMap<LoggerId, LoggerKey>,
    pub data: Mutex<HashMap<LoggerId, Logged>>,
    /// If set, each write waits for this after it is durable (to cut the connection then).
    pub hold: Option<Arc<Gate>>,
}

#[derive(Default)]
pub struct Gate {
    pub written: Notify,
    pub release: Notify,
}

#[derive(Default, Debug)]
pub struct Logged {
    pub mark: Option<Mark>,
    pub closed: Vec<EpochEnd>,
    pub status: Option<(StatusStamp, Status)>,
    /// (epoch, seq) → values; inserting an existing key is a bug (counted).
    pub readings: std::collections::BTreeMap<(u32, u64), Vec<Option<i32>>>,
    pub double_writes: u64,
    pub writes: u64,
}

pub struct Shared(pub Arc<MemStore>);

impl LoggerStore for Shared {
    async fn lookup(&self, logger: LoggerId) -> Result<Option<LoggerRecord>, StoreError> {
        let Some(key) = self.0.keys.get(&logger) else {
            return Ok(None);
        };
        let data = self.0.data.lock().unwrap();
        let logged = data.get(&logger);
        Ok(Some(LoggerRecord {
            key: key.clone(),
            stored: logged.and_then(|l| l.mark),
            closed: logged.map(|l| l.closed.clone()).unwrap_or_default(),
            status: logged.and_then(|l| l.status.map(|(s, _)| s)),
            settings: None,
            server_time: 1_750_100_000,
        }))
    }

    async fn store_batch(
        &self,
        after: Option<Mark>,
        closes: Option<EpochEnd>,
        batch: Batch,
    ) -> Result<StoreOutcome, StoreError> {
        {
            let mut data = self.0.data.lock().unwrap();
            let logged = data.entry(batch.logger).or_default();
            if logged.mark != after {
                return Ok(StoreOutcome::Conflict {
                    stored: logged.mark,
                });
            }
            logged.closed.extend(closes);
            for r in batch.readings() {
                if logged
                    .readings
                    .insert((batch.epoch, r.seq), r.values.to_vec())
                    .is_some()
                {
                    logged.double_writes += 1;
                }
            }
            logged.mark = batch.last().max(logged.mark);
            logged.writes += 1;
        }
        if let Some(gate) = &self.0.hold {
            gate.written.notify_one();
            gate.release.notified().await;
        }
        Ok(StoreOutcome::Stored)
    }

    async fn store_status(
        &self,
        logger: LoggerId,
        stamp: StatusStamp,
        status: Status,
    ) -> Result<(), StoreError> {
        let mut data = self.0.data.lock().unwrap();
        let logged = data.entry(logger).or_default();
        if logged.status.is_none_or(|(s, _)| stamp > s) {
            logged.status = Some((stamp, status));
        }
        Ok(())
    }
}

pub const MASTER: [u8; 32] = [7; 32];

pub fn key(n: u64) -> LoggerKey {
    LoggerKey::derive(&MASTER, LoggerId(n))
}

pub struct TestServer {
    pub addr: SocketAddr,
    pub handle: SensorHandle,
    pub fingerprint: [u8; 32],
    pub store: Arc<MemStore>,
    pub stop: Option<oneshot::Sender<()>>,
}

pub async fn start(loggers: &[u64], hold: Option<Arc<Gate>>) -> TestServer {
    start_with(loggers, hold, Limits::default(), None, false).await
}

/// A server with the given limits and gate; `plaintext` skips TLS.
pub async fn start_with(
    loggers: &[u64],
    hold: Option<Arc<Gate>>,
    limits: Limits,
    gate: Option<Arc<dyn UploadGate>>,
    plaintext: bool,
) -> TestServer {
    start_configured(
        loggers,
        hold,
        CloudConfig::default(),
        limits,
        gate,
        plaintext,
    )
    .await
}

/// A server with the given per-connection config, limits and gate; `plaintext` skips TLS.
pub async fn start_configured(
    loggers: &[u64],
    hold: Option<Arc<Gate>>,
    cloud: CloudConfig,
    limits: Limits,
    gate: Option<Arc<dyn UploadGate>>,
    plaintext: bool,
) -> TestServer {
    let store = Arc::new(MemStore {
        keys: loggers.iter().map(|&n| (LoggerId(n), key(n))).collect(),
        hold,
        ..MemStore::default()
    });
    let cert = rcgen::generate_simple_self_signed(vec!["fleetwire.local".into()]).unwrap();
    let der = cert.cert.der().clone();
    let pk = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der()));
    let fingerprint = tls::fingerprint(&der);
    let transport = if plaintext {
        Transport::DangerPlaintext
    } else {
        Transport::Tls(tls::server_config(vec![der], pk).unwrap())
    };
    let mut server = SensorServer::bind(
        "127.0.0.1:0".parse().unwrap(),
        transport,
        Arc::new(cloud),
        limits,
        Shared(store.clone()),
    )
    .await
    .unwrap();
    if let Some(gate) = gate {
        server = server.with_gate(gate);
    }
    let addr = server.local_addr().unwrap();
    let handle = server.handle();
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(server.run(async move {
        let _ = rx.await;
    }));
    TestServer {
        addr,
        handle,
        fingerprint,
        store,
        stop: Some(tx),
    }
}

pub fn logger_tls(fingerprint: [u8; 32]) -> LoggerTransport {
    LoggerTransport::Tls {
        config: tls::pinned_client_config(fingerprint).unwrap(),
        server_name: ServerName::try_from("fleetwire.local").unwrap(),
    }
}

pub fn config(n: u64, key: LoggerKey) -> Arc<LoggerConfig> {
    Arc::new(LoggerConfig::new(LoggerId(n), key))
}

/// `count` readings of two channels from `first_seq`, five minutes apart.
pub fn batch(n: u64, first_seq: u64, count: u64) -> Batch {
    Batch {
        logger: LoggerId(n),
        epoch: 0,
        first_seq,
        start: 1_750_000_000 + first_seq * 300,
        interval_s: 300,
        channels: vec![Channel::TEMPERATURE_DECI_C, Channel::HUMIDITY_DECI_PCT],
        values: (first_seq..first_seq + count)
            .flat_map(|s| {
                let s = i32::try_from(s).unwrap();
                [Some(200 + s % 9), Some(450 - s % 5)]
            })
            .collect(),
        ..Batch::default()
    }
}
