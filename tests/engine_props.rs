//! Property tests: generated families, hostile lines and label values. The
//! merged output must always be valid and complete (every valid input sample
//! is either in the output, correctly labelled, or counted as dropped), and
//! for well-formed inputs nothing may be dropped at all.

mod common;

use common::expo_check::{LineKind, check_exposition, classify_lines, series_key};
use common::oracle::{
    INJECTED, Input, LINE_LEVEL, SAMPLE_LEVEL, build_with, render, run_all, transformed,
};
use kata_monitor::wire::expo::{Filter, Limits, Reason};
use proptest::prelude::*;
use std::collections::HashMap;

/// Names chosen to collide: suffix families, renamed prefixes, reserved ones.
const NAMES: &[&str] = &[
    "a",
    "a_total",
    "h",
    "h_bucket",
    "h_sum",
    "h_count",
    "s",
    "s_sum",
    "s_count",
    "go_x",
    "kata_shim_go_x",
    "process_y",
    "kata_shim_process_y",
    "go_x_sum",
    "kata_monitor_z",
    "b:c",
    "_u",
];
const LABELS: &[&str] = &[
    "x",
    "y",
    "le",
    "quantile",
    "sandbox_id",
    "cri_uid",
    "exported_cri_uid",
    "zz",
    "_",
];
const VALUES: &[&str] = &[
    "0",
    "1",
    "-1.5e10",
    "NaN",
    "+Inf",
    "-inf",
    "Infinity",
    "1e309",
    "abc",
    "0x1p3",
    "1_0",
    ".5",
    "5.",
    "+0",
    "1.7976931348623157e308",
    "",
];
const TYPES: &[&str] = &[
    "counter",
    "gauge",
    "histogram",
    "summary",
    "untyped",
    "Gauge",
    "gauge ",
    "info",
];

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn label_value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "[a-z0-9.+-]{1,8}",
        "\\PC{0,6}",
        Just("q\"uote\\back\nnl".to_string()),
        Just("é✓".to_string()),
    ]
}

fn sample_line() -> impl Strategy<Value = String> {
    (
        prop::sample::select(NAMES),
        prop::collection::vec((prop::sample::select(LABELS), label_value()), 0..4),
        prop::sample::select(VALUES),
        prop::option::of(0u64..2_000_000_000_000),
        0u8..8,
    )
        .prop_map(|(name, labels, value, ts, style)| {
            let sep = if style == 1 { " , " } else { "," };
            let mut l = name.to_string();
            if !labels.is_empty() || style == 2 {
                l.push(if style == 3 { ' ' } else { '{' });
                if style == 3 {
                    l.push('{');
                }
                let parts: Vec<String> = labels
                    .iter()
                    .map(|(n, v)| {
                        if style == 4 {
                            format!("{n} = \"{}\"", escape(v))
                        } else {
                            format!("{n}=\"{}\"", escape(v))
                        }
                    })
                    .collect();
                l.push_str(&parts.join(sep));
                if style == 5 && !labels.is_empty() {
                    l.push(',');
                }
                l.push('}');
            }
            l.push(if style == 6 { '\t' } else { ' ' });
            l.push_str(value);
            if let Some(t) = ts {
                l.push_str(&format!(" {t}"));
            }
            l
        })
}

fn meta_line() -> impl Strategy<Value = String> {
    prop_oneof![
        (prop::sample::select(NAMES), prop::sample::select(TYPES))
            .prop_map(|(n, t)| format!("# TYPE {n} {t}")),
        (prop::sample::select(NAMES), "\\PC{0,12}")
            .prop_map(|(n, h)| format!("# HELP {n} {}", h.replace('\\', "\\\\"))),
        (prop::sample::select(NAMES), "[ -~]{0,12}").prop_map(|(n, h)| format!("# HELP {n} {h}")),
        Just("# plain comment".to_string()),
        Just("#HELP a no-blank".to_string()),
        Just(String::new()),
    ]
}

