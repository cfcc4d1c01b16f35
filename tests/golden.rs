//! Golden test: upstream Go kata-monitor's output for `default.prom` is
//! reproduced byte for byte (the file was produced by upstream's expfmt-based
//! pipeline: parse, append the four labels, rename go_/process_, sort).

use kata_monitor::wire::expo::{Exposition, Filter, Labels};

const BODY: &[u8] = include_bytes!("fixtures/default.prom");
const GOLDEN: &[u8] = include_bytes!("fixtures/default.monitor.prom");
const LABELS: [&str; 4] = [
    "fce476c3a73ac0ba86c813ffb473e483f492fc51c868625b368060adc1cec9ea",
    "293e4a47-6278-466e-ac1a-5df72b66b6cf",
    "frontend-mpg89bhm6m-rq4sv",
    "default",
];

fn render(chunk: usize) -> Vec<u8> {
    let mut expo = Exposition::new(0x1234);
    expo.add(LABELS[0], Labels::new(LABELS), BODY.to_vec());
    expo.finish();
    let mut cur = expo.cursor(&Filter::all(), Vec::new());
    let total = cur.len() as usize;
    let mut out = Vec::with_capacity(total);
    let mut buf = vec![0u8; chunk];
    loop {
        let n = cur.fill(&expo, &mut buf);
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    assert!(cur.is_done());
    assert_eq!(
        out.len(),
        total,
        "Content-Length must match the bytes produced"
    );
    out
}

#[test]
fn golden_default_body_matches_upstream_byte_for_byte() {
    let out = render(64 * 1024);
    if out != GOLDEN {
        let pos = out
            .iter()
            .zip(GOLDEN)
            .position(|(a, b)| a != b)
            .unwrap_or(out.len().min(GOLDEN.len()));
        let from = pos.saturating_sub(200);
        panic!(
            "differs at byte {pos} (len {} vs {}):\nours:   {}\ngolden: {}",
            out.len(),
            GOLDEN.len(),
            String::from_utf8_lossy(&out[from..(pos + 200).min(out.len())]),
            String::from_utf8_lossy(&GOLDEN[from..(pos + 200).min(GOLDEN.len())]),
        );
    }
}

#[test]
fn golden_is_independent_of_chunk_size() {
    for chunk in [1, 2, 3, 7, 64, 185, 186, 187, 4096] {
        assert!(render(chunk) == GOLDEN, "chunk size {chunk}");
    }
}
