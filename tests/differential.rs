//! Differential tests: this monitor and upstream's Go kata-monitor side by
//! side on the same simulated nodes, answering the same requests.
//!
//! For every series carrying `sandbox_id`, both answers must have the same
//! name, label set and value (as floats: Go re-encodes numbers), and every
//! family the same HELP and TYPE; `/sandboxes`, `/agent-url`,
//! `/metrics?sandbox=` and the `/debug` proxies must answer alike (status,
//! content type, body). Where they may not, the difference is one README's
//! "Differences from upstream" lists: each exception names its entry (a
//! `DOC_*` constant of `tests/common/upstream_differences.rs`, whose text
//! `documented_differences_are_in_the_readme` finds in README.md).
//!
//! The Go peer is `../shared/peers/go-kata-monitor/run-go.sh` (or
//! `$KATA_MONITOR_GO_PEER`); it needs root. Without it every test here says
//! SKIPPED on stderr; under `KATA_MONITOR_CI=1` that is a failure. Shim
//! bodies are frozen (`kata-sim --frozen`): both monitors scrape the same
//! shims at different moments and must see the same values.

mod common;

use common::fake_cri::FakeCri;
use common::go_pair::{self, PROMETHEUS_ACCEPT, Pair, body_args, fixture, generate, lines, view};
use common::go_peer;
use common::godiff::{View, assert_no_problems, compare};
use common::node::{Monitor, Resp, tmpdir};
use common::upstream_differences::*;
use std::collections::BTreeSet;

// The documented differences (tests/common/upstream_differences.rs) are
// all in README.md.

#[test]
fn documented_differences_are_in_the_readme() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let section = readme
        .split_once("Differences from upstream")
        .expect("README has a \"Differences from upstream\" section")
        .1;
    let section = squash(section.split("\n## ").next().unwrap_or(section));
    for doc in ALL_DOCS {
        assert!(
            section.contains(&squash(doc)),
            "README's \"Differences from upstream\" lacks the entry: {doc}"
        );
    }
}

/// Both monitors on a node of `sim_args` (see `go_pair::pair`), the
/// documented exceptions allowed.
fn pair(test: &str, sim_args: &[&str], extra: &[&str]) -> Option<Pair> {
    go_pair::pair(test, sim_args, extra, excused)
}

// ---------------------------------------------------------------------------
// /metrics: the matrix of nodes.
// ---------------------------------------------------------------------------

#[test]
fn shared_fixture_bodies() {
    let files: Vec<String> = [
        "default.prom",
        "small.prom",
        "large.prom",
        "rs:rs-dragonball.prom",
        "edge.prom",
        "rs:rs-edge.prom",
    ]
    .iter()
    .map(|f| match f.strip_prefix("rs:") {
        Some(f) => format!("rs:{}", fixture(f)),
        None => fixture(f),
    })
    .collect();
    let mut args = vec!["--sandboxes", "6"];
    args.extend(body_args(&files));
    let Some(p) = pair("differential::shared_fixture_bodies", &args, &[]) else {
        return;
    };
    let ids = p.sim.ids.clone();
    p.compare_metrics("plain", "/metrics", &ids);
    // Gzip answers decompress to the same series.
    let (g, r) = p.both("/metrics", &[("Accept-Encoding", "gzip")]);
    assert_eq!(g.header("content-encoding"), Some("gzip"));
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_no_problems(
        "gzip",
        &compare(&view("Go", &g), &view("ours", &r), &excused),
    );
}

/// Valid bodies no real shim sends (`differential/unusual.prom`: timestamps, families
/// without TYPE or HELP, incomplete histograms and summaries) beside the
/// synthetic edge cases.
#[test]
fn unusual_but_valid_bodies() {
    let files = [fixture("differential/unusual.prom"), fixture("edge.prom")];
    let mut args = vec!["--sandboxes", "2"];
    args.extend(body_args(&files));
    let Some(p) = pair("differential::unusual_but_valid_bodies", &args, &[]) else {
        return;
    };
    let id = &p.sim.ids[0];
    let (mut g, r) = p.scrape("/metrics", &[]);
    // Series keys leave out labels with an empty value (Prometheus's
    // identity), here the pod labels before the CRI answers.
    // DOC_NO_FABRICATION: series upstream makes up.
    for (fam, key) in [
        ("h", format!("h_bucket{{le=\"+Inf\",sandbox_id=\"{id}\"}}")),
        ("s", format!("s_sum{{sandbox_id=\"{id}\"}}")),
        ("s", format!("s_count{{sandbox_id=\"{id}\"}}")),
    ] {
        assert!(g.remove(fam, &key), "Go adds {key}");
        assert!(r.value(fam, &key).is_none(), "we add no {key}");
    }
    let ts = format!("ts_total{{sandbox_id=\"{id}\"}}");
    assert_eq!(
        r.fams["ts_total"].timestamps.get(&ts),
        Some(&1_700_000_000_000)
    );
    assert_no_problems("unusual bodies", &compare(&g, &r, &excused));
}

