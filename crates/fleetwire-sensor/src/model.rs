//! The data model: loggers, channels, readings, gaps, alarms, status and cloud settings.
//!
//! Values are integers in the channel's resolution (`value × 10^exponent` in the channel's unit):
//! no floats anywhere, so what a logger measured is exactly what the cloud stores.

use crate::error::ApiMisuse;

/// Most channels a batch may carry.
pub const MAX_CHANNELS: usize = 16;
/// Most threshold entries in [`Settings`].
pub const MAX_THRESHOLDS: usize = 16;
/// Latest batch start time accepted, in unix seconds (year 36812): keeps time arithmetic exact.
pub const MAX_START: u64 = 1 << 40;

/// A logger's identity, assigned at provisioning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct LoggerId(pub u64);

impl core::fmt::Display for LoggerId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A position in a logger's sample numbering: slot `seq` of `epoch`. As an acknowledgement's
/// mark it covers slots `0..=seq` of that epoch and nothing of any other epoch.
///
/// A logger's first epoch is 0. Within an epoch every logging slot has the next sequence number,
/// from 0. A logger starts a new epoch (at sequence 0) when it loses its numbering, e.g. after a
/// factory reset; the first batch of the new epoch states how the previous one ended
/// ([`Batch::previous`]). Marks of different epochs compare by epoch first, but no rule of the
/// protocol relies on comparing them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Mark {
    /// The numbering epoch.
    pub epoch: u32,
    /// The sequence number within the epoch.
    pub seq: u64,
}

/// What a channel measures. Open set: the constants are the ones this build names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChannelKind(pub u8);

impl ChannelKind {
    /// Air or probe temperature.
    pub const TEMPERATURE: Self = Self(1);
    /// Relative humidity.
    pub const HUMIDITY: Self = Self(2);
    /// Barometric pressure.
    pub const PRESSURE: Self = Self(3);
    /// CO2 concentration.
    pub const CO2: Self = Self(4);
    /// A voltage input.
    pub const VOLTAGE: Self = Self(5);
    /// A current input (e.g. 4–20 mA loops).
    pub const CURRENT: Self = Self(6);
    /// Illuminance.
    pub const LIGHT: Self = Self(7);
}

/// The unit of a channel's values. Open set like [`ChannelKind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Unit(pub u8);

impl Unit {
    /// Degrees Celsius.
    pub const CELSIUS: Self = Self(1);
    /// Percent relative humidity.
    pub const PERCENT_RH: Self = Self(2);
    /// Hectopascal.
    pub const HECTOPASCAL: Self = Self(3);
    /// Parts per million.
    pub const PPM: Self = Self(4);
    /// Volt.
    pub const VOLT: Self = Self(5);
    /// Ampere.
    pub const AMPERE: Self = Self(6);
    /// Lux.
    pub const LUX: Self = Self(7);
}

/// One measured quantity: a value `v` means `v × 10^exponent` `unit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Channel {
    /// What is measured.
    pub kind: ChannelKind,
    /// In which unit.
    pub unit: Unit,
    /// The resolution as a power of ten: -1 means tenths.
    pub exponent: i8,
}

impl Channel {
    /// Temperature in tenths of a degree Celsius.
    pub const TEMPERATURE_DECI_C: Self = Self {
        kind: ChannelKind::TEMPERATURE,
        unit: Unit::CELSIUS,
        exponent: -1,
    };
    /// Temperature in hundredths of a degree Celsius.
    pub const TEMPERATURE_CENTI_C: Self = Self {
        kind: ChannelKind::TEMPERATURE,
        unit: Unit::CELSIUS,
        exponent: -2,
    };
    /// Relative humidity in tenths of a percent.
    pub const HUMIDITY_DECI_PCT: Self = Self {
        kind: ChannelKind::HUMIDITY,
        unit: Unit::PERCENT_RH,
        exponent: -1,
    };
    /// Relative humidity in whole percent.
    pub const HUMIDITY_PCT: Self = Self {
        kind: ChannelKind::HUMIDITY,
        unit: Unit::PERCENT_RH,
        exponent: 0,
    };
    /// Pressure in tenths of a hectopascal.
    pub const PRESSURE_DECI_HPA: Self = Self {
        kind: ChannelKind::PRESSURE,
        unit: Unit::HECTOPASCAL,
        exponent: -1,
    };
    /// CO2 in ppm.
    pub const CO2_PPM: Self = Self {
        kind: ChannelKind::CO2,
        unit: Unit::PPM,
        exponent: 0,
    };
}

