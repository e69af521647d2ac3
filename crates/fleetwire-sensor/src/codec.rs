//! The wire format: `Upload` (logger to cloud), `Ack` and `Reject` (cloud to logger), each in a
//! fleetwire-wire frame `version:u8 | type:u8 | len:u32be | body`.
//!
//! An `Upload` body is a postcard envelope, the channel list, optional previous-epoch, gap, alarm
//! and status sections, the readings as a stream of 4-bit zigzag varints, and a 16-byte tag. The
//! full layout with hex examples is in `docs/PROTOCOL.md`.
//!
//! Version 2 (this one) changed what an ack means (it covers only its own epoch), made an epoch
//! change explicit and authenticated (the `previous` section) and ordered statuses (a counter);
//! the MAC labels name the version, so a version-1 frame never verifies as a version-2 one.
//!
//! Every decoder checks a declared count against the bytes actually present before it allocates,
//! and never panics on any input.

use fleetwire_wire::{DecodeError, Reader, Writer, encode_frame};
use serde::{Deserialize, Serialize};

use crate::crypto::{LoggerKey, TAG_LEN, Tag};
use crate::error::{ApiMisuse, RejectReason, SensorError};
use crate::model::{
    Alarm, AlarmKind, Batch, Channel, ChannelKind, EpochEnd, Gap, LoggerId, MAX_CHANNELS,
    MAX_THRESHOLDS, Mark, Settings, Status, Threshold, Unit,
};

/// The protocol version in every frame header.
pub const VERSION: u8 = 2;
/// TCP port of the upload service.
pub const PORT: u16 = 14354;
/// Frame type of an upload (logger to cloud).
pub const MSG_UPLOAD: u8 = 0x01;
/// Frame type of an acknowledgement (cloud to logger).
pub const MSG_ACK: u8 = 0x02;
/// Frame type of a rejection (cloud to logger).
pub const MSG_REJECT: u8 = 0x03;
/// Wire times count seconds from this unix time (2024-01-01T00:00:00Z): a smaller varint.
pub const TIME_BASE: u64 = 1_704_067_200;

const BATCH_LABEL: &[u8] = b"fleetwire-sensor/v2 batch";
const ACK_LABEL: &[u8] = b"fleetwire-sensor/v2 ack";

const FLAG_LAST: u8 = 0x01;
const FLAG_GAPS: u8 = 0x02;
const FLAG_ALARMS: u8 = 0x04;
const FLAG_STATUS: u8 = 0x08;
const FLAG_PREVIOUS: u8 = 0x10;
const FLAGS_KNOWN: u8 = FLAG_LAST | FLAG_GAPS | FLAG_ALARMS | FLAG_STATUS | FLAG_PREVIOUS;

/// Channel presets: one byte on the wire instead of four.
const PRESETS: [Channel; 6] = [
    Channel::TEMPERATURE_DECI_C,
    Channel::TEMPERATURE_CENTI_C,
    Channel::HUMIDITY_DECI_PCT,
    Channel::HUMIDITY_PCT,
    Channel::PRESSURE_DECI_HPA,
    Channel::CO2_PPM,
];

/// An upload message: one batch plus what the logger tells the cloud about itself. The first
/// upload of a connection is the logger's hello.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Upload {
    /// The batch.
    pub batch: Batch,
    /// The [`Settings::version`] the logger runs, so the cloud knows whether to send newer ones.
    pub settings_version: u32,
    /// True on the last upload of this connection: the cloud sends its final ack after it.
    pub last: bool,
}

/// An acknowledgement (cloud to logger), authenticated with the logger's key and bound to the
/// tag of the batch it answers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ack {
    /// Which upload of this connection it answers (0-based).
    pub batch_index: u32,
    /// What the store durably holds of the answered upload's epoch: slots `0..=seq` of
    /// `stored.epoch` (always that epoch), nothing of any other epoch. `None`: nothing of it.
    pub stored: Option<Mark>,
    /// The cloud's clock, unix seconds, so a logger can correct drift.
    pub server_time: u64,
    /// Newer settings for the logger, if any.
    pub settings: Option<Settings>,
}

#[derive(Serialize, Deserialize)]
struct Envelope {
    flags: u8,
    logger: u64,
    epoch: u32,
    first_seq: u64,
    settings_version: u32,
    start: i64,
    interval_s: u32,
    readings: u32,
}

#[derive(Serialize, Deserialize)]
struct AckHead {
    batch_index: u32,
    stored: Option<(u32, u64)>,
    server_time: u64,
    has_settings: bool,
}

