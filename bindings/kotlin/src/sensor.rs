//! Sensor records and the upload session (fleetwire-sensor), as conversions only.
//!
//! Codec functions encode whole frames (`version | type | len32be | body`) and decode frame
//! bodies (the 6-byte header already removed by the host's framing). The machines take and
//! return raw stream bytes and frame them themselves.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use fleetwire_sensor as fsn;
use fleetwire_sensor::{cloud, codec, logger};

use crate::{Clock, array, lock};

/// Everything that can go wrong in the sensor domain: the bytes or the peer (a closed session
/// carries the same text in its `Closed` event), or the caller. The message is the Rust one.
#[derive(Debug, Clone, thiserror::Error, uniffi::Error)]
#[uniffi(flat_error)]
pub enum SensorError {
    /// The bytes were malformed.
    #[error("{0}")]
    Decode(String),
    /// A batch or acknowledgement failed its MAC: wrong key or tampered bytes.
    #[error("{0}")]
    BadMac(String),
    /// The cloud has no key for this logger.
    #[error("{0}")]
    UnknownLogger(String),
    /// A later batch named another logger.
    #[error("{0}")]
    LoggerMismatch(String),
    /// A message this side never accepts, or not now.
    #[error("{0}")]
    UnexpectedMessage(String),
    /// An acknowledgement out of order.
    #[error("{0}")]
    AckOutOfOrder(String),
    /// The cloud refused the upload.
    #[error("{0}")]
    Rejected(String),
    /// The logger's radio-on deadline passed.
    #[error("{0}")]
    RadioDeadline(String),
    /// The cloud's connection deadline passed.
    #[error("{0}")]
    Timeout(String),
    /// The peer closed early.
    #[error("{0}")]
    PeerClosed(String),
    /// The store could not write a batch.
    #[error("{0}")]
    StorageFailed(String),
    /// Too many bytes buffered while waiting for the key.
    #[error("{0}")]
    TooMuchBuffered(String),
    /// Caller bug: a batch, settings or record breaks a rule of the data model, or a byte array
    /// has the wrong length.
    #[error("{0}")]
    InvalidInput(String),
    /// Caller bug: a logger session needs at least one batch.
    #[error("{0}")]
    NoBatches(String),
    /// Caller bug: a batch of another logger.
    #[error("{0}")]
    WrongLogger(String),
    /// Caller bug: no key lookup is pending for this logger.
    #[error("{0}")]
    NoKeyPending(String),
    /// Caller bug: the batch is not waiting for storage.
    #[error("{0}")]
    UnknownBatch(String),
    /// Something this binding does not know yet.
    #[error("{0}")]
    Other(String),
}

/// The kind of a [`SensorCloseReason`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum SensorCloseKind {
    /// The exchange completed.
    Finished,
    Decode,
    BadMac,
    UnknownLogger,
    LoggerMismatch,
    UnexpectedMessage,
    AckOutOfOrder,
    Rejected,
    RadioDeadline,
    Timeout,
    PeerClosed,
    StorageFailed,
    TooMuchBuffered,
    Other,
}

/// Why a sensor session ended.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SensorCloseReason {
    pub kind: SensorCloseKind,
    /// The Rust message ("finished" for a normal end).
    pub message: String,
}

fn error_kind(e: &fsn::SensorError) -> SensorCloseKind {
    use fsn::SensorError as E;
    match e {
        E::Decode(_) => SensorCloseKind::Decode,
        E::BadMac { .. } => SensorCloseKind::BadMac,
        E::UnknownLogger { .. } => SensorCloseKind::UnknownLogger,
        E::LoggerMismatch { .. } => SensorCloseKind::LoggerMismatch,
        E::UnexpectedMessage { .. } => SensorCloseKind::UnexpectedMessage,
        E::AckOutOfOrder { .. } => SensorCloseKind::AckOutOfOrder,
        E::Rejected { .. } => SensorCloseKind::Rejected,
        E::RadioDeadline { .. } => SensorCloseKind::RadioDeadline,
        E::Timeout { .. } => SensorCloseKind::Timeout,
        E::PeerClosed => SensorCloseKind::PeerClosed,
        E::StorageFailed { .. } => SensorCloseKind::StorageFailed,
        E::TooMuchBuffered { .. } => SensorCloseKind::TooMuchBuffered,
        _ => SensorCloseKind::Other,
    }
}

