//! Multi-sandbox merge: different real-shaped bodies merge into one valid
//! exposition with every input sample present exactly once, correctly
//! labelled. Hostile-input cases check that bad lines are dropped, counted and
//! never spoil the other sandboxes.

mod common;

use common::oracle::{Input, build, check_merge, parse, render, run_all};
use kata_monitor::wire::expo::{Filter, Reason};

const SMALL: &[u8] = include_bytes!("fixtures/small.prom");
const DEFAULT: &[u8] = include_bytes!("fixtures/default.prom");
const LARGE: &[u8] = include_bytes!("fixtures/large.prom");
const RS: &[u8] = include_bytes!("fixtures/rs-dragonball.prom");
const EDGE: &[u8] = include_bytes!("fixtures/edge.prom");
const RS_EDGE: &[u8] = include_bytes!("fixtures/rs-edge.prom");

fn four() -> Vec<Input> {
    vec![
        Input::new("c3", "uid-c", "pod-c", "ns1", SMALL),
        Input::new("a1", "uid-a", "pod-a", "default", DEFAULT),
        Input::new("b2", "uid-b", "pod-b", "kube-system", LARGE),
        Input::new("d4", "", "", "", RS),
    ]
}

#[test]
fn four_real_bodies_merge_completely() {
    let inputs = four();
    let out = run_all(&inputs, true).unwrap_or_else(|e| panic!("{e}"));
    let parsed = parse(&out);
    let total: usize = parsed.sample_count();
    // small 1168 + default 1217 + large 1590 + rs 823 (kata-metrics README).
    assert_eq!(total, 1168 + 1217 + 1590 + 823);
    // Families merged across sandboxes: each appears once; a family shared
    // by the Go sandboxes carries samples of all three, in sandbox-id order.
    let f = parsed
        .family("kata_shim_go_goroutines")
        .expect("renamed go_ family");
    let ids: Vec<&str> = f
        .samples
        .iter()
        .filter_map(|s| s.label("sandbox_id"))
        .collect();
    assert_eq!(ids, ["a1", "b2", "c3"]);
    // The rs sandbox has no Go metrics but shares guest families.
    let f = parsed.family("kata_guest_meminfo").expect("guest family");
    let mut seen: Vec<&str> = f
        .samples
        .iter()
        .filter_map(|s| s.label("sandbox_id"))
        .collect();
    seen.dedup();
    assert_eq!(seen, ["a1", "b2", "c3", "d4"]);
    // Empty CRI values are printed as upstream does.
    let s = f
        .samples
        .iter()
        .find(|s| s.label("sandbox_id") == Some("d4"))
        .unwrap();
    assert_eq!(s.label("cri_uid"), Some(""));
}

#[test]
fn input_order_does_not_matter() {
    let mut inputs = four();
    let a = run_all(&inputs, true).unwrap();
    inputs.reverse();
    let b = run_all(&inputs, true).unwrap();
    assert!(a == b, "output depends on the order sandboxes were added");
}

