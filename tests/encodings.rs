//! Every content coding of `/metrics` (the renderer-led gzip, miniz's gzip,
//! zstd) decodes, with an independent decoder (Debian's `gzip` and `zstd`
//! tools), to exactly the plain output: for the
//! shared samples and for generated node shapes, through the same pumps and
//! cursor the daemon streams with, at odd buffer sizes.

mod common;

use common::decode::{decode_with, decoder};
use kata_monitor::state::body::Pump;
use kata_monitor::wire::expo::{Exposition, Filter, Labels};
use kata_monitor::wire::gzip::{GzipEncoder, GzipPump};
#[cfg(feature = "zstd")]
use kata_monitor::wire::zstd::ZstdPump;
use proptest::prelude::*;
use std::path::PathBuf;

const SAMPLES: [(&str, &[u8]); 6] = [
    ("default", include_bytes!("fixtures/default.prom")),
    ("edge", include_bytes!("fixtures/edge.prom")),
    ("large", include_bytes!("fixtures/large.prom")),
    (
        "rs-dragonball",
        include_bytes!("fixtures/rs-dragonball.prom"),
    ),
    ("rs-edge", include_bytes!("fixtures/rs-edge.prom")),
    ("small", include_bytes!("fixtures/small.prom")),
];

fn node(bodies: &[Vec<u8>], seed: u64) -> Exposition {
    let mut expo = Exposition::new(seed);
    for (i, b) in bodies.iter().enumerate() {
        let id = format!(
            "{:064x}",
            (i as u128 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)
        );
        let uid = format!("{i:08x}-6278-466e-ac1a-{:012x}", i * 7919);
        let name = format!("pod-{i}");
        expo.add(&id, Labels::new([&id, &uid, &name, "default"]), b.clone());
    }
    expo.finish();
    expo
}

/// The codings under test: (name, fresh pump).
fn pumps() -> Vec<(&'static str, Pump)> {
    vec![
        ("gzip", Pump::Guided(Box::default())),
        ("gzip", Pump::Gzip(GzipPump::new(GzipEncoder::new(1)))),
        ("gzip", Pump::Gzip(GzipPump::new(GzipEncoder::new(6)))),
        #[cfg(feature = "zstd")]
        ("zstd", Pump::Zstd(ZstdPump::new(1))),
        #[cfg(feature = "zstd")]
        ("zstd", Pump::Zstd(ZstdPump::new(3))),
    ]
}

/// Stream the exposition through `pump` as the daemon does, `out_len` bytes
/// of output at a time.
fn encode(pump: &mut Pump, expo: &Exposition, head: &[u8], out_len: usize) -> Vec<u8> {
    let mut cursor = expo.cursor(&Filter::all(), head.to_vec());
    let mut out = vec![0u8; out_len];
    let mut enc = Vec::new();
    loop {
        let n = pump.fill(&mut out, &mut cursor, expo);
        if n == 0 {
            break;
        }
        enc.extend_from_slice(&out[..n]);
    }
    assert!(cursor.is_done());
    enc
}

struct Decoders {
    gzip: PathBuf,
    zstd: PathBuf,
}

fn decoders() -> Option<Decoders> {
    Some(Decoders {
        gzip: decoder("gzip")?,
        zstd: decoder("zstd")?,
    })
}

/// Each coding of `expo` decodes to its plain rendering.
fn check_all(d: &Decoders, expo: &Exposition, head: &[u8], out_len: usize, what: &str) {
    let plain = {
        let mut c = expo.cursor(&Filter::all(), head.to_vec());
        let mut v = vec![0u8; c.len() as usize];
        let mut w = 0;
        loop {
            let n = c.fill(expo, &mut v[w..]);
            if n == 0 {
                break;
            }
            w += n;
        }
        assert_eq!(w, v.len());
        v
    };
    for (coding, mut pump) in pumps() {
        // Twice: the second round reuses the reset pump, as the daemon's pool does.
        for round in 0..2 {
            let enc = encode(&mut pump, expo, head, out_len);
            let tool = if coding == "gzip" { &d.gzip } else { &d.zstd };
            let dec = decode_with(tool, &enc);
            assert!(
                dec == plain,
                "{what}: {coding} round {round} decodes to {} bytes, plain is {}",
                dec.len(),
                plain.len()
            );
            pump.reset();
        }
    }
}

#[test]
fn shared_samples_decode_to_the_plain_text() {
    let Some(d) = decoders() else { return };
    for (name, body) in SAMPLES {
        for n in [1, 9] {
            let expo = node(&vec![body.to_vec(); n], 7);
            check_all(&d, &expo, b"", 65536, &format!("{name} x{n}"));
        }
    }
    // A mixed node with the monitor's own metrics leading.
    let bodies: Vec<Vec<u8>> = (0..24).map(|i| SAMPLES[i % 6].1.to_vec()).collect();
    let expo = node(&bodies, 3);
    let head = include_bytes!("fixtures/default.monitor.prom");
    for out_len in [1 << 16, 4093, 17] {
        check_all(&d, &expo, head, out_len, &format!("mixed, out {out_len}"));
    }
}

#[test]
fn an_empty_node_decodes_to_nothing() {
    let Some(d) = decoders() else { return };
    check_all(&d, &node(&[], 1), b"", 100, "empty");
}

/// A shim body from generated families: each line picks a family, a label
/// value and a number; some lines repeat the body's earlier ones (the shape
/// compressors exploit), some are long.
fn body() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec((0usize..12, 0u32..40, any::<u64>(), 0usize..3), 0..200).prop_map(
        |lines| {
            let mut b = String::new();
            for (f, v, x, kind) in lines {
                let name = format!("fam_{f}");
                if f % 3 == 0 {
                    b.push_str(&format!("# TYPE {name} gauge\n"));
                }
                match kind {
                    0 => b.push_str(&format!("{name}{{v=\"{v}\"}} {x}\n")),
                    1 => b.push_str(&format!(
                        "{name}{{v=\"{v}\",long=\"{}\"}} {}\n",
                        "x".repeat((x % 300) as usize),
                        x as f64 / 7.0
                    )),
                    _ => b.push_str(&format!("{name} {}\n", x % 1000)),
                }
            }
            b.into_bytes()
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn generated_nodes_decode_to_the_plain_text(
        bodies in prop::collection::vec(body(), 0..12),
        seed in any::<u64>(),
        out_len in prop_oneof![Just(1usize << 16), 1usize..5000],
    ) {
        let Some(d) = decoders() else { return Ok(()) };
        let expo = node(&bodies, seed);
        check_all(&d, &expo, b"# own\nm 1\n", out_len, "generated");
    }
}
