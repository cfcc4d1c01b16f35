//! Responses from untrusted shims, decoded in place in pieces.
#![no_main]
#[path = "../../tests/common"]
mod common {
    pub mod expo_check;
    pub mod fuzz;
    pub mod oracle;
}
libfuzzer_sys::fuzz_target!(|data: &[u8]| common::fuzz::shim_response(data));
