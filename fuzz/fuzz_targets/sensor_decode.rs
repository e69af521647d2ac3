#![no_main]
//! Arbitrary bytes into every sensor decoder: no panic. A body that decodes re-encodes to a body
//! that decodes to the same upload (and the same for acks).
use fleetwire_sensor::codec::{
    decode_ack_unverified, decode_reject, decode_upload, decode_upload_unverified, encode_ack,
    encode_upload, upload_logger,
};
use fleetwire_sensor::{LoggerId, LoggerKey};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let key = LoggerKey::derive(&[3; 32], LoggerId(1));
    let _ = upload_logger(data);
    let _ = decode_upload(data, &key);
    let _ = decode_reject(data);
    if let Ok((upload, _)) = decode_upload_unverified(data) {
        let mut frame = Vec::new();
        encode_upload(&mut frame, &key, &upload).expect("a decoded batch is valid");
        let (again, _) = decode_upload(&frame[6..], &key).expect("re-encoded upload decodes");
        assert_eq!(again, upload);
    }
    if let Ok((ack, _)) = decode_ack_unverified(data) {
        let mut frame = Vec::new();
        encode_ack(&mut frame, &key, &[0; 16], &ack).expect("a decoded ack is valid");
        let (again, _) = decode_ack_unverified(&frame[6..]).expect("re-encoded ack decodes");
        assert_eq!(again, ack);
    }
});
