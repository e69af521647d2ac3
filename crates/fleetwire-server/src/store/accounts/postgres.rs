//! The accounts repository on PostgreSQL: the rows several nodes share (see the module docs of
//! `store::accounts`).

use deadpool_postgres::GenericClient;
use fleetwire_auth::UnixTime;
use fleetwire_auth::captcha::StoredChallenge;
use fleetwire_auth::lockout::KeyState;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::{
    ClearTotp, Command, CommandKind, GroupChange, Guard, MfaRow, NewUser, Refused, Removed,
    ResetRow, SessionOfUser, SessionRow, SignIn, UserRow, groups_from, signed, unsigned,
};
use crate::store::StoreError;
use crate::store::backend::postgres::Client;

pub(crate) const SCHEMA: &str = "
CREATE TABLE auth_users (
    id                TEXT PRIMARY KEY,
    name              TEXT NOT NULL UNIQUE,
    email             TEXT,
    phc               TEXT NOT NULL,
    password_version  BIGINT NOT NULL DEFAULT 1,
    groups            TEXT NOT NULL DEFAULT '',
    idle_timeout_secs BIGINT,
    mfa               TEXT,
    mfa_pending       TEXT,
    mfa_last_step     BIGINT,
    recovery          TEXT,
    locked            BOOLEAN NOT NULL DEFAULT FALSE,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL,
    last_login_at     BIGINT
);
CREATE INDEX auth_users_email ON auth_users (email);
CREATE TABLE auth_sessions (
    digest         TEXT PRIMARY KEY,
    user_id        TEXT NOT NULL,
    created_ms     BIGINT NOT NULL,
    last_active_ms BIGINT NOT NULL,
    origin         TEXT NOT NULL
);
CREATE INDEX auth_sessions_user ON auth_sessions (user_id, created_ms);
CREATE TABLE auth_reset_tokens (
    digest           TEXT PRIMARY KEY,
    user_id          TEXT NOT NULL,
    expires_ms       BIGINT NOT NULL,
    password_version BIGINT NOT NULL
);
CREATE INDEX auth_reset_tokens_user ON auth_reset_tokens (user_id);
CREATE TABLE auth_commands (
    seq     BIGSERIAL PRIMARY KEY,
    kind    TEXT NOT NULL,
    subject TEXT NOT NULL
);
CREATE TABLE auth_lockout (
    lane     BYTEA PRIMARY KEY,
    last_s   BIGINT NOT NULL,
    failures INTEGER NOT NULL,
    flags    INTEGER NOT NULL
);
CREATE INDEX auth_lockout_last ON auth_lockout (last_s);
CREATE TABLE auth_throttle (
    key    BYTEA PRIMARY KEY,
    tat_us BIGINT NOT NULL
);
CREATE TABLE auth_captchas (
    seq        BIGSERIAL PRIMARY KEY,
    id         TEXT NOT NULL UNIQUE,
    answer     BYTEA NOT NULL,
    expires_ms BIGINT NOT NULL
);
CREATE TABLE auth_origins (
    user_id TEXT NOT NULL,
    tag     TEXT NOT NULL,
    seen_ms BIGINT NOT NULL,
    PRIMARY KEY (user_id, tag)
);
";

/// Serializes the changes guarded by the last-administrator rule (and additions, whose name
/// and e-mail checks must not race) across nodes; released at commit.
const USERS_LOCK: i64 = 7_465_727_734;

const USER_COLUMNS: &str = "id, name, email, phc, password_version, groups, idle_timeout_secs, \
    mfa IS NOT NULL, locked, created_at, last_login_at";

fn user_from_row(r: &Row) -> UserRow {
    let groups: String = r.get(5);
    let idle: Option<i64> = r.get(6);
    UserRow {
        id: r.get(0),
        name: r.get(1),
        email: r.get(2),
        phc: r.get(3),
        password_version: unsigned(r.get(4)),
        groups: groups_from(&groups),
        idle_timeout_secs: idle.map(unsigned),
        mfa: r.get(7),
        locked: r.get(8),
        created_at: r.get(9),
        last_login_at: r.get(10),
    }
}

