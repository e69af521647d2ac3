//! Things: their access state, the code registry, principals, members and events.
//!
//! - `things`: one row per thing: a random public id (`t_` + 16 hex digits), a name, the current
//!   code (canonical form, `UNIQUE`), the mode and code expiry (copies for listing), and the
//!   whole [`ThingAccess`] state as JSON.
//! - `thing_codes`: every code ever issued (primary key), with its thing and when it was retired.
//!   Claiming a code is one `INSERT … ON CONFLICT DO NOTHING` ([`Things::claim_code`]), so two
//!   nodes can never both win a code, and a rotated code is never issued again.
//! - `thing_principals`: who a right belongs to ↔ the machine's numeric [`UserId`]s. A principal
//!   is an account's immutable id (`u_…`) or a gateway user (`ext:NAME`). Numbers are never
//!   handed out again (`AUTOINCREMENT` on SQLite, an identity column on PostgreSQL).
//! - `thing_members`: (user, thing) for every member, rewritten with the state; an index for
//!   "my things", never consulted for access decisions (the state is).
//! - `thing_events`: the machine's [`AuditEvent`](fleetwire_codes::AuditEvent)s (every change
//!   and every refusal), with the acting principal's number (`''` for the operator) and `via`.
//!
//! Every access change is one transaction ([`Things::change`]): load the state (SQLite:
//! `BEGIN IMMEDIATE`; PostgreSQL: `SELECT … FOR UPDATE`), apply the operation, store it back and
//! append its events. Operations on one thing are serialized across processes and nodes, so two
//! racing first users get exactly one administrator, and a revocation committed on one node is
//! what the next request on any other node reads: there is no cache.

pub(crate) mod postgres;
pub(crate) mod sqlite;
#[cfg(test)]
mod tests;

use fleetwire_codes::{AccessMode, Code, ThingAccess, UnixTime, UserId};
use serde::Serialize;

use super::backend::Backend;
use super::{Store, StoreError};

/// Who performs an operation, for the event log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Via {
    /// The HTTPS API.
    Api,
    /// The operator's command line.
    Cli,
}

impl Via {
    fn as_str(self) -> &'static str {
        match self {
            Self::Api => "api",
            Self::Cli => "cli",
        }
    }
}

/// A stored thing.
#[derive(Debug, Clone)]
pub(crate) struct ThingRow {
    /// `t_` + 16 hex digits.
    pub(crate) id: String,
    /// The operator's or creator's name for it.
    pub(crate) name: String,
    /// Its whole access state.
    pub(crate) access: ThingAccess,
}

/// A thing to insert: its code must have been claimed first ([`Things::claim_code`]).
#[derive(Debug, Clone)]
pub(crate) struct NewThing {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) code: Code,
    pub(crate) mode: AccessMode,
    /// The account that created it over the API (`None`: the operator).
    pub(crate) created_by: Option<String>,
    pub(crate) via: Via,
}

/// A cap on the things one creator may have made, checked in the inserting transaction.
#[derive(Debug, Clone)]
pub(crate) struct Quota {
    pub(crate) creator: String,
    pub(crate) max: usize,
}

/// What [`Things::create`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Created {
    /// The thing is stored.
    Created,
    /// The creator already made `made` things, the most the quota allows; nothing was stored.
    OverQuota { made: usize },
}

/// Which thing an operation is about.
#[derive(Debug, Clone)]
pub(crate) enum ThingKey {
    /// By its `t_…` id.
    Id(String),
    /// By its current code.
    Code(Code),
}

/// The outcome of [`Things::change`]: the thing as it now stands (as stored if the operation
/// succeeded, unchanged otherwise) and what the operation returned.
#[derive(Debug)]
pub(crate) struct Changed<T, E> {
    pub(crate) thing: ThingRow,
    pub(crate) result: Result<T, E>,
}

/// A principal and its number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PrincipalRow {
    pub(crate) number: UserId,
    /// `u_…` (an account's id) or `ext:NAME` (a gateway user).
    pub(crate) principal: String,
}

/// A stored thing event, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ThingEvent {
    pub(crate) at_ms: i64,
    /// The acting principal's number, `""` for the operator.
    pub(crate) actor: String,
    /// `api` or `cli`.
    pub(crate) via: String,
    /// The event as JSON.
    pub(crate) event: String,
}

