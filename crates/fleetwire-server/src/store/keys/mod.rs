//! Server keys shared by every node of a fleet (the content-signing seed, the TOTP sealing key,
//! the device-cookie and pseudonym keys). On the embedded store they stay where they always
//! were: 0600 files in the data directory (`service::keys`). With PostgreSQL, several nodes
//! must hold the same keys, so they live in `server_keys`: the first node to need a key inserts
//! it, every other node reads the same row (an insert that lost the race changes nothing).
//! Until keys are sealed by a key-encryption key (docs/SECURITY.md), the database holds them in
//! clear and must be protected like the key files.

pub(crate) mod postgres;

use super::backend::Backend;
use super::{Store, StoreError};

/// The keys repository (PostgreSQL only).
pub(crate) struct Keys<'a>(pub(super) &'a Store);

impl Keys<'_> {
    /// The key `name`, inserting `fresh` if there is none yet; returns the stored one.
    pub(crate) async fn get_or_insert(
        &self,
        name: &str,
        fresh: Vec<u8>,
    ) -> Result<Vec<u8>, StoreError> {
        match self.0.backend() {
            Backend::Postgres(_) => {
                postgres::get_or_insert(&self.0.postgres().await?, name, &fresh).await
            }
            Backend::Sqlite(_) => Err(StoreError::Invalid(
                "on the embedded store, keys are files in the data directory".into(),
            )),
        }
    }
}
