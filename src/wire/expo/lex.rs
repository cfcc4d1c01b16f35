//! Checked classification of one exposition line.
//!
//! Owns: the grammar. A line is a sample, a HELP, a TYPE, an ignorable comment
//! or blank, or invalid with a [`Reason`]. What is accepted is the intersection
//! of what Go's `expfmt.TextParser` (upstream kata-monitor, `promtool`) and
//! Prometheus's scraper accept, so anything passed through verbatim is valid
//! for both. Positions are relative to the line start. Must not allocate,
//! panic or look beyond the line it is given.

use super::hash::{hash_bytes, mix};
use super::labels::INJECTED;

/// Longest line (without its `\n`) the engine accepts.
pub const MAX_LINE: usize = 16 * 1024;
/// Most labels a sample line may carry.
pub const MAX_LABELS: usize = 64;

/// Why a line (or a group of lines) was dropped. Stable names: they are label
/// values of `kata_monitor_dropped_lines_total{reason}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Reason {
    InvalidUtf8 = 0,
    ControlChar,
    LineTooLong,
    BadMetricName,
    BadLabels,
    DuplicateLabel,
    BadValue,
    BadTimestamp,
    BadHelpOrType,
    DuplicateHelpOrType,
    TypeAfterSamples,
    BadLeOrQuantile,
    DuplicateSeries,
    TypeConflict,
    NameConflict,
    ReservedName,
    TooManySeries,
}

impl Reason {
    pub const COUNT: usize = 17;
    pub const ALL: [Reason; Reason::COUNT] = [
        Reason::InvalidUtf8,
        Reason::ControlChar,
        Reason::LineTooLong,
        Reason::BadMetricName,
        Reason::BadLabels,
        Reason::DuplicateLabel,
        Reason::BadValue,
        Reason::BadTimestamp,
        Reason::BadHelpOrType,
        Reason::DuplicateHelpOrType,
        Reason::TypeAfterSamples,
        Reason::BadLeOrQuantile,
        Reason::DuplicateSeries,
        Reason::TypeConflict,
        Reason::NameConflict,
        Reason::ReservedName,
        Reason::TooManySeries,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::InvalidUtf8 => "invalid_utf8",
            Reason::ControlChar => "control_char",
            Reason::LineTooLong => "line_too_long",
            Reason::BadMetricName => "bad_metric_name",
            Reason::BadLabels => "bad_labels",
            Reason::DuplicateLabel => "duplicate_label",
            Reason::BadValue => "bad_value",
            Reason::BadTimestamp => "bad_timestamp",
            Reason::BadHelpOrType => "bad_help_or_type",
            Reason::DuplicateHelpOrType => "duplicate_help_or_type",
            Reason::TypeAfterSamples => "type_after_samples",
            Reason::BadLeOrQuantile => "bad_le_or_quantile",
            Reason::DuplicateSeries => "duplicate_series",
            Reason::TypeConflict => "type_conflict",
            Reason::NameConflict => "name_conflict",
            Reason::ReservedName => "reserved_name",
            Reason::TooManySeries => "too_many_series",
        }
    }
}

/// Metric type from a `# TYPE` line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
    Summary,
    #[default]
    Untyped,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
            Kind::Summary => "summary",
            Kind::Untyped => "untyped",
        }
    }

    fn parse(t: &[u8]) -> Option<Kind> {
        Some(match t {
            b"counter" => Kind::Counter,
            b"gauge" => Kind::Gauge,
            b"histogram" => Kind::Histogram,
            b"summary" => Kind::Summary,
            b"untyped" => Kind::Untyped,
            _ => return None,
        })
    }
}

/// A span `[start, end)` relative to the line start.
pub type Span = (u32, u32);

/// A classified line.
#[derive(Debug)]
pub enum Line {
    /// Empty or only blanks.
    Blank,
    /// A comment that carries nothing (not HELP/TYPE, or HELP/TYPE without text).
    Comment,
    Help {
        name: Span,
        text: Span,
    },
    Type {
        name: Span,
        kind: Kind,
    },
    Sample(Sample),
    Invalid(Reason),
}

