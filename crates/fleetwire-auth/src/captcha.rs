//! A digit CAPTCHA (seed 000, S8) drawn here as SVG with noise: no outside service.
//!
//! The server demands one after [`CaptchaConfig::required_after_failures`] failures (ask the
//! lockout engine for the count), shows [`CaptchaChallenge::svg`], and checks the typed digits
//! with [`CaptchaStore::solve`]. A challenge is single use (any answer consumes it) and expires.
//! Only a SHA-256 digest of the answer is stored.
//!
//! The table is bounded by [`CaptchaConfig::max_pending`] and every operation is O(1)
//! (amortized): a full table evicts the oldest challenge issued, found at the front of a queue
//! in issue order, never by scanning. Challenges are cheap to ask for (a server usually hands
//! them out without sign-in), so a flood only evicts older challenges; throttle issuing per
//! source in the server, and keep the picture's rendering ([`UnrenderedChallenge::render`]) out
//! of any lock the login path needs.
//!
//! This stops scripted guessing at low cost; it is not a defence against OCR or solving farms,
//! which the lockout engine and throttles handle.

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;

use data_encoding::BASE64URL_NOPAD;
use rand_core::CryptoRngCore;
use ring::digest;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::time::UnixTime;

/// CAPTCHA parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaptchaConfig {
    /// Number of digits shown (4 to 8).
    pub digits: u8,
    /// How long a challenge may be answered.
    pub lifetime_ms: u64,
    /// Consecutive failures after which a login requires a CAPTCHA.
    pub required_after_failures: u16,
    /// Most challenges outstanding; beyond it the oldest issued is dropped.
    pub max_pending: usize,
}

impl Default for CaptchaConfig {
    /// 5 digits, 2 minutes, after 3 failures, 10,000 outstanding.
    fn default() -> Self {
        Self {
            digits: 5,
            lifetime_ms: 120_000,
            required_after_failures: 3,
            max_pending: 10_000,
        }
    }
}

/// A challenge to show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaptchaChallenge {
    /// Opaque identifier to send back with the answer.
    pub id: String,
    /// The picture, a standalone SVG document.
    pub svg: String,
    /// When it stops being accepted.
    pub expires_at: UnixTime,
}

/// A challenge already in the table whose picture is not drawn yet: draw it with
/// [`render`](Self::render) after releasing whatever lock guards the [`CaptchaStore`].
pub struct UnrenderedChallenge {
    id: String,
    answer: String,
    expires_at: UnixTime,
}

impl std::fmt::Debug for UnrenderedChallenge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnrenderedChallenge")
            .field("id", &self.id)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl UnrenderedChallenge {
    /// Draws the picture (the expensive part: a few kilobytes of SVG with random noise).
    pub fn render(self, rng: &mut impl CryptoRngCore) -> CaptchaChallenge {
        CaptchaChallenge {
            svg: render(&self.answer, rng),
            id: self.id,
            expires_at: self.expires_at,
        }
    }

    /// The identifier the answer must come back with.
    pub fn id(&self) -> &str {
        &self.id
    }
}

/// A challenge as a store shared by several servers keeps it (a row): its id, the SHA-256 of
/// its answer and its expiry; never the picture or the digits. Take the row out as it is read
/// (single use), then [`check`](Self::check) the answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredChallenge {
    /// The identifier the answer comes back with.
    pub id: String,
    /// SHA-256 of the digits.
    pub answer_digest: [u8; 32],
    /// When it stops being accepted.
    pub expires_at: UnixTime,
}

impl StoredChallenge {
    /// Checks a typed answer (spaces ignored, compared in constant time), as
    /// [`CaptchaStore::solve`] does.
    pub fn check(&self, answer: &str, now: UnixTime) -> Result<(), CaptchaError> {
        if now >= self.expires_at {
            return Err(CaptchaError::Expired);
        }
        let typed: String = answer
            .chars()
            .filter(|c| !c.is_whitespace())
            .take(16)
            .collect();
        if bool::from(digest_of(&typed).ct_eq(&self.answer_digest)) {
            Ok(())
        } else {
            Err(CaptchaError::Invalid)
        }
    }
}

