//! Password policy: configurable rules, the `seed` and `nist` presets, structured violations.
//!
//! Passwords are normalized to Unicode NFKC and counted in code points (never bytes, never
//! truncated). [`PasswordPolicy::check`] returns *every* violation, each a structured value a
//! UI can translate and show.

use std::collections::HashSet;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;

/// The common-password blocklist shipped with the crate (one lower-case entry per line).
const COMMON_PASSWORDS: &str = include_str!("../data/common-passwords.txt");

/// Context words shorter than this (in code points) are not checked: "al" would match too much.
pub const MIN_CONTEXT_WORD_CHARS: usize = 4;

/// A set of password rules. Build one with [`PasswordPolicy::seed`], [`PasswordPolicy::nist`] or
/// by setting the fields yourself; [`PasswordPolicy::validate`] checks the combination.
#[allow(clippy::struct_excessive_bools)] // a rule set is a list of switches
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasswordPolicy {
    /// Minimum length in code points (after NFKC) when the password is the only factor.
    pub min_chars: u32,
    /// Minimum length when the account also has a second factor (NIST allows 8).
    pub min_chars_with_mfa: u32,
    /// Maximum length in code points; longer passwords are rejected, never truncated.
    pub max_chars: u32,
    /// Require at least one decimal digit.
    pub require_digit: bool,
    /// Require at least one upper-case letter.
    pub require_upper: bool,
    /// Require at least one lower-case letter.
    pub require_lower: bool,
    /// Require at least one character that is neither a letter, a digit nor white space.
    pub require_symbol: bool,
    /// Reject passwords on the shipped common-password blocklist (and simple variants of them).
    pub use_blocklist: bool,
    /// Reject passwords containing a context word (user name, e-mail, service name).
    pub reject_context_words: bool,
}

/// What the policy knows about the account, beyond the password itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyContext {
    /// Words the password must not contain: the user name, the e-mail address, the service name.
    /// Each is split at non-alphanumeric characters; parts of at least
    /// [`MIN_CONTEXT_WORD_CHARS`] code points are checked, case-insensitively.
    pub words: Vec<String>,
    /// Whether the account has a second factor (selects `min_chars_with_mfa`).
    pub has_mfa: bool,
}

/// One reason a password was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Violation {
    /// Fewer code points than required.
    TooShort {
        /// The minimum that applies to this account.
        min: u32,
        /// The length of the given password, in code points after NFKC.
        actual: u32,
    },
    /// More code points than allowed (the password is never truncated).
    TooLong {
        /// The maximum.
        max: u32,
        /// The length of the given password, in code points after NFKC.
        actual: u32,
    },
    /// No decimal digit.
    MissingDigit,
    /// No upper-case letter.
    MissingUpperCase,
    /// No lower-case letter.
    MissingLowerCase,
    /// No symbol.
    MissingSymbol,
    /// A control character (such as NUL or a line break) that cannot be typed reliably.
    ControlCharacter,
    /// The password, or the password stripped of leading and trailing digits and symbols, is on
    /// the common-password blocklist.
    Common,
    /// The password contains a context word (for example the user name).
    ContainsContextWord {
        /// The offending word, lower-cased.
        word: String,
    },
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TooShort { min, actual } => {
                write!(f, "use at least {min} characters (this one has {actual})")
            }
            Self::TooLong { max, actual } => {
                write!(f, "use at most {max} characters (this one has {actual})")
            }
            Self::MissingDigit => f.write_str("add a digit"),
            Self::MissingUpperCase => f.write_str("add an upper-case letter"),
            Self::MissingLowerCase => f.write_str("add a lower-case letter"),
            Self::MissingSymbol => f.write_str("add a symbol"),
            Self::ControlCharacter => f.write_str("remove control characters such as line breaks"),
            Self::Common => f.write_str("this password is too common; choose another"),
            Self::ContainsContextWord { word } => {
                write!(f, "do not use \"{word}\" in the password")
            }
        }
    }
}

/// A policy whose fields contradict each other.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// `min_chars` or `min_chars_with_mfa` is above `max_chars`.
    #[error(
        "minimum length {min} exceeds maximum length {max}; lower the minimum or raise the maximum"
    )]
    MinAboveMax {
        /// The larger minimum.
        min: u32,
        /// The maximum.
        max: u32,
    },
    /// `min_chars_with_mfa` is above `min_chars`.
    #[error(
        "the minimum with MFA ({with_mfa}) exceeds the minimum without ({without}); a second factor must not demand a longer password"
    )]
    MfaMinAboveMin {
        /// `min_chars_with_mfa`.
        with_mfa: u32,
        /// `min_chars`.
        without: u32,
    },
    /// The minimum length is zero.
    #[error("the minimum length must be at least 1")]
    ZeroMinimum,
}