/// What deleting an account removed from the things, for `user delete`'s report.
#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub(crate) struct ThingsForgotten {
    /// Things it was a member of.
    pub(crate) memberships: usize,
    /// Of those, things it administered.
    pub(crate) as_administrator: usize,
    /// Things where another member became administrator in its place.
    pub(crate) administrator_passed_on: usize,
    /// Things it was the last member of: unclaimed again.
    pub(crate) left_unclaimed: usize,
    /// Pending requests withdrawn.
    pub(crate) pending_requests: usize,
    /// Invites withdrawn.
    pub(crate) invites: usize,
    /// Blocks lifted (there is nobody left to block).
    pub(crate) blocks: usize,
    /// Thing events that named its number (kept: nothing maps the number to anyone now).
    pub(crate) events_anonymised: usize,
    /// Things it created (the creator is cleared).
    pub(crate) things_created: usize,
}

/// The things repository.
pub(crate) struct Things<'a>(pub(super) &'a Store);

impl Things<'_> {
    /// Claims `code` for `thing` in the registry: false if it was ever issued before.
    pub(crate) async fn claim_code(
        &self,
        code: Code,
        thing: String,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        match self.0.backend() {
            Backend::Sqlite(_) => {
                self.0
                    .sqlite(move |c| sqlite::claim_code(c, &code, &thing, now))
                    .await
            }
            Backend::Postgres(_) => {
                postgres::claim_code(&self.0.postgres().await?, &code, &thing, now).await
            }
        }
    }

    /// Stores a new thing and its `Created` event, unless `quota` is spent.
    pub(crate) async fn create(
        &self,
        thing: NewThing,
        quota: Option<Quota>,
        now: UnixTime,
    ) -> Result<Created, StoreError> {
        match self.0.backend() {
            Backend::Sqlite(_) => {
                self.0
                    .sqlite(move |c| sqlite::create(c, &thing, quota.as_ref(), now))
                    .await
            }
            Backend::Postgres(_) => {
                postgres::create(&mut self.0.postgres().await?, &thing, quota.as_ref(), now).await
            }
        }
    }

    /// One access change, in one transaction: load the thing `key` names, run `op` on its state,
    /// store the state if `op` succeeded, append the events it produced either way (refusals
    /// are logged too), retire the old code if the code changed. `None`: no such thing.
    pub(crate) async fn change<T, E>(
        &self,
        key: ThingKey,
        via: Via,
        now: UnixTime,
        op: impl FnOnce(&mut ThingAccess, UnixTime) -> Result<T, E> + Send + 'static,
    ) -> Result<Option<Changed<T, E>>, StoreError>
    where
        T: Send + 'static,
        E: Send + 'static,
    {
        match self.0.backend() {
            Backend::Sqlite(_) => {
                self.0
                    .sqlite(move |c| sqlite::change(c, &key, via, now, op))
                    .await
            }
            Backend::Postgres(_) => {
                postgres::change(&mut self.0.postgres().await?, &key, via, now, op).await
            }
        }
    }

    /// The thing with this id.
    pub(crate) async fn load(&self, id: String) -> Result<Option<ThingRow>, StoreError> {
        match self.0.backend() {
            Backend::Sqlite(_) => self.0.sqlite(move |c| sqlite::load(c, &id)).await,
            Backend::Postgres(_) => postgres::load(&self.0.postgres().await?, &id).await,
        }
    }

    /// The id of the thing whose current code is `code`.
    pub(crate) async fn by_code(&self, code: Code) -> Result<Option<String>, StoreError> {
        match self.0.backend() {
            Backend::Sqlite(_) => self.0.sqlite(move |c| sqlite::by_code(c, &code)).await,
            Backend::Postgres(_) => postgres::by_code(&self.0.postgres().await?, &code).await,
        }
    }

    /// Every thing, oldest first.
    pub(crate) async fn all(&self) -> Result<Vec<ThingRow>, StoreError> {
        match self.0.backend() {
            Backend::Sqlite(_) => self.0.sqlite(sqlite::all).await,
            Backend::Postgres(_) => postgres::all(&self.0.postgres().await?).await,
        }
    }

    /// The things `user` is listed as a member of, oldest first (the caller checks the state).
    pub(crate) async fn of_member(&self, user: UserId) -> Result<Vec<ThingRow>, StoreError> {
        match self.0.backend() {
            Backend::Sqlite(_) => self.0.sqlite(move |c| sqlite::of_member(c, user)).await,
            Backend::Postgres(_) => postgres::of_member(&self.0.postgres().await?, user).await,
        }
    }

    /// The number of `principal`, given on first use.
    pub(crate) async fn number(&self, principal: String) -> Result<UserId, StoreError> {
        match self.0.backend() {
            Backend::Sqlite(_) => self.0.sqlite(move |c| sqlite::number(c, &principal)).await,
            Backend::Postgres(_) => postgres::number(&self.0.postgres().await?, &principal).await,
        }
    }

    /// The number of `principal`, if it has one.
    pub(crate) async fn known_number(
        &self,
        principal: String,
    ) -> Result<Option<UserId>, StoreError> {
        match self.0.backend() {
            Backend::Sqlite(_) => {
                self.0
                    .sqlite(move |c| sqlite::known_number(c, &principal))
                    .await
            }
            Backend::Postgres(_) => {
                postgres::known_number(&self.0.postgres().await?, &principal).await
            }
        }
    }

    /// The principals of `numbers` that still map to one (a forgotten number maps to none).
    pub(crate) async fn principals(
        &self,
        numbers: Vec<UserId>,
    ) -> Result<Vec<PrincipalRow>, StoreError> {
        match self.0.backend() {
            Backend::Sqlite(_) => {
                self.0
                    .sqlite(move |c| sqlite::principals(c, &numbers))
                    .await
            }
            Backend::Postgres(_) => postgres::principals(&self.0.postgres().await?, &numbers).await,
        }
    }

    /// A thing's events, oldest first.
    #[allow(dead_code)] // the repository tests read them; an events route may follow
    pub(crate) async fn events(&self, thing: String) -> Result<Vec<ThingEvent>, StoreError> {
        match self.0.backend() {
            Backend::Sqlite(_) => self.0.sqlite(move |c| sqlite::events(c, &thing)).await,
            Backend::Postgres(_) => postgres::events(&self.0.postgres().await?, &thing).await,
        }
    }

    /// Takes the account `account` (its id) out of every thing: membership, request, invite,
    /// block (if it was the last administrator the remaining member with the lowest number
    /// takes over), deletes its principal row (events keep a number that maps to nobody) and
    /// clears it as the creator of things. On SQLite, `user delete` calls
    /// [`sqlite::forget_account`] inside its own transaction instead.
    #[allow(dead_code)] // for the accounts repository's `delete`, when accounts move to the store
    pub(crate) async fn forget_account(
        &self,
        account: String,
        now: UnixTime,
    ) -> Result<ThingsForgotten, StoreError> {
        match self.0.backend() {
            Backend::Sqlite(_) => {
                self.0
                    .sqlite(move |c| {
                        let tx =
                            c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                        let out = sqlite::forget_account(&tx, &account, now)?;
                        tx.commit()?;
                        Ok::<_, StoreError>(out)
                    })
                    .await
            }
            Backend::Postgres(_) => {
                postgres::forget_account(&mut self.0.postgres().await?, &account, now).await
            }
        }
    }
}

