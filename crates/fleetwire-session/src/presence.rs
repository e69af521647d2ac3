//! Which players are online, for a whole fleet, without a timer per player.
//!
//! A coarse timing wheel: time is cut into ticks (default 250 ms); every online player sits in
//! exactly one wheel slot, at or before its deadline. A heartbeat only moves the deadline in the
//! table (one hash lookup, no wheel work). When a slot comes due, each player in it is either
//! past its deadline (offline) or moved to the slot of its current deadline. So each player
//! costs one table entry and one wheel entry, and the work per tick is proportional to the
//! players whose slot came due, each at most once per silence period.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::time::{Duration, Instant};

use crate::PlayerId;

/// Presence policy.
#[derive(Debug, Clone, Copy)]
pub struct PresenceConfig {
    /// Silence after which a player is offline (the server's `silence_limit()`: 1.5 × heartbeat
    /// interval + grace).
    pub timeout: Duration,
    /// Resolution of the wheel. A player goes offline between `timeout` and
    /// `timeout + granularity` after its last sign of life. Default 250 ms.
    pub granularity: Duration,
}

impl PresenceConfig {
    /// A policy with the given timeout and a 250 ms granularity.
    pub fn new(timeout: Duration) -> Self {
        Self {
            timeout,
            granularity: Duration::from_millis(250),
        }
    }
}

/// A change of a player's presence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PresenceEvent {
    /// The player was offline (or unknown) and showed a sign of life.
    Online {
        /// The player.
        player_id: PlayerId,
    },
    /// The player was silent for longer than the timeout, or said goodbye.
    Offline {
        /// The player.
        player_id: PlayerId,
        /// When it was last seen.
        last_seen: Instant,
    },
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    /// Tick at which the player goes offline.
    deadline: u32,
    /// Tick of the wheel slot the player sits in.
    scheduled: u32,
}

/// The presence registry of a fleet. Memory is proportional to the online players only.
#[derive(Debug)]
pub struct Presence {
    epoch: Instant,
    gran_ms: u64,
    timeout_ticks: u32,
    /// Last tick processed.
    cursor: u32,
    table: HashMap<PlayerId, Entry, BuildHasherDefault<IdHasher>>,
    wheel: Vec<Vec<PlayerId>>,
    events: VecDeque<PresenceEvent>,
}

impl Presence {
    /// An empty registry; `now` is its time origin.
    pub fn new(config: PresenceConfig, now: Instant) -> Self {
        let gran_ms = u64::try_from(config.granularity.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let timeout_ms = u64::try_from(config.timeout.as_millis()).unwrap_or(u64::MAX);
        let timeout_ticks = u32::try_from(timeout_ms.div_ceil(gran_ms))
            .unwrap_or(u32::MAX / 4)
            .clamp(1, 1 << 20);
        let slots = (timeout_ticks as usize + 2).next_power_of_two();
        Self {
            epoch: now,
            gran_ms,
            timeout_ticks,
            cursor: 0,
            table: HashMap::default(),
            wheel: vec![Vec::new(); slots],
            events: VecDeque::new(),
        }
    }

    /// A sign of life (login, heartbeat, any message). Emits `Online` if the player was not online.
    pub fn seen(&mut self, now: Instant, player_id: PlayerId) {
        let deadline = self
            .tick(now)
            .max(self.cursor)
            .saturating_add(self.timeout_ticks);
        if let Some(entry) = self.table.get_mut(&player_id) {
            entry.deadline = entry.deadline.max(deadline);
        } else {
            let entry = Entry {
                deadline,
                scheduled: deadline,
            };
            self.table.insert(player_id, entry);
            self.schedule(player_id, deadline);
            self.events.push_back(PresenceEvent::Online { player_id });
        }
    }

    /// The player left in an orderly way: offline now.
    pub fn gone(&mut self, now: Instant, player_id: PlayerId) {
        if self.table.remove(&player_id).is_some() {
            // Its wheel entry is dropped lazily when its slot comes due.
            self.events.push_back(PresenceEvent::Offline {
                player_id,
                last_seen: now,
            });
        }
    }

    /// Lets time pass: players whose deadline passed go offline. Early calls do nothing.
    pub fn handle_timeout(&mut self, now: Instant) {
        let target = self.tick(now);
        if target <= self.cursor {
            return;
        }
        let slots = self.wheel.len() as u32;
        let steps = (target - self.cursor).min(slots);
        let first = target - steps + 1;
        for t in first..=target {
            let slot = (t & (slots - 1)) as usize;
            let due = std::mem::take(&mut self.wheel[slot]);
            for player_id in due {
                let Some(entry) = self.table.get_mut(&player_id) else {
                    continue; // gone() removed it
                };
                if entry.scheduled & (slots - 1) != slot as u32 {
                    continue; // a stale duplicate after gone() + seen()
                }
                if entry.deadline <= target {
                    let seen_tick = entry.deadline.saturating_sub(self.timeout_ticks);
                    self.table.remove(&player_id);
                    let last_seen = self.instant(seen_tick);
                    self.events.push_back(PresenceEvent::Offline {
                        player_id,
                        last_seen,
                    });
                } else {
                    entry.scheduled = entry.deadline;
                    let deadline = entry.deadline;
                    self.schedule(player_id, deadline);
                }
            }
        }
        self.cursor = target;
    }

    /// When to call [`Presence::handle_timeout`] next: the next tick, while anyone is online.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.table.is_empty() {
            None
        } else {
            Some(self.instant(self.cursor + 1))
        }
    }

    /// The next presence change.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<PresenceEvent> {
        let event = self.events.pop_front();
        if event.is_none() && self.events.capacity() > 1024 {
            // A mass login or outage queued many events: give the memory back once drained.
            self.events = VecDeque::new();
        }
        event
    }

    /// True if the player is online.
    pub fn is_online(&self, player_id: &PlayerId) -> bool {
        self.table.contains_key(player_id)
    }

    /// How many players are online.
    pub fn online_count(&self) -> usize {
        self.table.len()
    }

    /// The online players, in no particular order.
    pub fn online(&self) -> impl Iterator<Item = &PlayerId> {
        self.table.keys()
    }

    fn schedule(&mut self, player_id: PlayerId, tick: u32) {
        let mask = self.wheel.len() as u32 - 1;
        self.wheel[(tick & mask) as usize].push(player_id);
    }

    fn tick(&self, now: Instant) -> u32 {
        let ms = u64::try_from(now.saturating_duration_since(self.epoch).as_millis())
            .unwrap_or(u64::MAX);
        u32::try_from(ms / self.gran_ms).unwrap_or(u32::MAX)
    }

    fn instant(&self, tick: u32) -> Instant {
        self.epoch + Duration::from_millis(u64::from(tick) * self.gran_ms)
    }
}

