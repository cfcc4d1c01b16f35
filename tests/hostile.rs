//! End to end: a hostile guest's sandbox, at the first and at the last
//! position in id order, and known longer than every healthy sandbox, against
//! a node of healthy `kata-sim` shims (Go and runtime-rs bodies). Every healthy
//! sandbox's series and every family's HELP/TYPE lines must come out byte for
//! byte as in a run without the hostile sandbox, and nothing of theirs may be
//! dropped. The output is checked by the independent parser; `promtool`
//! checks a body with the same attacks in `tests/prometheus.rs`. Also: the
//! per-sandbox limit flags keep what is under them.

mod common;

use common::expo_check::check_exposition;
use common::node::{FakeShim, Monitor, Sim, tmpdir};
use std::collections::BTreeMap;

/// The guest attacks families the healthy bodies emit: other TYPEs (for
/// families every healthy sandbox has, and for ones only one has, where
/// Kata's table breaks the tie), fake HELP, a summary `x` whose `x_count` is
/// a healthy counter, a family a parser would read as part of a healthy
/// histogram, spoofed identity labels and duplicate series.
const HOSTILE: &str = "\
# HELP kata_guest_load Fake help.
# TYPE kata_guest_load counter
kata_guest_load{item=\"load1\"} 5
# TYPE kata_agent_scrape summary
kata_agent_scrape{quantile=\"0.5\"} 1
kata_agent_scrape_sum 1
kata_agent_scrape_count 1
# TYPE kata_hypervisor_scrape summary
kata_hypervisor_scrape{quantile=\"0.5\"} 1
kata_hypervisor_scrape_count 2
# HELP kata_firecracker_vcpu Evil.
# TYPE kata_firecracker_vcpu histogram
kata_firecracker_vcpu_bucket{le=\"+Inf\"} 1
kata_firecracker_vcpu_sum 1
kata_firecracker_vcpu_count 1
# HELP go_goroutines Not really.
# TYPE go_goroutines counter
go_goroutines 1
# TYPE go_gc_duration_seconds gauge
go_gc_duration_seconds 1
kata_shim_rpc_durations_histogram_milliseconds_bucket{x=\"1\"} 1
# HELP kata_guest_meminfo Spoofed.
kata_guest_meminfo{item=\"MemTotal\",sandbox_id=\"victim\",cri_name=\"victim\"} 1
dup_metric{x=\"\"} 5
dup_metric 6
";

/// Healthy bodies, one of each kind (Go: default, small, large with the
/// Firecracker families; runtime-rs: rs, alone with its hypervisor families).
const KINDS: [&str; 4] = ["default", "small", "large", "rs"];

/// One run: a fresh node, an optional hostile sandbox `id` created before
/// the monitor starts (so it is known longest), then the healthy ones.
/// Returns the healthy ids and the first `/metrics` answer.
fn run(hostile: Option<&str>) -> (Vec<String>, String) {
    let mut sim = Sim::start(&["--sandboxes", "0"]);
    let _shim = hostile.map(|id| FakeShim::start(&sim.roots[0].join(id), HOSTILE.as_bytes()));
    let m = Monitor::start(
        &sim.roots_arg(),
        &["--runtime-endpoint", "/nonexistent/cri.sock"],
    );
    if let Some(id) = hostile {
        m.wait_for("/sandboxes", 10, |r| r.text().contains(id));
    }
    let ids: Vec<String> = KINDS.iter().map(|k| sim.add(k)).collect();
    let want = ids.len() + usize::from(hostile.is_some());
    m.wait_for("/sandboxes", 10, |r| r.text().lines().count() == want);
    // The shims' first scrape: their fixture bodies byte for byte.
    let r = m.get("/metrics");
    assert_eq!(r.status, 200);
    (ids, r.text())
}

/// Sample lines carrying sandbox `id`'s injected labels, own metrics left out.
fn series_of<'a>(out: &'a str, id: &str) -> Vec<&'a str> {
    let mark = format!("sandbox_id=\"{id}\",cri_uid=");
    out.lines()
        .filter(|l| !l.starts_with("kata_monitor_") && !l.starts_with('#'))
        .filter(|l| l.contains(&format!("{{{mark}")) || l.contains(&format!(",{mark}")))
        .collect()
}

/// HELP/TYPE lines by family, own metrics left out.
fn headers(out: &str) -> BTreeMap<&str, Vec<&str>> {
    let mut h: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for l in out.lines().filter(|l| l.starts_with("# ")) {
        let name = l.split(' ').nth(2).unwrap_or("");
        if !name.starts_with("kata_monitor_") {
            h.entry(name).or_default().push(l);
        }
    }
    h
}

fn dropped(out: &str, id: &str) -> Vec<String> {
    out.lines()
        .filter(|l| l.starts_with("kata_monitor_dropped_lines_total{"))
        .filter(|l| l.contains(&format!("sandbox_id=\"{id}\"")))
        .map(str::to_string)
        .collect()
}

#[test]
fn a_hostile_sandbox_first_or_last_changes_no_healthy_series() {
    let (ids, alone) = run(None);
    let parsed = check_exposition(alone.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    assert!(parsed.sample_count() > 4000);
    for id in &ids {
        assert!(!series_of(&alone, id).is_empty(), "{id} not served");
    }
    let first = "0".repeat(64);
    let last = "f".repeat(64);
    for hostile in [&first, &last] {
        let (ids_b, out) = run(Some(hostile));
        assert_eq!(ids, ids_b, "the simulator's ids are deterministic");
        check_exposition(out.as_bytes()).unwrap_or_else(|e| panic!("{hostile}: {e}"));
        for id in &ids {
            assert!(
                series_of(&alone, id) == series_of(&out, id),
                "{id}'s series changed with hostile {hostile}"
            );
            assert_eq!(dropped(&out, id), Vec::<String>::new(), "{id}");
        }
        let (ha, hb) = (headers(&alone), headers(&out));
        for (name, lines) in &ha {
            assert_eq!(Some(lines), hb.get(name), "{name}, hostile {hostile}");
        }
        // The hostile sandbox is served (what fits), up, and charged.
        assert!(out.contains(&format!(
            "kata_monitor_sandbox_up{{sandbox_id=\"{hostile}\""
        )));
        let d = dropped(&out, hostile).join("\n");
        for reason in ["type_conflict", "name_conflict", "duplicate_series"] {
            assert!(d.contains(&format!("reason=\"{reason}\"")), "{reason}: {d}");
        }
        let dup: Vec<&str> = series_of(&out, hostile)
            .into_iter()
            .filter(|l| l.starts_with("dup_metric"))
            .collect();
        assert_eq!(dup.len(), 1, "{dup:?}");
        assert!(out.contains("exported_sandbox_id=\"victim\""));
    }
}

/// `--max-series-per-sandbox`, `--max-line-length`, `--max-labels-per-series`:
/// a sandbox over them keeps what is under them, is not failed, and every
/// hit is counted per sandbox and reason.
#[test]
fn limits_keep_the_first_series_and_count_the_rest() {
    let root = tmpdir("limits");
    let mut body = String::new();
    for i in 0..50 {
        body.push_str(&format!("m_{i:02} {i}\n"));
    }
    body.push_str(&format!("long{{x=\"{}\"}} 1\n", "y".repeat(2000)));
    body.push_str("wide{a=\"1\",b=\"2\",c=\"3\"} 1\n");
    let _shim = FakeShim::start(
        &root.join("sb1"),
        Box::leak(body.into_boxed_str()).as_bytes(),
    );
    let m = Monitor::start(
        &root.display().to_string(),
        &[
            "--runtime-endpoint",
            "/nonexistent/cri.sock",
            "--max-series-per-sandbox",
            "10",
            "--max-line-length",
            "1KiB",
            "--max-labels-per-series",
            "2",
        ],
    );
    m.wait_for("/sandboxes", 10, |r| r.text().contains("sb1"));
    let out = m.get("/metrics").text();
    check_exposition(out.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    let kept: Vec<&str> = series_of(&out, "sb1");
    let names: Vec<&str> = kept.iter().map(|l| &l[..4]).collect();
    assert_eq!(
        names,
        (0..10).map(|i| format!("m_{i:02}")).collect::<Vec<_>>(),
        "the first 10 series"
    );
    assert!(out.contains("kata_monitor_sandbox_up{sandbox_id=\"sb1\""));
    assert!(
        out.lines().any(
            |l| l.starts_with("kata_monitor_sandbox_up{sandbox_id=\"sb1\"") && l.ends_with(" 1")
        )
    );
    let d = dropped(&out, "sb1").join("\n");
    for (reason, n) in [
        ("too_many_series", 40),
        ("line_too_long", 1),
        ("too_many_labels", 1),
    ] {
        assert!(
            d.lines()
                .any(|l| l.contains(&format!("{{reason=\"{reason}\","))
                    && l.ends_with(&format!(" {n}"))),
            "{reason} {n}: {d}"
        );
    }
    let _ = std::fs::remove_dir_all(&root);
}
