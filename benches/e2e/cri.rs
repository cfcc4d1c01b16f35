//! `--cri`: what the CRI client costs. The round trip of its ListPodSandbox
//! calls against the fake CRI server and, when root with containerd
//! installed, a real containerd; and what pod metadata costs a scrape.

use crate::common::node::{self, FakeShim, Monitor, Sim};
use crate::measure::{median, scrape_series};
use std::time::{Duration, Instant};

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

/// The CRI client's cost: call round trips, and scrapes with and without pod
/// metadata on the same simulated node, interleaved so both see the same
/// machine noise.
pub fn cri_section(scrapes: usize) {
    const N: usize = 100;
    println!("CRI: {N} simulated sandboxes, {scrapes} plain scrapes per series");
    let mut sim = Sim::start(&["--sandboxes", &N.to_string(), "--bodies", "default"]);
    let dir = node::tmpdir("cri-bench");
    let fake = crate::common::fake_cri::FakeCri::start(&dir.join("cri.sock"));
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
        let a = scrape_series(with.addr, with.child.id(), "identity", scrapes, 3, false);
        let b = scrape_series(
            without.addr,
            without.child.id(),
            "identity",
            scrapes,
            3,
            false,
        );
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
    let mut cri = crate::common::cri_client::CriClient::connect(&socket).expect("connect");
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
