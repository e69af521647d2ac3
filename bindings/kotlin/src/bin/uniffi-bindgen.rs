//! `uniffi-bindgen` for this crate: `cargo run -p fleetwire-kotlin --features cli --bin uniffi-bindgen -- generate ...`.

fn main() {
    uniffi::uniffi_bindgen_main();
}