async fn user_by_name_in(
    c: &impl GenericClient,
    name: &str,
) -> Result<Option<UserRow>, StoreError> {
    let row = c
        .query_opt(
            &format!(
                "SELECT {USER_COLUMNS} FROM auth_users WHERE name = $1 OR email = $1 \
                 ORDER BY name = $1 DESC LIMIT 1"
            ),
            &[&name],
        )
        .await?;
    Ok(row.as_ref().map(user_from_row))
}

async fn user_by_id_in(c: &impl GenericClient, id: &str) -> Result<Option<UserRow>, StoreError> {
    let row = c
        .query_opt(
            &format!("SELECT {USER_COLUMNS} FROM auth_users WHERE id = $1"),
            &[&id],
        )
        .await?;
    Ok(row.as_ref().map(user_from_row))
}

async fn queue(c: &impl GenericClient, kind: CommandKind, subject: &str) -> Result<(), StoreError> {
    c.execute(
        "INSERT INTO auth_commands (kind, subject) VALUES ($1, $2)",
        &[&kind.as_str(), &subject],
    )
    .await?;
    Ok(())
}

pub(super) async fn add_user(c: &mut Client, u: &NewUser) -> Result<bool, StoreError> {
    let tx = c.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&USERS_LOCK])
        .await?;
    let idle = u.idle_timeout_secs.map(signed);
    let n = tx
        .execute(
            "INSERT INTO auth_users (id, name, email, phc, groups, idle_timeout_secs, created_at, updated_at)
             SELECT $1, $2, $3, $4, $5, $6, $7, $7
             WHERE NOT EXISTS (SELECT 1 FROM auth_users WHERE name = $2 OR email = $2
                               OR ($3::TEXT IS NOT NULL AND (name = $3 OR email = $3)))",
            &[&u.id, &u.name, &u.email, &u.phc, &u.groups.join(","), &idle, &u.now],
        )
        .await?;
    tx.commit().await?;
    Ok(n == 1)
}

pub(super) async fn users(c: &mut Client) -> Result<Vec<UserRow>, StoreError> {
    let rows = c
        .query(
            &format!("SELECT {USER_COLUMNS} FROM auth_users ORDER BY name"),
            &[],
        )
        .await?;
    Ok(rows.iter().map(user_from_row).collect())
}

pub(super) async fn user_by_name(
    c: &mut Client,
    name: &str,
) -> Result<Option<UserRow>, StoreError> {
    user_by_name_in(&*c, name).await
}

pub(super) async fn user_by_id(c: &mut Client, id: &str) -> Result<Option<UserRow>, StoreError> {
    user_by_id_in(&*c, id).await
}

/// Under the users lock: reads the account, runs the guard on the change, or says why not.
async fn guarded(
    tx: &deadpool_postgres::Transaction<'_>,
    name: &str,
    after: impl FnOnce(&UserRow) -> Option<UserRow>,
    guard: Guard,
) -> Result<Result<UserRow, Refused>, StoreError> {
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&USERS_LOCK])
        .await?;
    let Some(user) = user_by_name_in(tx, name).await? else {
        return Ok(Err(Refused::NoUser));
    };
    let after = after(&user);
    let others: Vec<UserRow> = tx
        .query(
            &format!("SELECT {USER_COLUMNS} FROM auth_users WHERE id != $1 AND NOT locked"),
            &[&user.id],
        )
        .await?
        .iter()
        .map(user_from_row)
        .collect();
    Ok(guard(&user, after.as_ref(), &others)
        .map(|()| user)
        .map_err(Refused::Guard))
}

pub(super) async fn set_locked(
    c: &mut Client,
    name: &str,
    locked: bool,
    now: i64,
    guard: Guard,
) -> Result<Result<UserRow, Refused>, StoreError> {
    let tx = c.transaction().await?;
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
    )
    .await?
    {
        Ok(u) => u,
        Err(refused) => return Ok(Err(refused)),
    };
    tx.execute(
        "UPDATE auth_users SET locked = $2, updated_at = $3 WHERE id = $1",
        &[&user.id, &locked, &now],
    )
    .await?;
    if locked {
        tx.execute("DELETE FROM auth_sessions WHERE user_id = $1", &[&user.id])
            .await?;
        tx.execute(
            "DELETE FROM auth_reset_tokens WHERE user_id = $1",
            &[&user.id],
        )
        .await?;
    }
    let kind = if locked {
        CommandKind::Lock
    } else {
        CommandKind::Unlock
    };
    queue(&tx, kind, &user.id).await?;
    tx.commit().await?;
    Ok(Ok(user))
}

