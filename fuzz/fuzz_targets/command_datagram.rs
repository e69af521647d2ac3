#![no_main]
//! Arbitrary bytes into the command datagram decoder: the clear header, the frame decoder on
//! the bytes as if they were plaintext, and opening under a fixed key. No panic; frames that
//! decode re-encode to the same bytes.
use fleetwire_command::wire::{Header, decode_frames, open};
use fleetwire_command::{CommandKey, KeyId};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = Header::decode(data);
    if let Ok(frames) = decode_frames(data) {
        let mut out = Vec::new();
        for f in &frames {
            f.encode(&mut out);
        }
        assert_eq!(out, data, "frames re-encode to the same bytes");
    }
    let key = CommandKey::from_parts([1; 32], [2; 32], KeyId([3; 8]));
    let _ = open(&key, data);
});
