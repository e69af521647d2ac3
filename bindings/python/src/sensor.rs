//! `fleetwire.sensor`: the sensor record format and upload session (fleetwire-sensor), as
//! conversions only.
//!
//! The data model crosses as plain tuples shaped like `test-vectors/sensor.json`: a channel is
//! `(kind, unit, exponent)`, a gap `(seq, count)`, an alarm `(seq, channel, kind, value)` with
//! `kind` one of `high`, `low`, `cleared`, `probe_fault`, `probe_disconnected`, a status
//! `(counter, battery_mv, battery_percent, (major, minor, patch))`, a mark `(epoch, seq)`, an
//! epoch end `(epoch, next_seq, abandoned)` (a batch's `previous`, a cloud's closed epochs), a
//! status stamp `(epoch, counter)` and a threshold `(channel, low, high)`.

use std::sync::Arc;
use std::time::Duration;

use fleetwire_sensor as fs;
use fleetwire_sensor::{cloud, codec, logger};
use pyo3::create_exception;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::{ApiMisuse, Clock, FleetwireError, array};

create_exception!(
    fleetwire,
    SensorError,
    FleetwireError,
    "A sensor upload failed; `kind` names the reason (`bad_mac`, `decode`, `unknown_logger`, ...)."
);

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("SensorError", py.get_type::<SensorError>())?;
    m.add("VERSION", codec::VERSION)?;
    m.add("PORT", codec::PORT)?;
    m.add("MSG_UPLOAD", codec::MSG_UPLOAD)?;
    m.add("MSG_ACK", codec::MSG_ACK)?;
    m.add("MSG_REJECT", codec::MSG_REJECT)?;
    m.add_class::<Batch>()?;
    m.add_class::<Settings>()?;
    m.add_class::<Upload>()?;
    m.add_class::<Ack>()?;
    m.add_class::<Event>()?;
    m.add_class::<LoggerSession>()?;
    m.add_class::<CloudSession>()?;
    m.add_function(wrap_pyfunction!(derive_key, m)?)?;
    m.add_function(wrap_pyfunction!(encode_upload, m)?)?;
    m.add_function(wrap_pyfunction!(decode_upload, m)?)?;
    m.add_function(wrap_pyfunction!(decode_upload_unverified, m)?)?;
    m.add_function(wrap_pyfunction!(upload_logger, m)?)?;
    m.add_function(wrap_pyfunction!(encode_ack, m)?)?;
    m.add_function(wrap_pyfunction!(decode_ack_unverified, m)?)?;
    m.add_function(wrap_pyfunction!(verify_ack, m)?)?;
    m.add_function(wrap_pyfunction!(encode_reject, m)?)?;
    m.add_function(wrap_pyfunction!(decode_reject, m)?)?;
    Ok(())
}

fn sensor_error_kind(e: &fs::SensorError) -> String {
    match e {
        fs::SensorError::Decode(_) => "decode".into(),
        fs::SensorError::BadMac { .. } => "bad_mac".into(),
        fs::SensorError::UnknownLogger { .. } => "unknown_logger".into(),
        fs::SensorError::LoggerMismatch { .. } => "logger_mismatch".into(),
        fs::SensorError::UnexpectedMessage { .. } => "unexpected_message".into(),
        fs::SensorError::AckOutOfOrder { .. } => "ack_out_of_order".into(),
        fs::SensorError::Rejected { .. } => "rejected".into(),
        fs::SensorError::RadioDeadline { .. } => "radio_deadline".into(),
        fs::SensorError::Timeout { .. } => "timeout".into(),
        fs::SensorError::PeerClosed => "peer_closed".into(),
        fs::SensorError::StorageFailed { .. } => "storage_failed".into(),
        fs::SensorError::TooMuchBuffered { .. } => "too_much_buffered".into(),
        other => format!("{other:?}"),
    }
}

/// A core `SensorError` as `fleetwire.SensorError` with a `kind` attribute.
fn sensor_error(py: Python<'_>, e: &fs::SensorError) -> PyErr {
    let err = SensorError::new_err(e.to_string());
    // Setting an attribute on a fresh exception instance cannot fail in practice.
    let _ = err.value(py).setattr("kind", sensor_error_kind(e));
    err
}

