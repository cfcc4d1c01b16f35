//! Profiling helper: one /metrics response of a node of N copies of a body,
//! plain or through a compressor, in a loop (callgrind: `ITERS=1`).
//!
//! `profile_gzip MODE [N] [ITERS] [BODY]` with MODE one of `plain`,
//! `miniz1`, `miniz6`, `guided`, `zstd`, or `all` (sizes and times of each).
//! `NOCRI=1`: empty CRI labels (a node without a CRI, like the e2e bench);
//! `HEAD=FILE`: the monitor's own metrics to lead the response.
use kata_monitor::wire::deflate::GzipStream;
use kata_monitor::wire::expo::{Exposition, Filter, Labels};
use kata_monitor::wire::gzip::{GzipEncoder, GzipPump};
use std::time::Instant;

fn node(body: &[u8], n: usize) -> Exposition {
    let nocri = std::env::var_os("NOCRI").is_some();
    let mut expo = Exposition::new(5);
    for i in 0..n {
        // 64 hex digits that look random, as sandbox ids do.
        let mut x = (i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let id: String = (0..4)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                format!("{x:016x}")
            })
            .collect();
        // A random UUID; pods of ten deployments (a shared replica-set
        // hash, a random 5-character suffix), a few namespaces.
        let mut r = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let (a, b) = (r(), r());
        let uid = format!(
            "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            b >> 52,
            b & 0xffff_ffff_ffff
        );
        let app = ["frontend", "cart", "checkout", "payments", "search"][i % 5];
        let suffix: String = (0..5)
            .map(|k| (b'a' + ((b >> (5 * k)) % 26) as u8) as char)
            .collect();
        let name = format!("{app}-{:010x}-{suffix}", (i % 10) * 0x9e37_79b9);
        let ns = ["default", "shop", "kube-system"][i % 3];
        let labels = if nocri {
            Labels::new([&id, "", "", ""])
        } else {
            Labels::new([&id, &uid, &name, ns])
        };
        expo.add(&id, labels, body.to_vec());
    }
    expo.finish();
    expo
}

/// Bytes of one response in `mode`.
fn respond(mode: &str, expo: &Exposition, out: &mut [u8]) -> usize {
    let head = std::env::var_os("HEAD")
        .map(|p| std::fs::read(p).expect("HEAD file"))
        .unwrap_or_default();
    let mut cur = expo.cursor(&Filter::all(), head);
    let mut total = 0;
    match mode {
        "plain" => loop {
            let k = cur.fill(expo, out);
            if k == 0 {
                break;
            }
            total += k;
        },
        "miniz1" | "miniz6" => {
            let level = if mode == "miniz1" { 1 } else { 6 };
            let mut pump = GzipPump::new(GzipEncoder::new(level));
            loop {
                let k = pump.fill(out, |b| cur.fill(expo, b));
                if k == 0 {
                    break;
                }
                total += k;
            }
        }
        "guided" => {
            let mut s = GzipStream::default();
            loop {
                let k = s.fill(out, |b, h| cur.fill_marked(expo, b, h));
                if k == 0 {
                    break;
                }
                total += k;
            }
        }
        #[cfg(feature = "zstd")]
        "zstd" => {
            let mut pump = kata_monitor::wire::zstd::ZstdPump::new(1);
            loop {
                let k = pump.fill(out, |b| cur.fill(expo, b));
                if k == 0 {
                    break;
                }
                total += k;
            }
        }
        _ => panic!("unknown mode {mode}"),
    }
    total
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mode = args.get(1).map_or("all", String::as_str);
    let n: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(100);
    let iters: usize = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(5);
    let body = match args.get(4) {
        Some(p) => std::fs::read(p).expect("body file"),
        None => include_bytes!("../tests/fixtures/default.prom").to_vec(),
    };
    let expo = node(&body, n);
    let mut out = vec![0u8; 64 * 1024];
    let modes: Vec<&str> = if mode == "all" {
        vec!["plain", "miniz1", "miniz6", "guided", "zstd"]
    } else {
        vec![mode]
    };
    for m in modes {
        let t = Instant::now();
        let mut bytes = 0;
        for _ in 0..iters {
            bytes = respond(m, &expo, &mut out);
        }
        let ms = t.elapsed().as_secs_f64() * 1e3 / iters as f64;
        println!("{m:>7}: {bytes:>10} bytes, {ms:7.2} ms per response");
    }
}
