//! # fleetwire-testkit
//!
//! A deterministic harness for fleetwire's sans-IO machines (not published).
//!
//! - [`Rng`]: a small seeded PRNG (`SplitMix64`). No global RNG: every test replays from its seed.
//! - [`Link`]: a one-way simulated link carrying `Vec<u8>` datagrams (one message each), with
//!   bandwidth (bytes/s serialization), propagation delay, a bounded queue (drop-tail), loss,
//!   duplication, reordering, corruption and cut-off windows. Any protocol can use it: it knows
//!   nothing about what it carries.
//! - [`Endpoint`] and [`Pair`]: two machines joined by two links, driven in virtual time that
//!   jumps straight to the next timeout or arrival, so a 5-second transfer simulates in
//!   milliseconds. Every fleetwire machine pair runs on it (session client and server, sensor
//!   logger and cloud, transfer sender and receiver): a test wraps each machine in a thin
//!   application that implements [`Endpoint`] (the machine's `handle_input`, `handle_timeout`,
//!   `handle_close`, `poll_transmit`, `poll_timeout`, and the application's answers to its
//!   events). Stream protocols use it too: each `poll_transmit` becomes one "datagram", and a
//!   perfect link delivers them in order. A link can go down ([`Link::set_up`]) or break after
//!   a number of bytes ([`LinkConfig::break_after_bytes`], a TCP connection cut mid-stream);
//!   [`Pair::close`] ends the transport for both sides.
//! - [`vectors`]: loading `test-vectors/*.json`.
//!
//! ```
//! use fleetwire_testkit::{Link, LinkConfig, VirtualClock};
//! use std::time::Duration;
//!
//! let clock = VirtualClock::new();
//! let mut link = Link::new(LinkConfig {
//!     delay: Duration::from_millis(20),
//!     ..LinkConfig::perfect()
//! }, 7);
//! link.send(clock.now(), b"hello".to_vec());
//! let at = link.next_arrival().unwrap();
//! assert_eq!(at - clock.now(), Duration::from_millis(20));
//! assert_eq!(link.recv(at).as_deref(), Some(&b"hello"[..]));
//! ```

use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

pub mod vectors;

/// A small, fast, seeded PRNG (`SplitMix64`). Good enough for simulations; not for keys.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator that replays from `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed ^ 0x5DEE_CE66_D1CE_4E5B)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A float uniformly in `[0, 1)`.
    #[allow(clippy::cast_precision_loss)]
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.unit() < p
    }

    /// A value in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// Fills `buf` with random bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// Virtual time: an arbitrary base `Instant` plus offsets. Only differences matter, so runs are
/// deterministic whatever the base.
#[derive(Debug, Clone, Copy)]
pub struct VirtualClock {
    base: Instant,
    now: Instant,
}

impl VirtualClock {
    /// A clock at its origin.
    #[allow(clippy::disallowed_methods)] // INVARIANT: only a base; all later times are offsets.
    pub fn new() -> Self {
        let base = Instant::now();
        Self { base, now: base }
    }

    /// The current virtual time.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Time since the origin.
    pub fn elapsed(&self) -> Duration {
        self.now - self.base
    }

    /// Moves time forward to `to` (never backwards).
    pub fn advance_to(&mut self, to: Instant) {
        if to > self.now {
            self.now = to;
        }
    }

    /// Moves time forward by `d`.
    pub fn advance(&mut self, d: Duration) {
        self.now += d;
    }
}

impl Default for VirtualClock {
    fn default() -> Self {
        Self::new()
    }
}

/// How a simulated link behaves. Probabilities are per datagram.
#[derive(Debug, Clone)]
pub struct LinkConfig {
    /// Serialization rate in bytes per second; `None` is infinitely fast.
    pub bandwidth: Option<u64>,
    /// One-way propagation delay.
    pub delay: Duration,
    /// Bytes the queue in front of the wire may hold; beyond it datagrams are dropped (drop-tail).
    pub queue_limit: usize,
    /// Probability a datagram is lost.
    pub loss: f64,
    /// Probability a datagram is delivered twice.
    pub duplicate: f64,
    /// Probability a datagram is held back by up to `reorder_delay` (so later ones overtake it).
    pub reorder: f64,
    /// The extra delay of a reordered datagram (uniform in `0..=reorder_delay`).
    pub reorder_delay: Duration,
    /// Probability one random bit of a datagram is flipped.
    pub corrupt: f64,
    /// Windows of time (offsets from the clock origin given to [`Link::with_origin`]) during
    /// which everything sent is dropped: a cut connection.
    pub cuts: Vec<(Duration, Duration)>,
    /// A stream that breaks: the link carries only the first this-many bytes sent through it
    /// (the datagram that crosses the limit arrives truncated, possibly empty), then drops
    /// everything, and [`Link::is_broken`] says so. A [`Pair`] ends the connection for both
    /// endpoints when that last datagram is delivered.
    pub break_after_bytes: Option<usize>,
}

