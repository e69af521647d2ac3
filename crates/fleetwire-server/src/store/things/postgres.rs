//! The things repository on PostgreSQL. A change locks the thing's row (`SELECT … FOR UPDATE`)
//! for its transaction, so operations on one thing from any node are serialized.

use fleetwire_codes::{Code, ThingAccess, UnixTime, UserId};

use super::{
    Changed, Created, NewThing, PrincipalRow, Quota, ThingEvent, ThingKey, ThingRow,
    ThingsForgotten, Via, created_event, db_number, decode, drain_events, encode, mode_name, ms,
    number_of, tally,
};
use crate::store::StoreError;
use crate::store::backend::postgres::Client;

pub(crate) const SCHEMA: &str = "
CREATE TABLE things (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL DEFAULT '',
    code            TEXT NOT NULL UNIQUE,
    mode            TEXT NOT NULL,
    code_expires_ms BIGINT,
    state           TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    created_by      TEXT
);
CREATE INDEX things_by_creator ON things (created_by);
CREATE INDEX things_created ON things (created_at, id);
CREATE TABLE thing_codes (
    code       TEXT PRIMARY KEY,
    thing      TEXT NOT NULL,
    claimed_at BIGINT NOT NULL,
    retired_at BIGINT
);
CREATE TABLE thing_principals (
    id        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    principal TEXT NOT NULL UNIQUE
);
CREATE TABLE thing_events (
    seq   BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    thing TEXT NOT NULL,
    at_ms BIGINT NOT NULL,
    actor TEXT NOT NULL,
    via   TEXT NOT NULL,
    event TEXT NOT NULL
);
CREATE INDEX thing_events_by_thing ON thing_events (thing, seq);
CREATE TABLE thing_members (
    user_id BIGINT NOT NULL,
    thing   TEXT NOT NULL,
    PRIMARY KEY (user_id, thing)
);
";

pub(super) async fn claim_code(
    client: &Client,
    code: &Code,
    thing: &str,
    now: UnixTime,
) -> Result<bool, StoreError> {
    let n = client
        .execute(
            "INSERT INTO thing_codes (code, thing, claimed_at) VALUES ($1, $2, $3) \
             ON CONFLICT (code) DO NOTHING",
            &[&code.as_str(), &thing, &ms(now)],
        )
        .await?;
    Ok(n == 1)
}

pub(super) async fn create(
    client: &mut Client,
    thing: &NewThing,
    quota: Option<&Quota>,
    now: UnixTime,
) -> Result<Created, StoreError> {
    let tx = client.transaction().await?;
    if let Some(q) = quota {
        // One creator's inserts are serialized by a transaction-scoped advisory lock on the
        // creator, so parallel requests on several nodes cannot pass the quota together.
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended('things-by ' || $1, 0))",
            &[&q.creator],
        )
        .await?;
        let made: i64 = tx
            .query_one(
                "SELECT count(*) FROM things WHERE created_by = $1",
                &[&q.creator],
            )
            .await?
            .get(0);
        let made = usize::try_from(made).unwrap_or(usize::MAX);
        if made >= q.max {
            return Ok(Created::OverQuota { made });
        }
    }
    let access = ThingAccess::new(thing.code, thing.mode);
    tx.execute(
        "INSERT INTO things (id, name, code, mode, state, created_at, updated_at, created_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $6, $7)",
        &[
            &thing.id,
            &thing.name,
            &thing.code.as_str(),
            &mode_name(thing.mode),
            &encode(&access)?,
            &ms(now),
            &thing.created_by,
        ],
    )
    .await?;
    tx.execute(
        "INSERT INTO thing_events (thing, at_ms, actor, via, event) VALUES ($1, $2, '', $3, $4)",
        &[
            &thing.id,
            &ms(now),
            &thing.via.as_str(),
            &created_event(thing.mode),
        ],
    )
    .await?;
    tx.commit().await?;
    Ok(Created::Created)
}