fn decode_error(py: Python<'_>, e: fs::DecodeError) -> PyErr {
    sensor_error(py, &fs::SensorError::Decode(e))
}

fn misuse(e: &fs::ApiMisuse) -> PyErr {
    ApiMisuse::new_err(e.to_string())
}

fn key_of(key: &[u8]) -> PyResult<fs::LoggerKey> {
    Ok(fs::LoggerKey::from_bytes(array("key", key)?))
}

fn tag_of(tag: &[u8]) -> PyResult<fs::Tag> {
    array("batch_tag", tag)
}

fn mark_in(m: Option<(u32, u64)>) -> Option<fs::Mark> {
    m.map(|(epoch, seq)| fs::Mark { epoch, seq })
}

fn mark_out(m: Option<fs::Mark>) -> Option<(u32, u64)> {
    m.map(|m| (m.epoch, m.seq))
}

type AlarmTuple = (u64, u8, String, Option<i32>);
type StatusTuple = (u32, u16, u8, (u8, u8, u16));
type EpochEndTuple = (u32, u64, bool);

fn end_in((epoch, next_seq, abandoned): EpochEndTuple) -> fs::EpochEnd {
    fs::EpochEnd {
        epoch,
        next_seq,
        abandoned,
    }
}

fn end_out(e: fs::EpochEnd) -> EpochEndTuple {
    (e.epoch, e.next_seq, e.abandoned)
}

fn status_out(s: fs::Status) -> StatusTuple {
    (
        s.counter,
        s.battery_mv,
        s.battery_percent,
        (s.firmware.major, s.firmware.minor, s.firmware.patch),
    )
}

// ---------------------------------------------------------------------------------------------
// Model

/// A run of logging slots: readings at `interval_s` from `start` (unix seconds), `values`
/// row-major (one entry per channel per reading slot, `None` = no value). `previous` is set on
/// the first batch of a new epoch: how the previous one ended, `(epoch, next_seq, abandoned)`.
#[pyclass(module = "fleetwire.sensor", eq, get_all, set_all, from_py_object)]
#[derive(Clone, PartialEq)]
pub(crate) struct Batch {
    logger: u64,
    epoch: u32,
    first_seq: u64,
    start: u64,
    interval_s: u32,
    channels: Vec<(u8, u8, i8)>,
    values: Vec<Option<i32>>,
    gaps: Vec<(u64, u64)>,
    alarms: Vec<AlarmTuple>,
    status: Option<StatusTuple>,
    previous: Option<EpochEndTuple>,
}

#[pymethods]
impl Batch {
    #[new]
    #[pyo3(signature = (logger, epoch, first_seq, start, interval_s, channels, values, gaps = Vec::new(), alarms = Vec::new(), status = None, previous = None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        logger: u64,
        epoch: u32,
        first_seq: u64,
        start: u64,
        interval_s: u32,
        channels: Vec<(u8, u8, i8)>,
        values: Vec<Option<i32>>,
        gaps: Vec<(u64, u64)>,
        alarms: Vec<AlarmTuple>,
        status: Option<StatusTuple>,
        previous: Option<EpochEndTuple>,
    ) -> Self {
        Self {
            logger,
            epoch,
            first_seq,
            start,
            interval_s,
            channels,
            values,
            gaps,
            alarms,
            status,
            previous,
        }
    }

    /// A batch without readings, to check in (`Batch::empty`).
    #[staticmethod]
    fn empty(logger: u64, epoch: u32, next_seq: u64, now_unix: u64) -> Self {
        Self::from_core(&fs::Batch::empty(
            fs::LoggerId(logger),
            epoch,
            next_seq,
            now_unix,
        ))
    }

    /// Readings (slots with at least one value).
    fn reading_count(&self) -> PyResult<usize> {
        Ok(self.to_core()?.reading_count())
    }

    /// The last slot, or `None` for an empty batch.
    fn last(&self) -> PyResult<Option<(u32, u64)>> {
        Ok(mark_out(self.to_core()?.last()))
    }

    /// Raises `ApiMisuse` if the batch cannot be encoded.
    fn validate(&self) -> PyResult<()> {
        self.to_core()?.validate().map_err(|e| misuse(&e))
    }

    fn __repr__(&self) -> PyResult<String> {
        Ok(format!("{:?}", self.to_core()?))
    }
}

