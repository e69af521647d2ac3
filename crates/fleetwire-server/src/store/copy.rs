//! `store copy --to postgres://…`: moves an embedded store into a fresh PostgreSQL database,
//! verified row by row, all or nothing.
//!
//! The copy is driven by the two schemas rather than by a list kept beside them, so a table
//! added later is copied without touching this module:
//!
//! - every table of the target (PostgreSQL, migrated to the current version) that the source
//!   also has is copied, parents before children (foreign keys), in one transaction;
//! - a source table or column with no place in the target stops the copy with its name, unless
//!   it holds no data — nothing is ever dropped silently;
//! - the target must be empty (a database some node already served is refused);
//! - each value is converted to the target column's type (SQLite's 0/1 to `boolean`, integers
//!   to the column's width, text to `jsonb`); a value that does not fit stops the copy;
//! - before the commit, every table is read back and compared with the source: the row count,
//!   and an order-independent digest of the rows (the sum of each row's SHA-256), so one
//!   changed, missing or extra row is a mismatch and the transaction is rolled back;
//! - identity and serial columns continue after the copied ids.
//!
//! `schema_migrations` (each side has its own), `server_nodes` (liveness of running nodes) and
//! the columns in [`LIVE_STATE`] are not copied.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use futures_util::{TryStreamExt as _, pin_mut};
use rusqlite::types::Value;
use tokio_postgres::types::ToSql;

use super::backend::Backend;
use super::{Store, StoreError};

/// Tables that belong to one database, never copied.
const NOT_COPIED: &[&str] = &["schema_migrations", "server_nodes"];

/// Source columns with no place in the target on purpose: live state, not data. `players.online`
/// is the presence flag of embedded stores before v2 (presence per node replaced it).
const LIVE_STATE: &[(&str, &str)] = &[("players", "online")];

/// Rows per `INSERT` (PostgreSQL allows 65,535 parameters per statement).
const BATCH_ROWS: usize = 500;

/// What was copied: each table with its row count, in copy order.
#[derive(Debug, Default)]
pub(crate) struct CopyReport {
    pub(crate) tables: Vec<(String, u64)>,
}

/// A table of the source: its columns, and how to page through it in a stable order.
#[derive(Debug, Clone)]
struct SourceTable {
    columns: Vec<String>,
    /// `rowid` (paged by key), or the primary key's columns of a `WITHOUT ROWID` table.
    order: Option<Vec<String>>,
}

/// A column of the target: its name, its type as `information_schema` names it, and whether
/// it draws from a sequence.
#[derive(Debug, Clone)]
struct Column {
    name: String,
    kind: String,
    sequence: bool,
}

/// Copies `source` (SQLite) into `target` (PostgreSQL); see the module docs.
pub(crate) async fn to_postgres(source: &Store, target: &Store) -> Result<CopyReport, StoreError> {
    if !matches!(source.backend(), Backend::Sqlite(_)) {
        return Err(StoreError::Invalid(
            "the source must be the embedded store".into(),
        ));
    }
    if !matches!(target.backend(), Backend::Postgres(_)) {
        return Err(StoreError::Invalid("the target must be PostgreSQL".into()));
    }
    // One read transaction on the source for the whole copy: a consistent snapshot, even if
    // something writes meanwhile (stop the server first: later writes are not in the copy).
    source.sqlite(|c| c.execute_batch("BEGIN")).await?;
    let result = copy_snapshot(source, target).await;
    let _ = source.sqlite(|c| c.execute_batch("ROLLBACK")).await;
    result
}

