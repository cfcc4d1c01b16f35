//! Dashboards against a real Prometheus (2.42, tests/peers/fetch-prometheus.sh)
//! scraping the release monitor on a simulated node every second: every query
//! of upstream's Grafana dashboard (`fixtures/upstream-dashboard-queries.txt`,
//! from Kata's docs/how-to/data/dashboard.json) and of ours
//! (`deploy/grafana/kata-monitor.json`) is run through `/api/v1/query` and
//! must return at least one finite value, that is, its panel shows data.
//!
//! Upstream's queries that cannot have data are listed below with the
//! reason (README.md, "Dashboards", says the same); the test also checks
//! that they indeed return nothing, so the list cannot go stale silently.
//!
//! The node: Go-runtime sandboxes with each fixture body, a runtime-rs one,
//! one whose shim answers HTTP 500 (sandbox health panels), one whose body
//! has invalid lines (dropped-lines panel), pod metadata from a fake CRI.
//! Without Prometheus: skipped visibly, or failed under `KATA_MONITOR_CI=1`.

mod common;

use common::fake_cri::FakeCri;
use common::node::{FakeShim, Monitor, Sim, tmpdir};
use common::prom::{Prom, bin_dir};

/// Upstream queries without data, and why. A query is matched by the first
/// entry whose family name it contains.
const NO_DATA: [(&str, &str); 4] = [
    (
        "kata_monitor_go_",
        "not served: the Go runtime's goroutine, thread and GC figures of the Go monitor; \
         this monitor is not a Go program and has no such figures to report",
    ),
    (
        "kata_shim_netdev",
        "stale: the Go shim stopped reporting host network devices in Feb 2024 \
         (kata-containers 9de65707ca); kata_hypervisor_netdev and kata_guest_netdev_stat remain",
    ),
    (
        "kata_agent_process_open_fds",
        "stale: the agent's registry (src/agent/src/metrics.rs, Registry::new()) has no \
         process collector, so no kata_agent_process_* family exists",
    ),
    (
        "kata_agent_process_resident_memory_bytes",
        "stale: as kata_agent_process_open_fds; kata_agent_total_rss is the current family",
    ),
];

fn upstream_queries() -> Vec<String> {
    include_str!("fixtures/upstream-dashboard-queries.txt")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect()
}

/// Every `expr` of the dashboard's panels (rows included).
fn our_queries() -> Vec<String> {
    fn walk(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                if let Some(e) = m.get("expr").and_then(|e| e.as_str()) {
                    out.push(e.to_string());
                }
                m.values().for_each(|v| walk(v, out));
            }
            serde_json::Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let dash: serde_json::Value =
        serde_json::from_str(include_str!("../deploy/grafana/kata-monitor.json"))
            .expect("deploy/grafana/kata-monitor.json is JSON");
    let mut out = Vec::new();
    walk(&dash["panels"], &mut out);
    out
}

fn no_data_reason(q: &str) -> Option<&'static str> {
    NO_DATA
        .iter()
        .find(|(family, _)| q.contains(family))
        .map(|(_, why)| *why)
}

/// Finite values the query returns (vector results).
fn finite_values(p: &Prom, q: &str) -> usize {
    p.query(q)
        .iter()
        .filter_map(|r| r["value"][1].as_str()?.parse::<f64>().ok())
        .filter(|v| v.is_finite())
        .count()
}

#[test]
fn every_dashboard_query_has_data() {
    let Some(bin) = bin_dir() else { return };
    let sim = Sim::start(&[
        "--sandboxes",
        "5",
        "--bodies",
        "default,small,large,rs",
        "--fault",
        "4=http500",
    ]);
    let hostile_root = tmpdir("dash");
    let _hostile = FakeShim::start(
        &hostile_root.join("hostile1"),
        b"# TYPE x_up gauge\nx_up 1\nx_up{a=\"1\"} 2\nx_up{a=\"2\"} 3\nbad line here\nx_bad{=\"\"} 1\n",
    );
    let cri_dir = tmpdir("dcri");
    let cri = FakeCri::start(&cri_dir.join("cri.sock"));
    for (i, id) in sim.ids.iter().enumerate() {
        cri.set_pod(id, &format!("pod-{i}"), &format!("uid-{i}"), "team-a", true);
    }
    let endpoint = format!("unix://{}", cri_dir.join("cri.sock").display());
    let m = Monitor::start(
        &format!("{},{}", sim.roots_arg(), hostile_root.display()),
        &["--runtime-endpoint", &endpoint],
    );
    m.wait_for("/metrics", 10, |r| r.text().contains("cri_name=\"pod-0\""));
    let p = Prom::start(&bin, m.addr);
    // rate() and irate() need two samples in their window; four to be safe.
    let t = p.target_after_scrapes(4, 40);
    assert_eq!(t["health"], "up", "{t}");

    let mut failures = Vec::new();
    let upstream = upstream_queries();
    assert_eq!(
        upstream.len(),
        48,
        "the fixture lists upstream's 48 queries"
    );
    for q in &upstream {
        let n = finite_values(&p, q);
        match no_data_reason(q) {
            None if n == 0 => failures.push(format!("upstream, no data: {q}")),
            Some(why) if n > 0 => failures.push(format!(
                "upstream, listed as without data ({why}) but has {n} values: {q}"
            )),
            _ => {}
        }
    }
    let ours = our_queries();
    assert!(ours.len() >= 50, "{} queries in our dashboard", ours.len());
    for q in &ours {
        if finite_values(&p, q) == 0 {
            failures.push(format!("ours, no data: {q}"));
        }
        if let Some(why) = no_data_reason(q) {
            failures.push(format!("ours queries a family without data ({why}): {q}"));
        }
    }
    // Every upstream panel with data is in ours, query for query.
    for q in upstream.iter().filter(|q| no_data_reason(q).is_none()) {
        if !ours.contains(q) {
            failures.push(format!("upstream query missing from ours: {q}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    drop(p);
    let _ = std::fs::remove_dir_all(&cri_dir);
    let _ = std::fs::remove_dir_all(&hostile_root);
}
