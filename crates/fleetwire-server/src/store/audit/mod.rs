//! Security events and the hash-chained audit log (`fleetwire_auth::audit`): every account
//! decision and every device event, each entry linked to the one before by its hash, so an
//! edited, deleted or reordered entry is found by `audit verify`.
//!
//! On PostgreSQL several nodes append to one chain: an append takes a transaction-scoped
//! advisory lock, so the links stay a single line whatever the number of writers.

pub(crate) mod postgres;
pub(crate) mod sqlite;

use fleetwire_auth::UnixTime;
use fleetwire_auth::audit::{AuditEntry, AuditEvent, verify_chain};
use fleetwire_session::PlayerId;

use super::backend::Backend;
use super::{Store, StoreError};

/// A device's security event (a player's or logger's login, refusal, disconnect), kept in its
/// own table for queries and chained into the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SecurityEvent {
    /// Seconds since the epoch.
    pub(crate) at: i64,
    /// What happened (`login`, `login_failed`, `logger_rejected`, …).
    pub(crate) kind: &'static str,
    /// The player it concerns, if one was named.
    pub(crate) player: Option<PlayerId>,
    /// The peer's address, if known.
    pub(crate) peer: Option<String>,
    /// Why, in words.
    pub(crate) detail: String,
}

impl SecurityEvent {
    /// The event as an audit entry's content.
    pub(crate) fn audit_event(&self) -> (UnixTime, AuditEvent) {
        let at = u64::try_from(self.at).unwrap_or(0).saturating_mul(1000);
        (
            UnixTime::from_millis(at),
            AuditEvent::DeviceEvent {
                kind: self.kind.to_owned(),
                device: self.player.map(|p| p.to_string()).unwrap_or_default(),
                origin: self.peer.clone().unwrap_or_default(),
                detail: self.detail.clone(),
            },
        )
    }
}

/// An entry as `audit tail` shows it: the event as stored (JSON).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TailEntry {
    pub(crate) seq: i64,
    pub(crate) at_ms: i64,
    pub(crate) event_json: String,
}

/// The audit repository.
pub(crate) struct Audit<'a>(pub(super) &'a Store);

impl Audit<'_> {
    /// Records device events and appends them to the chain, in one transaction.
    pub(crate) async fn record(&self, events: Vec<SecurityEvent>) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        match self.0.backend() {
            Backend::Sqlite(_) => self.0.sqlite(move |c| sqlite::record(c, &events)).await,
            Backend::Postgres(_) => postgres::record(&mut self.0.postgres().await?, &events).await,
        }
    }

    /// Appends account decisions to the chain, in one transaction.
    #[allow(dead_code)] // used once accounts move onto the store layer
    pub(crate) async fn append(
        &self,
        events: Vec<(UnixTime, AuditEvent)>,
    ) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        match self.0.backend() {
            Backend::Sqlite(_) => {
                self.0
                    .sqlite(move |c| {
                        let tx =
                            c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                        sqlite::append(&tx, &events)?;
                        tx.commit()?;
                        Ok::<_, StoreError>(())
                    })
                    .await
            }
            Backend::Postgres(_) => {
                let mut client = self.0.postgres().await?;
                let tx = client.transaction().await?;
                postgres::append(&tx, &events).await?;
                tx.commit().await?;
                Ok(())
            }
        }
    }

    /// Recomputes the whole chain; returns the number of entries and the head hash.
    pub(crate) async fn verify(&self) -> Result<Verified, StoreError> {
        let rows = match self.0.backend() {
            Backend::Sqlite(_) => self.0.sqlite(sqlite::all).await?,
            Backend::Postgres(_) => postgres::all(&self.0.postgres().await?).await?,
        };
        let mut entries = Vec::with_capacity(rows.len());
        for (seq, at, event, prev, hash) in rows {
            let Ok(event) = serde_json::from_str::<AuditEvent>(&event) else {
                return Ok(Verified::Broken(format!(
                    "audit entry {seq} was modified (its event is unreadable)"
                )));
            };
            entries.push(AuditEntry {
                seq: u64::try_from(seq).unwrap_or(u64::MAX),
                at: UnixTime::from_millis(u64::try_from(at).unwrap_or(0)),
                event,
                prev,
                hash,
            });
        }
        if let Err(e) = verify_chain(&entries, None) {
            return Ok(Verified::Broken(e.to_string()));
        }
        let head = entries
            .last()
            .map_or_else(|| "0".repeat(64), |e| e.hash.clone());
        Ok(Verified::Intact {
            entries: entries.len() as u64,
            head,
        })
    }

    /// The newest `count` entries, oldest first.
    pub(crate) async fn tail(&self, count: i64) -> Result<Vec<TailEntry>, StoreError> {
        match self.0.backend() {
            Backend::Sqlite(_) => self.0.sqlite(move |c| sqlite::tail(c, count)).await,
            Backend::Postgres(_) => postgres::tail(&self.0.postgres().await?, count).await,
        }
    }
}

/// What `verify` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verified {
    /// Every link holds.
    Intact {
        /// Entries in the chain.
        entries: u64,
        /// The last entry's hash (record it elsewhere to detect a cut-off end).
        head: String,
    },
    /// Why not.
    Broken(String),
}

/// One stored entry: seq, at (ms), event JSON, prev, hash.
pub(super) type Row = (i64, i64, String, String, String);

/// The entries that follow `last` (the stored chain's last number and hash).
fn link(last: Option<(i64, String)>, events: &[(UnixTime, AuditEvent)]) -> Vec<AuditEntry> {
    let mut after = last.map(|(seq, hash)| (u64::try_from(seq).unwrap_or(0), hash));
    let mut out = Vec::with_capacity(events.len());
    for (at, event) in events {
        let entry = AuditEntry::next(
            after.as_ref().map(|(s, h)| (*s, h.as_str())),
            *at,
            event.clone(),
        );
        after = Some((entry.seq, entry.hash.clone()));
        out.push(entry);
    }
    out
}

fn event_json(e: &AuditEntry) -> Result<String, StoreError> {
    serde_json::to_string(&e.event).map_err(|e| StoreError::Invalid(e.to_string()))
}

fn seq(e: &AuditEntry) -> i64 {
    i64::try_from(e.seq).unwrap_or(i64::MAX)
}

fn at_ms(e: &AuditEntry) -> i64 {
    i64::try_from(e.at.as_millis()).unwrap_or(i64::MAX)
}