fn close_reason(r: &fsn::CloseReason) -> SensorCloseReason {
    match r {
        fsn::CloseReason::Error(e) => SensorCloseReason {
            kind: error_kind(e),
            message: e.to_string(),
        },
        fsn::CloseReason::Finished => SensorCloseReason {
            kind: SensorCloseKind::Finished,
            message: "finished".into(),
        },
        other => SensorCloseReason {
            kind: SensorCloseKind::Other,
            message: format!("{other:?}"),
        },
    }
}

impl From<fsn::SensorError> for SensorError {
    fn from(e: fsn::SensorError) -> Self {
        let m = e.to_string();
        match error_kind(&e) {
            SensorCloseKind::Decode => Self::Decode(m),
            SensorCloseKind::BadMac => Self::BadMac(m),
            SensorCloseKind::UnknownLogger => Self::UnknownLogger(m),
            SensorCloseKind::LoggerMismatch => Self::LoggerMismatch(m),
            SensorCloseKind::UnexpectedMessage => Self::UnexpectedMessage(m),
            SensorCloseKind::AckOutOfOrder => Self::AckOutOfOrder(m),
            SensorCloseKind::Rejected => Self::Rejected(m),
            SensorCloseKind::RadioDeadline => Self::RadioDeadline(m),
            SensorCloseKind::Timeout => Self::Timeout(m),
            SensorCloseKind::PeerClosed => Self::PeerClosed(m),
            SensorCloseKind::StorageFailed => Self::StorageFailed(m),
            SensorCloseKind::TooMuchBuffered => Self::TooMuchBuffered(m),
            SensorCloseKind::Finished | SensorCloseKind::Other => Self::Other(m),
        }
    }
}

impl From<fsn::DecodeError> for SensorError {
    fn from(e: fsn::DecodeError) -> Self {
        fsn::SensorError::from(e).into()
    }
}

impl From<fsn::ApiMisuse> for SensorError {
    fn from(e: fsn::ApiMisuse) -> Self {
        let m = e.to_string();
        match e {
            fsn::ApiMisuse::InvalidBatch { .. } | fsn::ApiMisuse::InvalidSettings { .. } => {
                Self::InvalidInput(m)
            }
            fsn::ApiMisuse::NoBatches => Self::NoBatches(m),
            fsn::ApiMisuse::WrongLogger { .. } => Self::WrongLogger(m),
            fsn::ApiMisuse::NoKeyPending { .. } => Self::NoKeyPending(m),
            fsn::ApiMisuse::UnknownBatch { .. } => Self::UnknownBatch(m),
            _ => Self::Other(m),
        }
    }
}

impl From<crate::InvalidInputError> for SensorError {
    fn from(e: crate::InvalidInputError) -> Self {
        Self::InvalidInput(e.to_string())
    }
}

fn key(bytes: &[u8]) -> Result<fsn::LoggerKey, SensorError> {
    Ok(fsn::LoggerKey::from_bytes(array("logger key", bytes)?))
}

fn tag(bytes: &[u8]) -> Result<fsn::Tag, SensorError> {
    Ok(array("batch tag", bytes)?)
}

// ---------------------------------------------------------------------------------------------
// Data model

/// A measured quantity: kind (1 temperature, 2 humidity, 3 pressure, 4 CO2, 5 voltage,
/// 6 current, 7 light), unit (1 °C, 2 %RH, 3 hPa, 4 ppm, 5 V, 6 A, 7 lx) and the decimal
/// exponent of one step (-1: tenths).
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Record)]
pub struct SensorChannel {
    pub kind: u8,
    pub unit: u8,
    pub exponent: i8,
}

/// `count` slots from `seq` on were not logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Record)]
pub struct SensorGap {
    pub seq: u64,
    pub count: u64,
}

/// What an alarm says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum SensorAlarmKind {
    High { value: i32 },
    Low { value: i32 },
    Cleared,
    ProbeFault,
    ProbeDisconnected,
}

/// An alarm at slot `seq` on channel index `channel`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Record)]
pub struct SensorAlarm {
    pub seq: u64,
    pub channel: u8,
    pub kind: SensorAlarmKind,
}