fn hostile_line() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>().prop_filter("no LF", |b| *b != b'\n'), 0..40),
        sample_line().prop_map(|mut l| {
            l.push('\r');
            l.into_bytes()
        }),
        sample_line().prop_map(|l| {
            let mut b = l.into_bytes();
            let at = b.len() / 2;
            b.insert(at, 0);
            b
        }),
        sample_line().prop_map(|l| {
            let mut b = l.into_bytes();
            let at = b.len() / 3;
            b.insert(at, 0xff);
            b
        }),
        sample_line().prop_map(|l| format!("{l} ").into_bytes()),
    ]
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            6 => sample_line().prop_map(String::into_bytes),
            3 => meta_line().prop_map(String::into_bytes),
            2 => hostile_line(),
        ],
        0..40,
    )
    .prop_map(|lines| {
        let mut b = lines.join(&b'\n');
        if !b.is_empty() && b.len() % 3 != 0 {
            b.push(b'\n');
        }
        b
    })
}

fn sandboxes() -> impl Strategy<Value = Vec<Input>> {
    prop::collection::vec((body(), label_value(), label_value()), 1..4).prop_map(|v| {
        v.into_iter()
            .enumerate()
            .map(|(i, (b, uid, name))| Input::new(&format!("sb{i}"), &uid, &name, "ns", &b))
            .collect()
    })
}

/// Well-formed input: unique families per sandbox with consistent types,
/// each family's samples unique and contiguous after its TYPE.
fn clean_sandboxes() -> impl Strategy<Value = Vec<Input>> {
    let fam = (
        0usize..6,
        prop::collection::btree_set("[a-c]{1,2}", 1..5),
        label_value(),
    );
    prop::collection::vec(prop::collection::vec(fam, 1..5), 1..4).prop_map(|sbs| {
        let kinds = ["counter", "gauge", "untyped", "gauge", "counter", "gauge"];
        sbs.into_iter()
            .enumerate()
            .map(|(i, fams)| {
                let mut body = String::new();
                let mut seen = std::collections::BTreeSet::new();
                for (f, keys, v) in fams {
                    if !seen.insert(f) {
                        continue;
                    }
                    body.push_str(&format!(
                        "# HELP fam{f} Family {f}.\n# TYPE fam{f} {}\n",
                        kinds[f]
                    ));
                    for k in keys {
                        body.push_str(&format!("fam{f}{{k=\"{k}\",v=\"{}\"}} {i}\n", escape(&v)));
                    }
                }
                Input::new(&format!("id{i}"), "u", "n", "default", body.as_bytes())
            })
            .collect()
    })
}

/// What the limits should do to one body, from the independent parser: the
/// body cut after its last full line within `max_body`, each line over
/// `max_line` dropped whatever it is, each sample with more than
/// `max_labels` labels dropped.
#[derive(Default)]
struct Expected {
    /// Samples under every limit: their series keys and values (output form).
    series: HashMap<String, Vec<String>>,
    valid: u64,
    invalid: u64,
    meta: u64,
    too_long: u64,
    too_many_labels: u64,
    tail: u64,
}

fn expected(input: &Input, l: Limits) -> Expected {
    let mut e = Expected::default();
    let body = &input.body[..];
    let max = l.max_body as usize;
    let kept = if body.len() > max {
        let keep = body[..max]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |p| p + 1);
        let tail = &body[keep..];
        e.tail = (tail.iter().filter(|&&b| b == b'\n').count()
            + usize::from(tail.last() != Some(&b'\n'))) as u64;
        &body[..keep]
    } else {
        body
    };
    let raw: Vec<&[u8]> = if kept.is_empty() {
        Vec::new()
    } else {
        kept.strip_suffix(b"\n")
            .unwrap_or(kept)
            .split(|&b| b == b'\n')
            .collect()
    };
    let kinds = classify_lines(kept);
    assert_eq!(raw.len(), kinds.len());
    for (line, kind) in raw.iter().zip(kinds) {
        if line.len() > l.max_line as usize {
            e.too_long += 1;
            continue;
        }
        // The lexer drops a renamed-label collision before any limit is
        // looked at (counted as a sample-level drop).
        let collision = |s: &common::expo_check::Sample| {
            s.labels.iter().any(|(n, _)| {
                n.strip_prefix("exported_")
                    .is_some_and(|b| INJECTED.contains(&b) && s.label(b).is_some())
            })
        };
        match kind {
            LineKind::Sample(s) if collision(&s) => e.valid += 1,
            LineKind::Sample(s) if s.labels.len() > usize::from(l.max_labels) => {
                e.too_many_labels += 1
            }
            LineKind::Sample(s) => {
                e.valid += 1;
                let t = transformed(&s, &input.labels);
                e.series.entry(series_key(&t)).or_default().push(t.value);
            }
            LineKind::Invalid(_) => e.invalid += 1,
            LineKind::Help { .. } | LineKind::Type { .. } => e.meta += 1,
            _ => {}
        }
    }
    e
}

