//! The accounts repository on SQLite. The schema is the one earlier versions created (part of
//! the baseline migration): sessions and reset tokens are rows the running server mirrors from
//! its in-memory engines, so they keep no activity time and no password version.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::{
    ClearTotp, Command, CommandKind, GroupChange, Guard, MfaRow, NewUser, Refused, Removed,
    ResetRow, SessionOfUser, SessionRow, SignIn, UserRow, groups_from, signed, unsigned,
};
use crate::store::StoreError;

pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS auth_users (
    id                TEXT PRIMARY KEY,
    name              TEXT NOT NULL UNIQUE,
    email             TEXT,
    phc               TEXT NOT NULL,
    password_version  INTEGER NOT NULL DEFAULT 1,
    groups            TEXT NOT NULL DEFAULT '',
    idle_timeout_secs INTEGER,
    mfa               TEXT,
    mfa_pending       TEXT,
    mfa_last_step     INTEGER,
    recovery          TEXT,
    locked            INTEGER NOT NULL DEFAULT 0,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL,
    last_login_at     INTEGER
);
CREATE INDEX IF NOT EXISTS auth_users_email ON auth_users (email);
CREATE TABLE IF NOT EXISTS auth_sessions (
    digest     TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    origin     TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS auth_reset_tokens (
    digest     TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL,
    expires_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS auth_commands (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    kind    TEXT NOT NULL,
    subject TEXT NOT NULL
);
";

const USER_COLUMNS: &str = "id, name, email, phc, password_version, groups, idle_timeout_secs, \
    mfa IS NOT NULL, locked, created_at, last_login_at";

fn user_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<UserRow> {
    let groups: String = r.get(5)?;
    let idle: Option<i64> = r.get(6)?;
    Ok(UserRow {
        id: r.get(0)?,
        name: r.get(1)?,
        email: r.get(2)?,
        phc: r.get(3)?,
        password_version: unsigned(r.get(4)?),
        groups: groups_from(&groups),
        idle_timeout_secs: idle.map(unsigned),
        mfa: r.get(7)?,
        locked: r.get(8)?,
        created_at: r.get(9)?,
        last_login_at: r.get(10)?,
    })
}

/// The account a canonical name or e-mail address names (the name wins). Also used, inside
/// their own transactions, by the things tables until they move onto the store layer.
pub(crate) fn user_by_name_in(c: &Connection, name: &str) -> rusqlite::Result<Option<UserRow>> {
    c.query_row(
        &format!(
            "SELECT {USER_COLUMNS} FROM auth_users WHERE name = ?1 OR email = ?1 \
             ORDER BY name = ?1 DESC LIMIT 1"
        ),
        [name],
        user_from_row,
    )
    .optional()
}

/// The account with this id (see [`user_by_name_in`]).
pub(crate) fn user_by_id_in(c: &Connection, id: &str) -> rusqlite::Result<Option<UserRow>> {
    c.query_row(
        &format!("SELECT {USER_COLUMNS} FROM auth_users WHERE id = ?1"),
        [id],
        user_from_row,
    )
    .optional()
}

fn others_unlocked(c: &Connection, id: &str) -> rusqlite::Result<Vec<UserRow>> {
    c.prepare(&format!(
        "SELECT {USER_COLUMNS} FROM auth_users WHERE id != ?1 AND locked = 0"
    ))?
    .query_map([id], user_from_row)?
    .collect()
}

fn queue(c: &Connection, kind: CommandKind, subject: &str) -> rusqlite::Result<usize> {
    c.execute(
        "INSERT INTO auth_commands (kind, subject) VALUES (?1, ?2)",
        params![kind.as_str(), subject],
    )
}

pub(super) fn add_user(c: &mut Connection, u: &NewUser) -> Result<bool, StoreError> {
    let idle = u.idle_timeout_secs.map(signed);
    let n = c.execute(
        "INSERT INTO auth_users (id, name, email, phc, groups, idle_timeout_secs, created_at, updated_at)
         SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7
         WHERE NOT EXISTS (SELECT 1 FROM auth_users WHERE name = ?2 OR email = ?2
                           OR (?3 IS NOT NULL AND (name = ?3 OR email = ?3)))",
        params![u.id, u.name, u.email, u.phc, u.groups.join(","), idle, u.now],
    )?;
    Ok(n == 1)
}

pub(super) fn users(c: &mut Connection) -> Result<Vec<UserRow>, StoreError> {
    let rows = c
        .prepare(&format!(
            "SELECT {USER_COLUMNS} FROM auth_users ORDER BY name"
        ))?
        .query_map([], user_from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

pub(super) fn user_by_name(c: &mut Connection, name: &str) -> Result<Option<UserRow>, StoreError> {
    Ok(user_by_name_in(c, name)?)
}

pub(super) fn user_by_id(c: &mut Connection, id: &str) -> Result<Option<UserRow>, StoreError> {
    Ok(user_by_id_in(c, id)?)
}

/// Reads the account, runs the guard on the change, or says why not.
fn guarded(
    c: &Connection,
    name: &str,
    after: impl FnOnce(&UserRow) -> Option<UserRow>,
    guard: Guard,
) -> Result<Result<UserRow, Refused>, StoreError> {
    let Some(user) = user_by_name_in(c, name)? else {
        return Ok(Err(Refused::NoUser));
    };
    let after = after(&user);
    let others = others_unlocked(c, &user.id)?;
    Ok(guard(&user, after.as_ref(), &others)
        .map(|()| user)
        .map_err(Refused::Guard))
}

pub(super) fn set_locked(
    c: &mut Connection,
    name: &str,
    locked: bool,
    now: i64,
    guard: Guard,
) -> Result<Result<UserRow, Refused>, StoreError> {
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let user = match guarded(
        &tx,
        name,
        |u| {
            Some(UserRow {
                locked,
                ..u.clone()
            })
        },
        guard,
    )? {
        Ok(u) => u,
        Err(refused) => return Ok(Err(refused)),
    };
    tx.execute(
        "UPDATE auth_users SET locked = ?2, updated_at = ?3 WHERE id = ?1",
        params![user.id, locked, now],
    )?;
    if locked {
        // The sessions end for good: without their rows a restart cannot bring them back.
        tx.execute("DELETE FROM auth_sessions WHERE user_id = ?1", [&user.id])?;
        tx.execute(
            "DELETE FROM auth_reset_tokens WHERE user_id = ?1",
            [&user.id],
        )?;
    }
    let kind = if locked {
        CommandKind::Lock
    } else {
        CommandKind::Unlock
    };
    queue(&tx, kind, &user.id)?;
    tx.commit()?;
    Ok(Ok(user))
}

pub(super) fn set_groups(
    c: &mut Connection,
    name: &str,
    change: &GroupChange,
    now: i64,
    guard: Guard,
) -> Result<Result<(UserRow, Vec<String>), Refused>, StoreError> {
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let user = match guarded(
        &tx,
        name,
        |u| {
            Some(UserRow {
                groups: change.apply(&u.groups),
                ..u.clone()
            })
        },
        guard,
    )? {
        Ok(u) => u,
        Err(refused) => return Ok(Err(refused)),
    };
    let groups = change.apply(&user.groups);
    tx.execute(
        "UPDATE auth_users SET groups = ?2, updated_at = ?3 WHERE id = ?1",
        params![user.id, groups.join(","), now],
    )?;
    tx.commit()?;
    Ok(Ok((user, groups)))
}

pub(super) fn delete_user(
    c: &mut Connection,
    name: &str,
    guard: Guard,
    now: fleetwire_auth::UnixTime,
) -> Result<Result<Removed, Refused>, StoreError> {
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let user = match guarded(&tx, name, |_| None, guard)? {
        Ok(u) => u,
        Err(refused) => return Ok(Err(refused)),
    };
    let recovery: Option<String> = tx.query_row(
        "SELECT recovery FROM auth_users WHERE id = ?1",
        [&user.id],
        |r| r.get(0),
    )?;
    let run = |sql: &str| -> Result<u64, StoreError> {
        Ok(u64::try_from(tx.execute(sql, [&user.id])?).unwrap_or(0))
    };
    let things = crate::store::things::sqlite::forget_account(&tx, &user.id, now)?;
    let removed = Removed {
        things,
        session_rows: run("DELETE FROM auth_sessions WHERE user_id = ?1")?,
        reset_token_rows: run("DELETE FROM auth_reset_tokens WHERE user_id = ?1")?,
        pending_command_rows: run("DELETE FROM auth_commands WHERE subject = ?1")?,
        account_rows: run("DELETE FROM auth_users WHERE id = ?1")?,
        recovery,
        totp_secret: user.mfa,
        group_memberships: user.groups.len(),
        audit_entries_kept: tx
            .query_row(
                "SELECT count(*) FROM auth_audit WHERE instr(event, ?1) > 0",
                [format!("\"{}\"", user.id)],
                |r| r.get::<_, i64>(0),
            )?
            .try_into()
            .unwrap_or(0),
        id: user.id.clone(),
        name: user.name.clone(),
    };
    // Running servers drop what they hold in memory for this id.
    queue(&tx, CommandKind::Forget, &user.id)?;
    tx.commit()?;
    Ok(Ok(removed))
}

pub(super) fn set_idle_timeout(
    c: &mut Connection,
    id: &str,
    secs: Option<u64>,
    now: i64,
) -> Result<(), StoreError> {
    c.execute(
        "UPDATE auth_users SET idle_timeout_secs = ?2, updated_at = ?3 WHERE id = ?1",
        params![id, secs.map(signed), now],
    )?;
    Ok(())
}

pub(super) fn set_password(
    c: &mut Connection,
    id: &str,
    phc: &str,
    version: u64,
    now: i64,
    reset: bool,
) -> Result<bool, StoreError> {
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let n = tx.execute(
        "UPDATE auth_users SET phc = ?2, password_version = password_version + 1, updated_at = ?4 \
         WHERE id = ?1 AND password_version = ?3",
        params![id, phc, signed(version), now],
    )?;
    if n == 1 {
        tx.execute("DELETE FROM auth_reset_tokens WHERE user_id = ?1", [id])?;
        if reset {
            tx.execute("DELETE FROM auth_sessions WHERE user_id = ?1", [id])?;
            tx.execute(
                "UPDATE auth_users SET mfa_pending = NULL WHERE id = ?1",
                [id],
            )?;
        }
    }
    tx.commit()?;
    Ok(n == 1)
}

pub(super) fn mfa(c: &mut Connection, id: &str) -> Result<Option<MfaRow>, StoreError> {
    Ok(c.query_row(
        "SELECT mfa, mfa_pending, mfa_last_step, recovery FROM auth_users WHERE id = ?1",
        [id],
        |r| {
            let step: Option<i64> = r.get(2)?;
            Ok(MfaRow {
                secret: r.get(0)?,
                pending: r.get(1)?,
                last_step: step.map(unsigned),
                recovery: r.get(3)?,
            })
        },
    )
    .optional()?)
}

pub(super) fn set_mfa_pending(
    c: &mut Connection,
    id: &str,
    sealed: &str,
) -> Result<(), StoreError> {
    c.execute(
        "UPDATE auth_users SET mfa_pending = ?2 WHERE id = ?1",
        params![id, sealed],
    )?;
    Ok(())
}

pub(super) fn confirm_mfa(
    c: &mut Connection,
    id: &str,
    pending: &str,
    step: u64,
    recovery: &str,
    now: i64,
) -> Result<bool, StoreError> {
    let n = c.execute(
        "UPDATE auth_users SET mfa = mfa_pending, mfa_pending = NULL, mfa_last_step = ?3, \
         recovery = ?4, updated_at = ?5 WHERE id = ?1 AND mfa_pending = ?2",
        params![id, pending, signed(step), recovery, now],
    )?;
    Ok(n == 1)
}

pub(super) fn use_totp_step(c: &mut Connection, id: &str, step: u64) -> Result<bool, StoreError> {
    let n = c.execute(
        "UPDATE auth_users SET mfa_last_step = ?2 WHERE id = ?1 AND mfa IS NOT NULL \
         AND (mfa_last_step IS NULL OR mfa_last_step < ?2)",
        params![id, signed(step)],
    )?;
    Ok(n == 1)
}

pub(super) fn swap_recovery(
    c: &mut Connection,
    id: &str,
    before: &str,
    after: &str,
) -> Result<bool, StoreError> {
    let n = c.execute(
        "UPDATE auth_users SET recovery = ?3 WHERE id = ?1 AND recovery = ?2",
        params![id, before, after],
    )?;
    Ok(n == 1)
}

pub(super) fn set_recovery(
    c: &mut Connection,
    id: &str,
    recovery: &str,
    now: i64,
) -> Result<(), StoreError> {
    c.execute(
        "UPDATE auth_users SET recovery = ?2, updated_at = ?3 WHERE id = ?1",
        params![id, recovery, now],
    )?;
    Ok(())
}

fn clear_mfa_in(c: &Connection, id: &str, now: i64) -> rusqlite::Result<usize> {
    c.execute(
        "UPDATE auth_users SET mfa = NULL, mfa_pending = NULL, mfa_last_step = NULL, \
         recovery = NULL, updated_at = ?2 WHERE id = ?1",
        params![id, now],
    )
}

pub(super) fn clear_mfa(c: &mut Connection, id: &str, now: i64) -> Result<(), StoreError> {
    clear_mfa_in(c, id, now)?;
    Ok(())
}

pub(super) fn reset_mfa(c: &mut Connection, id: &str, now: i64) -> Result<u64, StoreError> {
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    clear_mfa_in(&tx, id, now)?;
    let ended = tx.execute("DELETE FROM auth_sessions WHERE user_id = ?1", [id])?;
    queue(&tx, CommandKind::EndSessions, id)?;
    tx.commit()?;
    Ok(u64::try_from(ended).unwrap_or(0))
}

pub(super) fn clear_totp(c: &mut Connection) -> Result<Vec<ClearTotp>, StoreError> {
    let rows = c
        .prepare(
            "SELECT id, mfa, mfa_pending FROM auth_users
             WHERE (mfa IS NOT NULL AND substr(mfa, 1, 5) <> 'enc1:')
                OR (mfa_pending IS NOT NULL AND substr(mfa_pending, 1, 5) <> 'enc1:')",
        )?
        .query_map([], |r| {
            Ok(ClearTotp {
                id: r.get(0)?,
                secret: r.get(1)?,
                pending: r.get(2)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

pub(super) fn seal_totp(
    c: &mut Connection,
    before: &ClearTotp,
    after: &ClearTotp,
) -> Result<bool, StoreError> {
    let n = c.execute(
        "UPDATE auth_users SET mfa = ?4, mfa_pending = ?5 WHERE id = ?1 \
         AND mfa IS ?2 AND mfa_pending IS ?3",
        params![
            before.id,
            before.secret,
            before.pending,
            after.secret,
            after.pending
        ],
    )?;
    Ok(n == 1)
}

pub(super) fn sign_in(c: &mut Connection, s: &SignIn) -> Result<(), StoreError> {
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let row = &s.session;
    tx.execute(
        "INSERT INTO auth_sessions (digest, user_id, created_ms, origin) VALUES (?1, ?2, ?3, ?4)",
        params![row.digest, row.user_id, signed(row.created_ms), row.origin],
    )?;
    // The session store ends the oldest beyond its per-user cap: so do the rows, or a restart
    // would bring those sessions back.
    tx.execute(
        "DELETE FROM auth_sessions WHERE user_id = ?1 AND digest NOT IN
         (SELECT digest FROM auth_sessions WHERE user_id = ?1
          ORDER BY created_ms DESC, rowid DESC LIMIT ?2)",
        params![row.user_id, s.cap],
    )?;
    tx.execute(
        "UPDATE auth_users SET last_login_at = ?2 WHERE id = ?1",
        params![row.user_id, s.now],
    )?;
    if let Some(phc) = &s.rehash {
        tx.execute(
            "UPDATE auth_users SET phc = ?2 WHERE id = ?1",
            params![row.user_id, phc],
        )?;
    }
    tx.commit()?;
    Ok(())
}

fn session_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SessionRow> {
    let created = unsigned(r.get(2)?);
    Ok(SessionRow {
        digest: r.get(0)?,
        user_id: r.get(1)?,
        created_ms: created,
        last_active_ms: created,
        origin: r.get(3)?,
    })
}

pub(super) fn session(
    c: &mut Connection,
    digest: &str,
) -> Result<Option<SessionOfUser>, StoreError> {
    let Some(session) = c
        .query_row(
            "SELECT digest, user_id, created_ms, origin FROM auth_sessions WHERE digest = ?1",
            [digest],
            session_from_row,
        )
        .optional()?
    else {
        return Ok(None);
    };
    let user = user_by_id_in(c, &session.user_id)?;
    Ok(Some(SessionOfUser { session, user }))
}

#[allow(clippy::unnecessary_wraps)] // the dispatch signature every backend shares
pub(super) fn touch_session(_: &mut Connection, _: &str, _: u64) -> Result<(), StoreError> {
    // The embedded store keeps no activity time: the server's memory has the idle timers.
    Ok(())
}

pub(super) fn end_session(c: &mut Connection, digest: &str) -> Result<(), StoreError> {
    c.execute("DELETE FROM auth_sessions WHERE digest = ?1", [digest])?;
    Ok(())
}

pub(super) fn end_sessions(
    c: &mut Connection,
    user: &str,
    keep: Option<&str>,
) -> Result<u64, StoreError> {
    let n = c.execute(
        "DELETE FROM auth_sessions WHERE user_id = ?1 AND (?2 IS NULL OR digest != ?2)",
        params![user, keep],
    )?;
    Ok(u64::try_from(n).unwrap_or(0))
}

pub(super) fn sessions(c: &mut Connection) -> Result<Vec<SessionRow>, StoreError> {
    let rows = c
        .prepare("SELECT digest, user_id, created_ms, origin FROM auth_sessions")?
        .query_map([], session_from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

pub(super) fn delete_sessions(c: &mut Connection, digests: &[String]) -> Result<(), StoreError> {
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    for d in digests {
        tx.execute("DELETE FROM auth_sessions WHERE digest = ?1", [d])?;
    }
    tx.commit()?;
    Ok(())
}

pub(super) fn purge_sessions(c: &mut Connection, created_ms: u64) -> Result<u64, StoreError> {
    let n = c.execute(
        "DELETE FROM auth_sessions WHERE created_ms <= ?1",
        [signed(created_ms)],
    )?;
    Ok(u64::try_from(n).unwrap_or(0))
}

pub(super) fn issue_reset(c: &mut Connection, row: &ResetRow) -> Result<(), StoreError> {
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute(
        "DELETE FROM auth_reset_tokens WHERE user_id = ?1",
        [&row.user_id],
    )?;
    tx.execute(
        "INSERT INTO auth_reset_tokens (digest, user_id, expires_ms) VALUES (?1, ?2, ?3)",
        params![row.digest, row.user_id, signed(row.expires_ms)],
    )?;
    tx.commit()?;
    Ok(())
}

fn reset_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ResetRow> {
    Ok(ResetRow {
        digest: r.get(0)?,
        user_id: r.get(1)?,
        expires_ms: unsigned(r.get(2)?),
        password_version: 0,
    })
}

pub(super) fn reset(c: &mut Connection, digest: &str) -> Result<Option<ResetRow>, StoreError> {
    Ok(c.query_row(
        "SELECT digest, user_id, expires_ms FROM auth_reset_tokens WHERE digest = ?1",
        [digest],
        reset_from_row,
    )
    .optional()?)
}

pub(super) fn take_reset(c: &mut Connection, digest: &str) -> Result<Option<ResetRow>, StoreError> {
    Ok(c.query_row(
        "DELETE FROM auth_reset_tokens WHERE digest = ?1 RETURNING digest, user_id, expires_ms",
        [digest],
        reset_from_row,
    )
    .optional()?)
}

pub(super) fn void_resets(c: &mut Connection, user: &str) -> Result<(), StoreError> {
    c.execute("DELETE FROM auth_reset_tokens WHERE user_id = ?1", [user])?;
    Ok(())
}

pub(super) fn purge_resets(c: &mut Connection, now_ms: u64) -> Result<(), StoreError> {
    c.execute(
        "DELETE FROM auth_reset_tokens WHERE expires_ms <= ?1",
        [signed(now_ms)],
    )?;
    Ok(())
}

pub(super) fn take_commands(c: &mut Connection) -> Result<Vec<Command>, StoreError> {
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let rows = tx
        .prepare_cached("SELECT kind, subject FROM auth_commands ORDER BY seq")?
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    tx.execute("DELETE FROM auth_commands", [])?;
    tx.commit()?;
    Ok(rows
        .into_iter()
        .filter_map(|(kind, subject)| {
            CommandKind::parse(&kind).map(|kind| Command { kind, subject })
        })
        .collect())
}
