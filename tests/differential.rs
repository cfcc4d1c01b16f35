//! Differential tests: this monitor and upstream's Go kata-monitor side by
//! side on the same simulated nodes, answering the same requests.
//!
//! For every series carrying `sandbox_id`, both answers must have the same
//! name, label set and value (as floats: Go re-encodes numbers), and every
//! family the same HELP and TYPE; `/sandboxes`, `/agent-url`,
//! `/metrics?sandbox=` and the `/debug` proxies must answer alike (status,
//! content type, body). Where they may not, the difference is one README's
//! "Differences from upstream" lists: each exception below names its entry
//! (a `DOC_*` constant, whose text `documented_differences_are_in_the_readme`
//! finds in README.md).
//!
//! The Go peer is `../shared/peers/go-kata-monitor/run-go.sh` (or
//! `$KATA_MONITOR_GO_PEER`); it needs root. Without it every test here says
//! SKIPPED on stderr; under `KATA_MONITOR_CI=1` that is a failure. Shim
//! bodies are frozen (`kata-sim --frozen`): both monitors scrape the same
//! shims at different moments and must see the same values.

mod common;

use common::fake_cri::FakeCri;
use common::go_peer;
use common::godiff::{View, assert_no_problems, compare};
use common::node::{Monitor, Resp, Sim, tmpdir};
use std::collections::BTreeSet;
use std::io::Read;
use std::path::Path;

// ---------------------------------------------------------------------------
// The documented differences (README.md, "Differences from upstream").
// ---------------------------------------------------------------------------

const DOC_INVALID_LINES: &str =
    "are dropped and counted per sandbox and reason instead of failing the whole sandbox";
const DOC_TYPE_CONFLICT: &str = "a sandbox whose TYPE disagrees with the first sandbox's for a family loses only that family's samples";
const DOC_HELP_CONFLICT: &str =
    "when sandboxes disagree on a family's HELP, the first sandbox in id order gives it";
const DOC_NO_FABRICATION: &str = "are passed on as they are (upstream's re-encoding adds a `+Inf` bucket and zero `_sum` and `_count` series";
const DOC_ORDER: &str = "output order is deterministic (families sorted, sandboxes in id order)";
const DOC_UNKNOWN_SANDBOX: &str = "`?sandbox=` only accepts listed sandbox ids: another is a 404";
const DOC_EMPTY_SANDBOX: &str = "and an empty one is a 400";
const DOC_ID_NAMES: &str = "a directory in a sandbox root whose name is not a valid id";
const DOC_FILTER: &str = "empty prefixes (as in `a,`) are ignored where upstream's match every family, spaces around a prefix are trimmed, and repeated `filter_family` parameters add up (upstream reads the first)";
const DOC_ERROR_TEXT: &str = "error answers carry this monitor's own messages";
const DOC_SHIM_STATUS: &str = "a shim's error status is passed on";
const DOC_METHODS_PATHS: &str = "methods other than GET and HEAD get 405";
const DOC_UNKNOWN_PATH: &str = "unknown paths get 404";
const DOC_HEALTHZ: &str = "`/healthz` is added";
const DOC_CONTENT_TYPE: &str =
    "`/metrics` is always the text format, `text/plain; version=0.0.4; charset=utf-8`";
const DOC_SANDBOX_CONTENT_TYPE: &str = "`/metrics?sandbox=` declares the same Content-Type";
const DOC_ACCEPT_ENCODING: &str = "`Accept-Encoding` is read as HTTP defines it";
const DOC_OWN_COUNTS: &str =
    "upstream's own metrics keep their names, HELP and TYPE, but count a little differently";
const DOC_OWN_ADDED: &str = "own metrics upstream does not have are added";
const DOC_NO_GO_RUNTIME: &str = "upstream's Go runtime families (`kata_monitor_go_*`) are absent";

