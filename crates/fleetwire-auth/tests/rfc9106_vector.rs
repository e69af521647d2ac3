//! RFC 9106 §5.3 Argon2id test vector, through the same argon2 build fleetwire-auth uses, and a
//! check that fleetwire's pepper is Argon2's secret input `K`.

use argon2::{Algorithm, Argon2, AssociatedData, ParamsBuilder, Version};
use fleetwire_auth::hash::{HashParams, PasswordHasher, PhcHash};

fn hex(s: &str) -> Vec<u8> {
    ::hex::decode(s).unwrap()
}

#[test]
fn rfc9106_argon2id_tag() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../test-vectors/auth.json");
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let v = &doc["rfc9106_argon2id"];
    let params = ParamsBuilder::new()
        .m_cost(u32::try_from(v["m_cost_kib"].as_u64().unwrap()).unwrap())
        .t_cost(u32::try_from(v["t_cost"].as_u64().unwrap()).unwrap())
        .p_cost(u32::try_from(v["p_cost"].as_u64().unwrap()).unwrap())
        .data(AssociatedData::new(&hex(v["associated_data_hex"].as_str().unwrap())).unwrap())
        .build()
        .unwrap();
    let secret = hex(v["secret_hex"].as_str().unwrap());
    let ctx =
        Argon2::new_with_secret(&secret, Algorithm::Argon2id, Version::V0x13, params).unwrap();
    let mut out = [0u8; 32];
    ctx.hash_password_into(
        &hex(v["password_hex"].as_str().unwrap()),
        &hex(v["salt_hex"].as_str().unwrap()),
        &mut out,
    )
    .unwrap();
    assert_eq!(out.to_vec(), hex(v["tag_hex"].as_str().unwrap()));
}

#[test]
fn pepper_is_the_argon2_secret() {
    let params = HashParams {
        m_cost_kib: 32,
        t_cost: 3,
        p_cost: 4,
        output_len: 32,
        salt_len: 16,
    };
    let hasher = PasswordHasher::with_pepper(params, &[3; 8]).unwrap();
    let phc = hasher.hash_with_salt("pepper test", &[2; 16]).unwrap();
    let ctx = Argon2::new_with_secret(
        &[3; 8],
        Algorithm::Argon2id,
        Version::V0x13,
        argon2::Params::new(32, 3, 4, Some(32)).unwrap(),
    )
    .unwrap();
    let mut out = [0u8; 32];
    ctx.hash_password_into(b"pepper test", &[2; 16], &mut out)
        .unwrap();
    assert_eq!(PhcHash::parse(&phc).unwrap().hash, out.to_vec());
}
