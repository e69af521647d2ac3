#![no_main]
//! The sender machine fed arbitrary messages; see `common/transfer.rs`.
#[path = "common/transfer.rs"]
mod harness;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| harness::run(data, harness::Role::Sender));