/// How an epoch ended, as the first batch of the next epoch states it ([`Batch::previous`], under
/// the batch's MAC) and as the cloud's store records it for a closed epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EpochEnd {
    /// The epoch that ended.
    pub epoch: u32,
    /// The first sequence number of `epoch` that was never sent: slots `0..next_seq` were all
    /// uploaded (as readings or gap records). 0 for an epoch without any slot.
    pub next_seq: u64,
    /// The logger lost its numbering in `epoch`: slots from `next_seq` on may have existed and
    /// are lost. The cloud records this as a gap of unknown length.
    pub abandoned: bool,
}

/// Logging slots whose readings were lost (the logger's memory overwrote them before upload).
/// Sequence numbers `seq .. seq + count` carry no reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Gap {
    /// The first lost sequence number.
    pub seq: u64,
    /// How many slots were lost (at least 1).
    pub count: u64,
}

/// An alarm the logger raised at a logging slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Alarm {
    /// The slot at which it was raised.
    pub seq: u64,
    /// The channel index in the batch's channel list.
    pub channel: u8,
    /// What happened.
    pub kind: AlarmKind,
}

/// What an alarm says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlarmKind {
    /// The value rose above the high threshold; `value` is the reading that crossed it.
    High {
        /// The reading, in the channel's resolution.
        value: i32,
    },
    /// The value fell below the low threshold.
    Low {
        /// The reading, in the channel's resolution.
        value: i32,
    },
    /// The value is back inside the thresholds.
    Cleared,
    /// The probe reports a fault.
    ProbeFault,
    /// The probe is not connected.
    ProbeDisconnected,
}

/// Firmware version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Firmware {
    /// Major.
    pub major: u8,
    /// Minor.
    pub minor: u8,
    /// Patch.
    pub patch: u16,
}

/// Battery and firmware status, sent when the logger has something new to say.
///
/// `counter` orders statuses: the cloud keeps the status with the highest
/// ([`Batch::epoch`], `counter`), so a replayed older upload never overwrites newer values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Status {
    /// Increases with every status the logger sends within an epoch (persist it with the
    /// sequence counter; it may restart at 0 in a new epoch).
    pub counter: u32,
    /// Battery voltage in millivolts.
    pub battery_mv: u16,
    /// Estimated charge, 0–100.
    pub battery_percent: u8,
    /// Running firmware.
    pub firmware: Firmware,
}

/// A run of logging slots from one logger: readings at a fixed interval from `start`, with gaps,
/// alarms and an optional status. Slot `first_seq + k` was logged at `start + k × interval_s`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Batch {
    /// The logger.
    pub logger: LoggerId,
    /// The numbering epoch.
    pub epoch: u32,
    /// Sequence number of the first slot.
    pub first_seq: u64,
    /// Unix seconds of the first slot.
    pub start: u64,
    /// Seconds between slots (at least 1).
    pub interval_s: u32,
    /// The channels, in the order their values appear in each reading.
    pub channels: Vec<Channel>,
    /// Readings, reading-major: reading `i` is `values[i * channels.len() ..][.. channels.len()]`.
    /// `None` means the channel had no value at that slot (probe disconnected).
    pub values: Vec<Option<i32>>,
    /// Lost slots, in sequence order, never adjacent.
    pub gaps: Vec<Gap>,
    /// Alarms, in sequence order.
    pub alarms: Vec<Alarm>,
    /// Battery and firmware status.
    pub status: Option<Status>,
    /// Set on the first batch of a new epoch (`first_seq == 0`, at least one slot): how the
    /// previous epoch ended. The cloud accepts a new epoch only if this matches exactly what it
    /// stores of the previous one (the same epoch, and every slot below `next_seq`).
    pub previous: Option<EpochEnd>,
}