impl Batch {
    fn to_core(&self) -> PyResult<fs::Batch> {
        let alarms = self
            .alarms
            .iter()
            .map(|(seq, channel, kind, value)| {
                let need = |v: Option<i32>| {
                    v.ok_or_else(|| {
                        PyValueError::new_err(format!("alarm kind {kind:?} needs a value"))
                    })
                };
                let kind = match kind.as_str() {
                    "high" => fs::AlarmKind::High {
                        value: need(*value)?,
                    },
                    "low" => fs::AlarmKind::Low {
                        value: need(*value)?,
                    },
                    "cleared" => fs::AlarmKind::Cleared,
                    "probe_fault" => fs::AlarmKind::ProbeFault,
                    "probe_disconnected" => fs::AlarmKind::ProbeDisconnected,
                    other => {
                        return Err(PyValueError::new_err(format!(
                            "unknown alarm kind {other:?}"
                        )));
                    }
                };
                Ok(fs::Alarm {
                    seq: *seq,
                    channel: *channel,
                    kind,
                })
            })
            .collect::<PyResult<Vec<_>>>()?;
        Ok(fs::Batch {
            logger: fs::LoggerId(self.logger),
            epoch: self.epoch,
            first_seq: self.first_seq,
            start: self.start,
            interval_s: self.interval_s,
            channels: self
                .channels
                .iter()
                .map(|&(kind, unit, exponent)| fs::Channel {
                    kind: fs::ChannelKind(kind),
                    unit: fs::Unit(unit),
                    exponent,
                })
                .collect(),
            values: self.values.clone(),
            gaps: self
                .gaps
                .iter()
                .map(|&(seq, count)| fs::Gap { seq, count })
                .collect(),
            alarms,
            status: self.status.map(
                |(counter, battery_mv, battery_percent, (major, minor, patch))| fs::Status {
                    counter,
                    battery_mv,
                    battery_percent,
                    firmware: fs::Firmware {
                        major,
                        minor,
                        patch,
                    },
                },
            ),
            previous: self.previous.map(end_in),
        })
    }

    fn from_core(b: &fs::Batch) -> Self {
        Self {
            logger: b.logger.0,
            epoch: b.epoch,
            first_seq: b.first_seq,
            start: b.start,
            interval_s: b.interval_s,
            channels: b
                .channels
                .iter()
                .map(|c| (c.kind.0, c.unit.0, c.exponent))
                .collect(),
            values: b.values.clone(),
            gaps: b.gaps.iter().map(|g| (g.seq, g.count)).collect(),
            alarms: b
                .alarms
                .iter()
                .map(|a| {
                    let (kind, value) = match a.kind {
                        fs::AlarmKind::High { value } => ("high".to_owned(), Some(value)),
                        fs::AlarmKind::Low { value } => ("low".to_owned(), Some(value)),
                        fs::AlarmKind::Cleared => ("cleared".to_owned(), None),
                        fs::AlarmKind::ProbeFault => ("probe_fault".to_owned(), None),
                        fs::AlarmKind::ProbeDisconnected => ("probe_disconnected".to_owned(), None),
                    };
                    (a.seq, a.channel, kind, value)
                })
                .collect(),
            status: b.status.map(status_out),
            previous: b.previous.map(end_out),
        }
    }
}

/// Settings the cloud piggybacks on an ack; `thresholds` are `(channel, low, high)`.
#[pyclass(module = "fleetwire.sensor", eq, get_all, set_all, from_py_object)]
#[derive(Clone, PartialEq)]
pub(crate) struct Settings {
    version: u32,
    interval_s: u32,
    thresholds: Vec<(u8, Option<i32>, Option<i32>)>,
}

#[pymethods]
impl Settings {
    #[new]
    #[pyo3(signature = (version, interval_s, thresholds = Vec::new()))]
    fn new(version: u32, interval_s: u32, thresholds: Vec<(u8, Option<i32>, Option<i32>)>) -> Self {
        Self {
            version,
            interval_s,
            thresholds,
        }
    }

