//! End-to-end benchmark: the release `kata-monitor` against simulated nodes
//! (`kata-sim`, `default.prom` bodies) of 1, 10, 100 and 1000 sandboxes,
//! scraped over a keep-alive connection the way Prometheus does.
//!
//! `cargo bench --bench e2e` prints, per node size: p50/p90 scrape latency,
//! the monitor's CPU time per scrape (every thread's `schedstat`, ns
//! resolution, user+sys; a final line cross-checks the totals against
//! `/proc/<pid>/stat` utime+stime), idle and peak RSS (VmRSS before the first
//! scrape, VmHWM at the end), and response bytes plain, gzip and zstd.
//!
//! Options: sizes as plain numbers (`-- 100`), `--scrapes N` (per series),
//! `--rounds N` (interleaved rounds, with `--baseline`), `--monitor PATH`
//! (another build, such as the static musl binary that ships:
//! `deploy/build-static.sh` makes it).
//!
//! `-- --baseline CMD` runs a baseline monitor beside this one on the same
//! node, interleaved, and prints both values and their ratio per figure
//! (see `baseline`): CMD takes this monitor's flag spelling, as
//! `../shared/peers/go-kata-monitor/run-go.sh` (upstream's Go kata-monitor)
//! does.
//!
//! `-- --cri` measures the CRI client instead (see `cri`).

#[path = "../../tests/common"]
#[allow(dead_code)]
mod common {
    pub mod cri_client;
    pub mod decode;
    pub mod fake_cri;
    pub mod go_peer;
    pub mod node;
    pub mod peer;
}
mod baseline;
mod cri;
mod measure;

use common::node::{self, Monitor, Sim};
use measure::{cpu_ns, scrape_series, stat_cpu_ms, status_kb};
use std::time::{Duration, Instant};

/// Command line.
pub struct Opts {
    pub sizes: Vec<usize>,
    /// Scrapes per series; `None`: per size (`scrapes_for`).
    pub scrapes: Option<usize>,
    pub rounds: Option<usize>,
    pub monitor: String,
    pub baseline: Option<String>,
}

impl Opts {
    fn parse() -> (Opts, bool) {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let value = |flag: &str| {
            args.iter()
                .position(|a| a == flag)
                .and_then(|i| args.get(i + 1))
                .cloned()
        };
        let takes_value = ["--scrapes", "--rounds", "--monitor", "--baseline"];
        let mut sizes: Vec<usize> = args
            .iter()
            .enumerate()
            .filter(|(i, _)| *i == 0 || !takes_value.contains(&args[i - 1].as_str()))
            .filter_map(|(_, a)| a.parse().ok())
            .collect();
        if sizes.is_empty() {
            sizes = vec![1, 10, 100, 1000];
        }
        let opts = Opts {
            sizes,
            scrapes: value("--scrapes").and_then(|v| v.parse().ok()),
            rounds: value("--rounds").and_then(|v| v.parse().ok()),
            monitor: value("--monitor").unwrap_or_else(|| node::MONITOR.to_string()),
            baseline: value("--baseline"),
        };
        (opts, args.iter().any(|a| a == "--cri"))
    }

    /// Scrapes per series at `n` sandboxes: fewer where a scrape is long
    /// (the Go monitor takes ~5 s of CPU per scrape at 1000).
    pub fn scrapes_for(&self, n: usize) -> usize {
        self.scrapes.unwrap_or(match n {
            0..=10 => 30,
            11..=100 => 10,
            _ => 3,
        })
    }

    pub fn rounds_for(&self, n: usize) -> usize {
        self.rounds.unwrap_or(if n >= 1000 { 1 } else { 3 })
    }

    pub fn warmup_for(n: usize) -> usize {
        if n >= 1000 { 1 } else { 3 }
    }
}

fn main() {
    let (opts, cri) = Opts::parse();
    if cri {
        cri::cri_section(opts.scrapes.unwrap_or(40));
        return;
    }
    match &opts.baseline {
        Some(cmd) => baseline::run(&opts, cmd),
        None => single(&opts),
    }
}

