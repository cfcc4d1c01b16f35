//! Engine benchmarks: index + merge + inject of N `default.prom` bodies
//! rendered into a reused buffer, and gzip of the result.
//!
//! `cargo bench --bench engine` (figures in BENCHMARKS.md).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kata_monitor::wire::expo::{Exposition, Filter, Labels};
use kata_monitor::wire::gzip::{GzipEncoder, GzipPump};
use std::hint::black_box;

const BODY: &[u8] = include_bytes!("../tests/fixtures/default.prom");

fn inputs(n: usize) -> Vec<(String, Labels, Vec<u8>)> {
    (0..n)
        .map(|i| {
            let id = format!(
                "{:064x}",
                0xfce4_76c3_a73a_c0bau64.wrapping_mul(i as u64 + 1)
            );
            let uid = format!("293e4a47-6278-466e-ac1a-{i:012x}");
            let name = format!("frontend-mpg89bhm6m-{i:05}");
            let labels = Labels::new([&id, &uid, &name, "default"]);
            (id, labels, BODY.to_vec())
        })
        .collect()
}

/// Render the whole output through `buf`, returning the byte count.
fn drain(expo: &Exposition, buf: &mut [u8]) -> u64 {
    let mut cur = expo.cursor(&Filter::all(), Vec::new());
    let mut total = 0u64;
    loop {
        let n = cur.fill(expo, buf);
        if n == 0 {
            break;
        }
        black_box(&buf[..n]);
        total += n as u64;
    }
    total
}

fn engine(c: &mut Criterion) {
    // Steady state of the daemon: body buffers are recycled between rounds
    // (the socket reads refill them; that copy is not timed here).
    let mut g = c.benchmark_group("index_merge_inject");
    g.sample_size(30);
    let mut buf = vec![0u8; 256 * 1024];
    let mut expo = Exposition::new(0x5eed);
    for n in [1usize, 10, 100] {
        let inp = inputs(n);
        let mut pool: Vec<Vec<u8>> = inp.iter().map(|(_, _, b)| b.clone()).collect();
        g.throughput(Throughput::Bytes((BODY.len() * n) as u64));
        g.bench_function(format!("{n}_sandboxes"), |b| {
            b.iter_custom(|iters| {
                let mut spent = std::time::Duration::ZERO;
                for _ in 0..iters {
                    let t = std::time::Instant::now();
                    expo.clear();
                    for (i, (id, labels, _)) in inp.iter().enumerate() {
                        let body = std::mem::take(&mut pool[i]);
                        pool[i] = expo.add(id, labels.clone(), body);
                    }
                    expo.finish();
                    black_box(drain(&expo, &mut buf));
                    spent += t.elapsed();
                    for (i, s) in expo.sources().iter().enumerate() {
                        pool[i].clear();
                        pool[i].extend_from_slice(s.body());
                    }
                }
                spent
            })
        });
    }
    g.finish();

    // The parts on their own, at 100 sandboxes.
    let mut g = c.benchmark_group("parts_100");
    g.sample_size(30);
    let inp = inputs(100);
    expo.clear();
    for (id, labels, body) in inp.clone() {
        expo.add(&id, labels, body);
    }
    expo.finish();
    let out_len = drain(&expo, &mut buf);
    g.throughput(Throughput::Bytes(out_len));
    g.bench_function("render_only", |b| b.iter(|| drain(&expo, &mut buf)));
    g.throughput(Throughput::Bytes((BODY.len() * 100) as u64));
    let mut idx = kata_monitor::wire::expo::BodyIndex::default();
    let mut scratch = kata_monitor::wire::expo::Scratch::default();
    g.bench_function("index_only", |b| {
        b.iter(|| {
            for (_, labels, body) in &inp {
                // Forget the last body: a full build, not a replay.
                idx.clear();
                idx.build(body, labels, 1, Default::default(), &mut scratch);
            }
            idx.samples
        })
    });
    // The daemon's steady state: each body like the one its index saw last.
    let mut idxs: Vec<_> = (0..inp.len())
        .map(|_| kata_monitor::wire::expo::BodyIndex::default())
        .collect();
    g.bench_function("index_replay", |b| {
        b.iter(|| {
            for (idx, (_, labels, body)) in idxs.iter_mut().zip(&inp) {
                idx.build(body, labels, 1, Default::default(), &mut scratch);
            }
            idxs[0].samples
        })
    });
    g.finish();

    // gzip of the 100-sandbox output, throughput in uncompressed bytes.
    let mut g = c.benchmark_group("gzip_100");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(out_len));
    for level in [1u8, 6] {
        let mut pump = GzipPump::new(GzipEncoder::new(level));
        let mut out = vec![0u8; 256 * 1024];
        g.bench_function(format!("level_{level}"), |b| {
            b.iter(|| {
                pump.reset();
                let mut cur = expo.cursor(&Filter::all(), Vec::new());
                let mut gz = 0u64;
                loop {
                    let n = pump.fill(&mut out, |b| cur.fill(&expo, b));
                    if n == 0 {
                        break;
                    }
                    gz += n as u64;
                }
                gz
            })
        });
    }
    g.finish();
}

criterion_group!(benches, engine);
criterion_main!(benches);