/// Battery and firmware. `counter` orders statuses: the cloud keeps the highest (epoch, counter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Record)]
pub struct SensorStatus {
    pub counter: u32,
    pub battery_mv: u16,
    pub battery_percent: u8,
    pub firmware_major: u8,
    pub firmware_minor: u8,
    pub firmware_patch: u16,
}

/// A slot number: `epoch` (bumped when the logger's counter restarts) and `seq`. As an ack's
/// mark: slots `0..=seq` of that epoch, nothing of any other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Record)]
pub struct SensorMark {
    pub epoch: u32,
    pub seq: u64,
}

/// How an epoch ended: slots `0..nextSeq` of `epoch` were all sent; `abandoned`: the logger lost
/// its numbering there (later slots are lost). A batch's `previous`, a store's closed epochs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Record)]
pub struct SensorEpochEnd {
    pub epoch: u32,
    pub next_seq: u64,
    pub abandoned: bool,
}

/// Orders statuses: the newest has the highest (epoch, counter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Record)]
pub struct SensorStatusStamp {
    pub epoch: u32,
    pub counter: u32,
}

fn end_in(e: SensorEpochEnd) -> fsn::EpochEnd {
    fsn::EpochEnd {
        epoch: e.epoch,
        next_seq: e.next_seq,
        abandoned: e.abandoned,
    }
}

fn end_out(e: fsn::EpochEnd) -> SensorEpochEnd {
    SensorEpochEnd {
        epoch: e.epoch,
        next_seq: e.next_seq,
        abandoned: e.abandoned,
    }
}

/// A run of readings at a fixed interval from `start` (unix seconds), slot `firstSeq` on;
/// `values` holds one entry per channel per slot (null: no value).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SensorBatch {
    pub logger: u64,
    pub epoch: u32,
    pub first_seq: u64,
    pub start: u64,
    pub interval_s: u32,
    pub channels: Vec<SensorChannel>,
    pub values: Vec<Option<i32>>,
    #[uniffi(default = [])]
    pub gaps: Vec<SensorGap>,
    #[uniffi(default = [])]
    pub alarms: Vec<SensorAlarm>,
    #[uniffi(default = None)]
    pub status: Option<SensorStatus>,
    /// Set on the first batch of a new epoch: how the previous epoch ended.
    #[uniffi(default = None)]
    pub previous: Option<SensorEpochEnd>,
}

/// Alarm thresholds for channel index `channel`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Record)]
pub struct SensorThreshold {
    pub channel: u8,
    pub low: Option<i32>,
    pub high: Option<i32>,
}

/// Logger settings pushed by the cloud.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SensorSettings {
    pub version: u32,
    pub interval_s: u32,
    pub thresholds: Vec<SensorThreshold>,
}

/// One upload message.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SensorUpload {
    pub batch: SensorBatch,
    pub settings_version: u32,
    pub last: bool,
}

/// One acknowledgement: everything through `stored` is durable.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SensorAck {
    pub batch_index: u32,
    pub stored: Option<SensorMark>,
    pub server_time: u64,
    pub settings: Option<SensorSettings>,
}

fn mark_out(m: fsn::Mark) -> SensorMark {
    SensorMark {
        epoch: m.epoch,
        seq: m.seq,
    }
}

fn mark_in(m: SensorMark) -> fsn::Mark {
    fsn::Mark {
        epoch: m.epoch,
        seq: m.seq,
    }
}

fn batch_out(b: fsn::Batch) -> SensorBatch {
    SensorBatch {
        logger: b.logger.0,
        epoch: b.epoch,
        first_seq: b.first_seq,
        start: b.start,
        interval_s: b.interval_s,
        channels: b
            .channels
            .iter()
            .map(|c| SensorChannel {
                kind: c.kind.0,
                unit: c.unit.0,
                exponent: c.exponent,
            })
            .collect(),
        values: b.values,
        gaps: b
            .gaps
            .iter()
            .map(|g| SensorGap {
                seq: g.seq,
                count: g.count,
            })
            .collect(),
        alarms: b
            .alarms
            .iter()
            .map(|a| SensorAlarm {
                seq: a.seq,
                channel: a.channel,
                kind: match a.kind {
                    fsn::AlarmKind::High { value } => SensorAlarmKind::High { value },
                    fsn::AlarmKind::Low { value } => SensorAlarmKind::Low { value },
                    fsn::AlarmKind::Cleared => SensorAlarmKind::Cleared,
                    fsn::AlarmKind::ProbeFault => SensorAlarmKind::ProbeFault,
                    fsn::AlarmKind::ProbeDisconnected => SensorAlarmKind::ProbeDisconnected,
                },
            })
            .collect(),
        status: b.status.map(status_out),
        previous: b.previous.map(end_out),
    }
}