impl LinkConfig {
    /// No loss, no delay, no limit.
    pub fn perfect() -> Self {
        Self {
            bandwidth: None,
            delay: Duration::ZERO,
            queue_limit: usize::MAX,
            loss: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            reorder_delay: Duration::ZERO,
            corrupt: 0.0,
            cuts: Vec::new(),
            break_after_bytes: None,
        }
    }
}

/// Counters of what a link did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Datagrams handed to [`Link::send`].
    pub sent: u64,
    /// Bytes handed to [`Link::send`].
    pub sent_bytes: u64,
    /// Datagrams delivered (duplicates count twice).
    pub delivered: u64,
    /// Bytes delivered (what the receiving end saw, truncation included).
    pub delivered_bytes: u64,
    /// Datagrams lost at random.
    pub lost: u64,
    /// Datagrams dropped because the queue was full.
    pub queue_drops: u64,
    /// Datagrams dropped during a cut, while the link was down or after it broke.
    pub cut_drops: u64,
    /// Datagrams corrupted.
    pub corrupted: u64,
    /// Datagrams duplicated.
    pub duplicated: u64,
}

#[derive(Debug, PartialEq, Eq)]
struct InFlight {
    at: Instant,
    seq: u64,
    data: Vec<u8>,
}

impl Ord for InFlight {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        // Min-heap on (arrival, sequence).
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

impl PartialOrd for InFlight {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// A one-way simulated link for datagrams.
#[derive(Debug)]
pub struct Link {
    config: LinkConfig,
    rng: Rng,
    origin: Option<Instant>,
    /// When the wire finishes serializing what is queued.
    wire_free_at: Option<Instant>,
    /// (time serialization ends, bytes) of queued datagrams, to bound the queue.
    queued: std::collections::VecDeque<(Instant, usize)>,
    queued_bytes: usize,
    in_flight: BinaryHeap<InFlight>,
    seq: u64,
    stats: LinkStats,
    /// False while the link is down ([`Link::set_up`]).
    up: bool,
    /// Bytes carried so far, for [`LinkConfig::break_after_bytes`].
    carried: usize,
    broken: bool,
}

impl Link {
    /// A link seeded with `seed`. Cut windows count from the first `send`.
    pub fn new(config: LinkConfig, seed: u64) -> Self {
        Self {
            config,
            rng: Rng::new(seed),
            origin: None,
            wire_free_at: None,
            queued: std::collections::VecDeque::new(),
            queued_bytes: 0,
            in_flight: BinaryHeap::new(),
            seq: 0,
            stats: LinkStats::default(),
            up: true,
            carried: 0,
            broken: false,
        }
    }

    /// Sets the origin that cut windows count from.
    #[must_use]
    pub fn with_origin(mut self, origin: Instant) -> Self {
        self.origin = Some(origin);
        self
    }

    /// What the link did so far.
    pub fn stats(&self) -> LinkStats {
        self.stats
    }

    /// Drops everything in flight (a connection reset).
    pub fn clear(&mut self) {
        self.in_flight.clear();
        self.queued.clear();
        self.queued_bytes = 0;
        self.wire_free_at = None;
    }

    /// True if nothing is queued or in flight.
    pub fn is_idle(&self) -> bool {
        self.in_flight.is_empty()
    }

    /// Takes the link down (`false`: everything sent from now on is dropped, as on a dead
    /// network; what is in flight still arrives) or brings it back up.
    pub fn set_up(&mut self, up: bool) {
        self.up = up;
    }

    /// False while the link is down.
    pub fn is_up(&self) -> bool {
        self.up
    }

