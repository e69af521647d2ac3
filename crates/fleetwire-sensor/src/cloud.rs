//! The cloud side of one upload connection.
//!
//! The cloud never speaks first and never sends anything unsolicited: every frame it sends
//! answers an upload. For each connection:
//!
//! 1. The first upload names the logger: [`Event::KeyNeeded`]. Look the logger up and call
//!    [`CloudSession::provide_key`] with its key, what the store holds ([`LoggerRecord::stored`]
//!    and [`LoggerRecord::closed`]), the newest status it holds, and the settings the logger
//!    should run (or `None`: unknown logger, rejected).
//! 2. Each authenticated upload that brings new slots becomes [`Event::Batch`]. Write it durably
//!    (readings, the new mark and the closed epoch if any, in one transaction, on condition that
//!    the stored mark is still `after`), then call [`CloudSession::confirm_stored`]. Only then
//!    is the ack sent.
//! 3. Uploads that hold nothing new ([`Event::Duplicate`]), or that do not follow what is stored
//!    ([`Event::OutOfOrder`]), are acknowledged with what the store holds of their epoch and not
//!    stored.
//! 4. After the ack of the upload flagged last: [`Event::Closed`] with
//!    [`CloseReason::Finished`]. Flush `poll_transmit`, then close.
//!
//! ## Why no acknowledgement can cover an unstored reading
//!
//! The store holds, for every epoch of a logger, a contiguous prefix of slots `0..next` (readings
//! or explicit gap records), each once; the epochs form a chain, each closed at a fixed `next`.
//! An upload is stored only if it continues that prefix (it starts at or before `next`), and a
//! new epoch only if its first batch starts at 0 and states, under the logger's MAC, exactly
//! how the current epoch ended ([`Batch::previous`]: the same epoch and `next`). The ack of an
//! upload of epoch `e` says "slots `0..=seq` of `e`" with `seq + 1` the store's `next` of `e`
//! once every earlier upload of the connection is durable; prefixes only grow and closed epochs
//! never change, so the statement stays true whatever order uploads arrive in, on however many
//! connections. A replayed, reordered or dropped frame can delay storage but never makes a
//! logger free what the store does not hold.

use std::cmp::Ordering;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fleetwire_wire::{DEFAULT_MAX_FRAME_LEN, DecodeError, FrameDecoder};

use crate::Transmit;
use crate::codec::{self, Ack, MSG_ACK, MSG_REJECT, MSG_UPLOAD, VERSION};
use crate::crypto::{LoggerKey, Tag};

use crate::error::{ApiMisuse, CloseReason, RejectReason, SensorError};
use crate::model::{Batch, EpochEnd, LoggerId, Mark, Settings, Status};

/// Limits for one cloud connection.
#[derive(Debug, Clone)]
pub struct CloudConfig {
    /// The whole exchange must finish within this time of `new`. Default 30 s.
    pub deadline: Duration,
    /// Largest upload frame body. Default 64 KiB.
    pub max_frame_len: u32,
    /// Most upload bytes held while waiting for `provide_key`. Default 256 KiB.
    pub max_buffered: usize,
    /// Most uploads in one connection. Default 1024.
    pub max_uploads: u32,
}

impl Default for CloudConfig {
    fn default() -> Self {
        Self {
            deadline: Duration::from_secs(30),
            max_frame_len: DEFAULT_MAX_FRAME_LEN,
            max_buffered: 256 * 1024,
            max_uploads: 1024,
        }
    }
}

