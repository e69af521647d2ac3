//! A digit CAPTCHA (seed 000, S8) drawn here as SVG with noise: no outside service.
//!
//! The server demands one after [`CaptchaConfig::required_after_failures`] failures (ask the
//! lockout engine for the count), shows [`CaptchaChallenge::svg`], and checks the typed digits
//! with [`CaptchaStore::solve`]. A challenge is single use (any answer consumes it) and expires.
//! Only a SHA-256 digest of the answer is stored.
//!
//! This stops scripted guessing at low cost; it is not a defence against OCR or solving farms,
//! which the lockout engine and throttles handle.

use std::collections::BTreeMap;
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
    /// Most challenges outstanding; beyond it the oldest-expiring are dropped.
    pub max_pending: usize,
}

impl Default for CaptchaConfig {
    /// 5 digits, 2 minutes, after 3 failures, 100,000 outstanding.
    fn default() -> Self {
        Self {
            digits: 5,
            lifetime_ms: 120_000,
            required_after_failures: 3,
            max_pending: 100_000,
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

/// Why an answer was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CaptchaError {
    /// Wrong digits, unknown or already used challenge.
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

/// Outstanding challenges. Serializable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaptchaStore {
    config: CaptchaConfig,
    pending: BTreeMap<String, Pending>,
}

impl CaptchaStore {
    /// No outstanding challenges.
    pub fn new(config: CaptchaConfig) -> Self {
        Self {
            config,
            pending: BTreeMap::new(),
        }
    }

    /// Whether a login after `failures` consecutive failures needs a CAPTCHA.
    pub fn required(&self, failures: u16) -> bool {
        failures >= self.config.required_after_failures
    }

    /// Creates a challenge.
    pub fn issue(&mut self, now: UnixTime, rng: &mut impl CryptoRngCore) -> CaptchaChallenge {
        if self.pending.len() >= self.config.max_pending.max(1) {
            self.purge(now);
            while self.pending.len() >= self.config.max_pending.max(1) {
                let first = self
                    .pending
                    .iter()
                    .min_by_key(|(_, p)| p.expires_at)
                    .map(|(k, _)| k.clone());
                match first {
                    Some(k) => self.pending.remove(&k),
                    None => break,
                };
            }
        }
        let n = self.config.digits.clamp(4, 8);
        let answer: String = (0..n)
            .map(|_| char::from(b'0' + (rng.next_u32() % 10) as u8))
            .collect();
        let mut raw = [0u8; 16];
        rng.fill_bytes(&mut raw);
        let id = BASE64URL_NOPAD.encode(&raw);
        let expires_at = now.plus_millis(self.config.lifetime_ms);
        self.pending.insert(
            id.clone(),
            Pending {
                answer: digest_of(&answer),
                expires_at,
            },
        );
        CaptchaChallenge {
            id,
            svg: render(&answer, rng),
            expires_at,
        }
    }

    /// Checks an answer; the challenge is consumed whatever the result.
    pub fn solve(&mut self, id: &str, answer: &str, now: UnixTime) -> Result<(), CaptchaError> {
        let p = self.pending.remove(id).ok_or(CaptchaError::Invalid)?;
        if now >= p.expires_at {
            return Err(CaptchaError::Expired);
        }
        let typed: String = answer
            .chars()
            .filter(|c| !c.is_whitespace())
            .take(16)
            .collect();
        if bool::from(digest_of(&typed).ct_eq(&p.answer)) {
            Ok(())
        } else {
            Err(CaptchaError::Invalid)
        }
    }

    /// Drops expired challenges.
    pub fn purge(&mut self, now: UnixTime) {
        self.pending.retain(|_, p| now < p.expires_at);
    }

    /// Outstanding challenges.
    pub fn pending(&self) -> usize {
        self.pending.len()
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
}