    /// True once the link carried its [`LinkConfig::break_after_bytes`]: it drops everything.
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// Puts a datagram on the link at `now`.
    pub fn send(&mut self, now: Instant, data: Vec<u8>) {
        let origin = *self.origin.get_or_insert(now);
        self.stats.sent += 1;
        self.stats.sent_bytes += data.len() as u64;
        let offset = now.saturating_duration_since(origin);
        if !self.up
            || self.broken
            || self
                .config
                .cuts
                .iter()
                .any(|(from, to)| offset >= *from && offset < *to)
        {
            self.stats.cut_drops += 1;
            return;
        }
        let mut data = data;
        if let Some(limit) = self.config.break_after_bytes {
            let room = limit.saturating_sub(self.carried);
            if data.len() > room {
                data.truncate(room);
                self.broken = true;
            }
            self.carried += data.len();
        }
        // Drain the queue of datagrams whose serialization has finished.
        while let Some(&(done, len)) = self.queued.front() {
            if done <= now {
                self.queued.pop_front();
                self.queued_bytes -= len;
            } else {
                break;
            }
        }
        if self.queued_bytes + data.len() > self.config.queue_limit {
            self.stats.queue_drops += 1;
            return;
        }
        let start = self.wire_free_at.map_or(now, |t| t.max(now));
        let serialize = self.config.bandwidth.map_or(Duration::ZERO, |bps| {
            Duration::from_nanos((data.len() as u64 * 1_000_000_000).div_ceil(bps.max(1)))
        });
        let done = start + serialize;
        self.wire_free_at = Some(done);
        self.queued.push_back((done, data.len()));
        self.queued_bytes += data.len();
        if self.rng.chance(self.config.loss) {
            self.stats.lost += 1;
            return;
        }
        if !data.is_empty() && self.rng.chance(self.config.corrupt) {
            let bit = self.rng.below(data.len() as u64 * 8);
            data[(bit / 8) as usize] ^= 1 << (bit % 8);
            self.stats.corrupted += 1;
        }
        let mut at = done + self.config.delay;
        if self.rng.chance(self.config.reorder) {
            let extra = self
                .rng
                .below(self.config.reorder_delay.as_nanos() as u64 + 1);
            at += Duration::from_nanos(extra);
        }
        if self.rng.chance(self.config.duplicate) {
            self.stats.duplicated += 1;
            let extra = self.rng.below(self.config.delay.as_nanos() as u64 + 1);
            self.push(at + Duration::from_nanos(extra), data.clone());
        }
        self.push(at, data);
    }

    /// When the next datagram arrives.
    pub fn next_arrival(&self) -> Option<Instant> {
        self.in_flight.peek().map(|f| f.at)
    }

    /// The next datagram that has arrived by `now`.
    pub fn recv(&mut self, now: Instant) -> Option<Vec<u8>> {
        if self.in_flight.peek()?.at <= now {
            let f = self.in_flight.pop()?;
            self.stats.delivered += 1;
            self.stats.delivered_bytes += f.data.len() as u64;
            Some(f.data)
        } else {
            None
        }
    }

