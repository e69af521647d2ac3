//! Replays test-vectors/independent.json (computed with Python's hmac, not by fleetwire): a
//! device cookie built from the documented format verifies, and names its nonce as the device.

use fleetwire_auth::lockout::{DeviceCookie, DeviceId};
use serde_json::Value;

#[test]
fn independently_built_device_cookie_verifies() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../test-vectors/independent.json"
    );
    let v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let v = &v["device_cookie"];
    let secret = hex::decode(v["secret"].as_str().unwrap()).unwrap();
    let subject = v["subject"].as_str().unwrap().as_bytes();
    let nonce: [u8; 16] = hex::decode(v["nonce"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let cookie = v["cookie"].as_str().unwrap();
    assert_eq!(
        DeviceCookie::verify(&secret, subject, cookie),
        Some(DeviceId(nonce))
    );
    assert_eq!(DeviceCookie::verify(&secret, b"someone else", cookie), None);
}