pub(super) async fn set_groups(
    c: &mut Client,
    name: &str,
    change: &GroupChange,
    now: i64,
    guard: Guard,
) -> Result<Result<(UserRow, Vec<String>), Refused>, StoreError> {
    let tx = c.transaction().await?;
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
    )
    .await?
    {
        Ok(u) => u,
        Err(refused) => return Ok(Err(refused)),
    };
    let groups = change.apply(&user.groups);
    tx.execute(
        "UPDATE auth_users SET groups = $2, updated_at = $3 WHERE id = $1",
        &[&user.id, &groups.join(","), &now],
    )
    .await?;
    tx.commit().await?;
    Ok(Ok((user, groups)))
}

pub(super) async fn delete_user(
    c: &mut Client,
    name: &str,
    guard: Guard,
    now: UnixTime,
) -> Result<Result<Removed, Refused>, StoreError> {
    let tx = c.transaction().await?;
    let user = match guarded(&tx, name, |_| None, guard).await? {
        Ok(u) => u,
        Err(refused) => return Ok(Err(refused)),
    };
    let recovery: Option<String> = tx
        .query_one("SELECT recovery FROM auth_users WHERE id = $1", &[&user.id])
        .await?
        .get(0);
    let id: &(dyn ToSql + Sync) = &user.id;
    let session_rows = tx
        .execute("DELETE FROM auth_sessions WHERE user_id = $1", &[id])
        .await?;
    let reset_token_rows = tx
        .execute("DELETE FROM auth_reset_tokens WHERE user_id = $1", &[id])
        .await?;
    let pending_command_rows = tx
        .execute("DELETE FROM auth_commands WHERE subject = $1", &[id])
        .await?;
    tx.execute("DELETE FROM auth_origins WHERE user_id = $1", &[id])
        .await?;
    let account_rows = tx
        .execute("DELETE FROM auth_users WHERE id = $1", &[id])
        .await?;
    let audit_entries_kept: i64 = tx
        .query_one(
            "SELECT count(*) FROM auth_audit WHERE strpos(event, $1) > 0",
            &[&format!("\"{}\"", user.id)],
        )
        .await?
        .get(0);
    // Its places on things go in the same transaction.
    let things = crate::store::things::postgres::forget_account_in(&tx, &user.id, now).await?;
    let removed = Removed {
        things,
        session_rows,
        reset_token_rows,
        pending_command_rows,
        account_rows,
        recovery,
        totp_secret: user.mfa,
        group_memberships: user.groups.len(),
        audit_entries_kept: unsigned(audit_entries_kept),
        id: user.id.clone(),
        name: user.name.clone(),
    };
    queue(&tx, CommandKind::Forget, &user.id).await?;
    tx.commit().await?;
    Ok(Ok(removed))
}

pub(super) async fn set_idle_timeout(
    c: &mut Client,
    id: &str,
    secs: Option<u64>,
    now: i64,
) -> Result<(), StoreError> {
    c.execute(
        "UPDATE auth_users SET idle_timeout_secs = $2, updated_at = $3 WHERE id = $1",
        &[&id, &secs.map(signed), &now],
    )
    .await?;
    Ok(())
}

pub(super) async fn set_password(
    c: &mut Client,
    id: &str,
    phc: &str,
    version: u64,
    now: i64,
    reset: bool,
) -> Result<bool, StoreError> {
    let tx = c.transaction().await?;
    let n = tx
        .execute(
            "UPDATE auth_users SET phc = $2, password_version = password_version + 1, \
             updated_at = $4 WHERE id = $1 AND password_version = $3",
            &[&id, &phc, &signed(version), &now],
        )
        .await?;
    if n == 1 {
        tx.execute("DELETE FROM auth_reset_tokens WHERE user_id = $1", &[&id])
            .await?;
        if reset {
            tx.execute("DELETE FROM auth_sessions WHERE user_id = $1", &[&id])
                .await?;
            tx.execute(
                "UPDATE auth_users SET mfa_pending = NULL WHERE id = $1",
                &[&id],
            )
            .await?;
        }
    }
    tx.commit().await?;
    Ok(n == 1)
}

