//! Checked classification of one exposition line.
//!
//! Owns: the grammar. A line is a sample, a HELP, a TYPE, an ignorable comment
//! or blank, or invalid with a [`Reason`]. What is accepted is the intersection
//! of what Go's `expfmt.TextParser` (upstream kata-monitor, `promtool`) and
//! Prometheus's scraper accept, so anything passed through verbatim is valid
//! for both. Positions are relative to the line start. Must not allocate,
//! panic or look beyond the line it is given.

/// Longest line (without its `\n`) the lexer accepts: the upper bound of
/// the configurable [`Limits::max_line`](super::Limits).
pub const MAX_LINE: usize = 64 * 1024;
/// Most labels a sample line may carry: the upper bound of the configurable
/// [`Limits::max_labels`](super::Limits). More is counted as
/// [`Reason::TooManyLabels`].
pub const MAX_LABELS: usize = 32;

/// The per-line limits (a sandbox's [`Limits`](super::Limits)): a line longer
/// than `max_line` is [`Reason::LineTooLong`], a sample line with more than
/// `max_labels` labels (and otherwise valid) is [`Reason::TooManyLabels`].
#[derive(Clone, Copy, Debug)]
pub struct LineLimits {
    pub max_line: usize,
    pub max_labels: usize,
}

impl LineLimits {
    /// What the lexer can do at most.
    pub const MAX: LineLimits = LineLimits {
        max_line: MAX_LINE,
        max_labels: MAX_LABELS,
    };
}

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
    RenamedLabelCollision,
    TooManyLabels,
    BodyTooLarge,
}

impl Reason {
    pub const COUNT: usize = 20;
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
        Reason::RenamedLabelCollision,
        Reason::TooManyLabels,
        Reason::BodyTooLarge,
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
            Reason::RenamedLabelCollision => "renamed_label_collision",
            Reason::TooManyLabels => "too_many_labels",
            Reason::BodyTooLarge => "body_too_large",
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
    /// A valid sample; its layout is in the `Sample` passed to [`classify`].
    Sample,
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
    /// A renamed label would collide with a source label.
    pub collision: bool,
    /// The bytes from the name to `}` are already the canonical series text:
    /// no blanks, no trailing comma or `{}`, label names strictly increasing,
    /// no `exported_` renames, no empty label value (Prometheus takes
    /// `a=""` for no label `a`). (Always true without a label set.)
    pub canonical: bool,
}

use super::number::{float_ok, timestamp_ok};
pub use super::swar::{eq, find_nl};
use super::swar::{scan_help, scan_label, scan_name, scan_token, scan_value};

// Character classes (the scans over runs of bytes are in `swar`).
const M_START: u8 = 1; // [a-zA-Z_:]
const L_START: u8 = 2; // [a-zA-Z_]
const BLANK: u8 = 4; // ' ' '\t'

static CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        let alpha = b.is_ascii_alphabetic() || b == b'_';
        let mut v = 0;
        if alpha || b == b':' {
            v |= M_START;
        }
        if alpha {
            v |= L_START;
        }
        if b == b' ' || b == b'\t' {
            v |= BLANK;
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

/// Is `name` one of the injected label names?
#[inline]
pub fn is_injected(name: &[u8]) -> bool {
    match name.len() {
        7 => eq(name, b"cri_uid"),
        8 => eq(name, b"cri_name"),
        10 => eq(name, b"sandbox_id"),
        13 => eq(name, b"cri_namespace"),
        _ => false,
    }
}

#[inline]
fn skip_blanks(l: &[u8], mut i: usize) -> usize {
    while i < l.len() && is(l[i], BLANK) {
        i += 1;
    }
    i
}

/// Classify `line` (one line, without its `\n`). For [`Line::Sample`], the
/// layout is written to `s`.
pub fn classify(line: &[u8], s: &mut Sample) -> Line {
    match classify_next(line, s) {
        (l, end) if end == line.len() => l,
        // A `\n` inside: not one line.
        _ => Line::Invalid(Reason::BadValue),
    }
}

/// Classify the line at the start of `l`, which runs to the first `\n` (or
/// the end of `l`), and return it with its end offset. The line is scanned
/// once: its end is found by the parse itself. For [`Line::Sample`] the
/// layout is written to `s` (an out-parameter: returning it by value cost a
/// store-forwarding stall per line).
#[inline]
pub fn classify_next(l: &[u8], s: &mut Sample) -> (Line, usize) {
    classify_impl::<true>(l, s, b"", LineLimits::MAX)
}

/// [`classify_next`] given the metric name of the previous sample line
/// (consecutive lines mostly share it): a line that starts with exactly
/// that name skips scanning it. Same answers as without the hint. `lim`
/// (at most [`LineLimits::MAX`]) are the sandbox's line limits.
#[inline]
pub fn classify_next_hinted(
    l: &[u8],
    s: &mut Sample,
    hint: &[u8],
    lim: LineLimits,
) -> (Line, usize) {
    classify_impl::<true>(l, s, hint, lim)
}

/// [`classify_next`] without the fast path (tests hold the two equal).
#[cfg(test)]
pub fn classify_next_general(l: &[u8], s: &mut Sample, lim: LineLimits) -> (Line, usize) {
    classify_impl::<false>(l, s, b"", lim)
}

#[inline(always)]
fn classify_impl<const FAST: bool>(
    l: &[u8],
    s: &mut Sample,
    hint: &[u8],
    lim: LineLimits,
) -> (Line, usize) {
    let i = skip_blanks(l, 0);
    let (line, end) = if at_eol(l, i) {
        (Line::Blank, i)
    } else {
        match l[i] {
            b'#' => comment(l, i + 1),
            b if is(b, M_START) => {
                let fast = if FAST {
                    super::fast::sample(l, i, s, hint, lim.max_labels)
                } else {
                    None
                };
                match fast.map_or_else(|| sample(l, i, s, lim.max_labels), Ok) {
                    Ok(end) => (Line::Sample, end),
                    Err(r) => (Line::Invalid(r), line_end(l, i)),
                }
            }
            b'\r' | 0 => (Line::Invalid(Reason::ControlChar), line_end(l, i)),
            _ => (Line::Invalid(Reason::BadMetricName), line_end(l, i)),
        }
    };
    if end > lim.max_line {
        return (Line::Invalid(Reason::LineTooLong), end);
    }
    (line, end)
}

#[inline]
fn at_eol(l: &[u8], i: usize) -> bool {
    i >= l.len() || l[i] == b'\n'
}

/// Offset of the `\n` ending the line that `from` is in (or `l.len()`).
fn line_end(l: &[u8], from: usize) -> usize {
    from + find_nl(&l[from..]).unwrap_or(l.len() - from)
}

fn comment(l: &[u8], i: usize) -> (Line, usize) {
    let end = line_end(l, i);
    let line = match meta(&l[..end], i) {
        // Dropped anyway, but a comment with CR, NUL or bad UTF-8 is not a
        // valid comment: count it like any broken line.
        Line::Comment if l[..end].iter().any(|&b| b == b'\r' || b == 0) => {
            Line::Invalid(Reason::ControlChar)
        }
        Line::Comment if std::str::from_utf8(&l[..end]).is_err() => {
            Line::Invalid(Reason::InvalidUtf8)
        }
        other => other,
    };
    (line, end)
}

/// A comment line (`l` is exactly the line). Only HELP and TYPE are kept;
/// a plain comment is dropped whatever its bytes.
fn meta(l: &[u8], mut i: usize) -> Line {
    // `#HELP` is a plain comment to Prometheus (expfmt disagrees; Prometheus
    // is the consumer that matters).
    if i < l.len() && !is(l[i], BLANK) {
        return Line::Comment;
    }
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
        i = scan_name(l, i + 1);
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
        // Escapes allowed in HELP: \\ and \n only (the text format; `\"`
        // is refused by older expfmt, promtool 2.42 included); CR/NUL are
        // rejected.
        let mut high = false;
        let mut j = scan_help(rest, 0);
        while j < rest.len() {
            match rest[j] {
                b'\\' => match rest.get(j + 1) {
                    Some(b'\\' | b'n') => j += 2,
                    _ => return Line::Invalid(Reason::BadHelpOrType),
                },
                b'\r' | 0 => return Line::Invalid(Reason::ControlChar),
                _ => {
                    high = true;
                    j += 1;
                }
            }
            j = scan_help(rest, j);
        }
        if high && std::str::from_utf8(rest).is_err() {
            return Line::Invalid(Reason::InvalidUtf8);
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

/// A sample line starting at `start` (a metric-name byte); returns its end.
/// The general parser: every shape, every error (see `fast` for the common one).
fn sample(l: &[u8], start: usize, s: &mut Sample, max_labels: usize) -> Result<usize, Reason> {
    *s = Sample {
        canonical: true,
        ..Sample::default()
    };
    let mut i = scan_name(l, start + 1);
    s.name = (start as u32, i as u32);
    let after_name = i;
    let mut n_labels = 0;
    if i < l.len() && l[i] == b'{' {
        (i, n_labels) = labels(l, i + 1, s)?;
        i = skip_blanks(l, i);
        if at_eol(l, i) {
            return Err(Reason::BadValue);
        }
    } else {
        match l.get(after_name) {
            Some(&b) if is(b, BLANK) => {}
            Some(b'\r' | 0) => return Err(Reason::ControlChar),
            // `name` alone, or `name"`, `name-1`, quoted names: not a sample line.
            None | Some(b'\n') => return Err(Reason::BadValue),
            Some(_) => return Err(Reason::BadMetricName),
        }
        i = skip_blanks(l, i);
        if l.get(i) == Some(&b'{') {
            // `name {..}`: both parsers take it, no exporter writes it; keep
            // the output to the shape everyone writes.
            return Err(Reason::BadLabels);
        }
    }
    // The value needs a blank before it (stricter than the parsers, which also
    // accept `name{}1`; no real exporter writes that).
    if i == 0 || !is(l[i - 1], BLANK) {
        return Err(Reason::BadValue);
    }
    let v_start = i;
    i = scan_token(l, i);
    if !float_ok(&l[v_start..i]) {
        return Err(if l[v_start..i].iter().any(|&b| b == b'\r' || b == 0) {
            Reason::ControlChar
        } else {
            Reason::BadValue
        });
    }
    let end = if at_eol(l, i) { i } else { timestamp(l, i)? };
    if s.collision {
        return Err(Reason::RenamedLabelCollision);
    }
    if n_labels > max_labels {
        return Err(Reason::TooManyLabels);
    }
    Ok(end)
}

/// Blanks, a timestamp, then the end of the line; returns the end.
fn timestamp(l: &[u8], i: usize) -> Result<usize, Reason> {
    // Blanks then a timestamp, then nothing: expfmt rejects trailing blanks.
    let t_start = skip_blanks(l, i);
    let mut t_end = t_start;
    while t_end < l.len() && l[t_end].is_ascii_digit() {
        t_end += 1;
    }
    if !at_eol(l, t_end) || !timestamp_ok(&l[t_start..t_end]) {
        return Err(match l.get(t_end) {
            Some(b'\r' | 0) => Reason::ControlChar,
            _ => Reason::BadTimestamp,
        });
    }
    Ok(t_end)
}

/// Parse a label set starting after `{`; returns the index after `}` and the
/// number of labels.
fn labels(l: &[u8], mut i: usize, s: &mut Sample) -> Result<(usize, usize), Reason> {
    // Label names seen so far, bit k of `exp`: name k is renamed `exported_`.
    let mut names = [(0u32, 0u32); MAX_LABELS];
    let mut exp = 0u32;
    let mut n = 0usize;
    let mut bare = true; // last token was `{` or `,`
    loop {
        let j = skip_blanks(l, i);
        s.canonical &= j == i;
        i = j;
        if i > MAX_LINE {
            return Err(Reason::LineTooLong);
        }
        let Some(&c) = l.get(i) else {
            return Err(Reason::BadLabels);
        };
        if c == b'}' {
            s.close = Some(i as u32);
            s.bare_close = bare;
            s.canonical &= !bare;
            return Ok((i + 1, n));
        }
        if !bare || !is(c, L_START) {
            return Err(if c == b'\r' || c == 0 {
                Reason::ControlChar
            } else {
                Reason::BadLabels
            });
        }
        let ns = i;
        i = scan_label(l, i + 1);
        if i > MAX_LINE {
            return Err(Reason::LineTooLong);
        }
        let name = &l[ns..i];
        if eq(name, b"__name__") {
            return Err(Reason::BadLabels);
        }
        if n == MAX_LABELS {
            return Err(Reason::TooManyLabels);
        }
        if n > 0 {
            let (a, b) = names[n - 1];
            let prev = &l[a as usize..b as usize];
            // Strictly increasing; decided by the first differing byte.
            s.canonical &= match name.iter().zip(prev).find(|(x, y)| x != y) {
                Some((x, y)) => x > y,
                None => name.len() > prev.len(),
            };
        }
        if l.get(i) != Some(&b'=') || l.get(i + 1) != Some(&b'"') {
            s.canonical = false;
            i = skip_blanks(l, i);
            if l.get(i) != Some(&b'=') {
                return Err(Reason::BadLabels);
            }
            i = skip_blanks(l, i + 1);
            if l.get(i) != Some(&b'"') {
                return Err(Reason::BadLabels);
            }
            i += 1;
        } else {
            i += 2;
        }
        let vs = i;
        let mut high = false;
        loop {
            i = scan_value(l, i);
            match l.get(i) {
                Some(b'"') => break,
                Some(b'\\') => match l.get(i + 1) {
                    Some(b'\\' | b'"' | b'n') => i += 2,
                    _ => return Err(Reason::BadLabels),
                },
                Some(&b) if b >= 0x80 => {
                    high = true;
                    i += 1;
                }
                Some(b'\r' | 0) => return Err(Reason::ControlChar),
                // `\n` or the end: unterminated value.
                _ => return Err(Reason::BadLabels),
            }
        }
        let value = &l[vs..i];
        if high && std::str::from_utf8(value).is_err() {
            return Err(Reason::InvalidUtf8);
        }
        // An empty value is no label to Prometheus: not the canonical text.
        s.canonical &= !value.is_empty();
        i += 1; // closing quote

        // Collisions with injected names, duplicates (after renaming).
        let exported = is_injected(name);
        for (k, &(a, b)) in names[..n].iter().enumerate() {
            let other = &l[a as usize..b as usize];
            if eq(name, other) {
                return Err(Reason::DuplicateLabel);
            }
            // Valid input, but `x` renamed `exported_x` meets a source
            // `exported_x`: the output line would repeat a label. Reported
            // only if the rest of the line is valid.
            s.collision |= eff_eq(name, exported, other, exp & (1 << k) != 0);
        }
        names[n] = (ns as u32, (ns + name.len()) as u32);
        exp |= u32::from(exported) << n;
        n += 1;
        if exported {
            s.exported[s.n_exported as usize] = ns as u32;
            s.n_exported += 1;
            // The series identity uses the renamed label name.
            s.canonical = false;
        }
        if eq(name, b"le") {
            s.le = Some((ns as u32, float_ok(value)));
        } else if eq(name, b"quantile") {
            s.quantile = Some((ns as u32, float_ok(value)));
        }
        let j = skip_blanks(l, i);
        s.canonical &= j == i;
        i = j;
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
        (false, false) | (true, true) => eq(a, b),
        (true, false) => b.len() == P.len() + a.len() && b.starts_with(P) && eq(&b[P.len()..], a),
        (false, true) => a.len() == P.len() + b.len() && a.starts_with(P) && eq(&a[P.len()..], b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify(line: &[u8]) -> Line {
        super::classify(line, &mut Sample::default())
    }

    fn s(line: &str) -> Sample {
        let mut s = Sample::default();
        match super::classify(line.as_bytes(), &mut s) {
            Line::Sample => s,
            other => panic!("{line:?}: {other:?}"),
        }
    }

    fn bad(line: &[u8]) -> Reason {
        match classify(line) {
            Line::Invalid(r) => r,
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(line)),
        }
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
        let x = s(r#"  foo{ a = "b" , c="\"\\\n" } -Inf"#);
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
    fn canonical_lines() {
        for c in [
            "m 1",
            r#"m{a="1"} 1"#,
            r#"m{a="1",b="2"} 1"#,
            r#"m{a="x",ab="x"} 1 5"#,
        ] {
            assert!(s(c).canonical, "{c}");
        }
        for c in [
            r#"m{b="2",a="1"} 1"#,
            r#"m{a="1",a1="1",a0="2"} 1"#,
            r#"m{ a="1"} 1"#,
            r#"m{a ="1"} 1"#,
            r#"m{a= "1"} 1"#,
            r#"m{a="1" } 1"#,
            r#"m{a="1",} 1"#,
            r#"m{a="1", b="1"} 1"#,
            "m{} 1",
            r#"m{a=""} 1"#,
            r#"m{a="1",b=""} 1"#,
            r#"m{a="",ab="x"} 1 5"#,
        ] {
            assert!(!s(c).canonical, "{c}");
        }
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
        assert_eq!(bad(br#"foo {a="b"} 1"#), Reason::BadLabels);
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
            Reason::RenamedLabelCollision
        );
        assert_eq!(
            bad(br#"foo{cri_uid="1",exported_cri_uid="2"} x"#),
            Reason::BadValue
        );
        assert_eq!(bad(br#"{"foo"} 1"#), Reason::BadMetricName);
        assert_eq!(bad(b"foo-bar 1"), Reason::BadMetricName);
        let long = format!("foo {}", "1".repeat(MAX_LINE));
        assert_eq!(bad(long.as_bytes()), Reason::LineTooLong);
        let many: String = (0..=MAX_LABELS).map(|i| format!("l{i}=\"v\",")).collect();
        assert_eq!(
            bad(format!("foo{{{many}}} 1").as_bytes()),
            Reason::TooManyLabels
        );
    }

    #[test]
    fn comments() {
        assert!(matches!(classify(b""), Line::Blank));
        assert!(matches!(classify(b"  \t"), Line::Blank));
        assert!(matches!(classify(b"# hello"), Line::Comment));
        assert!(matches!(classify(b"#"), Line::Comment));
        assert!(matches!(classify(b"# HELP"), Line::Comment));
        assert!(matches!(classify(b"# HELP foo"), Line::Comment));
        assert!(matches!(classify(b"# HELP foo   "), Line::Comment));
        assert!(matches!(classify(b"# EOF"), Line::Comment));
        assert!(matches!(classify(b"#HELP foo x"), Line::Comment));
        assert_eq!(bad(b"# comment \0"), Reason::ControlChar);
        assert_eq!(bad(b"# comment \xff"), Reason::InvalidUtf8);
        assert!(matches!(classify(b"#TYPE foo gauge"), Line::Comment));
        assert_eq!(bad(br#"# HELP foo x \" y"#), Reason::BadHelpOrType);
        match classify(br#"# HELP foo_bar some \\ text\n more "q""#) {
            Line::Help { name, text } => {
                assert_eq!(name, (7, 14));
                assert_eq!(text.0, 15);
            }
            other => panic!("{other:?}"),
        }
        match classify(b"#  TYPE  foo  histogram") {
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
