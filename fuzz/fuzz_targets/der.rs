//! Certificate bytes: the validity period reader (src/wire/der.rs).
#![no_main]
#[path = "../../tests/common"]
#[allow(dead_code)] // each target uses one entry point of the shared harness
mod common {
    pub mod expo_check;
    pub mod fuzz;
    pub mod oracle;
}
libfuzzer_sys::fuzz_target!(|data: &[u8]| common::fuzz::der_validity(data));