async fn copy_snapshot(source: &Store, target: &Store) -> Result<CopyReport, StoreError> {
    let source_tables = source.sqlite(sqlite_tables).await?;
    let mut client = target.postgres().await?;
    let target_tables = postgres_tables(&client).await?;

    // What goes where; refuse anything that would be left behind with data in it.
    let mut plan = BTreeMap::new();
    for (table, SourceTable { columns, .. }) in &source_tables {
        if NOT_COPIED.contains(&table.as_str()) {
            continue;
        }
        let rows = count_sqlite(source, table).await?;
        let Some(target_columns) = target_tables.get(table) else {
            if rows > 0 {
                return Err(StoreError::Invalid(format!(
                    "table {table} ({rows} rows) has no place in PostgreSQL: nothing was copied"
                )));
            }
            continue;
        };
        let mut copied = Vec::new();
        for column in columns {
            match target_columns.iter().find(|c| &c.name == column) {
                Some(c) => copied.push(c.clone()),
                None if rows == 0 || LIVE_STATE.contains(&(table.as_str(), column.as_str())) => {}
                None => {
                    return Err(StoreError::Invalid(format!(
                        "column {table}.{column} has no place in PostgreSQL: nothing was copied"
                    )));
                }
            }
        }
        plan.insert(
            table.clone(),
            (
                copied,
                target_columns.clone(),
                source_tables[table].order.clone(),
            ),
        );
    }
    let order = parents_first(&client, plan.keys().cloned().collect()).await?;

    let tx = client.transaction().await?;
    for table in &order {
        let n: i64 = tx
            .query_one(&format!("SELECT COUNT(*) FROM {}", ident(table)), &[])
            .await?
            .get(0);
        if n > 0 {
            return Err(StoreError::Invalid(format!(
                "the target already holds data ({table}: {n} rows): copy into a fresh database"
            )));
        }
    }
    let mut report = CopyReport::default();
    for table in order {
        let (columns, all_columns, order) = &plan[&table];
        let (rows, digest) = copy_table(source, &tx, &table, columns, order.as_deref()).await?;
        let (back_rows, back_digest) = digest_postgres(&tx, &table, columns).await?;
        if (rows, digest) != (back_rows, back_digest) {
            return Err(StoreError::Invalid(format!(
                "table {table}: {rows} rows written but {back_rows} read back, or their \
                 contents differ: nothing was copied"
            )));
        }
        for column in all_columns.iter().filter(|c| c.sequence) {
            let sql = format!(
                "SELECT setval(pg_get_serial_sequence($1, $2), \
                 GREATEST((SELECT MAX({c}) FROM {t}), 1))",
                c = ident(&column.name),
                t = ident(&table)
            );
            tx.query_one(&sql, &[&table, &column.name]).await?;
        }
        report.tables.push((table, rows));
    }
    tx.commit().await?;
    Ok(report)
}

/// The source's tables and their columns.
fn sqlite_tables(
    conn: &mut rusqlite::Connection,
) -> Result<BTreeMap<String, SourceTable>, StoreError> {
    let names: Vec<(String, String)> = conn
        .prepare(
            "SELECT name, COALESCE(sql, '') FROM sqlite_master \
             WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
        )?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let mut tables = BTreeMap::new();
    for (name, sql) in names {
        let info: Vec<(String, i64)> = conn
            .prepare(&format!("PRAGMA table_info({})", ident(&name)))?
            .query_map([], |r| Ok((r.get::<_, String>(1)?, r.get::<_, i64>(5)?)))?
            .collect::<Result<_, _>>()?;
        let mut key: Vec<(i64, String)> = info
            .iter()
            .filter(|(_, pk)| *pk > 0)
            .map(|(c, pk)| (*pk, c.clone()))
            .collect();
        key.sort();
        let without_rowid = sql.to_ascii_uppercase().contains("WITHOUT ROWID");
        tables.insert(
            name,
            SourceTable {
                columns: info.into_iter().map(|(c, _)| c).collect(),
                order: without_rowid.then(|| key.into_iter().map(|(_, c)| c).collect()),
            },
        );
    }
    Ok(tables)
}

async fn count_sqlite(source: &Store, table: &str) -> Result<u64, StoreError> {
    let sql = format!("SELECT COUNT(*) FROM {}", ident(table));
    source
        .sqlite(move |c| c.query_row(&sql, [], |r| r.get::<_, i64>(0)))
        .await
        .map(|n| u64::try_from(n).unwrap_or(0))
}