impl CaptchaConfig {
    /// A new challenge: what to store, and the picture to draw (after storing, outside any
    /// lock). [`CaptchaStore::issue_unrendered`] uses exactly this.
    pub fn new_challenge(
        &self,
        now: UnixTime,
        rng: &mut impl CryptoRngCore,
    ) -> (StoredChallenge, UnrenderedChallenge) {
        let n = self.digits.clamp(4, 8);
        let answer: String = (0..n)
            .map(|_| char::from(b'0' + (rng.next_u32() % 10) as u8))
            .collect();
        let mut raw = [0u8; 16];
        rng.fill_bytes(&mut raw);
        let id = BASE64URL_NOPAD.encode(&raw);
        let expires_at = now.plus_millis(self.lifetime_ms);
        (
            StoredChallenge {
                id: id.clone(),
                answer_digest: digest_of(&answer),
                expires_at,
            },
            UnrenderedChallenge {
                id,
                answer,
                expires_at,
            },
        )
    }

    /// Whether a login after `failures` consecutive failures needs a CAPTCHA.
    pub fn required(&self, failures: u16) -> bool {
        failures >= self.required_after_failures
    }
}

/// Why an answer was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CaptchaError {
    /// Wrong digits, unknown, already used or evicted challenge.
    #[error("the digits do not match; try the new picture")]
    Invalid,
    /// The challenge expired.
    #[error("the picture expired; try the new one")]
    Expired,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Pending {
    answer: [u8; 32],
    expires_at: UnixTime,
}

/// Outstanding challenges: a map by id and a queue of ids in issue order (it may still hold
/// ids that were answered; they are skipped when reached, and the queue is compacted when it
/// grows past twice the table). Serializable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaptchaStore {
    config: CaptchaConfig,
    pending: HashMap<String, Pending>,
    order: VecDeque<String>,
}

impl CaptchaStore {
    /// No outstanding challenges.
    pub fn new(config: CaptchaConfig) -> Self {
        Self {
            config,
            pending: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// Whether a login after `failures` consecutive failures needs a CAPTCHA.
    pub fn required(&self, failures: u16) -> bool {
        self.config.required(failures)
    }

    /// Creates a challenge and draws it. Under a lock, prefer
    /// [`issue_unrendered`](Self::issue_unrendered) and render outside.
    pub fn issue(&mut self, now: UnixTime, rng: &mut impl CryptoRngCore) -> CaptchaChallenge {
        self.issue_unrendered(now, rng).render(rng)
    }

    /// Creates a challenge (O(1) amortized; the oldest issued is dropped when the table is
    /// full) without drawing it.
    pub fn issue_unrendered(
        &mut self,
        now: UnixTime,
        rng: &mut impl CryptoRngCore,
    ) -> UnrenderedChallenge {
        let max = self.config.max_pending.max(1);
        while self.pending.len() >= max {
            match self.order.pop_front() {
                Some(id) => {
                    self.pending.remove(&id);
                }
                // Every pending id is in the queue, so this is not reached; were it reached,
                // starting afresh beats looping.
                None => self.pending.clear(),
            }
        }
        let (stored, unrendered) = self.config.new_challenge(now, rng);
        self.pending.insert(
            stored.id.clone(),
            Pending {
                answer: stored.answer_digest,
                expires_at: stored.expires_at,
            },
        );
        self.order.push_back(stored.id);
        self.compact();
        unrendered
    }

    /// Checks an answer; the challenge is consumed whatever the result.
    pub fn solve(&mut self, id: &str, answer: &str, now: UnixTime) -> Result<(), CaptchaError> {
        let p = self.pending.remove(id).ok_or(CaptchaError::Invalid)?;
        StoredChallenge {
            id: String::new(),
            answer_digest: p.answer,
            expires_at: p.expires_at,
        }
        .check(answer, now)
    }

    /// Drops expired challenges from the front of the queue (issue order is expiry order while
    /// the clock runs forward; one issued before a backward clock step is refused by
    /// [`solve`](Self::solve) when it expires and evicted in turn).
    pub fn purge(&mut self, now: UnixTime) {
        while let Some(id) = self.order.front() {
            match self.pending.get(id) {
                Some(p) if now < p.expires_at => break,
                _ => {
                    if let Some(id) = self.order.pop_front() {
                        self.pending.remove(&id);
                    }
                }
            }
        }
    }

    /// Outstanding challenges.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Rebuilds the queue without answered ids once it holds more than twice the table: O(n)
    /// once per at least n operations.
    fn compact(&mut self) {
        if self.order.len() > 2 * self.config.max_pending.max(1) + 16 {
            let pending = &self.pending;
            self.order.retain(|id| pending.contains_key(id));
        }
    }
}

fn digest_of(s: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, s.as_bytes()).as_ref());
    out
}

