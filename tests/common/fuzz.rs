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

/// A client's request head: never panics; a complete head's length is
/// within the input and the limit.
pub fn http_request(data: &[u8]) {
    use kata_monitor::wire::http::request::{self, MAX_HEAD};
    match request::parse(data) {
        Ok(Some((req, n))) => {
            assert!(n <= data.len() && n <= MAX_HEAD);
            let _ = request::query_values(&req.query, "filter_family").count();
            let _ = request::query_value(&req.query, "sandbox");
            assert!(!req.target.contains(['\r', '\n', ' ']));
        }
        Ok(None) => assert!(data.len() <= MAX_HEAD),
        Err(_) => {}
    }
}

/// A shim's response fed in pieces (sizes from the first byte), decoded in
/// place: never panics, positions stay ordered, the body cap holds.
pub fn shim_response(data: &[u8]) {
    use kata_monitor::wire::http::client::{Decoder, parse_head};
    let Some((&cfg, wire)) = data.split_first() else {
        return;
    };
    let step = usize::from(cfg % 61) + 1;
    let limit = 512 + u64::from(cfg) * 7;
    let mut buf = wire.to_vec();
    let mut state: Option<Decoder> = None;
    let (mut dec, mut raw) = (0, 0);
    let mut filled = 0;
    while filled < wire.len() {
        filled = (filled + step).min(wire.len());
        if state.is_none() {
            match parse_head(&buf[..filled]) {
                Ok(Some((h, n))) => match Decoder::new(h.framing, limit) {
                    Ok(d) => {
                        dec = n;
                        raw = n;
                        state = Some(d);
                    }
                    Err(_) => return,
                },
                Ok(None) => continue,
                Err(_) => return,
            }
        }
        let d = state.as_mut().expect("set above");
        match d.decode(&mut buf, &mut dec, &mut raw, filled) {
            Ok(done) => {
                assert!(dec <= raw && raw <= filled);
                assert!(d.total() <= limit);
                if done {
                    return;
                }
            }
            Err(_) => return,
        }
    }
    if let Some(mut d) = state {
        let _ = d.eof();
    }
}

/// A certificate file's bytes (what an operator points --tls-cert-file at):
/// the validity reader never panics, and any date it returns is a real
/// one between 1950 and 9999.
pub fn der_validity(data: &[u8]) {
    if let Some(v) = kata_monitor::wire::der::validity(data) {
        let range = -631_152_000..=253_402_300_799;
        assert!(range.contains(&v.not_before), "{v:?}");
        assert!(range.contains(&v.not_after), "{v:?}");
    }
}
