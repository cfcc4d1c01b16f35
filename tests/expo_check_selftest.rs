//! Self-tests of the independent exposition-format oracle in
//! `tests/common/expo_check.rs`: every rule is exercised with accepting and
//! rejecting inputs, and the shared fixtures are checked.

mod common;

use common::expo_check::{
    Exposition, LineKind, Sample, check_exposition, classify_line, classify_lines, parse_float,
    render, series_key, series_set,
};
use std::path::{Path, PathBuf};

// ---------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------

/// `check_exposition` must accept `text`.
#[track_caller]
fn ok(text: &str) -> Exposition {
    match check_exposition(text.as_bytes()) {
        Ok(e) => e,
        Err(e) => panic!("expected valid exposition, got error: {e}\n--- text ---\n{text}"),
    }
}

/// `check_exposition` must reject `text` with an error on line `line`
/// whose message contains `needle` (case-insensitive).
#[track_caller]
fn bad(text: impl AsRef<[u8]>, line: usize, needle: &str) -> String {
    let text = text.as_ref();
    match check_exposition(text) {
        Ok(e) => panic!(
            "expected rejection ({needle:?} at line {line}), got {} families\n--- text ---\n{}",
            e.families.len(),
            String::from_utf8_lossy(text)
        ),
        Err(e) => {
            let prefix = format!("line {line}: ");
            assert!(
                e.starts_with(&prefix),
                "error should be on line {line}: {e}\n--- text ---\n{}",
                String::from_utf8_lossy(text)
            );
            assert!(
                e.to_lowercase().contains(&needle.to_lowercase()),
                "error should mention {needle:?}: {e}"
            );
            e
        }
    }
}

/// Classify one line via `classify_lines` (with its terminating newline).
#[track_caller]
fn class(line: &str) -> LineKind {
    let mut v = classify_lines(format!("{line}\n").as_bytes());
    assert_eq!(v.len(), 1, "one line expected for {line:?}: {v:?}");
    let k = v.remove(0);
    assert_eq!(
        k,
        classify_line(line),
        "classify_line disagrees for {line:?}"
    );
    k
}

/// The line must be a valid sample, both leniently and in a strict body.
#[track_caller]
fn sample(line: &str) -> Sample {
    let s = match class(line) {
        LineKind::Sample(s) => s,
        other => panic!("expected a sample for {line:?}, got {other:?}"),
    };
    let e = ok(&format!("{line}\n"));
    assert_eq!(e.families.len(), 1);
    assert_eq!(e.families[0].samples, vec![s.clone()]);
    s
}

/// The line must be invalid, both leniently (`Invalid` with a reason
/// containing `needle`) and in a strict body (error on line 2, after a valid
/// first line).
#[track_caller]
fn invalid(line: &str, needle: &str) {
    match class(line) {
        LineKind::Invalid(r) => assert!(
            r.to_lowercase().contains(&needle.to_lowercase()),
            "reason for {line:?} should mention {needle:?}: {r}"
        ),
        other => panic!("expected Invalid for {line:?}, got {other:?}"),
    }
    bad(format!("zz_first 1\n{line}\n"), 2, needle);
}