    fn push(&mut self, at: Instant, data: Vec<u8>) {
        self.seq += 1;
        self.in_flight.push(InFlight {
            at,
            seq: self.seq,
            data,
        });
    }
}

/// A machine the [`Pair`] can drive. Implement it in tests with a thin wrapper that also plays
/// the application (answers events, writes files, stores uploads).
pub trait Endpoint {
    /// One datagram from the peer (for a stream protocol: the next bytes of the stream).
    fn handle_input(&mut self, now: Instant, data: &[u8]);
    /// Time passed.
    fn handle_timeout(&mut self, now: Instant);
    /// The transport ended (the peer closed it or it broke): the machine's `handle_close`.
    fn handle_close(&mut self, now: Instant);
    /// The application's reaction to events; called after every input and timeout.
    fn process_events(&mut self, now: Instant);
    /// The next datagram to send, if any.
    fn poll_transmit(&mut self, buf: &mut Vec<u8>) -> bool;
    /// When the machine next wants [`Endpoint::handle_timeout`].
    fn poll_timeout(&self) -> Option<Instant>;
}

/// Two endpoints, `a` and `b`, joined by a link each way, in virtual time.
#[derive(Debug)]
pub struct Pair<A, B> {
    /// The first endpoint.
    pub a: A,
    /// The second endpoint.
    pub b: B,
    /// Carries what `a` sends to `b`.
    pub a_to_b: Link,
    /// Carries what `b` sends to `a`.
    pub b_to_a: Link,
    /// Virtual time.
    pub clock: VirtualClock,
    /// Steps taken.
    pub steps: u64,
    /// Changes of direction of what was sent (`a` to `b` or back): one round trip is 2.
    pub flights: u64,
    /// True once the connection ended ([`Pair::close`], or a link broke): both endpoints had
    /// their `handle_close`, and nothing is sent any more.
    pub closed: bool,
    /// The direction of the last send: 0 none yet, 1 `a` to `b`, 2 `b` to `a`.
    last_direction: u8,
}

impl<A: Endpoint, B: Endpoint> Pair<A, B> {
    /// A pair at `clock`'s time.
    pub fn new(a: A, b: B, a_to_b: Link, b_to_a: Link, clock: VirtualClock) -> Self {
        let now = clock.now();
        Self {
            a,
            b,
            a_to_b: a_to_b.with_origin(now),
            b_to_a: b_to_a.with_origin(now),
            clock,
            steps: 0,
            flights: 0,
            closed: false,
            last_direction: 0,
        }
    }

    /// Flushes both endpoints' transmissions onto the links.
    pub fn flush(&mut self) {
        let now = self.clock.now();
        let mut buf = Vec::new();
        self.a.process_events(now);
        while self.a.poll_transmit(&mut buf) {
            self.note_direction(1);
            self.a_to_b.send(now, std::mem::take(&mut buf));
        }
        self.b.process_events(now);
        while self.b.poll_transmit(&mut buf) {
            self.note_direction(2);
            self.b_to_a.send(now, std::mem::take(&mut buf));
        }
    }

    /// Ends the transport now, as a driver does when its socket closes: both links drop
    /// everything (what is in flight too), then `a` and then `b` get `handle_close` and process
    /// their events. A second call does nothing.
    pub fn close(&mut self) {
        if self.closed {
            return;
        }
        let now = self.clock.now();
        self.end_links();
        self.a.handle_close(now);
        self.a.process_events(now);
        self.b.handle_close(now);
        self.b.process_events(now);
    }

    /// Handles everything due at the current instant (arrivals with no delay, and what they
    /// cause) without moving the clock.
    pub fn settle(&mut self) {
        loop {
            self.flush();
            match self.next_event() {
                Some(t) if t <= self.clock.now() => {
                    self.step();
                }
                _ => return,
            }
        }
    }

    /// Handles every event due within `d` of virtual time, then moves the clock to the end of
    /// it.
    pub fn run_for(&mut self, d: Duration) {
        let end = self.clock.now() + d;
        loop {
            self.flush();
            match self.next_event() {
                Some(t) if t <= end => {
                    self.step();
                }
                _ => break,
            }
        }
        self.clock.advance_to(end);
    }

