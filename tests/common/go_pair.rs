//! Both monitors, this one and upstream's Go kata-monitor, on one simulated
//! node, for the differential tests (`tests/differential.rs`): starting
//! them, asking both the same thing, comparing `/metrics` answers, and the
//! shim bodies the nodes serve (fixtures, generated ones).

use super::go_peer;
use super::godiff::{View, assert_no_problems, compare};
use super::node::{Monitor, Resp, Sim};
use std::collections::BTreeSet;
use std::io::Read;
use std::path::Path;

/// Which families may be in one answer only: the README entry that says
/// why (see `godiff::compare`).
pub type Excused = fn(&str, bool) -> Option<&'static str>;

/// A simulated node with both monitors on it.
pub struct Pair {
    pub sim: Sim,
    pub rs: Monitor,
    pub go: Monitor,
    excused: Excused,
}

/// The peer and a node started with `sim_args` (frozen bodies), both
/// monitors on it with `extra` flags, once both list every sandbox; `None`
/// when the Go peer is missing (skipped).
pub fn pair(test: &str, sim_args: &[&str], extra: &[&str], excused: Excused) -> Option<Pair> {
    let peer = go_peer::or_skip(test)?;
    let mut args = vec!["--frozen"];
    args.extend_from_slice(sim_args);
    let sim = Sim::start(&args);
    let roots = sim.roots_arg();
    let rs = Monitor::start(&roots, extra);
    let mut go_args = vec!["--sandbox-dirs", &roots, "--log-level", "debug"];
    go_args.extend_from_slice(extra);
    let go = go_peer::start(&peer, &go_args);
    let p = Pair {
        sim,
        rs,
        go,
        excused,
    };
    p.wait_listed();
    Some(p)
}

/// The lines of an answer, as a set.
pub fn lines(r: &Resp) -> BTreeSet<String> {
    r.text().lines().map(String::from).collect()
}

impl Pair {
    /// Waits until both monitors list exactly the simulator's sandboxes.
    pub fn wait_listed(&self) {
        let want: BTreeSet<String> = self.sim.ids.iter().cloned().collect();
        self.rs.wait_for("/sandboxes", 10, |r| lines(r) == want);
        self.go.wait_for("/sandboxes", 10, |r| lines(r) == want);
    }

    /// Both answers to `target` with `headers`.
    pub fn both(&self, target: &str, headers: &[(&str, &str)]) -> (Resp, Resp) {
        (
            self.go.get_with(target, headers),
            self.rs.get_with(target, headers),
        )
    }

    /// Both `/metrics` answers (as Prometheus asks), parsed.
    pub fn scrape(&self, target: &str, headers: &[(&str, &str)]) -> (View, View) {
        let mut h = vec![("Accept", PROMETHEUS_ACCEPT)];
        h.extend_from_slice(headers);
        let (g, r) = self.both(target, &h);
        (view("Go", &g), view("ours", &r))
    }

    /// Compares one `/metrics` answer of each, requiring the sandbox series
    /// of exactly `ids`.
    pub fn compare_metrics(&self, what: &str, target: &str, ids: &[String]) -> (View, View) {
        let (g, r) = self.scrape(target, &[]);
        let want: BTreeSet<String> = ids.iter().cloned().collect();
        assert_eq!(g.sandbox_ids(), want, "{what}: sandboxes in Go's answer");
        assert_eq!(r.sandbox_ids(), want, "{what}: sandboxes in ours");
        assert_no_problems(what, &compare(&g, &r, &self.excused));
        (g, r)
    }
}

/// What Prometheus 2.42 sends (OpenMetrics first; Go's `expfmt.Negotiate`
/// answers the text format to it, as we do).
pub const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// A `/metrics` answer, gunzipped if need be, parsed strictly.
pub fn view(who: &str, r: &Resp) -> View {
    assert_eq!(r.status, 200, "{who}: {}", r.text());
    View::parse(&plain_body(r)).unwrap_or_else(|e| panic!("{who}'s /metrics: {e}"))
}

pub fn plain_body(r: &Resp) -> Vec<u8> {
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
pub const GENERATOR: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/gen/gen_shim_metrics.py"
);

/// Writes one generated body per `args` into `dir`; `rs:` is prefixed to
/// the paths of runtime-rs bodies, as `kata-sim --body-file` takes them.
/// `None` (skipped) when python3 cannot run the generator.
pub fn generate(test: &str, dir: &Path, shapes: &[&[&str]]) -> Option<Vec<String>> {
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
                assert!(!super::peer::in_ci(), "{test}: {why}");
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

pub fn fixture(name: &str) -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/").to_string() + name
}

/// `--body-file F` for each of `files`.
pub fn body_args(files: &[String]) -> Vec<&str> {
    files
        .iter()
        .flat_map(|f| ["--body-file", f.as_str()])
        .collect()
}
