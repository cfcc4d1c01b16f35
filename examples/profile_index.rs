//! Profiling helper: index `default.prom` N times in a loop (`profile_index
//! N`), each time in full; `profile_index N replay` keeps the index between
//! builds, so all but the first replay (the daemon's steady state).
//! `CARGO_PROFILE_RELEASE_DEBUG=true CARGO_PROFILE_RELEASE_STRIP=false cargo run --release --example profile_index`
use kata_monitor::wire::expo::{BodyIndex, Labels};
fn main() {
    let body = include_bytes!("../tests/fixtures/default.prom");
    let labels = Labels::new([
        "fce476c3a73ac0ba86c813ffb473e483f492fc51c868625b368060adc1cec9ea",
        "293e4a47-6278-466e-ac1a-5df72b66b6cf",
        "frontend-mpg89bhm6m-rq4sv",
        "default",
    ]);
    let mut idx = BodyIndex::default();
    let mut sc = kata_monitor::wire::expo::Scratch::default();
    let iters: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20_000);
    let replay = std::env::args().nth(2).as_deref() == Some("replay");
    let t = std::time::Instant::now();
    let mut s = 0u64;
    for _ in 0..iters {
        if !replay {
            // Forget the last body: a full build.
            idx.clear();
        }
        idx.build(body, &labels, 1, Default::default(), &mut sc);
        s += u64::from(idx.samples);
    }
    let el = t.elapsed();
    println!(
        "{s} samples, {:.1} us/body, {:.0} MB/s",
        el.as_secs_f64() * 1e6 / iters as f64,
        (body.len() * iters) as f64 / el.as_secs_f64() / 1e6
    );
}