/// Appends an upload frame to `out` and returns its tag (which the matching ack is bound to).
pub fn encode_upload(
    out: &mut Vec<u8>,
    key: &LoggerKey,
    upload: &Upload,
) -> Result<Tag, ApiMisuse> {
    let mut body = Vec::with_capacity(64 + upload.batch.values.len());
    encode_upload_body(&mut body, upload)?;
    let tag = key.tag(&[BATCH_LABEL, &body]);
    body.extend_from_slice(&tag);
    encode_frame(out, VERSION, MSG_UPLOAD, &body);
    Ok(tag)
}

/// The logger an upload body claims to come from, read without checking the tag: the cloud
/// needs it to look the key up.
pub fn upload_logger(body: &[u8]) -> Result<LoggerId, DecodeError> {
    let (env, _) = postcard_take::<Envelope>(body, "upload envelope")?;
    Ok(LoggerId(env.logger))
}

/// Checks the tag of an upload body with `key`, then decodes it. A wrong key or any changed
/// byte gives [`SensorError::BadMac`] before the body is parsed further.
pub fn decode_upload(body: &[u8], key: &LoggerKey) -> Result<(Upload, Tag), SensorError> {
    let logger = upload_logger(body)?;
    let split = body
        .len()
        .checked_sub(TAG_LEN)
        .ok_or(DecodeError::Truncated {
            field: "upload tag",
            needed: TAG_LEN,
            remaining: body.len(),
        })?;
    let (content, tag) = body.split_at(split);
    if !key.verify(&[BATCH_LABEL, content], tag) {
        return Err(SensorError::BadMac {
            logger,
            what: "batch",
        });
    }
    Ok(decode_upload_unverified(body)?)
}

/// Decodes an upload body without checking its tag. For tools, tests and fuzzing: never act on
/// the result.
pub fn decode_upload_unverified(body: &[u8]) -> Result<(Upload, Tag), DecodeError> {
    let split = body
        .len()
        .checked_sub(TAG_LEN)
        .ok_or(DecodeError::Truncated {
            field: "upload tag",
            needed: TAG_LEN,
            remaining: body.len(),
        })?;
    let (content, tag_bytes) = body.split_at(split);
    let mut tag = [0u8; TAG_LEN];
    tag.copy_from_slice(tag_bytes);
    let (env, rest) = postcard_take::<Envelope>(content, "upload envelope")?;
    if env.flags & !FLAGS_KNOWN != 0 {
        return Err(DecodeError::InvalidValue {
            field: "upload flags",
            reason: "unknown flag bits set",
        });
    }
    let start = i128::from(env.start) + i128::from(TIME_BASE);
    let start = u64::try_from(start).map_err(|_| DecodeError::InvalidValue {
        field: "start",
        reason: "before 1970",
    })?;
    let mut r = Reader::new(rest);
    let channels = read_channels(&mut r)?;
    let readings = env.readings as usize;
    if channels.is_empty() && readings > 0 {
        return Err(DecodeError::InvalidValue {
            field: "readings",
            reason: "readings without channels",
        });
    }
    let mut batch = Batch {
        logger: LoggerId(env.logger),
        epoch: env.epoch,
        first_seq: env.first_seq,
        start,
        interval_s: env.interval_s,
        channels,
        ..Batch::default()
    };
    if env.flags & FLAG_PREVIOUS != 0 {
        batch.previous = Some(read_previous(&mut r)?);
    }
    if env.flags & FLAG_GAPS != 0 {
        batch.gaps = read_gaps(&mut r, batch.first_seq, readings as u64)?;
    }
    if env.flags & FLAG_ALARMS != 0 {
        batch.alarms = read_alarms(&mut r, batch.first_seq)?;
    }
    if env.flags & FLAG_STATUS != 0 {
        let (status, rest) = postcard_take::<Status>(r.rest(), "status")?;
        batch.status = Some(status);
        r = Reader::new(rest);
    }
    batch.values = read_values(r.rest(), readings, batch.channels.len())?;
    batch.validate().map_err(|e| DecodeError::InvalidValue {
        field: "batch",
        reason: match e {
            ApiMisuse::InvalidBatch { reason } => reason,
            _ => "invalid batch",
        },
    })?;
    let upload = Upload {
        batch,
        settings_version: env.settings_version,
        last: env.flags & FLAG_LAST != 0,
    };
    Ok((upload, tag))
}