const ALL_DOCS: &[&str] = &[
    DOC_NO_FABRICATION,
    DOC_TYPE_CONFLICT,
    DOC_HELP_CONFLICT,
    DOC_INVALID_LINES,
    DOC_ORDER,
    DOC_UNKNOWN_SANDBOX,
    DOC_EMPTY_SANDBOX,
    DOC_ID_NAMES,
    DOC_FILTER,
    DOC_ERROR_TEXT,
    DOC_SHIM_STATUS,
    DOC_METHODS_PATHS,
    DOC_UNKNOWN_PATH,
    DOC_HEALTHZ,
    DOC_CONTENT_TYPE,
    DOC_SANDBOX_CONTENT_TYPE,
    DOC_ACCEPT_ENCODING,
    DOC_OWN_COUNTS,
    DOC_OWN_ADDED,
    DOC_NO_GO_RUNTIME,
];

/// Our own families upstream does not have (DOC_OWN_ADDED).
const OWN_ADDED: &[&str] = &[
    "kata_monitor_build_info",
    "kata_monitor_scrape_responses_total",
    "kata_monitor_scrape_reused_rounds_total",
    "kata_monitor_cri_requests_total",
    "kata_monitor_cri_request_duration_seconds",
    "kata_monitor_cri_connected",
    "kata_monitor_cri_connections_total",
    "kata_monitor_cri_pending_sandboxes",
    "kata_monitor_cri_unknown_sandboxes",
    "kata_monitor_sandbox_up",
    "kata_monitor_sandbox_scrape_duration_seconds",
    "kata_monitor_sandbox_scrape_bytes",
    "kata_monitor_sandbox_scrape_errors",
    "kata_monitor_dropped_lines_total",
];

/// The README entry that lets a family be in one answer only.
fn excused(family: &str, ours: bool) -> Option<&'static str> {
    if ours && OWN_ADDED.contains(&family) {
        Some(DOC_OWN_ADDED)
    } else if !ours && family.starts_with("kata_monitor_go_") {
        Some(DOC_NO_GO_RUNTIME)
    } else {
        None
    }
}

fn squash(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

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

// ---------------------------------------------------------------------------
// Harness.
// ---------------------------------------------------------------------------

/// A simulated node with both monitors on it.
struct Pair {
    sim: Sim,
    rs: Monitor,
    go: Monitor,
}

/// The peer and a node started with `sim_args` (frozen bodies), both
/// monitors on it with `extra` flags, once both list every sandbox; `None`
/// when the Go peer is missing (skipped).
fn pair(test: &str, sim_args: &[&str], extra: &[&str]) -> Option<Pair> {
    let peer = go_peer::or_skip(test)?;
    let mut args = vec!["--frozen"];
    args.extend_from_slice(sim_args);
    let sim = Sim::start(&args);
    let roots = sim.roots_arg();
    let rs = Monitor::start(&roots, extra);
    let mut go_args = vec!["--sandbox-dirs", &roots, "--log-level", "debug"];
    go_args.extend_from_slice(extra);
    let go = go_peer::start(&peer, &go_args);
    let p = Pair { sim, rs, go };
    p.wait_listed();
    Some(p)
}

fn lines(r: &Resp) -> BTreeSet<String> {
    r.text().lines().map(String::from).collect()
}

impl Pair {
    /// Waits until both monitors list exactly the simulator's sandboxes.
    fn wait_listed(&self) {
        let want: BTreeSet<String> = self.sim.ids.iter().cloned().collect();
        self.rs.wait_for("/sandboxes", 10, |r| lines(r) == want);
        self.go.wait_for("/sandboxes", 10, |r| lines(r) == want);
    }

    /// Both answers to `target` with `headers`.
    fn both(&self, target: &str, headers: &[(&str, &str)]) -> (Resp, Resp) {
        (
            self.go.get_with(target, headers),
            self.rs.get_with(target, headers),
        )
    }

    /// Both `/metrics` answers (as Prometheus asks), parsed.
    fn scrape(&self, target: &str, headers: &[(&str, &str)]) -> (View, View) {
        let mut h = vec![("Accept", PROMETHEUS_ACCEPT)];
        h.extend_from_slice(headers);
        let (g, r) = self.both(target, &h);
        (view("Go", &g), view("ours", &r))
    }

    /// Compares one `/metrics` answer of each, requiring the sandbox series
    /// of exactly `ids`.
    fn compare_metrics(&self, what: &str, target: &str, ids: &[String]) -> (View, View) {
        let (g, r) = self.scrape(target, &[]);
        let want: BTreeSet<String> = ids.iter().cloned().collect();
        assert_eq!(g.sandbox_ids(), want, "{what}: sandboxes in Go's answer");
        assert_eq!(r.sandbox_ids(), want, "{what}: sandboxes in ours");
        assert_no_problems(what, &compare(&g, &r, &excused));
        (g, r)
    }
}

/// What Prometheus 2.42 sends (OpenMetrics first; Go's `expfmt.Negotiate`
/// answers the text format to it, as we do).
const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// A `/metrics` answer, gunzipped if need be, parsed strictly.
fn view(who: &str, r: &Resp) -> View {
    assert_eq!(r.status, 200, "{who}: {}", r.text());
    View::parse(&plain_body(r)).unwrap_or_else(|e| panic!("{who}'s /metrics: {e}"))
}

fn plain_body(r: &Resp) -> Vec<u8> {
    match r.header("content-encoding") {
        Some("gzip") => {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&r.body[..])
                .read_to_end(&mut out)
                .expect("valid gzip");
            out
        }
        None => r.body.clone(),
        Some(e) => panic!("unexpected Content-Encoding {e}"),
    }
}

