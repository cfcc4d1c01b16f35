//! index + merge + render + gzip of up to 3 hostile bodies, checked by the
//! independent parser and the conservation oracle (tests/common).
#![no_main]
#[path = "../../tests/common"]
#[allow(dead_code)] // each target uses one entry point of the shared harness
mod common {
    pub mod expo_check;
    pub mod fuzz;
    pub mod oracle;
}
libfuzzer_sys::fuzz_target!(|data: &[u8]| common::fuzz::engine(data));
