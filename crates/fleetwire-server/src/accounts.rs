//! Transitional: what the things module (another domain, still on its own SQL) imports from
//! the accounts domain, which now lives in `store::accounts`, `service::accounts` and
//! `api::accounts`. Goes away when things moves onto the layers.

pub(crate) use crate::api::accounts::session_user;
pub(crate) use crate::config::AccountsSettings;
pub(crate) use crate::service::accounts::{Accounts, canonical_name, check_right};
pub(crate) use crate::store::accounts::UserRow;

/// The account a name or e-mail address names, on a connection of the SQLite store inside the
/// things tables' own transactions.
pub(crate) fn user_by_name(
    conn: &rusqlite::Connection,
    name: &str,
) -> rusqlite::Result<Option<UserRow>> {
    crate::store::accounts::sqlite::user_by_name_in(conn, &canonical_name(name))
}

/// The account with this id (see [`user_by_name`]).
pub(crate) fn user_by_id(
    conn: &rusqlite::Connection,
    id: &str,
) -> rusqlite::Result<Option<UserRow>> {
    crate::store::accounts::sqlite::user_by_id_in(conn, id)
}
