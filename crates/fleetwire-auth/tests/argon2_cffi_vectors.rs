//! test-vectors/auth.json: hashes made by argon2-cffi verify here, and the hashes fleetwire made
//! are reproduced byte for byte (argon2-cffi verified those when the file was generated).

use fleetwire_auth::hash::{HashError, PasswordHasher, PhcHash};

fn vectors() -> serde_json::Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../test-vectors/auth.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("test-vectors/auth.json"))
        .expect("valid JSON")
}

#[test]
fn argon2_cffi_and_fleetwire_hashes_verify() {
    let doc = vectors();
    let wrong = doc["wrong_password"].as_str().unwrap();
    let mut cffi = 0;
    for v in doc["argon2id_phc"].as_array().unwrap() {
        let password = v["password"].as_str().unwrap();
        let phc = v["phc"].as_str().unwrap();
        let parsed = PhcHash::parse(phc).unwrap();
        let hasher = PasswordHasher::new(parsed.params()).unwrap();
        assert_eq!(
            hasher.verify(password, phc).map(|v| v.needs_rehash),
            Ok(false),
            "{phc}"
        );
        if parsed.m_cost_kib < 4096 {
            assert_eq!(hasher.verify(wrong, phc), Err(HashError::Mismatch));
        }
        let made_by = v["made_by"].as_str().unwrap();
        if made_by == "fleetwire-auth" {
            assert_eq!(hasher.hash_with_salt(password, &parsed.salt).unwrap(), phc);
        } else {
            assert!(made_by.starts_with("argon2-cffi"));
            cffi += 1;
        }
    }
    assert!(cffi >= 3, "expected argon2-cffi-made vectors");
}
