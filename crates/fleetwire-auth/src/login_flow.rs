//! The ordered sign-in flow as a sans-IO machine: throttle → hashing slot → account → lockout
//! and CAPTCHA → one password verification → administrator lock → second factor → session →
//! audit. The order is the security: a throttled request costs nothing, a locked lane costs no
//! Argon2 run, an unknown name costs exactly what a known one does, a session exists only after
//! every check passed, and every reserved lockout attempt is finished exactly once.
//!
//! The flow does no I/O and holds no engine. It says what to do next ([`LoginFlow::poll_step`]);
//! the caller does it — against in-memory engines on one node, or rows in a shared database on
//! several — and reports the result with the matching method. A web handler is then only I/O,
//! and the order itself is fuzzed (`fuzz/fuzz_targets/auth_login_flow.rs`).
//!
//! ```
//! use fleetwire_auth::login_flow::*;
//! use fleetwire_auth::UnixTime;
//!
//! let config = LoginConfig { pseudonym_key: [1; 32], device_key: [2; 32] };
//! let request = LoginRequest {
//!     name: "alice".into(),
//!     origin: "192.0.2.7".into(),
//!     captcha: None,
//!     second_factor: None,
//!     device_cookie: None,
//! };
//! let mut flow = LoginFlow::new(&config, request);
//! let outcome = loop {
//!     match flow.poll_step().expect("a step until Done") {
//!         Step::Throttle => flow.throttled(None)?,
//!         Step::ReserveHashSlot => flow.hash_slot(true)?,
//!         Step::LookupAccount { .. } => flow.account(Some(Account {
//!             id: "u_1".into(), phc: "$argon2id$…".into(), locked: false, mfa: false,
//!         }))?,
//!         Step::Gate { .. } => flow.gate(Gate::Open)?,
//!         Step::Verify { .. } => flow.verified(Verified::Correct { rehash: false })?,
//!         Step::CheckSecondFactor { .. } => unreachable!("no MFA on this account"),
//!         Step::Finish { .. } => flow.finished()?,
//!         Step::CreateSession { .. } => flow.session_created(false)?,
//!         Step::Audit(_) => flow.audited()?,
//!         Step::Done(outcome) => break outcome,
//!     }
//! };
//! assert_eq!(outcome, LoginOutcome::SignedIn { account: "u_1".into(), rehash: false });
//! # Ok::<(), fleetwire_auth::login_flow::FlowMisuse>(())
//! ```

use ring::hmac;

use crate::audit::AuditEvent;
use crate::lockout::{DeviceCookie, DeviceId, Outcome};
use crate::time::UnixTime;

/// Keys the flow needs; the same on every node.
#[derive(Clone)]
pub struct LoginConfig {
    /// Keys the stable pseudonym of a name that matches no account: its lockout lane and its
    /// name in the audit log, so unknown and known names behave alike and no name is logged.
    pub pseudonym_key: [u8; 32],
    /// The device-cookie key: a valid cookie of the account puts the attempt in that device's
    /// own lane (OWASP device cookies).
    pub device_key: [u8; 32],
}

impl std::fmt::Debug for LoginConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LoginConfig { keys: <redacted> }")
    }
}

/// The stable pseudonym (`anon:` and 16 hex digits) of a canonical name that matches no
/// account: its lockout lane and its name in the audit log, the same on every node that holds
/// the same key. Other flows that name an unknown user (a reset request) use it too.
pub fn pseudonym(config: &LoginConfig, name: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, &config.pseudonym_key);
    let tag = hmac::sign(&key, name.as_bytes());
    format!("anon:{}", hex::encode(&tag.as_ref()[..8]))
}

