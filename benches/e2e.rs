//! End-to-end benchmark: the release `kata-monitor` against a simulated node
//! of 1, 10 and 100 sandboxes (`default.prom` bodies), scraped over a
//! keep-alive connection the way Prometheus does.
//!
//! Prints, per node size: p50/p90 scrape latency, the monitor's CPU time per
//! scrape (from /proc/<pid>/schedstat, ns resolution, user+sys; a final line
//! cross-checks the totals against /proc/<pid>/stat utime+stime), idle and
//! peak RSS (VmRSS before the first scrape, VmHWM at the end), and response
//! bytes plain and gzip.
//!
//! `cargo bench --bench e2e` (`-- 100` for one size, `-- --scrapes 50`,
//! `-- --monitor target/static/kata-monitor` for another build, such as the
//! static musl binary that ships: `deploy/build-static.sh` makes it).
//!
//! `cargo bench --bench e2e -- --cri` measures the CRI client instead (see
//! `cri_section`): the round trip of its ListPodSandbox calls against the
//! fake CRI server and, when root with containerd installed, a real
//! containerd; and what pod metadata costs a scrape.

#[path = "../tests/common"]
#[allow(dead_code)]
mod common {
    pub mod cri_client;
    pub mod fake_cri;
    pub mod node;
}

use common::node::{self, Client, FakeShim, Monitor, Sim};
use std::time::{Duration, Instant};