pub(super) async fn mfa(c: &mut Client, id: &str) -> Result<Option<MfaRow>, StoreError> {
    let row = c
        .query_opt(
            "SELECT mfa, mfa_pending, mfa_last_step, recovery FROM auth_users WHERE id = $1",
            &[&id],
        )
        .await?;
    Ok(row.map(|r| MfaRow {
        secret: r.get(0),
        pending: r.get(1),
        last_step: r.get::<_, Option<i64>>(2).map(unsigned),
        recovery: r.get(3),
    }))
}

pub(super) async fn set_mfa_pending(
    c: &mut Client,
    id: &str,
    sealed: &str,
) -> Result<(), StoreError> {
    c.execute(
        "UPDATE auth_users SET mfa_pending = $2 WHERE id = $1",
        &[&id, &sealed],
    )
    .await?;
    Ok(())
}

pub(super) async fn confirm_mfa(
    c: &mut Client,
    id: &str,
    pending: &str,
    step: u64,
    recovery: &str,
    now: i64,
) -> Result<bool, StoreError> {
    let n = c
        .execute(
            "UPDATE auth_users SET mfa = mfa_pending, mfa_pending = NULL, mfa_last_step = $3, \
             recovery = $4, updated_at = $5 WHERE id = $1 AND mfa_pending = $2",
            &[&id, &pending, &signed(step), &recovery, &now],
        )
        .await?;
    Ok(n == 1)
}

pub(super) async fn use_totp_step(c: &mut Client, id: &str, step: u64) -> Result<bool, StoreError> {
    let n = c
        .execute(
            "UPDATE auth_users SET mfa_last_step = $2 WHERE id = $1 AND mfa IS NOT NULL \
             AND (mfa_last_step IS NULL OR mfa_last_step < $2)",
            &[&id, &signed(step)],
        )
        .await?;
    Ok(n == 1)
}

pub(super) async fn swap_recovery(
    c: &mut Client,
    id: &str,
    before: &str,
    after: &str,
) -> Result<bool, StoreError> {
    let n = c
        .execute(
            "UPDATE auth_users SET recovery = $3 WHERE id = $1 AND recovery = $2",
            &[&id, &before, &after],
        )
        .await?;
    Ok(n == 1)
}

pub(super) async fn set_recovery(
    c: &mut Client,
    id: &str,
    recovery: &str,
    now: i64,
) -> Result<(), StoreError> {
    c.execute(
        "UPDATE auth_users SET recovery = $2, updated_at = $3 WHERE id = $1",
        &[&id, &recovery, &now],
    )
    .await?;
    Ok(())
}

const CLEAR_MFA: &str = "UPDATE auth_users SET mfa = NULL, mfa_pending = NULL, \
    mfa_last_step = NULL, recovery = NULL, updated_at = $2 WHERE id = $1";

pub(super) async fn clear_mfa(c: &mut Client, id: &str, now: i64) -> Result<(), StoreError> {
    c.execute(CLEAR_MFA, &[&id, &now]).await?;
    Ok(())
}

pub(super) async fn reset_mfa(c: &mut Client, id: &str, now: i64) -> Result<u64, StoreError> {
    let tx = c.transaction().await?;
    tx.execute(CLEAR_MFA, &[&id, &now]).await?;
    let ended = tx
        .execute("DELETE FROM auth_sessions WHERE user_id = $1", &[&id])
        .await?;
    queue(&tx, CommandKind::EndSessions, id).await?;
    tx.commit().await?;
    Ok(ended)
}

pub(super) async fn clear_totp(c: &mut Client) -> Result<Vec<ClearTotp>, StoreError> {
    let rows = c
        .query(
            "SELECT id, mfa, mfa_pending FROM auth_users
             WHERE (mfa IS NOT NULL AND substr(mfa, 1, 5) <> 'enc1:')
                OR (mfa_pending IS NOT NULL AND substr(mfa_pending, 1, 5) <> 'enc1:')",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| ClearTotp {
            id: r.get(0),
            secret: r.get(1),
            pending: r.get(2),
        })
        .collect())
}