fn status_out(s: fsn::Status) -> SensorStatus {
    SensorStatus {
        counter: s.counter,
        battery_mv: s.battery_mv,
        battery_percent: s.battery_percent,
        firmware_major: s.firmware.major,
        firmware_minor: s.firmware.minor,
        firmware_patch: s.firmware.patch,
    }
}

fn batch_in(b: SensorBatch) -> fsn::Batch {
    fsn::Batch {
        logger: fsn::LoggerId(b.logger),
        epoch: b.epoch,
        first_seq: b.first_seq,
        start: b.start,
        interval_s: b.interval_s,
        channels: b
            .channels
            .iter()
            .map(|c| fsn::Channel {
                kind: fsn::ChannelKind(c.kind),
                unit: fsn::Unit(c.unit),
                exponent: c.exponent,
            })
            .collect(),
        values: b.values,
        gaps: b
            .gaps
            .iter()
            .map(|g| fsn::Gap {
                seq: g.seq,
                count: g.count,
            })
            .collect(),
        alarms: b
            .alarms
            .iter()
            .map(|a| fsn::Alarm {
                seq: a.seq,
                channel: a.channel,
                kind: match a.kind {
                    SensorAlarmKind::High { value } => fsn::AlarmKind::High { value },
                    SensorAlarmKind::Low { value } => fsn::AlarmKind::Low { value },
                    SensorAlarmKind::Cleared => fsn::AlarmKind::Cleared,
                    SensorAlarmKind::ProbeFault => fsn::AlarmKind::ProbeFault,
                    SensorAlarmKind::ProbeDisconnected => fsn::AlarmKind::ProbeDisconnected,
                },
            })
            .collect(),
        status: b.status.map(|s| fsn::Status {
            counter: s.counter,
            battery_mv: s.battery_mv,
            battery_percent: s.battery_percent,
            firmware: fsn::Firmware {
                major: s.firmware_major,
                minor: s.firmware_minor,
                patch: s.firmware_patch,
            },
        }),
        previous: b.previous.map(end_in),
    }
}

fn settings_out(s: fsn::Settings) -> SensorSettings {
    SensorSettings {
        version: s.version,
        interval_s: s.interval_s,
        thresholds: s
            .thresholds
            .iter()
            .map(|t| SensorThreshold {
                channel: t.channel,
                low: t.low,
                high: t.high,
            })
            .collect(),
    }
}

fn settings_in(s: SensorSettings) -> fsn::Settings {
    fsn::Settings {
        version: s.version,
        interval_s: s.interval_s,
        thresholds: s
            .thresholds
            .iter()
            .map(|t| fsn::Threshold {
                channel: t.channel,
                low: t.low,
                high: t.high,
            })
            .collect(),
    }
}

// ---------------------------------------------------------------------------------------------
// Codec

/// The per-logger key: HMAC-SHA256(master, label || logger id), 32 bytes.
#[uniffi::export]
pub fn sensor_logger_key_derive(master: Vec<u8>, logger: u64) -> Result<Vec<u8>, SensorError> {
    let master = array("master key", &master)?;
    Ok(fsn::LoggerKey::derive(&master, fsn::LoggerId(logger))
        .to_bytes()
        .to_vec())
}

/// An encoded upload frame and its tag (the matching ack is bound to the tag).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SensorEncodedUpload {
    pub frame: Vec<u8>,
    pub tag: Vec<u8>,
}

/// A decoded message and its 16-byte tag.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SensorDecodedUpload {
    pub upload: SensorUpload,
    pub tag: Vec<u8>,
}

/// A decoded (not yet verified) acknowledgement and its tag.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SensorDecodedAck {
    pub ack: SensorAck,
    pub tag: Vec<u8>,
}

