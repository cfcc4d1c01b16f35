//! Fuzz target bodies, shared by the cargo-fuzz crate (`fuzz/`) and by
//! `tests/fuzz_corpus.rs`, which replays the committed corpus on stable.

use super::oracle::{Input, build, check_merge, gzip_roundtrip, render};
use kata_monitor::wire::expo::Filter;

/// Input layout: byte 0 picks the chunk size and gzip level; the rest is
/// split on 0x1e into up to 3 bodies (sandboxes `s0`..`s2`).
pub fn engine(data: &[u8]) {
    let Some((&cfg, rest)) = data.split_first() else {
        return;
    };
    let inputs: Vec<Input> = rest
        .split(|&b| b == 0x1e)
        .take(3)
        .enumerate()
        .map(|(i, body)| Input::new(&format!("s{i}"), "u\"id", "n\\ame", "ns\n", body))
        .collect();
    let expo = build(&inputs, u64::from(cfg) * 0x9e37);
    let chunk = [1usize, 3, 64, 4096, 1 << 16][usize::from(cfg % 5)];
    let out = render(&expo, &Filter::all(), b"", chunk);
    if let Err(e) = check_merge(&inputs, &expo, &out, false) {
        panic!("{e}");
    }
    let level = [0u8, 1, 6][usize::from(cfg / 5 % 3)];
    assert!(
        gzip_roundtrip(
            &out,
            level,
            1 + usize::from(cfg) * 97,
            1 + usize::from(cfg) * 13
        ) == out,
        "gzip round trip differs"
    );
}