/// Appends an ack frame to `out`, bound to `batch_tag` (the tag of the upload it answers).
pub fn encode_ack(
    out: &mut Vec<u8>,
    key: &LoggerKey,
    batch_tag: &Tag,
    ack: &Ack,
) -> Result<(), ApiMisuse> {
    if let Some(settings) = &ack.settings {
        settings.validate()?;
    }
    let mut body = Vec::with_capacity(48);
    let head = AckHead {
        batch_index: ack.batch_index,
        stored: ack.stored.map(|m| (m.epoch, m.seq)),
        server_time: ack.server_time,
        has_settings: ack.settings.is_some(),
    };
    postcard_put(&mut body, &head);
    if let Some(settings) = &ack.settings {
        write_settings(&mut body, settings);
    }
    let tag = key.tag(&[ACK_LABEL, batch_tag, &body]);
    body.extend_from_slice(&tag);
    encode_frame(out, VERSION, MSG_ACK, &body);
    Ok(())
}

/// Decodes an ack body without checking its tag; returns the ack and the tag to check with
/// [`verify_ack`] once the caller knows which batch it answers.
pub fn decode_ack_unverified(body: &[u8]) -> Result<(Ack, Tag), DecodeError> {
    let split = body
        .len()
        .checked_sub(TAG_LEN)
        .ok_or(DecodeError::Truncated {
            field: "ack tag",
            needed: TAG_LEN,
            remaining: body.len(),
        })?;
    let (content, tag_bytes) = body.split_at(split);
    let mut tag = [0u8; TAG_LEN];
    tag.copy_from_slice(tag_bytes);
    let (head, rest) = postcard_take::<AckHead>(content, "ack header")?;
    let mut r = Reader::new(rest);
    let settings = if head.has_settings {
        Some(read_settings(&mut r)?)
    } else {
        None
    };
    r.finish()?;
    let ack = Ack {
        batch_index: head.batch_index,
        stored: head.stored.map(|(epoch, seq)| Mark { epoch, seq }),
        server_time: head.server_time,
        settings,
    };
    Ok((ack, tag))
}

/// Checks an ack body's tag against `key` and the tag of the batch it answers.
pub fn verify_ack(body: &[u8], key: &LoggerKey, batch_tag: &Tag) -> bool {
    match body.len().checked_sub(TAG_LEN) {
        Some(split) => {
            let (content, tag) = body.split_at(split);
            key.verify(&[ACK_LABEL, batch_tag, content], tag)
        }
        None => false,
    }
}

/// Appends a reject frame (one reason byte, unauthenticated).
pub fn encode_reject(out: &mut Vec<u8>, reason: RejectReason) {
    encode_frame(out, VERSION, MSG_REJECT, &[reason.code()]);
}

/// Decodes a reject body.
pub fn decode_reject(body: &[u8]) -> Result<RejectReason, DecodeError> {
    let mut r = Reader::new(body);
    let code = r.u8("reject reason")?;
    r.finish()?;
    Ok(RejectReason::from_code(code))
}

// ---- helpers ---------------------------------------------------------------------------------

