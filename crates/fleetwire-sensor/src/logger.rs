//! The logger side of one upload connection.
//!
//! The logger wakes, connects, and builds a [`LoggerSession`] with every batch it holds from the
//! cloud's last acknowledged mark onward, oldest epoch first. All uploads go out in the first
//! flight (the first one doubles as the hello). Each [`Event::Acked`] says what the cloud has
//! durably stored of the answered upload's epoch: free exactly those slots of that epoch,
//! nothing of any other. When every upload is acknowledged, or the radio-on deadline passes, the
//! session closes and the radio goes off. What was not acknowledged stays in memory and goes out
//! again next wake; the cloud drops what it already has.
//!
//! **Epochs.** When the logger loses its numbering it starts epoch `e + 1` at sequence 0. The
//! first batch of the new epoch carries [`Batch::previous`]: epoch `e` and the sequence number
//! after the last slot of `e` it sent (its next sequence number), or, if it lost track
//! (`abandoned`), the one after the last slot the cloud acknowledged. Keep that batch (and the
//! unacknowledged slots of `e`, sent before it) until the cloud acknowledges its slot 0; the
//! cloud opens the new epoch only once it holds exactly the stated prefix of `e`.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fleetwire_wire::{DecodeError, FrameDecoder};

use crate::Transmit;
use crate::codec::{
    self, MSG_ACK, MSG_REJECT, MSG_UPLOAD, Upload, VERSION, decode_ack_unverified, verify_ack,
};
use crate::crypto::{LoggerKey, Tag};
use crate::error::{ApiMisuse, CloseReason, SensorError};
use crate::model::{Batch, LoggerId, Mark, Settings};

/// What a logger session needs to know.
#[derive(Debug, Clone)]
pub struct LoggerConfig {
    /// This logger.
    pub logger: LoggerId,
    /// Its key, shared with the cloud.
    pub key: LoggerKey,
    /// The [`Settings::version`] the logger runs now.
    pub settings_version: u32,
    /// Longest the radio may stay on for one connection (from `new`). Default 20 s.
    pub radio_deadline: Duration,
    /// Largest frame accepted from the cloud. Default 4 KiB (acks are tens of bytes).
    pub max_frame_len: u32,
}

impl LoggerConfig {
    /// A configuration with the defaults.
    pub fn new(logger: LoggerId, key: LoggerKey) -> Self {
        Self {
            logger,
            key,
            settings_version: 0,
            radio_deadline: Duration::from_secs(20),
            max_frame_len: 4096,
        }
    }
}

/// What the logger application must act on.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// The cloud answered upload `batch_index`: slots `0..=stored.seq` of epoch `stored.epoch`
    /// (the answered upload's epoch) are durably stored. Free exactly those; keep the rest,
    /// including every slot of any other epoch.
    Acked {
        /// Which upload of this connection was answered.
        batch_index: u32,
        /// What the cloud durably holds of the upload's epoch; `None` if nothing of it.
        stored: Option<Mark>,
        /// The cloud's clock, unix seconds.
        server_time: u64,
    },
    /// The cloud sent settings newer than the ones this logger runs: apply them (and persist
    /// their version for the next [`LoggerConfig::settings_version`]).
    Settings(Settings),
    /// The session ended; turn the radio off after flushing `poll_transmit`. Exactly once.
    Closed {
        /// Why.
        reason: CloseReason,
    },
}

/// Where the session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum State {
    /// Uploads sent (or queued), waiting for acknowledgements.
    AwaitingAcks,
    /// Finished or failed.
    Closed,
}

/// Counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    /// Bytes handed out by `poll_transmit`.
    pub bytes_sent: u64,
    /// Bytes passed to `handle_input`.
    pub bytes_received: u64,
    /// Uploads in the first flight.
    pub batches_sent: u32,
    /// Uploads acknowledged.
    pub batches_acked: u32,
    /// Readings in the uploads.
    pub readings_sent: u64,
}

/// One upload connection, logger side. Sans-IO: see the crate docs for the run loop.
#[derive(Debug)]
pub struct LoggerSession {
    config: Arc<LoggerConfig>,
    deadline: Instant,
    outgoing: Vec<u8>,
    /// Per upload: its tag (the ack is bound to it) and its epoch.
    sent: Vec<(Tag, u32)>,
    next_ack: u32,
    settings_version: u32,
    /// Per epoch acknowledged on this connection, the highest mark.
    stored: Vec<Mark>,
    decoder: FrameDecoder,
    events: VecDeque<Event>,
    closed: bool,
    stats: Stats,
}

impl LoggerSession {
    /// Starts a connection that uploads `batches` (in order; the last one is flagged as last).
    /// Send [`Batch::empty`] to check in without data.
    pub fn new(
        config: Arc<LoggerConfig>,
        now: Instant,
        batches: Vec<Batch>,
    ) -> Result<Self, ApiMisuse> {
        if batches.is_empty() {
            return Err(ApiMisuse::NoBatches);
        }
        let mut outgoing = Vec::new();
        let mut sent = Vec::with_capacity(batches.len());
        let mut stats = Stats::default();
        let count = batches.len();
        for (i, batch) in batches.into_iter().enumerate() {
            if batch.logger != config.logger {
                return Err(ApiMisuse::WrongLogger {
                    expected: config.logger,
                    got: batch.logger,
                });
            }
            stats.readings_sent += batch.reading_count() as u64;
            let epoch = batch.epoch;
            let upload = Upload {
                batch,
                settings_version: config.settings_version,
                last: i + 1 == count,
            };
            let tag = codec::encode_upload(&mut outgoing, &config.key, &upload)?;
            sent.push((tag, epoch));
        }
        stats.batches_sent = u32::try_from(count).unwrap_or(u32::MAX);
        Ok(Self {
            deadline: now + config.radio_deadline,
            decoder: FrameDecoder::new(config.max_frame_len),
            settings_version: config.settings_version,
            config,
            outgoing,
            sent,
            next_ack: 0,
            stored: Vec::new(),
            events: VecDeque::new(),
            closed: false,
            stats,
        })
    }