/// The name a mode is stored (and shown) under.
pub(crate) fn mode_name(mode: AccessMode) -> &'static str {
    match mode {
        AccessMode::Open => "open",
        AccessMode::AdminConfirm => "confirm",
        AccessMode::InviteOnly => "invite",
    }
}

fn ms(t: UnixTime) -> i64 {
    i64::try_from(t.as_millis()).unwrap_or(i64::MAX)
}

fn number_of(n: i64) -> UserId {
    UserId(u64::try_from(n).unwrap_or(0))
}

fn db_number(u: UserId) -> i64 {
    i64::try_from(u.0).unwrap_or(-1)
}

fn decode(id: &str, name: String, state: &str) -> Result<ThingRow, StoreError> {
    let access: ThingAccess = serde_json::from_str(state)
        .map_err(|e| StoreError::Invalid(format!("thing {id}: stored state unreadable: {e}")))?;
    Ok(ThingRow {
        id: id.to_owned(),
        name,
        access,
    })
}

fn encode(access: &ThingAccess) -> Result<String, StoreError> {
    serde_json::to_string(access).map_err(|e| StoreError::Invalid(e.to_string()))
}

/// The events `access` produced, drained, as rows.
fn drain_events(access: &mut ThingAccess) -> Result<Vec<(i64, String, String)>, StoreError> {
    let mut out = Vec::new();
    while let Some(fleetwire_codes::AuditEvent { at, actor, kind }) = access.poll_event() {
        let event = serde_json::to_string(&kind).map_err(|e| StoreError::Invalid(e.to_string()))?;
        out.push((ms(at), actor.0.to_string(), event));
    }
    Ok(out)
}

/// The `Created` event of a new thing.
fn created_event(mode: AccessMode) -> String {
    serde_json::json!({ "Created": { "mode": mode_name(mode) } }).to_string()
}

/// Tallies what `forget_user` removed from one thing.
fn tally(out: &mut ThingsForgotten, f: &fleetwire_codes::Forgotten, access: &ThingAccess) {
    if let Some(role) = f.role {
        out.memberships += 1;
        if role == fleetwire_codes::Role::Administrator {
            out.as_administrator += 1;
            if f.successor.is_some() {
                out.administrator_passed_on += 1;
            } else if !access.is_claimed() {
                out.left_unclaimed += 1;
            }
        }
    }
    out.pending_requests += usize::from(f.pending);
    out.invites += usize::from(f.invited);
    out.blocks += usize::from(f.blocked);
}
