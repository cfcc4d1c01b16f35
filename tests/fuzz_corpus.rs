//! Replays the committed fuzz corpora (`fuzz/corpus/*`) through the same
//! target bodies as `cargo fuzz`, so CI checks them on stable.

mod common;

use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let res = std::panic::catch_unwind(|| run(&data));
        assert!(res.is_ok(), "{} fails", path.display());
        n += 1;
    }
    assert!(n > 0, "empty corpus {}", dir.display());
}

#[test]
fn engine_corpus() {
    replay("engine", common::fuzz::engine);
}

#[test]
fn http_request_corpus() {
    replay("http_request", common::fuzz::http_request);
}

#[test]
fn shim_response_corpus() {
    replay("shim_response", common::fuzz::shim_response);
}

#[test]
fn der_corpus() {
    replay("der", common::fuzz::der_validity);
}