/// What the store knows about a logger, handed over in [`CloudSession::provide_key`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggerRecord {
    /// The logger's key.
    pub key: LoggerKey,
    /// The store's mark in the logger's current (latest) epoch: slots `0..=seq` of that epoch
    /// are durably stored. `None` if nothing is stored at all (the logger is in epoch 0).
    pub stored: Option<Mark>,
    /// The epochs the store closed, as recorded when the next one opened (the most recent ones
    /// suffice, e.g. the last 64): uploads of those epochs are acknowledged with what the store
    /// holds of them. An epoch not listed is acknowledged as holding nothing.
    pub closed: Vec<EpochEnd>,
    /// The newest status the store holds, if any; older ones are not reported again.
    pub status: Option<StatusStamp>,
    /// The settings the logger should run; sent with every ack while the logger reports an
    /// older version.
    pub settings: Option<Settings>,
    /// The cloud's clock in unix seconds, echoed in acks so loggers can correct drift.
    pub server_time: u64,
}

/// Orders battery and firmware statuses: the newest has the highest (epoch, counter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StatusStamp {
    /// The epoch of the upload that carried the status.
    pub epoch: u32,
    /// [`Status::counter`].
    pub counter: u32,
}

/// What the cloud application must act on.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// Look up this logger and call [`CloudSession::provide_key`].
    KeyNeeded {
        /// The logger the first upload names (not yet authenticated).
        logger: LoggerId,
    },
    /// Store these new, authenticated slots (readings, gaps, alarms) durably, but only if the
    /// store's mark for the logger is still `after`; then call
    /// [`CloudSession::confirm_stored`] with `id` (or [`CloudSession::storage_failed`]).
    Batch {
        /// Pass to `confirm_stored`.
        id: u64,
        /// The store's mark this batch follows: a conditional write on it makes two concurrent
        /// connections of one logger store each slot once.
        after: Option<Mark>,
        /// Set when the batch opens a new epoch: record this end of the current epoch (`after`'s
        /// epoch, or epoch 0 when nothing is stored) in the same transaction. If `abandoned`,
        /// the slots of that epoch from `next_seq` on are lost: a gap of unknown length.
        closes: Option<EpochEnd>,
        /// The batch, already trimmed to the slots after `after`.
        batch: Batch,
    },
    /// An upload held nothing new: acknowledged and dropped.
    Duplicate {
        /// The logger.
        logger: LoggerId,
        /// The upload's last slot.
        last: Mark,
    },
    /// An upload did not follow what is stored: it started after a hole, opened an epoch
    /// without (or with a wrong) statement of how the current one ended, or belongs to an epoch
    /// the store closed or never had. Acknowledged with what the store holds of its epoch, not
    /// stored. The logger resends from there (or sends gap records for what it lost).
    OutOfOrder {
        /// The logger.
        logger: LoggerId,
        /// The store's mark in its current epoch.
        stored: Option<Mark>,
        /// Where the upload started.
        first: Mark,
    },
    /// An authenticated upload carried a battery and firmware status newer than any the store
    /// holds (see [`StatusStamp`]). Store it on condition that it is still the newest (a
    /// concurrent connection may have stored a newer one).
    Status {
        /// The logger.
        logger: LoggerId,
        /// Orders it against the stored one.
        stamp: StatusStamp,
        /// Its status.
        status: Status,
    },
    /// The session ended. Exactly once.
    Closed {
        /// Why.
        reason: CloseReason,
    },
}

/// Where the session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum State {
    /// Waiting for the first upload.
    AwaitingUpload,
    /// Waiting for `provide_key`.
    AwaitingKey,
    /// Receiving uploads and storing batches.
    Receiving,
    /// Finished or failed.
    Closed,
}

/// Counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    /// Bytes passed to `handle_input`.
    pub bytes_received: u64,
    /// Bytes handed out by `poll_transmit`.
    pub bytes_sent: u64,
    /// Authenticated uploads.
    pub uploads: u32,
    /// Batches confirmed stored.
    pub batches_stored: u32,
    /// Readings in confirmed batches.
    pub readings_stored: u64,
    /// Uploads dropped as duplicates.
    pub duplicates: u32,
    /// Uploads dropped as out of order.
    pub out_of_order: u32,
}