/// Go-runtime bodies from the generator: several seeds and shapes.
#[test]
fn generated_go_runtime_bodies() {
    let test = "differential::generated_go_runtime_bodies";
    if go_peer::or_skip(test).is_none() {
        return;
    }
    let dir = tmpdir("dgo");
    let shapes: &[&[&str]] = &[
        &["--preset", "default", "--seed", "11"],
        &["--preset", "small", "--seed", "12", "--first-scrape"],
        &["--preset", "large", "--seed", "13", "--hypervisor", "fc"],
        &["--preset", "default", "--seed", "14", "--quirks"],
        &["--preset", "default", "--seed", "15", "--no-agent"],
        &[
            "--preset",
            "default",
            "--seed",
            "16",
            "--edge-cases",
            "--agent-order",
            "sorted",
            "--vcpus",
            "4",
            "--netdevs",
            "2",
            "--disks",
            "3",
        ],
        &[
            "--preset",
            "large",
            "--seed",
            "17",
            "--hypervisor",
            "clh",
            "--containers",
            "5",
        ],
    ];
    let Some(files) = generate(test, &dir, shapes) else {
        return;
    };
    let n = files.len().to_string();
    let mut args = vec!["--sandboxes", &n];
    args.extend(body_args(&files));
    let Some(p) = pair(test, &args, &[]) else {
        return;
    };
    let ids = p.sim.ids.clone();
    p.compare_metrics("generated Go-runtime bodies", "/metrics", &ids);
    let _ = std::fs::remove_dir_all(&dir);
}