/// The generator of realistic shim bodies, copied from the shared
/// kata-metrics material.
const GENERATOR: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/gen/gen_shim_metrics.py"
);

/// Writes one generated body per `args` into `dir`; `rs:` is prefixed to
/// the paths of runtime-rs bodies, as `kata-sim --body-file` takes them.
/// `None` (skipped) when python3 cannot run the generator.
fn generate(test: &str, dir: &Path, shapes: &[&[&str]]) -> Option<Vec<String>> {
    let mut files = Vec::new();
    for (i, args) in shapes.iter().enumerate() {
        let out = match std::process::Command::new("python3")
            .arg(GENERATOR)
            .args(*args)
            .output()
        {
            Ok(o) if o.status.success() => o.stdout,
            other => {
                let why = format!("python3 cannot run the body generator: {other:?}");
                assert!(!go_peer::ci(), "{test}: {why}");
                let _ = std::io::Write::write_all(
                    &mut std::io::stderr(),
                    format!("SKIPPED {test}: {why}\n").as_bytes(),
                );
                return None;
            }
        };
        let path = dir.join(format!("body{i}.prom"));
        std::fs::write(&path, out).unwrap();
        let rs = args.windows(2).any(|w| w == ["--runtime", "rs"]) || args.contains(&"rs");
        let p = path.display().to_string();
        files.push(if rs { format!("rs:{p}") } else { p });
    }
    Some(files)
}

fn fixture(name: &str) -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/").to_string() + name
}

/// `--body-file F` for each of `files`.
fn body_args(files: &[String]) -> Vec<&str> {
    files
        .iter()
        .flat_map(|f| ["--body-file", f.as_str()])
        .collect()
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
    let labels = "cri_name=\"\",cri_namespace=\"\",cri_uid=\"\"";
    // DOC_NO_FABRICATION: series upstream makes up.
    for (fam, key) in [
        (
            "h",
            format!("h_bucket{{{labels},le=\"+Inf\",sandbox_id=\"{id}\"}}"),
        ),
        ("s", format!("s_sum{{{labels},sandbox_id=\"{id}\"}}")),
        ("s", format!("s_count{{{labels},sandbox_id=\"{id}\"}}")),
    ] {
        assert!(g.remove(fam, &key), "Go adds {key}");
        assert!(r.value(fam, &key).is_none(), "we add no {key}");
    }
    let ts = format!("ts_total{{{labels},sandbox_id=\"{id}\"}}");
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
        let key = format!(
            "kata_agent_scrape_count{{cri_name=\"\",cri_namespace=\"\",cri_uid=\"\",sandbox_id=\"{id}\"}}"
        );
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
        "kata_monitor_dropped_lines_total{{cri_name=\"\",cri_namespace=\"\",cri_uid=\"\",reason=\"bad_metric_name\",sandbox_id=\"{bad_id}\"}}"
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
    // Sandboxes 0 and 2 serve default.prom, 1 and 3 the other body.
    let mut by_id = p.sim.ids.clone();
    by_id.sort();
    let first_is_default = [&p.sim.ids[0], &p.sim.ids[2]].contains(&&by_id[0]);
    let (want_help, want_type) = if first_is_default {
        (help_a, "gauge")
    } else {
        (help_b, "counter")
    };
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