fn encode_upload_body(body: &mut Vec<u8>, upload: &Upload) -> Result<(), ApiMisuse> {
    let batch = &upload.batch;
    batch.validate()?;
    let mut flags = 0;
    if upload.last {
        flags |= FLAG_LAST;
    }
    if !batch.gaps.is_empty() {
        flags |= FLAG_GAPS;
    }
    if !batch.alarms.is_empty() {
        flags |= FLAG_ALARMS;
    }
    if batch.status.is_some() {
        flags |= FLAG_STATUS;
    }
    if batch.previous.is_some() {
        flags |= FLAG_PREVIOUS;
    }
    // validate() bounds start by 2^40, so the difference fits in i64.
    let start = i64::try_from(i128::from(batch.start) - i128::from(TIME_BASE)).map_err(|_| {
        ApiMisuse::InvalidBatch {
            reason: "start is out of range",
        }
    })?;
    let env = Envelope {
        flags,
        logger: batch.logger.0,
        epoch: batch.epoch,
        first_seq: batch.first_seq,
        settings_version: upload.settings_version,
        start,
        interval_s: batch.interval_s,
        // INVARIANT: validate() checked the reading count fits in u32.
        readings: u32::try_from(batch.reading_count()).expect("INVARIANT: checked by validate"),
    };
    postcard_put(body, &env);
    let mut w = Writer::new(body);
    w.varint(batch.channels.len() as u64);
    for channel in &batch.channels {
        if let Some(i) = PRESETS.iter().position(|p| p == channel) {
            w.u8(i as u8 + 1);
        } else {
            w.u8(0);
            w.u8(channel.kind.0);
            w.u8(channel.unit.0);
            w.bytes(&channel.exponent.to_be_bytes());
        }
    }
    if let Some(previous) = &batch.previous {
        w.varint(u64::from(previous.epoch));
        w.varint(previous.next_seq);
        w.u8(u8::from(previous.abandoned));
    }
    if !batch.gaps.is_empty() {
        w.varint(batch.gaps.len() as u64);
        let mut pos = batch.first_seq;
        for gap in &batch.gaps {
            w.varint(gap.seq - pos);
            w.varint(gap.count);
            pos = gap.seq + gap.count;
        }
    }
    if !batch.alarms.is_empty() {
        w.varint(batch.alarms.len() as u64);
        let mut prev = batch.first_seq;
        for alarm in &batch.alarms {
            w.varint(alarm.seq - prev);
            prev = alarm.seq;
            w.u8(alarm.channel);
            match alarm.kind {
                AlarmKind::High { value } => {
                    w.u8(1);
                    w.varint(zigzag(i64::from(value)));
                }
                AlarmKind::Low { value } => {
                    w.u8(2);
                    w.varint(zigzag(i64::from(value)));
                }
                AlarmKind::Cleared => w.u8(3),
                AlarmKind::ProbeFault => w.u8(4),
                AlarmKind::ProbeDisconnected => w.u8(5),
            }
        }
    }
    if let Some(status) = &batch.status {
        postcard_put(body, status);
    }
    write_values(body, &batch.values, batch.channels.len());
    Ok(())
}

fn read_channels(r: &mut Reader<'_>) -> Result<Vec<Channel>, DecodeError> {
    let count = r.varint_named("channel count")?;
    if count > MAX_CHANNELS as u64 {
        return Err(DecodeError::InvalidValue {
            field: "channel count",
            reason: "more than 16 channels",
        });
    }
    let mut channels = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let preset = r.u8("channel preset")?;
        let channel = if preset == 0 {
            let channel = Channel {
                kind: ChannelKind(r.u8("channel kind")?),
                unit: Unit(r.u8("channel unit")?),
                exponent: i8::from_be_bytes(r.array("channel exponent")?),
            };
            if PRESETS.contains(&channel) {
                return Err(DecodeError::InvalidValue {
                    field: "channel",
                    reason: "spelled out although it has a preset code",
                });
            }
            channel
        } else {
            *PRESETS
                .get(usize::from(preset) - 1)
                .ok_or(DecodeError::InvalidValue {
                    field: "channel preset",
                    reason: "unknown preset code",
                })?
        };
        channels.push(channel);
    }
    Ok(channels)
}

fn read_previous(r: &mut Reader<'_>) -> Result<EpochEnd, DecodeError> {
    let epoch = r.varint_u32("previous epoch")?;
    let next_seq = r.varint_named("previous next_seq")?;
    let abandoned = match r.u8("previous abandoned")? {
        0 => false,
        1 => true,
        _ => {
            return Err(DecodeError::InvalidValue {
                field: "previous abandoned",
                reason: "must be 0 or 1",
            });
        }
    };
    Ok(EpochEnd {
        epoch,
        next_seq,
        abandoned,
    })
}

fn read_gaps(r: &mut Reader<'_>, first_seq: u64, readings: u64) -> Result<Vec<Gap>, DecodeError> {
    let count = r.varint_named("gap count")?;
    // Each gap takes at least two bytes: check before allocating.
    if count == 0 || count > (r.remaining() / 2) as u64 {
        return Err(DecodeError::InvalidValue {
            field: "gap count",
            reason: "zero, or more gaps than the bytes present can hold",
        });
    }
    let overflow = DecodeError::InvalidValue {
        field: "gap",
        reason: "sequence numbers overflow",
    };
    let mut gaps = Vec::with_capacity(count as usize);
    let mut pos = first_seq;
    let mut readings_left = readings;
    for _ in 0..count {
        let before = r.varint_named("gap offset")?;
        let len = r.varint_named("gap length")?;
        if before > readings_left {
            return Err(DecodeError::InvalidValue {
                field: "gap offset",
                reason: "beyond the last reading",
            });
        }
        readings_left -= before;
        let seq = pos.checked_add(before).ok_or(overflow.clone())?;
        pos = seq.checked_add(len).ok_or(overflow.clone())?;
        gaps.push(Gap { seq, count: len });
    }
    Ok(gaps)
}

