//! Keeping sandboxes out of scraping (kata-containers #13708: a GET of a
//! runtime-rs QEMU/Firecracker shim's `/metrics` panics it and kills the
//! pod): by CRI runtime handler, with the handler known from a fake CRI
//! before any request can reach the shim, and by sandbox root.

mod common;

use common::expo_check::{Exposition, check_exposition};
use common::fake_cri::FakeCri;
use common::node::{Monitor, Sim, tmpdir};

fn metrics(m: &Monitor) -> Exposition {
    let r = m.get("/metrics");
    assert_eq!(r.status, 200);
    check_exposition(&r.body).unwrap_or_else(|e| panic!("invalid /metrics: {e}"))
}

/// Sandbox ids with a sample of `family` (and, if given, that reason).
fn with_family(e: &Exposition, family: &str, reason: Option<&str>) -> Vec<String> {
    let mut ids: Vec<String> = e
        .family(family)
        .map(|f| {
            f.samples
                .iter()
                .filter(|s| reason.is_none() || s.label("reason") == reason)
                .filter_map(|s| s.label("sandbox_id").map(String::from))
                .collect()
        })
        .unwrap_or_default();
    ids.sort();
    ids
}

/// Sandboxes whose shim series are served.
fn served(e: &Exposition) -> Vec<String> {
    let mut ids: Vec<String> = e
        .samples()
        .filter(|s| !s.name.starts_with("kata_monitor_"))
        .filter_map(|s| s.label("sandbox_id").map(String::from))
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

#[test]
fn excluded_runtime_handlers_never_reach_the_shim() {
    // Three Go-runtime sandboxes and one under the runtime-rs root.
    let mut sim = Sim::start(&["--sandboxes", "4", "--bodies", "default,default,default,rs"]);
    let ids = sim.ids.clone();
    let dir = tmpdir("exclusion");
    let sock = dir.join("cri.sock");
    let cri = FakeCri::start(&sock);
    let handlers = [
        "kata-qemu",
        "kata-qemu-runtime-rs",
        "kata-fc-rs",
        "kata-dragonball",
    ];
    for (i, id) in ids.iter().enumerate() {
        cri.set_pod(id, &format!("pod-{i}"), &format!("uid-{i}"), "ns", true);
        cri.set_handler(id, handlers[i]);
    }
    let m = Monitor::start(
        &sim.roots_arg(),
        &[
            "--runtime-endpoint",
            &format!("unix://{}", sock.display()),
            "--exclude-runtime-handler",
            "kata-qemu-runtime-rs",
            "--exclude-runtime-handler=kata-fc-*",
        ],
    );
    m.wait_log(10, |l| l.contains("connected to the CRI runtime"));
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    let allowed = sorted(vec![ids[0].clone(), ids[3].clone()]);
    let excluded = sorted(vec![ids[1].clone(), ids[2].clone()]);
    for _ in 0..3 {
        let e = metrics(&m);
        assert_eq!(
            served(&e),
            allowed,
            "the first scrape waits for the handlers"
        );
        assert_eq!(with_family(&e, "kata_monitor_sandbox_up", None), allowed);
        assert_eq!(
            with_family(&e, "kata_monitor_sandbox_excluded", Some("runtime_handler")),
            excluded
        );
    }
    for id in &excluded {
        assert_eq!(
            sim.scrapes(id),
            0,
            "{id}: no request may reach an excluded shim"
        );
    }
    assert!(sim.scrapes(&ids[0]) >= 3);
    // Listed, marked; direct requests refused with the reason.
    let list = m.get("/sandboxes").text();
    assert!(
        list.contains(&format!("{} excluded=runtime_handler\n", ids[1])),
        "{list}"
    );
    assert!(list.contains(&format!("{}\n", ids[0])));
    let r = m.get(&format!("/metrics?sandbox={}", ids[1]));
    assert_eq!(r.status, 403);
    assert!(r.text().contains("kata-qemu-runtime-rs"), "{}", r.text());
    assert_eq!(
        m.get(&format!("/debug/vars?sandbox={}", ids[2])).status,
        403
    );
    // The runtime-rs sandbox: metrics fine, no Go debug endpoints.
    assert_eq!(m.get(&format!("/metrics?sandbox={}", ids[3])).status, 200);
    let r = m.get(&format!("/debug/pprof/?sandbox={}", ids[3]));
    assert_eq!(r.status, 501);
    assert!(r.text().contains("runtime-rs"));
    // A new pod with an excluded handler: no scrape races the CRI answer.
    let new = sim.add("default");
    cri.set_pod(&new, "pod-new", "uid-new", "ns", true);
    cri.set_handler(&new, "kata-fc-rs");
    m.wait_for("/sandboxes", 5, |r| r.text().contains(&new));
    for _ in 0..3 {
        let e = metrics(&m);
        assert!(!served(&e).contains(&new));
    }
    assert_eq!(sim.scrapes(&new), 0);
    let e = metrics(&m);
    assert!(
        with_family(&e, "kata_monitor_sandbox_excluded", Some("runtime_handler")).contains(&new)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn unknown_handlers_are_not_scraped_while_rules_are_set() {
    // No CRI runtime at all: nothing can tell the handlers.
    let mut sim = Sim::start(&["--sandboxes", "2"]);
    let m = Monitor::start(
        &sim.roots_arg(),
        &[
            "--runtime-endpoint",
            "/nonexistent/cri.sock",
            "--exclude-runtime-handler",
            "kata-fc-rs",
        ],
    );
    let e = metrics(&m);
    assert!(served(&e).is_empty());
    let mut want = sim.ids.clone();
    want.sort();
    assert_eq!(
        with_family(
            &e,
            "kata_monitor_sandbox_excluded",
            Some("runtime_handler_unknown")
        ),
        want
    );
    for id in sim.ids.clone() {
        assert_eq!(sim.scrapes(&id), 0);
    }
    let r = m.get(&format!("/metrics?sandbox={}", sim.ids[0]));
    assert_eq!(r.status, 503);
    assert_eq!(r.header("retry-after"), Some("1"));
}

#[test]
fn a_whole_sandbox_dir_can_be_excluded() {
    let sim = Sim::start(&["--sandboxes", "3", "--bodies", "default,rs,rs"]);
    let rs_root = sim.roots[1].display().to_string();
    let m = Monitor::start(&sim.roots_arg(), &["--exclude-sandbox-dir", &rs_root]);
    let e = metrics(&m);
    assert_eq!(served(&e), [sim.ids[0].clone()]);
    let mut rs: Vec<String> = sim.ids[1..].to_vec();
    rs.sort();
    assert_eq!(
        with_family(&e, "kata_monitor_sandbox_excluded", Some("sandbox_dir")),
        rs
    );
    assert_eq!(
        m.get(&format!("/metrics?sandbox={}", sim.ids[1])).status,
        403
    );
    // A bad flag is one clear line at start.
    let out = std::process::Command::new(common::node::MONITOR)
        .args(["--sandbox-dirs", "/a,/b", "--exclude-sandbox-dir", "/c"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not one of --sandbox-dirs"), "{err}");
}