    fn __repr__(&self) -> String {
        format!("{:?}", self.to_core())
    }
}

impl Settings {
    fn to_core(&self) -> fs::Settings {
        fs::Settings {
            version: self.version,
            interval_s: self.interval_s,
            thresholds: self
                .thresholds
                .iter()
                .map(|&(channel, low, high)| fs::Threshold { channel, low, high })
                .collect(),
        }
    }

    fn from_core(s: &fs::Settings) -> Self {
        Self {
            version: s.version,
            interval_s: s.interval_s,
            thresholds: s
                .thresholds
                .iter()
                .map(|t| (t.channel, t.low, t.high))
                .collect(),
        }
    }
}

/// A decoded upload: the batch, the settings version the logger runs, the last-upload flag
/// and the 16-byte tag (the matching ack is bound to it).
#[pyclass(module = "fleetwire.sensor", frozen, get_all)]
pub(crate) struct Upload {
    batch: Batch,
    settings_version: u32,
    last: bool,
    tag: Py<PyBytes>,
}

/// A decoded ack; check `tag` with `verify_ack` before acting on it.
#[pyclass(module = "fleetwire.sensor", frozen, get_all)]
pub(crate) struct Ack {
    batch_index: u32,
    stored: Option<(u32, u64)>,
    server_time: u64,
    settings: Option<Settings>,
    tag: Py<PyBytes>,
}

/// The per-logger key: HMAC-SHA256(master, label || logger id).
#[pyfunction]
fn derive_key<'py>(py: Python<'py>, master: &[u8], logger: u64) -> PyResult<Bound<'py, PyBytes>> {
    let key = fs::LoggerKey::derive(&array("master", master)?, fs::LoggerId(logger));
    Ok(PyBytes::new(py, &key.to_bytes()))
}

/// The whole upload frame and its tag.
#[pyfunction]
fn encode_upload<'py>(
    py: Python<'py>,
    key: &[u8],
    batch: &Batch,
    settings_version: u32,
    last: bool,
) -> PyResult<(Bound<'py, PyBytes>, Bound<'py, PyBytes>)> {
    let upload = codec::Upload {
        batch: batch.to_core()?,
        settings_version,
        last,
    };
    let mut out = Vec::new();
    let tag = codec::encode_upload(&mut out, &key_of(key)?, &upload).map_err(|e| misuse(&e))?;
    Ok((PyBytes::new(py, &out), PyBytes::new(py, &tag)))
}

fn upload_out(py: Python<'_>, (u, tag): (codec::Upload, fs::Tag)) -> Upload {
    Upload {
        batch: Batch::from_core(&u.batch),
        settings_version: u.settings_version,
        last: u.last,
        tag: PyBytes::new(py, &tag).unbind(),
    }
}

/// Checks the tag of an upload body (the frame without its 6-byte header), then decodes it.
/// Raises `SensorError` (`kind == "bad_mac"` for a wrong key or a changed byte).
#[pyfunction]
fn decode_upload(py: Python<'_>, body: &[u8], key: &[u8]) -> PyResult<Upload> {
    codec::decode_upload(body, &key_of(key)?)
        .map(|r| upload_out(py, r))
        .map_err(|e| sensor_error(py, &e))
}

/// Decodes an upload body without checking its tag (tools and tests only).
#[pyfunction]
fn decode_upload_unverified(py: Python<'_>, body: &[u8]) -> PyResult<Upload> {
    codec::decode_upload_unverified(body)
        .map(|r| upload_out(py, r))
        .map_err(|e| decode_error(py, e))
}

/// The logger an upload body claims to come from (unauthenticated).
#[pyfunction]
fn upload_logger(py: Python<'_>, body: &[u8]) -> PyResult<u64> {
    codec::upload_logger(body)
        .map(|l| l.0)
        .map_err(|e| decode_error(py, e))
}