/// One reading, as yielded by [`Batch::readings`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reading<'a> {
    /// Its sequence number.
    pub seq: u64,
    /// Unix seconds at which it was logged.
    pub time: u64,
    /// One value per channel.
    pub values: &'a [Option<i32>],
}

impl Batch {
    /// A batch with no readings: how a logger with nothing new checks in (to fetch settings).
    /// `next_seq` is the sequence its next reading will get.
    pub fn empty(logger: LoggerId, epoch: u32, next_seq: u64, now_unix: u64) -> Self {
        Self {
            logger,
            epoch,
            first_seq: next_seq,
            start: now_unix,
            interval_s: 1,
            ..Self::default()
        }
    }

    /// Number of readings.
    pub fn reading_count(&self) -> usize {
        if self.channels.is_empty() {
            0
        } else {
            self.values.len() / self.channels.len()
        }
    }

    /// Number of slots covered: readings plus lost slots.
    pub fn slots(&self) -> u64 {
        self.reading_count() as u64 + self.gaps.iter().map(|g| g.count).sum::<u64>()
    }

    /// The position of the last slot, or `None` for a batch with no slots.
    pub fn last(&self) -> Option<Mark> {
        match self.slots() {
            0 => None,
            n => Some(Mark {
                epoch: self.epoch,
                seq: self.first_seq + (n - 1),
            }),
        }
    }

    /// The readings with their sequence numbers and times.
    pub fn readings(&self) -> impl Iterator<Item = Reading<'_>> + '_ {
        let width = self.channels.len().max(1);
        let mut seqs = self.reading_seqs();
        self.values.chunks(width).filter_map(move |values| {
            let seq = seqs.next()?;
            Some(Reading {
                seq,
                time: self.start + (seq - self.first_seq) * u64::from(self.interval_s),
                values,
            })
        })
    }