fn read_alarms(r: &mut Reader<'_>, first_seq: u64) -> Result<Vec<Alarm>, DecodeError> {
    let count = r.varint_named("alarm count")?;
    // Each alarm takes at least three bytes.
    if count == 0 || count > (r.remaining() / 3) as u64 {
        return Err(DecodeError::InvalidValue {
            field: "alarm count",
            reason: "zero, or more alarms than the bytes present can hold",
        });
    }
    let mut alarms = Vec::with_capacity(count as usize);
    let mut seq = first_seq;
    for _ in 0..count {
        let delta = r.varint_named("alarm offset")?;
        seq = seq.checked_add(delta).ok_or(DecodeError::InvalidValue {
            field: "alarm offset",
            reason: "sequence number overflows",
        })?;
        let channel = r.u8("alarm channel")?;
        let kind = match r.u8("alarm kind")? {
            1 => AlarmKind::High {
                value: read_i32(r, "alarm value")?,
            },
            2 => AlarmKind::Low {
                value: read_i32(r, "alarm value")?,
            },
            3 => AlarmKind::Cleared,
            4 => AlarmKind::ProbeFault,
            5 => AlarmKind::ProbeDisconnected,
            _ => {
                return Err(DecodeError::InvalidValue {
                    field: "alarm kind",
                    reason: "unknown alarm kind",
                });
            }
        };
        alarms.push(Alarm { seq, channel, kind });
    }
    Ok(alarms)
}

fn read_i32(r: &mut Reader<'_>, field: &'static str) -> Result<i32, DecodeError> {
    let v = unzigzag(r.varint_named(field)?);
    i32::try_from(v).map_err(|_| DecodeError::InvalidValue {
        field,
        reason: "does not fit in 32 bits",
    })
}

fn write_settings(body: &mut Vec<u8>, s: &Settings) {
    let mut w = Writer::new(body);
    w.varint(u64::from(s.version));
    w.varint(u64::from(s.interval_s));
    w.varint(s.thresholds.len() as u64);
    for t in &s.thresholds {
        w.u8(t.channel);
        w.u8(u8::from(t.low.is_some()) | (u8::from(t.high.is_some()) << 1));
        for v in [t.low, t.high].into_iter().flatten() {
            w.varint(zigzag(i64::from(v)));
        }
    }
}

fn read_settings(r: &mut Reader<'_>) -> Result<Settings, DecodeError> {
    let version = r.varint_u32("settings version")?;
    let interval_s = r.varint_u32("settings interval")?;
    if interval_s == 0 {
        return Err(DecodeError::InvalidValue {
            field: "settings interval",
            reason: "must be at least 1",
        });
    }
    let count = r.varint_named("threshold count")?;
    if count > MAX_THRESHOLDS as u64 {
        return Err(DecodeError::InvalidValue {
            field: "threshold count",
            reason: "more than 16 thresholds",
        });
    }
    let mut thresholds = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let channel = r.u8("threshold channel")?;
        let flags = r.u8("threshold flags")?;
        if flags & !3 != 0 {
            return Err(DecodeError::InvalidValue {
                field: "threshold flags",
                reason: "unknown flag bits set",
            });
        }
        let low = if flags & 1 != 0 {
            Some(read_i32(r, "threshold low")?)
        } else {
            None
        };
        let high = if flags & 2 != 0 {
            Some(read_i32(r, "threshold high")?)
        } else {
            None
        };
        thresholds.push(Threshold { channel, low, high });
    }
    Ok(Settings {
        version,
        interval_s,
        thresholds,
    })
}

/// Readings: for each reading, for each channel, `0` if the value is absent, otherwise
/// `zigzag(value - previous value of the channel) + 1` (the previous value starts at 0), as a
/// nibble varint: 4-bit groups, high bit = more groups follow, 3 value bits, least significant
/// group first, two groups per byte (high nibble first), the last byte padded with a zero nibble.
/// A value that changes by -3..=3 between readings costs half a byte.
fn write_values(body: &mut Vec<u8>, values: &[Option<i32>], width: usize) {
    let mut prev = [0i64; MAX_CHANNELS];
    let mut w = NibbleWriter {
        out: body,
        half: false,
    };
    for (i, value) in values.iter().enumerate() {
        let c = i % width;
        let code = match value {
            None => 0,
            Some(v) => {
                let v = i64::from(*v);
                let code = zigzag(v - prev[c]) + 1;
                prev[c] = v;
                code
            }
        };
        w.varint(code);
    }
}

