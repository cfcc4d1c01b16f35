//! `--baseline CMD`: a baseline monitor (upstream's Go kata-monitor through
//! `run-go.sh`) and this one side by side on the same simulated node.
//!
//! Per node size, three processes watch the same `kata-sim` node: the
//! baseline, this monitor with its default gzip (`--gzip-level auto`, the
//! renderer-led encoder), and this monitor with `--gzip-level 6` (miniz at
//! Go's level), so gzip is compared at equal level too; the default one also answers a series with `Accept-Encoding: zstd`
//! (compared with Go's gzip, what Go serves Prometheus). Series of scrapes alternate between them in rounds (the order
//! flips every round), so both see the same machine load; a series starts
//! with a warm-up scrape that is not measured. Per figure, both values and
//! their ratio (baseline / this) are printed as Markdown table rows.
//!
//! "Series returned" counts, per scrape, the shim series carrying
//! `sandbox_id` and the sandboxes they name: upstream gives up on a shim
//! after 3 s, so on a busy machine at 1000 sandboxes it answers without
//! some of them.

use crate::common::go_peer;
use crate::common::node::Monitor;
use crate::measure::{self, Run, cpu_ns, median, pct, scrape_series, stat_cpu_ms, status_kb};
use crate::{Opts, monitor, node, wait_listed};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The measured series of one process and encoding, over all rounds.
#[derive(Default)]
struct Acc {
    lat: Vec<f64>,
    /// CPU per scrape of each round's series.
    cpu: Vec<f64>,
    bytes: usize,
    series: Vec<(usize, usize)>,
}

impl Acc {
    fn add(&mut self, r: Run) {
        self.lat.extend(r.lat_ms);
        self.cpu.push(r.cpu_ms);
        self.bytes = r.bytes;
        self.series.extend(r.series);
    }

    fn p(&self, q: f64) -> f64 {
        let mut v = self.lat.clone();
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        pct(&v, q)
    }

    fn cpu(&self) -> f64 {
        median(self.cpu.clone())
    }

    /// Median and minimum of series (`which` 0) or sandboxes (1) per scrape.
    fn returned(&self, which: usize) -> (f64, usize) {
        let v: Vec<usize> = self
            .series
            .iter()
            .map(|s| if which == 0 { s.0 } else { s.1 })
            .collect();
        let med = median(v.iter().map(|&x| x as f64).collect());
        (med, v.iter().copied().min().unwrap_or(0))
    }
}

/// `cmd` as given, or, a relative path that is not there, found from an
/// ancestor of the working directory: `../shared/...` names the same file
/// from a worktree nested deeper than CI's clone.
fn resolve(cmd: &str) -> PathBuf {
    let p = Path::new(cmd);
    if p.exists() || p.is_absolute() {
        return p.to_path_buf();
    }
    let cwd = std::env::current_dir().unwrap_or_default();
    cwd.ancestors()
        .map(|a| a.join(p))
        .find(|c| c.exists())
        .unwrap_or_else(|| p.to_path_buf())
}

pub fn run(opts: &Opts, cmd: &str) {
    let started = Instant::now();
    let cmd = resolve(cmd);
    assert!(cmd.exists(), "baseline {} not found", cmd.display());
    let cmd = cmd.to_str().expect("a UTF-8 path");
    println!(
        "baseline: {cmd}\nthis: {} (and the same with --gzip-level 6)\n\
         {} CPUs; load avg {:.1} at start; ratio = baseline / this",
        opts.monitor,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        measure::loadavg()
    );
    for &n in &opts.sizes {
        size(opts, cmd, n);
    }
    println!(
        "\nfull run: {:.0} s, load avg {:.1} at the end",
        started.elapsed().as_secs_f64(),
        measure::loadavg()
    );
}

/// Series: 0 baseline plain, 1 ours plain, 2 baseline gzip, 3 ours gzip
/// (level 1), 4 ours gzip level 6, 5 ours zstd (level 1).
const NAMES: [&str; 6] = [
    "base",
    "ours",
    "base gz",
    "ours gz",
    "ours gz6",
    "ours zstd",
];
/// The `Accept-Encoding` of each series.
const CODINGS: [&str; 6] = ["identity", "identity", "gzip", "gzip", "gzip", "zstd"];