pub(super) async fn seal_totp(
    c: &mut Client,
    before: &ClearTotp,
    after: &ClearTotp,
) -> Result<bool, StoreError> {
    let n = c
        .execute(
            "UPDATE auth_users SET mfa = $4, mfa_pending = $5 WHERE id = $1 \
             AND mfa IS NOT DISTINCT FROM $2 AND mfa_pending IS NOT DISTINCT FROM $3",
            &[
                &before.id,
                &before.secret,
                &before.pending,
                &after.secret,
                &after.pending,
            ],
        )
        .await?;
    Ok(n == 1)
}

pub(super) async fn sign_in(c: &mut Client, s: &SignIn) -> Result<(), StoreError> {
    let tx = c.transaction().await?;
    let row = &s.session;
    tx.execute(
        "INSERT INTO auth_sessions (digest, user_id, created_ms, last_active_ms, origin) \
         VALUES ($1, $2, $3, $4, $5)",
        &[
            &row.digest,
            &row.user_id,
            &signed(row.created_ms),
            &signed(row.last_active_ms),
            &row.origin,
        ],
    )
    .await?;
    tx.execute(
        "DELETE FROM auth_sessions WHERE user_id = $1 AND digest NOT IN
         (SELECT digest FROM auth_sessions WHERE user_id = $1
          ORDER BY created_ms DESC, digest DESC LIMIT $2)",
        &[&row.user_id, &i64::from(s.cap)],
    )
    .await?;
    tx.execute(
        "UPDATE auth_users SET last_login_at = $2 WHERE id = $1",
        &[&row.user_id, &s.now],
    )
    .await?;
    if let Some(phc) = &s.rehash {
        tx.execute(
            "UPDATE auth_users SET phc = $2 WHERE id = $1",
            &[&row.user_id, phc],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

fn session_from_row(r: &Row) -> SessionRow {
    SessionRow {
        digest: r.get(0),
        user_id: r.get(1),
        created_ms: unsigned(r.get(2)),
        last_active_ms: unsigned(r.get(3)),
        origin: r.get(4),
    }
}

pub(super) async fn session(
    c: &mut Client,
    digest: &str,
) -> Result<Option<SessionOfUser>, StoreError> {
    // One round trip per request: the session and its account together.
    let row = c
        .query_opt(
            "SELECT s.digest, s.user_id, s.created_ms, s.last_active_ms, s.origin, u.id IS NOT NULL,
                    u.id, u.name, u.email, u.phc, u.password_version, u.groups,
                    u.idle_timeout_secs, u.mfa IS NOT NULL, u.locked, u.created_at, u.last_login_at
             FROM auth_sessions s LEFT JOIN auth_users u ON u.id = s.user_id WHERE s.digest = $1",
            &[&digest],
        )
        .await?;
    Ok(row.map(|r| {
        let user = r.get::<_, bool>(5).then(|| UserRow {
            id: r.get(6),
            name: r.get(7),
            email: r.get(8),
            phc: r.get(9),
            password_version: unsigned(r.get(10)),
            groups: groups_from(&r.get::<_, String>(11)),
            idle_timeout_secs: r.get::<_, Option<i64>>(12).map(unsigned),
            mfa: r.get(13),
            locked: r.get(14),
            created_at: r.get(15),
            last_login_at: r.get(16),
        });
        SessionOfUser {
            session: session_from_row(&r),
            user,
        }
    }))
}

pub(super) async fn touch_session(
    c: &mut Client,
    digest: &str,
    at_ms: u64,
) -> Result<(), StoreError> {
    c.execute(
        "UPDATE auth_sessions SET last_active_ms = GREATEST(last_active_ms, $2) WHERE digest = $1",
        &[&digest, &signed(at_ms)],
    )
    .await?;
    Ok(())
}

pub(super) async fn end_session(c: &mut Client, digest: &str) -> Result<(), StoreError> {
    c.execute("DELETE FROM auth_sessions WHERE digest = $1", &[&digest])
        .await?;
    Ok(())
}

pub(super) async fn end_sessions(
    c: &mut Client,
    user: &str,
    keep: Option<&str>,
) -> Result<u64, StoreError> {
    Ok(c.execute(
        "DELETE FROM auth_sessions WHERE user_id = $1 AND ($2::TEXT IS NULL OR digest != $2)",
        &[&user, &keep],
    )
    .await?)
}

pub(super) async fn sessions(c: &mut Client) -> Result<Vec<SessionRow>, StoreError> {
    let rows = c
        .query(
            "SELECT digest, user_id, created_ms, last_active_ms, origin FROM auth_sessions",
            &[],
        )
        .await?;
    Ok(rows.iter().map(session_from_row).collect())
}

pub(super) async fn delete_sessions(c: &mut Client, digests: &[String]) -> Result<(), StoreError> {
    c.execute(
        "DELETE FROM auth_sessions WHERE digest = ANY($1)",
        &[&digests],
    )
    .await?;
    Ok(())
}

pub(super) async fn purge_sessions(c: &mut Client, created_ms: u64) -> Result<u64, StoreError> {
    Ok(c.execute(
        "DELETE FROM auth_sessions WHERE created_ms <= $1",
        &[&signed(created_ms)],
    )
    .await?)
}

pub(super) async fn issue_reset(c: &mut Client, row: &ResetRow) -> Result<(), StoreError> {
    let tx = c.transaction().await?;
    tx.execute(
        "DELETE FROM auth_reset_tokens WHERE user_id = $1",
        &[&row.user_id],
    )
    .await?;
    tx.execute(
        "INSERT INTO auth_reset_tokens (digest, user_id, expires_ms, password_version) \
         VALUES ($1, $2, $3, $4)",
        &[
            &row.digest,
            &row.user_id,
            &signed(row.expires_ms),
            &signed(row.password_version),
        ],
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

fn reset_from_row(r: &Row) -> ResetRow {
    ResetRow {
        digest: r.get(0),
        user_id: r.get(1),
        expires_ms: unsigned(r.get(2)),
        password_version: unsigned(r.get(3)),
    }
}

pub(super) async fn reset(c: &mut Client, digest: &str) -> Result<Option<ResetRow>, StoreError> {
    let row = c
        .query_opt(
            "SELECT digest, user_id, expires_ms, password_version FROM auth_reset_tokens \
             WHERE digest = $1",
            &[&digest],
        )
        .await?;
    Ok(row.as_ref().map(reset_from_row))
}

pub(super) async fn take_reset(
    c: &mut Client,
    digest: &str,
) -> Result<Option<ResetRow>, StoreError> {
    let row = c
        .query_opt(
            "DELETE FROM auth_reset_tokens WHERE digest = $1 \
             RETURNING digest, user_id, expires_ms, password_version",
            &[&digest],
        )
        .await?;
    Ok(row.as_ref().map(reset_from_row))
}

pub(super) async fn void_resets(c: &mut Client, user: &str) -> Result<(), StoreError> {
    c.execute("DELETE FROM auth_reset_tokens WHERE user_id = $1", &[&user])
        .await?;
    Ok(())
}

pub(super) async fn purge_resets(c: &mut Client, now_ms: u64) -> Result<(), StoreError> {
    c.execute(
        "DELETE FROM auth_reset_tokens WHERE expires_ms <= $1",
        &[&signed(now_ms)],
    )
    .await?;
    Ok(())
}

pub(super) async fn take_commands(c: &mut Client) -> Result<Vec<Command>, StoreError> {
    // Deleted as they are read: two nodes polling at once never both take a command.
    let rows = c
        .query(
            "WITH taken AS (DELETE FROM auth_commands RETURNING seq, kind, subject)
             SELECT kind, subject FROM taken ORDER BY seq",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            CommandKind::parse(r.get(0)).map(|kind| Command {
                kind,
                subject: r.get(1),
            })
        })
        .collect())
}

fn lane_state(r: &Row) -> KeyState {
    KeyState::from_parts(
        u32::try_from(r.get::<_, i64>(0)).unwrap_or(u32::MAX),
        u16::try_from(r.get::<_, i32>(1)).unwrap_or(u16::MAX),
        u8::try_from(r.get::<_, i32>(2)).unwrap_or(0),
    )
}

pub(super) async fn lane(c: &mut Client, lane: &[u8; 16]) -> Result<Option<KeyState>, StoreError> {
    let row = c
        .query_opt(
            "SELECT last_s, failures, flags FROM auth_lockout WHERE lane = $1",
            &[&&lane[..]],
        )
        .await?;
    Ok(row.as_ref().map(lane_state))
}

pub(super) async fn update_lane<R>(
    c: &mut Client,
    lane: &[u8; 16],
    change: impl FnOnce(Option<KeyState>) -> (Option<KeyState>, R),
) -> Result<R, StoreError> {
    let lane = &lane[..];
    let tx = c.transaction().await?;
    // The row is locked until commit: an attempt on another node waits for it and then sees
    // this one's reservation.
    let before = locked_row(
        &tx,
        "SELECT last_s, failures, flags FROM auth_lockout WHERE lane = $1 FOR UPDATE",
        "INSERT INTO auth_lockout (lane, last_s, failures, flags) VALUES ($1, 0, 0, 0) \
         ON CONFLICT (lane) DO NOTHING",
        lane,
    )
    .await?
    .as_ref()
    .map(lane_state);
    let (after, result) = change(before);
    match after {
        Some(s) => {
            tx.execute(
                "UPDATE auth_lockout SET last_s = $2, failures = $3, flags = $4 WHERE lane = $1",
                &[
                    &lane,
                    &i64::from(s.last_secs()),
                    &i32::from(s.failures()),
                    &i32::from(s.flags()),
                ],
            )
            .await?;
        }
        None => {
            tx.execute("DELETE FROM auth_lockout WHERE lane = $1", &[&lane])
                .await?;
        }
    }
    tx.commit().await?;
    Ok(result)
}

/// Locks the row `key` names for the rest of the transaction: the existing one (`Some`), or a
/// new one this transaction inserts (`None`: the caller finds the insert's defaults). An insert
/// racing ours waits for it and then finds our row; a row deleted while we waited is inserted
/// anew.
async fn locked_row(
    tx: &deadpool_postgres::Transaction<'_>,
    select: &str,
    insert: &str,
    key: &[u8],
) -> Result<Option<Row>, StoreError> {
    for _ in 0..8 {
        if let Some(row) = tx.query_opt(select, &[&key]).await? {
            return Ok(Some(row));
        }
        if tx.execute(insert, &[&key]).await? == 1 {
            return Ok(None);
        }
    }
    Err(StoreError::Query(
        "a lockout or throttle row kept changing under a row lock".into(),
    ))
}

pub(super) async fn old_lanes(
    c: &mut Client,
    before_secs: u32,
) -> Result<Vec<([u8; 16], KeyState)>, StoreError> {
    let rows = c
        .query(
            "SELECT last_s, failures, flags, lane FROM auth_lockout WHERE last_s < $1 LIMIT 10000",
            &[&i64::from(before_secs)],
        )
        .await?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            let lane: Vec<u8> = r.get(3);
            <[u8; 16]>::try_from(lane.as_slice())
                .ok()
                .map(|l| (l, lane_state(r)))
        })
        .collect())
}