/// A password that passed a policy: NFKC-normalized, ready to hash.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// The normalized password.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(..)")
    }
}

impl PasswordPolicy {
    /// The sensor-cloud rule (seed 004, C1): at least 8 characters, a digit and an upper-case
    /// letter; at most 128 characters.
    pub fn seed() -> Self {
        Self {
            min_chars: 8,
            min_chars_with_mfa: 8,
            max_chars: 128,
            require_digit: true,
            require_upper: true,
            require_lower: false,
            require_symbol: false,
            use_blocklist: false,
            reject_context_words: false,
        }
    }

    /// NIST SP 800-63B rev 4: at least 15 characters as a sole factor, 8 with MFA, at least 64
    /// allowed (here 128), no composition rules, the blocklist and context words.
    pub fn nist() -> Self {
        Self {
            min_chars: 15,
            min_chars_with_mfa: 8,
            max_chars: 128,
            require_digit: false,
            require_upper: false,
            require_lower: false,
            require_symbol: false,
            use_blocklist: true,
            reject_context_words: true,
        }
    }

    /// Checks that the fields do not contradict each other.
    pub fn validate(&self) -> Result<(), PolicyError> {
        if self.min_chars == 0 || self.min_chars_with_mfa == 0 {
            return Err(PolicyError::ZeroMinimum);
        }
        if self.min_chars_with_mfa > self.min_chars {
            return Err(PolicyError::MfaMinAboveMin {
                with_mfa: self.min_chars_with_mfa,
                without: self.min_chars,
            });
        }
        if self.min_chars > self.max_chars {
            return Err(PolicyError::MinAboveMax {
                min: self.min_chars,
                max: self.max_chars,
            });
        }
        Ok(())
    }

    /// Every violation of this policy by `password`, in a stable order; empty means accepted.
    pub fn check(&self, password: &str, context: &PolicyContext) -> Vec<Violation> {
        let normalized = normalize(password);
        let mut out = Vec::new();
        let actual = u32::try_from(normalized.chars().count()).unwrap_or(u32::MAX);
        let min = if context.has_mfa {
            self.min_chars_with_mfa
        } else {
            self.min_chars
        };
        if actual < min {
            out.push(Violation::TooShort { min, actual });
        }
        if actual > self.max_chars {
            out.push(Violation::TooLong {
                max: self.max_chars,
                actual,
            });
        }
        let has = |pred: fn(char) -> bool| normalized.chars().any(pred);
        if self.require_digit && !has(|c| c.is_ascii_digit() || c.is_numeric()) {
            out.push(Violation::MissingDigit);
        }
        if self.require_upper && !has(char::is_uppercase) {
            out.push(Violation::MissingUpperCase);
        }
        if self.require_lower && !has(char::is_lowercase) {
            out.push(Violation::MissingLowerCase);
        }
        if self.require_symbol && !has(|c| !c.is_alphanumeric() && !c.is_whitespace()) {
            out.push(Violation::MissingSymbol);
        }
        if has(char::is_control) {
            out.push(Violation::ControlCharacter);
        }
        let lower = normalized.to_lowercase();
        if self.use_blocklist && is_common(&lower) {
            out.push(Violation::Common);
        }
        if self.reject_context_words {
            let mut seen = HashSet::new();
            for word in context_words(context) {
                if lower.contains(word.as_str()) && seen.insert(word.clone()) {
                    out.push(Violation::ContainsContextWord { word });
                }
            }
        }
        out
    }

    /// Checks `password` and, if it has no violation, returns it normalized.
    pub fn accept(
        &self,
        password: &str,
        context: &PolicyContext,
    ) -> Result<Password, Vec<Violation>> {
        let violations = self.check(password, context);
        if violations.is_empty() {
            Ok(Password(normalize(password)))
        } else {
            Err(violations)
        }
    }
}

/// NFKC normalization, applied to every password before it is checked or hashed.
pub fn normalize(password: &str) -> String {
    password.nfkc().collect()
}

