//! End-to-end benchmark: the release `kata-monitor` against a simulated node
//! of 1, 10 and 100 sandboxes (`default.prom` bodies), scraped over a
//! keep-alive connection the way Prometheus does.
//!
//! Prints, per node size: p50/p90 scrape latency, the monitor's CPU time per
//! scrape (from /proc/<pid>/schedstat, ns resolution, user+sys), idle and
//! peak RSS (VmRSS before the first scrape, VmHWM at the end), and response
//! bytes plain and gzip.
//!
//! `cargo bench --bench e2e` (`-- 100` for one size, `-- --scrapes 50`).

#[path = "../tests/common/node.rs"]
#[allow(dead_code)]
mod node;

use node::{Client, Monitor, Sim};
use std::time::{Duration, Instant};

fn cpu_ns(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/schedstat"))
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

fn status_kb(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next().and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

struct Run {
    p50_ms: f64,
    p90_ms: f64,
    cpu_ms: f64,
    bytes: usize,
}

fn scrape_series(m: &Monitor, gzip: bool, n: usize) -> Run {
    let pid = m.child.id();
    let mut c = Client::connect(m.addr);
    let req = if gzip {
        "GET /metrics HTTP/1.1\r\nHost: b\r\nAccept-Encoding: gzip\r\n\r\n"
    } else {
        "GET /metrics HTTP/1.1\r\nHost: b\r\n\r\n"
    };
    let mut lat = Vec::with_capacity(n);
    let mut bytes = 0;
    // Warm up: buffers, pools, page cache.
    for i in 0..3 {
        c.send(req.as_bytes());
        c.response().expect("response");
        if std::env::var("E2E_DEBUG").is_ok() {
            eprintln!(
                "warmup {i}: rss {} kB hwm {} kB",
                status_kb(pid, "VmRSS:"),
                status_kb(pid, "VmHWM:")
            );
        }
    }
    let cpu0 = cpu_ns(pid);
    for _ in 0..n {
        let t = Instant::now();
        c.send(req.as_bytes());
        let r = c.response().expect("response");
        lat.push(t.elapsed().as_secs_f64() * 1e3);
        assert_eq!(r.status, 200);
        if std::env::var("E2E_DEBUG").is_ok() {
            eprintln!(
                "scrape: {:.1} ms rss {} kB hwm {} kB",
                lat[lat.len() - 1],
                status_kb(pid, "VmRSS:"),
                status_kb(pid, "VmHWM:")
            );
        }
        bytes = r.body.len();
    }
    let cpu = cpu_ns(pid) - cpu0;
    if std::env::var("E2E_DEBUG").is_ok() {
        eprintln!(
            "after {} series: rss {} kB hwm {} kB",
            if gzip { "gzip" } else { "plain" },
            status_kb(pid, "VmRSS:"),
            status_kb(pid, "VmHWM:")
        );
    }
    lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
    Run {
        p50_ms: pct(&lat, 0.5),
        p90_ms: pct(&lat, 0.9),
        cpu_ms: cpu as f64 / 1e6 / n as f64,
        bytes,
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut sizes: Vec<usize> = args
        .iter()
        .enumerate()
        .filter(|(i, _)| *i == 0 || args[i - 1] != "--scrapes")
        .filter_map(|(_, a)| a.parse().ok())
        .collect();
    if sizes.is_empty() {
        sizes = vec![1, 10, 100];
    }
    let scrapes: usize = args
        .iter()
        .position(|a| a == "--scrapes")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    println!(
        "monitor: {} (release); {} scrapes per series, keep-alive, fresh round each",
        node::MONITOR,
        scrapes
    );
    println!(
        "{:>9} | {:>9} {:>9} {:>11} | {:>9} {:>9} {:>11} | {:>9} {:>9} | {:>11} {:>9}",
        "sandboxes",
        "p50 ms",
        "p90 ms",
        "cpu ms/scr",
        "gz p50",
        "gz p90",
        "gz cpu ms",
        "idle RSS",
        "peak RSS",
        "plain B",
        "gzip B"
    );
    for n in sizes {
        let sim = Sim::start(&["--sandboxes", &n.to_string(), "--bodies", "default"]);
        let level = if std::env::var("E2E_LOG_DEBUG").is_ok() {
            "debug"
        } else {
            "info"
        };
        let m = Monitor::start(&sim.roots_arg(), &["--log-level", level]);
        let until = Instant::now() + Duration::from_secs(10);
        while m.get("/sandboxes").text().lines().count() < n {
            assert!(Instant::now() < until, "sandboxes not discovered");
            std::thread::sleep(Duration::from_millis(20));
        }
        let pid = m.child.id();
        let idle = status_kb(pid, "VmRSS:");
        let plain = scrape_series(&m, false, scrapes);
        let gz = scrape_series(&m, true, scrapes);
        let peak = status_kb(pid, "VmHWM:");
        if std::env::var("E2E_LOG_DEBUG").is_ok() {
            for l in m
                .log_text()
                .lines()
                .filter(|l| l.contains("level=warn") || l.contains("still") || l.contains("holder"))
            {
                eprintln!("monitor: {l}");
            }
        }
        println!(
            "{:>9} | {:>9.2} {:>9.2} {:>11.2} | {:>9.2} {:>9.2} {:>11.2} | {:>6} kB {:>6} kB | {:>11} {:>9}",
            n,
            plain.p50_ms,
            plain.p90_ms,
            plain.cpu_ms,
            gz.p50_ms,
            gz.p90_ms,
            gz.cpu_ms,
            idle,
            peak,
            plain.bytes,
            gz.bytes
        );
    }
}
