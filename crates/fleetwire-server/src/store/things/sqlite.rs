//! The things repository on SQLite.

use fleetwire_codes::{Code, ThingAccess, UnixTime, UserId};
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};

use super::{
    Changed, Created, NewThing, PrincipalRow, Quota, ThingEvent, ThingKey, ThingRow,
    ThingsForgotten, Via, created_event, db_number, decode, drain_events, encode, mode_name, ms,
    number_of, tally,
};
use crate::store::StoreError;

/// The things tables (moved unchanged from the legacy module: it is part of the SQLite v1
/// baseline, which every existing data directory already has).
pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS things (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL DEFAULT '',
    code            TEXT NOT NULL UNIQUE,
    mode            TEXT NOT NULL,
    code_expires_ms INTEGER,
    state           TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    created_by      TEXT
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS thing_codes (
    code       TEXT PRIMARY KEY,
    thing      TEXT NOT NULL,
    claimed_at INTEGER NOT NULL,
    retired_at INTEGER
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS thing_principals (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    principal TEXT NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS thing_events (
    seq   INTEGER PRIMARY KEY AUTOINCREMENT,
    thing TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    actor TEXT NOT NULL,
    via   TEXT NOT NULL,
    event TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS thing_events_by_thing ON thing_events (thing, seq);
CREATE TABLE IF NOT EXISTS thing_members (
    user  INTEGER NOT NULL,
    thing TEXT NOT NULL,
    PRIMARY KEY (user, thing)
) WITHOUT ROWID;
";

/// The prefix of gateway users' principals.
const GATEWAY: &str = "ext:";

/// Part of the v1 baseline's code step: brings a data directory of an earlier version forward;
/// idempotent.
///
/// Rights keyed by user name (`thing_users`) become rights keyed by principal, keeping their
/// numbers: a name becomes the id of the account that has it (by name or e-mail) unless the
/// first thing event naming it is older than that account (the right then belonged to an
/// earlier holder of the name, such as a deleted account) or that account already has a number;
/// otherwise it becomes the gateway user `ext:NAME`, which only `danger_trust_user_header` can
/// act as. Event actors become numbers. `things.created_by` is added.
pub(crate) fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    const CREATOR: &str = "SELECT 1 FROM pragma_table_info('things') WHERE name = 'created_by'";
    const INDEX: &str =
        "SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = 'things_by_creator'";
    const OLD_USERS: &str =
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'thing_users'";
    let exists = |c: &Connection, sql: &str| c.prepare(sql)?.exists([]);
    // Every command opens the store: take the write lock only when there is work.
    if exists(conn, CREATOR)? && exists(conn, INDEX)? && !exists(conn, OLD_USERS)? {
        return Ok(());
    }
    let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
    if !exists(&tx, CREATOR)? {
        tx.execute("ALTER TABLE things ADD COLUMN created_by TEXT", [])?;
    }
    tx.execute(
        "CREATE INDEX IF NOT EXISTS things_by_creator ON things (created_by)",
        [],
    )?;
    if exists(&tx, OLD_USERS)? {
        let rows: Vec<(i64, String)> = tx
            .prepare("SELECT id, name FROM thing_users ORDER BY id")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        for (number, name) in &rows {
            let first_seen: Option<i64> = tx.query_row(
                "SELECT min(at_ms) FROM thing_events WHERE actor = ?1 \
                 OR instr(event, '\"user\":' || ?2 || ',') > 0 \
                 OR instr(event, '\"user\":' || ?2 || '}') > 0",
                params![name, number.to_string()],
                |r| r.get(0),
            )?;
            let account = account_by_name(&tx, name)?.filter(|(_, created_at)| {
                first_seen.is_none_or(|seen| created_at.saturating_mul(1000) <= seen)
            });
            let principal = match account {
                Some((id, _)) if known_number(&tx, &id)?.is_none() => id,
                _ => format!("{GATEWAY}{name}"),
            };
            tx.execute(
                "INSERT INTO thing_principals (id, principal) VALUES (?1, ?2)",
                params![number, principal],
            )?;
        }
        tx.execute(
            "UPDATE thing_events SET actor = \
             (SELECT CAST(u.id AS TEXT) FROM thing_users u WHERE u.name = thing_events.actor) \
             WHERE actor IN (SELECT name FROM thing_users)",
            [],
        )?;
        tx.execute("DROP TABLE thing_users", [])?;
        tracing::warn!(
            "things: {} user names migrated to account ids (rights keyed by name are gone)",
            rows.len()
        );
    }
    tx.commit()
}

/// The account (`id`, `created_at`) that has `name` as its name or e-mail, as the accounts table
/// of this baseline stores it (names are kept lower-case). The migration reads it directly so
/// the store does not depend on the accounts code above it.
fn account_by_name(conn: &Connection, name: &str) -> rusqlite::Result<Option<(String, i64)>> {
    let name = name.trim().to_lowercase();
    conn.query_row(
        "SELECT id, created_at FROM auth_users WHERE name = ?1 OR email = ?1 \
         ORDER BY name = ?1 DESC LIMIT 1",
        [&name],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .optional()
}

pub(super) fn claim_code(
    conn: &mut Connection,
    code: &Code,
    thing: &str,
    now: UnixTime,
) -> Result<bool, StoreError> {
    let n = conn.execute(
        "INSERT INTO thing_codes (code, thing, claimed_at) VALUES (?1, ?2, ?3) \
         ON CONFLICT (code) DO NOTHING",
        params![code.as_str(), thing, ms(now)],
    )?;
    Ok(n == 1)
}

pub(super) fn create(
    conn: &mut Connection,
    thing: &NewThing,
    quota: Option<&Quota>,
    now: UnixTime,
) -> Result<Created, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    // The quota is counted in the transaction that inserts, so parallel requests cannot pass it.
    if let Some(q) = quota {
        let made: usize = tx.query_row(
            "SELECT count(*) FROM things WHERE created_by = ?1",
            [&q.creator],
            |r| r.get(0),
        )?;
        if made >= q.max {
            return Ok(Created::OverQuota { made });
        }
    }
    let access = ThingAccess::new(thing.code, thing.mode);
    tx.execute(
        "INSERT INTO things (id, name, code, mode, state, created_at, updated_at, created_by) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?7)",
        params![
            thing.id,
            thing.name,
            thing.code.as_str(),
            mode_name(thing.mode),
            encode(&access)?,
            ms(now),
            thing.created_by
        ],
    )?;
    tx.execute(
        "INSERT INTO thing_events (thing, at_ms, actor, via, event) VALUES (?1, ?2, '', ?3, ?4)",
        params![
            thing.id,
            ms(now),
            thing.via.as_str(),
            created_event(thing.mode)
        ],
    )?;
    tx.commit()?;
    Ok(Created::Created)
}

pub(super) fn change<T, E>(
    conn: &mut Connection,
    key: &ThingKey,
    via: Via,
    now: UnixTime,
    op: impl FnOnce(&mut ThingAccess, UnixTime) -> Result<T, E>,
) -> Result<Option<Changed<T, E>>, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let id = match key {
        ThingKey::Id(id) => Some(id.clone()),
        ThingKey::Code(code) => by_code(&tx, code)?,
    };
    let Some(mut thing) = id.map(|id| load(&tx, &id)).transpose()?.flatten() else {
        return Ok(None);
    };
    let old_code = *thing.access.code();
    let result = op(&mut thing.access, now);
    save(&tx, &mut thing, via, result.is_ok(), now)?;
    if result.is_ok() && *thing.access.code() != old_code {
        tx.execute(
            "UPDATE thing_codes SET retired_at = ?2 WHERE code = ?1",
            params![old_code.as_str(), ms(now)],
        )?;
    }
    tx.commit()?;
    Ok(Some(Changed { thing, result }))
}

/// Stores the state (if `changed`) and appends the drained events.
fn save(
    tx: &Connection,
    thing: &mut ThingRow,
    via: Via,
    changed: bool,
    now: UnixTime,
) -> Result<(), StoreError> {
    for (at, actor, event) in drain_events(&mut thing.access)? {
        tx.execute(
            "INSERT INTO thing_events (thing, at_ms, actor, via, event) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![thing.id, at, actor, via.as_str(), event],
        )?;
    }
    if changed {
        tx.execute(
            "UPDATE things SET code = ?2, mode = ?3, code_expires_ms = ?4, state = ?5, updated_at = ?6 \
             WHERE id = ?1",
            params![
                thing.id,
                thing.access.code().as_str(),
                mode_name(thing.access.mode()),
                thing.access.code_expires_at().map(ms),
                encode(&thing.access)?,
                ms(now)
            ],
        )?;
        tx.execute("DELETE FROM thing_members WHERE thing = ?1", [&thing.id])?;
        let mut insert =
            tx.prepare_cached("INSERT INTO thing_members (user, thing) VALUES (?1, ?2)")?;
        for (user, _) in thing.access.members() {
            insert.execute(params![db_number(user), thing.id])?;
        }
    }
    Ok(())
}

pub(super) fn load(conn: &Connection, id: &str) -> Result<Option<ThingRow>, StoreError> {
    let row: Option<(String, String)> = conn
        .query_row("SELECT name, state FROM things WHERE id = ?1", [id], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    row.map(|(name, state)| decode(id, name, &state))
        .transpose()
}

pub(super) fn by_code(conn: &Connection, code: &Code) -> Result<Option<String>, StoreError> {
    Ok(conn
        .query_row(
            "SELECT id FROM things WHERE code = ?1",
            [code.as_str()],
            |r| r.get(0),
        )
        .optional()?)
}

pub(super) fn all(conn: &mut Connection) -> Result<Vec<ThingRow>, StoreError> {
    let mut stmt = conn.prepare("SELECT id, name, state FROM things ORDER BY created_at, id")?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
        ))
    })?;
    rows.map(|row| {
        let (id, name, state) = row?;
        decode(&id, name, &state)
    })
    .collect()
}