/// Player ids are 128 random bits issued at provisioning, and only authenticated players enter
/// the table, so folding the bytes is a good and cheap hash (`SipHash` would cost 3× as much).
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(word))
                .wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // a real origin for virtual time
mod tests {
    use super::*;

    fn id(n: u8) -> PlayerId {
        PlayerId::from_bytes([n; 16])
    }

    fn drain(p: &mut Presence) -> Vec<PresenceEvent> {
        std::iter::from_fn(|| p.poll_event()).collect()
    }

    #[test]
    fn silent_player_goes_offline_within_one_tick_of_the_timeout() {
        let t0 = Instant::now();
        let mut p = Presence::new(PresenceConfig::new(Duration::from_secs(50)), t0);
        p.seen(t0, id(1));
        assert_eq!(
            drain(&mut p),
            vec![PresenceEvent::Online { player_id: id(1) }]
        );
        p.handle_timeout(t0 + Duration::from_millis(49_900));
        assert!(drain(&mut p).is_empty());
        assert!(p.is_online(&id(1)));
        p.handle_timeout(t0 + Duration::from_millis(50_250));
        assert_eq!(
            drain(&mut p),
            vec![PresenceEvent::Offline {
                player_id: id(1),
                last_seen: t0
            }]
        );
        assert_eq!(p.online_count(), 0);
        assert_eq!(p.poll_timeout(), None);
    }

    #[test]
    fn heartbeats_keep_a_player_online_across_many_rotations() {
        let t0 = Instant::now();
        let mut p = Presence::new(PresenceConfig::new(Duration::from_secs(5)), t0);
        let mut now = t0;
        for _ in 0..100 {
            p.seen(now, id(2));
            now += Duration::from_secs(3);
            p.handle_timeout(now);
        }
        assert_eq!(
            drain(&mut p),
            vec![PresenceEvent::Online { player_id: id(2) }]
        );
        // A jump far past the wheel's span still finds the silent player.
        p.handle_timeout(now + Duration::from_secs(3600));
        assert_eq!(drain(&mut p).len(), 1);
    }

    #[test]
    fn gone_then_seen_again_is_one_entry() {
        let t0 = Instant::now();
        let mut p = Presence::new(PresenceConfig::new(Duration::from_secs(5)), t0);
        p.seen(t0, id(3));
        p.gone(t0, id(3));
        p.seen(t0 + Duration::from_millis(10), id(3));
        p.handle_timeout(t0 + Duration::from_secs(4));
        assert!(p.is_online(&id(3)));
        p.handle_timeout(t0 + Duration::from_secs(6));
        assert!(!p.is_online(&id(3)));
        let events = drain(&mut p);
        assert_eq!(events.len(), 4, "{events:?}");
    }
}