/// One sign-in attempt as submitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginRequest {
    /// The submitted user name or e-mail address, canonical (trimmed, lower case).
    pub name: String,
    /// Where it came from, for the audit log and the new-origin check.
    pub origin: String,
    /// The answer to a CAPTCHA shown earlier, if any.
    pub captcha: Option<CaptchaAnswer>,
    /// A one-time code or a recovery code, if sent.
    pub second_factor: Option<SecondFactor>,
    /// The device cookie the client presented, if any.
    pub device_cookie: Option<String>,
}

/// A CAPTCHA id and the digits typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptchaAnswer {
    /// The challenge's id.
    pub id: String,
    /// The digits typed.
    pub answer: String,
}

/// The second factor sent with the password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecondFactor {
    /// A TOTP code.
    Totp(String),
    /// A single-use recovery code.
    Recovery(String),
}

/// The account the name resolved to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// The immutable account id (lanes, sessions and audit entries use it, never the name).
    pub id: String,
    /// The stored Argon2id PHC string.
    pub phc: String,
    /// Locked by an administrator.
    pub locked: bool,
    /// A second factor is enrolled.
    pub mfa: bool,
}

/// The lockout lane an attempt counts in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lane {
    /// The account id, or the keyed pseudonym of a name that matches no account.
    pub subject: String,
    /// A known device of the account: its own lane.
    pub device: Option<DeviceId>,
}

/// What the caller must do next. Deliberately exhaustive: a new step must break every driver
/// until it handles it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Check the per-source and global throttles; answer [`LoginFlow::throttled`].
    Throttle,
    /// Reserve a place on the password-hashing pool; answer [`LoginFlow::hash_slot`].
    ReserveHashSlot,
    /// Find the account by name or e-mail; answer [`LoginFlow::account`].
    LookupAccount {
        /// The canonical name.
        name: String,
    },
    /// Check the lane's lock and, if its failures call for one, the CAPTCHA answer; then
    /// reserve the attempt (counted as a failure until finished). Answer [`LoginFlow::gate`].
    Gate {
        /// The lane.
        lane: Lane,
        /// The CAPTCHA answer sent, if any.
        captcha: Option<CaptchaAnswer>,
    },
    /// Verify the password: exactly one Argon2 run, against the dummy hash when `phc` is
    /// `None`. Answer [`LoginFlow::verified`].
    Verify {
        /// The stored hash, `None` for a name that matches no account.
        phc: Option<String>,
    },
    /// Check the second factor of the account; answer [`LoginFlow::second_factor`].
    CheckSecondFactor {
        /// The account id.
        account: String,
        /// What was sent.
        factor: Option<SecondFactor>,
    },
    /// Finish the attempt reserved at [`Step::Gate`] with this outcome; answer
    /// [`LoginFlow::finished`].
    Finish {
        /// Success ends the lane's streak; failure keeps the reservation's count.
        outcome: Outcome,
    },
    /// Create a session for the account (and record the sign-in); answer
    /// [`LoginFlow::session_created`] with whether the origin is new for the account.
    CreateSession {
        /// The account id.
        account: String,
    },
    /// Append this event to the audit log; answer [`LoginFlow::audited`].
    Audit(AuditEvent),
    /// The flow is over. Answer the client accordingly.
    Done(LoginOutcome),
}

/// The throttle's refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled {
    /// When to retry.
    pub retry_after_ms: u64,
}

/// The lane's answer at [`Step::Gate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    /// Not locked, CAPTCHA not needed or solved: the attempt is reserved.
    Open,
    /// The lane is blocked.
    Locked {
        /// Until when (`None`: until an administrator clears it).
        until: Option<UnixTime>,
    },
    /// A CAPTCHA is needed and none, or a wrong one, was sent.
    CaptchaRequired {
        /// Why, in words (e.g. "the digits do not match").
        reason: String,
    },
}

/// The password check's answer at [`Step::Verify`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verified {
    /// The password matches the account's hash.
    Correct {
        /// The hash should be recomputed with today's parameters.
        rehash: bool,
    },
    /// It does not (or there is no account).
    Wrong,
}

