//! Fuzz target bodies, shared by the cargo-fuzz crate (`fuzz/`) and by
//! `tests/fuzz_corpus.rs`, which replays the committed corpus on stable.

use super::oracle::{Input, build, check_merge, guided_roundtrip, gzip_roundtrip, render};
use kata_monitor::wire::expo::Filter;

/// Input layout: byte 0 picks the chunk size and gzip level (the renderer-led
/// gzip is checked too); the rest is
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
    assert!(
        guided_roundtrip(&expo, 1 + usize::from(cfg) * 251) == out,
        "guided gzip round trip differs"
    );
}

/// Values of the `Content-Length` headers of a head, found by a plain
/// line split (independent of httparse), trimmed of blanks.
fn content_lengths(head: &[u8]) -> Vec<&[u8]> {
    head.split(|&b| b == b'\n')
        .skip(1)
        .filter_map(|line| {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let colon = line.iter().position(|&b| b == b':')?;
            let name = &line[..colon];
            name.eq_ignore_ascii_case(b"content-length").then(|| {
                let v = &line[colon + 1..];
                let blank = |b: &u8| *b == b' ' || *b == b'\t';
                let s = v.iter().position(|b| !blank(b)).unwrap_or(v.len());
                let e = v.iter().rposition(|b| !blank(b)).map_or(s, |e| e + 1);
                &v[s..e.max(s)]
            })
        })
        .collect()
}

/// Every `Content-Length` of an accepted head is digits only and they all
/// agree, with `len` when given (RFC 9110 §8.6; anything laxer is a
/// smuggling vector). A chunked head may carry them too (chunked wins).
fn check_lengths(head: &[u8], len: Option<u64>) {
    let mut seen = len;
    for v in content_lengths(head) {
        assert!(!v.is_empty() && v.iter().all(u8::is_ascii_digit), "{v:?}");
        let n = std::str::from_utf8(v).unwrap().parse::<u64>().unwrap();
        assert!(seen.is_none_or(|s| s == n), "{v:?} vs {seen:?}");
        seen = Some(n);
    }
}

/// A client's request head: never panics; a complete head's length is
/// within the input and the limit; what is accepted has digits-only
/// `Content-Length`s that agree and no dot segment in its path.
pub fn http_request(data: &[u8]) {
    use kata_monitor::wire::http::request::{self, MAX_HEAD};
    match request::parse(data) {
        Ok(Some((req, n))) => {
            assert!(n <= data.len() && n <= MAX_HEAD);
            let _ = request::query_values(&req.query, "filter_family").count();
            let _ = request::query_value(&req.query, "sandbox");
            assert!(!req.target.contains(['\r', '\n', ' ']));
            assert!(!request::has_dot_segment(&req.path), "{:?}", req.path);
            let decoded_target = request::percent_decode(req.target.split('?').next().unwrap());
            assert!(decoded_target.is_none_or(|t| !t.split('/').any(|s| s == "." || s == "..")));
            // Content negotiation picks only what the client allows.
            use request::Coding;
            for (gzip, zstd) in [(true, true), (true, false), (false, true)] {
                match req.accept.choose(gzip, zstd) {
                    Coding::Identity => {
                        assert!(!(gzip && req.accept.allows(Coding::Gzip)));
                        assert!(!(zstd && req.accept.allows(Coding::Zstd)));
                    }
                    c => assert!(req.accept.allows(c) && (c != Coding::Gzip || gzip)),
                }
            }
            check_lengths(&data[..n], Some(req.body_len));
            if content_lengths(&data[..n]).is_empty() {
                assert_eq!(req.body_len, 0);
            }
        }
        Ok(None) => assert!(data.len() <= MAX_HEAD),
        Err(_) => {}
    }
}

/// A shim's response fed in pieces (sizes from the first byte), decoded in
/// place: never panics, positions stay ordered, the body cap holds, and an
/// accepted head's `Content-Length`s are digits only and say its length.
pub fn shim_response(data: &[u8]) {
    use kata_monitor::wire::http::client::{BodyFraming, Decoder, parse_head};
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
            let (h, n) = match parse_head(&buf[..filled]) {
                Ok(Some(head)) => head,
                Ok(None) => continue,
                Err(_) => return,
            };
            let len = match h.framing {
                BodyFraming::Length(l) => Some(l),
                _ => None,
            };
            check_lengths(&wire[..n], len);
            match Decoder::new(h.framing, limit) {
                Ok(d) => {
                    dec = n;
                    raw = n;
                    state = Some(d);
                }
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
/// the validity reader never panics, and any date it returns lies in what
/// the two time forms can spell: UTCTime 1950-2049, GeneralizedTime
/// 0000-9999 (0000-01-01 to 9999-12-31T23:59:59Z).
pub fn der_validity(data: &[u8]) {
    if let Some(v) = kata_monitor::wire::der::validity(data) {
        let range = -62_167_219_200..=253_402_300_799;
        assert!(range.contains(&v.not_before), "{v:?}");
        assert!(range.contains(&v.not_after), "{v:?}");
    }
}
