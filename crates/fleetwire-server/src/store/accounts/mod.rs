//! Accounts: users (name, e-mail, Argon2id PHC, password version, groups, idle timeout, the TOTP
//! secret sealed by the service, recovery-code digests, lock flag), one row per live session
//! (token digest only), one row per outstanding reset token (digest only), and the commands the
//! command line leaves for running servers (`unlock`, `lock`, `end_sessions`, `forget`).
//!
//! **What is shared, per backend.** On the embedded store one server runs, and it keeps its
//! lockout lanes, throttles, CAPTCHA challenges, session idle timers and reset tokens in memory
//! (the `fleetwire-auth` engines); the session and reset rows here make sessions and links
//! survive a crash. With PostgreSQL several nodes serve one fleet, so the rows *are* the state:
//! a session row carries its last recorded activity and is read on every request, a reset row
//! its password version and is deleted as it is redeemed, and four more tables hold what the
//! nodes must agree on — lockout lanes ([`Accounts::update_lane`]: read under `FOR UPDATE`,
//! changed by the service's pure transition, written back in one transaction, so parallel
//! attempts on different nodes reserve one after another), throttles, CAPTCHA challenges
//! (deleted as they are answered: single use on any node) and recent origins. Those tables exist
//! only on PostgreSQL; asking the embedded store for them is an error.
//!
//! Changes that could remove the last administrator (lock, groups, delete) run in one
//! transaction with the caller's [`Guard`] deciding on the account as it is and every other
//! unlocked account; on PostgreSQL they also take one advisory lock, so two nodes cannot each
//! remove "another" administrator.

// A few reads exist for the repository tests and the things domain's move (`lane`,
// `end_sessions` without a kept session, …).
#![allow(dead_code)]

pub(crate) mod postgres;
pub(crate) mod sqlite;
#[cfg(test)]
mod tests;

use fleetwire_auth::captcha::StoredChallenge;
use fleetwire_auth::lockout::KeyState;

use super::backend::Backend;
use super::{Store, StoreError};

/// A user as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UserRow {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) email: Option<String>,
    pub(crate) phc: String,
    pub(crate) password_version: u64,
    pub(crate) groups: Vec<String>,
    /// `None`: the default; `Some(0)`: off; `Some(n)`: n seconds.
    pub(crate) idle_timeout_secs: Option<u64>,
    /// A second factor is enrolled.
    pub(crate) mfa: bool,
    pub(crate) locked: bool,
    pub(crate) created_at: i64,
    pub(crate) last_login_at: Option<i64>,
}

/// A user to add.
#[derive(Debug, Clone)]
pub(crate) struct NewUser {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) email: Option<String>,
    pub(crate) phc: String,
    pub(crate) groups: Vec<String>,
    pub(crate) idle_timeout_secs: Option<u64>,
    pub(crate) now: i64,
}

/// A session row. On the embedded store `last_active_ms` is not kept (the running server keeps
/// idle timers in memory): it reads back as `created_ms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SessionRow {
    pub(crate) digest: String,
    pub(crate) user_id: String,
    pub(crate) created_ms: u64,
    pub(crate) last_active_ms: u64,
    pub(crate) origin: String,
}

/// A session and its account as one request reads them (PostgreSQL: the session check).
#[derive(Debug, Clone)]
pub(crate) struct SessionOfUser {
    pub(crate) session: SessionRow,
    /// `None` when the account is gone.
    pub(crate) user: Option<UserRow>,
}

/// A successful sign-in, written in one transaction: the session (and the oldest sessions of
/// the account beyond `cap` removed), the last-login time, and a recomputed hash if any.
#[derive(Debug, Clone)]
pub(crate) struct SignIn {
    pub(crate) session: SessionRow,
    pub(crate) cap: u32,
    pub(crate) rehash: Option<String>,
    pub(crate) now: i64,
}

/// An outstanding reset token. On the embedded store `password_version` is not kept (the
/// running server's engine holds it): it reads back as 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ResetRow {
    pub(crate) digest: String,
    pub(crate) user_id: String,
    pub(crate) expires_ms: u64,
    pub(crate) password_version: u64,
}

