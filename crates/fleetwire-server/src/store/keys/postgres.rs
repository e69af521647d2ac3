//! The keys repository on PostgreSQL.

use crate::store::StoreError;
use crate::store::backend::postgres::Client;

pub(crate) const SCHEMA: &str = "
CREATE TABLE server_keys (
    name       TEXT PRIMARY KEY,
    value      BYTEA NOT NULL,
    created_at BIGINT NOT NULL
);
";

pub(super) async fn get_or_insert(
    client: &Client,
    name: &str,
    fresh: &[u8],
) -> Result<Vec<u8>, StoreError> {
    client
        .execute(
            "INSERT INTO server_keys (name, value, created_at) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO NOTHING",
            &[&name, &fresh, &crate::unix_now()],
        )
        .await?;
    let row = client
        .query_one("SELECT value FROM server_keys WHERE name = $1", &[&name])
        .await?;
    Ok(row.get(0))
}
