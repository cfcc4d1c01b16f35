//! index + merge + render + gzip of up to 3 hostile bodies, checked by the
//! independent parser and the conservation oracle (tests/common).
#![no_main]
#[path = "../../tests/common/mod.rs"]
mod common;
libfuzzer_sys::fuzz_target!(|data: &[u8]| common::fuzz::engine(data));