/// The target's tables (partitioned parents, not their partitions) and their columns.
async fn postgres_tables(
    client: &tokio_postgres::Client,
) -> Result<BTreeMap<String, Vec<Column>>, StoreError> {
    let rows = client
        .query(
            "SELECT c.relname::text, a.attname::text, format_type(a.atttypid, NULL), \
                    a.attidentity <> '' OR COALESCE(pg_get_expr(d.adbin, d.adrelid), '') LIKE 'nextval(%' \
             FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
             LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum \
             WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') \
               AND NOT c.relispartition \
             ORDER BY c.relname, a.attnum",
            &[],
        )
        .await?;
    let mut tables: BTreeMap<String, Vec<Column>> = BTreeMap::new();
    for row in rows {
        tables.entry(row.get(0)).or_default().push(Column {
            name: row.get(1),
            kind: row.get(2),
            sequence: row.get(3),
        });
    }
    Ok(tables)
}

/// `tables` ordered so that a table comes after every table its foreign keys point to.
async fn parents_first(
    client: &tokio_postgres::Client,
    tables: BTreeSet<String>,
) -> Result<Vec<String>, StoreError> {
    let edges = client
        .query(
            "SELECT c.relname::text, p.relname::text FROM pg_constraint k \
             JOIN pg_class c ON c.oid = k.conrelid JOIN pg_class p ON p.oid = k.confrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE k.contype = 'f' AND n.nspname = current_schema()",
            &[],
        )
        .await?;
    let mut parents: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for row in edges {
        let (child, parent): (String, String) = (row.get(0), row.get(1));
        if child != parent && tables.contains(&parent) {
            parents.entry(child).or_default().insert(parent);
        }
    }
    let mut order = Vec::new();
    let mut done = BTreeSet::new();
    while done.len() < tables.len() {
        let ready: Vec<String> = tables
            .iter()
            .filter(|t| !done.contains(*t))
            .filter(|t| parents.get(*t).is_none_or(|p| p.is_subset(&done)))
            .cloned()
            .collect();
        if ready.is_empty() {
            return Err(StoreError::Invalid(
                "the target's foreign keys form a cycle: cannot order the copy".into(),
            ));
        }
        for t in ready {
            done.insert(t.clone());
            order.push(t);
        }
    }
    Ok(order)
}

/// Copies one table in batches; returns its row count and digest as read from the source.
async fn copy_table(
    source: &Store,
    tx: &tokio_postgres::Transaction<'_>,
    table: &str,
    columns: &[Column],
    without_rowid_key: Option<&[String]>,
) -> Result<(u64, u128), StoreError> {
    let (mut rows, mut digest) = (0u64, 0u128);
    if columns.is_empty() {
        return Ok((0, 0));
    }
    let names: Vec<String> = columns.iter().map(|c| ident(&c.name)).collect();
    // Rowid tables page by key (readings can be many millions of rows); the small WITHOUT
    // ROWID tables by offset in primary-key order.
    let (mut after, mut offset) = (i64::MIN, 0usize);
    loop {
        let sql = match without_rowid_key {
            None => format!(
                "SELECT rowid, {} FROM {} WHERE rowid > {after} ORDER BY rowid LIMIT {BATCH_ROWS}",
                names.join(", "),
                ident(table)
            ),
            Some(key) => format!(
                "SELECT 0, {} FROM {} ORDER BY {} LIMIT {BATCH_ROWS} OFFSET {offset}",
                names.join(", "),
                ident(table),
                key.iter().map(|k| ident(k)).collect::<Vec<_>>().join(", ")
            ),
        };
        let width = columns.len();
        let batch: Vec<(i64, Vec<Value>)> = source
            .sqlite(move |c| {
                c.prepare(&sql)?
                    .query_map([], |r| {
                        Ok((
                            r.get::<_, i64>(0)?,
                            (1..=width)
                                .map(|i| r.get::<_, Value>(i))
                                .collect::<Result<Vec<_>, _>>()?,
                        ))
                    })?
                    .collect::<Result<Vec<_>, _>>()
            })
            .await?;
        let Some(last) = batch.last() else {
            break;
        };
        after = last.0;
        offset += batch.len();
        let batch: Vec<Vec<Value>> = batch.into_iter().map(|(_, row)| row).collect();
        let mut params: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
        let mut values = String::new();
        for row in &batch {
            let mut canonical = Vec::new();
            values.push_str(if values.is_empty() { "(" } else { ", (" });
            for (i, (value, column)) in row.iter().zip(columns).enumerate() {
                let (param, cast) = convert(table, column, value)?;
                canonical_value(&mut canonical, param_text(value, column)?.as_ref());
                params.push(param);
                if i > 0 {
                    values.push_str(", ");
                }
                let _ = write!(values, "${}{cast}", params.len());
            }
            values.push(')');
            digest = digest.wrapping_add(row_digest(&canonical));
            rows += 1;
        }
        let sql = format!(
            "INSERT INTO {} ({}) OVERRIDING SYSTEM VALUE VALUES {values}",
            ident(table),
            names.join(", ")
        );
        let refs: Vec<&(dyn ToSql + Sync)> = params
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect();
        tx.execute(&sql, &refs).await?;
    }
    Ok((rows, digest))
}

