//! Property: one hostile sandbox cannot spoil the others. For random sets of
//! healthy sandboxes (one family schema, so they agree with each other) plus
//! one hostile sandbox at any position in id order and of any age, sending
//! any TYPE, HELP or sample lines for the families the healthy ones emit
//! (and for the names a parser would confuse with them): whenever the
//! healthy sandboxes outnumber it (or a lone healthy one emits only families
//! Kata defines, where ties go to Kata), every healthy sandbox's series are
//! byte-identical to a run without the hostile sandbox, nothing of theirs is
//! dropped, and the families' HELP and TYPE lines are unchanged.

mod common;

use common::oracle::{Input, build_with, check_merge};
use kata_monitor::wire::expo::{Filter, Limits};
use proptest::prelude::*;
use std::collections::BTreeMap;

/// Families Kata defines (as a shim body names them), with Kata's TYPE and HELP.
const KATA: &[(&str, &str, &str)] = &[
    ("kata_guest_load", "gauge", "Guest system load."),
    ("kata_agent_scrape_count", "counter", "Metrics scrape count"),
    (
        "kata_hypervisor_scrape_count",
        "counter",
        "Hypervisor metrics scrape count.",
    ),
    (
        "kata_shim_rpc_durations_histogram_milliseconds",
        "histogram",
        "RPC latency distributions.",
    ),
    (
        "go_gc_duration_seconds",
        "summary",
        "A summary of the wall-time pause (stop-the-world) duration in garbage collection cycles.",
    ),
    (
        "go_goroutines",
        "gauge",
        "Number of goroutines that currently exist.",
    ),
];

/// Other names, some of them suffixed like parts of a histogram/summary.
const OTHER: &[&str] = &[
    "app_requests",
    "app_latency",
    "app_queue_count",
    "app_temp_sum",
    "app_x_bucket",
    "process_y",
    "b:c",
];

const KINDS: &[&str] = &["counter", "gauge", "histogram", "summary", "untyped", ""];

#[derive(Clone, Debug)]
struct Fam {
    name: String,
    /// "" for no TYPE line.
    kind: String,
    help: Option<String>,
}

/// A schema of families no two of which a parser would read as one.
fn schema(kata_only: bool) -> impl Strategy<Value = Vec<Fam>> {
    let kata = prop::sample::subsequence(KATA.to_vec(), 1..=KATA.len()).prop_map(|v| {
        v.into_iter()
            .map(|(n, k, h)| Fam {
                name: n.into(),
                kind: k.into(),
                help: Some(h.into()),
            })
            .collect::<Vec<_>>()
    });
    let other = prop::collection::vec(
        (
            prop::sample::select(OTHER),
            prop::sample::select(KINDS),
            prop::option::of("[A-Za-z .]{0,12}"),
        ),
        0..4,
    );
    (kata, other).prop_map(move |(mut fams, other)| {
        if !kata_only {
            for (n, k, h) in other {
                fams.push(Fam {
                    name: n.into(),
                    kind: k.into(),
                    help: h,
                });
            }
        }
        // One family per name, and none that is a part of a histogram or
        // summary of the schema.
        let mut out: Vec<Fam> = Vec::new();
        for f in fams {
            let clash = out.iter().any(|o| {
                o.name == f.name
                    || ["_bucket", "_sum", "_count"].iter().any(|s| {
                        (matches!(o.kind.as_str(), "histogram" | "summary")
                            && f.name == format!("{}{s}", o.name))
                            || (matches!(f.kind.as_str(), "histogram" | "summary")
                                && o.name == format!("{}{s}", f.name))
                    })
            });
            if !clash {
                out.push(f);
            }
        }
        out
    })
}

