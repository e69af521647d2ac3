//! A simulated LAN of screens for sync tests: each screen has its own drifting local clock
//! (parts per million and a start offset), every ordered pair of screens a seeded
//! fleetwire-testkit `Link` (delay, jitter, loss), and virtual true time jumps to the next
//! timer or arrival. `Play` events are converted back to true time, so the sync error between
//! screens is measured exactly.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::missing_panics_doc,
    clippy::cast_sign_loss
)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fleetwire_session::PlayerId;
use fleetwire_sync::*;
use fleetwire_testkit::{Link, LinkConfig, VirtualClock};

pub const GROUP: GroupId = GroupId(77);

pub fn key() -> GroupKey {
    GroupKey::new(1, [0x42; 32])
}

pub fn id(n: u8) -> PlayerId {
    PlayerId::from_bytes([n; 16])
}

pub fn playlist() -> Playlist {
    Playlist {
        id: 1,
        items: vec![
            Item {
                id: 100,
                duration_ms: 4000,
            },
            Item {
                id: 200,
                duration_ms: 3000,
            },
            Item {
                id: 300,
                duration_ms: 5000,
            },
        ],
    }
}

/// One showing, in true time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shown {
    pub item: u64,
    pub group_start: u64,
    /// True nanoseconds since the simulation origin at which the screen starts it.
    pub true_ns: f64,
}

pub struct Screen {
    pub id: PlayerId,
    pub member: SyncMember,
    /// Local clock = origin + true × (1 + drift) + offset.
    pub drift: f64,
    pub offset_ns: f64,
    pub alive: bool,
    pub shown: Vec<Shown>,
    pub events: Vec<SyncEvent>,
}

pub struct Lan {
    pub clock: VirtualClock,
    pub origin: Instant,
    pub screens: Vec<Screen>,
    /// links[from][to]
    pub links: Vec<Vec<Link>>,
    pub link: LinkConfig,
    pub seed: u64,
    pub config: SyncConfig,
}

pub fn timeline_addr(i: usize) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, i as u8 + 1], 16733))
}

pub fn clock_addr(i: usize) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, i as u8 + 1], 16732))
}

fn index_of(addr: SocketAddr) -> usize {
    match addr.ip() {
        std::net::IpAddr::V4(v4) => v4.octets()[3] as usize - 1,
        std::net::IpAddr::V6(_) => unreachable!(),
    }
}

impl Lan {
    /// An empty LAN; `capacity` screens at most (links are made for all of them).
    pub fn new(capacity: usize, link: LinkConfig, seed: u64) -> Self {
        let clock = VirtualClock::new();
        let origin = clock.now();
        let announce = (0..capacity).map(timeline_addr).collect();
        let config = SyncConfig::new(GROUP, id(0), announce);
        let links = (0..capacity)
            .map(|a| {
                (0..capacity)
                    .map(|b| {
                        Link::new(link.clone(), seed * 1000 + (a * 64 + b) as u64)
                            .with_origin(origin)
                    })
                    .collect()
            })
            .collect();
        Self {
            clock,
            origin,
            screens: Vec::new(),
            links,
            link,
            seed,
            config,
        }
    }

    /// Replaces the link from screen `a` to screen `b`.
    pub fn set_link(&mut self, a: usize, b: usize, cfg: LinkConfig) {
        self.links[a][b] =
            Link::new(cfg, self.seed * 7 + (a * 64 + b) as u64).with_origin(self.origin);
    }

    pub fn true_ns(&self) -> f64 {
        self.clock.elapsed().as_nanos() as f64
    }

    /// Screen `i`'s local clock now.
    pub fn now_of(&self, i: usize) -> Instant {
        self.local(i, self.true_ns())
    }

    fn local(&self, i: usize, true_ns: f64) -> Instant {
        let s = &self.screens[i];
        let l = true_ns * (1.0 + s.drift) + s.offset_ns;
        self.origin + Duration::from_nanos(l.max(0.0) as u64)
    }

    /// True nanoseconds at which screen `i`'s local clock reads `at`.
    pub fn true_of(&self, i: usize, at: Instant) -> f64 {
        let s = &self.screens[i];
        let l = at.saturating_duration_since(self.origin).as_nanos() as f64;
        (l - s.offset_ns) / (1.0 + s.drift)
    }

    /// Adds screen `n` (player id `[n; 16]`) now, with a clock `drift` (1e-4 = +100 ppm) and a
    /// start offset; it plays `playlist()`.
    pub fn add(&mut self, n: u8, drift: f64, offset: Duration) -> usize {
        let i = self.screens.len();
        let mut config = self.config.clone();
        config.me = id(n);
        let config = Arc::new(config);
        self.screens.push(Screen {
            id: id(n),
            // Placeholder; replaced below once the local clock exists.
            member: SyncMember::new(
                config.clone(),
                self.origin,
                fleetwire_core::UnixTime::from_secs(1),
                key(),
            ),
            drift,
            offset_ns: offset.as_nanos() as f64 + 1e9,
            alive: true,
            shown: Vec::new(),
            events: Vec::new(),
        });
        let now = self.local(i, self.true_ns());
        let wall = fleetwire_core::UnixTime::from_millis(
            1_700_000_000_000 + self.clock.elapsed().as_millis() as u64,
        );
        let mut m = SyncMember::new(config, now, wall, key());
        m.set_playlist(now, playlist()).unwrap();
        self.screens[i].member = m;
        i
    }

