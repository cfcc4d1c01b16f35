//! CRI pod metadata, against an in-process fake CRI server (h2 on a test
//! thread): labels on the right series, late metadata, coalescing, a
//! restarting, hanging or broken runtime, and sandbox removal. A slow or
//! absent runtime must never delay a scrape.

mod common;

use common::expo_check::{Exposition, check_exposition};
use common::fake_cri::{FakeCri, Mode};
use common::node::{Monitor, Sim, tmpdir};
use std::time::{Duration, Instant};

fn metrics(m: &Monitor) -> Exposition {
    let r = m.get("/metrics");
    assert_eq!(r.status, 200);
    check_exposition(&r.body).unwrap_or_else(|e| panic!("invalid /metrics: {e}"))
}

/// (cri_uid, cri_name, cri_namespace) on sandbox `id`'s guest series.
fn labels_of(e: &Exposition, id: &str) -> Option<(String, String, String)> {
    let s = e
        .family("kata_guest_load")?
        .samples
        .iter()
        .find(|s| s.label("sandbox_id") == Some(id))?;
    Some((
        s.label("cri_uid")?.to_string(),
        s.label("cri_name")?.to_string(),
        s.label("cri_namespace")?.to_string(),
    ))
}

fn counter(e: &Exposition, name: &str, result: &str) -> f64 {
    e.family(name)
        .and_then(|f| f.samples.iter().find(|s| s.label("result") == Some(result)))
        .map_or(0.0, |s| s.value_f64())
}

fn gauge(e: &Exposition, name: &str) -> f64 {
    e.family(name)
        .map_or(f64::NAN, |f| f.samples[0].value_f64())
}

