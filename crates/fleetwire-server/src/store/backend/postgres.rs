//! PostgreSQL: a pool of tokio-postgres connections (deadpool). TLS with rustls on ring when the
//! URL asks for it (`sslmode=require`); a Unix socket or loopback without.
//!
//! The URL takes libpq's forms: `postgres://user@host:5432/fleet?sslmode=require`, several hosts
//! (`host=a,b target_session_attrs=read-write` finds the primary after a failover), or
//! key-value pairs (`host=/run/postgresql dbname=fleet`).

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};

use crate::store::StoreError;

/// A pooled connection.
pub(crate) type Client = deadpool_postgres::Object;

/// The pool.
pub(crate) struct Db {
    pool: Pool,
}

impl Db {
    /// Connects a pool of up to `size` connections to `url` and checks one works.
    pub(crate) async fn open(
        url: &str,
        size: usize,
        ca_file: Option<&std::path::Path>,
    ) -> Result<Self, StoreError> {
        let config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| StoreError::Unavailable(format!("[store] url: {e}")))?;
        let manager_config = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = if config.get_ssl_mode() == tokio_postgres::config::SslMode::Disable {
            Manager::from_config(config, tokio_postgres::NoTls, manager_config)
        } else {
            Manager::from_config(config, tls(ca_file)?, manager_config)
        };
        let pool = Pool::builder(manager)
            .max_size(size.max(1))
            .wait_timeout(Some(Duration::from_secs(10)))
            .create_timeout(Some(Duration::from_secs(10)))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let db = Self { pool };
        drop(db.client().await?);
        Ok(db)
    }

    /// A connection from the pool.
    pub(crate) async fn client(&self) -> Result<Client, StoreError> {
        self.pool
            .get()
            .await
            .map_err(|e| StoreError::Unavailable(format!("PostgreSQL: {e}")))
    }
}

/// TLS to PostgreSQL: rustls on ring; the server's certificate must chain to `ca_file` (a
/// private CA, PEM) if given, else to the web PKI roots.
fn tls(
    ca_file: Option<&std::path::Path>,
) -> Result<tokio_postgres_rustls::MakeRustlsConnect, StoreError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            for cert in CertificateDer::pem_file_iter(path)
                .map_err(|e| StoreError::Unavailable(format!("{}: {e}", path.display())))?
            {
                let cert =
                    cert.map_err(|e| StoreError::Unavailable(format!("{}: {e}", path.display())))?;
                roots
                    .add(cert)
                    .map_err(|e| StoreError::Unavailable(format!("{}: {e}", path.display())))?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let config = rustls::ClientConfig::builder_with_provider(fleetwire_tokio::tls::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::Unavailable(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}