    /// The sequence numbers of the readings, skipping gaps.
    pub fn reading_seqs(&self) -> impl Iterator<Item = u64> + '_ {
        let total = self.reading_count() as u64;
        let mut seq = self.first_seq;
        let mut emitted = 0u64;
        let mut gaps = self.gaps.iter().peekable();
        core::iter::from_fn(move || {
            if emitted == total {
                return None;
            }
            while let Some(gap) = gaps.peek() {
                if gap.seq == seq {
                    seq += gap.count;
                    gaps.next();
                } else {
                    break;
                }
            }
            let out = seq;
            seq += 1;
            emitted += 1;
            Some(out)
        })
    }

    /// The part of this batch after `seq` (same epoch): slots `seq + 1 ..`. Used by the cloud to
    /// drop the already-stored head of a batch that overlaps what it has.
    #[must_use]
    pub fn after(&self, seq: u64) -> Self {
        let new_first = seq.saturating_add(1).max(self.first_seq);
        let skipped = self.reading_seqs().take_while(|&s| s < new_first).count();
        let width = self.channels.len();
        let mut out = Self {
            logger: self.logger,
            epoch: self.epoch,
            first_seq: new_first,
            start: self.start + (new_first - self.first_seq) * u64::from(self.interval_s),
            interval_s: self.interval_s,
            channels: self.channels.clone(),
            values: self.values[skipped * width..].to_vec(),
            gaps: Vec::new(),
            alarms: self
                .alarms
                .iter()
                .copied()
                .filter(|a| a.seq >= new_first)
                .collect(),
            status: self.status,
            previous: if new_first == self.first_seq {
                self.previous
            } else {
                None
            },
        };
        for gap in &self.gaps {
            let end = gap.seq + gap.count;
            if end <= new_first {
                continue;
            }
            let from = gap.seq.max(new_first);
            out.gaps.push(Gap {
                seq: from,
                count: end - from,
            });
        }
        let end = self.first_seq + self.slots();
        if new_first >= end {
            out.values.clear();
            out.gaps.clear();
            out.alarms.clear();
        }
        out
    }

    /// Checks every rule of the data model; encoders call it first.
    pub fn validate(&self) -> Result<(), ApiMisuse> {
        let bad = |reason| Err(ApiMisuse::InvalidBatch { reason });
        if self.interval_s == 0 {
            return bad("interval_s must be at least 1");
        }
        if self.start > MAX_START {
            return bad("start is beyond 2^40 unix seconds");
        }
        if self.channels.len() > MAX_CHANNELS {
            return bad("more than 16 channels");
        }
        if self.channels.is_empty() {
            if !self.values.is_empty() {
                return bad("values without channels");
            }
        } else if self.values.len() % self.channels.len() != 0 {
            return bad("values.len() is not a multiple of channels.len()");
        }
        if u32::try_from(self.reading_count()).is_err() {
            return bad("more than 2^32-1 readings");
        }
        // Gaps: ordered, non-empty, separated by at least one reading, inside the batch.
        let mut pos = self.first_seq;
        let mut readings_left = self.reading_count() as u64;
        let mut total: u64 = 0;
        for (i, gap) in self.gaps.iter().enumerate() {
            if gap.count == 0 {
                return bad("a gap must cover at least one slot");
            }
            let Some(before) = gap.seq.checked_sub(pos) else {
                return bad("gaps must be in order and not overlap");
            };
            if i > 0 && before == 0 {
                return bad("adjacent gaps must be merged into one");
            }
            if before > readings_left {
                return bad("a gap lies beyond the last reading");
            }
            readings_left -= before;
            let Some(end) = gap.seq.checked_add(gap.count) else {
                return bad("gap end overflows u64");
            };
            pos = end;
            total = match total.checked_add(gap.count) {
                Some(t) => t,
                None => return bad("gap lengths overflow u64"),
            };
        }
        let Some(slots) = total.checked_add(self.reading_count() as u64) else {
            return bad("slot count overflows u64");
        };
        if self.first_seq.checked_add(slots).is_none() {
            return bad("sequence numbers overflow u64");
        }
        if slots
            .checked_mul(u64::from(self.interval_s))
            .and_then(|span| span.checked_add(self.start))
            .is_none()
        {
            return bad("slot times overflow u64");
        }
        if let Some(previous) = self.previous {
            if self.first_seq != 0 {
                return bad("only a batch starting at sequence 0 can open an epoch");
            }
            if previous.epoch >= self.epoch {
                return bad("the previous epoch must be older than the batch's epoch");
            }
            if slots == 0 {
                return bad("a batch that opens an epoch must carry at least one slot");
            }
        }
        let mut last_alarm = self.first_seq;
        for alarm in &self.alarms {
            if alarm.seq < last_alarm {
                return bad("alarms must be in sequence order");
            }
            if alarm.seq - self.first_seq >= slots {
                return bad("an alarm lies outside the batch's slots");
            }
            if usize::from(alarm.channel) >= self.channels.len() {
                return bad("an alarm names a channel the batch does not have");
            }
            last_alarm = alarm.seq;
        }
        Ok(())
    }
}

/// Configuration the cloud piggybacks on an acknowledgement. Versioned: a logger applies only a
/// version newer than the one it runs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Settings {
    /// Monotonic version number.
    pub version: u32,
    /// Logging interval in seconds (at least 1).
    pub interval_s: u32,
    /// Alarm thresholds, at most one entry per channel.
    pub thresholds: Vec<Threshold>,
}