/// A valid sample line's layout.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sample {
    pub name: Span,
    /// Position of `}`, when the line has a label set.
    pub close: Option<u32>,
    /// The label set is `{}` or ends with a `,`: inject without a leading comma.
    pub bare_close: bool,
    /// Start of the `le` label name, and whether its value parses as a float.
    pub le: Option<(u32, bool)>,
    /// Start of the `quantile` label name, and whether its value parses as a float.
    pub quantile: Option<(u32, bool)>,
    /// Starts of source label names that collide with an injected label.
    pub exported: [u32; 4],
    pub n_exported: u8,
    /// Order-independent hash of the label pairs (series identity with the name).
    pub labels_hash: u64,
}

// Character classes.
const M_START: u8 = 1; // [a-zA-Z_:]
const M_CONT: u8 = 2; // [a-zA-Z0-9_:]
const L_START: u8 = 4; // [a-zA-Z_]
const L_CONT: u8 = 8; // [a-zA-Z0-9_]
const BLANK: u8 = 16; // ' ' '\t'
const VAL_STOP: u8 = 32; // '"' '\\' '\r' '\0' (label value scanning)

static CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        let alpha = b.is_ascii_alphabetic() || b == b'_';
        let digit = b.is_ascii_digit();
        let mut v = 0;
        if alpha || b == b':' {
            v |= M_START | M_CONT;
        }
        if digit {
            v |= M_CONT | L_CONT;
        }
        if alpha {
            v |= L_START | L_CONT;
        }
        if b == b' ' || b == b'\t' {
            v |= BLANK;
        }
        if b == b'"' || b == b'\\' || b == b'\r' || b == 0 {
            v |= VAL_STOP;
        }
        t[c] = v;
        c += 1;
    }
    t
};

#[inline]
fn is(b: u8, class: u8) -> bool {
    CLASS[b as usize] & class != 0
}

#[inline]
fn skip_blanks(l: &[u8], mut i: usize) -> usize {
    while i < l.len() && is(l[i], BLANK) {
        i += 1;
    }
    i
}

/// Classify `line` (without its `\n`). `seed` keys the label hash.
pub fn classify(line: &[u8], seed: u64) -> Line {
    if line.len() > MAX_LINE {
        return Line::Invalid(Reason::LineTooLong);
    }
    let i = skip_blanks(line, 0);
    if i == line.len() {
        return Line::Blank;
    }
    match line[i] {
        b'#' => comment(line, i + 1),
        b if is(b, M_START) => match sample(line, i, seed) {
            Ok(s) => Line::Sample(s),
            Err(r) => Line::Invalid(r),
        },
        b'\r' | 0 => Line::Invalid(Reason::ControlChar),
        _ => Line::Invalid(Reason::BadMetricName),
    }
}

fn comment(l: &[u8], mut i: usize) -> Line {
    // A comment is kept only if it is HELP/TYPE; CR/NUL anywhere is still invalid
    // for the consumers, but a plain comment is dropped anyway, so only meta
    // lines are checked byte by byte below.
    i = skip_blanks(l, i);
    let kw_start = i;
    while i < l.len() && !is(l[i], BLANK) {
        i += 1;
    }
    let help = match &l[kw_start..i] {
        b"HELP" => true,
        b"TYPE" => false,
        _ => return Line::Comment,
    };
    i = skip_blanks(l, i);
    let name_start = i;
    if i < l.len() && is(l[i], M_START) {
        i += 1;
        while i < l.len() && is(l[i], M_CONT) {
            i += 1;
        }
    }
    let name = (name_start as u32, i as u32);
    if i == l.len() {
        // `# HELP`, `# HELP name`: nothing to keep, not an error (expfmt).
        return Line::Comment;
    }
    if !is(l[i], BLANK) {
        return Line::Invalid(Reason::BadHelpOrType);
    }
    if name.0 == name.1 {
        // `# HELP  ` with only blanks is ignorable; anything else has a bad name.
        return if skip_blanks(l, i) == l.len() {
            Line::Comment
        } else {
            Line::Invalid(Reason::BadHelpOrType)
        };
    }
    i = skip_blanks(l, i);
    if i == l.len() {
        return Line::Comment;
    }
    let rest = &l[i..];
    if help {
        // Escapes allowed by expfmt in HELP: \\ \n \" ; CR/NUL are rejected.
        let mut j = 0;
        while j < rest.len() {
            match rest[j] {
                b'\\' => match rest.get(j + 1) {
                    Some(b'\\' | b'n' | b'"') => j += 2,
                    _ => return Line::Invalid(Reason::BadHelpOrType),
                },
                b'\r' | 0 => return Line::Invalid(Reason::ControlChar),
                _ => j += 1,
            }
        }
        Line::Help {
            name,
            text: (i as u32, l.len() as u32),
        }
    } else {
        match Kind::parse(rest) {
            Some(kind) => Line::Type { name, kind },
            None => Line::Invalid(Reason::BadHelpOrType),
        }
    }
}