/// The second-factor columns of an account.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct MfaRow {
    /// The sealed TOTP secret, if enrolled.
    pub(crate) secret: Option<String>,
    /// A sealed secret being enrolled.
    pub(crate) pending: Option<String>,
    /// The last TOTP time step used (single use per step).
    pub(crate) last_step: Option<u64>,
    /// The recovery codes (digests) as JSON.
    pub(crate) recovery: Option<String>,
}

/// A TOTP secret stored in clear by an earlier version (to be sealed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClearTotp {
    pub(crate) id: String,
    pub(crate) secret: Option<String>,
    pub(crate) pending: Option<String>,
}

/// What the command line asks running servers to do about an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CommandKind {
    /// Clear the account's failed-login blocks.
    Unlock,
    /// End its sessions and void its reset link (the account was locked).
    Lock,
    /// End its sessions.
    EndSessions,
    /// Forget everything held about it (it was deleted).
    Forget,
}

impl CommandKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Unlock => "unlock",
            Self::Lock => "lock",
            Self::EndSessions => "end_sessions",
            Self::Forget => "forget",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "unlock" => Self::Unlock,
            "lock" => Self::Lock,
            "end_sessions" => Self::EndSessions,
            "forget" => Self::Forget,
            _ => return None,
        })
    }
}

/// A command from the command line, for the account `subject` (its id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Command {
    pub(crate) kind: CommandKind,
    pub(crate) subject: String,
}

/// How an account's groups change.
#[derive(Debug, Clone)]
pub(crate) enum GroupChange {
    /// Exactly these (sorted, without duplicates).
    Set(Vec<String>),
    /// Add (`true`) or remove (`false`) one group.
    Grant(String, bool),
}

impl GroupChange {
    fn apply(&self, before: &[String]) -> Vec<String> {
        match self {
            Self::Set(groups) => groups.clone(),
            Self::Grant(group, grant) => {
                let mut groups: Vec<String> =
                    before.iter().filter(|g| *g != group).cloned().collect();
                if *grant {
                    groups.push(group.clone());
                }
                groups.sort();
                groups
            }
        }
    }
}

/// Decides whether a change to an account may be made: the account as stored, as the change
/// would leave it (`None`: deleted), and every other unlocked account. `Err` is why not.
pub(crate) type Guard =
    Box<dyn FnOnce(&UserRow, Option<&UserRow>, &[UserRow]) -> Result<(), String> + Send>;

/// Why a guarded change was not made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refused {
    /// No account has that name or e-mail address.
    NoUser,
    /// The guard said no.
    Guard(String),
}

/// What deleting an account removed.
#[derive(Debug, Default)]
pub(crate) struct Removed {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) account_rows: u64,
    pub(crate) session_rows: u64,
    pub(crate) reset_token_rows: u64,
    pub(crate) pending_command_rows: u64,
    /// The recovery codes as JSON (the service counts the digests).
    pub(crate) recovery: Option<String>,
    pub(crate) totp_secret: bool,
    pub(crate) group_memberships: usize,
    pub(crate) audit_entries_kept: u64,
    /// Its places on things (members, requests, invites, blocks, events, creator).
    pub(crate) things: crate::store::things::ThingsForgotten,
}

/// The accounts repository.
pub(crate) struct Accounts<'a>(pub(super) &'a Store);

/// Dispatches to the backend's function of the same name: SQLite on the blocking pool with the
/// connection, PostgreSQL with a pooled client.
macro_rules! dispatch {
    ($self:ident, $f:ident ( $($arg:expr),* )) => {
        match $self.0.backend() {
            Backend::Sqlite(_) => $self.0.sqlite(move |c| sqlite::$f(c, $($arg),*)).await,
            Backend::Postgres(_) => postgres::$f(&mut $self.0.postgres().await?, $($arg),*).await,
        }
    };
}

/// For the state only PostgreSQL shares between nodes.
macro_rules! shared {
    ($self:ident, $what:literal, $f:ident ( $($arg:expr),* )) => {
        match $self.0.backend() {
            Backend::Sqlite(_) => Err(StoreError::Invalid(format!(
                "{} is kept in the server's memory on the embedded store",
                $what
            ))),
            Backend::Postgres(_) => postgres::$f(&mut $self.0.postgres().await?, $($arg),*).await,
        }
    };
}

