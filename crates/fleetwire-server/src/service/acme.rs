//! Automatic certificates (W6): an ACME client (instant-acme on ring) that obtains a certificate
//! for the `[acme]` domains with the http-01 challenge, installs it in the TLS resolver (new
//! handshakes get it, open connections keep theirs) and renews it at two thirds of its
//! lifetime; a failed attempt is retried with a growing wait, and the certificate in use stays
//! until a new one replaces it. State in `tls/acme/` of the data directory: the account's
//! credentials and the certificate and its key (all 0600), so a restart neither orders again
//! nor creates another account.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, NewAccount,
    NewOrder, OrderStatus, RetryPolicy,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::sync::watch;

use crate::config::AcmeSettings;
use crate::util::certs::{Resolver, certified_key};

/// The http-01 answers waiting to be fetched: token → key authorization.
#[derive(Debug, Default)]
pub(crate) struct Challenges(Mutex<HashMap<String, String>>);

impl Challenges {
    /// The answer for `token`, while its challenge is open.
    pub(crate) fn answer(&self, token: &str) -> Option<String> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(token)
            .cloned()
    }

    fn open(&self, token: String, authorization: String) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(token, authorization);
    }

    fn close_all(&self) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

/// When a certificate valid from `not_before` to `not_after` (Unix seconds) is renewed: once
/// `fraction` of its lifetime has passed (clamped to the lifetime).
pub(crate) fn renew_at(not_before: i64, not_after: i64, fraction: f64) -> i64 {
    let lifetime = (not_after - not_before).max(0);
    #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
    let into = (lifetime as f64 * fraction.clamp(0.0, 1.0)) as i64;
    not_before + into.clamp(0, lifetime)
}

/// The wait before attempt `failures + 1` after `failures` failed ones: `base` doubling, at most
/// an hour.
pub(crate) fn retry_after(failures: u32, base_secs: u64) -> u64 {
    base_secs
        .max(1)
        .saturating_mul(1u64 << failures.min(20))
        .min(3600)
}

/// Obtains, installs and renews the certificate until `shutdown`.
pub(crate) async fn run(
    settings: AcmeSettings,
    dir: PathBuf,
    resolver: Arc<Resolver>,
    challenges: Arc<Challenges>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut failures = 0u32;
    let mut next = match load(&dir, &settings.domains) {
        Ok(Some(held)) => {
            resolver.set_public(settings.domains.clone(), held.key.clone());
            tracing::info!(domains = ?settings.domains, expires = held.not_after, "ACME: certificate loaded");
            renew_at(
                held.not_before,
                held.not_after,
                settings.renew_after_fraction,
            )
        }
        Ok(None) => 0,
        Err(e) => {
            tracing::warn!("ACME: the stored certificate is not usable ({e}); ordering a new one");
            0
        }
    };
    loop {
        let wait = u64::try_from(next - crate::unix_now()).unwrap_or(0);
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(wait)) => {}
            _ = shutdown.changed() => return,
        }
        match obtain(&settings, &dir, &challenges).await {
            Ok(held) => {
                failures = 0;
                resolver.set_public(settings.domains.clone(), held.key.clone());
                next = renew_at(
                    held.not_before,
                    held.not_after,
                    settings.renew_after_fraction,
                );
                println!(
                    "ACME: certificate for {} installed (valid until {}; renewal at {next})",
                    settings.domains.join(", "),
                    held.not_after
                );
            }
            Err(e) => {
                let wait = retry_after(failures, settings.retry_secs);
                failures = failures.saturating_add(1);
                tracing::warn!(
                    "ACME: could not obtain a certificate ({e}); trying again in {wait} s"
                );
                next = crate::unix_now() + i64::try_from(wait).unwrap_or(3600);
            }
        }
        challenges.close_all();
    }
}

/// A certificate in hand.
struct Held {
    key: Arc<rustls::sign::CertifiedKey>,
    not_before: i64,
    not_after: i64,
}