/// Encodes an upload frame under the logger's 32-byte key.
#[uniffi::export]
pub fn sensor_encode_upload(
    key: Vec<u8>,
    upload: SensorUpload,
) -> Result<SensorEncodedUpload, SensorError> {
    let key = self::key(&key)?;
    let upload = codec::Upload {
        batch: batch_in(upload.batch),
        settings_version: upload.settings_version,
        last: upload.last,
    };
    let mut frame = Vec::new();
    let tag = codec::encode_upload(&mut frame, &key, &upload)?;
    Ok(SensorEncodedUpload {
        frame,
        tag: tag.to_vec(),
    })
}

/// Checks an upload body's tag with the key (`BadMac` on a wrong key or changed byte), then
/// decodes it.
#[uniffi::export]
pub fn sensor_decode_upload(
    body: Vec<u8>,
    key: Vec<u8>,
) -> Result<SensorDecodedUpload, SensorError> {
    let key = self::key(&key)?;
    let (u, tag) = codec::decode_upload(&body, &key)?;
    Ok(SensorDecodedUpload {
        upload: SensorUpload {
            batch: batch_out(u.batch),
            settings_version: u.settings_version,
            last: u.last,
        },
        tag: tag.to_vec(),
    })
}

/// The logger an upload body claims (unauthenticated; for the key lookup).
#[uniffi::export]
pub fn sensor_upload_logger(body: Vec<u8>) -> Result<u64, SensorError> {
    Ok(codec::upload_logger(&body)?.0)
}

/// Encodes an ack frame bound to the tag of the upload it answers.
#[uniffi::export]
pub fn sensor_encode_ack(
    key: Vec<u8>,
    batch_tag: Vec<u8>,
    ack: SensorAck,
) -> Result<Vec<u8>, SensorError> {
    let key = self::key(&key)?;
    let batch_tag = tag(&batch_tag)?;
    let ack = codec::Ack {
        batch_index: ack.batch_index,
        stored: ack.stored.map(mark_in),
        server_time: ack.server_time,
        settings: ack.settings.map(settings_in),
    };
    let mut frame = Vec::new();
    codec::encode_ack(&mut frame, &key, &batch_tag, &ack)?;
    Ok(frame)
}

/// Decodes an ack body without checking its tag (see `sensorVerifyAck`).
#[uniffi::export]
pub fn sensor_decode_ack(body: Vec<u8>) -> Result<SensorDecodedAck, SensorError> {
    let (a, tag) = codec::decode_ack_unverified(&body)?;
    Ok(SensorDecodedAck {
        ack: SensorAck {
            batch_index: a.batch_index,
            stored: a.stored.map(mark_out),
            server_time: a.server_time,
            settings: a.settings.map(settings_out),
        },
        tag: tag.to_vec(),
    })
}

/// True if an ack body's tag verifies with the key and the answered upload's tag.
#[uniffi::export]
pub fn sensor_verify_ack(body: Vec<u8>, key: Vec<u8>, batch_tag: Vec<u8>) -> bool {
    match (self::key(&key), tag(&batch_tag)) {
        (Ok(k), Ok(t)) => codec::verify_ack(&body, &k, &t),
        _ => false,
    }
}

// ---------------------------------------------------------------------------------------------
// Machines

/// Where a sensor session is (logger: `AwaitingAcks`, `Closed`; cloud: the rest too).
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum SensorState {
    AwaitingAcks,
    AwaitingUpload,
    AwaitingKey,
    Receiving,
    Closed,
    Other,
}

/// What the logger application must act on.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum LoggerEvent {
    /// Slots `0..=stored.seq` of epoch `stored.epoch` (the answered upload's epoch) are durable
    /// in the cloud: free exactly those, nothing of any other epoch.
    Acked {
        batch_index: u32,
        stored: Option<SensorMark>,
        server_time: u64,
    },
    /// Newer settings: apply and persist them.
    Settings {
        settings: SensorSettings,
    },
    /// The session ended (flush `pollTransmit`, then radio off). Exactly once.
    Closed {
        reason: SensorCloseReason,
    },
    Other {
        description: String,
    },
}

/// Optional logger settings; null keeps the core default.
#[derive(Debug, Clone, Default, uniffi::Record)]
pub struct LoggerOptions {
    /// The settings version the logger runs (default 0).
    #[uniffi(default = None)]
    pub settings_version: Option<u32>,
    /// Longest the radio may stay on (default 20,000 ms).
    #[uniffi(default = None)]
    pub radio_deadline_ms: Option<u64>,
    /// Largest frame accepted (default 4096).
    #[uniffi(default = None)]
    pub max_frame_len: Option<u32>,
}