pub(super) fn of_member(conn: &mut Connection, user: UserId) -> Result<Vec<ThingRow>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT t.id, t.name, t.state FROM thing_members m JOIN things t ON t.id = m.thing \
         WHERE m.user = ?1 ORDER BY t.created_at, t.id",
    )?;
    let rows = stmt.query_map([db_number(user)], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
        ))
    })?;
    rows.map(|row| {
        let (id, name, state) = row?;
        decode(&id, name, &state)
    })
    .collect()
}

pub(super) fn number(conn: &mut Connection, principal: &str) -> Result<UserId, StoreError> {
    conn.execute(
        "INSERT INTO thing_principals (principal) VALUES (?1) ON CONFLICT (principal) DO NOTHING",
        [principal],
    )?;
    let id: i64 = conn.query_row(
        "SELECT id FROM thing_principals WHERE principal = ?1",
        [principal],
        |r| r.get(0),
    )?;
    Ok(number_of(id))
}

pub(super) fn known_number(conn: &Connection, principal: &str) -> rusqlite::Result<Option<UserId>> {
    let id: Option<i64> = conn
        .query_row(
            "SELECT id FROM thing_principals WHERE principal = ?1",
            [principal],
            |r| r.get(0),
        )
        .optional()?;
    Ok(id.map(number_of))
}