fn s(name: &str, labels: &[(&str, &str)], value: &str, ts: Option<i64>) -> Sample {
    Sample {
        name: name.into(),
        labels: labels
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
        value: value.into(),
        timestamp: ts,
    }
}

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn fixture(name: &str) -> Vec<u8> {
    let p = fixtures_dir().join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

// ---------------------------------------------------------------------------
// sample lines: accepted forms
// ---------------------------------------------------------------------------

#[test]
fn sample_minimal_forms() {
    assert_eq!(sample("foo 1"), s("foo", &[], "1", None));
    assert_eq!(sample("foo{} 1"), s("foo", &[], "1", None));
    assert_eq!(sample("foo{ } 1"), s("foo", &[], "1", None));
    assert_eq!(sample("foo\t1"), s("foo", &[], "1", None));
    assert_eq!(sample("foo \t  1"), s("foo", &[], "1", None));
    assert_eq!(sample("foo 1 123"), s("foo", &[], "1", Some(123)));
    assert_eq!(sample("foo 1\t\t123"), s("foo", &[], "1", Some(123)));
    assert_eq!(sample("foo 1 0"), s("foo", &[], "1", Some(0)));
    assert_eq!(sample("foo 1 007"), s("foo", &[], "1", Some(7)));
    assert_eq!(
        sample("foo 1 9223372036854775807"),
        s("foo", &[], "1", Some(i64::MAX))
    );
}

#[test]
fn sample_metric_names() {
    for name in [
        "a",
        "_",
        ":",
        "_x",
        ":foo",
        "foo:bar_baz:",
        "Z9",
        "a_1_b_2",
        "kata_guest_meminfo",
        "x__name__",
    ] {
        assert_eq!(sample(&format!("{name} 1")).name, name);
    }
}

#[test]
fn sample_label_sets() {
    assert_eq!(
        sample(r#"foo{a="b"} 1"#),
        s("foo", &[("a", "b")], "1", None)
    );
    assert_eq!(
        sample(r#"foo{a="b",c="d"} 1"#),
        s("foo", &[("a", "b"), ("c", "d")], "1", None)
    );
    // Source order is kept, not sorted.
    assert_eq!(
        sample(r#"foo{z="1",a="2"} 1"#),
        s("foo", &[("z", "1"), ("a", "2")], "1", None)
    );
    // Trailing comma.
    assert_eq!(
        sample(r#"foo{a="b",} 1"#),
        s("foo", &[("a", "b")], "1", None)
    );
    // Blanks everywhere they are allowed.
    assert_eq!(
        sample("foo{ \ta \t= \t\"b\" \t, \tc=\"d\" \t, \t} \t1 \t2"),
        s("foo", &[("a", "b"), ("c", "d")], "1", Some(2))
    );
    // Label names.
    assert_eq!(
        sample(r#"foo{_="1",_a9="2",A_b="3",__x="4"} 1"#)
            .labels
            .len(),
        4
    );
    // Empty value.
    assert_eq!(sample(r#"foo{a=""} 1"#), s("foo", &[("a", "")], "1", None));
    // `le` / `quantile` are ordinary labels outside histograms/summaries.
    assert_eq!(
        sample(r#"foo{le="not a number",quantile="x"} 1"#)
            .labels
            .len(),
        2
    );
}

#[test]
fn sample_label_values_unescaped() {
    let v = |line: &str| sample(line).labels[0].1.clone();
    assert_eq!(v(r#"foo{a="x\\y"} 1"#), "x\\y");
    assert_eq!(v(r#"foo{a="x\"y"} 1"#), "x\"y");
    assert_eq!(v(r#"foo{a="x\ny"} 1"#), "x\ny");
    assert_eq!(v(r#"foo{a="\\n"} 1"#), "\\n");
    assert_eq!(v(r#"foo{a="\\\""} 1"#), "\\\"");
    assert_eq!(v(r#"foo{a="a{b}c,d=e f#g 1 2"} 1"#), "a{b}c,d=e f#g 1 2");
    assert_eq!(v("foo{a=\"tab\there\"} 1"), "tab\there");
    assert_eq!(v(r#"foo{a="héllo ✓ 日本 🦀"} 1"#), "héllo ✓ 日本 🦀");
    assert_eq!(v(r#"foo{a="'single'"} 1"#), "'single'");
    assert_eq!(
        v(r#"foo{case="quote \" backslash \\ newline \n end"} 42"#),
        "quote \" backslash \\ newline \n end"
    );
}

#[test]
fn sample_values_accepted() {
    for v in [
        "0",
        "1",
        "-1",
        "+1",
        "-0",
        "00012",
        "1.",
        ".5",
        "-.5",
        "+.5",
        "1.5",
        "1.e5",
        "1e5",
        "1E5",
        "1e+5",
        "1e-5",
        "1.5E-07",
        "9.223372036854776e+18",
        "1.7976931348623157e+308",
        "1.7976931348623158e308", // rounds down to f64::MAX
        "-1.7976931348623157e308",
        "1e-400", // underflow to 0 is not an error for ParseFloat
        "4.9e-324",
        "179769313486231570000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        "Inf",
        "+Inf",
        "-Inf",
        "inf",
        "-inf",
        "INF",
        "iNf",
        "Infinity",
        "-infinity",
        "+INFINITY",
        "NaN",
        "nan",
        "NAN",
        "nAn",
    ] {
        let got = sample(&format!("foo {v}"));
        assert_eq!(got.value, v, "raw token kept");
        assert!(parse_float(v).is_ok(), "{v}");
    }
}

#[test]
fn parse_float_values() {
    assert_eq!(parse_float("1.5e3"), Ok(1500.0));
    assert_eq!(parse_float("-0"), Ok(-0.0));
    assert_eq!(parse_float("+Inf"), Ok(f64::INFINITY));
    assert_eq!(parse_float("-infinity"), Ok(f64::NEG_INFINITY));
    assert!(parse_float("NaN").unwrap().is_nan());
    assert_eq!(parse_float("1.7976931348623157e308"), Ok(f64::MAX));
    assert_eq!(parse_float("1e-400"), Ok(0.0));
}

// ---------------------------------------------------------------------------
// sample lines: rejected forms
// ---------------------------------------------------------------------------

#[test]
fn sample_bad_metric_names() {
    invalid("1foo 1", "invalid metric name");
    invalid("9 1", "invalid metric name");
    invalid("-foo 1", "invalid metric name");
    invalid("été 1", "invalid metric name");
    invalid("foo-bar 1", "expected blank");
    invalid("foo.bar 1", "expected blank");
    invalid("foo/bar 1", "expected blank");
    invalid("föo 1", "expected blank");
    // Quoted / UTF-8 metric names are not supported.
    invalid(r#"{"foo"} 1"#, "missing metric name");
    invalid(r#"{"foo",a="b"} 1"#, "missing metric name");
    invalid(r#"{a="b"} 1"#, "missing metric name");
    invalid(r#""foo" 1"#, "missing metric name");
    invalid(r#"{} 1"#, "missing metric name");
}

#[test]
fn sample_bad_structure() {
    invalid("foo", "missing value");
    invalid("foo{}", "missing value");
    invalid(r#"foo{a="b"}"#, "missing value");
    // No trailing whitespace (expfmt rejects it).
    invalid("foo ", "line ends in whitespace");
    invalid("foo\t", "line ends in whitespace");
    invalid("foo 1 ", "trailing whitespace");
    invalid("foo 1\t", "trailing whitespace");
    invalid("foo 1 2 ", "trailing whitespace");
    invalid("foo 1 2\t", "trailing whitespace");
    invalid("foo{} 1 ", "trailing whitespace");
    // Nothing after the timestamp.
    invalid("foo 1 2 3", "after the timestamp");
    invalid("foo 1 2 # comment", "after the timestamp");
    invalid("foo 1 # comment", "invalid timestamp");
    // A blank is required between the name / label set and the value.
    invalid(r#"foo{a="b"}1"#, "expected blank");
    invalid("foo{}1", "expected blank");
    // The label set must directly follow the name.
    invalid(r#"foo {a="b"} 1"#, "invalid sample value");
    invalid(r#"foo 1 {a="b"}"#, "invalid timestamp");
    // Exemplars / OpenMetrics syntax are not part of 0.0.4.
    invalid(r#"foo 1 # {a="b"} 1"#, "invalid timestamp");
}

#[test]
fn sample_bad_label_sets() {
    invalid(r#"foo{a="b" c="d"} 1"#, "expected ',' or '}'");
    invalid(r#"foo{a="b";c="d"} 1"#, "expected ',' or '}'");
    invalid(r#"foo{,} 1"#, "invalid label name");
    invalid(r#"foo{ , } 1"#, "invalid label name");
    invalid(r#"foo{,a="b"} 1"#, "invalid label name");
    invalid(r#"foo{a="b",,c="d"} 1"#, "invalid label name");
    invalid(r#"foo{a="b",,} 1"#, "invalid label name");
    invalid(r#"foo{1a="b"} 1"#, "invalid label name");
    invalid(r#"foo{:a="b"} 1"#, "invalid label name");
    invalid(r#"foo{a:b="c"} 1"#, "expected '='");
    invalid(r#"foo{a-b="c"} 1"#, "expected '='");
    invalid(r#"foo{é="c"} 1"#, "invalid label name");
    invalid(r#"foo{"a"="b"} 1"#, "invalid label name");
    invalid(r#"foo{a} 1"#, "expected '='");
    invalid(r#"foo{a=} 1"#, "expected '\"'");
    invalid(r#"foo{a=b} 1"#, "expected '\"'");
    invalid(r#"foo{a='b'} 1"#, "expected '\"'");
    invalid(r#"foo{a=="b"} 1"#, "expected '\"'");
    invalid(r#"foo{a="b"}} 1"#, "expected blank");
    invalid(r#"foo{{a="b"} 1"#, "invalid label name");
    invalid(r#"foo{a="b"{ 1"#, "expected ',' or '}'");
    invalid(r#"foo{a="b" 1"#, "expected ',' or '}'");
    invalid(r#"foo{a="b","#, "unterminated label set");
    invalid(r#"foo{a="b""#, "unterminated label set");
    invalid(r#"foo{a="b"#, "unterminated label value");
    invalid(r#"foo{a="b} 1"#, "unterminated label value");
    invalid(r#"foo{"#, "unterminated label set");
    invalid(r#"foo{ "#, "unterminated label set");
    invalid(r#"foo{a"#, "expected '='");
    invalid(r#"foo{a="b"} 1 {c="d"}"#, "invalid timestamp");
}

#[test]
fn sample_reserved_and_duplicate_labels() {
    invalid(r#"foo{__name__="foo"} 1"#, "__name__");
    invalid(r#"foo{a="1",__name__="x"} 1"#, "__name__");
    invalid(r#"foo{a="1",a="2"} 1"#, "duplicate label name");
    invalid(r#"foo{a="1",b="2",a="1"} 1"#, "duplicate label name");
    invalid(r#"foo{le="1",le="2"} 1"#, "duplicate label name");
    // "__name__" only as the whole name is reserved.
    sample(r#"foo{__name="x",__name___="y",name="z"} 1"#);
}

#[test]
fn sample_bad_label_escapes() {
    invalid(r#"foo{a="\t"} 1"#, "invalid escape sequence '\\t'");
    invalid(r#"foo{a="\x41"} 1"#, "invalid escape sequence");
    invalid(r#"foo{a="\u00e9"} 1"#, "invalid escape sequence");
    invalid(r#"foo{a="\'"} 1"#, "invalid escape sequence");
    invalid(r#"foo{a="\ "} 1"#, "invalid escape sequence");
    invalid(r#"foo{a="\N"} 1"#, "invalid escape sequence");
    invalid(r#"foo{a="\é"} 1"#, "invalid escape sequence '\\é'");
    invalid(r#"foo{a="\r"} 1"#, "invalid escape sequence");
    invalid(r#"foo{a="\0"} 1"#, "invalid escape sequence");
    // A backslash escaping the closing quote leaves the value unterminated.
    invalid(r#"foo{a="\"} 1"#, "unterminated label value");
    invalid(r#"foo{a="abc\"#, "unterminated label value");
}

#[test]
fn sample_bad_values() {
    for v in [
        "0x10",
        "0X1A",
        "0x1p3",
        "0x1P-2",
        "1p3",
        "1_000",
        "1_0.5",
        "_1",
        "1e",
        "1e+",
        "1e-",
        "1E",
        "e5",
        ".e5",
        ".",
        "-",
        "+",
        "+-1",
        "--1",
        "++1",
        "1.2.3",
        "1..2",
        "1e5.5",
        "1e5e5",
        "1,5",
        "1f",
        "1d",
        "0b1",
        "0o7",
        "abc",
        "true",
        "١",
        "１",
        "+nan",
        "-nan",
        "+NaN",
        "-NaN",
        "nana",
        "na",
        "in",
        "infin",
        "infinit",
        "infinityy",
        "Infinit",
        "+-Inf",
        "inf1",
        "Inf.",
        "1e309",
        "-1e309",
        "1.7976931348623159e308",
        "2e308",
        "1e99999",
        "1{",
        "\"1\"",
    ] {
        invalid(&format!("foo {v}"), "invalid sample value");
        assert!(parse_float(v).is_err(), "parse_float should reject {v:?}");
    }
    // 2^1024 in decimal: overflows to +Inf in f64.
    let two_pow_1024 = "179769313486231590772930519078902473361797697894230657273430081157732675805500963132708477322407536021120113879871393357658789768814416622492847430639474124377767893424865485276302219601246094119453082952085005768838150682342462881473913110540827237163350510684586298239947245938479716304835356329624224137216";
    invalid(&format!("foo {two_pow_1024}"), "overflow");
    assert!(parse_float("").is_err());
}

#[test]
fn sample_bad_timestamps() {
    for ts in [
        "-1", "+1", "1.5", "1.", "1e3", "0x10", "abc", "١٢", "NaN", "Inf", "1_000", "12a",
    ] {
        invalid(&format!("foo 1 {ts}"), "invalid timestamp");
    }
    invalid("foo 1 9223372036854775808", "does not fit in i64");
    invalid("foo 1 99999999999999999999999", "does not fit in i64");
}

// ---------------------------------------------------------------------------
// comments, HELP and TYPE
// ---------------------------------------------------------------------------

#[test]
fn help_lines() {
    let help = |line: &str| match class(line) {
        LineKind::Help { name, text } => (name, text),
        other => panic!("expected Help for {line:?}, got {other:?}"),
    };
    assert_eq!(
        help("# HELP foo some text"),
        ("foo".into(), "some text".into())
    );
    assert_eq!(help("# HELP foo x"), ("foo".into(), "x".into()));
    // All blanks before the text are skipped (as expfmt does); trailing
    // blanks are part of the text.
    assert_eq!(help("# HELP foo   x  "), ("foo".into(), "x  ".into()));
    assert_eq!(help("#\tHELP\tfoo\tx\ty"), ("foo".into(), "x\ty".into()));
    assert_eq!(
        help("#  HELP  foo:bar_9 x"),
        ("foo:bar_9".into(), "x".into())
    );
    assert_eq!(
        help(r#"# HELP foo a\\b\nc"d"#),
        ("foo".into(), "a\\b\nc\"d".into())
    );
    // `\"` is an escape in label values only: promtool 2.42 (expfmt)
    // refuses it in HELP text.
    invalid(r#"# HELP foo a\"d"#, "invalid escape sequence");
    assert_eq!(
        help("# HELP foo # not a comment \"quoted\" {} = , é ✓"),
        ("foo".into(), "# not a comment \"quoted\" {} = , é ✓".into())
    );
    assert_eq!(
        help(r#"# HELP synthetic Synthetic: escaped \\ backslash and\nnewline in HELP."#),
        (
            "synthetic".into(),
            "Synthetic: escaped \\ backslash and\nnewline in HELP.".into()
        )
    );
    // Leading blanks are fine in the lenient view.
    assert_eq!(help("  # HELP foo x"), ("foo".into(), "x".into()));

    invalid(
        r#"# HELP foo bad \t escape"#,
        "invalid escape sequence '\\t'",
    );
    invalid(r#"# HELP foo bad \x"#, "invalid escape sequence");
    invalid(r#"# HELP foo bad \'"#, "invalid escape sequence");
    invalid(r#"# HELP foo trailing backslash \"#, "trailing backslash");
    invalid("# HELP 1foo x", "invalid metric name in HELP");
    invalid("# HELP -foo x", "invalid metric name in HELP");
    invalid(r#"# HELP "foo" x"#, "invalid metric name in HELP");
    invalid("# HELP foo-bar x", "invalid metric name in HELP");
    invalid(r#"# HELP foo{a="b"} x"#, "invalid metric name in HELP");
    invalid("# HELP föo x", "invalid metric name in HELP");
}

#[test]
fn type_lines() {
    for t in ["counter", "gauge", "histogram", "summary", "untyped"] {
        assert_eq!(
            class(&format!("# TYPE foo {t}")),
            LineKind::Type {
                name: "foo".into(),
                typ: t.into()
            }
        );
        assert_eq!(
            class(&format!("#\tTYPE \t foo\t \t{t}")),
            LineKind::Type {
                name: "foo".into(),
                typ: t.into()
            }
        );
    }
    for t in [
        "Gauge",
        "GAUGE",
        "COUNTER",
        "gauge_histogram",
        "GAUGE_HISTOGRAM",
        "info",
        "stateset",
        "unknown",
        "gauges",
        "gauge x",
        "gauge # c",
        "gauge\tx",
    ] {
        invalid(&format!("# TYPE foo {t}"), "invalid metric type");
    }
    // No trailing blanks after the type.
    invalid("# TYPE foo gauge ", "invalid metric type");
    invalid("# TYPE foo gauge\t", "invalid metric type");
    invalid("# TYPE 1foo gauge", "invalid metric name in TYPE");
    invalid("# TYPE foo{} gauge", "invalid metric name in TYPE");
    invalid(r#"# TYPE "foo" gauge"#, "invalid metric name in TYPE");
}

#[test]
fn plain_comments() {
    for line in [
        "#",
        "# ",
        "##",
        "#foo",
        "# foo bar",
        "# HELP",
        "# HELP ",
        "# HELP \t ",
        "# HELP foo",
        "# HELP foo ",
        "# HELP foo \t",
        "# TYPE",
        "# TYPE ",
        "# TYPE foo",
        "# TYPE foo ",
        "#HELP foo x",
        "#TYPE foo gauge",
        "# help foo x",
        "# type foo gauge",
        "# HELPER foo x",
        "# TYPES foo gauge",
        "# EOF",
        "# UNIT foo seconds",
        "# 1 2 3 \\x invalid escape is fine in a comment",
        "#\t",
    ] {
        assert_eq!(class(line), LineKind::Comment, "{line:?}");
        // A plain comment is never allowed in the strict output contract.
        bad(format!("zz_first 1\n{line}\n"), 2, "plain comment");
    }
    assert_eq!(class("  # indented comment"), LineKind::Comment);
    assert_eq!(class("\t#"), LineKind::Comment);
}

#[test]
fn blank_lines() {
    assert_eq!(class(""), LineKind::Blank);
    assert_eq!(class(" "), LineKind::Blank);
    assert_eq!(class("\t \t"), LineKind::Blank);
    bad("zz_first 1\n\nzz_second 1\n", 2, "empty line");
    bad("\n", 1, "empty line");
    bad("zz_first 1\n\n", 2, "empty line");
    bad("zz_first 1\n \nzz_second 1\n", 2, "leading whitespace");
}

#[test]
fn leading_whitespace() {
    // Allowed in the lenient view...
    assert_eq!(class("  foo 1"), LineKind::Sample(s("foo", &[], "1", None)));
    assert_eq!(class("\tfoo 1"), LineKind::Sample(s("foo", &[], "1", None)));
    assert!(matches!(class(" # TYPE foo gauge"), LineKind::Type { .. }));
    // ...but not in the strict output contract.
    bad(" foo 1\n", 1, "leading whitespace");
    bad("foo 1\n\tbar 1\n", 2, "leading whitespace");
    bad(" # HELP foo x\nfoo 1\n", 1, "leading whitespace");
}

// ---------------------------------------------------------------------------
// whole-text rules
// ---------------------------------------------------------------------------

#[test]
fn text_bytes() {
    // Invalid UTF-8 (line number reported).
    bad(b"a 1\nb 1\nc{x=\"\xff\"} 1\n", 3, "invalid UTF-8");
    bad(b"\xc3\x28 1\n", 1, "invalid UTF-8");
    bad(b"# HELP a \xe2\x82\nz 1\n", 1, "invalid UTF-8");
    // Carriage returns anywhere.
    bad("a 1\r\nb 1\r\n", 1, "carriage return");
    bad("a 1\nb{x=\"\r\"} 1\n", 2, "carriage return");
    bad("a 1\n# HELP b x\ry\nb 1\n", 2, "carriage return");
    bad("a 1\n# just a comment \r\n", 2, "carriage return");
    // NUL anywhere.
    bad("a 1\nb{x=\"\0\"} 1\n", 2, "NUL");
    bad("a 1\0\n", 1, "NUL");
    bad("# HELP a x\0\na 1\n", 1, "NUL");
    // Must end with a newline.
    bad("a 1", 1, "does not end with a newline");
    bad("a 1\nb 1", 2, "does not end with a newline");
    // An error before the unterminated last line is reported first.
    bad("a 1\nb\nc 1", 2, "missing value");
    // Empty text is a valid (empty) exposition.
    assert_eq!(ok("").families.len(), 0);
}

#[test]
fn classify_lines_splitting() {
    assert_eq!(classify_lines(b""), vec![]);
    assert_eq!(classify_lines(b"\n"), vec![LineKind::Blank]);
    assert_eq!(
        classify_lines(b"\n\n"),
        vec![LineKind::Blank, LineKind::Blank]
    );
    // A final line without newline is still classified.
    assert_eq!(
        classify_lines(b"a 1\nb 2"),
        vec![
            LineKind::Sample(s("a", &[], "1", None)),
            LineKind::Sample(s("b", &[], "2", None))
        ]
    );
    let v = classify_lines(b"# HELP a x\n# TYPE a gauge\na 1\n\n# c\nbad\n \n");
    assert_eq!(v.len(), 7);
    assert_eq!(
        v[0],
        LineKind::Help {
            name: "a".into(),
            text: "x".into()
        }
    );
    assert_eq!(
        v[1],
        LineKind::Type {
            name: "a".into(),
            typ: "gauge".into()
        }
    );
    assert_eq!(v[2], LineKind::Sample(s("a", &[], "1", None)));
    assert_eq!(v[3], LineKind::Blank);
    assert_eq!(v[4], LineKind::Comment);
    assert!(v[5].is_invalid());
    assert_eq!(v[6], LineKind::Blank);
    // Garbage lines only affect themselves.
    let v = classify_lines(b"a 1\n\xff\xfe garbage\nb{x=\"\r\"} 1\nc 1\r\nd\0 1\ne 1\n");
    assert_eq!(v.len(), 6);
    assert_eq!(v[0], LineKind::Sample(s("a", &[], "1", None)));
    assert!(
        matches!(&v[1], LineKind::Invalid(r) if r.contains("UTF-8")),
        "{:?}",
        v[1]
    );
    assert!(
        matches!(&v[2], LineKind::Invalid(r) if r.contains("carriage")),
        "{:?}",
        v[2]
    );
    assert!(
        matches!(&v[3], LineKind::Invalid(r) if r.contains("carriage")),
        "{:?}",
        v[3]
    );
    assert!(
        matches!(&v[4], LineKind::Invalid(r) if r.contains("NUL")),
        "{:?}",
        v[4]
    );
    assert_eq!(v[5], LineKind::Sample(s("e", &[], "1", None)));
    // The lenient view does not group: duplicates, repeated families, HELP
    // after samples and empty families are all fine line by line.
    let v = classify_lines(b"a 1\na 1\n# HELP a x\n# TYPE b gauge\na 2\n");
    assert!(v.iter().all(|k| !k.is_invalid()), "{v:?}");
}

// ---------------------------------------------------------------------------
// family grouping
// ---------------------------------------------------------------------------

#[test]
fn families_grouping_and_content() {
    let e = ok(concat!(
        "# HELP a Help for a \\\\ with\\nescapes.\n",
        "# TYPE a gauge\n",
        "a{x=\"1\"} 1\n",
        "a{x=\"2\\\"q\"} 2\n",
        "# TYPE b_total counter\n",
        "b_total 3\n",
        "# HELP c only help\n",
        "c 5\n",
        "d 6\n",
        "d{y=\"z\"} 7 1700000000000\n",
        "# TYPE e untyped\n",
        "e 8\n",
        "# HELP A upper case names sort before lower case ones\n",
        "A 9\n",
    ));
    let names: Vec<&str> = e.families.iter().map(|f| f.name.as_str()).collect();
    // Output order is kept (no sorting).
    assert_eq!(names, ["a", "b_total", "c", "d", "e", "A"]);
    let a = e.family("a").unwrap();
    assert_eq!(a.help.as_deref(), Some("Help for a \\ with\nescapes."));
    assert_eq!(a.typ.as_deref(), Some("gauge"));
    assert_eq!(
        a.samples,
        vec![
            s("a", &[("x", "1")], "1", None),
            s("a", &[("x", "2\"q")], "2", None)
        ]
    );
    let b = e.family("b_total").unwrap();
    assert_eq!(
        (b.help.as_deref(), b.typ.as_deref()),
        (None, Some("counter"))
    );
    let c = e.family("c").unwrap();
    assert_eq!(
        (c.help.as_deref(), c.typ.as_deref()),
        (Some("only help"), None)
    );
    let d = e.family("d").unwrap();
    assert_eq!((d.help.as_deref(), d.typ.as_deref()), (None, None));
    assert_eq!(
        d.samples[1],
        s("d", &[("y", "z")], "7", Some(1_700_000_000_000))
    );
    assert_eq!(e.family("e").unwrap().typ.as_deref(), Some("untyped"));
    assert_eq!(e.sample_count(), 8);
}

#[test]
fn families_histogram_and_summary_grouping() {
    let e = ok(concat!(
        "# HELP h A histogram.\n",
        "# TYPE h histogram\n",
        "h_bucket{le=\"0.5\"} 1\n",
        "h_bucket{le=\"+Inf\"} 2\n",
        "h_sum 3.5\n",
        "h_count 2\n",
        "h_bucket{x=\"y\",le=\"1\"} 1\n",
        "h_bucket{le=\"Inf\",x=\"y\"} 1\n",
        "h_sum{x=\"y\"} 1\n",
        "h_count{x=\"y\"} 1\n",
        "# TYPE s summary\n",
        "s{quantile=\"0.5\"} 1\n",
        "s{quantile=\"0.99\"} 2\n",
        "s{quantile=\"1\",x=\"y\"} 2\n",
        "s_sum 3\n",
        "s_count 4\n",
        "s_sum{x=\"y\"} 3\n",
        "s_count{x=\"y\"} 4\n",
    ));
    assert_eq!(e.families.len(), 2);
    assert_eq!(e.families[0].name, "h");
    assert_eq!(e.families[0].typ.as_deref(), Some("histogram"));
    assert_eq!(e.families[0].samples.len(), 8);
    assert_eq!(e.families[1].name, "s");
    assert_eq!(e.families[1].samples.len(), 7);
    assert_eq!(e.families[1].samples[3].name, "s_sum");
}

#[test]
fn families_suffix_rule_only_for_histogram_and_summary() {
    let names =
        |text: &str| -> Vec<String> { ok(text).families.into_iter().map(|f| f.name).collect() };
    // gauge / counter / untyped / no TYPE: `_sum`, `_count`, `_bucket` are new families.
    assert_eq!(names("# TYPE g gauge\ng 1\ng_sum 1\n"), ["g", "g_sum"]);
    assert_eq!(
        names("# TYPE c counter\nc 1\nc_count 1\n"),
        ["c", "c_count"]
    );
    assert_eq!(
        names("# TYPE u untyped\nu 1\nu_bucket{le=\"1\"} 1\n"),
        ["u", "u_bucket"]
    );
    assert_eq!(
        names("n 1\nn_count 1\nn_sum 1\n"),
        ["n", "n_count", "n_sum"]
    );
    // A HELP alone does not make a family a histogram/summary.
    assert_eq!(names("# HELP q x\nq 1\nq_count 1\n"), ["q", "q_count"]);
    // Summaries do not claim `_bucket`.
    assert_eq!(
        names("# TYPE s summary\ns{quantile=\"0.5\"} 1\ns_bucket{le=\"1\"} 1\n"),
        ["s", "s_bucket"]
    );
    assert_eq!(
        names("# TYPE s summary\ns{quantile=\"0.5\"} 1\n# TYPE s_bucket gauge\ns_bucket 1\n"),
        ["s", "s_bucket"]
    );
    // Other suffixes are separate families.
    assert_eq!(
        names("# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_total 1\nh_created 1\n"),
        ["h", "h_total", "h_created"]
    );
    // An untyped `h_sum` family before the histogram `h` is its own family.
    assert_eq!(
        names("h_sum 1\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_count 1\n"),
        ["h_sum", "h"]
    );
    // `h_count` right after the untyped `h_count` family is the same family.
    assert_eq!(
        names("h_count 1\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\n"),
        ["h_count", "h"]
    );
    // Suffix without a base family.
    assert_eq!(
        names("_count 1\n_sum 1\n_bucket 1\n"),
        ["_count", "_sum", "_bucket"]
    );
}

#[test]
fn families_must_be_contiguous_and_unique() {
    bad("a 1\nb 1\na{x=\"y\"} 1\n", 3, "contiguous");
    bad(
        "# TYPE a gauge\na 1\nb 1\n# HELP a again\n",
        4,
        "contiguous",
    );
    bad(
        "# TYPE a gauge\na 1\nb 1\n# TYPE a gauge\n",
        4,
        "contiguous",
    );
    bad(
        "# HELP a x\na 1\n# HELP b y\nb 1\n# HELP a x\n",
        5,
        "contiguous",
    );
    bad(
        "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\ng 1\nh_bucket{le=\"2\"} 1\n",
        6,
        "contiguous",
    );
    bad(
        "# TYPE s summary\ns{quantile=\"1\"} 1\ng 1\ns_count 1\n",
        4,
        "contiguous",
    );
    // expfmt resolves `h_sum` to the earlier untyped family `h_sum` first.
    bad(
        "h_sum 1\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 2\n",
        4,
        "belongs to family \"h_sum\"",
    );
}

#[test]
fn help_and_type_placement() {
    bad("# HELP a x\n# HELP a y\na 1\n", 2, "second HELP");
    bad(
        "# HELP a x\n# TYPE a gauge\n# HELP a y\na 1\n",
        3,
        "second HELP",
    );
    bad("# TYPE a gauge\n# TYPE a counter\na 1\n", 2, "second TYPE");
    bad("# TYPE a gauge\n# TYPE a gauge\na 1\n", 2, "second TYPE");
    bad("# TYPE a gauge\n# HELP a x\na 1\n", 2, "after its TYPE");
    bad("a 1\n# HELP a x\n", 2, "after its samples");
    bad("a 1\n# TYPE a gauge\n", 2, "after its samples");
    bad("# TYPE a gauge\na 1\n# HELP a x\n", 3, "after its samples");
    bad("# HELP a x\na 1\n# TYPE a gauge\n", 3, "after its samples");
    bad("# TYPE a gauge\na 1\n# TYPE a gauge\n", 3, "second TYPE");
    // HELP/TYPE names resolving to an already started histogram/summary.
    bad(
        "# TYPE h histogram\nh_bucket{le=\"1\"} 1\n# HELP h_bucket x\n",
        3,
        "already started histogram family \"h\"",
    );
    bad(
        "# TYPE h histogram\n# TYPE h_sum gauge\n",
        2,
        "already started histogram",
    );
    bad(
        "# TYPE h histogram\n# HELP h_count x\nh_count 1\n",
        2,
        "already started histogram",
    );
    bad(
        "# TYPE s summary\ns{quantile=\"0.5\"} 1\n# HELP s_count x\ns_count 1\n",
        3,
        "already started summary family \"s\"",
    );
    bad(
        "# TYPE s summary\ns{quantile=\"0.5\"} 1\n# TYPE s_sum counter\n",
        3,
        "already started summary",
    );
    bad(
        "# TYPE h histogram\nh_count 1\nz 1\n# HELP h_count x\n",
        4,
        "already started histogram",
    );
    // ...but not for other types.
    ok("# TYPE g gauge\ng 1\n# TYPE g_sum gauge\ng_sum 1\n");
    ok("# TYPE g counter\ng 1\n# HELP g_count x\ng_count 1\n");
}

#[test]
fn families_need_samples() {
    bad(
        "# HELP a x\n# HELP b y\nb 1\n",
        2,
        "family \"a\" (started at line 1) has no samples",
    );
    bad(
        "# TYPE a gauge\nb 1\n",
        2,
        "family \"a\" (started at line 1) has no samples",
    );
    bad(
        "a 1\n# HELP b x\n",
        2,
        "family \"b\" (started at line 2) has no samples",
    );
    bad("a 1\n# HELP b x\n# TYPE b gauge\n", 3, "has no samples");
    bad("# TYPE a gauge\n", 1, "has no samples");
    // `a` has no TYPE, so `a_sum` is a new family and `a` stays empty.
    bad(
        "# HELP a x\na_sum 1\n",
        2,
        "family \"a\" (started at line 1) has no samples",
    );
    // A histogram family with no samples before the next family.
    bad(
        "# TYPE h histogram\n# TYPE g gauge\ng 1\n",
        2,
        "family \"h\"",
    );
}

#[test]
fn duplicate_series() {
    bad("a 1\na 2\n", 2, "duplicate series a (first at line 1)");
    bad("a 1 1000\na 2 2000\n", 2, "duplicate series");
    bad(
        "a{x=\"1\",y=\"2\"} 1\na{y=\"2\",x=\"1\"} 2\n",
        2,
        "duplicate series a{x=\"1\",y=\"2\"}",
    );
    bad("a{x=\"\\n\"} 1\na{x=\"\\n\"} 2\n", 2, "duplicate series");
    bad(
        "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"1\"} 2\n",
        3,
        "duplicate series",
    );
    bad(
        "# TYPE h histogram\nh_sum 1\nh_count 1\nh_sum 1\n",
        4,
        "duplicate series h_sum",
    );
    bad(
        "# TYPE s summary\ns{quantile=\"0.5\"} 1\ns{quantile=\"0.5\"} 1\n",
        3,
        "duplicate series",
    );
    // Prometheus's identity: a label with an empty value is an absent label.
    bad(
        "a 1\na{x=\"\"} 2\n",
        2,
        "duplicate series a (first at line 1)",
    );
    bad(
        "a{y=\"1\",x=\"\"} 1\na{y=\"1\"} 2\n",
        2,
        "duplicate series a{y=\"1\"}",
    );
    // Distinct label sets are fine.
    ok("a{x=\"1\"} 1\na{x=\"2\"} 1\na{x=\"\"} 1\na{y=\"1\"} 1\n");
    ok("# TYPE s summary\ns{quantile=\"0.5\"} 1\ns{quantile=\"0.50\"} 1\n");
    // Escaping keeps keys unambiguous.
    ok("a{x=\"1\\\",y=\\\"2\"} 1\na{x=\"1\",y=\"2\"} 1\n");
}

#[test]
fn histogram_le_and_summary_quantile() {
    bad("# TYPE h histogram\nh_bucket 1\n", 2, "no 'le' label");
    bad(
        "# TYPE h histogram\nh_bucket{x=\"y\"} 1\n",
        2,
        "no 'le' label",
    );
    for le in [
        "", "abc", "0x1p3", "1e309", " 1", "1 ", "1_0", "+nan", "Infinit",
    ] {
        bad(
            format!("# TYPE h histogram\nh_bucket{{le=\"{le}\"}} 1\n"),
            2,
            "invalid 'le' value",
        );
    }
    for le in [
        "+Inf",
        "inf",
        "-5",
        "1e-3",
        ".5",
        "NaN",
        "0",
        "1.7976931348623157e308",
    ] {
        ok(&format!("# TYPE h histogram\nh_bucket{{le=\"{le}\"}} 1\n"));
    }
    // expfmt parses `le` on every sample of a histogram family.
    bad(
        "# TYPE h histogram\nh_sum{le=\"abc\"} 1\n",
        2,
        "invalid 'le' value",
    );
    bad(
        "# TYPE h histogram\nh_count{le=\"x\"} 1\n",
        2,
        "invalid 'le' value",
    );

    bad("# TYPE s summary\ns 1\n", 2, "no 'quantile' label");
    bad("# TYPE s summary\ns{x=\"y\"} 1\n", 2, "no 'quantile' label");
    for q in ["", "x", "0.5.5", "1e400", "0x1"] {
        bad(
            format!("# TYPE s summary\ns{{quantile=\"{q}\"}} 1\n"),
            2,
            "invalid 'quantile' value",
        );
    }
    bad(
        "# TYPE s summary\ns_sum{quantile=\"x\"} 1\n",
        2,
        "invalid 'quantile' value",
    );
    ok("# TYPE s summary\ns_sum 1\ns_count 1\n");
    ok("# TYPE s summary\ns{quantile=\"-Inf\"} 1\n");

    // Only histogram/summary families get these checks.
    ok("u_bucket 1\nu_bucket{le=\"abc\"} 1\n");
    ok("# TYPE g gauge\ng{le=\"abc\",quantile=\"def\"} 1\n");
    ok("# TYPE s summary\ns{quantile=\"0.5\"} 1\n# TYPE s_bucket gauge\ns_bucket{le=\"x\"} 1\n");
    // A sample named exactly like a histogram family is accepted (expfmt
    // silently ignores it, Prometheus ingests it): not a syntax error.
    ok("# TYPE h histogram\nh 1\nh_bucket{le=\"1\"} 1\n");
}

// ---------------------------------------------------------------------------
// series_key
// ---------------------------------------------------------------------------

#[test]
fn series_key_canonical() {
    assert_eq!(series_key(&s("a", &[], "1", None)), "a");
    assert_eq!(
        series_key(&s("a", &[("z", "1"), ("b", "2"), ("m", "3")], "1", Some(5))),
        "a{b=\"2\",m=\"3\",z=\"1\"}"
    );
    // Order-independent, value/timestamp-independent.
    assert_eq!(
        series_key(&s("a", &[("x", "1"), ("y", "2")], "1", None)),
        series_key(&s("a", &[("y", "2"), ("x", "1")], "NaN", Some(3)))
    );
    // Escaped like the exposition format, so keys are unambiguous.
    assert_eq!(
        series_key(&s("a", &[("x", "q\"b\\n\n")], "1", None)),
        "a{x=\"q\\\"b\\\\n\\n\"}"
    );
    assert_ne!(
        series_key(&s("a", &[("x", "1\",y=\"2")], "1", None)),
        series_key(&s("a", &[("x", "1"), ("y", "2")], "1", None))
    );
    // An empty value is an absent label (Prometheus).
    assert_eq!(
        series_key(&s("a", &[("x", "")], "1", None)),
        series_key(&s("a", &[], "1", None))
    );
    assert_eq!(
        series_key(&s("a", &[("x", ""), ("y", "1")], "1", None)),
        "a{y=\"1\"}"
    );
    assert_ne!(
        series_key(&s("a", &[("x", "1")], "1", None)),
        series_key(&s("ax", &[], "1", None))
    );
    // Round trip through the parser.
    let e = ok("m{b=\"2\",a=\"x\\\"y\"} 1\n");
    assert_eq!(
        series_key(&e.families[0].samples[0]),
        "m{a=\"x\\\"y\",b=\"2\"}"
    );
}

// ---------------------------------------------------------------------------
// fixtures
// ---------------------------------------------------------------------------

/// Expected shape of each fixture under `check_exposition`:
/// (file, families, samples).
///
/// All of them pass, including the two edge fixtures:
/// * `edge.prom` / `rs-edge.prom` add two synthetic families with NaN, ±Inf
///   (`+Inf`/`-Inf` from Go, `inf`/`-inf` from Rust: ParseFloat is
///   case-insensitive), `-0`, `1e-07`/`0.0000001`, f64::MAX written with an
///   exponent (Go) or as a 309-digit integer (Rust, still finite), a label
///   value with `\"`, `\\` and `\n` escapes, an empty label value, a HELP with
///   `\\` and `\n` escapes and an explicit `untyped` TYPE. Every one of these
///   is valid 0.0.4, and the families are distinct and contiguous.
/// * `rs-dragonball.prom` is a raw concatenation of three independently
///   encoded registries (agent, hypervisor, shim), but their family names are
///   disjoint and each family is contiguous, so the concatenation is itself a
///   valid exposition.
/// * The Go bodies (`default`, `edge`, `large`, `small`) are not sorted (agent
///   families come last in Go map order); order is not part of the format.
const FIXTURES: &[(&str, usize, usize)] = &[
    ("default.monitor.prom", 73, 1217),
    ("default.prom", 73, 1217),
    ("edge.prom", 75, 1242),
    ("large.prom", 89, 1590),
    ("rs-dragonball.prom", 24, 823),
    ("rs-edge.prom", 26, 832),
    ("small.prom", 73, 1168),
];

#[test]
fn fixtures_all_listed() {
    let mut found: Vec<String> = std::fs::read_dir(fixtures_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".prom"))
        .collect();
    found.sort();
    let listed: Vec<&str> = FIXTURES.iter().map(|f| f.0).collect();
    assert_eq!(found, listed, "update FIXTURES when fixtures change");
}

#[test]
fn fixtures_check_exposition() {
    for &(name, fams, samples) in FIXTURES {
        let text = fixture(name);
        let e = check_exposition(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(e.families.len(), fams, "{name}: families");
        assert_eq!(e.sample_count(), samples, "{name}: samples");
        // Every family of these fixtures has both HELP and TYPE.
        for f in &e.families {
            assert!(f.help.is_some() && f.typ.is_some(), "{name}: {}", f.name);
        }
        // Rendering the parsed exposition gives the same exposition back.
        let again = check_exposition(render(&e).as_bytes()).unwrap();
        assert_eq!(again, e, "{name}: render round trip");
    }
}

#[test]
fn fixtures_classify_lines() {
    for &(name, _, samples) in FIXTURES {
        let text = fixture(name);
        let kinds = classify_lines(&text);
        let lines = text.iter().filter(|&&c| c == b'\n').count();
        assert_eq!(kinds.len(), lines, "{name}: one entry per line");
        let invalid: Vec<_> = kinds
            .iter()
            .enumerate()
            .filter(|(_, k)| k.is_invalid())
            .collect();
        assert!(invalid.is_empty(), "{name}: invalid lines {invalid:?}");
        let n_samples = kinds
            .iter()
            .filter(|k| matches!(k, LineKind::Sample(_)))
            .count();
        assert_eq!(n_samples, samples, "{name}");
        assert!(
            kinds
                .iter()
                .all(|k| !matches!(k, LineKind::Comment | LineKind::Blank)),
            "{name}: no plain comments or blank lines"
        );
    }
}

#[test]
fn fixture_edge_details() {
    for (name, pos_inf, neg_inf, neg_zero, tiny, max) in [
        (
            "edge.prom",
            "+Inf",
            "-Inf",
            "0",
            "1e-07",
            "1.7976931348623157e+308",
        ),
        (
            "rs-edge.prom",
            "inf",
            "-inf",
            "-0",
            "0.0000001",
            "179769313486231570000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
        ),
    ] {
        let e = check_exposition(&fixture(name)).unwrap();
        let f = e.family("synthetic_edge_case_gauge").unwrap();
        assert_eq!(
            f.help.as_deref(),
            Some("Synthetic: escaped \\ backslash and\nnewline in HELP.")
        );
        assert_eq!(f.typ.as_deref(), Some("gauge"));
        let by_case = |c: &str| {
            f.samples
                .iter()
                .find(|s| s.label("case") == Some(c))
                .unwrap_or_else(|| panic!("{name}: case {c:?}"))
        };
        assert_eq!(by_case("nan").value, "NaN");
        assert!(by_case("nan").value_f64().is_nan());
        assert_eq!(by_case("pos_inf").value, pos_inf);
        assert_eq!(by_case("pos_inf").value_f64(), f64::INFINITY);
        assert_eq!(by_case("neg_inf").value, neg_inf);
        assert_eq!(by_case("neg_inf").value_f64(), f64::NEG_INFINITY);
        assert_eq!(by_case("neg_zero").value, neg_zero);
        assert_eq!(by_case("tiny").value, tiny);
        assert_eq!(by_case("tiny").value_f64(), 1e-7);
        assert_eq!(by_case("max_float").value, max);
        assert_eq!(by_case("max_float").value_f64(), f64::MAX);
        assert_eq!(by_case("quote \" backslash \\ newline \n end").value, "42");
        assert_eq!(by_case("").value, "7");
        assert_eq!(f.samples.len(), 8);
        let u = e.family("synthetic_edge_case_untyped").unwrap();
        assert_eq!(u.typ.as_deref(), Some("untyped"));
        assert_eq!(
            u.samples,
            vec![s("synthetic_edge_case_untyped", &[], "3.14", None)]
        );
    }
}

/// `default.monitor.prom` is kata-monitor's view of `default.prom`: the same
/// series, go_* / process_* renamed to kata_shim_go_* / kata_shim_process_*,
/// with the sandbox/CRI labels added, families sorted by name.
#[test]
fn fixture_monitor_view_matches_shim_body() {
    const ADDED: [&str; 4] = ["sandbox_id", "cri_uid", "cri_name", "cri_namespace"];
    let shim = check_exposition(&fixture("default.prom")).unwrap();
    let mon = check_exposition(&fixture("default.monitor.prom")).unwrap();
    let names: Vec<&str> = mon.families.iter().map(|f| f.name.as_str()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "monitor families are sorted");
    let first = mon.samples().next().unwrap();
    let added: Vec<(String, String)> = ADDED
        .iter()
        .map(|n| (n.to_string(), first.label(n).unwrap().to_string()))
        .collect();
    for smp in mon.samples() {
        for (n, v) in &added {
            assert_eq!(smp.label(n), Some(v.as_str()), "{}", series_key(smp));
        }
    }
    let expected: std::collections::HashSet<String> = shim
        .samples()
        .map(|smp| {
            let mut smp = smp.clone();
            for p in ["go_", "process_"] {
                if smp.name.starts_with(p) {
                    smp.name = format!("kata_shim_{}", smp.name);
                }
            }
            smp.labels.extend(added.iter().cloned());
            series_key(&smp)
        })
        .collect();
    assert_eq!(series_set(&mon), expected);
}

// ---------------------------------------------------------------------------
// robustness and speed
// ---------------------------------------------------------------------------

/// Every prefix and every single-byte corruption of a small valid text is
/// handled without panicking, and `check_exposition` errors always carry a
/// line number.
#[test]
fn no_panics_on_corruptions() {
    let base = "# HELP h Help \\\\ x\\n.\n# TYPE h histogram\nh_bucket{a=\"é\\\"\",le=\"+Inf\"} 1 17\nh_sum 1.5e3\nh_count 2\n# TYPE s summary\ns{quantile=\"0.5\"} NaN\nx{y=\"z\",} -Inf\n";
    ok(base);
    let b = base.as_bytes();
    let replacements = [
        b' ', b'\t', b'\n', b'\r', 0, b'"', b'\\', b'{', b'}', b',', b'=', b'#', b'x', b'1', b'.',
        b'e', 0xff, 0xc3,
    ];
    let check = |t: &[u8]| {
        let _ = classify_lines(t);
        if let Err(e) = check_exposition(t) {
            assert!(e.starts_with("line "), "{e}");
        }
    };
    for i in 0..=b.len() {
        check(&b[..i]);
    }
    for i in 0..b.len() {
        for &r in &replacements {
            let mut t = b.to_vec();
            t[i] = r;
            check(&t);
            t.insert(i, r);
            check(&t);
        }
        let mut t = b.to_vec();
        t.remove(i);
        check(&t);
    }
}

/// Synthetic large body: checks that a multi-megabyte text is handled (and
/// gives a rough speed figure with `--nocapture`).
#[test]
fn large_body() {
    let mut text = String::new();
    let mut n = 0;
    for f in 0..200 {
        text.push_str(&format!(
            "# HELP fam_{f} Family number {f}.\n# TYPE fam_{f} gauge\n"
        ));
        for i in 0..250 {
            text.push_str(&format!(
                "fam_{f}{{sandbox_id=\"{:064x}\",cri_uid=\"uid-{i}\",cri_name=\"pod-{i}\",cri_namespace=\"default\",item=\"i{i}\"}} {}.5e3\n",
                i * 7919 + f,
                i
            ));
            n += 1;
        }
    }
    let t0 = std::time::Instant::now();
    let e = ok(&text);
    let el = t0.elapsed();
    assert_eq!(e.sample_count(), n);
    println!(
        "check_exposition: {} bytes, {n} samples in {el:?} ({:.1} MB/s)",
        text.len(),
        text.len() as f64 / el.as_secs_f64() / 1e6
    );
}