/// The second factor's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FactorCheck {
    /// A valid code.
    Valid,
    /// None was sent.
    Missing,
    /// The code is wrong, used or expired.
    Invalid,
}

/// How the attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LoginOutcome {
    /// Signed in: hand out the session created at [`Step::CreateSession`].
    SignedIn {
        /// The account id.
        account: String,
        /// Recompute the stored hash.
        rehash: bool,
    },
    /// Refused by a throttle before anything was looked at (HTTP 429).
    Throttled {
        /// When to retry.
        retry_after_ms: u64,
    },
    /// The hashing pool is full (HTTP 503).
    Busy,
    /// The lane is blocked.
    Locked {
        /// Until when.
        until: Option<UnixTime>,
    },
    /// A CAPTCHA must be solved: show a new one.
    CaptchaRequired {
        /// Why.
        reason: String,
    },
    /// Wrong name or password (one answer for both).
    Failed,
    /// The password was right but an administrator locked the account.
    AccountLocked,
    /// The password was right; a second factor is needed.
    SecondFactorRequired,
    /// The password was right; the second factor was not.
    SecondFactorInvalid,
}

/// The caller answered a step that was not asked, or asked for a step out of turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("login flow: {answer} does not answer the pending step ({pending})")]
pub struct FlowMisuse {
    /// The answer given.
    pub answer: &'static str,
    /// The step that was pending.
    pub pending: &'static str,
}

/// Where the flow is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Throttle,
    HashSlot,
    Lookup,
    Gate,
    Verify,
    SecondFactor,
    Finish,
    Session,
    Audit,
    Done,
}

impl State {
    fn name(&self) -> &'static str {
        match self {
            Self::Throttle => "Throttle",
            Self::HashSlot => "ReserveHashSlot",
            Self::Lookup => "LookupAccount",
            Self::Gate => "Gate",
            Self::Verify => "Verify",
            Self::SecondFactor => "CheckSecondFactor",
            Self::Finish => "Finish",
            Self::Session => "CreateSession",
            Self::Audit => "Audit",
            Self::Done => "Done",
        }
    }
}

/// One sign-in attempt, step by step.
#[derive(Debug, Clone)]
pub struct LoginFlow {
    request: LoginRequest,
    state: State,
    /// The pseudonym of the submitted name (lane and audit subject when no account matches).
    pseudonym: String,
    device: Option<DeviceId>,
    device_key: [u8; 32],
    account: Option<Account>,
    rehash: bool,
    /// The lockout outcome to report at `Finish`, and what comes after it.
    finish: Option<(Outcome, After)>,
    /// Events to audit before the outcome; then `Done` with `outcome`.
    audits: Vec<AuditEvent>,
    outcome: Option<LoginOutcome>,
}

/// What follows the `Finish` step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum After {
    Session,
    End,
}

impl LoginFlow {
    /// A new attempt.
    pub fn new(config: &LoginConfig, request: LoginRequest) -> Self {
        let pseudonym = pseudonym(config, &request.name);
        Self {
            request,
            state: State::Throttle,
            pseudonym,
            device: None,
            device_key: config.device_key,
            account: None,
            rehash: false,
            finish: None,
            audits: Vec::new(),
            outcome: None,
        }
    }

    /// The next step, or `None` once [`Step::Done`] was returned.
    pub fn poll_step(&mut self) -> Option<Step> {
        Some(match &self.state {
            State::Throttle => Step::Throttle,
            State::HashSlot => Step::ReserveHashSlot,
            State::Lookup => Step::LookupAccount {
                name: self.request.name.clone(),
            },
            State::Gate => Step::Gate {
                lane: self.lane(),
                captcha: self.request.captcha.clone(),
            },
            State::Verify => Step::Verify {
                phc: self.account.as_ref().map(|a| a.phc.clone()),
            },
            State::SecondFactor => Step::CheckSecondFactor {
                account: self.subject(),
                factor: self.request.second_factor.clone(),
            },
            State::Finish => Step::Finish {
                // INVARIANT: the Finish state is entered only with `finish` set.
                outcome: self.finish.expect("INVARIANT: finish is set").0,
            },
            State::Session => Step::CreateSession {
                account: self.subject(),
            },
            State::Audit => {
                if let Some(event) = self.audits.first() {
                    Step::Audit(event.clone())
                } else {
                    self.state = State::Done;
                    return self.poll_step();
                }
            }
            State::Done => {
                let outcome = self.outcome.take()?;
                return Some(Step::Done(outcome));
            }
        })
    }

