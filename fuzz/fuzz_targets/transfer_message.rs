#![no_main]
//! Arbitrary bytes into the message decoder (with and without a valid checksum appended): no
//! panic, and what decodes re-encodes to the same bytes.
use fleetwire_transfer::Message;
use libfuzzer_sys::fuzz_target;

fn check(bytes: &[u8]) {
    if let Ok(m) = Message::decode(bytes) {
        let mut out = Vec::new();
        m.encode(&mut out);
        assert_eq!(out, bytes);
    }
}

fuzz_target!(|data: &[u8]| {
    check(data);
    // Give the fields a chance past the checksum.
    let mut b = data.to_vec();
    let crc = crc32c(&b);
    b.extend_from_slice(&crc.to_be_bytes());
    check(&b);
});

fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0x82F6_3B78 } else { crc >> 1 };
        }
    }
    !crc
}