/// A healthy sandbox's body: every schema family, its own label values.
fn healthy_body(schema: &[Fam], i: usize, keys: &[&str]) -> Vec<u8> {
    let mut b = String::new();
    for f in schema {
        if let Some(h) = &f.help {
            b.push_str(&format!("# HELP {} {h}\n", f.name));
        }
        if !f.kind.is_empty() {
            b.push_str(&format!("# TYPE {} {}\n", f.name, f.kind));
        }
        for k in keys {
            let n = &f.name;
            match f.kind.as_str() {
                "histogram" => {
                    for le in ["1", "+Inf"] {
                        b.push_str(&format!("{n}_bucket{{k=\"{k}\",le=\"{le}\"}} {i}\n"));
                    }
                    b.push_str(&format!(
                        "{n}_sum{{k=\"{k}\"}} {i}.5\n{n}_count{{k=\"{k}\"}} {i}\n"
                    ));
                }
                "summary" => {
                    b.push_str(&format!("{n}{{k=\"{k}\",quantile=\"0.5\"}} {i}\n"));
                    b.push_str(&format!(
                        "{n}_sum{{k=\"{k}\"}} {i}.5\n{n}_count{{k=\"{k}\"}} {i}\n"
                    ));
                }
                _ => b.push_str(&format!("{n}{{k=\"{k}\"}} {i}\n")),
            }
        }
    }
    b.into_bytes()
}

/// Names the hostile sandbox aims at: the schema's, their parts, their bases.
fn targets(schema: &[Fam]) -> Vec<String> {
    let mut t = Vec::new();
    for f in schema {
        t.push(f.name.clone());
        for s in ["_bucket", "_sum", "_count"] {
            t.push(format!("{}{s}", f.name));
            if let Some(base) = f.name.strip_suffix(s) {
                t.push(base.to_string());
            }
        }
        if let Some(rest) = f.name.strip_prefix("go_") {
            t.push(format!("kata_shim_go_{rest}"));
        }
    }
    t
}

fn hostile_line(targets: Vec<String>) -> impl Strategy<Value = String> {
    let name = prop::sample::select(targets);
    let labels = prop::collection::vec(
        (
            prop::sample::select(&["k", "le", "quantile", "x", "sandbox_id", "cri_uid"][..]),
            prop::sample::select(&["a", "b", "", "1", "+Inf", "0.5", "zz", "h0"][..]),
        ),
        0..3,
    );
    prop_oneof![
        1 => (name.clone(), prop::sample::select(KINDS))
            .prop_map(|(n, k)| format!("# TYPE {n} {}", if k.is_empty() { "gauge" } else { k })),
        1 => (name.clone(), "[ -~]{0,20}").prop_map(|(n, h)| format!(
            "# HELP {n} {}",
            h.replace('\\', "\\\\")
        )),
        3 => (name, labels, prop::sample::select(&["1", "NaN", "-3", "1e9"][..])).prop_map(
            |(n, ls, v)| {
                let ls: Vec<String> = ls.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
                format!("{n}{{{}}} {v}", ls.join(","))
            }
        ),
        1 => Just("garbage line".to_string()),
    ]
}

#[derive(Debug)]
struct Case {
    healthy: Vec<Input>,
    hostile: Input,
    /// Insertion position of the hostile sandbox (0: known longest).
    age: usize,
    families: Vec<Fam>,
}

fn case(kata_only: bool, healthy: std::ops::Range<usize>) -> impl Strategy<Value = Case> {
    (schema(kata_only), healthy).prop_flat_map(|(families, n)| {
        let t = targets(&families);
        (
            Just(families),
            prop::collection::vec(prop::sample::subsequence(vec!["a", "b", "c"], 1..=3), n),
            prop::collection::vec(hostile_line(t), 0..30),
            0..=n,
            0..=n,
        )
            .prop_map(|(families, keys, lines, pos, age)| {
                let healthy: Vec<Input> = keys
                    .iter()
                    .enumerate()
                    .map(|(i, k)| {
                        let body = healthy_body(&families, i, k);
                        Input::new(&format!("h{i}"), "u", "n", "ns", &body)
                    })
                    .collect();
                // An id sorting before `h{pos}` (and after `h{pos-1}`).
                let id = if pos == 0 {
                    "a".to_string()
                } else {
                    format!("h{}x", pos - 1)
                };
                let mut body = lines.join("\n");
                body.push('\n');
                let hostile = Input::new(&id, "u", "n", "ns", body.as_bytes());
                Case {
                    healthy,
                    hostile,
                    age,
                    families,
                }
            })
    })
}