#[test]
fn edge_case_bodies_merge() {
    // NaN, +-Inf, escaped label values and HELP, untyped families, rs `inf`.
    let inputs = vec![
        Input::new("e1", "u", "n", "ns", EDGE),
        Input::new("e2", "u\"q", "n\\b", "ns\nx", RS_EDGE),
    ];
    run_all(&inputs, true).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn filter_family_prefixes() {
    let inputs = four();
    let expo = build(&inputs, 1);
    let all = parse(&render(&expo, &Filter::all(), b"", 1 << 16));
    let f = Filter::from_values(["kata_guest_mem,kata_shim_go", "kata_guest_meminfo", ""]);
    let out = render(&expo, &f, b"", 1 << 16);
    let parsed = parse(&out);
    let names: Vec<&str> = parsed.families.iter().map(|f| f.name.as_str()).collect();
    let want: Vec<&str> = all
        .families
        .iter()
        .map(|f| f.name.as_str())
        .filter(|n| n.starts_with("kata_guest_mem") || n.starts_with("kata_shim_go"))
        .collect();
    // Each selected family once, even when two prefixes match it.
    assert_eq!(names, want);
    assert!(names.contains(&"kata_guest_meminfo"));
    // A prefix on the original (un-renamed) name selects nothing renamed.
    let out = render(&expo, &Filter::from_values(["go_"]), b"", 1 << 16);
    assert!(out.is_empty());
}

#[test]
fn head_bytes_come_first() {
    let inputs = four();
    let expo = build(&inputs, 1);
    let head = b"# HELP kata_monitor_x Own.\n# TYPE kata_monitor_x gauge\nkata_monitor_x 1\n";
    let out = render(&expo, &Filter::all(), head, 333);
    assert!(out.starts_with(head));
    parse(&out);
}

fn drops(inputs: &[Input]) -> Vec<Vec<(Reason, u32)>> {
    let expo = build(inputs, 3);
    (0..expo.sources().len())
        .map(|i| expo.drops(i).iter().collect())
        .collect()
}

#[test]
fn hostile_body_is_contained() {
    // A guest that emits garbage, spoofed identities and conflicting types
    // loses only its own bad lines; the healthy sandbox is complete.
    let hostile: &[u8] = b"# HELP kata_guest_load Fake help.\n\
        # TYPE kata_guest_load counter\n\
        kata_guest_load{item=\"load1\"} 5\n\
        kata_guest_meminfo{item=\"x\",sandbox_id=\"a1\",cri_name=\"victim\"} 1\n\
        kata_guest_meminfo{item=\"x\",sandbox_id=\"a1\",cri_name=\"victim\"} 2\n\
        bad{a=\"\\q\"} 1\n\
        bad{a=\"x\"} 1\r\n\
        bad{a=\"x\"} 0x10\n\
        bad{a=\"x\",a=\"y\"} 1\n\
        \xff\xfe 1\n\
        bad{a=\"\xc3\"} 1\n\
        kata_monitor_running_shim_count 1000\n\
        # TYPE late gauge\n\
        # TYPE late counter\n\
        # HELP bad_help bad \\escape\n\
        ok_metric 1 1700000000000\n";
    let inputs = vec![
        Input::new("a1", "uid-a", "pod-a", "default", DEFAULT),
        Input::new("z9", "uid-z", "pod-z", "evil", hostile),
    ];
    let expo = build(&inputs, 9);
    let out = render(&expo, &Filter::all(), b"", 4096);
    check_merge(&inputs, &expo, &out, false).unwrap_or_else(|e| panic!("{e}"));
    let parsed = parse(&out);
    // The healthy sandbox lost nothing.
    assert_eq!(expo.drops(0).total(), 0);
    let a1 = parsed
        .samples()
        .filter(|s| s.label("sandbox_id") == Some("a1"))
        .count();
    assert_eq!(a1, 1217);
    // The spoofed identity is renamed, the real one injected.
    let spoof = parsed
        .samples()
        .find(|s| s.label("exported_sandbox_id") == Some("a1"))
        .expect("renamed spoofed label");
    assert_eq!(spoof.label("sandbox_id"), Some("z9"));
    assert_eq!(spoof.label("exported_cri_name"), Some("victim"));
    assert_eq!(spoof.label("cri_name"), Some("pod-z"));
    // TYPE conflict: the first sandbox (a1) says gauge, z9's counter samples go.
    let load = parsed.family("kata_guest_load").unwrap();
    assert_eq!(load.typ.as_deref(), Some("gauge"));
    assert!(
        load.samples
            .iter()
            .all(|s| s.label("sandbox_id") == Some("a1"))
    );
    // Nothing claims the monitor's own namespace.
    assert!(parsed.family("kata_monitor_running_shim_count").is_none());
    let d: std::collections::HashMap<Reason, u32> = drops(&inputs)[1].iter().copied().collect();
    assert_eq!(d[&Reason::TypeConflict], 1);
    assert_eq!(d[&Reason::DuplicateSeries], 1);
    assert_eq!(d[&Reason::BadLabels], 1);
    assert_eq!(d[&Reason::ControlChar], 1);
    assert_eq!(d[&Reason::BadValue], 1);
    assert_eq!(d[&Reason::DuplicateLabel], 1);
    assert_eq!(d[&Reason::BadMetricName], 1);
    assert_eq!(d[&Reason::InvalidUtf8], 1);
    assert_eq!(d[&Reason::ReservedName], 1);
    assert_eq!(d[&Reason::DuplicateHelpOrType], 1);
    assert_eq!(d[&Reason::BadHelpOrType], 1);
    assert!(parsed.family("ok_metric").is_some());
}

#[test]
fn histogram_suffix_family_conflicts_are_dropped() {
    // Sandbox b has `h_bucket` as its own untyped family; in the merged
    // output it would be read as part of histogram `h`.
    let a: &[u8] =
        b"# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 2\n";
    let b: &[u8] = b"h_bucket{x=\"1\"} 7\nh_count_total 1\n";
    let inputs = vec![
        Input::new("a", "", "", "", a),
        Input::new("b", "", "", "", b),
    ];
    let expo = build(&inputs, 1);
    let out = render(&expo, &Filter::all(), b"", 100);
    check_merge(&inputs, &expo, &out, false).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(expo.drops(1).get(Reason::NameConflict), 1);
    let parsed = parse(&out);
    assert_eq!(parsed.family("h").unwrap().samples.len(), 4);
    assert!(parsed.family("h_count_total").is_some());
}

#[test]
fn typed_and_untyped_members() {
    // A sandbox without TYPE joins a gauge family but not a summary.
    let a: &[u8] =
        b"# TYPE g gauge\ng 1\n# TYPE s summary\ns{quantile=\"0.5\"} 1\ns_sum 1\ns_count 1\n";
    let b: &[u8] = b"g 2\ns 5\n";
    let inputs = vec![
        Input::new("a", "", "", "", a),
        Input::new("b", "", "", "", b),
    ];
    let expo = build(&inputs, 1);
    let out = render(&expo, &Filter::all(), b"", 100);
    check_merge(&inputs, &expo, &out, false).unwrap_or_else(|e| panic!("{e}"));
    let parsed = parse(&out);
    assert_eq!(parsed.family("g").unwrap().samples.len(), 2);
    assert_eq!(parsed.family("s").unwrap().samples.len(), 3);
    assert_eq!(expo.drops(1).get(Reason::TypeConflict), 1);
}

#[test]
fn split_families_are_emitted_contiguously() {
    let a: &[u8] = b"# TYPE x gauge\nx{i=\"1\"} 1\n# TYPE y gauge\ny 1\nx{i=\"2\"} 2\ny{j=\"1\"} 2\nx{i=\"3\"} 3\n";
    let inputs = vec![Input::new("a", "", "", "", a)];
    let out = run_all(&inputs, true).unwrap();
    let parsed = parse(&out);
    let x: Vec<&str> = parsed
        .family("x")
        .unwrap()
        .samples
        .iter()
        .map(|s| s.value.as_str())
        .collect();
    assert_eq!(x, ["1", "2", "3"]);
}

#[test]
fn body_without_final_newline_and_blank_lines() {
    let a: &[u8] = b"\n\n# TYPE x gauge\n\nx 1\n   \n\tx{a=\"b\"} 2";
    let inputs = vec![Input::new("a", "", "", "", a)];
    let out = run_all(&inputs, true).unwrap();
    assert!(out.ends_with(b"} 2\n"));
}

#[test]
fn empty_and_no_sandboxes() {
    assert!(run_all(&[], true).unwrap().is_empty());
    let inputs = vec![Input::new("a", "", "", "", b"")];
    assert!(run_all(&inputs, true).unwrap().is_empty());
}

/// A source withdrawn after indexing (the daemon does this for junk bodies)
/// leaves no trace in the output, and its buffer comes back.
#[test]
fn rejected_source_is_not_rendered() {
    use kata_monitor::wire::expo::{Exposition, Labels};
    let mut expo = Exposition::new(3);
    expo.add("a", Labels::new(["a", "", "", ""]), SMALL.to_vec());
    expo.add(
        "b",
        Labels::new(["b", "", "", ""]),
        b"\x00junk\nmore junk\nx 1\n".to_vec(),
    );
    assert!(expo.last().unwrap().index.mostly_invalid());
    let buf = expo.reject_last().expect("a source to withdraw");
    assert!(buf.capacity() > 0);
    expo.finish();
    let out = expo.render_to_vec(&Filter::all());
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("sandbox_id=\"a\""));
    assert!(!text.contains("sandbox_id=\"b\""));
    assert_eq!(expo.sources().len(), 1);
}