/// The whole ack frame, bound to `batch_tag`.
#[pyfunction]
#[pyo3(signature = (key, batch_tag, batch_index, stored, server_time, settings = None))]
fn encode_ack<'py>(
    py: Python<'py>,
    key: &[u8],
    batch_tag: &[u8],
    batch_index: u32,
    stored: Option<(u32, u64)>,
    server_time: u64,
    settings: Option<Settings>,
) -> PyResult<Bound<'py, PyBytes>> {
    let ack = codec::Ack {
        batch_index,
        stored: mark_in(stored),
        server_time,
        settings: settings.as_ref().map(Settings::to_core),
    };
    let mut out = Vec::new();
    codec::encode_ack(&mut out, &key_of(key)?, &tag_of(batch_tag)?, &ack)
        .map_err(|e| misuse(&e))?;
    Ok(PyBytes::new(py, &out))
}

/// Decodes an ack body without checking its tag.
#[pyfunction]
fn decode_ack_unverified(py: Python<'_>, body: &[u8]) -> PyResult<Ack> {
    let (a, tag) = codec::decode_ack_unverified(body).map_err(|e| decode_error(py, e))?;
    Ok(Ack {
        batch_index: a.batch_index,
        stored: mark_out(a.stored),
        server_time: a.server_time,
        settings: a.settings.as_ref().map(Settings::from_core),
        tag: PyBytes::new(py, &tag).unbind(),
    })
}

/// Whether an ack body's tag is right for `key` and the batch it answers.
#[pyfunction]
fn verify_ack(body: &[u8], key: &[u8], batch_tag: &[u8]) -> PyResult<bool> {
    Ok(codec::verify_ack(body, &key_of(key)?, &tag_of(batch_tag)?))
}

fn reject_name(r: fs::RejectReason) -> String {
    match r {
        fs::RejectReason::UnknownLogger => "unknown_logger".into(),
        fs::RejectReason::BadMac => "bad_mac".into(),
        fs::RejectReason::Malformed => "malformed".into(),
        fs::RejectReason::StorageFailed => "storage_failed".into(),
        other => format!("other_{}", other.code()),
    }
}