/// Reads the copied table back: its row count and digest, in the same canonical form.
async fn digest_postgres(
    tx: &tokio_postgres::Transaction<'_>,
    table: &str,
    columns: &[Column],
) -> Result<(u64, u128), StoreError> {
    if columns.is_empty() {
        return Ok((0, 0));
    }
    let select: Vec<String> = columns
        .iter()
        .map(|c| match c.kind.as_str() {
            "bigint" | "integer" | "smallint" | "boolean" | "bytea" | "text"
            | "double precision" | "real" => ident(&c.name),
            _ => format!("{}::text", ident(&c.name)),
        })
        .collect();
    let sql = format!("SELECT {} FROM {}", select.join(", "), ident(table));
    let stream = tx.query_raw(&sql, std::iter::empty::<i32>()).await?;
    pin_mut!(stream);
    let (mut rows, mut digest) = (0u64, 0u128);
    while let Some(row) = stream.try_next().await? {
        let mut canonical = Vec::new();
        for (i, column) in columns.iter().enumerate() {
            let text = match column.kind.as_str() {
                "bigint" => row.get::<_, Option<i64>>(i).map(Canon::Int),
                "integer" => row.get::<_, Option<i32>>(i).map(|v| Canon::Int(v.into())),
                "smallint" => row.get::<_, Option<i16>>(i).map(|v| Canon::Int(v.into())),
                "boolean" => row.get::<_, Option<bool>>(i).map(|v| Canon::Int(v.into())),
                "double precision" => row.get::<_, Option<f64>>(i).map(Canon::Real),
                "real" => row
                    .get::<_, Option<f32>>(i)
                    .map(|v| Canon::Real(f64::from(v))),
                "bytea" => row.get::<_, Option<Vec<u8>>>(i).map(Canon::Bytes),
                "json" | "jsonb" => row
                    .get::<_, Option<String>>(i)
                    .map(|s| Canon::Text(normal_json(&s))),
                _ => row.get::<_, Option<String>>(i).map(Canon::Text),
            };
            canonical_value(&mut canonical, text.as_ref());
        }
        digest = digest.wrapping_add(row_digest(&canonical));
        rows += 1;
    }
    Ok((rows, digest))
}

/// A value in the form both sides are compared in.
#[derive(Debug)]
enum Canon {
    Int(i64),
    Real(f64),
    Text(String),
    Bytes(Vec<u8>),
}

fn canonical_value(out: &mut Vec<u8>, value: Option<&Canon>) {
    match value {
        None => out.push(b'N'),
        Some(Canon::Int(v)) => {
            out.push(b'I');
            out.extend_from_slice(&v.to_be_bytes());
        }
        Some(Canon::Real(v)) => {
            out.push(b'R');
            out.extend_from_slice(&v.to_bits().to_be_bytes());
        }
        Some(Canon::Text(s)) => {
            out.push(b'T');
            out.extend_from_slice(&(s.len() as u64).to_be_bytes());
            out.extend_from_slice(s.as_bytes());
        }
        Some(Canon::Bytes(b)) => {
            out.push(b'B');
            out.extend_from_slice(&(b.len() as u64).to_be_bytes());
            out.extend_from_slice(b);
        }
    }
}

fn row_digest(canonical: &[u8]) -> u128 {
    let d = ring::digest::digest(&ring::digest::SHA256, canonical);
    let mut first = [0u8; 16];
    first.copy_from_slice(&d.as_ref()[..16]);
    u128::from_be_bytes(first)
}

fn normal_json(text: &str) -> String {
    serde_json::from_str::<serde_json::Value>(text)
        .map_or_else(|_| text.to_owned(), |v| v.to_string())
}