impl Accounts<'_> {
    // ---- users ----------------------------------------------------------------------------

    /// Adds a user; `false` if the name or e-mail address is taken (as a name or an address).
    pub(crate) async fn add_user(&self, user: NewUser) -> Result<bool, StoreError> {
        dispatch!(self, add_user(&user))
    }

    /// Every user, by name.
    pub(crate) async fn users(&self) -> Result<Vec<UserRow>, StoreError> {
        dispatch!(self, users())
    }

    /// The account a canonical name or e-mail address names (the name wins).
    pub(crate) async fn user_by_name(&self, name: String) -> Result<Option<UserRow>, StoreError> {
        dispatch!(self, user_by_name(&name))
    }

    /// The account with this id.
    pub(crate) async fn user_by_id(&self, id: String) -> Result<Option<UserRow>, StoreError> {
        dispatch!(self, user_by_id(&id))
    }

    /// Locks or unlocks an account (guarded). Locking ends its sessions and voids its reset
    /// link; either way running servers get the command (`lock`, `unlock`).
    pub(crate) async fn set_locked(
        &self,
        name: String,
        locked: bool,
        now: i64,
        guard: Guard,
    ) -> Result<Result<UserRow, Refused>, StoreError> {
        dispatch!(self, set_locked(&name, locked, now, guard))
    }

    /// Changes an account's groups (guarded); the account as it was, and its new groups.
    pub(crate) async fn set_groups(
        &self,
        name: String,
        change: GroupChange,
        now: i64,
        guard: Guard,
    ) -> Result<Result<(UserRow, Vec<String>), Refused>, StoreError> {
        dispatch!(self, set_groups(&name, &change, now, guard))
    }

    /// Deletes an account and every row that belongs to it (guarded), in one transaction;
    /// running servers get `forget`.
    pub(crate) async fn delete_user(
        &self,
        name: String,
        guard: Guard,
        now: fleetwire_auth::UnixTime,
    ) -> Result<Result<Removed, Refused>, StoreError> {
        dispatch!(self, delete_user(&name, guard, now))
    }

    /// Sets an account's idle timeout (`Some(0)`: off, `None`: the default).
    pub(crate) async fn set_idle_timeout(
        &self,
        id: String,
        secs: Option<u64>,
        now: i64,
    ) -> Result<(), StoreError> {
        dispatch!(self, set_idle_timeout(&id, secs, now))
    }

    /// Sets a new password if the stored version is still `version` (and bumps it); voids the
    /// account's reset links. `false` if the password changed meanwhile.
    pub(crate) async fn set_password(
        &self,
        id: String,
        phc: String,
        version: u64,
        now: i64,
    ) -> Result<bool, StoreError> {
        dispatch!(self, set_password(&id, &phc, version, now, false))
    }

    /// [`Self::set_password`] for a completed reset: also ends every session and drops a
    /// pending enrolment (perhaps a thief's).
    pub(crate) async fn reset_password(
        &self,
        id: String,
        phc: String,
        version: u64,
        now: i64,
    ) -> Result<bool, StoreError> {
        dispatch!(self, set_password(&id, &phc, version, now, true))
    }

    // ---- second factor ---------------------------------------------------------------------

    /// The account's second-factor columns; `None` if there is no such account.
    pub(crate) async fn mfa(&self, id: String) -> Result<Option<MfaRow>, StoreError> {
        dispatch!(self, mfa(&id))
    }

    /// Stores a sealed secret being enrolled.
    pub(crate) async fn set_mfa_pending(
        &self,
        id: String,
        sealed: String,
    ) -> Result<(), StoreError> {
        dispatch!(self, set_mfa_pending(&id, &sealed))
    }

    /// Turns the pending secret on if it is still `pending`, with the step used to confirm it
    /// and new recovery codes; `false` if the enrolment changed meanwhile.
    pub(crate) async fn confirm_mfa(
        &self,
        id: String,
        pending: String,
        step: u64,
        recovery: String,
        now: i64,
    ) -> Result<bool, StoreError> {
        dispatch!(self, confirm_mfa(&id, &pending, step, &recovery, now))
    }

    /// Uses TOTP time step `step`: `true` if no later or equal step was used (atomically, so a
    /// code works once however many nodes it is sent to at the same time).
    pub(crate) async fn use_totp_step(&self, id: String, step: u64) -> Result<bool, StoreError> {
        dispatch!(self, use_totp_step(&id, step))
    }

    /// Replaces the recovery codes if they are still `before` (a code redeemed once, however
    /// many nodes it is sent to); `false` if they changed meanwhile.
    pub(crate) async fn swap_recovery(
        &self,
        id: String,
        before: String,
        after: String,
    ) -> Result<bool, StoreError> {
        dispatch!(self, swap_recovery(&id, &before, &after))
    }

    /// New recovery codes.
    pub(crate) async fn set_recovery(
        &self,
        id: String,
        recovery: String,
        now: i64,
    ) -> Result<(), StoreError> {
        dispatch!(self, set_recovery(&id, &recovery, now))
    }

    /// Turns the second factor off: secret, pending enrolment, last step and recovery codes go.
    pub(crate) async fn clear_mfa(&self, id: String, now: i64) -> Result<(), StoreError> {
        dispatch!(self, clear_mfa(&id, now))
    }

    /// An administrator's reset of the second factor: cleared, every session ended (rows now,
    /// running servers by `end_sessions`). Returns how many sessions ended.
    pub(crate) async fn reset_mfa(&self, id: String, now: i64) -> Result<u64, StoreError> {
        dispatch!(self, reset_mfa(&id, now))
    }

    /// Secrets an earlier version stored in clear.
    pub(crate) async fn clear_totp(&self) -> Result<Vec<ClearTotp>, StoreError> {
        dispatch!(self, clear_totp())
    }

    /// Replaces a clear secret with its sealed form, if the row is still as read.
    pub(crate) async fn seal_totp(
        &self,
        before: ClearTotp,
        after: ClearTotp,
    ) -> Result<bool, StoreError> {
        dispatch!(self, seal_totp(&before, &after))
    }

    // ---- sessions --------------------------------------------------------------------------

    /// Records a sign-in (see [`SignIn`]).
    pub(crate) async fn sign_in(&self, sign_in: SignIn) -> Result<(), StoreError> {
        dispatch!(self, sign_in(&sign_in))
    }

    /// A session and its account.
    pub(crate) async fn session(
        &self,
        digest: String,
    ) -> Result<Option<SessionOfUser>, StoreError> {
        dispatch!(self, session(&digest))
    }

    /// Records activity on a session (PostgreSQL; the embedded store keeps it in memory).
    pub(crate) async fn touch_session(&self, digest: String, at_ms: u64) -> Result<(), StoreError> {
        dispatch!(self, touch_session(&digest, at_ms))
    }

    /// Ends one session.
    pub(crate) async fn end_session(&self, digest: String) -> Result<(), StoreError> {
        dispatch!(self, end_session(&digest))
    }

    /// Ends every session of `user` but `keep` (a digest); how many ended.
    pub(crate) async fn end_sessions(
        &self,
        user: String,
        keep: Option<String>,
    ) -> Result<u64, StoreError> {
        dispatch!(self, end_sessions(&user, keep.as_deref()))
    }

    /// Every session row.
    pub(crate) async fn sessions(&self) -> Result<Vec<SessionRow>, StoreError> {
        dispatch!(self, sessions())
    }

    /// Removes these sessions.
    pub(crate) async fn delete_sessions(&self, digests: Vec<String>) -> Result<(), StoreError> {
        dispatch!(self, delete_sessions(&digests))
    }

    /// Removes sessions created at or before `created_ms` (past their absolute lifetime).
    pub(crate) async fn purge_sessions(&self, created_ms: u64) -> Result<u64, StoreError> {
        dispatch!(self, purge_sessions(created_ms))
    }

    // ---- reset tokens ----------------------------------------------------------------------

    /// Stores a reset token; the account's older ones go.
    pub(crate) async fn issue_reset(&self, row: ResetRow) -> Result<(), StoreError> {
        dispatch!(self, issue_reset(&row))
    }

    /// An outstanding reset token, left in place.
    pub(crate) async fn reset(&self, digest: String) -> Result<Option<ResetRow>, StoreError> {
        dispatch!(self, reset(&digest))
    }

    /// An outstanding reset token, taken out (single use: one caller gets it).
    pub(crate) async fn take_reset(&self, digest: String) -> Result<Option<ResetRow>, StoreError> {
        dispatch!(self, take_reset(&digest))
    }

    /// Voids the account's reset tokens.
    pub(crate) async fn void_resets(&self, user: String) -> Result<(), StoreError> {
        dispatch!(self, void_resets(&user))
    }

    /// Removes reset tokens expired by `now_ms`.
    pub(crate) async fn purge_resets(&self, now_ms: u64) -> Result<(), StoreError> {
        dispatch!(self, purge_resets(now_ms))
    }

    // ---- the command queue -----------------------------------------------------------------

    /// Takes every queued command, oldest first (each goes to exactly one taker).
    pub(crate) async fn take_commands(&self) -> Result<Vec<Command>, StoreError> {
        dispatch!(self, take_commands())
    }

    // ---- shared between nodes (PostgreSQL) -------------------------------------------------

    /// A lockout lane's state (`None`: nothing counted).
    pub(crate) async fn lane(&self, lane: [u8; 16]) -> Result<Option<KeyState>, StoreError> {
        shared!(self, "a lockout lane", lane(&lane))
    }

    /// Changes a lockout lane atomically: `change` gets its state (`None`: nothing counted)
    /// under a row lock and returns the state to store (`None`: remove it) and a result.
    pub(crate) async fn update_lane<R>(
        &self,
        lane: [u8; 16],
        change: impl FnOnce(Option<KeyState>) -> (Option<KeyState>, R),
    ) -> Result<R, StoreError> {
        shared!(self, "a lockout lane", update_lane(&lane, change))
    }

    /// Lanes whose last failure is older than `before_secs` (candidates for forgetting).
    pub(crate) async fn old_lanes(
        &self,
        before_secs: u32,
    ) -> Result<Vec<([u8; 16], KeyState)>, StoreError> {
        shared!(self, "a lockout lane", old_lanes(before_secs))
    }

    /// Removes a lane if it is still `state`.
    pub(crate) async fn forget_lane(
        &self,
        lane: [u8; 16],
        state: KeyState,
    ) -> Result<(), StoreError> {
        shared!(self, "a lockout lane", forget_lane(&lane, state))
    }

    /// One throttle decision on a source's and a global arrival time, atomically: `decide`
    /// gets both (0 when new) under row locks and returns the new pair, or a refusal that
    /// changes nothing.
    pub(crate) async fn throttle<E>(
        &self,
        source: [u8; 16],
        global: [u8; 16],
        decide: impl FnOnce(u64, u64) -> Result<(u64, u64), E>,
    ) -> Result<Result<(), E>, StoreError> {
        shared!(self, "a throttle", throttle(&source, &global, decide))
    }

    /// Removes throttle rows refilled by `now_us`.
    pub(crate) async fn purge_throttles(&self, now_us: u64) -> Result<(), StoreError> {
        shared!(self, "a throttle", purge_throttles(now_us))
    }

    /// Stores a CAPTCHA challenge; beyond `max_pending` the oldest issued go.
    pub(crate) async fn add_captcha(
        &self,
        challenge: StoredChallenge,
        max_pending: u64,
    ) -> Result<(), StoreError> {
        shared!(
            self,
            "a CAPTCHA challenge",
            add_captcha(&challenge, max_pending)
        )
    }

    /// Takes a challenge out (single use: one caller gets it).
    pub(crate) async fn take_captcha(
        &self,
        id: String,
    ) -> Result<Option<StoredChallenge>, StoreError> {
        shared!(self, "a CAPTCHA challenge", take_captcha(&id))
    }

    /// Removes challenges expired by `now_ms`.
    pub(crate) async fn purge_captchas(&self, now_ms: u64) -> Result<(), StoreError> {
        shared!(self, "a CAPTCHA challenge", purge_captchas(now_ms))
    }

    /// Records a sign-in of `user` from the origin `tag` (a keyed hash); `true` if it is not
    /// among the account's `keep` most recent origins. Older ones are dropped.
    pub(crate) async fn observe_origin(
        &self,
        user: String,
        tag: String,
        at_ms: u64,
        keep: u32,
    ) -> Result<bool, StoreError> {
        shared!(
            self,
            "the recent origins",
            observe_origin(&user, &tag, at_ms, keep)
        )
    }
}

/// Groups as stored: comma-separated.
fn groups_from(column: &str) -> Vec<String> {
    column
        .split(',')
        .filter(|g| !g.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A stored non-negative number.
fn unsigned(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// A number to store.
fn signed(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}
