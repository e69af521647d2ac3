//! The default parameters are OWASP's (m = 19 MiB, t = 2, p = 1); hashes made with older
//! parameters are flagged for rehash. (One real 19 MiB hash: slow in debug builds, kept single.)

use fleetwire_auth::hash::{HashParams, PasswordHasher, PhcHash};
use rand_core::SeedableRng;

#[test]
fn owasp_defaults_and_rehash() {
    let p = HashParams::default();
    assert_eq!((p.m_cost_kib, p.t_cost, p.p_cost), (19 * 1024, 2, 1));
    let hasher = PasswordHasher::new(p).unwrap();
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
    let phc = hasher.hash("Tulip-Harbour-7", &mut rng).unwrap();
    assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
    assert_eq!(PhcHash::parse(&phc).unwrap().salt.len(), 16);
    let weak = PasswordHasher::new(HashParams::danger_insecure_for_tests()).unwrap();
    let old = weak.hash_with_salt("Tulip-Harbour-7", &[1; 16]).unwrap();
    assert!(hasher.needs_rehash(&old));
    assert!(!hasher.needs_rehash(&phc));
    assert!(hasher.verify("Tulip-Harbour-7", &old).unwrap().needs_rehash);
}