/// `go_*` and `process_*` families are output as `kata_shim_go_*`: a body
/// that also has `kata_shim_go_x` itself must not produce the same series
/// twice (a guest could otherwise make the whole scrape invalid). The second
/// is dropped and counted as a duplicate series.
#[test]
fn renamed_names_cannot_duplicate_series() {
    for body in [
        &b"go_x 1\nkata_shim_go_x 2\n"[..],
        b"kata_shim_go_x 2\ngo_x 1\n",
        b"process_y{a=\"b\"} 1\nkata_shim_process_y{a=\"b\"} 2\nkata_shim_process_y 3\n",
        b"# TYPE go_s summary\ngo_s_sum 1\ngo_s_count 2\nkata_shim_go_s_sum 3\n",
    ] {
        let inputs = vec![
            Input::new("a", "u", "n", "ns", body),
            Input::new("b", "u2", "n2", "ns", b"kata_shim_go_x 5\ngo_x 6\n"),
        ];
        let out = run_all(&inputs, false)
            .unwrap_or_else(|e| panic!("{}: {e}", String::from_utf8_lossy(body)));
        let expo = build(&inputs, 1);
        assert!(
            expo.drops(0).get(Reason::DuplicateSeries) >= 1,
            "{}",
            String::from_utf8_lossy(body)
        );
        assert_eq!(expo.drops(1).get(Reason::DuplicateSeries), 1);
        parse(&out);
    }
}