/// The source value as the target column will hold it (for the digest).
fn param_text(value: &Value, column: &Column) -> Result<Option<Canon>, StoreError> {
    Ok(match (value, column.kind.as_str()) {
        (Value::Null, _) => None,
        (Value::Integer(v), _) => Some(Canon::Int(*v)),
        (Value::Real(v), "double precision" | "real") => Some(Canon::Real(*v)),
        (Value::Real(v), _) => Some(Canon::Text(v.to_string())),
        (Value::Text(s), "json" | "jsonb") => Some(Canon::Text(normal_json(s))),
        (Value::Text(s), "bytea") => Some(Canon::Bytes(s.as_bytes().to_vec())),
        (Value::Text(s), _) => Some(Canon::Text(s.clone())),
        (Value::Blob(b), "bytea") => Some(Canon::Bytes(b.clone())),
        (Value::Blob(b), _) => Some(Canon::Text(String::from_utf8(b.clone()).map_err(|_| {
            StoreError::Invalid(format!("{}: binary data for a text column", column.name))
        })?)),
    })
}

/// The parameter for `value` in `column`, and the cast its placeholder needs.
fn convert(
    table: &str,
    column: &Column,
    value: &Value,
) -> Result<(Box<dyn ToSql + Sync + Send>, &'static str), StoreError> {
    let misfit = || {
        StoreError::Invalid(format!(
            "{table}.{}: {value:?} does not fit the target type {}: nothing was copied",
            column.name, column.kind
        ))
    };
    let int = |v: &Value| match v {
        Value::Integer(i) => Ok(*i),
        _ => Err(misfit()),
    };
    Ok(match (column.kind.as_str(), value) {
        ("bigint", Value::Null) => (Box::new(None::<i64>), ""),
        ("bigint", v) => (Box::new(int(v)?), ""),
        ("integer", Value::Null) => (Box::new(None::<i32>), ""),
        ("integer", v) => (Box::new(i32::try_from(int(v)?).map_err(|_| misfit())?), ""),
        ("smallint", Value::Null) => (Box::new(None::<i16>), ""),
        ("smallint", v) => (Box::new(i16::try_from(int(v)?).map_err(|_| misfit())?), ""),
        ("boolean", Value::Null) => (Box::new(None::<bool>), ""),
        ("boolean", v) => match int(v)? {
            0 => (Box::new(false), ""),
            1 => (Box::new(true), ""),
            _ => return Err(misfit()),
        },
        ("double precision", Value::Null) => (Box::new(None::<f64>), ""),
        ("double precision", Value::Real(r)) => (Box::new(*r), ""),
        #[allow(clippy::cast_precision_loss)]
        ("double precision", Value::Integer(i)) => (Box::new(*i as f64), ""),
        ("bytea", Value::Null) => (Box::new(None::<Vec<u8>>), ""),
        ("bytea", Value::Blob(b)) => (Box::new(b.clone()), ""),
        ("bytea", Value::Text(s)) => (Box::new(s.as_bytes().to_vec()), ""),
        (kind, Value::Null) => (Box::new(None::<String>), null_cast(kind)),
        ("text", Value::Text(s)) => (Box::new(s.clone()), ""),
        (kind, Value::Text(s)) if kind != "bytea" => (Box::new(s.clone()), text_cast(kind)),
        (kind, Value::Integer(i)) if kind.starts_with("numeric") || kind == "text" => {
            (Box::new(i.to_string()), text_cast(kind))
        }
        _ => return Err(misfit()),
    })
}

/// `::text` then the column's own type, so text reaches any type PostgreSQL can parse it as.
fn text_cast(kind: &str) -> &'static str {
    match kind {
        "text" => "",
        "jsonb" => "::text::jsonb",
        "json" => "::text::json",
        "uuid" => "::text::uuid",
        "timestamp with time zone" => "::text::timestamptz",
        "timestamp without time zone" => "::text::timestamp",
        "inet" => "::text::inet",
        _ => "::text",
    }
}

/// The placeholder cast for a NULL of a type without a native parameter.
fn null_cast(kind: &str) -> &'static str {
    match text_cast(kind) {
        "" => "::text",
        cast => cast,
    }
}

/// A quoted identifier.
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