    /// The subject of the lane and the audit log: the account id, or the name's pseudonym.
    pub fn subject(&self) -> String {
        self.account
            .as_ref()
            .map_or_else(|| self.pseudonym.clone(), |a| a.id.clone())
    }

    /// Answers [`Step::Throttle`]: `Some` if a throttle refused.
    pub fn throttled(&mut self, refused: Option<Throttled>) -> Result<(), FlowMisuse> {
        self.expect(&State::Throttle, "throttled")?;
        match refused {
            None => self.state = State::HashSlot,
            Some(t) => self.end(LoginOutcome::Throttled {
                retry_after_ms: t.retry_after_ms,
            }),
        }
        Ok(())
    }

    /// Answers [`Step::ReserveHashSlot`]: whether a slot was free.
    pub fn hash_slot(&mut self, reserved: bool) -> Result<(), FlowMisuse> {
        self.expect(&State::HashSlot, "hash_slot")?;
        if reserved {
            self.state = State::Lookup;
        } else {
            self.end(LoginOutcome::Busy);
        }
        Ok(())
    }

    /// Answers [`Step::LookupAccount`].
    pub fn account(&mut self, account: Option<Account>) -> Result<(), FlowMisuse> {
        self.expect(&State::Lookup, "account")?;
        if let (Some(a), Some(cookie)) = (&account, &self.request.device_cookie) {
            self.device = DeviceCookie::verify(&self.device_key, a.id.as_bytes(), cookie);
        }
        self.account = account;
        self.state = State::Gate;
        Ok(())
    }

    /// Answers [`Step::Gate`]. `Open` means the attempt is reserved and must be finished.
    pub fn gate(&mut self, gate: Gate) -> Result<(), FlowMisuse> {
        self.expect(&State::Gate, "gate")?;
        match gate {
            Gate::Open => self.state = State::Verify,
            Gate::Locked { until } => {
                self.audits.push(AuditEvent::LoginLocked {
                    user: self.subject(),
                    origin: self.request.origin.clone(),
                });
                self.end(LoginOutcome::Locked { until });
            }
            Gate::CaptchaRequired { reason } => self.end(LoginOutcome::CaptchaRequired { reason }),
        }
        Ok(())
    }

    /// Answers [`Step::Verify`].
    pub fn verified(&mut self, verified: Verified) -> Result<(), FlowMisuse> {
        self.expect(&State::Verify, "verified")?;
        let origin = self.request.origin.clone();
        if let (Verified::Correct { rehash }, Some(account)) = (verified, &self.account) {
            self.rehash = rehash;
            if account.locked {
                self.audits.push(AuditEvent::LoginLocked {
                    user: account.id.clone(),
                    origin,
                });
                self.fail(LoginOutcome::AccountLocked);
            } else if account.mfa {
                self.state = State::SecondFactor;
            } else {
                self.succeed();
            }
        } else {
            // A "correct" answer without an account cannot sign anyone in.
            self.audits.push(AuditEvent::LoginFailed {
                user: self.subject(),
                origin,
            });
            self.fail(LoginOutcome::Failed);
        }
        Ok(())
    }