/// Seven-segment strokes (a b c d e f g) per digit.
const SEGMENTS: [u8; 10] = [
    0b011_1111, 0b000_0110, 0b101_1011, 0b100_1111, 0b110_0110, 0b110_1101, 0b111_1101, 0b000_0111,
    0b111_1111, 0b110_1111,
];
/// Segment end points in a 20 × 40 box: a, b, c, d, e, f, g.
const ENDS: [(i32, i32, i32, i32); 7] = [
    (0, 0, 20, 0),
    (20, 0, 20, 20),
    (20, 20, 20, 40),
    (0, 40, 20, 40),
    (0, 20, 0, 40),
    (0, 0, 0, 20),
    (0, 20, 20, 20),
];

fn render(answer: &str, rng: &mut impl CryptoRngCore) -> String {
    let mut r = |n: u32| i32::try_from(rng.next_u32() % n).unwrap_or(0);
    let width = 36 * i32::try_from(answer.len()).unwrap_or(8) + 24;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"70\" viewBox=\"0 0 {width} 70\"><rect width=\"100%\" height=\"100%\" fill=\"#f4f4f4\"/>"
    );
    for _ in 0..40 {
        let _ = write!(
            svg,
            "<circle cx=\"{}\" cy=\"{}\" r=\"{}\" fill=\"#{:02x}{:02x}{:02x}\"/>",
            r(width.unsigned_abs()),
            r(70),
            1 + r(2),
            100 + r(120),
            100 + r(120),
            100 + r(120)
        );
    }
    for (i, ch) in answer.bytes().enumerate() {
        let mask = SEGMENTS[usize::from(ch - b'0')];
        let x = 14 + 36 * i32::try_from(i).unwrap_or(0) + r(6);
        let y = 12 + r(8);
        let angle = r(31) - 15;
        let _ = write!(
            svg,
            "<g transform=\"translate({x} {y}) rotate({angle} 10 20)\" stroke=\"#{:02x}{:02x}{:02x}\" stroke-width=\"{}\" stroke-linecap=\"round\" fill=\"none\"><path d=\"",
            r(90),
            r(90),
            r(90),
            3 + r(2)
        );
        for (s, (x1, y1, x2, y2)) in ENDS.iter().enumerate() {
            if mask & (1 << s) != 0 {
                let _ = write!(
                    svg,
                    "M{} {}L{} {}",
                    x1 + r(5) - 2,
                    y1 + r(5) - 2,
                    x2 + r(5) - 2,
                    y2 + r(5) - 2
                );
            }
        }
        svg.push_str("\"/></g>");
    }
    for _ in 0..6 {
        let _ = write!(
            svg,
            "<path d=\"M{} {} Q{} {} {} {}\" stroke=\"#{:02x}{:02x}{:02x}\" stroke-width=\"{}\" fill=\"none\"/>",
            r(20),
            r(70),
            r(width.unsigned_abs()),
            r(70),
            width - r(20),
            r(70),
            r(160),
            r(160),
            r(160),
            1 + r(2)
        );
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::SeedableRng;

    #[test]
    fn single_use_and_expiring() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(9);
        let mut s = CaptchaStore::new(CaptchaConfig::default());
        let now = UnixTime::from_secs(10);
        let c = s.issue(now, &mut rng);
        assert!(c.svg.starts_with("<svg") && c.svg.ends_with("</svg>"));
        assert_eq!(s.solve(&c.id, "00000x", now), Err(CaptchaError::Invalid));
        assert_eq!(
            s.solve(&c.id, "00000", now),
            Err(CaptchaError::Invalid),
            "consumed"
        );
        let c2 = s.issue(now, &mut rng);
        assert_eq!(
            s.solve(&c2.id, "1", now.plus_secs(120)),
            Err(CaptchaError::Expired)
        );
        assert!(s.required(3) && !s.required(2));
    }

    #[test]
    fn a_stored_challenge_checks_its_answer_once_stored_elsewhere() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(5);
        let cfg = CaptchaConfig::default();
        let now = UnixTime::from_secs(10);
        let (stored, picture) = cfg.new_challenge(now, &mut rng);
        assert_eq!(stored.id, picture.id());
        assert_eq!(stored.check(&picture.answer, now), Ok(()));
        let spaced: String = picture.answer.chars().flat_map(|c| [c, ' ']).collect();
        assert_eq!(stored.check(&spaced, now), Ok(()));
        assert_eq!(stored.check("0", now), Err(CaptchaError::Invalid));
        assert_eq!(
            stored.check(&picture.answer, now.plus_secs(120)),
            Err(CaptchaError::Expired)
        );
        assert!(cfg.required(3) && !cfg.required(2));
    }

    #[test]
    fn full_table_drops_the_oldest_issued() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
        let mut s = CaptchaStore::new(CaptchaConfig {
            max_pending: 100,
            ..CaptchaConfig::default()
        });
        let now = UnixTime::from_secs(10);
        let first = s.issue_unrendered(now, &mut rng);
        let mut last = None;
        for _ in 0..299 {
            last = Some(s.issue_unrendered(now, &mut rng));
        }
        assert_eq!(s.pending(), 100, "bounded");
        assert!(s.order.len() <= 2 * 100 + 16);
        assert_eq!(
            s.solve(first.id(), &first.answer, now),
            Err(CaptchaError::Invalid),
            "the oldest was evicted"
        );
        let last = last.unwrap();
        assert_eq!(
            s.solve(last.id(), &last.answer, now),
            Ok(()),
            "the newest stays"
        );
    }

    #[test]
    fn answered_ids_do_not_pile_up_in_the_queue() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(2);
        let mut s = CaptchaStore::new(CaptchaConfig {
            max_pending: 10,
            ..CaptchaConfig::default()
        });
        let now = UnixTime::from_secs(10);
        for _ in 0..10_000 {
            let c = s.issue_unrendered(now, &mut rng);
            let _ = s.solve(c.id(), "0", now);
        }
        assert_eq!(s.pending(), 0);
        assert!(s.order.len() <= 2 * 10 + 16, "{}", s.order.len());
    }

    #[test]
    fn purge_drops_expired_from_the_front() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(3);
        let mut s = CaptchaStore::new(CaptchaConfig::default());
        let t = UnixTime::from_secs(10);
        for i in 0..5 {
            let _ = s.issue_unrendered(t.plus_secs(i), &mut rng);
        }
        s.purge(t.plus_secs(122));
        assert_eq!(s.pending(), 2, "issued at 10..12 expired by 132");
        let c = s.issue(t, &mut rng);
        assert!(c.svg.contains("<g transform="));
    }
}