fn read_values(
    bytes: &[u8],
    readings: usize,
    width: usize,
) -> Result<Vec<Option<i32>>, DecodeError> {
    let count = (readings as u64).saturating_mul(width as u64);
    // Every value takes at least one nibble: check before allocating.
    if count > (bytes.len() as u64) * 2 {
        return Err(DecodeError::Truncated {
            field: "readings",
            needed: usize::try_from(count.div_ceil(2)).unwrap_or(usize::MAX),
            remaining: bytes.len(),
        });
    }
    let count = count as usize;
    let mut values = Vec::with_capacity(count);
    let mut prev = [0i64; MAX_CHANNELS];
    let mut r = NibbleReader { buf: bytes, pos: 0 };
    for i in 0..count {
        let code = r.varint()?;
        if code == 0 {
            values.push(None);
            continue;
        }
        let c = i % width;
        let v = prev[c]
            .checked_add(unzigzag(code - 1))
            .and_then(|v| i32::try_from(v).ok())
            .ok_or(DecodeError::InvalidValue {
                field: "reading",
                reason: "value outside the 32-bit range",
            })?;
        prev[c] = i64::from(v);
        values.push(Some(v));
    }
    r.finish()?;
    Ok(values)
}

struct NibbleWriter<'a> {
    out: &'a mut Vec<u8>,
    half: bool,
}

impl NibbleWriter<'_> {
    fn push(&mut self, nibble: u8) {
        if self.half {
            if let Some(last) = self.out.last_mut() {
                *last |= nibble;
            }
        } else {
            self.out.push(nibble << 4);
        }
        self.half = !self.half;
    }

    fn varint(&mut self, mut v: u64) {
        loop {
            let bits = (v & 7) as u8;
            v >>= 3;
            if v == 0 {
                self.push(bits);
                return;
            }
            self.push(0x8 | bits);
        }
    }
}

struct NibbleReader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl NibbleReader<'_> {
    fn next(&mut self) -> Result<u8, DecodeError> {
        let byte = *self.buf.get(self.pos / 2).ok_or(DecodeError::Truncated {
            field: "readings",
            needed: 1,
            remaining: 0,
        })?;
        let nibble = if self.pos % 2 == 0 {
            byte >> 4
        } else {
            byte & 0xf
        };
        self.pos += 1;
        Ok(nibble)
    }

    fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut value = 0u64;
        for i in 0..22 {
            let nibble = self.next()?;
            let bits = u64::from(nibble & 7);
            if i == 21 && (bits > 1 || nibble & 8 != 0) {
                return Err(DecodeError::VarintOverflow { field: "reading" });
            }
            value |= bits << (3 * i);
            if nibble & 8 == 0 {
                if nibble == 0 && i > 0 {
                    return Err(DecodeError::VarintNotCanonical { field: "reading" });
                }
                return Ok(value);
            }
        }
        Err(DecodeError::VarintOverflow { field: "reading" })
    }

    fn finish(&self) -> Result<(), DecodeError> {
        let used = self.pos.div_ceil(2);
        if self.pos % 2 == 1 && self.buf[used - 1] & 0xf != 0 {
            return Err(DecodeError::InvalidValue {
                field: "readings",
                reason: "padding nibble is not zero",
            });
        }
        match self.buf.len() - used {
            0 => Ok(()),
            count => Err(DecodeError::TrailingBytes { count }),
        }
    }
}

#[allow(clippy::cast_sign_loss)] // zigzag maps the sign into bit 0 on purpose
fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

#[allow(clippy::cast_possible_wrap)] // u >> 1 fits in 63 bits; u & 1 is 0 or 1
fn unzigzag(u: u64) -> i64 {
    ((u >> 1) as i64) ^ -((u & 1) as i64)
}

fn postcard_put<T: Serialize>(out: &mut Vec<u8>, value: &T) {
    // INVARIANT: serialising plain structs of integers into a Vec cannot fail.
    let bytes = postcard::to_allocvec(value).expect("INVARIANT: postcard to Vec is infallible");
    out.extend_from_slice(&bytes);
}