fn sample(l: &[u8], start: usize, seed: u64) -> Result<Sample, Reason> {
    let mut s = Sample::default();
    let mut i = start + 1;
    while i < l.len() && is(l[i], M_CONT) {
        i += 1;
    }
    s.name = (start as u32, i as u32);
    let after_name = i;
    i = skip_blanks(l, i);
    if i < l.len() && l[i] == b'{' {
        i = labels(l, i + 1, seed, &mut s)?;
        i = skip_blanks(l, i);
        if i == l.len() {
            return Err(Reason::BadValue);
        }
    } else {
        match l.get(after_name) {
            Some(&b) if is(b, BLANK) => {}
            Some(b'\r' | 0) => return Err(Reason::ControlChar),
            // `name` alone, or `name"`, `name-1`, quoted names: not a sample line.
            None => return Err(Reason::BadValue),
            Some(_) => return Err(Reason::BadMetricName),
        }
    }
    // The value needs a blank before it (stricter than the parsers, which also
    // accept `name{}1`; no real exporter writes that).
    if i == 0 || !is(l[i - 1], BLANK) {
        return Err(Reason::BadValue);
    }
    let v_start = i;
    while i < l.len() && !is(l[i], BLANK) {
        i += 1;
    }
    if !float_ok(&l[v_start..i]) {
        return Err(if l[v_start..i].iter().any(|&b| b == b'\r' || b == 0) {
            Reason::ControlChar
        } else {
            Reason::BadValue
        });
    }
    if i == l.len() {
        return Ok(s);
    }
    // Blanks then a timestamp, then nothing: expfmt rejects trailing blanks.
    let t_start = skip_blanks(l, i);
    if t_start == l.len() {
        return Err(Reason::BadTimestamp);
    }
    if !timestamp_ok(&l[t_start..]) {
        return Err(if l[t_start..].iter().any(|&b| b == b'\r' || b == 0) {
            Reason::ControlChar
        } else {
            Reason::BadTimestamp
        });
    }
    Ok(s)
}

/// Parse a label set starting after `{`; returns the index after `}`.
fn labels(l: &[u8], mut i: usize, seed: u64, s: &mut Sample) -> Result<usize, Reason> {
    // Effective label names seen so far: (start, end, exported).
    let mut names: [(u32, u32, bool); MAX_LABELS] = [(0, 0, false); MAX_LABELS];
    let mut n = 0usize;
    let mut hash = 0u64;
    let mut bare = true; // last token was `{` or `,`
    loop {
        i = skip_blanks(l, i);
        let Some(&c) = l.get(i) else {
            return Err(Reason::BadLabels);
        };
        if c == b'}' {
            s.close = Some(i as u32);
            s.bare_close = bare;
            s.labels_hash = hash;
            return Ok(i + 1);
        }
        if !bare || !is(c, L_START) {
            return Err(if c == b'\r' || c == 0 {
                Reason::ControlChar
            } else {
                Reason::BadLabels
            });
        }
        let ns = i;
        i += 1;
        while i < l.len() && is(l[i], L_CONT) {
            i += 1;
        }
        let name = &l[ns..i];
        if name == b"__name__" || n == MAX_LABELS {
            return Err(Reason::BadLabels);
        }
        i = skip_blanks(l, i);
        if l.get(i) != Some(&b'=') {
            return Err(Reason::BadLabels);
        }
        i = skip_blanks(l, i + 1);
        if l.get(i) != Some(&b'"') {
            return Err(Reason::BadLabels);
        }
        i += 1;
        let vs = i;
        loop {
            while i < l.len() && !is(l[i], VAL_STOP) {
                i += 1;
            }
            match l.get(i) {
                Some(b'"') => break,
                Some(b'\\') => match l.get(i + 1) {
                    Some(b'\\' | b'"' | b'n') => i += 2,
                    _ => return Err(Reason::BadLabels),
                },
                Some(_) => return Err(Reason::ControlChar),
                None => return Err(Reason::BadLabels),
            }
        }
        let value = &l[vs..i];
        i += 1; // closing quote

        // Collisions with injected names, duplicates (after renaming).
        let exported = INJECTED.iter().any(|inj| inj.as_bytes() == name);
        for &(a, b, e) in &names[..n] {
            let other = &l[a as usize..b as usize];
            if eff_eq(name, exported, other, e) {
                return Err(Reason::DuplicateLabel);
            }
        }
        names[n] = (ns as u32, (ns + name.len()) as u32, exported);
        n += 1;
        if exported {
            s.exported[s.n_exported as usize] = ns as u32;
            s.n_exported += 1;
        }
        if name == b"le" {
            s.le = Some((ns as u32, float_ok(value)));
        } else if name == b"quantile" {
            s.quantile = Some((ns as u32, float_ok(value)));
        }
        hash = hash.wrapping_add(mix(
            hash_bytes(seed, name) ^ hash_bytes(seed ^ 0x5555, value).rotate_left(17)
        ));

        i = skip_blanks(l, i);
        match l.get(i) {
            Some(b',') => {
                bare = true;
                i += 1;
            }
            Some(b'}') => bare = false,
            _ => return Err(Reason::BadLabels),
        }
    }
}