pub(super) async fn change<T, E>(
    client: &mut Client,
    key: &ThingKey,
    via: Via,
    now: UnixTime,
    op: impl FnOnce(&mut ThingAccess, UnixTime) -> Result<T, E>,
) -> Result<Option<Changed<T, E>>, StoreError> {
    let tx = client.transaction().await?;
    let row = match key {
        ThingKey::Id(id) => {
            tx.query_opt(
                "SELECT id, name, state FROM things WHERE id = $1 FOR UPDATE",
                &[id],
            )
            .await?
        }
        ThingKey::Code(code) => {
            tx.query_opt(
                "SELECT id, name, state FROM things WHERE code = $1 FOR UPDATE",
                &[&code.as_str()],
            )
            .await?
        }
    };
    let Some(row) = row else {
        return Ok(None);
    };
    let id: String = row.get(0);
    let mut thing = decode(&id, row.get(1), row.get::<_, &str>(2))?;
    let old_code = *thing.access.code();
    let result = op(&mut thing.access, now);
    save(&tx, &mut thing, via, result.is_ok(), now).await?;
    if result.is_ok() && *thing.access.code() != old_code {
        tx.execute(
            "UPDATE thing_codes SET retired_at = $2 WHERE code = $1",
            &[&old_code.as_str(), &ms(now)],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(Some(Changed { thing, result }))
}

/// Stores the state (if `changed`) and appends the drained events.
async fn save(
    tx: &tokio_postgres::Transaction<'_>,
    thing: &mut ThingRow,
    via: Via,
    changed: bool,
    now: UnixTime,
) -> Result<(), StoreError> {
    let events = drain_events(&mut thing.access)?;
    if !events.is_empty() {
        let at: Vec<i64> = events.iter().map(|e| e.0).collect();
        let actor: Vec<&str> = events.iter().map(|e| e.1.as_str()).collect();
        let event: Vec<&str> = events.iter().map(|e| e.2.as_str()).collect();
        tx.execute(
            "INSERT INTO thing_events (thing, at_ms, actor, via, event) \
             SELECT $1, e.at, e.actor, $2, e.event \
             FROM UNNEST($3::bigint[], $4::text[], $5::text[]) WITH ORDINALITY AS e(at, actor, event, n) \
             ORDER BY e.n",
            &[&thing.id, &via.as_str(), &at, &actor, &event],
        )
        .await?;
    }
    if changed {
        tx.execute(
            "UPDATE things SET code = $2, mode = $3, code_expires_ms = $4, state = $5, updated_at = $6 \
             WHERE id = $1",
            &[
                &thing.id,
                &thing.access.code().as_str(),
                &mode_name(thing.access.mode()),
                &thing.access.code_expires_at().map(ms),
                &encode(&thing.access)?,
                &ms(now),
            ],
        )
        .await?;
        let members: Vec<i64> = thing.access.members().map(|(u, _)| db_number(u)).collect();
        tx.execute("DELETE FROM thing_members WHERE thing = $1", &[&thing.id])
            .await?;
        tx.execute(
            "INSERT INTO thing_members (user_id, thing) SELECT u, $2 FROM UNNEST($1::bigint[]) AS u",
            &[&members, &thing.id],
        )
        .await?;
    }
    Ok(())
}

pub(super) async fn load(client: &Client, id: &str) -> Result<Option<ThingRow>, StoreError> {
    let row = client
        .query_opt("SELECT name, state FROM things WHERE id = $1", &[&id])
        .await?;
    row.map(|r| decode(id, r.get(0), r.get::<_, &str>(1)))
        .transpose()
}

pub(super) async fn by_code(client: &Client, code: &Code) -> Result<Option<String>, StoreError> {
    Ok(client
        .query_opt("SELECT id FROM things WHERE code = $1", &[&code.as_str()])
        .await?
        .map(|r| r.get(0)))
}

pub(super) async fn all(client: &Client) -> Result<Vec<ThingRow>, StoreError> {
    client
        .query(
            "SELECT id, name, state FROM things ORDER BY created_at, id",
            &[],
        )
        .await?
        .iter()
        .map(|r| decode(r.get::<_, &str>(0), r.get(1), r.get::<_, &str>(2)))
        .collect()
}

pub(super) async fn of_member(client: &Client, user: UserId) -> Result<Vec<ThingRow>, StoreError> {
    client
        .query(
            "SELECT t.id, t.name, t.state FROM thing_members m JOIN things t ON t.id = m.thing \
             WHERE m.user_id = $1 ORDER BY t.created_at, t.id",
            &[&db_number(user)],
        )
        .await?
        .iter()
        .map(|r| decode(r.get::<_, &str>(0), r.get(1), r.get::<_, &str>(2)))
        .collect()
}

pub(super) async fn number(client: &Client, principal: &str) -> Result<UserId, StoreError> {
    // A known principal is a plain read (no sequence value used up, no row lock).
    if let Some(n) = known_number(client, principal).await? {
        return Ok(n);
    }
    let id: i64 = client
        .query_one(
            "INSERT INTO thing_principals (principal) VALUES ($1) \
             ON CONFLICT (principal) DO UPDATE SET principal = excluded.principal RETURNING id",
            &[&principal],
        )
        .await?
        .get(0);
    Ok(number_of(id))
}

pub(super) async fn known_number(
    client: &Client,
    principal: &str,
) -> Result<Option<UserId>, StoreError> {
    Ok(client
        .query_opt(
            "SELECT id FROM thing_principals WHERE principal = $1",
            &[&principal],
        )
        .await?
        .map(|r| number_of(r.get(0))))
}

pub(super) async fn principals(
    client: &Client,
    numbers: &[UserId],
) -> Result<Vec<PrincipalRow>, StoreError> {
    let ids: Vec<i64> = numbers.iter().copied().map(db_number).collect();
    let rows = client
        .query(
            "SELECT id, principal FROM thing_principals WHERE id = ANY($1)",
            &[&ids],
        )
        .await?;
    let mut out: Vec<PrincipalRow> = rows
        .iter()
        .map(|r| PrincipalRow {
            number: number_of(r.get(0)),
            principal: r.get(1),
        })
        .collect();
    // In the order asked.
    out.sort_by_key(|p| numbers.iter().position(|&n| n == p.number));
    Ok(out)
}

pub(super) async fn events(client: &Client, thing: &str) -> Result<Vec<ThingEvent>, StoreError> {
    Ok(client
        .query(
            "SELECT at_ms, actor, via, event FROM thing_events WHERE thing = $1 ORDER BY seq",
            &[&thing],
        )
        .await?
        .iter()
        .map(|r| ThingEvent {
            at_ms: r.get(0),
            actor: r.get(1),
            via: r.get(2),
            event: r.get(3),
        })
        .collect())
}

pub(super) async fn forget_account(
    client: &mut Client,
    account: &str,
    now: UnixTime,
) -> Result<ThingsForgotten, StoreError> {
    let tx = client.transaction().await?;
    let out = forget_account_in(&tx, account, now).await?;
    tx.commit().await?;
    Ok(out)
}

/// [`forget_account`] in the caller's transaction (`user delete` deletes the account in it).
pub(crate) async fn forget_account_in(
    tx: &tokio_postgres::Transaction<'_>,
    account: &str,
    now: UnixTime,
) -> Result<ThingsForgotten, StoreError> {
    let things_created = tx
        .execute(
            "UPDATE things SET created_by = NULL WHERE created_by = $1",
            &[&account],
        )
        .await?;
    let mut out = ThingsForgotten {
        things_created: usize::try_from(things_created).unwrap_or(usize::MAX),
        ..ThingsForgotten::default()
    };
    let number = tx
        .query_opt(
            "SELECT id FROM thing_principals WHERE principal = $1",
            &[&account],
        )
        .await?
        .map(|r| number_of(r.get(0)));
    let Some(number) = number else {
        return Ok(out);
    };
    let n = number.0.to_string();
    // A cheap superset: the number appears in the state of every thing it has a place in.
    let rows = tx
        .query(
            "SELECT id, name, state FROM things WHERE strpos(state, $1) > 0 ORDER BY id FOR UPDATE",
            &[&n],
        )
        .await?;
    for r in &rows {
        let mut thing = decode(r.get::<_, &str>(0), r.get(1), r.get::<_, &str>(2))?;
        let f = thing.access.forget_user(now, number);
        if f.is_empty() {
            continue;
        }
        tally(&mut out, &f, &thing.access);
        save(tx, &mut thing, Via::Cli, true, now).await?;
    }
    let anonymised: i64 = tx
        .query_one(
            "SELECT count(*) FROM thing_events WHERE actor = $1 \
             OR strpos(event, '\"user\":' || $1 || ',') > 0 \
             OR strpos(event, '\"user\":' || $1 || '}') > 0",
            &[&n],
        )
        .await?
        .get(0);
    out.events_anonymised = usize::try_from(anonymised).unwrap_or(usize::MAX);
    tx.execute(
        "DELETE FROM thing_principals WHERE id = $1",
        &[&db_number(number)],
    )
    .await?;
    Ok(out)
}