fn postcard_take<'a, T: Deserialize<'a>>(
    bytes: &'a [u8],
    field: &'static str,
) -> Result<(T, &'a [u8]), DecodeError> {
    postcard::take_from_bytes(bytes).map_err(|e| match e {
        postcard::Error::DeserializeUnexpectedEnd => DecodeError::Truncated {
            field,
            needed: 1,
            remaining: 0,
        },
        postcard::Error::DeserializeBadVarint => DecodeError::VarintOverflow { field },
        _ => DecodeError::InvalidValue {
            field,
            reason: "malformed postcard encoding",
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Firmware;
    use fleetwire_wire::FrameDecoder;
    use proptest::prelude::*;

    fn key() -> LoggerKey {
        LoggerKey::from_bytes([7; 32])
    }

    fn body_of(frame: &[u8]) -> &[u8] {
        &frame[fleetwire_wire::FRAME_HEADER_LEN..]
    }

    #[test]
    fn nibble_varint_round_trips_edges() {
        for v in [
            0u64,
            1,
            7,
            8,
            63,
            64,
            511,
            512,
            u64::MAX,
            u64::MAX - 1,
            1 << 63,
        ] {
            let mut out = Vec::new();
            let mut w = NibbleWriter {
                out: &mut out,
                half: false,
            };
            w.varint(v);
            w.varint(5);
            let mut r = NibbleReader { buf: &out, pos: 0 };
            assert_eq!(r.varint().unwrap(), v);
            assert_eq!(r.varint().unwrap(), 5);
            r.finish().unwrap();
        }
    }

    #[test]
    fn non_canonical_and_padding_rejected() {
        // 0x80: nibble 8 (more, bits 0) then nibble 0 (stop, bits 0) = overlong zero.
        let mut r = NibbleReader {
            buf: &[0x80],
            pos: 0,
        };
        assert!(matches!(
            r.varint(),
            Err(DecodeError::VarintNotCanonical { .. })
        ));
        // Value 1 then a padding nibble 1.
        assert!(read_values(&[0x11], 1, 1).is_err());
        assert_eq!(read_values(&[0x10], 1, 1).unwrap(), vec![Some(0)]);
        assert_eq!(read_values(&[0x20], 1, 1).unwrap(), vec![Some(-1)]);
        assert_eq!(read_values(&[0x00], 1, 1).unwrap(), vec![None]);
    }

    #[test]
    fn huge_reading_count_is_refused_before_allocating() {
        let err = read_values(&[0x22], u32::MAX as usize, 16).unwrap_err();
        assert!(matches!(
            err,
            DecodeError::Truncated {
                field: "readings",
                ..
            }
        ));
    }

    #[test]
    fn tampered_and_wrong_key_are_bad_mac() {
        let upload = Upload {
            batch: Batch {
                logger: LoggerId(42),
                epoch: 0,
                first_seq: 0,
                start: TIME_BASE,
                interval_s: 300,
                channels: vec![Channel::TEMPERATURE_DECI_C],
                values: vec![Some(215), Some(216)],
                ..Batch::default()
            },
            settings_version: 0,
            last: true,
        };
        let mut frame = Vec::new();
        encode_upload(&mut frame, &key(), &upload).unwrap();
        assert_eq!(decode_upload(body_of(&frame), &key()).unwrap().0, upload);
        let wrong = LoggerKey::from_bytes([8; 32]);
        let err = decode_upload(body_of(&frame), &wrong).unwrap_err();
        assert_eq!(
            err,
            SensorError::BadMac {
                logger: LoggerId(42),
                what: "batch"
            }
        );
        let mut tampered = frame.clone();
        let n = tampered.len();
        tampered[n - 17] ^= 1;
        assert!(matches!(
            decode_upload(body_of(&tampered), &key()),
            Err(SensorError::BadMac { .. })
        ));
    }

    #[test]
    fn ack_round_trip_and_binding() {
        let ack = Ack {
            batch_index: 2,
            stored: Some(Mark { epoch: 1, seq: 99 }),
            server_time: 1_750_000_000,
            settings: Some(Settings {
                version: 3,
                interval_s: 600,
                thresholds: vec![Threshold {
                    channel: 0,
                    low: Some(-50),
                    high: None,
                }],
            }),
        };
        let tag = [1u8; 16];
        let mut frame = Vec::new();
        encode_ack(&mut frame, &key(), &tag, &ack).unwrap();
        let body = body_of(&frame);
        assert_eq!(decode_ack_unverified(body).unwrap().0, ack);
        assert!(verify_ack(body, &key(), &tag));
        assert!(!verify_ack(body, &key(), &[2u8; 16]));
    }

    pub(crate) fn batch_strategy() -> impl Strategy<Value = Upload> {
        let channel = prop_oneof![
            Just(Channel::TEMPERATURE_DECI_C),
            Just(Channel::HUMIDITY_PCT),
            (any::<u8>(), any::<u8>(), any::<i8>()).prop_map(|(k, u, e)| Channel {
                kind: ChannelKind(k),
                unit: Unit(u),
                exponent: e
            }),
        ];
        (
            prop::collection::vec(channel, 1..4),
            0usize..60,
            any::<u64>(),
            any::<u32>(),
            prop::collection::vec((0u64..5, 1u64..5), 0..4),
            prop_oneof![Just(0i32), Just(3), Just(1000), Just(i32::MAX)],
            any::<u64>(),
            any::<bool>(),
        )
            .prop_flat_map(
                |(channels, readings, logger, epoch, gaps, spread, seed, last)| {
                    let width = channels.len();
                    (
                        Just((channels, readings, logger, epoch, gaps, seed, last)),
                        prop::collection::vec(
                            prop::option::weighted(0.95, -spread..=spread),
                            readings * width,
                        ),
                    )
                },
            )
            .prop_map(
                |((channels, readings, logger, epoch, raw_gaps, seed, last), values)| {
                    // A quarter of the batches start an epoch at 0, and most of those open it.
                    let opens = seed % 4 == 1 && (readings > 0 || !raw_gaps.is_empty());
                    let first_seq = if opens { 0 } else { seed >> 8 };
                    let mut gaps = Vec::new();
                    let mut pos = first_seq;
                    let mut left = readings as u64;
                    for (i, (before, count)) in raw_gaps.into_iter().enumerate() {
                        let before = before.min(left).max(u64::from(i > 0));
                        if before > left {
                            break;
                        }
                        left -= before;
                        gaps.push(Gap {
                            seq: pos + before,
                            count,
                        });
                        pos += before + count;
                    }
                    let mut alarms = Vec::new();
                    if readings > 0 {
                        alarms.push(Alarm {
                            seq: first_seq,
                            channel: 0,
                            kind: AlarmKind::High { value: -7 },
                        });
                        alarms.push(Alarm {
                            seq: first_seq,
                            channel: (channels.len() - 1) as u8,
                            kind: AlarmKind::ProbeDisconnected,
                        });
                    }
                    let status = (seed % 3 == 0).then_some(Status {
                        counter: (seed >> 20) as u32,
                        battery_mv: 3012,
                        battery_percent: 87,
                        firmware: Firmware {
                            major: 1,
                            minor: 2,
                            patch: 300,
                        },
                    });
                    Upload {
                        batch: Batch {
                            logger: LoggerId(logger),
                            epoch,
                            first_seq,
                            start: TIME_BASE + (seed % 100_000_000),
                            interval_s: (seed % 3600) as u32 + 1,
                            channels,
                            values,
                            gaps,
                            alarms,
                            status,
                            previous: (opens && epoch > 0 && seed % 8 != 5).then_some(EpochEnd {
                                epoch: epoch - 1 - (seed >> 50) as u32 % epoch,
                                next_seq: seed >> 30,
                                abandoned: seed % 16 < 8,
                            }),
                        },
                        settings_version: (seed >> 40) as u32,
                        last,
                    }
                },
            )
    }

    proptest! {
        #[test]
        fn upload_round_trips(upload in batch_strategy()) {
            prop_assert_eq!(upload.batch.validate(), Ok(()));
            let mut frame = Vec::new();
            let tag = encode_upload(&mut frame, &key(), &upload).unwrap();
            let mut dec = FrameDecoder::default();
            let (used, f) = dec.decode(&frame).unwrap();
            prop_assert_eq!(used, frame.len());
            let f = f.unwrap();
            prop_assert_eq!((f.version, f.msg_type), (VERSION, MSG_UPLOAD));
            let (back, back_tag) = decode_upload(f.body, &key()).unwrap();
            prop_assert_eq!(back_tag, tag);
            prop_assert_eq!(back, upload);
        }

        #[test]
        fn any_single_byte_flip_is_rejected(upload in batch_strategy(), pos: usize, bit in 0u8..8) {
            let mut frame = Vec::new();
            encode_upload(&mut frame, &key(), &upload).unwrap();
            let body = &mut frame[fleetwire_wire::FRAME_HEADER_LEN..];
            let i = pos % body.len();
            body[i] ^= 1 << bit;
            prop_assert!(decode_upload(body, &key()).is_err());
        }

        #[test]
        fn arbitrary_bodies_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode_upload_unverified(&bytes);
            let _ = decode_upload(&bytes, &key());
            let _ = decode_ack_unverified(&bytes);
            let _ = decode_reject(&bytes);
        }
    }
}