/// The whole reject frame for a reason code byte.
#[pyfunction]
fn encode_reject(py: Python<'_>, code: u8) -> Bound<'_, PyBytes> {
    let mut out = Vec::new();
    codec::encode_reject(&mut out, fs::RejectReason::from_code(code));
    PyBytes::new(py, &out)
}

/// The reason of a reject body (`unknown_logger`, `bad_mac`, `malformed`, `storage_failed`,
/// `other_N`).
#[pyfunction]
fn decode_reject(py: Python<'_>, body: &[u8]) -> PyResult<String> {
    codec::decode_reject(body)
        .map(reject_name)
        .map_err(|e| decode_error(py, e))
}

// ---------------------------------------------------------------------------------------------
// Events

/// One event from either machine; `kind` names it and the fields it does not have are `None`.
///
/// Logger: `acked` (`batch_index`, `stored`: slots `0..=seq` of that epoch only, `server_time`),
/// `settings` (`settings`), `closed` (`reason`: `None` when finished, else a `SensorError`).
/// Cloud: `key_needed` (`logger`), `batch` (`id`, `after`, `closes`, `batch`), `duplicate`
/// (`logger`, `last`), `out_of_order` (`logger`, `stored`, `first`), `status` (`logger`,
/// `stamp`, `status`), `closed`.
#[pyclass(module = "fleetwire.sensor", frozen, get_all)]
#[derive(Default)]
pub(crate) struct Event {
    kind: String,
    batch_index: Option<u32>,
    stored: Option<(u32, u64)>,
    server_time: Option<u64>,
    settings: Option<Settings>,
    reason: Option<Py<PyAny>>,
    logger: Option<u64>,
    id: Option<u64>,
    after: Option<(u32, u64)>,
    closes: Option<EpochEndTuple>,
    batch: Option<Batch>,
    last: Option<(u32, u64)>,
    first: Option<(u32, u64)>,
    stamp: Option<(u32, u32)>,
    status: Option<StatusTuple>,
}

#[pymethods]
impl Event {
    fn __repr__(&self) -> String {
        format!("Event({:?})", self.kind)
    }
}

fn closed(py: Python<'_>, reason: &fs::CloseReason) -> Event {
    let reason = match reason {
        fs::CloseReason::Error(e) => Some(sensor_error(py, e).into_value(py).into_any()),
        _ => None,
    };
    Event {
        kind: "closed".into(),
        reason,
        ..Event::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Machines

/// One upload connection, logger side. All `batches` go out in the first flight.
#[pyclass(module = "fleetwire.sensor")]
pub(crate) struct LoggerSession {
    inner: logger::LoggerSession,
    clock: Clock,
}

#[pymethods]
impl LoggerSession {
    #[new]
    #[pyo3(signature = (logger, key, now_ms, batches, *, settings_version = 0, radio_deadline_ms = None, max_frame_len = None))]
    fn new(
        logger: u64,
        key: &[u8],
        now_ms: u64,
        batches: Vec<Batch>,
        settings_version: u32,
        radio_deadline_ms: Option<u64>,
        max_frame_len: Option<u32>,
    ) -> PyResult<Self> {
        let mut config = logger::LoggerConfig::new(fs::LoggerId(logger), key_of(key)?);
        config.settings_version = settings_version;
        if let Some(ms) = radio_deadline_ms {
            config.radio_deadline = Duration::from_millis(ms);
        }
        if let Some(len) = max_frame_len {
            config.max_frame_len = len;
        }
        let batches = batches
            .iter()
            .map(Batch::to_core)
            .collect::<PyResult<Vec<_>>>()?;
        let mut clock = Clock::new(now_ms)?;
        let now = clock.at(now_ms)?;
        let inner =
            logger::LoggerSession::new(Arc::new(config), now, batches).map_err(|e| misuse(&e))?;
        Ok(Self { inner, clock })
    }

    /// Bytes from the cloud. Raises `SensorError` once on a fatal error (also queued as the
    /// `closed` event).
    fn handle_input(&mut self, py: Python<'_>, now_ms: u64, data: &[u8]) -> PyResult<()> {
        let now = self.clock.at(now_ms)?;
        self.inner
            .handle_input(now, data)
            .map_err(|e| sensor_error(py, &e))
    }

    fn handle_timeout(&mut self, now_ms: u64) -> PyResult<()> {
        let now = self.clock.at(now_ms)?;
        self.inner.handle_timeout(now);
        Ok(())
    }

    /// The transport ended (the peer closed the connection or it broke).
    fn handle_close(&mut self, now_ms: u64) -> PyResult<()> {
        let now = self.clock.at(now_ms)?;
        self.inner.handle_close(now);
        Ok(())
    }

    /// Deprecated: the old name of `handle_close`, kept so existing callers work.
    fn handle_peer_closed(&mut self, now_ms: u64) -> PyResult<()> {
        self.handle_close(now_ms)
    }

    fn poll_transmit<'py>(&mut self, py: Python<'py>) -> Option<Bound<'py, PyBytes>> {
        let mut buf = Vec::new();
        self.inner
            .poll_transmit(&mut buf)
            .map(|_| PyBytes::new(py, &buf))
    }

    fn poll_timeout(&self) -> Option<u64> {
        self.inner.poll_timeout().map(|t| self.clock.ms(t))
    }

    fn poll_event(&mut self, py: Python<'_>) -> Option<Event> {
        let event = self.inner.poll_event()?;
        Some(match event {
            logger::Event::Acked {
                batch_index,
                stored,
                server_time,
            } => Event {
                kind: "acked".into(),
                batch_index: Some(batch_index),
                stored: mark_out(stored),
                server_time: Some(server_time),
                ..Event::default()
            },
            logger::Event::Settings(s) => Event {
                kind: "settings".into(),
                settings: Some(Settings::from_core(&s)),
                ..Event::default()
            },
            logger::Event::Closed { reason } => closed(py, &reason),
            other => Event {
                kind: format!("{other:?}"),
                ..Event::default()
            },
        })
    }

    /// `awaiting_acks` or `closed`.
    #[getter]
    fn state(&self) -> String {
        match self.inner.state() {
            logger::State::AwaitingAcks => "awaiting_acks".into(),
            logger::State::Closed => "closed".into(),
            other => format!("{other:?}"),
        }
    }

    /// What the cloud acknowledged as durable so far, one mark per epoch in epoch order: free
    /// slots `0..=seq` of each mark's epoch, nothing else.
    #[getter]
    fn stored(&self) -> Vec<(u32, u64)> {
        self.inner
            .stored()
            .iter()
            .map(|m| (m.epoch, m.seq))
            .collect()
    }

    /// `(bytes_sent, bytes_received, batches_sent, batches_acked, readings_sent)`.
    #[getter]
    fn stats(&self) -> (u64, u64, u32, u32, u64) {
        let s = self.inner.stats();
        (
            s.bytes_sent,
            s.bytes_received,
            s.batches_sent,
            s.batches_acked,
            s.readings_sent,
        )
    }
}

/// One upload connection, cloud side. Answer `key_needed` with `provide_key` and `batch` with
/// `confirm_stored` (after a durable write) or `storage_failed`.
#[pyclass(module = "fleetwire.sensor")]
pub(crate) struct CloudSession {
    inner: cloud::CloudSession,
    clock: Clock,
}

#[pymethods]
impl CloudSession {
    #[new]
    #[pyo3(signature = (now_ms, *, deadline_ms = None, max_frame_len = None, max_buffered = None, max_uploads = None))]
    fn new(
        now_ms: u64,
        deadline_ms: Option<u64>,
        max_frame_len: Option<u32>,
        max_buffered: Option<usize>,
        max_uploads: Option<u32>,
    ) -> PyResult<Self> {
        let mut config = cloud::CloudConfig::default();
        if let Some(ms) = deadline_ms {
            config.deadline = Duration::from_millis(ms);
        }
        if let Some(v) = max_frame_len {
            config.max_frame_len = v;
        }
        if let Some(v) = max_buffered {
            config.max_buffered = v;
        }
        if let Some(v) = max_uploads {
            config.max_uploads = v;
        }
        let mut clock = Clock::new(now_ms)?;
        let now = clock.at(now_ms)?;
        Ok(Self {
            inner: cloud::CloudSession::new(Arc::new(config), now),
            clock,
        })
    }

    /// Bytes from the logger. Raises `SensorError` once on a fatal error.
    fn handle_input(&mut self, py: Python<'_>, now_ms: u64, data: &[u8]) -> PyResult<()> {
        let now = self.clock.at(now_ms)?;
        self.inner
            .handle_input(now, data)
            .map_err(|e| sensor_error(py, &e))
    }

    fn handle_timeout(&mut self, now_ms: u64) -> PyResult<()> {
        let now = self.clock.at(now_ms)?;
        self.inner.handle_timeout(now);
        Ok(())
    }

    /// The transport ended (the logger closed the connection or it broke).
    fn handle_close(&mut self, now_ms: u64) -> PyResult<()> {
        let now = self.clock.at(now_ms)?;
        self.inner.handle_close(now);
        Ok(())
    }

    /// Deprecated: the old name of `handle_close`, kept so existing callers work.
    fn handle_peer_closed(&mut self, now_ms: u64) -> PyResult<()> {
        self.handle_close(now_ms)
    }

    /// Answers `key_needed`: `key=None` means the logger is unknown (the upload is rejected).
    /// `stored` is the store's mark in the logger's current epoch, `closed` its recently closed
    /// epochs `(epoch, next_seq, abandoned)`, `status` the `(epoch, counter)` of the newest
    /// status it holds; `server_time` unix seconds.
    #[pyo3(signature = (now_ms, logger, key, stored = None, settings = None, server_time = 0, closed = Vec::new(), status = None))]
    #[allow(clippy::too_many_arguments)]
    fn provide_key(
        &mut self,
        now_ms: u64,
        logger: u64,
        key: Option<&[u8]>,
        stored: Option<(u32, u64)>,
        settings: Option<Settings>,
        server_time: u64,
        closed: Vec<EpochEndTuple>,
        status: Option<(u32, u32)>,
    ) -> PyResult<()> {
        let now = self.clock.at(now_ms)?;
        let record = key
            .map(|k| {
                Ok::<_, PyErr>(cloud::LoggerRecord {
                    key: key_of(k)?,
                    stored: mark_in(stored),
                    closed: closed.into_iter().map(end_in).collect(),
                    status: status.map(|(epoch, counter)| cloud::StatusStamp { epoch, counter }),
                    settings: settings.as_ref().map(Settings::to_core),
                    server_time,
                })
            })
            .transpose()?;
        self.inner
            .provide_key(now, fs::LoggerId(logger), record)
            .map_err(|e| misuse(&e))
    }

    /// The batch `id` is durably stored: acknowledge it.
    fn confirm_stored(&mut self, now_ms: u64, id: u64) -> PyResult<()> {
        let now = self.clock.at(now_ms)?;
        self.inner.confirm_stored(now, id).map_err(|e| misuse(&e))
    }

    /// The store could not write batch `id`: reject the upload.
    fn storage_failed(&mut self, now_ms: u64, id: u64) -> PyResult<()> {
        let now = self.clock.at(now_ms)?;
        self.inner.storage_failed(now, id).map_err(|e| misuse(&e))
    }

    fn poll_transmit<'py>(&mut self, py: Python<'py>) -> Option<Bound<'py, PyBytes>> {
        let mut buf = Vec::new();
        self.inner
            .poll_transmit(&mut buf)
            .map(|_| PyBytes::new(py, &buf))
    }

    fn poll_timeout(&self) -> Option<u64> {
        self.inner.poll_timeout().map(|t| self.clock.ms(t))
    }

    fn poll_event(&mut self, py: Python<'_>) -> Option<Event> {
        let event = self.inner.poll_event()?;
        Some(match event {
            cloud::Event::KeyNeeded { logger } => Event {
                kind: "key_needed".into(),
                logger: Some(logger.0),
                ..Event::default()
            },
            cloud::Event::Batch {
                id,
                after,
                closes,
                batch,
            } => Event {
                kind: "batch".into(),
                logger: Some(batch.logger.0),
                id: Some(id),
                after: mark_out(after),
                closes: closes.map(end_out),
                batch: Some(Batch::from_core(&batch)),
                ..Event::default()
            },
            cloud::Event::Duplicate { logger, last } => Event {
                kind: "duplicate".into(),
                logger: Some(logger.0),
                last: mark_out(Some(last)),
                ..Event::default()
            },
            cloud::Event::OutOfOrder {
                logger,
                stored,
                first,
            } => Event {
                kind: "out_of_order".into(),
                logger: Some(logger.0),
                stored: mark_out(stored),
                first: mark_out(Some(first)),
                ..Event::default()
            },
            cloud::Event::Status {
                logger,
                stamp,
                status,
            } => Event {
                kind: "status".into(),
                logger: Some(logger.0),
                stamp: Some((stamp.epoch, stamp.counter)),
                status: Some(status_out(status)),
                ..Event::default()
            },
            cloud::Event::Closed { reason } => closed(py, &reason),
            other => Event {
                kind: format!("{other:?}"),
                ..Event::default()
            },
        })
    }

    /// `awaiting_upload`, `awaiting_key`, `receiving` or `closed`.
    #[getter]
    fn state(&self) -> String {
        match self.inner.state() {
            cloud::State::AwaitingUpload => "awaiting_upload".into(),
            cloud::State::AwaitingKey => "awaiting_key".into(),
            cloud::State::Receiving => "receiving".into(),
            cloud::State::Closed => "closed".into(),
            other => format!("{other:?}"),
        }
    }

    /// The logger of this connection, once known.
    #[getter]
    fn logger(&self) -> Option<u64> {
        self.inner.logger().map(|l| l.0)
    }

    /// `(bytes_received, bytes_sent, uploads, batches_stored, readings_stored, duplicates,
    /// out_of_order)`.
    #[getter]
    fn stats(&self) -> (u64, u64, u32, u32, u64, u32, u32) {
        let s = self.inner.stats();
        (
            s.bytes_received,
            s.bytes_sent,
            s.uploads,
            s.batches_stored,
            s.readings_stored,
            s.duplicates,
            s.out_of_order,
        )
    }
}