/// runtime-rs bodies, under the runtime-rs root only.
#[test]
fn generated_runtime_rs_bodies() {
    let test = "differential::generated_runtime_rs_bodies";
    if go_peer::or_skip(test).is_none() {
        return;
    }
    let dir = tmpdir("drs");
    let shapes: &[&[&str]] = &[
        &["--preset", "rs", "--seed", "21"],
        &["--preset", "rs", "--seed", "22", "--hypervisor", "clh"],
        &[
            "--preset",
            "rs",
            "--seed",
            "23",
            "--edge-cases",
            "--first-scrape",
        ],
        &[
            "--preset",
            "rs",
            "--seed",
            "24",
            "--vcpus",
            "8",
            "--netdevs",
            "3",
        ],
    ];
    let Some(files) = generate(test, &dir, shapes) else {
        return;
    };
    assert!(files.iter().all(|f| f.starts_with("rs:")));
    let mut args = vec!["--sandboxes", "4"];
    args.extend(body_args(&files));
    let Some(p) = pair(test, &args, &[]) else {
        return;
    };
    let ids = p.sim.ids.clone();
    p.compare_metrics("runtime-rs bodies", "/metrics", &ids);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Both runtimes on one node, pod labels from a (fake) CRI runtime for
/// most sandboxes, one shim answering 500: its sandbox is left out by both.
#[test]
fn mixed_node_with_pod_labels() {
    let test = "differential::mixed_node_with_pod_labels";
    let Some(_) = go_peer::or_skip(test) else {
        return;
    };
    let dir = tmpdir("dmix");
    let cri = FakeCri::start(&dir.join("cri.sock"));
    let endpoint = cri.socket().display().to_string();
    let Some(mut p) = pair(
        test,
        &["--sandboxes", "7", "--bodies", "default,rs,small,large,rs"],
        &["--runtime-endpoint", &endpoint],
    ) else {
        return;
    };
    let ids = p.sim.ids.clone();
    // All but the last sandbox are pods the runtime knows; the one before
    // is NOT READY (both ask for READY pods only, so neither labels it).
    for (i, id) in ids.iter().enumerate().take(ids.len() - 1) {
        cri.set_pod(
            id,
            &format!("web-{i}-7d4b9c8f6-x2x9z"),
            &format!("6f1c2a4e-{i:04}-4b8e-9f3a-0c5d7e9b1a2f"),
            if i % 2 == 0 { "default" } else { "team-a" },
            i != ids.len() - 2,
        );
    }
    let failing = ids[2].clone();
    p.sim.fault(&failing, "http500");
    // Go asks the runtime 5 s after it saw sandboxes, then every 5 s for
    // those still unknown: wait until both carry every pod's labels.
    let labelled = |text: &str| {
        ids.iter()
            .take(ids.len() - 2)
            .filter(|id| **id != failing)
            .all(|id| {
                text.lines().any(|l| {
                    l.contains(&format!("sandbox_id=\"{id}\"")) && l.contains("cri_uid=\"6f1c")
                })
            })
    };
    p.go.wait_for("/metrics", 30, |r| labelled(&r.text()));
    p.rs.wait_for("/metrics", 30, |r| labelled(&r.text()));
    let served: Vec<String> = ids.iter().filter(|id| **id != failing).cloned().collect();
    let (g, r) = p.compare_metrics("mixed node, pod labels", "/metrics", &served);
    // DOC_OWN_COUNTS: a failed shim fails our scrape count, not upstream's.
    let failed = "kata_monitor_scrape_failed_count";
    assert_eq!(g.value(failed, failed), Some(0.0));
    assert!(r.value(failed, failed).unwrap() >= 1.0);
    // The unknown and the NOT READY sandboxes are served with empty pod
    // labels by both.
    for id in &ids[ids.len() - 2..] {
        let key = format!("kata_agent_scrape_count{{sandbox_id=\"{id}\"}}");
        assert!(
            g.value("kata_agent_scrape_count", &key).is_some(),
            "Go serves {id} without pod labels"
        );
    }
    // filter_family, with one prefix and with two. (Prefixes that overlap
    // are not compared: Go then emits a family twice, which no parser
    // accepts; we emit it once.)
    for filter in [
        "kata_guest",
        "kata_agent_io,kata_shim_go_gc",
        "kata_hypervisor",
    ] {
        let target = format!("/metrics?filter_family={filter}");
        let (g, r) = p.compare_metrics(&target, &target, &served);
        assert!(
            r.fams
                .keys()
                .chain(g.fams.keys())
                .all(|f| filter.split(',').any(|prefix| f.starts_with(prefix))),
            "{target}: only the filtered families"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// DOC_INVALID_LINES: one bad line costs upstream the whole sandbox (its
/// parser stops at the first error), us only that line.
#[test]
fn an_invalid_line_drops_the_line_not_the_sandbox() {
    let test = "differential::an_invalid_line_drops_the_line_not_the_sandbox";
    if go_peer::or_skip(test).is_none() {
        return;
    }
    let dir = tmpdir("dbad");
    let mut body = std::fs::read(fixture("default.prom")).unwrap();
    body.extend_from_slice(b"kata-bad-name 1\n");
    let bad = dir.join("bad.prom");
    std::fs::write(&bad, body).unwrap();
    let files = [fixture("default.prom"), bad.display().to_string()];
    let mut args = vec!["--sandboxes", "2"];
    args.extend(body_args(&files));
    let Some(p) = pair(test, &args, &[]) else {
        return;
    };
    let (good, bad_id) = (p.sim.ids[0].clone(), p.sim.ids[1].clone());
    let (g, r) = p.scrape("/metrics", &[]);
    assert_eq!(g.sandbox_ids(), BTreeSet::from([good.clone()]));
    assert_eq!(
        r.sandbox_ids(),
        BTreeSet::from([good.clone(), bad_id.clone()])
    );
    assert_eq!(
        r.series_of(&bad_id),
        r.series_of(&good),
        "only the line is lost"
    );
    let dropped = format!(
        "kata_monitor_dropped_lines_total{{reason=\"bad_metric_name\",sandbox_id=\"{bad_id}\"}}"
    );
    assert_eq!(
        r.value("kata_monitor_dropped_lines_total", &dropped),
        Some(1.0),
        "{:?}",
        r.fams.get("kata_monitor_dropped_lines_total")
    );
    assert_no_problems(
        "the good sandbox",
        &compare(&g, &r.without(&bad_id), &excused),
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Sandboxes that disagree on a family's TYPE (DOC_TYPE_CONFLICT) and on
/// another's HELP (DOC_HELP_CONFLICT).
#[test]
fn sandboxes_disagreeing_on_type_and_help() {
    let test = "differential::sandboxes_disagreeing_on_type_and_help";
    if go_peer::or_skip(test).is_none() {
        return;
    }
    let dir = tmpdir("dconf");
    let default = std::fs::read_to_string(fixture("default.prom")).unwrap();
    let (help_a, help_b) = (
        "Statistics about memory usage in the system.",
        "Memory statistics.",
    );
    let other = default
        .replace(
            "# TYPE kata_guest_load gauge",
            "# TYPE kata_guest_load counter",
        )
        .replace(help_a, help_b);
    let path = dir.join("other.prom");
    std::fs::write(&path, other).unwrap();
    let files = [fixture("default.prom"), path.display().to_string()];
    let mut args = vec!["--sandboxes", "4"];
    args.extend(body_args(&files));
    let Some(p) = pair(test, &args, &[]) else {
        return;
    };
    // Sandboxes 0 and 2 serve default.prom, 1 and 3 the other body: two
    // votes each, so Kata's own TYPE and HELP (default.prom's) decide,
    // whichever sandbox comes first in id order.
    let (want_help, want_type) = (help_a, "gauge");
    let (_, r) = p.scrape("/metrics", &[]);
    let meminfo = &r.fams["kata_guest_meminfo"];
    assert_eq!(meminfo.help.as_deref(), Some(want_help));
    let load = &r.fams["kata_guest_load"];
    assert_eq!(load.typ.as_deref(), Some(want_type));
    assert_eq!(
        load.sandbox_ids.len(),
        2,
        "the other TYPE's sandboxes lose the family"
    );
    // Every other family has the series of all four.
    assert!(
        r.fams
            .iter()
            .all(|(name, f)| name.starts_with("kata_monitor_")
                || name == "kata_guest_load"
                || f.sandbox_ids.len() == 4)
    );
    // Upstream: HELP from either, and an answer cut short at the first
    // sample of the wrong type.
    for _ in 0..3 {
        let g = p.go.get("/metrics");
        assert_eq!(g.status, 200);
        let text = g.text();
        // (When the answer got that far.)
        if let Some(help) = text
            .lines()
            .find_map(|l| l.strip_prefix("# HELP kata_guest_meminfo "))
        {
            assert!([help_a, help_b].contains(&help), "{help}");
        }
        let load_series = text
            .lines()
            .filter(|l| l.starts_with("kata_guest_load{"))
            .count();
        assert!(
            load_series < 12,
            "Go cannot encode both types: {load_series}"
        );
    }
    assert!(p.go.log_text().contains("failed aggregateSandboxMetrics"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Sandboxes appearing and vanishing while both monitors run.
#[test]
fn sandboxes_appear_and_vanish() {
    let test = "differential::sandboxes_appear_and_vanish";
    let Some(mut p) = pair(test, &["--sandboxes", "3", "--bodies", "default,rs"], &[]) else {
        return;
    };
    let ids = p.sim.ids.clone();
    p.compare_metrics("start", "/metrics", &ids);
    let added = [p.sim.add("rs"), p.sim.add("small"), p.sim.add("default")];
    p.sim.cmd(&format!("remove {}", ids[0]));
    p.sim.cmd(&format!("remove {}", added[1]));
    // Not sandboxes for either: a plain file. DOC_ID_NAMES: a directory
    // whose name is no id is one for upstream only.
    let go_root = &p.sim.roots[0];
    std::fs::write(go_root.join("plain-file"), b"").unwrap();
    std::fs::create_dir(go_root.join("not an id")).unwrap();
    p.sim.ids = p
        .sim
        .cmd("list")
        .split_whitespace()
        .map(String::from)
        .collect();
    let want: BTreeSet<String> = p.sim.ids.iter().cloned().collect();
    p.rs.wait_for("/sandboxes", 10, |r| lines(r) == want);
    let mut go_want = want.clone();
    go_want.insert("not an id".into());
    p.go.wait_for("/sandboxes", 10, |r| lines(r) == go_want);
    let now = p.sim.ids.clone();
    assert_eq!(now.len(), 4);
    p.compare_metrics("after adds and removals", "/metrics", &now);
    // Two scrapes in a row: upstream sets running_shim_count while
    // answering, after its own families are written, so only the second
    // answer shows the current count; then both agree (but for the
    // directory upstream takes for a sandbox, DOC_ID_NAMES).
    let (g, r) = p.scrape("/metrics", &[]);
    let key = "kata_monitor_running_shim_count";
    assert_eq!(g.value(key, key), Some(5.0));
    assert_eq!(r.value(key, key), Some(4.0));
}

// ---------------------------------------------------------------------------
// The other endpoints.
// ---------------------------------------------------------------------------

fn media(r: &Resp) -> Option<&str> {
    r.header("content-type")
}

/// Status, Content-Type and body alike.
fn assert_alike(what: &str, g: &Resp, r: &Resp) {
    assert_eq!(g.status, r.status, "{what}: status (Go, ours)");
    assert_eq!(media(g), media(r), "{what}: Content-Type (Go, ours)");
    assert!(
        g.body == r.body,
        "{what}: bodies differ:\nGo:   {:?}\nours: {:?}",
        truncate(&g.text()),
        truncate(&r.text())
    );
}

fn truncate(s: &str) -> String {
    s.chars().take(400).collect()
}

#[test]
fn metrics_negotiation_and_methods() {
    let test = "differential::metrics_negotiation_and_methods";
    let Some(p) = pair(test, &["--sandboxes", "2"], &[]) else {
        return;
    };
    // DOC_CONTENT_TYPE: no `escaping=underscores`, and text even to a
    // client preferring protobuf.
    let (g, r) = p.both("/metrics", &[("Accept", PROMETHEUS_ACCEPT)]);
    assert_eq!(
        media(&g),
        Some("text/plain; version=0.0.4; charset=utf-8; escaping=underscores")
    );
    assert_eq!(media(&r), Some("text/plain; version=0.0.4; charset=utf-8"));
    let proto = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.9,text/plain;version=0.0.4;q=0.5";
    let (g, r) = p.both("/metrics", &[("Accept", proto)]);
    assert!(
        media(&g).is_some_and(|t| t.starts_with("application/vnd.google.protobuf")),
        "{:?}",
        media(&g)
    );
    assert_eq!(media(&r), Some("text/plain; version=0.0.4; charset=utf-8"));
    // DOC_ACCEPT_ENCODING: gzip or not, (Go, ours).
    for (accept, want) in [
        ("gzip", (true, true)),
        ("deflate, gzip;q=0.5", (true, true)),
        ("identity", (false, false)),
        ("gzip;q=0", (true, false)),
        ("x-gzip", (false, true)),
        ("*", (false, true)),
    ] {
        let (g, r) = p.both(
            "/metrics?filter_family=kata_guest",
            &[("Accept-Encoding", accept)],
        );
        let gz = |r: &Resp| r.header("content-encoding") == Some("gzip");
        assert_eq!((gz(&g), gz(&r)), want, "Accept-Encoding: {accept}");
    }
    // HEAD: the same head, no body.
    let (g, r) = (
        p.go.request("HEAD", "/metrics", &[]),
        p.rs.request("HEAD", "/metrics", &[]),
    );
    assert_eq!((g.status, r.status), (200, 200));
    assert!(g.body.is_empty() && r.body.is_empty());
    // DOC_FILTER: the same families for a plain list of prefixes; an empty
    // prefix is everything for upstream (its answer then repeats families),
    // nothing here; a repeated parameter counts for us, not for upstream.
    let fams = |r: &Resp| -> BTreeSet<String> {
        r.text()
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .map(|l| l.split(' ').next().unwrap().to_string())
            .collect()
    };
    let (g, r) = p.both("/metrics?filter_family=kata_guest,kata_agent", &[]);
    assert_eq!(fams(&g), fams(&r));
    let guest_agent = fams(&r);
    let (g, r) = p.both("/metrics?filter_family=kata_guest,", &[]);
    assert!(fams(&g).len() > guest_agent.len(), "Go: every family");
    assert!(fams(&r).iter().all(|f| f.starts_with("kata_guest")));
    let (g, r) = p.both(
        "/metrics?filter_family=kata_guest&filter_family=kata_agent",
        &[],
    );
    assert!(fams(&g).iter().all(|f| f.starts_with("kata_guest")));
    assert_eq!(fams(&r), guest_agent);
    // DOC_EMPTY_SANDBOX.
    let (g, r) = p.both("/metrics?sandbox=", &[]);
    assert_eq!((g.status, r.status), (200, 400));
    assert!(
        g.text().contains("kata_monitor_scrape_count"),
        "Go: the whole /metrics"
    );
    // DOC_METHODS_PATHS: upstream answers any method.
    let (g, r) = (
        p.go.request("POST", "/metrics", &[]),
        p.rs.request("POST", "/metrics", &[]),
    );
    assert_eq!((g.status, r.status), (200, 405));
}

#[test]
fn sandbox_endpoints_answer_alike() {
    let test = "differential::sandbox_endpoints_answer_alike";
    let Some(mut p) = pair(test, &["--sandboxes", "3", "--bodies", "default,rs"], &[]) else {
        return;
    };
    let (go_id, rs_id) = (p.sim.ids[0].clone(), p.sim.ids[1].clone());

    // DOC_OWN_COUNTS: upstream counts `?sandbox=` requests as scrapes.
    let count = |m: &Monitor| {
        let v = View::parse(&m.get("/metrics").body).unwrap();
        let n = "kata_monitor_scrape_count";
        v.value(n, n).unwrap()
    };
    let (g0, r0) = (count(&p.go), count(&p.rs));
    p.both(&format!("/metrics?sandbox={go_id}"), &[]);
    assert_eq!((count(&p.go) - g0, count(&p.rs) - r0), (2.0, 1.0));

    // /sandboxes: the same ids (DOC_ORDER: ours in id order, Go's in map
    // order), and the same HTML page but for the order of its items.
    let (g, r) = p.both("/sandboxes", &[]);
    assert_eq!((g.status, media(&g)), (r.status, media(&r)));
    assert_eq!(lines(&g), lines(&r));
    let sorted: Vec<String> = lines(&r).into_iter().collect();
    assert_eq!(r.text(), sorted.join("\n") + "\n", "ours is in id order");
    let (g, r) = p.both("/sandboxes", &[("Accept", "text/html,*/*")]);
    assert_eq!((g.status, media(&g)), (r.status, media(&r)));
    assert_eq!(lines(&g), lines(&r), "/sandboxes as HTML");

    // The index page: upstream's, plus /healthz (DOC_HEALTHZ).
    for accept in ["*/*", "text/html"] {
        let (g, r) = p.both("/", &[("Accept", accept)]);
        assert_eq!((g.status, media(&g)), (r.status, media(&r)), "/ ({accept})");
        // Items are lines of text, or `<li>` elements of HTML.
        let sep = if accept == "text/html" { "<li>" } else { "\n" };
        let without = r
            .text()
            .split(sep)
            .filter(|item| !item.contains("/healthz"))
            .collect::<Vec<_>>()
            .join(sep);
        assert_eq!(g.text(), without, "/ ({accept}) but for the /healthz line");
    }
    // DOC_UNKNOWN_PATH: upstream serves the index for any path.
    let (g, r) = p.both("/nope", &[]);
    assert_eq!((g.status, r.status), (200, 404));

    // ?sandbox= passthrough: the shim's body as it is, for either runtime.
    for id in [&go_id, &rs_id] {
        let (g, r) = p.both(&format!("/metrics?sandbox={id}"), &[]);
        assert_eq!((g.status, r.status), (200, 200));
        assert!(g.body == r.body, "?sandbox={id}: bodies differ");
        // DOC_SANDBOX_CONTENT_TYPE: Go sniffs.
        assert_eq!(media(&g), Some("text/plain; charset=utf-8"));
        assert_eq!(media(&r), Some("text/plain; version=0.0.4; charset=utf-8"));
        let (g, r) = p.both(&format!("/agent-url?sandbox={id}"), &[]);
        assert_alike(&format!("/agent-url?sandbox={id}"), &g, &r);
    }

    // Errors: the same status where upstream's has a reason
    // (DOC_ERROR_TEXT: not the same words); unknown ids are a 404 here
    // (DOC_UNKNOWN_SANDBOX).
    let (g, r) = p.both("/agent-url", &[]);
    assert_eq!((g.status, r.status), (400, 400));
    assert_eq!(media(&g), media(&r));
    for (target, go_status) in [
        ("/agent-url?sandbox=nope", 400),
        ("/metrics?sandbox=nope", 500),
        ("/debug/vars?sandbox=nope", 400),
    ] {
        let (g, r) = p.both(target, &[]);
        assert_eq!((g.status, r.status), (go_status, 404), "{target}");
    }

    // DOC_SHIM_STATUS: a shim answering 500.
    p.sim.fault(&go_id, "http500");
    let (g, r) = p.both(&format!("/agent-url?sandbox={go_id}"), &[]);
    assert_eq!((g.status, r.status), (200, 502));
    assert_eq!(
        g.text(),
        "internal error\n\n",
        "Go passes the shim's error body on"
    );
}

#[test]
fn debug_proxies_answer_alike() {
    let test = "differential::debug_proxies_answer_alike";
    let Some(p) = pair(test, &["--sandboxes", "2", "--bodies", "default,rs"], &[]) else {
        return;
    };
    for id in &p.sim.ids {
        // DOC_RUNTIME_RS_DEBUG: a sandbox under a runtime-rs root (a root
        // named `kata`, the default `--runtime-rs-sandbox-dirs`) is a 501
        // here; upstream relays whatever the (simulated) shim answers.
        let runtime_rs = p
            .sim
            .roots
            .iter()
            .any(|r| r.file_name().is_some_and(|n| n == "kata") && r.join(id).exists());
        for path in [
            "/debug/vars",
            "/debug/pprof/",
            "/debug/pprof/cmdline",
            "/debug/pprof/symbol",
            "/debug/pprof/heap",
            "/debug/pprof/heap?debug=1",
            "/debug/pprof/goroutine?debug=2",
            "/debug/pprof/allocs?seconds=1",
            "/debug/pprof/profile?seconds=1",
            "/debug/pprof/trace?seconds=0.2",
            "/debug/pprof",
        ] {
            let sep = if path.contains('?') { '&' } else { '?' };
            let target = format!("{path}{sep}sandbox={id}");
            let (g, r) = p.both(&target, &[]);
            if runtime_rs && path != "/debug/pprof" {
                assert_eq!(r.status, 501, "{target}: runtime-rs sandbox");
                assert!(r.text().contains("runtime-rs"), "{target}: {}", r.text());
                continue;
            }
            assert_alike(&target, &g, &r);
            assert_eq!(
                g.header("content-disposition"),
                r.header("content-disposition"),
                "{target}: Content-Disposition"
            );
            assert_eq!(g.header("location"), r.header("location"), "{target}");
        }
        // DOC_SHIM_STATUS: an unknown profile is the shim's 404 here, 200
        // from upstream (same body).
        let target = format!("/debug/pprof/nothing?sandbox={id}");
        let (g, r) = p.both(&target, &[]);
        if runtime_rs {
            assert_eq!(r.status, 501, "{target}: runtime-rs sandbox");
            continue;
        }
        assert_eq!((g.status, r.status), (200, 404), "{target}");
        assert!(g.body == r.body, "{target}: body");
    }
    // No sandbox parameter: both 400 (DOC_ERROR_TEXT: other words).
    let (g, r) = p.both("/debug/vars", &[]);
    assert_eq!((g.status, r.status), (400, 400));
}

/// Keeps the tests above honest: the harness sees a real difference.
#[test]
fn a_difference_is_caught() {
    let (go, mut ours) = (
        View::parse(b"# TYPE a gauge\na{sandbox_id=\"x\"} 1\n").unwrap(),
        View::parse(b"# TYPE a gauge\na{sandbox_id=\"x\"} 1.0\n").unwrap(),
    );
    assert!(compare(&go, &ours, &excused).is_empty());
    ours =
        View::parse(b"# TYPE a counter\na{sandbox_id=\"x\"} 2\nb{sandbox_id=\"x\"} 1\n").unwrap();
    let problems = compare(&go, &ours, &excused);
    assert_eq!(problems.len(), 3, "{problems:?}");
    let hist = |le: &str| {
        View::parse(
            format!("# TYPE h histogram\nh_bucket{{le=\"{le}\",sandbox_id=\"x\"}} 1\nh_sum{{sandbox_id=\"x\"}} 1\nh_count{{sandbox_id=\"x\"}} 1\n")
                .as_bytes(),
        )
        .unwrap()
    };
    assert!(compare(&hist("1.0"), &hist("1"), &excused).is_empty());
    assert_eq!(compare(&hist("2"), &hist("1"), &excused).len(), 2);
}