/// Whether `lower` (already NFKC and lower-cased) is a common password or a trivial variant.
fn is_common(lower: &str) -> bool {
    let list = blocklist();
    if list.contains(lower) {
        return true;
    }
    let stripped = lower.trim_matches(|c: char| !c.is_alphabetic());
    !stripped.is_empty() && list.contains(stripped)
}

fn blocklist() -> &'static HashSet<&'static str> {
    static LIST: OnceLock<HashSet<&'static str>> = OnceLock::new();
    LIST.get_or_init(|| {
        COMMON_PASSWORDS
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect()
    })
}

fn context_words(context: &PolicyContext) -> Vec<String> {
    let mut out = Vec::new();
    for word in &context.words {
        let lower = normalize(word).to_lowercase();
        if lower.chars().count() >= MIN_CONTEXT_WORD_CHARS {
            out.push(lower.clone());
        }
        for part in lower.split(|c: char| !c.is_alphanumeric()) {
            if part.chars().count() >= MIN_CONTEXT_WORD_CHARS && part != lower {
                out.push(part.to_owned());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> PolicyContext {
        PolicyContext::default()
    }

    #[test]
    fn seed_requires_digit_and_upper() {
        let p = PasswordPolicy::seed();
        assert_eq!(
            p.check("abcdefgh", &ctx()),
            vec![Violation::MissingDigit, Violation::MissingUpperCase]
        );
        assert!(p.check("Abcdefg1", &ctx()).is_empty());
        assert_eq!(
            p.check("Ab1", &ctx()),
            vec![Violation::TooShort { min: 8, actual: 3 }]
        );
    }

    #[test]
    fn nist_length_depends_on_mfa() {
        let p = PasswordPolicy::nist();
        let pw = "violet-anchor-9";
        assert!(p.check(pw, &ctx()).is_empty());
        assert_eq!(
            p.check("violet-ank", &ctx()),
            vec![Violation::TooShort {
                min: 15,
                actual: 10
            }]
        );
        let mfa = PolicyContext {
            has_mfa: true,
            ..ctx()
        };
        assert!(p.check("violet-ank", &mfa).is_empty());
    }

    #[test]
    fn nist_blocklist_catches_variants() {
        let p = PasswordPolicy::nist();
        let mfa = PolicyContext {
            has_mfa: true,
            ..ctx()
        };
        assert_eq!(p.check("Password123!", &mfa), vec![Violation::Common]);
        assert_eq!(
            p.check("correcthorsebatterystaple", &mfa),
            vec![Violation::Common]
        );
    }

    #[test]
    fn context_words_rejected() {
        let p = PasswordPolicy::nist();
        let c = PolicyContext {
            words: vec!["Marie.Curie@example.org".into()],
            has_mfa: false,
        };
        let v = p.check("radium-and-curie-forever", &c);
        assert_eq!(
            v,
            vec![Violation::ContainsContextWord {
                word: "curie".into()
            }]
        );
    }

    #[test]
    fn unicode_counts_code_points_after_nfkc() {
        let p = PasswordPolicy::seed();
        // "ﬁ" (U+FB01) becomes "fi" under NFKC: 2 code points.
        assert_eq!(
            p.check("ﬁ", &ctx())[0],
            Violation::TooShort { min: 8, actual: 2 }
        );
        // Eight emoji are eight code points, 32 bytes.
        assert!(
            PasswordPolicy::nist()
                .check("🦀🦀🦀🦀🦀🦀🦀🦀🦀🦀🦀🦀🦀🦀🦀", &ctx())
                .is_empty()
        );
    }

    #[test]
    fn too_long_is_rejected_not_truncated() {
        let p = PasswordPolicy::nist();
        let long = "x".repeat(129) + "Q7";
        assert!(p.check(&long, &ctx()).contains(&Violation::TooLong {
            max: 128,
            actual: 131
        }));
    }

    #[test]
    fn validate_catches_contradictions() {
        let mut p = PasswordPolicy::nist();
        assert_eq!(p.validate(), Ok(()));
        p.max_chars = 10;
        assert!(matches!(p.validate(), Err(PolicyError::MinAboveMax { .. })));
        let mut p = PasswordPolicy::seed();
        p.min_chars = 0;
        assert_eq!(p.validate(), Err(PolicyError::ZeroMinimum));
    }

    #[test]
    fn accept_returns_normalized() {
        let p = PasswordPolicy::seed();
        let pw = p.accept("Ｐassword1", &ctx()).unwrap();
        assert_eq!(pw.as_str(), "Password1");
        assert_eq!(format!("{pw:?}"), "Password(..)");
    }
}