struct LoggerInner {
    machine: logger::LoggerSession,
    clock: Clock,
}

/// One upload connection, logger side: every batch goes out in the first flight.
#[derive(uniffi::Object)]
pub struct LoggerSession {
    inner: Mutex<LoggerInner>,
}

#[uniffi::export]
impl LoggerSession {
    /// Starts a connection uploading `batches` (at least one) under the 32-byte key.
    #[uniffi::constructor(default(options = None))]
    pub fn new(
        logger: u64,
        key: Vec<u8>,
        now_ms: u64,
        batches: Vec<SensorBatch>,
        options: Option<LoggerOptions>,
    ) -> Result<Arc<Self>, SensorError> {
        let mut config = logger::LoggerConfig::new(fsn::LoggerId(logger), self::key(&key)?);
        let o = options.unwrap_or_default();
        if let Some(v) = o.settings_version {
            config.settings_version = v;
        }
        if let Some(ms) = o.radio_deadline_ms {
            config.radio_deadline = Duration::from_millis(ms);
        }
        if let Some(n) = o.max_frame_len {
            config.max_frame_len = n;
        }
        let mut clock = Clock::new(now_ms);
        let now = clock.at(now_ms);
        let batches = batches.into_iter().map(batch_in).collect();
        let machine = logger::LoggerSession::new(Arc::new(config), now, batches)?;
        Ok(Arc::new(Self {
            inner: Mutex::new(LoggerInner { machine, clock }),
        }))
    }

    /// Bytes from the cloud (any split); throws once on a fatal error.
    pub fn handle_input(&self, now_ms: u64, data: Vec<u8>) -> Result<(), SensorError> {
        let mut g = lock(&self.inner);
        let now = g.clock.at(now_ms);
        Ok(g.machine.handle_input(now, &data)?)
    }

    pub fn handle_timeout(&self, now_ms: u64) {
        let mut g = lock(&self.inner);
        let now = g.clock.at(now_ms);
        g.machine.handle_timeout(now);
    }

    /// The transport ended (the cloud closed the connection or it broke).
    pub fn handle_close(&self, now_ms: u64) {
        let mut g = lock(&self.inner);
        let now = g.clock.at(now_ms);
        g.machine.handle_close(now);
    }

    /// Deprecated: the old name of `handleClose`, kept so existing callers build.
    pub fn handle_peer_closed(&self, now_ms: u64) {
        self.handle_close(now_ms);
    }

    /// Bytes to send, or null.
    pub fn poll_transmit(&self) -> Option<Vec<u8>> {
        let mut buf = Vec::new();
        lock(&self.inner)
            .machine
            .poll_transmit(&mut buf)
            .map(|_| buf)
    }

    pub fn poll_timeout(&self) -> Option<u64> {
        let g = lock(&self.inner);
        g.machine.poll_timeout().map(|t| g.clock.ms(t))
    }

    pub fn poll_event(&self) -> Option<LoggerEvent> {
        let event = lock(&self.inner).machine.poll_event()?;
        Some(match event {
            logger::Event::Acked {
                batch_index,
                stored,
                server_time,
            } => LoggerEvent::Acked {
                batch_index,
                stored: stored.map(mark_out),
                server_time,
            },
            logger::Event::Settings(s) => LoggerEvent::Settings {
                settings: settings_out(s),
            },
            logger::Event::Closed { reason } => LoggerEvent::Closed {
                reason: close_reason(&reason),
            },
            other => LoggerEvent::Other {
                description: format!("{other:?}"),
            },
        })
    }

    pub fn state(&self) -> SensorState {
        match lock(&self.inner).machine.state() {
            logger::State::AwaitingAcks => SensorState::AwaitingAcks,
            logger::State::Closed => SensorState::Closed,
            _ => SensorState::Other,
        }
    }

    /// What the cloud acknowledged as durable, one mark per epoch in epoch order: free slots
    /// `0..=seq` of each mark's epoch, nothing else.
    pub fn stored(&self) -> Vec<SensorMark> {
        lock(&self.inner)
            .machine
            .stored()
            .iter()
            .copied()
            .map(mark_out)
            .collect()
    }
}