/// Why an order failed.
#[derive(Debug, thiserror::Error)]
enum AcmeError {
    #[error("{0}")]
    Protocol(#[from] instant_acme::Error),
    #[error("{0}")]
    Other(String),
}

async fn obtain(
    settings: &AcmeSettings,
    dir: &Path,
    challenges: &Challenges,
) -> Result<Held, AcmeError> {
    let account = account(settings, dir).await?;
    let identifiers: Vec<Identifier> = settings
        .domains
        .iter()
        .map(|d| Identifier::Dns(d.clone()))
        .collect();
    let mut order = account.new_order(&NewOrder::new(&identifiers)).await?;
    let mut authorizations = order.authorizations();
    while let Some(authz) = authorizations.next().await {
        let mut authz = authz?;
        match authz.status {
            AuthorizationStatus::Pending => {}
            AuthorizationStatus::Valid => continue,
            other => return Err(AcmeError::Other(format!("authorization is {other:?}"))),
        }
        let mut challenge = authz
            .challenge(ChallengeType::Http01)
            .ok_or_else(|| AcmeError::Other("the CA offers no http-01 challenge".into()))?;
        challenges.open(
            challenge.token.clone(),
            challenge.key_authorization().as_str().to_owned(),
        );
        challenge.set_ready().await?;
    }
    let status = order.poll_ready(&RetryPolicy::default()).await?;
    if status != OrderStatus::Ready {
        return Err(AcmeError::Other(format!("order is {status:?}, not ready")));
    }
    let key_pem = order.finalize().await?;
    let chain_pem = order.poll_certificate(&RetryPolicy::default()).await?;
    let held = parse(&chain_pem, &key_pem).map_err(AcmeError::Other)?;
    std::fs::create_dir_all(dir)
        .map_err(|e| AcmeError::Other(format!("{}: {e}", dir.display())))?;
    write(&dir.join("key.pem"), key_pem.as_bytes())?;
    write(&dir.join("cert.pem"), chain_pem.as_bytes())?;
    write(&dir.join("domains"), settings.domains.join("\n").as_bytes())?;
    Ok(held)
}

/// The ACME account: restored from `account.json`, or created (and saved) on first use.
async fn account(settings: &AcmeSettings, dir: &Path) -> Result<Account, AcmeError> {
    let builder = match &settings.ca_file {
        Some(ca) => Account::builder_with_root(ca)?,
        None => Account::builder()?,
    };
    let path = dir.join("account.json");
    if let Ok(text) = std::fs::read_to_string(&path) {
        if let Ok(credentials) = serde_json::from_str::<AccountCredentials>(&text) {
            return Ok(builder.from_credentials(credentials).await?);
        }
    }
    let contact: Vec<&str> = settings.contact.iter().map(String::as_str).collect();
    let (account, credentials) = builder
        .create(
            &NewAccount {
                contact: &contact,
                terms_of_service_agreed: true,
                only_return_existing: false,
            },
            settings.directory_url.clone(),
            None,
        )
        .await?;
    std::fs::create_dir_all(dir)
        .map_err(|e| AcmeError::Other(format!("{}: {e}", dir.display())))?;
    let json = serde_json::to_vec(&credentials).map_err(|e| AcmeError::Other(e.to_string()))?;
    write(&path, &json)?;
    Ok(account)
}

/// The stored certificate, if it is for `domains` and not expired.
fn load(dir: &Path, domains: &[String]) -> Result<Option<Held>, String> {
    let Ok(stored) = std::fs::read_to_string(dir.join("domains")) else {
        return Ok(None);
    };
    if stored.lines().collect::<Vec<_>>() != domains.iter().map(String::as_str).collect::<Vec<_>>()
    {
        return Ok(None);
    }
    let chain = std::fs::read_to_string(dir.join("cert.pem")).map_err(|e| e.to_string())?;
    let key = std::fs::read_to_string(dir.join("key.pem")).map_err(|e| e.to_string())?;
    let held = parse(&chain, &key)?;
    Ok((held.not_after > crate::unix_now()).then_some(held))
}

fn parse(chain_pem: &str, key_pem: &str) -> Result<Held, String> {
    let chain = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("certificate chain: {e}"))?;
    let leaf = chain.first().ok_or("an empty certificate chain")?;
    let (_, cert) =
        x509_parser::parse_x509_certificate(leaf).map_err(|e| format!("certificate: {e}"))?;
    let validity = cert.validity();
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| format!("key: {e}"))?;
    Ok(Held {
        not_before: validity.not_before.timestamp(),
        not_after: validity.not_after.timestamp(),
        key: certified_key(chain, &key)?,
    })
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), AcmeError> {
    crate::util::secret_file::write(path, bytes, crate::util::secret_file::Overwrite::Replace)
        .map_err(|e| AcmeError::Other(format!("{}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_comes_at_two_thirds_of_the_lifetime() {
        let day = 86_400;
        // A 90-day certificate: renewed on day 60, thirty days to spare.
        assert_eq!(
            renew_at(1_000, 1_000 + 90 * day, 2.0 / 3.0),
            1_000 + 60 * day
        );
        // Nonsense fractions stay within the lifetime.
        assert_eq!(renew_at(0, 100, 5.0), 100);
        assert_eq!(renew_at(0, 100, -1.0), 0);
        // An already expired certificate is renewed at once.
        assert_eq!(renew_at(0, 100, 2.0 / 3.0), 66);
    }

    #[test]
    fn failed_attempts_wait_longer_up_to_an_hour() {
        assert_eq!(retry_after(0, 60), 60);
        assert_eq!(retry_after(1, 60), 120);
        assert_eq!(retry_after(5, 60), 1920);
        assert_eq!(retry_after(6, 60), 3600);
        assert_eq!(retry_after(40, 60), 3600);
    }
}