/// Equality of effective label names (`exported_` prepended when renamed).
fn eff_eq(a: &[u8], a_exp: bool, b: &[u8], b_exp: bool) -> bool {
    const P: &[u8] = b"exported_";
    match (a_exp, b_exp) {
        (false, false) | (true, true) => a == b,
        (true, false) => b.len() == P.len() + a.len() && b.starts_with(P) && &b[P.len()..] == a,
        (false, true) => a.len() == P.len() + b.len() && a.starts_with(P) && &a[P.len()..] == b,
    }
}

/// Is `t` a float both parsers accept: Go `strconv.ParseFloat` syntax without
/// hex or underscores (expfmt rejects `pP_`), finite unless spelled as infinity.
pub fn float_ok(t: &[u8]) -> bool {
    let (signed, rest) = match t.first() {
        Some(b'+' | b'-') => (true, &t[1..]),
        _ => (false, t),
    };
    let Some(&first) = rest.first() else {
        return false;
    };
    if first.is_ascii_alphabetic() {
        return rest.eq_ignore_ascii_case(b"inf")
            || rest.eq_ignore_ascii_case(b"infinity")
            || (!signed && rest.eq_ignore_ascii_case(b"nan"));
    }
    let mut i = 0;
    let mut digits = 0usize;
    // Decimal exponent of the first significant digit, to spot possible overflow.
    let mut lead_int = 0i64; // significant integer digits
    let mut lead_frac_zeros = 0i64; // zeros after '.' before the first non-zero
    let mut nonzero = false;
    while i < rest.len() && rest[i].is_ascii_digit() {
        if rest[i] != b'0' || nonzero {
            nonzero = true;
            lead_int += 1;
        }
        i += 1;
        digits += 1;
    }
    if i < rest.len() && rest[i] == b'.' {
        i += 1;
        while i < rest.len() && rest[i].is_ascii_digit() {
            if !nonzero {
                if rest[i] == b'0' {
                    lead_frac_zeros += 1;
                } else {
                    nonzero = true;
                }
            }
            i += 1;
            digits += 1;
        }
    }
    if digits == 0 {
        return false;
    }
    let mut exp = 0i64;
    if i < rest.len() && (rest[i] == b'e' || rest[i] == b'E') {
        i += 1;
        let neg = match rest.get(i) {
            Some(b'+') => {
                i += 1;
                false
            }
            Some(b'-') => {
                i += 1;
                true
            }
            _ => false,
        };
        let es = i;
        while i < rest.len() && rest[i].is_ascii_digit() {
            exp = (exp * 10 + i64::from(rest[i] - b'0')).min(1 << 40);
            i += 1;
        }
        if i == es {
            return false;
        }
        if neg {
            exp = -exp;
        }
    }
    if i != rest.len() {
        return false;
    }
    if !nonzero {
        return true;
    }
    let magnitude = if lead_int > 0 {
        lead_int - 1 + exp
    } else {
        -lead_frac_zeros - 1 + exp
    };
    if magnitude < 308 {
        return true;
    }
    // Rare: might exceed f64::MAX, which ParseFloat reports as a range error.
    std::str::from_utf8(t)
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .is_some_and(f64::is_finite)
}