    /// Screen `i` stops (power cut): it sends and hears nothing more.
    pub fn kill(&mut self, i: usize) {
        self.screens[i].alive = false;
    }

    fn flush(&mut self) {
        let t = self.clock.now();
        for i in 0..self.screens.len() {
            if !self.screens[i].alive {
                continue;
            }
            while let Some(ev) = self.screens[i].member.poll_event() {
                if let SyncEvent::Play {
                    item, at, start, ..
                } = &ev
                {
                    let true_ns = self.true_of(i, *at);
                    self.screens[i].shown.push(Shown {
                        item: *item,
                        group_start: *start,
                        true_ns,
                    });
                }
                self.screens[i].events.push(ev);
            }
            let mut buf = Vec::new();
            while let Some(st) = self.screens[i].member.poll_transmit(&mut buf) {
                let Some(to) = st.transmit.to else { continue };
                let j = index_of(to);
                let mut data = vec![u8::from(st.port == Port::Timeline)];
                data.extend_from_slice(&buf);
                buf.clear();
                if j != i && j < self.screens.len() {
                    self.links[i][j].send(t, data);
                }
            }
        }
    }

    fn next_event(&self) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let mut consider = |t: Instant| next = Some(next.map_or(t, |n: Instant| n.min(t)));
        for (i, s) in self.screens.iter().enumerate() {
            if !s.alive {
                continue;
            }
            if let Some(local) = s.member.poll_timeout() {
                let true_ns = self.true_of(i, local).ceil() + 1.0;
                consider(self.origin + Duration::from_nanos(true_ns.max(0.0) as u64));
            }
        }
        for row in &self.links {
            for l in row {
                if let Some(t) = l.next_arrival() {
                    consider(t);
                }
            }
        }
        next
    }

    pub fn step(&mut self) -> bool {
        self.flush();
        let Some(at) = self.next_event() else {
            return false;
        };
        self.clock.advance_to(at);
        let t = self.clock.now();
        let true_ns = self.true_ns();
        let n = self.screens.len();
        for a in 0..n {
            for b in 0..n {
                while let Some(d) = self.links[a][b].recv(t) {
                    if !self.screens[b].alive || !self.screens[a].alive {
                        continue;
                    }
                    let from = if d[0] == 1 {
                        timeline_addr(a)
                    } else {
                        clock_addr(a)
                    };
                    let now = self.local(b, true_ns);
                    let _ = self.screens[b].member.handle_input(now, from, &d[1..]);
                }
            }
        }
        for i in 0..n {
            if !self.screens[i].alive {
                continue;
            }
            let now = self.local(i, true_ns);
            if self.screens[i]
                .member
                .poll_timeout()
                .is_some_and(|x| x <= now)
            {
                self.screens[i].member.handle_timeout(now);
            }
        }
        self.flush();
        true
    }

    pub fn run_for(&mut self, d: Duration) {
        let end = self.clock.now() + d;
        while self.next_event().is_some_and(|t| t <= end) {
            self.step();
        }
        self.clock.advance_to(end);
        self.flush();
    }

    /// The leader each live screen follows.
    pub fn leaders(&self) -> Vec<Option<PlayerId>> {
        self.screens
            .iter()
            .filter(|s| s.alive)
            .map(|s| s.member.leader())
            .collect()
    }

    /// For every group start shown by all of `screens`, the spread of true start times
    /// (max − min), in nanoseconds.
    pub fn spreads(&self, screens: &[usize], after_true_ns: f64) -> Vec<f64> {
        let first = &self.screens[screens[0]].shown;
        let mut out = Vec::new();
        for s in first.iter().filter(|s| s.true_ns >= after_true_ns) {
            let times: Vec<f64> = screens
                .iter()
                .filter_map(|&i| {
                    self.screens[i]
                        .shown
                        .iter()
                        .find(|x| x.group_start == s.group_start)
                        .map(|x| x.true_ns)
                })
                .collect();
            if times.len() == screens.len() {
                let max = times.iter().copied().fold(f64::MIN, f64::max);
                let min = times.iter().copied().fold(f64::MAX, f64::min);
                out.push(max - min);
            }
        }
        out
    }
}

pub fn percentile(v: &[f64], p: f64) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    if v.is_empty() {
        return f64::NAN;
    }
    let idx = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[idx]
}

/// Jitter up to `max` on every datagram, `base` of fixed delay.
pub fn jittery(base: Duration, max: Duration) -> LinkConfig {
    LinkConfig {
        delay: base,
        reorder: if max.is_zero() { 0.0 } else { 1.0 },
        reorder_delay: max,
        ..LinkConfig::perfect()
    }
}