#[derive(Debug)]
struct Pending {
    index: u32,
    tag: Tag,
    settings_version: u32,
    last: bool,
    /// What the ack says: what the store holds of the upload's epoch once this upload and every
    /// earlier one are durable.
    stored: Option<Mark>,
    /// `Some((id, readings))` while the store has to confirm.
    store: Option<(u64, u64)>,
    confirmed: bool,
}

/// What the store holds of one logger, as far as this connection knows: advanced by every
/// accepted upload (before the store confirms it; an ack waits for the confirmations).
#[derive(Debug, Default)]
struct Chain {
    /// The latest epoch.
    epoch: u32,
    /// Slots `0..next` of `epoch` are stored (or handed to the store).
    next: u64,
    /// Closed epochs.
    closed: Vec<EpochEnd>,
}

impl Chain {
    fn new(stored: Option<Mark>, closed: &[EpochEnd]) -> Self {
        let (epoch, next) = stored.map_or((0, 0), |m| (m.epoch, m.seq.saturating_add(1)));
        Self {
            epoch,
            next,
            closed: closed.iter().copied().filter(|c| c.epoch < epoch).collect(),
        }
    }

    /// The mark in the latest epoch.
    fn mark(&self) -> Option<Mark> {
        mark_before(self.epoch, self.next)
    }

    /// How a closed epoch ended.
    fn closed(&self, epoch: u32) -> Option<EpochEnd> {
        self.closed.iter().rev().find(|c| c.epoch == epoch).copied()
    }

    /// What the store holds of `epoch`: slots `0..=seq` of it.
    fn held(&self, epoch: u32) -> Option<Mark> {
        if epoch == self.epoch {
            self.mark()
        } else {
            self.closed(epoch)
                .and_then(|c| mark_before(c.epoch, c.next_seq))
        }
    }
}

/// The mark of the slot before `next` in `epoch` (`None` for `next == 0`).
fn mark_before(epoch: u32, next: u64) -> Option<Mark> {
    next.checked_sub(1).map(|seq| Mark { epoch, seq })
}

/// What to do with one authenticated upload that has slots.
enum Verdict {
    Duplicate,
    OutOfOrder,
    Store {
        after: Option<Mark>,
        closes: Option<EpochEnd>,
        batch: Batch,
    },
}

/// One upload connection, cloud side. Sans-IO: see the crate docs for the run loop.
#[derive(Debug)]
pub struct CloudSession {
    config: Arc<CloudConfig>,
    deadline: Instant,
    decoder: FrameDecoder,
    logger: Option<LoggerId>,
    record: Option<LoggerRecord>,
    waiting: VecDeque<Vec<u8>>,
    buffered: usize,
    chain: Chain,
    status: Option<StatusStamp>,
    pending: VecDeque<Pending>,
    next_index: u32,
    next_id: u64,
    saw_last: bool,
    outgoing: Vec<u8>,
    events: VecDeque<Event>,
    closed: bool,
    stats: Stats,
}

impl CloudSession {
    /// A new connection accepted at `now`.
    pub fn new(config: Arc<CloudConfig>, now: Instant) -> Self {
        Self {
            deadline: now + config.deadline,
            decoder: FrameDecoder::new(config.max_frame_len),
            config,
            logger: None,
            record: None,
            waiting: VecDeque::new(),
            buffered: 0,
            chain: Chain::default(),
            status: None,
            pending: VecDeque::new(),
            next_index: 0,
            next_id: 0,
            saw_last: false,
            outgoing: Vec::new(),
            events: VecDeque::new(),
            closed: false,
            stats: Stats::default(),
        }
    }