pub(super) async fn forget_lane(
    c: &mut Client,
    lane: &[u8; 16],
    state: KeyState,
) -> Result<(), StoreError> {
    c.execute(
        "DELETE FROM auth_lockout WHERE lane = $1 AND last_s = $2 AND failures = $3 AND flags = $4",
        &[
            &&lane[..],
            &i64::from(state.last_secs()),
            &i32::from(state.failures()),
            &i32::from(state.flags()),
        ],
    )
    .await?;
    Ok(())
}

pub(super) async fn throttle<E>(
    c: &mut Client,
    source: &[u8; 16],
    global: &[u8; 16],
    decide: impl FnOnce(u64, u64) -> Result<(u64, u64), E>,
) -> Result<Result<(), E>, StoreError> {
    let tx = c.transaction().await?;
    // Every caller locks the source's row first, then the global one: no lock cycle.
    let mut tats = [0u64; 2];
    for (slot, key) in tats.iter_mut().zip([&source[..], &global[..]]) {
        let row = locked_row(
            &tx,
            "SELECT tat_us FROM auth_throttle WHERE key = $1 FOR UPDATE",
            "INSERT INTO auth_throttle (key, tat_us) VALUES ($1, 0) ON CONFLICT (key) DO NOTHING",
            key,
        )
        .await?;
        *slot = row.map_or(0, |r| unsigned(r.get(0)));
    }
    let result = match decide(tats[0], tats[1]) {
        Ok((s, g)) => {
            for (key, tat) in [(&source[..], s), (&global[..], g)] {
                tx.execute(
                    "UPDATE auth_throttle SET tat_us = $2 WHERE key = $1",
                    &[&key, &signed(tat)],
                )
                .await?;
            }
            Ok(())
        }
        Err(e) => Err(e),
    };
    tx.commit().await?;
    Ok(result)
}