/// Digits only (Prometheus's lexer), fitting an `i64` (expfmt's ParseInt).
pub fn timestamp_ok(t: &[u8]) -> bool {
    if t.is_empty() || !t.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let sig = match t.iter().position(|&b| b != b'0') {
        Some(p) => &t[p..],
        None => return true,
    };
    sig.len() < 19 || (sig.len() == 19 && sig <= b"9223372036854775807".as_slice())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(line: &str) -> Sample {
        match classify(line.as_bytes(), 1) {
            Line::Sample(s) => s,
            other => panic!("{line:?}: {other:?}"),
        }
    }

    fn bad(line: &[u8]) -> Reason {
        match classify(line, 1) {
            Line::Invalid(r) => r,
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(line)),
        }
    }

    #[test]
    fn floats() {
        for ok in [
            "0",
            "1",
            "-1",
            "+1",
            "1.",
            ".5",
            "1.5e3",
            "1E-3",
            "1e+05",
            "NaN",
            "nan",
            "+Inf",
            "-inf",
            "Infinity",
            "-INFINITY",
            "1.7976931348623157e+308",
            "9.223372036854776e+18",
            "1e-400",
            "0e999999",
            "0.000000001e308",
            "00001",
        ] {
            assert!(float_ok(ok.as_bytes()), "{ok}");
        }
        for bad in [
            "",
            "+",
            "-",
            ".",
            "e5",
            "1e",
            "1e+",
            "1.2.3",
            "0x10",
            "0x1p3",
            "1_000",
            "+NaN",
            "-nan",
            "infin",
            "infinityx",
            "1e309",
            "1.8e308",
            "1,5",
            "1 ",
            " 1",
            "١",
        ] {
            assert!(!float_ok(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn timestamps() {
        assert!(timestamp_ok(b"0"));
        assert!(timestamp_ok(b"1700000000000"));
        assert!(timestamp_ok(b"9223372036854775807"));
        assert!(timestamp_ok(b"0009223372036854775807"));
        assert!(!timestamp_ok(b"9223372036854775808"));
        assert!(!timestamp_ok(b"-1"));
        assert!(!timestamp_ok(b"+1"));
        assert!(!timestamp_ok(b"1.5"));
        assert!(!timestamp_ok(b""));
    }

    #[test]
    fn sample_shapes() {
        let x = s("foo 1");
        assert_eq!(x.name, (0, 3));
        assert_eq!(x.close, None);
        let x = s(r#"foo{a="b"} 1"#);
        assert_eq!(x.close, Some(9));
        assert!(!x.bare_close);
        let x = s(r#"foo{a="b",} 1 123"#);
        assert!(x.bare_close);
        let x = s("foo{} 1");
        assert!(x.bare_close);
        let x = s(r#"  foo { a = "b" , c="\"\\\n" } -Inf"#);
        assert_eq!(x.name, (2, 5));
        assert!(!x.bare_close);
        let x = s(r#"h_bucket{a="x",le="+Inf"} 3"#);
        assert_eq!(x.le, Some((15, true)));
        let x = s(r#"q{quantile="zz"} 3"#);
        assert_eq!(x.quantile, Some((2, false)));
        let x = s(r#"m{sandbox_id="evil",x="1",cri_name="n"} 3"#);
        assert_eq!(x.n_exported, 2);
        assert_eq!(&x.exported[..2], &[2, 26]);
        let x = s("m\t1\t5");
        assert_eq!(x.name, (0, 1));
    }

    #[test]
    fn label_hash_is_order_independent() {
        let a = s(r#"m{a="1",b="2"} 1"#).labels_hash;
        let b = s(r#"m{b="2",a="1"} 1"#).labels_hash;
        let c = s(r#"m{a="2",b="1"} 1"#).labels_hash;
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn invalid_samples() {
        assert_eq!(bad(b"1foo 1"), Reason::BadMetricName);
        assert_eq!(bad(b"foo"), Reason::BadValue);
        assert_eq!(bad(b"foo 1 "), Reason::BadTimestamp);
        assert_eq!(bad(b"foo 1 12 "), Reason::BadTimestamp);
        assert_eq!(bad(b"foo 1 -12"), Reason::BadTimestamp);
        assert_eq!(bad(b"foo abc"), Reason::BadValue);
        assert_eq!(bad(b"foo 1\r"), Reason::ControlChar);
        assert_eq!(bad(b"foo\r 1"), Reason::ControlChar);
        assert_eq!(bad(b"foo{a=\"x\r\"} 1"), Reason::ControlChar);
        assert_eq!(bad(b"foo{a=\"x\0\"} 1"), Reason::ControlChar);
        assert_eq!(bad(br#"foo{a="b"}"#), Reason::BadValue);
        assert_eq!(bad(br#"foo{a="b"}1"#), Reason::BadValue);
        assert_eq!(bad(br#"foo{a="b" c="d"} 1"#), Reason::BadLabels);
        assert_eq!(bad(br#"foo{a="b",,} 1"#), Reason::BadLabels);
        assert_eq!(bad(br#"foo{,} 1"#), Reason::BadLabels);
        assert_eq!(bad(br#"foo{a=b} 1"#), Reason::BadLabels);
        assert_eq!(bad(br#"foo{a="\t"} 1"#), Reason::BadLabels);
        assert_eq!(bad(br#"foo{a="x} 1"#), Reason::BadLabels);
        assert_eq!(bad(br#"foo{1a="x"} 1"#), Reason::BadLabels);
        assert_eq!(bad(br#"foo{__name__="x"} 1"#), Reason::BadLabels);
        assert_eq!(bad(br#"foo{"a.b"="x"} 1"#), Reason::BadLabels);
        assert_eq!(bad(br#"foo{a="1",a="2"} 1"#), Reason::DuplicateLabel);
        assert_eq!(
            bad(br#"foo{cri_uid="1",exported_cri_uid="2"} 1"#),
            Reason::DuplicateLabel
        );
        assert_eq!(bad(br#"{"foo"} 1"#), Reason::BadMetricName);
        assert_eq!(bad(b"foo-bar 1"), Reason::BadMetricName);
        let long = format!("foo {}", "1".repeat(MAX_LINE));
        assert_eq!(bad(long.as_bytes()), Reason::LineTooLong);
        let many: String = (0..=MAX_LABELS).map(|i| format!("l{i}=\"v\",")).collect();
        assert_eq!(
            bad(format!("foo{{{many}}} 1").as_bytes()),
            Reason::BadLabels
        );
    }

    #[test]
    fn comments() {
        assert!(matches!(classify(b"", 0), Line::Blank));
        assert!(matches!(classify(b"  \t", 0), Line::Blank));
        assert!(matches!(classify(b"# hello", 0), Line::Comment));
        assert!(matches!(classify(b"#", 0), Line::Comment));
        assert!(matches!(classify(b"# HELP", 0), Line::Comment));
        assert!(matches!(classify(b"# HELP foo", 0), Line::Comment));
        assert!(matches!(classify(b"# HELP foo   ", 0), Line::Comment));
        assert!(matches!(classify(b"# EOF", 0), Line::Comment));
        match classify(br#"# HELP foo_bar some \\ text\n more \"q\""#, 0) {
            Line::Help { name, text } => {
                assert_eq!(name, (7, 14));
                assert_eq!(text.0, 15);
            }
            other => panic!("{other:?}"),
        }
        match classify(b"#  TYPE  foo  histogram", 0) {
            Line::Type { name, kind } => {
                assert_eq!(name, (9, 12));
                assert_eq!(kind, Kind::Histogram);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(bad(br"# HELP foo bad \t escape"), Reason::BadHelpOrType);
        assert_eq!(bad(b"# HELP foo x\r"), Reason::ControlChar);
        assert_eq!(bad(b"# TYPE foo gauge "), Reason::BadHelpOrType);
        assert_eq!(bad(b"# TYPE foo Gauge"), Reason::BadHelpOrType);
        assert_eq!(bad(b"# TYPE foo gauge_histogram"), Reason::BadHelpOrType);
        assert_eq!(bad(b"# TYPE foo{ gauge"), Reason::BadHelpOrType);
        assert_eq!(bad(b"# HELP 1foo text"), Reason::BadHelpOrType);
    }
}