    /// Answers [`Step::CheckSecondFactor`].
    pub fn second_factor(&mut self, check: FactorCheck) -> Result<(), FlowMisuse> {
        self.expect(&State::SecondFactor, "second_factor")?;
        match check {
            FactorCheck::Valid => self.succeed(),
            FactorCheck::Missing | FactorCheck::Invalid => {
                self.audits.push(AuditEvent::LoginFailed {
                    user: self.subject(),
                    origin: self.request.origin.clone(),
                });
                self.fail(if check == FactorCheck::Missing {
                    LoginOutcome::SecondFactorRequired
                } else {
                    LoginOutcome::SecondFactorInvalid
                });
            }
        }
        Ok(())
    }

    /// Answers [`Step::Finish`].
    pub fn finished(&mut self) -> Result<(), FlowMisuse> {
        self.expect(&State::Finish, "finished")?;
        // INVARIANT: the Finish state is entered only with `finish` set.
        let (_, after) = self.finish.expect("INVARIANT: finish is set");
        self.state = match after {
            After::Session => State::Session,
            After::End => State::Audit,
        };
        Ok(())
    }

    /// Answers [`Step::CreateSession`]: whether the origin is new for the account.
    pub fn session_created(&mut self, new_origin: bool) -> Result<(), FlowMisuse> {
        self.expect(&State::Session, "session_created")?;
        self.audits.push(AuditEvent::LoginSucceeded {
            user: self.subject(),
            origin: self.request.origin.clone(),
            new_origin,
        });
        self.state = State::Audit;
        Ok(())
    }

    /// Answers [`Step::Audit`].
    pub fn audited(&mut self) -> Result<(), FlowMisuse> {
        if self.state != State::Audit || self.audits.is_empty() {
            return Err(FlowMisuse {
                answer: "audited",
                pending: self.state.name(),
            });
        }
        self.audits.remove(0);
        Ok(())
    }

    fn lane(&self) -> Lane {
        Lane {
            subject: self.subject(),
            device: self.device,
        }
    }

    fn succeed(&mut self) {
        let account = self.subject();
        self.outcome = Some(LoginOutcome::SignedIn {
            account,
            rehash: self.rehash,
        });
        self.finish = Some((Outcome::Success, After::Session));
        self.state = State::Finish;
    }

    /// Ends a reserved attempt as a failure, then audits and answers `outcome`.
    fn fail(&mut self, outcome: LoginOutcome) {
        self.outcome = Some(outcome);
        self.finish = Some((Outcome::Failure, After::End));
        self.state = State::Finish;
    }

    /// Ends an attempt that reserved nothing.
    fn end(&mut self, outcome: LoginOutcome) {
        self.outcome = Some(outcome);
        self.state = State::Audit;
    }