/// What the store knows about a logger, for `CloudSession.provideKey`.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct CloudLoggerRecord {
    /// The logger's 32-byte key.
    pub key: Vec<u8>,
    /// The store's mark in the logger's current epoch (null: nothing stored, epoch 0).
    pub stored: Option<SensorMark>,
    pub settings: Option<SensorSettings>,
    /// The cloud's clock, unix seconds.
    pub server_time: u64,
    /// The store's recently closed epochs.
    #[uniffi(default = [])]
    pub closed: Vec<SensorEpochEnd>,
    /// The stamp of the newest status the store holds.
    #[uniffi(default = None)]
    pub status: Option<SensorStatusStamp>,
}

/// What the cloud application must act on.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum CloudEvent {
    /// Look the logger up and call `provideKey`.
    KeyNeeded {
        logger: u64,
    },
    /// Store the batch durably (conditionally on the mark still being `after`; if `closes` is
    /// set, record that end of the current epoch in the same transaction), then
    /// `confirmStored(id)`.
    Batch {
        id: u64,
        after: Option<SensorMark>,
        closes: Option<SensorEpochEnd>,
        batch: SensorBatch,
    },
    /// Nothing new: acknowledged and dropped.
    Duplicate {
        logger: u64,
        last: SensorMark,
    },
    /// Does not follow what is stored (a hole, or a new epoch without the exact end of the
    /// current one): acknowledged with what the store holds of its epoch, not stored.
    OutOfOrder {
        logger: u64,
        stored: Option<SensorMark>,
        first: SensorMark,
    },
    /// An upload carried a status newer than the stored one: keep it if still the newest.
    Status {
        logger: u64,
        stamp: SensorStatusStamp,
        status: SensorStatus,
    },
    /// The session ended. Exactly once.
    Closed {
        reason: SensorCloseReason,
    },
    Other {
        description: String,
    },
}

/// Optional cloud settings; null keeps the core default.
#[derive(Debug, Clone, Default, uniffi::Record)]
pub struct CloudOptions {
    #[uniffi(default = None)]
    pub deadline_ms: Option<u64>,
    #[uniffi(default = None)]
    pub max_frame_len: Option<u32>,
    #[uniffi(default = None)]
    pub max_buffered: Option<u64>,
    #[uniffi(default = None)]
    pub max_uploads: Option<u32>,
}

struct CloudInner {
    machine: cloud::CloudSession,
    clock: Clock,
}

/// One upload connection, cloud side.
#[derive(uniffi::Object)]
pub struct CloudSession {
    inner: Mutex<CloudInner>,
}

#[uniffi::export]
impl CloudSession {
    #[uniffi::constructor(default(options = None))]
    pub fn new(now_ms: u64, options: Option<CloudOptions>) -> Arc<Self> {
        let mut config = cloud::CloudConfig::default();
        let o = options.unwrap_or_default();
        if let Some(ms) = o.deadline_ms {
            config.deadline = Duration::from_millis(ms);
        }
        if let Some(n) = o.max_frame_len {
            config.max_frame_len = n;
        }
        if let Some(n) = o.max_buffered {
            config.max_buffered = usize::try_from(n).unwrap_or(usize::MAX);
        }
        if let Some(n) = o.max_uploads {
            config.max_uploads = n;
        }
        let mut clock = Clock::new(now_ms);
        let now = clock.at(now_ms);
        Arc::new(Self {
            inner: Mutex::new(CloudInner {
                machine: cloud::CloudSession::new(Arc::new(config), now),
                clock,
            }),
        })
    }

    /// Bytes from the logger (any split); throws once on a fatal error.
    pub fn handle_input(&self, now_ms: u64, data: Vec<u8>) -> Result<(), SensorError> {
        let mut g = lock(&self.inner);
        let now = g.clock.at(now_ms);
        Ok(g.machine.handle_input(now, &data)?)
    }

    pub fn handle_timeout(&self, now_ms: u64) {
        let mut g = lock(&self.inner);
        let now = g.clock.at(now_ms);
        g.machine.handle_timeout(now);
    }