fn cpu_ns(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/schedstat"))
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

/// utime + stime from `/proc/<pid>/stat`, in ms (clock-tick resolution):
/// the measure, printed as a cross-check of the schedstat figures.
fn stat_cpu_ms(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields of the whole line.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    ticks as f64 * 1000.0 / hz
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
        .filter(|(i, _)| *i == 0 || (args[i - 1] != "--scrapes" && args[i - 1] != "--monitor"))
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
    let monitor: String = args
        .iter()
        .position(|a| a == "--monitor")
        .and_then(|i| args.get(i + 1))
        .cloned()
        .unwrap_or_else(|| node::MONITOR.to_string());
    if args.iter().any(|a| a == "--cri") {
        cri_section(scrapes);
        return;
    }
    println!(
        "monitor: {}; {} scrapes per series, keep-alive, fresh round each",
        monitor, scrapes
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
    let mut cross_check = Vec::new();
    for n in sizes {
        let sim = Sim::start(&["--sandboxes", &n.to_string(), "--bodies", "default"]);
        let level = if std::env::var("E2E_LOG_DEBUG").is_ok() {
            "debug"
        } else {
            "info"
        };
        let roots = sim.roots_arg();
        let m = Monitor::start_bin(
            &monitor,
            &[
                "--listen-address",
                "127.0.0.1:0",
                "--sandbox-dirs",
                &roots,
                "--log-level",
                level,
            ],
        );
        let until = Instant::now() + Duration::from_secs(10);
        while m.get("/sandboxes").text().lines().count() < n {
            assert!(Instant::now() < until, "sandboxes not discovered");
            std::thread::sleep(Duration::from_millis(20));
        }
        let pid = m.child.id();
        let idle = status_kb(pid, "VmRSS:");
        let (stat0, sched0) = (stat_cpu_ms(pid), cpu_ns(pid));
        let plain = scrape_series(&m, false, scrapes);
        let gz = scrape_series(&m, true, scrapes);
        let (stat1, sched1) = (stat_cpu_ms(pid), cpu_ns(pid));
        cross_check.push((n, stat1 - stat0, (sched1 - sched0) as f64 / 1e6));
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
    for (n, stat, sched) in cross_check {
        println!(
            "cross-check, {n} sandboxes, all scrapes incl. warm-up: /proc/pid/stat {stat:.0} ms, schedstat {sched:.1} ms"
        );
    }
}

/// Sum and count of the monitor's `kata_monitor_cri_request_duration_seconds`.
fn cri_calls(m: &Monitor) -> (f64, f64) {
    let text = m.get("/metrics").text();
    let get = |suffix: &str| -> f64 {
        let name = format!("kata_monitor_cri_request_duration_seconds_{suffix} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&name))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(f64::NAN)
    };
    (get("sum"), get("count"))
}

fn wait_until(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn labelled(m: &Monitor, n: usize) -> bool {
    let text = m.get("/metrics").text();
    text.lines()
        .filter(|l| l.starts_with("kata_monitor_sandbox_up{") && !l.contains("cri_uid=\"\""))
        .count()
        >= n
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// The CRI client's cost: call round trips, and scrapes with and without pod
/// metadata on the same simulated node, interleaved so both see the same
/// machine noise.
fn cri_section(scrapes: usize) {
    const N: usize = 100;
    println!("CRI: {N} simulated sandboxes, {scrapes} plain scrapes per series");
    let mut sim = Sim::start(&["--sandboxes", &N.to_string(), "--bodies", "default"]);
    let dir = node::tmpdir("cri-bench");
    let fake = common::fake_cri::FakeCri::start(&dir.join("cri.sock"));
    let pod = |i: usize| {
        (
            format!("web-{i:03}-7d4b9c8f6-x2x9z"),
            format!("6f1c2a4e-{i:04}-4b8e-9f3a-0c5d7e9b1a2f"),
            "team-frontend".to_string(),
        )
    };
    for (i, id) in sim.ids.iter().enumerate() {
        let (name, uid, ns) = pod(i);
        fake.set_pod(id, &name, &uid, &ns, true);
    }
    let with = Monitor::start(
        &sim.roots_arg(),
        &["--runtime-endpoint", &fake.socket().display().to_string()],
    );
    let without = Monitor::start(
        &sim.roots_arg(),
        &["--runtime-endpoint", "/nonexistent/cri.sock"],
    );
    wait_until(10, "all sandboxes labelled", || labelled(&with, N));
    let (sum, count) = cri_calls(&with);
    println!(
        "  fake CRI, discovery of {N} sandboxes: {count} call(s), {:.2} ms per call",
        sum / count * 1e3
    );

    // Round trips of single new sandboxes (each its own call).
    let (sum0, count0) = (sum, count);
    for i in 0..10 {
        let id = sim.add("default");
        let (name, uid, ns) = pod(N + i);
        fake.set_pod(&id, &name, &uid, &ns, true);
        wait_until(10, "new sandbox labelled", || labelled(&with, N + i + 1));
    }
    let (sum, count) = cri_calls(&with);
    println!(
        "  fake CRI, 10 sandboxes added one by one: {} calls, {:.2} ms per call (mean)",
        count - count0,
        (sum - sum0) / (count - count0) * 1e3
    );

    // Scrape cost with and without metadata. The extra labels make the
    // output longer; the CRI itself must not be called by a scrape.
    let calls_before = fake.calls();
    let (mut cpu_with, mut cpu_without) = (Vec::new(), Vec::new());
    let (mut bytes_with, mut bytes_without) = (0, 0);
    for _ in 0..3 {
        let a = scrape_series(&with, false, scrapes);
        let b = scrape_series(&without, false, scrapes);
        cpu_with.push(a.cpu_ms);
        cpu_without.push(b.cpu_ms);
        bytes_with = a.bytes;
        bytes_without = b.bytes;
    }
    let calls_during = fake.calls() - calls_before;
    let (a, b) = (median(cpu_with), median(cpu_without));
    println!(
        "  scrape CPU at {} sandboxes: with pod labels {a:.2} ms ({bytes_with} B), \
         without {b:.2} ms ({bytes_without} B): ratio {:.3}, bytes ratio {:.3}; \
         CRI calls during {} scrapes: {calls_during}",
        N + 10,
        a / b,
        bytes_with as f64 / bytes_without as f64,
        6 * scrapes
    );
    drop(with);
    drop(without);
    drop(fake);
    let _ = std::fs::remove_dir_all(&dir);
    real_containerd_round_trip();
}

/// Against a real containerd with 10 pods, when this runs as root with
/// containerd installed (tests/peers/install.sh).
fn real_containerd_round_trip() {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root
        || std::process::Command::new("containerd")
            .arg("--version")
            .output()
            .is_err()
    {
        println!("  real containerd: skipped (needs root and containerd)");
        return;
    }
    let peers = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers");
    let dir = std::path::PathBuf::from(format!("/tmp/kmbct{}", std::process::id() % 100_000));
    let out = std::process::Command::new(format!("{peers}/start-containerd.sh"))
        .arg(&dir)
        .output()
        .expect("start-containerd.sh");
    assert!(out.status.success(), "start-containerd.sh failed");
    let socket = std::path::PathBuf::from(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .unwrap()
            .trim(),
    );
    let stop = || {
        let _ = std::process::Command::new(format!("{peers}/stop-containerd.sh"))
            .arg(&dir)
            .output();
    };
    let mut cri = common::cri_client::CriClient::connect(&socket).expect("connect");
    let tag = std::process::id();
    let ids: Vec<String> = (0..10)
        .map(|i| {
            cri.run_pod_sandbox(
                &format!("b{i}-{tag}"),
                &format!("u{i}-{tag}"),
                "bench",
                0,
                "kata",
            )
            .expect("RunPodSandbox")
        })
        .collect();
    // The test client's own round trip, for comparison (one h2 connection).
    let rtt: Vec<f64> = (0..50)
        .map(|_| {
            let t = Instant::now();
            cri.list_pod_sandbox(true).expect("list");
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    let sbroot = std::path::PathBuf::from(format!("/tmp/kmbsb{}", tag % 100_000));
    let _ = std::fs::remove_dir_all(&sbroot);
    let shims: Vec<FakeShim> = ids
        .iter()
        .map(|id| FakeShim::start(&sbroot.join(id), b"# TYPE x_up gauge\nx_up 1\n"))
        .collect();
    let m = Monitor::start(
        &sbroot.display().to_string(),
        &[
            "--runtime-endpoint",
            &format!("unix://{}", socket.display()),
        ],
    );
    wait_until(10, "pods labelled", || labelled(&m, ids.len()));
    let (sum, count) = cri_calls(&m);
    println!(
        "  real containerd, 10 pods: monitor {count} call(s), {:.2} ms per call; \
         test client ListPodSandbox median {:.2} ms (50 calls)",
        sum / count * 1e3,
        median(rtt)
    );
    drop(m);
    drop(shims);
    for id in &ids {
        let _ = cri.stop_pod_sandbox(id);
        let _ = cri.remove_pod_sandbox(id);
    }
    let _ = std::fs::remove_dir_all(&sbroot);
    stop();
}