fn size(opts: &Opts, cmd: &str, n: usize) {
    let t0 = Instant::now();
    let sim = node(n);
    let roots = sim.roots_arg();
    let base = go_peer::start(
        Path::new(cmd),
        &["--sandbox-dirs", &roots, "--log-level", "info"],
    );
    wait_listed(&base, n);
    let ours = monitor(&opts.monitor, &sim, &[]);
    let ours6 = monitor(&opts.monitor, &sim, &["--gzip-level", "6"]);
    let procs: [&Monitor; 6] = [&base, &ours, &base, &ours, &ours6, &ours];
    let idle: Vec<u64> = [&base, &ours, &ours6]
        .iter()
        .map(|m| status_kb(m.child.id(), "VmRSS:"))
        .collect();
    let (scrapes, rounds) = (opts.scrapes_for(n), opts.rounds_for(n));
    let load0 = measure::loadavg();
    let (stat0, sched0) = (stat_cpu_ms(base.child.id()), cpu_ns(base.child.id()));
    let mut acc: [Acc; 6] = Default::default();
    for r in 0..rounds {
        let mut plain = vec![0, 1];
        let mut gz = vec![2, 3, 4, 5];
        if r % 2 == 1 {
            plain.reverse();
        }
        gz.rotate_left(r % 4);
        for i in plain.into_iter().chain(gz) {
            let m = procs[i];
            let warmup = if r == 0 { Opts::warmup_for(n) } else { 1 };
            let run = scrape_series(m.addr, m.child.id(), CODINGS[i], scrapes, warmup, true);
            if std::env::var("E2E_DEBUG").is_ok() {
                eprintln!(
                    "{n} sandboxes, round {r}, {}: {:.1} ms cpu",
                    NAMES[i], run.cpu_ms
                );
            }
            acc[i].add(run);
        }
    }
    let (stat1, sched1) = (stat_cpu_ms(base.child.id()), cpu_ns(base.child.id()));
    let peak: Vec<u64> = [&base, &ours, &ours6]
        .iter()
        .map(|m| status_kb(m.child.id(), "VmHWM:"))
        .collect();
    println!(
        "\n### {n} sandboxes: {scrapes} scrapes per series, {rounds} round(s); \
         load avg {load0:.1} -> {:.1}; {:.0} s\n",
        measure::loadavg(),
        t0.elapsed().as_secs_f64()
    );
    print_table(&acc, &idle, &peak);
    println!(
        "\nbaseline CPU cross-check, all its scrapes incl. warm-up: /proc/pid/stat {:.0} ms, \
         threads' schedstat {:.0} ms",
        stat1 - stat0,
        (sched1 - sched0) as f64 / 1e6
    );
}

fn row(figure: &str, base: f64, ours: f64, unit: &str, digits: usize) {
    println!(
        "| {figure} | {base:.digits$}{unit} | {ours:.digits$}{unit} | {:.2} |",
        base / ours
    );
}

fn print_table(acc: &[Acc; 6], idle: &[u64], peak: &[u64]) {
    println!("| figure | baseline | this | ratio |");
    println!("|---|---|---|---|");
    row(
        "CPU per scrape, plain",
        acc[0].cpu(),
        acc[1].cpu(),
        " ms",
        1,
    );
    row("p50 latency, plain", acc[0].p(0.5), acc[1].p(0.5), " ms", 1);
    row("p90 latency, plain", acc[0].p(0.9), acc[1].p(0.9), " ms", 1);
    row(
        "CPU per scrape, gzip (Go level 6, ours default)",
        acc[2].cpu(),
        acc[3].cpu(),
        " ms",
        1,
    );
    row(
        "CPU per scrape, gzip, both level 6",
        acc[2].cpu(),
        acc[4].cpu(),
        " ms",
        1,
    );
    row(
        "CPU per scrape, Go gzip 6 vs our zstd 1",
        acc[2].cpu(),
        acc[5].cpu(),
        " ms",
        1,
    );
    row(
        "p50 latency, gzip (Go 6 vs ours default)",
        acc[2].p(0.5),
        acc[3].p(0.5),
        " ms",
        1,
    );
    row(
        "p90 latency, gzip (Go 6 vs ours default)",
        acc[2].p(0.9),
        acc[3].p(0.9),
        " ms",
        1,
    );
    row(
        "p50 latency, gzip, both level 6",
        acc[2].p(0.5),
        acc[4].p(0.5),
        " ms",
        1,
    );
    row(
        "idle RSS",
        idle[0] as f64 / 1000.0,
        idle[1] as f64 / 1000.0,
        " MB",
        1,
    );
    row(
        "peak RSS (ours: plain + default gzip)",
        peak[0] as f64 / 1000.0,
        peak[1] as f64 / 1000.0,
        " MB",
        1,
    );
    row(
        "peak RSS, ours with gzip 6",
        peak[0] as f64 / 1000.0,
        peak[2] as f64 / 1000.0,
        " MB",
        1,
    );
    row(
        "bytes, plain",
        acc[0].bytes as f64,
        acc[1].bytes as f64,
        "",
        0,
    );
    row(
        "bytes, gzip (Go 6 vs ours default)",
        acc[2].bytes as f64,
        acc[3].bytes as f64,
        "",
        0,
    );
    row(
        "bytes, gzip, both level 6",
        acc[2].bytes as f64,
        acc[4].bytes as f64,
        "",
        0,
    );
    row(
        "bytes, Go gzip 6 vs our zstd 1",
        acc[2].bytes as f64,
        acc[5].bytes as f64,
        "",
        0,
    );
    row(
        "p50 latency, Go gzip 6 vs our zstd 1",
        acc[2].p(0.5),
        acc[5].p(0.5),
        " ms",
        1,
    );
    for (which, what) in [(0, "series with sandbox_id"), (1, "sandboxes")] {
        let plain_base = acc[0].returned(which);
        let plain_ours = acc[1].returned(which);
        let gz_base = acc[2].returned(which);
        let gz_ours = acc[3].returned(which);
        let zs_ours = acc[5].returned(which);
        for (how, b, o) in [
            ("plain", plain_base, plain_ours),
            ("gzip", gz_base, gz_ours),
            ("Go gzip, our zstd", gz_base, zs_ours),
        ] {
            println!(
                "| {what} per scrape, {how}: median (min) | {:.0} ({}) | {:.0} ({}) | {:.3} |",
                b.0,
                b.1,
                o.0,
                o.1,
                b.0 / o.0
            );
        }
    }
}