/// A node of `n` `default.prom` sandboxes.
pub fn node(n: usize) -> Sim {
    Sim::start(&["--sandboxes", &n.to_string(), "--bodies", "default"])
}

/// `bin` on `sim`'s roots with `extra` flags, once it lists every sandbox.
pub fn monitor(bin: &str, sim: &Sim, extra: &[&str]) -> Monitor {
    let level = if std::env::var("E2E_LOG_DEBUG").is_ok() {
        "debug"
    } else {
        "info"
    };
    let roots = sim.roots_arg();
    let mut args = vec![
        "--listen-address",
        "127.0.0.1:0",
        "--sandbox-dirs",
        &roots,
        "--log-level",
        level,
    ];
    args.extend_from_slice(extra);
    let m = Monitor::start_bin(bin, &args);
    wait_listed(&m, sim.ids.len());
    m
}

pub fn wait_listed(m: &Monitor, n: usize) {
    let until = Instant::now() + Duration::from_secs(30);
    while m.get("/sandboxes").text().lines().count() < n {
        assert!(Instant::now() < until, "sandboxes not discovered");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// This monitor alone: the table BENCHMARKS.md's end-to-end section shows.
fn single(opts: &Opts) {
    println!(
        "monitor: {}; keep-alive, fresh round each scrape; load avg {:.1}",
        opts.monitor,
        measure::loadavg()
    );
    println!(
        "{:>9} | {:>7} | {:>9} {:>9} {:>11} | {:>9} {:>9} {:>11} | {:>9} {:>11} | {:>9} {:>9} | {:>11} {:>9} {:>9}",
        "sandboxes",
        "scrapes",
        "p50 ms",
        "p90 ms",
        "cpu ms/scr",
        "gz p50",
        "gz p90",
        "gz cpu ms",
        "zstd p50",
        "zstd cpu ms",
        "idle RSS",
        "peak RSS",
        "plain B",
        "gzip B",
        "zstd B"
    );
    let mut cross_check = Vec::new();
    for &n in &opts.sizes {
        let sim = node(n);
        let m = monitor(&opts.monitor, &sim, &[]);
        let (pid, scrapes, warmup) = (m.child.id(), opts.scrapes_for(n), Opts::warmup_for(n));
        let idle = status_kb(pid, "VmRSS:");
        let (stat0, sched0) = (stat_cpu_ms(pid), cpu_ns(pid));
        let plain = scrape_series(m.addr, pid, "identity", scrapes, warmup, false);
        let gz = scrape_series(m.addr, pid, "gzip", scrapes, warmup, false);
        let zs = scrape_series(m.addr, pid, "zstd", scrapes, warmup, false);
        let (stat1, sched1) = (stat_cpu_ms(pid), cpu_ns(pid));
        cross_check.push((n, stat1 - stat0, (sched1 - sched0) as f64 / 1e6));
        let peak = status_kb(pid, "VmHWM:");
        if std::env::var("E2E_LOG_DEBUG").is_ok() {
            for l in m.log_text().lines().filter(|l| l.contains("level=warn")) {
                eprintln!("monitor: {l}");
            }
        }
        println!(
            "{:>9} | {:>7} | {:>9.2} {:>9.2} {:>11.2} | {:>9.2} {:>9.2} {:>11.2} | {:>9.2} {:>11.2} | {:>6} kB {:>6} kB | {:>11} {:>9} {:>9}",
            n,
            scrapes,
            plain.p50_ms,
            plain.p90_ms,
            plain.cpu_ms,
            gz.p50_ms,
            gz.p90_ms,
            gz.cpu_ms,
            zs.p50_ms,
            zs.cpu_ms,
            idle,
            peak,
            plain.bytes,
            gz.bytes,
            zs.bytes
        );
    }
    for (n, stat, sched) in cross_check {
        println!(
            "cross-check, {n} sandboxes, all scrapes incl. warm-up: /proc/pid/stat {stat:.0} ms, schedstat {sched:.1} ms"
        );
    }
}