    /// Bytes from the cloud. A fatal error is returned once and also reported as
    /// [`Event::Closed`]; after that every input is a no-op.
    pub fn handle_input(&mut self, now: Instant, data: &[u8]) -> Result<(), SensorError> {
        if self.closed {
            return Ok(());
        }
        self.stats.bytes_received += data.len() as u64;
        if now >= self.deadline {
            self.handle_timeout(now);
            return Ok(());
        }
        let mut input = data;
        while !input.is_empty() && !self.closed {
            let (used, frame) = match self.decoder.decode(input) {
                Ok(ok) => ok,
                Err(e) => return self.fail(e.into()),
            };
            input = &input[used..];
            let Some(frame) = frame else { continue };
            if frame.version != VERSION {
                let err = DecodeError::UnsupportedVersion {
                    version: frame.version,
                    supported: VERSION,
                };
                return self.fail(err.into());
            }
            let (msg_type, body) = (frame.msg_type, frame.body.to_vec());
            if let Err(e) = self.on_frame(msg_type, &body) {
                return self.fail(e);
            }
        }
        Ok(())
    }

    /// The passage of time: past the radio-on deadline the session closes. Early calls are no-ops.
    pub fn handle_timeout(&mut self, now: Instant) {
        if !self.closed && now >= self.deadline {
            let unacked = self.stats.batches_sent - self.next_ack;
            let _ = self.fail(SensorError::RadioDeadline { unacked });
        }
    }

    /// The cloud closed the connection (or it broke). Unacknowledged data stays with the caller.
    pub fn handle_close(&mut self, _now: Instant) {
        if !self.closed {
            let _ = self.fail(SensorError::PeerClosed);
        }
    }

    /// Appends bytes to send to `buf`. The whole first flight comes out of the first call.
    #[must_use]
    pub fn poll_transmit(&mut self, buf: &mut Vec<u8>) -> Option<Transmit> {
        if self.outgoing.is_empty() {
            return None;
        }
        let len = self.outgoing.len();
        buf.append(&mut self.outgoing);
        self.stats.bytes_sent += len as u64;
        Some(Transmit::stream(len))
    }

    /// When to call `handle_timeout` next: the radio-on deadline.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        (!self.closed).then_some(self.deadline)
    }

    /// The next event.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Where the session is.
    pub fn state(&self) -> State {
        if self.closed {
            State::Closed
        } else {
            State::AwaitingAcks
        }
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// What the cloud reported durably stored on this connection: per epoch, the highest mark
    /// (slots `0..=seq` of that epoch), in epoch order. Free exactly these.
    pub fn stored(&self) -> &[Mark] {
        &self.stored
    }

    fn on_frame(&mut self, msg_type: u8, body: &[u8]) -> Result<(), SensorError> {
        match msg_type {
            MSG_ACK => self.on_ack(body),
            MSG_REJECT => Err(SensorError::Rejected {
                reason: codec::decode_reject(body)?,
            }),
            MSG_UPLOAD => Err(SensorError::UnexpectedMessage {
                msg_type,
                context: "a logger never receives uploads",
            }),
            other => Err(DecodeError::UnknownMessageType { msg_type: other }.into()),
        }
    }

    fn on_ack(&mut self, body: &[u8]) -> Result<(), SensorError> {
        let (ack, _) = decode_ack_unverified(body)?;
        let sent = self.stats.batches_sent;
        if ack.batch_index != self.next_ack {
            return Err(SensorError::AckOutOfOrder {
                index: ack.batch_index,
                sent,
            });
        }
        let (tag, epoch) = self.sent[self.next_ack as usize];
        if !verify_ack(body, &self.config.key, &tag) {
            return Err(SensorError::BadMac {
                logger: self.config.logger,
                what: "acknowledgement",
            });
        }
        if ack.stored.is_some_and(|m| m.epoch != epoch) {
            return Err(SensorError::UnexpectedMessage {
                msg_type: MSG_ACK,
                context: "the acknowledgement names another epoch than the upload it answers",
            });
        }
        self.next_ack += 1;
        self.stats.batches_acked = self.next_ack;
        if let Some(mark) = ack.stored {
            match self.stored.binary_search_by_key(&mark.epoch, |m| m.epoch) {
                Ok(i) => self.stored[i].seq = self.stored[i].seq.max(mark.seq),
                Err(i) => self.stored.insert(i, mark),
            }
        }
        self.events.push_back(Event::Acked {
            batch_index: ack.batch_index,
            stored: ack.stored,
            server_time: ack.server_time,
        });
        if let Some(settings) = ack.settings.filter(|s| s.version > self.settings_version) {
            self.settings_version = settings.version;
            self.events.push_back(Event::Settings(settings));
        }
        if self.next_ack == sent {
            self.closed = true;
            self.events.push_back(Event::Closed {
                reason: CloseReason::Finished,
            });
        }
        Ok(())
    }

    fn fail(&mut self, err: SensorError) -> Result<(), SensorError> {
        self.closed = true;
        self.outgoing.clear();
        self.events.push_back(Event::Closed {
            reason: CloseReason::Error(err.clone()),
        });
        Err(err)
    }
}