    /// The transport ended (the logger closed the connection or it broke).
    pub fn handle_close(&self, now_ms: u64) {
        let mut g = lock(&self.inner);
        let now = g.clock.at(now_ms);
        g.machine.handle_close(now);
    }

    /// Deprecated: the old name of `handleClose`, kept so existing callers build.
    pub fn handle_peer_closed(&self, now_ms: u64) {
        self.handle_close(now_ms);
    }

    /// Answers `KeyNeeded`; null means unknown logger (the upload is rejected).
    pub fn provide_key(
        &self,
        now_ms: u64,
        logger: u64,
        record: Option<CloudLoggerRecord>,
    ) -> Result<(), SensorError> {
        let record = record
            .map(|r| -> Result<cloud::LoggerRecord, SensorError> {
                Ok(cloud::LoggerRecord {
                    key: key(&r.key)?,
                    stored: r.stored.map(mark_in),
                    closed: r.closed.into_iter().map(end_in).collect(),
                    status: r.status.map(|s| cloud::StatusStamp {
                        epoch: s.epoch,
                        counter: s.counter,
                    }),
                    settings: r.settings.map(settings_in),
                    server_time: r.server_time,
                })
            })
            .transpose()?;
        let mut g = lock(&self.inner);
        let now = g.clock.at(now_ms);
        Ok(g.machine.provide_key(now, fsn::LoggerId(logger), record)?)
    }

    /// The batch `id` is durably stored; it is acknowledged.
    pub fn confirm_stored(&self, now_ms: u64, id: u64) -> Result<(), SensorError> {
        let mut g = lock(&self.inner);
        let now = g.clock.at(now_ms);
        Ok(g.machine.confirm_stored(now, id)?)
    }

    /// The batch `id` could not be stored; the session fails.
    pub fn storage_failed(&self, now_ms: u64, id: u64) -> Result<(), SensorError> {
        let mut g = lock(&self.inner);
        let now = g.clock.at(now_ms);
        Ok(g.machine.storage_failed(now, id)?)
    }

    pub fn poll_transmit(&self) -> Option<Vec<u8>> {
        let mut buf = Vec::new();
        lock(&self.inner)
            .machine
            .poll_transmit(&mut buf)
            .map(|_| buf)
    }

    pub fn poll_timeout(&self) -> Option<u64> {
        let g = lock(&self.inner);
        g.machine.poll_timeout().map(|t| g.clock.ms(t))
    }

    pub fn poll_event(&self) -> Option<CloudEvent> {
        let event = lock(&self.inner).machine.poll_event()?;
        Some(match event {
            cloud::Event::KeyNeeded { logger } => CloudEvent::KeyNeeded { logger: logger.0 },
            cloud::Event::Batch {
                id,
                after,
                closes,
                batch,
            } => CloudEvent::Batch {
                id,
                after: after.map(mark_out),
                closes: closes.map(end_out),
                batch: batch_out(batch),
            },
            cloud::Event::Duplicate { logger, last } => CloudEvent::Duplicate {
                logger: logger.0,
                last: mark_out(last),
            },
            cloud::Event::OutOfOrder {
                logger,
                stored,
                first,
            } => CloudEvent::OutOfOrder {
                logger: logger.0,
                stored: stored.map(mark_out),
                first: mark_out(first),
            },
            cloud::Event::Status {
                logger,
                stamp,
                status,
            } => CloudEvent::Status {
                logger: logger.0,
                stamp: SensorStatusStamp {
                    epoch: stamp.epoch,
                    counter: stamp.counter,
                },
                status: status_out(status),
            },
            cloud::Event::Closed { reason } => CloudEvent::Closed {
                reason: close_reason(&reason),
            },
            other => CloudEvent::Other {
                description: format!("{other:?}"),
            },
        })
    }

    pub fn state(&self) -> SensorState {
        match lock(&self.inner).machine.state() {
            cloud::State::AwaitingUpload => SensorState::AwaitingUpload,
            cloud::State::AwaitingKey => SensorState::AwaitingKey,
            cloud::State::Receiving => SensorState::Receiving,
            cloud::State::Closed => SensorState::Closed,
            _ => SensorState::Other,
        }
    }

    /// The logger this connection belongs to, once named.
    pub fn logger(&self) -> Option<u64> {
        lock(&self.inner).machine.logger().map(|l| l.0)
    }
}