struct Node {
    sim: Sim,
    cri: FakeCri,
    m: Monitor,
    dir: std::path::PathBuf,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A node whose runtime knows the pods of sandboxes `known`.
fn node(sandboxes: usize, known: &[usize]) -> Node {
    let sim = Sim::start(&["--sandboxes", &sandboxes.to_string()]);
    let dir = tmpdir("cri");
    let sock = dir.join("cri.sock");
    let cri = FakeCri::start(&sock);
    for &i in known {
        cri.set_pod(
            &sim.ids[i],
            &format!("pod-{i}"),
            &format!("uid-{i}"),
            &format!("ns-{i}"),
            true,
        );
    }
    let m = Monitor::start(
        &sim.roots_arg(),
        &["--runtime-endpoint", &format!("unix://{}", sock.display())],
    );
    Node { sim, cri, m, dir }
}

fn wait<T>(secs: u64, mut f: impl FnMut() -> Option<T>) -> T {
    let until = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < until, "timed out after {secs} s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Wait until `id`'s series carry `cri_name="name"`.
fn wait_name(m: &Monitor, id: &str, name: &str, secs: u64) {
    wait(secs, || {
        let e = metrics(m);
        labels_of(&e, id).is_some_and(|l| l.1 == name).then_some(())
    });
}

#[test]
fn metadata_lands_on_the_right_series_with_one_coalesced_call() {
    let n = node(5, &[0, 1, 2, 3, 4]);
    let e = wait(5, || {
        let e = metrics(&n.m);
        (0..5)
            .all(|i| labels_of(&e, &n.sim.ids[i]).is_some_and(|l| !l.0.is_empty()))
            .then_some(e)
    });
    for i in 0..5 {
        assert_eq!(
            labels_of(&e, &n.sim.ids[i]).unwrap(),
            (format!("uid-{i}"), format!("pod-{i}"), format!("ns-{i}"))
        );
    }
    // Own per-sandbox metrics carry the labels too.
    let up = e.family("kata_monitor_sandbox_up").unwrap();
    assert!(
        up.samples
            .iter()
            .all(|s| s.label("cri_name").unwrap().starts_with("pod-"))
    );
    // Five sandboxes appeared at once: one call covered them all, asking
    // for READY sandboxes only.
    assert_eq!(n.cri.calls(), 1, "calls are coalesced");
    assert!(
        n.cri
            .last_filters()
            .iter()
            .all(|(id, ready)| id.is_empty() && *ready)
    );
    assert_eq!(counter(&e, "kata_monitor_cri_requests_total", "ok"), 1.0);
    assert_eq!(gauge(&e, "kata_monitor_cri_pending_sandboxes"), 0.0);
    assert_eq!(gauge(&e, "kata_monitor_cri_connected"), 1.0);
    assert_eq!(n.cri.connections(), 1, "one long-lived connection");
    assert_eq!(gauge(&e, "kata_monitor_cri_connections_total"), 1.0);
    let d = e
        .family("kata_monitor_cri_request_duration_seconds")
        .unwrap();
    let v = |suffix: &str| {
        d.samples
            .iter()
            .find(|s| s.name.ends_with(suffix))
            .unwrap()
            .value_f64()
    };
    assert_eq!(v("_count"), 1.0);
    assert!(v("_sum") > 0.0 && v("_sum") < 5.0, "{}", v("_sum"));
    let h = n.m.get("/healthz").text();
    assert!(h.contains("\ncri_connected 1\n"), "{h}");
    assert!(h.contains("\ncri_pending_sandboxes 0\n"), "{h}");
}

#[test]
fn late_metadata_and_new_sandboxes() {
    let mut n = node(2, &[0]);
    // Sandbox 1 is not known yet: served with empty labels meanwhile.
    let e = wait(5, || {
        let e = metrics(&n.m);
        labels_of(&e, &n.sim.ids[0])
            .is_some_and(|l| l.1 == "pod-0")
            .then_some(e)
    });
    assert_eq!(labels_of(&e, &n.sim.ids[1]).unwrap(), Default::default());
    assert_eq!(gauge(&e, "kata_monitor_cri_pending_sandboxes"), 1.0);
    n.cri.set_pod(&n.sim.ids[1], "late", "uid-late", "ns", true);
    wait_name(&n.m, &n.sim.ids[1], "late", 5);
    // A sandbox appearing later is asked about too.
    let id = n.sim.add("small");
    n.cri.set_pod(&id, "added", "uid-added", "ns", true);
    wait_name(&n.m, &id, "added", 5);
    assert_eq!(n.cri.connections(), 1);
}

#[test]
fn removed_sandboxes_drop_their_metadata() {
    let mut n = node(2, &[0, 1]);
    wait_name(&n.m, &n.sim.ids[1], "pod-1", 5);
    let gone = n.sim.ids[1].clone();
    n.sim.cmd(&format!("remove {gone}"));
    n.cri.remove_pod(&gone);
    wait(5, || {
        let e = metrics(&n.m);
        labels_of(&e, &gone).is_none().then_some(())
    });
    let e = metrics(&n.m);
    assert!(e.samples().all(|s| s.label("cri_name") != Some("pod-1")));
}

#[test]
fn runtime_restart_reconnects() {
    let mut n = node(1, &[0]);
    wait_name(&n.m, &n.sim.ids[0], "pod-0", 5);
    n.cri.restart();
    // The next pending sandbox after the restart is served by a new connection.
    let id = n.sim.add("small");
    n.cri.set_pod(&id, "after-restart", "u2", "ns", true);
    wait_name(&n.m, &id, "after-restart", 10);
    assert!(n.cri.connections() >= 2);
    // Metadata known before the restart is kept.
    let e = metrics(&n.m);
    assert!(gauge(&e, "kata_monitor_cri_connections_total") >= 2.0);
    assert_eq!(labels_of(&e, &n.sim.ids[0]).unwrap().1, "pod-0");
}

#[test]
fn absent_runtime_never_delays_scrapes() {
    let sim = Sim::start(&["--sandboxes", "2"]);
    let m = Monitor::start(
        &sim.roots_arg(),
        &["--runtime-endpoint", "/nonexistent/cri.sock"],
    );
    for _ in 0..3 {
        let e = metrics(&m);
        assert_eq!(labels_of(&e, &sim.ids[0]).unwrap(), Default::default());
        assert_eq!(gauge(&e, "kata_monitor_cri_connected"), 0.0);
    }
    // Still healthy (the monitor works without pod metadata), and says why
    // the labels are empty.
    let h = m.get("/healthz");
    assert_eq!(h.status, 200);
    assert!(h.text().contains("\ncri_connected 0\n"), "{}", h.text());
    assert!(
        h.text().contains("\ncri_pending_sandboxes 2\n"),
        "{}",
        h.text()
    );
    // The log says so once, not at every retry.
    let log = m.log_text();
    assert_eq!(log.matches("CRI runtime unreachable").count(), 1, "{log}");
    assert!(log.contains("/nonexistent/cri.sock"), "{log}");
}

#[test]
fn hanging_runtime_times_out_without_delaying_scrapes() {
    let n = node(2, &[0, 1]);
    n.cri.set_mode(Mode::Hang);
    // Scrapes are answered while the call hangs (it times out after 5 s):
    // the answer came before the call ended, so it did not wait on it.
    let mut during = 0;
    for _ in 0..5 {
        let e = metrics(&n.m);
        assert_eq!(labels_of(&e, &n.sim.ids[0]).unwrap(), Default::default());
        if counter(&e, "kata_monitor_cri_requests_total", "timeout") == 0.0 {
            during += 1;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(during > 0, "no scrape was answered while the CRI call hung");
    let until = Instant::now() + Duration::from_secs(10);
    while counter(&metrics(&n.m), "kata_monitor_cri_requests_total", "timeout") == 0.0 {
        assert!(Instant::now() < until, "the hung call never timed out");
        std::thread::sleep(Duration::from_millis(200));
    }
    // The call timed out (5 s) and the monitor reconnected.
    let e = metrics(&n.m);
    assert!(counter(&e, "kata_monitor_cri_requests_total", "timeout") >= 1.0);
    n.cri.set_mode(Mode::Normal);
    wait_name(&n.m, &n.sim.ids[0], "pod-0", 10);
}

#[test]
fn broken_answers_are_counted_and_retried() {
    for (mode, result) in [
        (Mode::Garbage, "bad_response"),
        (Mode::Status(14, "runtime down".into()), "grpc_unavailable"),
        (Mode::TrailersOnly(13, "oops".into()), "grpc_error"),
    ] {
        let n = node(1, &[0]);
        n.cri.set_mode(mode);
        wait(5, || {
            let e = metrics(&n.m);
            (counter(&e, "kata_monitor_cri_requests_total", result) >= 1.0).then_some(())
        });
        let e = metrics(&n.m);
        assert_eq!(labels_of(&e, &n.sim.ids[0]).unwrap(), Default::default());
        // Recovery: the next answer is good.
        n.cri.set_mode(Mode::Normal);
        wait(10, || {
            let e = metrics(&n.m);
            labels_of(&e, &n.sim.ids[0])
                .is_some_and(|l| l.1 == "pod-0")
                .then_some(())
        });
    }
}