/// Output lines of sandbox `id` (marked by its injected labels), in order.
fn lines_of<'a>(out: &'a str, id: &str) -> Vec<&'a str> {
    let mark = format!("sandbox_id=\"{id}\",cri_uid=");
    out.lines()
        .filter(|l| l.contains(&format!("{{{mark}")) || l.contains(&format!(",{mark}")))
        .collect()
}

/// `# HELP`/`# TYPE` lines, by family name.
fn headers(out: &str) -> BTreeMap<String, Vec<&str>> {
    let mut h: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for l in out.lines().filter(|l| l.starts_with("# ")) {
        let name = l.split(' ').nth(2).unwrap_or("").to_string();
        h.entry(name).or_default().push(l);
    }
    h
}

fn check(c: &Case) -> Result<(), String> {
    let healthy: Vec<&Input> = c.healthy.iter().collect();
    let alone = build_with(healthy.iter().copied(), 0xbad, Limits::default());
    let out_a = alone.render_to_vec(&Filter::all());
    check_merge(&c.healthy, &alone, &out_a, true)?;

    let mut all = healthy.clone();
    all.insert(c.age, &c.hostile);
    let expo = build_with(all.iter().copied(), 0xbad, Limits::default());
    let out_b = expo.render_to_vec(&Filter::all());
    let inputs: Vec<Input> = all.iter().map(|i| (*i).clone()).collect();
    check_merge(&inputs, &expo, &out_b, false)?;

    let (a, b) = (
        String::from_utf8(out_a).map_err(|e| e.to_string())?,
        String::from_utf8(out_b).map_err(|e| e.to_string())?,
    );
    for (k, src) in expo.sources().iter().enumerate() {
        if src.id != c.hostile.labels[0] && expo.drops(k).total() > 0 {
            return Err(format!(
                "healthy {} lost lines: {:?}",
                src.id,
                expo.drops(k).iter().collect::<Vec<_>>()
            ));
        }
    }
    for h in &c.healthy {
        let id = &h.labels[0];
        let (la, lb) = (lines_of(&a, id), lines_of(&b, id));
        if la.is_empty() || la != lb {
            return Err(format!("series of {id} differ:\n{la:#?}\nvs\n{lb:#?}"));
        }
    }
    let (ha, hb) = (headers(&a), headers(&b));
    for f in &c.families {
        let name = match f.name.strip_prefix("go_") {
            Some(rest) => format!("kata_shim_go_{rest}"),
            None if f.name.starts_with("process_") => format!("kata_shim_{}", f.name),
            None => f.name.clone(),
        };
        if ha.get(&name) != hb.get(&name) {
            return Err(format!(
                "headers of {name} differ: {:?} vs {:?}",
                ha.get(&name),
                hb.get(&name)
            ));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(512),
        ..ProptestConfig::default()
    })]

    #[test]
    fn outnumbered_hostile_sandbox_changes_nothing(c in case(false, 2..5)) {
        if let Err(e) = check(&c) {
            prop_assert!(false, "{e}\nhostile {}: {:?}", c.hostile.labels[0], String::from_utf8_lossy(&c.hostile.body));
        }
    }

    #[test]
    fn kata_breaks_ties_for_a_lone_healthy_sandbox(c in case(true, 1..2)) {
        if let Err(e) = check(&c) {
            prop_assert!(false, "{e}\nhostile {}: {:?}", c.hostile.labels[0], String::from_utf8_lossy(&c.hostile.body));
        }
    }
}