    fn expect(&self, state: &State, answer: &'static str) -> Result<(), FlowMisuse> {
        if self.state == *state {
            Ok(())
        } else {
            Err(FlowMisuse {
                answer,
                pending: self.state.name(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rng() -> rand_chacha::ChaCha20Rng {
        use rand_core::SeedableRng;
        rand_chacha::ChaCha20Rng::seed_from_u64(9)
    }

    fn config() -> LoginConfig {
        LoginConfig {
            pseudonym_key: [1; 32],
            device_key: [2; 32],
        }
    }

    fn request(name: &str) -> LoginRequest {
        LoginRequest {
            name: name.into(),
            origin: "192.0.2.1".into(),
            captcha: None,
            second_factor: None,
            device_cookie: None,
        }
    }

    fn alice(mfa: bool, locked: bool) -> Account {
        Account {
            id: "u_alice".into(),
            phc: "$argon2id$x".into(),
            locked,
            mfa,
        }
    }

    /// Drives a flow with fixed answers; returns every step seen.
    fn run(
        mut flow: LoginFlow,
        account: Option<&Account>,
        gate: &Gate,
        verified: Verified,
        factor: FactorCheck,
    ) -> Vec<Step> {
        let mut steps = Vec::new();
        while let Some(step) = flow.poll_step() {
            steps.push(step.clone());
            match step {
                Step::Throttle => flow.throttled(None),
                Step::ReserveHashSlot => flow.hash_slot(true),
                Step::LookupAccount { .. } => flow.account(account.cloned()),
                Step::Gate { .. } => flow.gate(gate.clone()),
                Step::Verify { .. } => flow.verified(verified),
                Step::CheckSecondFactor { .. } => flow.second_factor(factor),
                Step::Finish { .. } => flow.finished(),
                Step::CreateSession { .. } => flow.session_created(false),
                Step::Audit(_) => flow.audited(),
                Step::Done(_) => Ok(()),
            }
            .unwrap();
        }
        steps
    }

    fn kinds(steps: &[Step]) -> Vec<&'static str> {
        steps
            .iter()
            .map(|s| match s {
                Step::Throttle => "throttle",
                Step::ReserveHashSlot => "slot",
                Step::LookupAccount { .. } => "lookup",
                Step::Gate { .. } => "gate",
                Step::Verify { .. } => "verify",
                Step::CheckSecondFactor { .. } => "mfa",
                Step::Finish {
                    outcome: Outcome::Success,
                } => "finish-ok",
                Step::Finish { .. } => "finish-fail",
                Step::CreateSession { .. } => "session",
                Step::Audit(_) => "audit",
                Step::Done(_) => "done",
            })
            .collect()
    }

    #[test]
    fn a_correct_password_signs_in_in_order() {
        let steps = run(
            LoginFlow::new(&config(), request("alice")),
            Some(&alice(false, false)),
            &Gate::Open,
            Verified::Correct { rehash: true },
            FactorCheck::Missing,
        );
        assert_eq!(
            kinds(&steps),
            [
                "throttle",
                "slot",
                "lookup",
                "gate",
                "verify",
                "finish-ok",
                "session",
                "audit",
                "done"
            ]
        );
        assert_eq!(
            steps.last(),
            Some(&Step::Done(LoginOutcome::SignedIn {
                account: "u_alice".into(),
                rehash: true
            }))
        );
    }

    #[test]
    fn an_unknown_name_costs_one_verification_and_is_audited_by_pseudonym() {
        let steps = run(
            LoginFlow::new(&config(), request("mallory")),
            None,
            &Gate::Open,
            Verified::Correct { rehash: false },
            FactorCheck::Valid,
        );
        assert_eq!(
            kinds(&steps),
            [
                "throttle",
                "slot",
                "lookup",
                "gate",
                "verify",
                "finish-fail",
                "audit",
                "done"
            ]
        );
        assert!(steps.contains(&Step::Verify { phc: None }));
        let Step::Audit(AuditEvent::LoginFailed { user, .. }) = &steps[6] else {
            panic!("{steps:?}")
        };
        assert!(user.starts_with("anon:"), "{user}");
        assert_eq!(steps.last(), Some(&Step::Done(LoginOutcome::Failed)));
    }

    #[test]
    fn the_lane_of_a_known_name_is_its_account_and_of_an_unknown_one_a_stable_pseudonym() {
        let mut a = LoginFlow::new(&config(), request("alice"));
        let mut b = LoginFlow::new(&config(), request("alice@example.com"));
        for f in [&mut a, &mut b] {
            f.throttled(None).unwrap();
            f.hash_slot(true).unwrap();
            f.account(Some(alice(false, false))).unwrap();
        }
        // The name and the e-mail address of one account are one lane.
        assert_eq!(a.poll_step(), b.poll_step());
        let lane = |name: &str| {
            let mut f = LoginFlow::new(&config(), request(name));
            f.throttled(None).unwrap();
            f.hash_slot(true).unwrap();
            f.account(None).unwrap();
            match f.poll_step() {
                Some(Step::Gate { lane, .. }) => lane.subject,
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(lane("nobody"), lane("nobody"));
        assert_ne!(lane("nobody"), lane("nobody2"));
    }

    #[test]
    fn mfa_and_admin_lock_are_checked_only_after_a_correct_password() {
        let wrong_pw = run(
            LoginFlow::new(&config(), request("alice")),
            Some(&alice(true, true)),
            &Gate::Open,
            Verified::Wrong,
            FactorCheck::Valid,
        );
        assert!(!kinds(&wrong_pw).contains(&"mfa"));
        assert_eq!(wrong_pw.last(), Some(&Step::Done(LoginOutcome::Failed)));
        let locked = run(
            LoginFlow::new(&config(), request("alice")),
            Some(&alice(true, true)),
            &Gate::Open,
            Verified::Correct { rehash: false },
            FactorCheck::Valid,
        );
        assert_eq!(
            locked.last(),
            Some(&Step::Done(LoginOutcome::AccountLocked))
        );
        assert!(!kinds(&locked).contains(&"session"));
        let no_code = run(
            LoginFlow::new(&config(), request("alice")),
            Some(&alice(true, false)),
            &Gate::Open,
            Verified::Correct { rehash: false },
            FactorCheck::Missing,
        );
        assert_eq!(
            kinds(&no_code),
            [
                "throttle",
                "slot",
                "lookup",
                "gate",
                "verify",
                "mfa",
                "finish-fail",
                "audit",
                "done"
            ]
        );
        assert_eq!(
            no_code.last(),
            Some(&Step::Done(LoginOutcome::SecondFactorRequired))
        );
    }

    #[test]
    fn refusals_before_the_gate_reserve_nothing_and_a_locked_lane_costs_no_hash() {
        let mut flow = LoginFlow::new(&config(), request("alice"));
        flow.throttled(Some(Throttled { retry_after_ms: 5 }))
            .unwrap();
        assert_eq!(
            flow.poll_step(),
            Some(Step::Done(LoginOutcome::Throttled { retry_after_ms: 5 }))
        );
        assert_eq!(flow.poll_step(), None);
        let locked = run(
            LoginFlow::new(&config(), request("alice")),
            Some(&alice(false, false)),
            &Gate::Locked { until: None },
            Verified::Correct { rehash: false },
            FactorCheck::Valid,
        );
        assert_eq!(
            kinds(&locked),
            ["throttle", "slot", "lookup", "gate", "audit", "done"]
        );
    }

    #[test]
    fn answers_out_of_turn_are_refused() {
        let mut flow = LoginFlow::new(&config(), request("alice"));
        assert!(flow.verified(Verified::Correct { rehash: false }).is_err());
        assert!(flow.session_created(false).is_err());
        assert!(flow.finished().is_err());
        assert_eq!(flow.poll_step(), Some(Step::Throttle));
    }

    #[test]
    fn a_valid_device_cookie_of_the_account_gets_its_own_lane() {
        let cookie = DeviceCookie::issue(&[2; 32], b"u_alice", &mut rng());
        let mut req = request("alice");
        req.device_cookie = Some(cookie);
        let mut flow = LoginFlow::new(&config(), req);
        flow.throttled(None).unwrap();
        flow.hash_slot(true).unwrap();
        flow.account(Some(alice(false, false))).unwrap();
        let Some(Step::Gate { lane, .. }) = flow.poll_step() else {
            panic!()
        };
        assert!(lane.device.is_some());
        // Another account's cookie (or a forged one) is ignored.
        let other = DeviceCookie::issue(&[2; 32], b"u_bob", &mut rng());
        let mut req = request("alice");
        req.device_cookie = Some(other);
        let mut flow = LoginFlow::new(&config(), req);
        flow.throttled(None).unwrap();
        flow.hash_slot(true).unwrap();
        flow.account(Some(alice(false, false))).unwrap();
        let Some(Step::Gate { lane, .. }) = flow.poll_step() else {
            panic!()
        };
        assert_eq!(lane.device, None);
    }
}