    /// The next time anything happens: an arrival or a timeout.
    pub fn next_event(&self) -> Option<Instant> {
        [
            self.a.poll_timeout(),
            self.b.poll_timeout(),
            self.a_to_b.next_arrival(),
            self.b_to_a.next_arrival(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Jumps to the next event and handles everything due then. Returns false when nothing is
    /// left to happen.
    pub fn step(&mut self) -> bool {
        self.flush();
        let Some(at) = self.next_event() else {
            return false;
        };
        self.clock.advance_to(at);
        let now = self.clock.now();
        self.steps += 1;
        while let Some(d) = self.a_to_b.recv(now) {
            self.b.handle_input(now, &d);
            if self.a_to_b.is_broken() && self.a_to_b.is_idle() && !self.closed {
                // The last bytes before the break: `b` reads them, then the end of the stream
                // (before its application acts on them); then `a` learns of it too.
                self.end_links();
                self.b.handle_close(now);
                self.b.process_events(now);
                self.a.handle_close(now);
                self.a.process_events(now);
            } else {
                self.b.process_events(now);
            }
        }
        while let Some(d) = self.b_to_a.recv(now) {
            self.a.handle_input(now, &d);
            if self.b_to_a.is_broken() && self.b_to_a.is_idle() && !self.closed {
                self.end_links();
                self.a.handle_close(now);
                self.a.process_events(now);
                self.b.handle_close(now);
                self.b.process_events(now);
            } else {
                self.a.process_events(now);
            }
        }
        if self.a.poll_timeout().is_some_and(|t| t <= now) {
            self.a.handle_timeout(now);
        }
        if self.b.poll_timeout().is_some_and(|t| t <= now) {
            self.b.handle_timeout(now);
        }
        self.flush();
        true
    }

    fn note_direction(&mut self, direction: u8) {
        if !self.closed && self.last_direction != direction {
            self.last_direction = direction;
            self.flights += 1;
        }
    }

    /// The connection is over: nothing is carried any more, in either direction.
    fn end_links(&mut self) {
        self.closed = true;
        for link in [&mut self.a_to_b, &mut self.b_to_a] {
            link.clear();
            link.set_up(false);
        }
    }

    /// Steps until `done` holds, nothing is left to happen, `max_steps` is reached or virtual
    /// time passes `limit`. Returns whether `done` held.
    pub fn run_until(
        &mut self,
        limit: Duration,
        max_steps: u64,
        mut done: impl FnMut(&Self) -> bool,
    ) -> bool {
        let start = self.clock.now();
        loop {
            if done(self) {
                return true;
            }
            if self.steps >= max_steps || self.clock.now() - start > limit || !self.step() {
                return done(self);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_fate() {
        let cfg = LinkConfig {
            loss: 0.3,
            duplicate: 0.1,
            reorder: 0.2,
            reorder_delay: Duration::from_millis(5),
            corrupt: 0.1,
            delay: Duration::from_millis(10),
            ..LinkConfig::perfect()
        };
        let run = |seed| {
            let clock = VirtualClock::new();
            let mut link = Link::new(cfg.clone(), seed);
            for i in 0..200u8 {
                link.send(
                    clock.now() + Duration::from_micros(u64::from(i)),
                    vec![i; 8],
                );
            }
            let mut out = Vec::new();
            while let Some(at) = link.next_arrival() {
                out.push((at - clock.now(), link.recv(at).unwrap()));
            }
            out
        };
        assert_eq!(run(1), run(1));
        assert_ne!(run(1), run(2));
    }

    #[test]
    fn bandwidth_serializes_and_queue_drops() {
        let clock = VirtualClock::new();
        let mut link = Link::new(
            LinkConfig {
                bandwidth: Some(1000),
                queue_limit: 250,
                ..LinkConfig::perfect()
            },
            0,
        );
        for _ in 0..3 {
            link.send(clock.now(), vec![0; 100]);
        }
        assert_eq!(link.stats().queue_drops, 1);
        let first = link.next_arrival().unwrap();
        assert_eq!(first - clock.now(), Duration::from_millis(100));
        link.recv(first).unwrap();
        assert_eq!(
            link.next_arrival().unwrap() - clock.now(),
            Duration::from_millis(200)
        );
    }

    #[test]
    fn a_link_breaks_after_its_bytes_and_can_go_down() {
        let clock = VirtualClock::new();
        let mut link = Link::new(
            LinkConfig {
                break_after_bytes: Some(5),
                ..LinkConfig::perfect()
            },
            0,
        );
        link.send(clock.now(), vec![1, 2, 3]);
        assert!(!link.is_broken());
        link.send(clock.now(), vec![4, 5, 6]);
        assert!(link.is_broken());
        link.send(clock.now(), vec![7]);
        assert_eq!(link.recv(clock.now()), Some(vec![1, 2, 3]));
        assert_eq!(link.recv(clock.now()), Some(vec![4, 5]));
        assert_eq!(link.recv(clock.now()), None);
        assert_eq!(link.stats().delivered_bytes, 5);
        assert_eq!(link.stats().cut_drops, 1);

        let mut link = Link::new(LinkConfig::perfect(), 0);
        link.set_up(false);
        link.send(clock.now(), vec![1]);
        link.set_up(true);
        link.send(clock.now(), vec![2]);
        assert_eq!(link.recv(clock.now()), Some(vec![2]));
        assert_eq!(link.recv(clock.now()), None);
    }

    /// Echoes what it receives once, records closes.
    #[derive(Debug, Default)]
    struct Echo {
        out: Vec<Vec<u8>>,
        got: Vec<Vec<u8>>,
        closes: u32,
        events_after_close: u32,
    }

    impl Endpoint for Echo {
        fn handle_input(&mut self, _now: Instant, data: &[u8]) {
            self.got.push(data.to_vec());
            if data.first() == Some(&b'?') {
                self.out.push(b"!".to_vec());
            }
        }
        fn handle_timeout(&mut self, _now: Instant) {}
        fn handle_close(&mut self, _now: Instant) {
            self.closes += 1;
        }
        fn process_events(&mut self, _now: Instant) {
            if self.closes > 0 {
                self.events_after_close += 1;
            }
        }
        fn poll_transmit(&mut self, buf: &mut Vec<u8>) -> bool {
            match self.out.pop() {
                Some(d) => {
                    buf.extend_from_slice(&d);
                    true
                }
                None => false,
            }
        }
        fn poll_timeout(&self) -> Option<Instant> {
            None
        }
    }

    fn echo_pair(a_to_b: LinkConfig) -> Pair<Echo, Echo> {
        let clock = VirtualClock::new();
        Pair::new(
            Echo::default(),
            Echo::default(),
            Link::new(a_to_b, 1),
            Link::new(LinkConfig::perfect(), 2),
            clock,
        )
    }

    #[test]
    fn a_round_trip_is_two_flights_and_settles_without_moving_the_clock() {
        let mut p = echo_pair(LinkConfig::perfect());
        let start = p.clock.now();
        p.a.out.push(b"?hello".to_vec());
        p.settle();
        assert_eq!(p.b.got, vec![b"?hello".to_vec()]);
        assert_eq!(p.a.got, vec![b"!".to_vec()]);
        assert_eq!(p.flights, 2);
        assert_eq!(p.clock.now(), start);
        p.close();
        p.close();
        assert_eq!((p.a.closes, p.b.closes), (1, 1));
        assert!(p.closed);
        p.a.out.push(b"?late".to_vec());
        p.settle();
        assert_eq!(p.b.got.len(), 1, "nothing is carried after the close");
    }

    #[test]
    fn a_broken_stream_delivers_its_last_bytes_then_closes_both_ends() {
        let mut p = echo_pair(LinkConfig {
            break_after_bytes: Some(3),
            ..LinkConfig::perfect()
        });
        p.a.out.push(b"?hello".to_vec());
        p.settle();
        // `b` reads the truncated bytes, then the close, before its application runs; its
        // answer never leaves.
        assert_eq!(p.b.got, vec![b"?he".to_vec()]);
        assert!(p.a.got.is_empty());
        assert!(p.closed);
        assert_eq!((p.a.closes, p.b.closes), (1, 1));
        assert!(p.b.events_after_close >= 1);
        assert_eq!(p.a_to_b.stats().delivered_bytes, 3);
    }

    #[test]
    fn run_for_moves_the_clock_to_the_end() {
        let mut p = echo_pair(LinkConfig {
            delay: Duration::from_millis(10),
            ..LinkConfig::perfect()
        });
        let start = p.clock.now();
        p.a.out.push(b"?".to_vec());
        p.run_for(Duration::from_millis(5));
        assert!(p.b.got.is_empty(), "the question arrives at 10 ms");
        assert_eq!(p.clock.now() - start, Duration::from_millis(5));
        p.run_for(Duration::from_millis(5));
        assert_eq!((p.b.got.len(), p.a.got.len()), (1, 1));
        assert_eq!(p.clock.now() - start, Duration::from_millis(10));
    }

    #[test]
    fn cuts_drop_everything_in_the_window() {
        let clock = VirtualClock::new();
        let mut link = Link::new(
            LinkConfig {
                cuts: vec![(Duration::from_secs(1), Duration::from_secs(2))],
                ..LinkConfig::perfect()
            },
            0,
        )
        .with_origin(clock.now());
        link.send(clock.now() + Duration::from_millis(1500), vec![1]);
        link.send(clock.now() + Duration::from_millis(2500), vec![2]);
        assert_eq!(link.stats().cut_drops, 1);
        assert_eq!(
            link.recv(clock.now() + Duration::from_secs(3)),
            Some(vec![2])
        );
    }
}
