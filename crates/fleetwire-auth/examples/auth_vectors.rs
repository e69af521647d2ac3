//! Prints the PHC strings fleetwire-auth produces for fixed passwords and salts, as JSON lines.
//! `tests/gen_argon2_cffi_vectors.py` reads them, checks them with argon2-cffi and writes
//! `test-vectors/auth.json`.

use fleetwire_auth::hash::{HashParams, PasswordHasher};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cases: [(&str, [u8; 16], u32, u32, u32); 4] = [
        ("password", [0x11; 16], 64, 1, 1),
        ("correct horse battery staple", [0x22; 16], 256, 2, 1),
        ("pässwörd-ñ-🦀", [0x33; 16], 512, 3, 2),
        ("Tulip-Harbour-7", *b"fleetwire-salt!!", 19 * 1024, 2, 1),
    ];
    for (password, salt, m, t, p) in cases {
        let hasher = PasswordHasher::new(HashParams {
            m_cost_kib: m,
            t_cost: t,
            p_cost: p,
            output_len: 32,
            salt_len: 16,
        })?;
        let phc = hasher.hash_with_salt(password, &salt)?;
        println!(
            "{{\"password\": {password:?}, \"phc\": \"{phc}\", \"made_by\": \"fleetwire-auth\"}}"
        );
    }
    Ok(())
}