pub(super) async fn purge_throttles(c: &mut Client, now_us: u64) -> Result<(), StoreError> {
    c.execute(
        "DELETE FROM auth_throttle WHERE tat_us <= $1",
        &[&signed(now_us)],
    )
    .await?;
    Ok(())
}

pub(super) async fn add_captcha(
    c: &mut Client,
    challenge: &StoredChallenge,
    max_pending: u64,
) -> Result<(), StoreError> {
    let seq: i64 = c
        .query_one(
            "INSERT INTO auth_captchas (id, answer, expires_ms) VALUES ($1, $2, $3) RETURNING seq",
            &[
                &challenge.id,
                &&challenge.answer_digest[..],
                &signed(challenge.expires_at.as_millis()),
            ],
        )
        .await?
        .get(0);
    // The oldest issued go first, by an index range: O(1) per challenge issued, whatever the
    // table's size. (Sequence gaps only make the window hold fewer.)
    c.execute(
        "DELETE FROM auth_captchas WHERE seq <= $1",
        &[&(seq - signed(max_pending.max(1)))],
    )
    .await?;
    Ok(())
}

pub(super) async fn take_captcha(
    c: &mut Client,
    id: &str,
) -> Result<Option<StoredChallenge>, StoreError> {
    let row = c
        .query_opt(
            "DELETE FROM auth_captchas WHERE id = $1 RETURNING id, answer, expires_ms",
            &[&id],
        )
        .await?;
    Ok(row.and_then(|r| {
        let answer: Vec<u8> = r.get(1);
        Some(StoredChallenge {
            id: r.get(0),
            answer_digest: <[u8; 32]>::try_from(answer.as_slice()).ok()?,
            expires_at: UnixTime::from_millis(unsigned(r.get(2))),
        })
    }))
}