pub(super) fn principals(
    conn: &mut Connection,
    numbers: &[UserId],
) -> Result<Vec<PrincipalRow>, StoreError> {
    let mut stmt = conn.prepare_cached("SELECT principal FROM thing_principals WHERE id = ?1")?;
    let mut out = Vec::new();
    for &number in numbers {
        let principal: Option<String> = stmt
            .query_row([db_number(number)], |r| r.get(0))
            .optional()?;
        if let Some(principal) = principal {
            out.push(PrincipalRow { number, principal });
        }
    }
    Ok(out)
}

pub(super) fn events(conn: &mut Connection, thing: &str) -> Result<Vec<ThingEvent>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT at_ms, actor, via, event FROM thing_events WHERE thing = ?1 ORDER BY seq",
    )?;
    let rows = stmt.query_map([thing], |r| {
        Ok(ThingEvent {
            at_ms: r.get(0)?,
            actor: r.get(1)?,
            via: r.get(2)?,
            event: r.get(3)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Takes the account `account` (its id) out of every thing, in the caller's transaction (`user
/// delete` runs it in the transaction that deletes the account).
pub(crate) fn forget_account(
    tx: &Connection,
    account: &str,
    now: UnixTime,
) -> Result<ThingsForgotten, StoreError> {
    let mut out = ThingsForgotten {
        things_created: tx.execute(
            "UPDATE things SET created_by = NULL WHERE created_by = ?1",
            [account],
        )?,
        ..ThingsForgotten::default()
    };
    let Some(number) = known_number(tx, account)? else {
        return Ok(out);
    };
    let n = number.0.to_string();
    // A cheap superset: the number appears in the state of every thing it has a place in.
    let ids: Vec<String> = tx
        .prepare("SELECT id FROM things WHERE instr(state, ?1) > 0")?
        .query_map([&n], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for id in ids {
        let Some(mut thing) = load(tx, &id)? else {
            continue;
        };
        let f = thing.access.forget_user(now, number);
        if f.is_empty() {
            continue;
        }
        tally(&mut out, &f, &thing.access);
        save(tx, &mut thing, Via::Cli, true, now)?;
    }
    out.events_anonymised = tx.query_row(
        "SELECT count(*) FROM thing_events WHERE actor = ?1 \
         OR instr(event, '\"user\":' || ?1 || ',') > 0 \
         OR instr(event, '\"user\":' || ?1 || '}') > 0",
        [&n],
        |r| r.get(0),
    )?;
    tx.execute(
        "DELETE FROM thing_principals WHERE id = ?1",
        [db_number(number)],
    )?;
    Ok(out)
}