    /// Bytes from the logger. A fatal error is returned once and also reported as
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
                Err(e) => return self.reject(RejectReason::Malformed, e.into()),
            };
            input = &input[used..];
            let Some(frame) = frame else { continue };
            if frame.version != VERSION {
                let err = DecodeError::UnsupportedVersion {
                    version: frame.version,
                    supported: VERSION,
                };
                return self.reject(RejectReason::Malformed, err.into());
            }
            let msg_type = frame.msg_type;
            let body = frame.body.to_vec();
            match msg_type {
                MSG_UPLOAD => self.on_upload(body)?,
                MSG_ACK | MSG_REJECT => {
                    return self.fail(SensorError::UnexpectedMessage {
                        msg_type,
                        context: "the cloud never receives acks or rejects",
                    });
                }
                other => {
                    let err = DecodeError::UnknownMessageType { msg_type: other };
                    return self.reject(RejectReason::Malformed, err.into());
                }
            }
        }
        Ok(())
    }

    /// The passage of time: past the connection deadline the session closes. Early calls are
    /// no-ops.
    pub fn handle_timeout(&mut self, now: Instant) {
        if !self.closed && now >= self.deadline {
            let waiting_for = match self.state() {
                State::AwaitingUpload => "waiting for the first upload",
                State::AwaitingKey => "waiting for provide_key",
                _ if self
                    .pending
                    .iter()
                    .any(|p| p.store.is_some() && !p.confirmed) =>
                {
                    "waiting for confirm_stored"
                }
                _ => "waiting for the last upload",
            };
            let _ = self.fail(SensorError::Timeout { waiting_for });
        }
    }

    /// The logger closed the connection (or it broke). Batches already handed out may still be
    /// stored: they are authenticated, and a store keyed on the mark keeps them exactly once.
    pub fn handle_close(&mut self, _now: Instant) {
        if !self.closed {
            let _ = self.fail(SensorError::PeerClosed);
        }
    }

    /// Answers [`Event::KeyNeeded`]. `None` means the logger is unknown: the upload is rejected.
    pub fn provide_key(
        &mut self,
        _now: Instant,
        logger: LoggerId,
        record: Option<LoggerRecord>,
    ) -> Result<(), ApiMisuse> {
        if self.closed {
            return Ok(());
        }
        if self.logger != Some(logger) || self.record.is_some() {
            return Err(ApiMisuse::NoKeyPending { logger });
        }
        let Some(record) = record else {
            let _ = self.reject(
                RejectReason::UnknownLogger,
                SensorError::UnknownLogger { logger },
            );
            return Ok(());
        };
        self.chain = Chain::new(record.stored, &record.closed);
        self.status = record.status;
        self.record = Some(record);
        self.buffered = 0;
        while let Some(body) = self.waiting.pop_front() {
            if self.closed || self.process_upload(&body).is_err() {
                break;
            }
        }
        Ok(())
    }

    /// The store durably holds batch `id`: acknowledge it (after every earlier one).
    pub fn confirm_stored(&mut self, _now: Instant, id: u64) -> Result<(), ApiMisuse> {
        if self.closed {
            return Ok(());
        }
        let entry = self
            .pending
            .iter_mut()
            .find(|p| matches!(p.store, Some((pid, _)) if pid == id) && !p.confirmed)
            .ok_or(ApiMisuse::UnknownBatch { id })?;
        entry.confirmed = true;
        self.flush_acks();
        Ok(())
    }

    /// The store could not write batch `id`: the session closes without acknowledging it.
    pub fn storage_failed(&mut self, _now: Instant, id: u64) -> Result<(), ApiMisuse> {
        if self.closed {
            return Ok(());
        }
        if !self
            .pending
            .iter()
            .any(|p| matches!(p.store, Some((pid, _)) if pid == id) && !p.confirmed)
        {
            return Err(ApiMisuse::UnknownBatch { id });
        }
        let _ = self.reject(
            RejectReason::StorageFailed,
            SensorError::StorageFailed { id },
        );
        Ok(())
    }

    /// Appends bytes to send (acks, or a reject) to `buf`.
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

    /// When to call `handle_timeout` next: the connection deadline.
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
        } else if self.logger.is_none() {
            State::AwaitingUpload
        } else if self.record.is_none() {
            State::AwaitingKey
        } else {
            State::Receiving
        }
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// The logger of this connection, once the first upload arrived (not authenticated until
    /// the state is [`State::Receiving`]).
    pub fn logger(&self) -> Option<LoggerId> {
        self.logger
    }

    fn on_upload(&mut self, body: Vec<u8>) -> Result<(), SensorError> {
        let claimed = match codec::upload_logger(&body) {
            Ok(id) => id,
            Err(e) => return self.reject(RejectReason::Malformed, e.into()),
        };
        match self.logger {
            None => {
                self.logger = Some(claimed);
                self.events.push_back(Event::KeyNeeded { logger: claimed });
            }
            Some(expected) if expected != claimed => {
                return self.fail(SensorError::LoggerMismatch {
                    expected,
                    got: claimed,
                });
            }
            Some(_) => {}
        }
        if self.record.is_none() {
            self.buffered += body.len();
            if self.buffered > self.config.max_buffered {
                let err = SensorError::TooMuchBuffered {
                    buffered: self.buffered,
                    max: self.config.max_buffered,
                };
                return self.fail(err);
            }
            self.waiting.push_back(body);
            return Ok(());
        }
        self.process_upload(&body)
    }

    fn process_upload(&mut self, body: &[u8]) -> Result<(), SensorError> {
        // INVARIANT: called only once `record` and `logger` are set.
        let record = self.record.as_ref().expect("INVARIANT: record is set");
        let logger = self.logger.expect("INVARIANT: logger is set");
        let claimed = match codec::upload_logger(body) {
            Ok(id) => id,
            Err(e) => return self.reject(RejectReason::Malformed, e.into()),
        };
        if claimed != logger {
            return self.fail(SensorError::LoggerMismatch {
                expected: logger,
                got: claimed,
            });
        }
        let (upload, tag) = match codec::decode_upload(body, &record.key) {
            Ok(ok) => ok,
            Err(e @ SensorError::BadMac { .. }) => return self.reject(RejectReason::BadMac, e),
            Err(e) => return self.reject(RejectReason::Malformed, e),
        };
        if self.saw_last {
            return self.fail(SensorError::UnexpectedMessage {
                msg_type: MSG_UPLOAD,
                context: "upload after the one flagged last",
            });
        }
        if self.next_index >= self.config.max_uploads {
            return self.fail(SensorError::UnexpectedMessage {
                msg_type: MSG_UPLOAD,
                context: "more uploads than the per-connection limit",
            });
        }
        self.stats.uploads += 1;
        let index = self.next_index;
        self.next_index += 1;
        self.saw_last = upload.last;
        let batch = upload.batch;
        let epoch = batch.epoch;
        if let Some(status) = batch.status {
            self.note_status(logger, epoch, status);
        }
        let mut entry = Pending {
            index,
            tag,
            settings_version: upload.settings_version,
            last: upload.last,
            stored: None,
            store: None,
            confirmed: true,
        };
        if let Some(last) = batch.last() {
            let first = Mark {
                epoch,
                seq: batch.first_seq,
            };
            match self.judge(batch, last) {
                Verdict::Duplicate => {
                    self.stats.duplicates += 1;
                    self.events.push_back(Event::Duplicate { logger, last });
                }
                Verdict::OutOfOrder => {
                    self.stats.out_of_order += 1;
                    self.events.push_back(Event::OutOfOrder {
                        logger,
                        stored: self.chain.mark(),
                        first,
                    });
                }
                Verdict::Store {
                    after,
                    closes,
                    batch,
                } => {
                    if let Some(end) = closes {
                        self.chain.closed.push(end);
                        self.chain.epoch = epoch;
                    }
                    self.chain.next = last.seq + 1;
                    let id = self.next_id;
                    self.next_id += 1;
                    entry.store = Some((id, batch.reading_count() as u64));
                    entry.confirmed = false;
                    self.events.push_back(Event::Batch {
                        id,
                        after,
                        closes,
                        batch,
                    });
                }
            }
        }
        entry.stored = self.chain.held(epoch);
        self.pending.push_back(entry);
        self.flush_acks();
        Ok(())
    }

    /// Reports a status newer than any the store holds (a replayed older one is dropped).
    fn note_status(&mut self, logger: LoggerId, epoch: u32, status: Status) {
        let stamp = StatusStamp {
            epoch,
            counter: status.counter,
        };
        if self.status.is_none_or(|s| stamp > s) {
            self.status = Some(stamp);
            self.events.push_back(Event::Status {
                logger,
                stamp,
                status,
            });
        }
    }

    /// Decides what an authenticated upload with slots does, against what is stored.
    fn judge(&self, batch: Batch, last: Mark) -> Verdict {
        let chain = &self.chain;
        match batch.epoch.cmp(&chain.epoch) {
            Ordering::Equal if last.seq < chain.next => Verdict::Duplicate,
            Ordering::Equal if batch.first_seq <= chain.next => {
                let batch = match chain.next {
                    0 => batch,
                    next => batch.after(next - 1),
                };
                Verdict::Store {
                    after: chain.mark(),
                    closes: None,
                    batch,
                }
            }
            // A hole after what is stored.
            Ordering::Equal => Verdict::OutOfOrder,
            // A closed epoch can only be repeated: what it holds is final.
            Ordering::Less => match chain.closed(batch.epoch) {
                Some(end) if last.seq < end.next_seq => Verdict::Duplicate,
                _ => Verdict::OutOfOrder,
            },
            // A new epoch opens only with the exact end of the current one, under the MAC.
            Ordering::Greater => match batch.previous {
                Some(end)
                    if batch.first_seq == 0
                        && end.epoch == chain.epoch
                        && end.next_seq == chain.next =>
                {
                    Verdict::Store {
                        after: chain.mark(),
                        closes: Some(end),
                        batch,
                    }
                }
                _ => Verdict::OutOfOrder,
            },
        }
    }

    /// Sends the acks of the confirmed prefix of uploads, in order.
    fn flush_acks(&mut self) {
        while self.pending.front().is_some_and(|p| p.confirmed) {
            // INVARIANT: front() was just checked.
            let done = self.pending.pop_front().expect("INVARIANT: front exists");
            if let Some((_, readings)) = done.store {
                self.stats.batches_stored += 1;
                self.stats.readings_stored += readings;
            }
            // INVARIANT: uploads are processed only once the record is set.
            let record = self.record.as_ref().expect("INVARIANT: record is set");
            let settings = record
                .settings
                .as_ref()
                .filter(|s| s.version > done.settings_version)
                .cloned();
            let ack = Ack {
                batch_index: done.index,
                stored: done.stored,
                server_time: record.server_time,
                settings,
            };
            if codec::encode_ack(&mut self.outgoing, &record.key, &done.tag, &ack).is_err() {
                // Invalid settings from the caller: send the ack without them.
                let ack = Ack {
                    settings: None,
                    ..ack
                };
                // INVARIANT: an ack without settings always encodes.
                codec::encode_ack(&mut self.outgoing, &record.key, &done.tag, &ack)
                    .expect("INVARIANT: ack without settings encodes");
            }
            if done.last {
                self.closed = true;
                self.events.push_back(Event::Closed {
                    reason: CloseReason::Finished,
                });
                return;
            }
        }
    }

    /// Closes with a reject frame after any acks already queued (they stay true).
    fn reject(&mut self, reason: RejectReason, err: SensorError) -> Result<(), SensorError> {
        codec::encode_reject(&mut self.outgoing, reason);
        self.close_with(err)
    }

    fn fail(&mut self, err: SensorError) -> Result<(), SensorError> {
        self.close_with(err)
    }

    fn close_with(&mut self, err: SensorError) -> Result<(), SensorError> {
        self.closed = true;
        self.events.push_back(Event::Closed {
            reason: CloseReason::Error(err.clone()),
        });
        Err(err)
    }
}