/// Alarm thresholds for one channel, in the channel's resolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Threshold {
    /// Channel index.
    pub channel: u8,
    /// Alarm below this value.
    pub low: Option<i32>,
    /// Alarm above this value.
    pub high: Option<i32>,
}

impl Settings {
    /// Checks the settings' rules.
    pub fn validate(&self) -> Result<(), ApiMisuse> {
        if self.interval_s == 0 {
            return Err(ApiMisuse::InvalidSettings {
                reason: "interval_s must be at least 1",
            });
        }
        if self.thresholds.len() > MAX_THRESHOLDS {
            return Err(ApiMisuse::InvalidSettings {
                reason: "more than 16 thresholds",
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch() -> Batch {
        Batch {
            logger: LoggerId(7),
            epoch: 1,
            first_seq: 10,
            start: 1000,
            interval_s: 60,
            channels: vec![Channel::TEMPERATURE_DECI_C],
            values: (0..6).map(Some).collect(),
            gaps: vec![Gap { seq: 12, count: 3 }, Gap { seq: 16, count: 1 }],
            alarms: vec![Alarm {
                seq: 17,
                channel: 0,
                kind: AlarmKind::Cleared,
            }],
            status: None,
            previous: None,
        }
    }

    #[test]
    fn reading_seqs_skip_gaps() {
        let b = batch();
        b.validate().unwrap();
        let seqs: Vec<u64> = b.reading_seqs().collect();
        assert_eq!(seqs, vec![10, 11, 15, 17, 18, 19]);
        assert_eq!(b.slots(), 10);
        assert_eq!(b.last(), Some(Mark { epoch: 1, seq: 19 }));
        let times: Vec<u64> = b.readings().map(|r| r.time).collect();
        assert_eq!(times[2], 1000 + 5 * 60);
    }

    #[test]
    fn after_cuts_inside_a_gap() {
        let b = batch();
        let tail = b.after(13);
        tail.validate().unwrap();
        assert_eq!(tail.first_seq, 14);
        assert_eq!(
            tail.gaps,
            vec![Gap { seq: 14, count: 1 }, Gap { seq: 16, count: 1 }]
        );
        assert_eq!(
            tail.reading_seqs().collect::<Vec<_>>(),
            vec![15, 17, 18, 19]
        );
        assert_eq!(tail.values, vec![Some(2), Some(3), Some(4), Some(5)]);
        assert_eq!(tail.start, 1000 + 4 * 60);
        assert_eq!(b.after(19).slots(), 0);
        assert_eq!(b.after(3), b);
    }

    #[test]
    fn validate_rejects_bad_gaps() {
        let mut b = batch();
        b.gaps = vec![Gap { seq: 12, count: 3 }, Gap { seq: 15, count: 1 }];
        assert!(b.validate().is_err());
        b.gaps = vec![Gap { seq: 30, count: 1 }];
        assert!(b.validate().is_err());
        b.gaps = vec![Gap { seq: 12, count: 0 }];
        assert!(b.validate().is_err());
    }

    #[test]
    fn only_a_first_batch_with_slots_opens_an_epoch() {
        let previous = Some(EpochEnd {
            epoch: 0,
            next_seq: 40,
            abandoned: false,
        });
        let mut b = batch();
        b.previous = previous;
        assert!(b.validate().is_err(), "first_seq 10");
        b.first_seq = 0;
        b.gaps.clear();
        b.alarms.clear();
        b.validate().unwrap();
        assert_eq!(b.after(2).previous, None, "a trimmed batch no longer opens");
        assert_eq!(b.after(0).previous, None);
        b.epoch = 0;
        assert!(b.validate().is_err(), "previous epoch not older");
        b.epoch = 1;
        b.values.clear();
        assert!(b.validate().is_err(), "no slot");
    }
}
