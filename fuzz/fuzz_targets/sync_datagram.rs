#![no_main]
//! Arbitrary bytes into the sync datagram decoder (header, tag check, every body type, the
//! port classifier): no panic; a body that decodes re-encodes to the same bytes.
use fleetwire_sync::wire::{decode_body, decode_header, kind, seal};
use fleetwire_sync::{GroupKey, GroupId};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = kind(data);
    let key = GroupKey::new(1, [1; 32]);
    if let Ok((h, signed, _tag)) = decode_header(data) {
        if let Ok(m) = decode_body(&h, signed) {
            let mut out = Vec::new();
            seal(&key, GroupId(h.group.0), h.sender, h.seq, &m, &mut out);
            // Same header fields except the epoch (our key's), same body.
            assert_eq!(&out[14..out.len() - 16], &signed[14..], "body re-encodes identically");
        }
    }
});