#[test]
fn a_dropped_line_does_not_claim_its_series() {
    // The bare summary line is dropped (no quantile); the renamed untyped
    // `process_y` then owns the series `kata_shim_process_y`, and is kept.
    let body = b"# TYPE kata_shim_process_y summary\nkata_shim_process_y 0\nprocess_y 1\n";
    let inputs = vec![Input::new("a", "u", "n", "ns", body)];
    let out = run_all(&inputs, false).unwrap();
    let expo = build(&inputs, 1);
    assert_eq!(expo.drops(0).get(Reason::BadLeOrQuantile), 1);
    assert_eq!(expo.drops(0).get(Reason::DuplicateSeries), 0);
    let e = parse(&out);
    let f = e.family("kata_shim_process_y").unwrap();
    assert_eq!(f.samples.len(), 1);
    assert_eq!(f.samples[0].value, "1");
}

/// HELP is voted like TYPE: the text most sandboxes send, a tie to Kata's
/// text, then to the sandbox known longest (added first here).
#[test]
fn help_is_voted() {
    let body = |help: &str| {
        format!(
            "# HELP kata_guest_load {help}\n# TYPE kata_guest_load gauge\nkata_guest_load{{item=\"load1\"}} 1\n# HELP own_x {help}\nown_x 1\n"
        )
    };
    let help_of = |inputs: &[Input], fam: &str| {
        let out = run_all(inputs, true).unwrap_or_else(|e| panic!("{e}"));
        parse(&out).family(fam).unwrap().help.clone()
    };
    let kata = "Guest system load.";
    // Two sandboxes with a newer text outvote one with Kata's.
    let inputs = vec![
        Input::new("a", "", "", "", body(kata).as_bytes()),
        Input::new("b", "", "", "", body("Newer text.").as_bytes()),
        Input::new("c", "", "", "", body("Newer text.").as_bytes()),
    ];
    assert_eq!(
        help_of(&inputs, "kata_guest_load").as_deref(),
        Some("Newer text.")
    );
    // One against one: Kata's text, whoever is older.
    let inputs = vec![
        Input::new("z", "", "", "", body("Fake.").as_bytes()),
        Input::new("a", "", "", "", body(kata).as_bytes()),
    ];
    assert_eq!(help_of(&inputs, "kata_guest_load").as_deref(), Some(kata));
    // A family Kata does not define: the older sandbox's (added first).
    assert_eq!(help_of(&inputs, "own_x").as_deref(), Some("Fake."));
    let (x, y) = (inputs[1].clone(), inputs[0].clone());
    assert_eq!(help_of(&[x, y], "own_x").as_deref(), Some(kata));
    // No HELP line is a choice too.
    let none = "kata_guest_load{item=\"load1\"} 1\nown_x 1\n";
    let inputs = vec![
        Input::new("a", "", "", "", body("Fake.").as_bytes()),
        Input::new("b", "", "", "", none.as_bytes()),
        Input::new("c", "", "", "", none.as_bytes()),
    ];
    assert_eq!(help_of(&inputs, "own_x"), None);
}
