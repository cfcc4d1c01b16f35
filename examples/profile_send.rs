//! Profiling helper: render the 100-sandbox output into chunks (64 KiB, or
//! the second argument in KiB) and send each over loopback TCP to a reader
//! thread, as the daemon does. Prints the sending thread's CPU per
//! iteration, and the wall time spent rendering and sending. Rendering here
//! costs ~3x what it costs without the sends (`examples/profile_full`): the
//! output's trip through the kernel evicts the bodies from the caches.
//! `cargo run --release --example profile_send -- 40 64`
use kata_monitor::wire::expo::{Exposition, Filter, Labels};
use std::io::{Read, Write};
fn thread_cpu_ms() -> f64 {
    // schedstat is only brought up to date at scheduling points: yield first.
    std::thread::yield_now();
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap();
    s.split_whitespace().next().unwrap().parse::<f64>().unwrap() / 1e6
}
fn main() {
    let body = include_bytes!("../tests/fixtures/default.prom");
    let n = 100;
    let iters: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(50);
    let mut expo = Exposition::new(5);
    let ids: Vec<String> = (0..n).map(|i| format!("{:064x}", i * 7919)).collect();
    for id in &ids {
        expo.add(id, Labels::new([id, "", "", ""]), body.to_vec());
    }
    expo.finish();
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut c = std::net::TcpStream::connect(addr).unwrap();
        let mut b = vec![0u8; 65536];
        while c.read(&mut b).unwrap() > 0 {}
    });
    let (mut s, _) = l.accept().unwrap();
    s.set_nodelay(true).unwrap();
    let kb: usize = std::env::args()
        .nth(2)
        .and_then(|a| a.parse().ok())
        .unwrap_or(64);
    let mut buf = vec![0u8; kb * 1024];
    let (mut r_ns, mut s_ns) = (0u128, 0u128);
    let t0 = thread_cpu_ms();
    for _ in 0..iters {
        let mut cur = expo.cursor(&Filter::all(), Vec::new());
        loop {
            let t = std::time::Instant::now();
            let k = cur.fill(&expo, &mut buf);
            r_ns += t.elapsed().as_nanos();
            if k == 0 {
                break;
            }
            let t = std::time::Instant::now();
            s.write_all(&buf[..k]).unwrap();
            s_ns += t.elapsed().as_nanos();
        }
    }
    let cpu = thread_cpu_ms() - t0;
    println!(
        "per iteration: cpu {:.2} ms, render wall {:.2} ms, send wall {:.2} ms",
        cpu / iters as f64,
        r_ns as f64 / 1e6 / iters as f64,
        s_ns as f64 / 1e6 / iters as f64
    );
}
