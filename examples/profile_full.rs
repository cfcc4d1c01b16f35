//! Profiling helper: the full engine pipeline at 100 sandboxes, in a loop.
use kata_monitor::wire::expo::{Exposition, Filter, Labels};
fn main() {
    let body = include_bytes!("../tests/fixtures/default.prom");
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100);
    let iters: usize = std::env::args()
        .nth(2)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200);
    let mut expo = Exposition::new(5);
    let mut pool: Vec<Vec<u8>> = (0..n).map(|_| body.to_vec()).collect();
    let ids: Vec<String> = (0..n).map(|i| format!("{:064x}", i * 7919)).collect();
    let mut buf = vec![0u8; 256 * 1024];
    let (mut t_add, mut t_fin, mut t_ren) = (0f64, 0f64, 0f64);
    let mut total = 0u64;
    for _ in 0..iters {
        let t0 = std::time::Instant::now();
        expo.clear();
        for (i, id) in ids.iter().enumerate() {
            let b = std::mem::take(&mut pool[i]);
            pool[i] = expo.add(
                id,
                Labels::new([
                    id,
                    "293e4a47-6278-466e-ac1a-5df72b66b6cf",
                    "frontend-mpg89bhm6m-rq4sv",
                    "default",
                ]),
                b,
            );
        }
        let t1 = std::time::Instant::now();
        expo.finish();
        let t2 = std::time::Instant::now();
        let mut cur = expo.cursor(&Filter::all(), Vec::new());
        loop {
            let k = cur.fill(&expo, &mut buf);
            if k == 0 {
                break;
            }
            total += k as u64;
        }
        let t3 = std::time::Instant::now();
        t_add += (t1 - t0).as_secs_f64();
        t_fin += (t2 - t1).as_secs_f64();
        t_ren += (t3 - t2).as_secs_f64();
        // give the bodies back for the next round
        for (i, s) in expo.sources().iter().enumerate() {
            pool[i].clear();
            pool[i].extend_from_slice(s.body());
        }
    }
    let k = iters as f64 * 1e-3;
    println!(
        "{} bytes/iter; add {:.2} ms, finish {:.2} ms, render {:.2} ms",
        total / iters as u64,
        t_add / k,
        t_fin / k,
        t_ren / k
    );
}