/// Tight limits: the output stays valid, holds only samples under every
/// limit, at most `max_series` per sandbox, and every line is accounted for.
fn check_limits(inputs: &[Input], limits: Limits) -> Result<(), String> {
    let expo = build_with(inputs, 0xfeed, limits);
    let out = render(&expo, &Filter::all(), b"", 4096);
    let parsed = check_exposition(&out)?;
    let exp: HashMap<&str, Expected> = inputs
        .iter()
        .map(|i| (i.labels[0].as_str(), expected(i, limits)))
        .collect();
    let mut kept: HashMap<&str, u64> = HashMap::new();
    for s in parsed.samples() {
        let id = s.label("sandbox_id").ok_or("no sandbox_id")?;
        let key = series_key(s);
        let values = exp[id]
            .series
            .get(&key)
            .ok_or_else(|| format!("{key}: not a sample under the limits"))?;
        if !values.contains(&s.value) {
            return Err(format!("{key}: value {} not in {values:?}", s.value));
        }
        *kept.entry(exp.get_key_value(id).unwrap().0).or_default() += 1;
    }
    for (k, src) in expo.sources().iter().enumerate() {
        let d = expo.drops(k);
        let e = &exp[src.id.as_str()];
        let n = kept.get(src.id.as_str()).copied().unwrap_or(0);
        let get = |r| u64::from(d.get(r));
        let sample: u64 = SAMPLE_LEVEL
            .iter()
            .filter(|&&r| r != Reason::TooManyLabels)
            .map(|&r| get(r))
            .sum();
        let line: u64 = LINE_LEVEL
            .iter()
            .filter(|&&r| r != Reason::LineTooLong)
            .map(|&r| get(r))
            .sum();
        let counts = (
            get(Reason::LineTooLong),
            get(Reason::TooManyLabels),
            get(Reason::BodyTooLarge),
            line,
        );
        if counts != (e.too_long, e.too_many_labels, e.tail, e.invalid) {
            return Err(format!(
                "{}: (too long, too many labels, tail, invalid) {counts:?}, expected {:?}",
                src.id,
                (e.too_long, e.too_many_labels, e.tail, e.invalid)
            ));
        }
        // Samples are kept or dropped; TYPE/HELP lines of families past
        // `max_series` are dropped as too_many_series too.
        if n > u64::from(limits.max_series) || n + sample < e.valid || n + sample > e.valid + e.meta
        {
            return Err(format!(
                "{}: {n} kept + {sample} dropped, {} valid ({} meta lines), limit {}",
                src.id, e.valid, e.meta, limits.max_series
            ));
        }
    }
    Ok(())
}

fn limits() -> impl Strategy<Value = Limits> {
    (1u32..40, 0u32..120, 0u8..4, 0u32..1500).prop_map(|(s, l, n, b)| Limits {
        max_series: s,
        max_line: l,
        max_labels: n,
        max_body: b,
    })
}

proptest! {
    // 512 cases by default; PROPTEST_CASES overrides for longer runs.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(512),
        ..ProptestConfig::default()
    })]

    #[test]
    fn hostile_input_never_breaks_the_output(inputs in sandboxes()) {
        if let Err(e) = run_all(&inputs, false) {
            let bodies: Vec<String> = inputs.iter().map(|i| format!("{:?}", String::from_utf8_lossy(&i.body))).collect();
            prop_assert!(false, "{e}\ninputs: {bodies:#?}");
        }
    }

    #[test]
    fn limits_keep_what_is_under_them(inputs in sandboxes(), l in limits()) {
        if let Err(e) = check_limits(&inputs, l) {
            let bodies: Vec<String> = inputs.iter().map(|i| format!("{:?}", String::from_utf8_lossy(&i.body))).collect();
            prop_assert!(false, "{e}\n{l:?}\ninputs: {bodies:#?}");
        }
    }

    #[test]
    fn clean_input_is_complete(inputs in clean_sandboxes()) {
        if let Err(e) = run_all(&inputs, true) {
            prop_assert!(false, "{e}");
        }
    }
}