pub(super) async fn purge_captchas(c: &mut Client, now_ms: u64) -> Result<(), StoreError> {
    c.execute(
        "DELETE FROM auth_captchas WHERE expires_ms <= $1",
        &[&signed(now_ms)],
    )
    .await?;
    Ok(())
}

pub(super) async fn observe_origin(
    c: &mut Client,
    user: &str,
    tag: &str,
    at_ms: u64,
    keep: u32,
) -> Result<bool, StoreError> {
    let tx = c.transaction().await?;
    let known = tx
        .query_opt(
            "SELECT 1 FROM auth_origins WHERE user_id = $1 AND tag = $2",
            &[&user, &tag],
        )
        .await?
        .is_some();
    tx.execute(
        "INSERT INTO auth_origins (user_id, tag, seen_ms) VALUES ($1, $2, $3)
         ON CONFLICT (user_id, tag) DO UPDATE SET seen_ms = GREATEST(auth_origins.seen_ms, $3)",
        &[&user, &tag, &signed(at_ms)],
    )
    .await?;
    tx.execute(
        "DELETE FROM auth_origins WHERE user_id = $1 AND tag NOT IN
         (SELECT tag FROM auth_origins WHERE user_id = $1 ORDER BY seen_ms DESC, tag LIMIT $2)",
        &[&user, &i64::from(keep)],
    )
    .await?;
    tx.commit().await?;
    Ok(!known)
}
