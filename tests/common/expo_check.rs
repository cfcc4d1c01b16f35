//! Independent, strict validator/parser for the Prometheus text exposition
//! format 0.0.4, used as a test oracle.
//!
//! This module deliberately shares NO code with `src/`: it is the independent
//! check of that code. Only `std` is used.
//!
//! The accepted language is (intended to be) the intersection of what Go's
//! `expfmt.TextParser` (used by `promtool check metrics` and the upstream Go
//! kata-monitor) and Prometheus's scraper (`model/textparse` promlex.l /
//! promparse.go) accept, restricted further where noted:
//!
//! * [`classify_lines`] is the lenient per-line view of an INPUT body (e.g. a
//!   shim body): each line is classified on its own; leading blanks, blank
//!   lines and plain comments are fine.
//! * [`check_exposition`] is the strict check of a whole OUTPUT body: only
//!   sample / `# HELP` / `# TYPE` lines, no leading blanks, no empty lines, no
//!   plain comments, families grouped exactly like expfmt groups them,
//!   contiguous and unique, HELP/TYPE before samples, no empty families, no
//!   duplicate series, `le` / `quantile` labels where required.
//!
//! Line grammar (lines are split on `'\n'`; `'\r'` and NUL are never allowed):
//!
//! ```text
//! sample    = name [labelset] blank+ value [blank+ timestamp]      (nothing after)
//! name      = [a-zA-Z_:][a-zA-Z0-9_:]*
//! labelset  = "{" blank* ( "}" | label (blank* "," blank* label)* blank* [","] blank* "}" )
//! label     = lname blank* "=" blank* '"' lvalue '"'
//! lname     = [a-zA-Z_][a-zA-Z0-9_]*          (not "__name__", no duplicates)
//! lvalue    = any UTF-8 except '"', '\' and newline, or the escapes \\ \" \n
//! value     = Go ParseFloat syntax without [pP_]: [+-]?(digits[.digits*]|.digits)([eE][+-]?digits)?
//!             | [+-]?(inf|infinity) | nan        (case-insensitive, no overflow to ±Inf)
//! timestamp = [0-9]+ fitting in i64
//! help      = "#" blank+ "HELP" blank+ name blank+ text    (text escapes: \\ \n only;
//!             promtool 2.42's expfmt refuses \")
//! type      = "#" blank+ "TYPE" blank+ name blank+ ("counter"|"gauge"|"histogram"|"summary"|"untyped")
//! ```
//!
//! A `# HELP` / `# TYPE` line with no name, or with nothing after the name, is
//! a plain comment (expfmt ignores it). Any other `#` line is a plain comment.
#![allow(dead_code)]

use std::collections::HashMap;
use std::collections::HashSet;
use std::fmt::Write as _;
use std::hash::{BuildHasherDefault, Hasher};

/// One sample line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    pub name: String,
    /// Unescaped label values, in source order.
    pub labels: Vec<(String, String)>,
    /// The raw value token, exactly as written.
    pub value: String,
    pub timestamp: Option<i64>,
}

impl Sample {
    /// Value of the label `name`, if present.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The value parsed as f64 (the token was validated, so this cannot fail
    /// for samples produced by this module).
    pub fn value_f64(&self) -> f64 {
        parse_float(&self.value).expect("sample value was validated")
    }
}

/// One metric family, as grouped by expfmt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Family {
    pub name: String,
    /// Unescaped HELP text.
    pub help: Option<String>,
    pub typ: Option<String>,
    pub samples: Vec<Sample>,
}

/// A whole, validated exposition.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Exposition {
    /// Families in output order.
    pub families: Vec<Family>,
}

impl Exposition {
    /// The family called `name`, if any.
    pub fn family(&self, name: &str) -> Option<&Family> {
        self.families.iter().find(|f| f.name == name)
    }

    /// All samples, in output order.
    pub fn samples(&self) -> impl Iterator<Item = &Sample> {
        self.families.iter().flat_map(|f| f.samples.iter())
    }

    /// Total number of samples.
    pub fn sample_count(&self) -> usize {
        self.families.iter().map(|f| f.samples.len()).sum()
    }
}

/// Classification of one line of an input body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineKind {
    Sample(Sample),
    Help {
        name: String,
        text: String,
    },
    Type {
        name: String,
        typ: String,
    },
    /// A plain `#` comment (including HELP/TYPE lines without name or text).
    Comment,
    /// Empty or whitespace-only line.
    Blank,
    Invalid(String),
}

impl LineKind {
    pub fn is_invalid(&self) -> bool {
        matches!(self, LineKind::Invalid(_))
    }
}

// ---------------------------------------------------------------------------
// public entry points
// ---------------------------------------------------------------------------

/// Strict check of a whole response body (our monitor's OUTPUT contract).
///
/// Returns the families in output order, or an error message that starts with
/// `line N:` (1-based).
pub fn check_exposition(text: &[u8]) -> Result<Exposition, String> {
    let s = match std::str::from_utf8(text) {
        Ok(s) => s,
        Err(e) => {
            let ln = line_of_offset(text, e.valid_up_to());
            return Err(format!(
                "line {ln}: invalid UTF-8 at byte offset {}",
                e.valid_up_to()
            ));
        }
    };
    let mut b = Builder::default();
    if s.is_empty() {
        return Ok(Exposition::default());
    }
    let (body, terminated) = match s.strip_suffix('\n') {
        Some(body) => (body, true),
        None => (s, false),
    };
    let mut ln = 0usize;
    for line in body.split('\n') {
        ln += 1;
        b.line(ln, line).map_err(|m| format!("line {ln}: {m}"))?;
    }
    if !terminated {
        return Err(format!(
            "line {ln}: text does not end with a newline (missing '\\n' after the last line)"
        ));
    }
    b.finish(ln)
}

/// Lenient per-line view of an INPUT body. One entry per line; a final `'\n'`
/// terminates the last line (it does not start an extra empty line). A final
/// line without `'\n'` is classified on its own merits.
pub fn classify_lines(body: &[u8]) -> Vec<LineKind> {
    let mut out = Vec::new();
    if body.is_empty() {
        return out;
    }
    let body = body.strip_suffix(b"\n").unwrap_or(body);
    for line in body.split(|&c| c == b'\n') {
        out.push(match std::str::from_utf8(line) {
            Ok(l) => classify_line(l),
            Err(e) => LineKind::Invalid(format!(
                "invalid UTF-8 at byte {} of the line",
                e.valid_up_to()
            )),
        });
    }
    out
}

/// Classify a single line (without its terminating `'\n'`). Leading blanks
/// are allowed here.
pub fn classify_line(line: &str) -> LineKind {
    if let Some(m) = forbidden_byte(line) {
        return LineKind::Invalid(m);
    }
    let t = line.trim_start_matches([' ', '\t']);
    if t.is_empty() {
        return LineKind::Blank;
    }
    parse_trimmed(t)
}

/// Canonical series key: name + labels sorted by name (then value), values
/// escaped like the exposition format, labels with an empty value left out
/// (Prometheus's identity: `a=""` is no label `a`). Samples without
/// labels give just the name. Equal keys <=> same series.
pub fn series_key(s: &Sample) -> String {
    let mut labels: Vec<&(String, String)> =
        s.labels.iter().filter(|(_, v)| !v.is_empty()).collect();
    labels.sort();
    let mut k = String::with_capacity(
        s.name.len()
            + labels
                .iter()
                .map(|(n, v)| n.len() + v.len() + 4)
                .sum::<usize>()
            + 2,
    );
    k.push_str(&s.name);
    if !labels.is_empty() {
        k.push('{');
        for (i, (n, v)) in labels.into_iter().enumerate() {
            if i > 0 {
                k.push(',');
            }
            k.push_str(n);
            k.push_str("=\"");
            for c in v.chars() {
                match c {
                    '\\' => k.push_str("\\\\"),
                    '"' => k.push_str("\\\""),
                    '\n' => k.push_str("\\n"),
                    c => k.push(c),
                }
            }
            k.push('"');
        }
        k.push('}');
    }
    k
}

/// Parse a float token with the rules used for sample values and for the
/// `le` / `quantile` label values (Go `strconv.ParseFloat` as restricted by
/// expfmt/Prometheus `parseFloat`). Overflow (e.g. `1e309`) is an error.
pub fn parse_float(tok: &str) -> Result<f64, String> {
    if tok.is_empty() {
        return Err("empty number".into());
    }
    if tok.bytes().any(|c| matches!(c, b'p' | b'P' | b'_')) {
        return Err("contains one of 'p', 'P', '_'".into());
    }
    let (neg, signed, rest) = match tok.as_bytes()[0] {
        b'+' => (false, true, &tok[1..]),
        b'-' => (true, true, &tok[1..]),
        _ => (false, false, tok),
    };
    if rest.eq_ignore_ascii_case("inf") || rest.eq_ignore_ascii_case("infinity") {
        return Ok(if neg {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        });
    }
    if rest.eq_ignore_ascii_case("nan") {
        if signed {
            return Err("NaN must not have a sign".into());
        }
        return Ok(f64::NAN);
    }
    // Decimal form: (digits [. digits*] | . digits) ([eE] [+-]? digits)?
    let b = rest.as_bytes();
    let mut i = 0;
    let mut mant_digits = 0;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
        mant_digits += 1;
    }
    if i < b.len() && b[i] == b'.' {
        i += 1;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
            mant_digits += 1;
        }
    }
    if mant_digits == 0 {
        return Err("not a number".into());
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return Err("exponent without digits".into());
        }
    }
    if i != b.len() {
        return Err("not a number".into());
    }
    let v: f64 = tok.parse().map_err(|e| format!("not a number ({e})"))?;
    if v.is_infinite() {
        return Err("out of range for f64 (overflow)".into());
    }
    Ok(v)
}

// ---------------------------------------------------------------------------
// line parsing
// ---------------------------------------------------------------------------

const TYPES: [&str; 5] = ["counter", "gauge", "histogram", "summary", "untyped"];

fn is_blank(c: u8) -> bool {
    c == b' ' || c == b'\t'
}

fn is_name_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c == b':'
}

fn is_name_cont(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b':'
}

fn is_lname_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_'
}

fn is_lname_cont(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

fn skip_blanks(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && is_blank(b[i]) {
        i += 1;
    }
    i
}

/// End of the metric name starting at `i` (== `i` if there is none).
fn scan_metric_name(b: &[u8], i: usize) -> usize {
    if i >= b.len() || !is_name_start(b[i]) {
        return i;
    }
    let mut j = i + 1;
    while j < b.len() && is_name_cont(b[j]) {
        j += 1;
    }
    j
}

fn scan_label_name(b: &[u8], i: usize) -> usize {
    if i >= b.len() || !is_lname_start(b[i]) {
        return i;
    }
    let mut j = i + 1;
    while j < b.len() && is_lname_cont(b[j]) {
        j += 1;
    }
    j
}

/// Describe the character at byte `i` of `t` (or end of line) for messages.
fn at(t: &str, i: usize) -> String {
    match t.get(i..).and_then(|r| r.chars().next()) {
        Some(c) => format!("{c:?}"),
        None => "end of line".into(),
    }
}

/// Shorten a line for inclusion in an error message.
fn snippet(s: &str) -> String {
    const MAX: usize = 80;
    if s.len() <= MAX {
        return format!("{s:?}");
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{:?}...", &s[..end])
}

fn forbidden_byte(line: &str) -> Option<String> {
    let b = line.as_bytes();
    let pos = b.iter().position(|&c| c == b'\r' || c == 0)?;
    Some(if b[pos] == b'\r' {
        format!("carriage return ('\\r') at column {}", pos + 1)
    } else {
        format!("NUL byte at column {}", pos + 1)
    })
}

/// Parse a line that has no leading blank, is not empty and contains no
/// forbidden bytes.
fn parse_trimmed(t: &str) -> LineKind {
    if t.starts_with('#') {
        return parse_comment(t);
    }
    match parse_sample(t) {
        Ok(s) => LineKind::Sample(s),
        Err(e) => LineKind::Invalid(e),
    }
}

fn parse_comment(t: &str) -> LineKind {
    let b = t.as_bytes();
    let n = b.len();
    let mut i = 1;
    if i >= n || !is_blank(b[i]) {
        // "#", "#HELP ...", "#foo": plain comment.
        return LineKind::Comment;
    }
    i = skip_blanks(b, i);
    let kw_start = i;
    while i < n && !is_blank(b[i]) {
        i += 1;
    }
    let kw = &t[kw_start..i];
    let is_help = kw == "HELP";
    if !is_help && kw != "TYPE" {
        return LineKind::Comment;
    }
    i = skip_blanks(b, i);
    if i == n {
        // No metric name: ignorable.
        return LineKind::Comment;
    }
    let name_start = i;
    i = scan_metric_name(b, i);
    if i == name_start {
        return LineKind::Invalid(format!(
            "invalid metric name in {kw} line: unexpected {}",
            at(t, i)
        ));
    }
    let name = &t[name_start..i];
    if i == n {
        // Name but no text: ignorable.
        return LineKind::Comment;
    }
    if !is_blank(b[i]) {
        return LineKind::Invalid(format!(
            "invalid metric name in {kw} line: unexpected {} after {name:?}",
            at(t, i)
        ));
    }
    i = skip_blanks(b, i);
    if i == n {
        return LineKind::Comment;
    }
    let rest = &t[i..];
    if is_help {
        match unescape_help(rest) {
            Ok(text) => LineKind::Help {
                name: name.to_string(),
                text,
            },
            Err(e) => LineKind::Invalid(format!("HELP text for {name:?}: {e}")),
        }
    } else if TYPES.contains(&rest) {
        LineKind::Type {
            name: name.to_string(),
            typ: rest.to_string(),
        }
    } else {
        LineKind::Invalid(format!(
            "invalid metric type {rest:?} for {name:?} (expected exactly one of {TYPES:?})"
        ))
    }
}

fn unescape_help(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut seg = 0;
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' {
            out.push_str(&s[seg..i]);
            match b.get(i + 1) {
                Some(b'\\') => out.push('\\'),
                Some(b'n') => out.push('\n'),
                Some(_) => {
                    return Err(format!(
                        "invalid escape sequence '\\{}'",
                        s[i + 1..].chars().next().unwrap_or('?')
                    ));
                }
                None => return Err("trailing backslash (incomplete escape)".into()),
            }
            i += 2;
            seg = i;
        } else {
            i += 1;
        }
    }
    out.push_str(&s[seg..]);
    Ok(out)
}

fn parse_sample(t: &str) -> Result<Sample, String> {
    let b = t.as_bytes();
    let n = b.len();
    let mut i = scan_metric_name(b, 0);
    if i == 0 {
        return Err(match b[0] {
            b'{' | b'"' => {
                "missing metric name (quoted/UTF-8 metric names are not supported)".to_string()
            }
            _ => format!("invalid metric name: unexpected {}", at(t, 0)),
        });
    }
    let name = t[..i].to_string();
    let mut labels = Vec::new();
    if i < n && b[i] == b'{' {
        i = parse_labels(t, i + 1, &mut labels)?;
    }
    if i == n {
        return Err(format!("missing value for {name:?}"));
    }
    if !is_blank(b[i]) {
        return Err(format!(
            "expected blank before the value of {name:?}, found {}",
            at(t, i)
        ));
    }
    i = skip_blanks(b, i);
    if i == n {
        return Err(format!(
            "missing value for {name:?} (line ends in whitespace)"
        ));
    }
    let vs = i;
    while i < n && !is_blank(b[i]) {
        i += 1;
    }
    let value = &t[vs..i];
    if let Err(e) = parse_float(value) {
        return Err(format!("invalid sample value {value:?} for {name:?}: {e}"));
    }
    let mut timestamp = None;
    if i < n {
        i = skip_blanks(b, i);
        if i == n {
            return Err(format!("trailing whitespace after the value of {name:?}"));
        }
        let ts = i;
        while i < n && !is_blank(b[i]) {
            i += 1;
        }
        let tok = &t[ts..i];
        if !tok.bytes().all(|c| c.is_ascii_digit()) {
            return Err(format!(
                "invalid timestamp {tok:?} for {name:?} (digits only)"
            ));
        }
        let v: i64 = tok
            .parse()
            .map_err(|_| format!("timestamp {tok:?} for {name:?} does not fit in i64"))?;
        timestamp = Some(v);
        if i < n {
            let rest = &t[i..];
            return Err(if rest.bytes().all(is_blank) {
                format!("trailing whitespace after the timestamp of {name:?}")
            } else {
                format!(
                    "unexpected content after the timestamp of {name:?}: {}",
                    snippet(rest)
                )
            });
        }
    }
    Ok(Sample {
        name,
        labels,
        value: value.to_string(),
        timestamp,
    })
}

/// Parse a label set; `i` is just after `{`. Returns the index just after `}`.
fn parse_labels(
    t: &str,
    mut i: usize,
    labels: &mut Vec<(String, String)>,
) -> Result<usize, String> {
    let b = t.as_bytes();
    let n = b.len();
    i = skip_blanks(b, i);
    if i < n && b[i] == b'}' {
        return Ok(i + 1);
    }
    loop {
        let ns = i;
        i = scan_label_name(b, i);
        if i == ns {
            return Err(if i == n {
                "unterminated label set".to_string()
            } else {
                format!("invalid label name: unexpected {}", at(t, i))
            });
        }
        let lname = &t[ns..i];
        if lname == "__name__" {
            return Err("label name \"__name__\" is reserved".into());
        }
        if labels.iter().any(|(l, _)| l == lname) {
            return Err(format!("duplicate label name {lname:?}"));
        }
        i = skip_blanks(b, i);
        if i == n || b[i] != b'=' {
            return Err(format!(
                "expected '=' after label name {lname:?}, found {}",
                at(t, i)
            ));
        }
        i = skip_blanks(b, i + 1);
        if i == n || b[i] != b'"' {
            return Err(format!(
                "expected '\"' to start the value of label {lname:?}, found {}",
                at(t, i)
            ));
        }
        let (v, ni) =
            parse_label_value(t, i + 1).map_err(|e| format!("value of label {lname:?}: {e}"))?;
        labels.push((lname.to_string(), v));
        i = skip_blanks(b, ni);
        if i == n {
            return Err("unterminated label set".into());
        }
        match b[i] {
            b',' => {
                i = skip_blanks(b, i + 1);
                if i < n && b[i] == b'}' {
                    return Ok(i + 1);
                }
            }
            b'}' => return Ok(i + 1),
            _ => {
                return Err(format!(
                    "expected ',' or '}}' after the value of label {lname:?}, found {}",
                    at(t, i)
                ));
            }
        }
    }
}

/// Parse a label value; `i` is just after the opening quote. Returns the
/// unescaped value and the index just after the closing quote.
fn parse_label_value(t: &str, mut i: usize) -> Result<(String, usize), String> {
    let b = t.as_bytes();
    let mut out = String::new();
    let mut seg = i;
    while i < b.len() {
        match b[i] {
            b'"' => {
                out.push_str(&t[seg..i]);
                return Ok((out, i + 1));
            }
            b'\\' => {
                out.push_str(&t[seg..i]);
                match b.get(i + 1) {
                    Some(b'\\') => out.push('\\'),
                    Some(b'"') => out.push('"'),
                    Some(b'n') => out.push('\n'),
                    Some(_) => {
                        return Err(format!(
                            "invalid escape sequence '\\{}'",
                            t[i + 1..].chars().next().unwrap_or('?')
                        ));
                    }
                    None => break,
                }
                i += 2;
                seg = i;
            }
            _ => i += 1,
        }
    }
    Err("unterminated label value (missing closing '\"')".into())
}

fn line_of_offset(text: &[u8], off: usize) -> usize {
    text[..off.min(text.len())]
        .iter()
        .filter(|&&c| c == b'\n')
        .count()
        + 1
}

// ---------------------------------------------------------------------------
// family grouping (check_exposition)
// ---------------------------------------------------------------------------

struct Meta {
    /// Line that started the family.
    first_line: usize,
    help_line: Option<usize>,
    type_line: Option<usize>,
}

/// Small, fast non-cryptographic hasher (FxHash-style, word at a time): the
/// maps below hold keys from trusted test data, and SipHash dominated the
/// profile on 30 MB bodies.
#[derive(Default)]
struct FastHasher(u64);

impl Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x517c_c1b7_2722_0a95;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let w = u64::from_le_bytes(c.try_into().expect("8 bytes"));
            self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(K);
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut buf = [0u8; 8];
            buf[..rest.len()].copy_from_slice(rest);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(buf)).wrapping_mul(K);
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.0 = (self.0.rotate_left(5) ^ u64::from(i)).wrapping_mul(0x517c_c1b7_2722_0a95);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;

#[derive(Default)]
struct Builder {
    fams: Vec<Family>,
    meta: Vec<Meta>,
    by_name: FastMap<String, usize>,
    /// series key -> line of first occurrence.
    series: FastMap<String, usize>,
}

enum Resolved {
    /// Family with exactly this name.
    Exact(usize),
    /// `_bucket` / `_sum` / `_count` of a histogram/summary family.
    Suffix(usize),
    None,
}

impl Builder {
    /// Resolve a name to a family the way expfmt's setOrCreateCurrentMF does.
    fn resolve(&self, name: &str) -> Resolved {
        if let Some(&i) = self.by_name.get(name) {
            return Resolved::Exact(i);
        }
        for suffix in ["_bucket", "_sum", "_count"] {
            let Some(&i) = name.strip_suffix(suffix).and_then(|b| self.by_name.get(b)) else {
                continue;
            };
            match self.fams[i].typ.as_deref() {
                Some("histogram") => return Resolved::Suffix(i),
                Some("summary") if suffix != "_bucket" => return Resolved::Suffix(i),
                _ => {}
            }
        }
        Resolved::None
    }

    fn current(&self) -> Option<usize> {
        self.fams.len().checked_sub(1)
    }

    fn check_current_nonempty(&self) -> Result<(), String> {
        let Some(c) = self.current() else {
            return Ok(());
        };
        if self.fams[c].samples.is_empty() {
            return Err(format!(
                "family {:?} (started at line {}) has no samples",
                self.fams[c].name, self.meta[c].first_line
            ));
        }
        Ok(())
    }

    fn new_family(&mut self, ln: usize, name: &str) -> Result<usize, String> {
        self.check_current_nonempty()?;
        let i = self.fams.len();
        self.fams.push(Family {
            name: name.to_string(),
            help: None,
            typ: None,
            samples: Vec::new(),
        });
        self.meta.push(Meta {
            first_line: ln,
            help_line: None,
            type_line: None,
        });
        self.by_name.insert(name.to_string(), i);
        Ok(i)
    }

    fn not_contiguous(&self, what: &str, name: &str, i: usize) -> String {
        format!(
            "{what} {name:?} belongs to family {:?} which started at line {} and was \
             already followed by family {:?}: families must be contiguous and appear once",
            self.fams[i].name,
            self.meta[i].first_line,
            self.fams[self.fams.len() - 1].name
        )
    }

    fn line(&mut self, ln: usize, line: &str) -> Result<(), String> {
        if line.is_empty() {
            return Err("empty line (not allowed in output)".into());
        }
        if let Some(m) = forbidden_byte(line) {
            return Err(m);
        }
        if line.starts_with([' ', '\t']) {
            return Err(format!(
                "leading whitespace (not allowed in output): {}",
                snippet(line)
            ));
        }
        match parse_trimmed(line) {
            LineKind::Sample(s) => self.sample(ln, s),
            LineKind::Help { name, text } => self.help(ln, name, text),
            LineKind::Type { name, typ } => self.typ(ln, name, typ),
            LineKind::Comment => Err(format!(
                "plain comment (not allowed in output; HELP/TYPE lines need a valid name and text): {}",
                snippet(line)
            )),
            LineKind::Blank => Err("whitespace-only line".into()),
            LineKind::Invalid(e) => Err(e),
        }
    }

    fn help(&mut self, ln: usize, name: String, text: String) -> Result<(), String> {
        let i = match self.resolve(&name) {
            Resolved::Exact(i) => {
                if Some(i) != self.current() {
                    return Err(self.not_contiguous("HELP for", &name, i));
                }
                let (f, m) = (&self.fams[i], &self.meta[i]);
                if let Some(l) = m.help_line {
                    return Err(format!("second HELP line for {name:?} (first at line {l})"));
                }
                if !f.samples.is_empty() {
                    return Err(format!("HELP line for {name:?} after its samples"));
                }
                if let Some(l) = m.type_line {
                    return Err(format!(
                        "HELP line for {name:?} after its TYPE line (line {l}); HELP must come first"
                    ));
                }
                i
            }
            Resolved::Suffix(i) => {
                return Err(format!(
                    "HELP for {name:?} resolves to the already started {} family {:?} \
                     (line {}); expfmt would treat it as a second HELP for that family",
                    self.fams[i].typ.as_deref().unwrap_or("?"),
                    self.fams[i].name,
                    self.meta[i].first_line
                ));
            }
            Resolved::None => self.new_family(ln, &name)?,
        };
        self.fams[i].help = Some(text);
        self.meta[i].help_line = Some(ln);
        Ok(())
    }

    fn typ(&mut self, ln: usize, name: String, typ: String) -> Result<(), String> {
        let i = match self.resolve(&name) {
            Resolved::Exact(i) => {
                if Some(i) != self.current() {
                    return Err(self.not_contiguous("TYPE for", &name, i));
                }
                let (f, m) = (&self.fams[i], &self.meta[i]);
                if let Some(l) = m.type_line {
                    return Err(format!("second TYPE line for {name:?} (first at line {l})"));
                }
                if !f.samples.is_empty() {
                    return Err(format!("TYPE line for {name:?} after its samples"));
                }
                i
            }
            Resolved::Suffix(i) => {
                return Err(format!(
                    "TYPE for {name:?} resolves to the already started {} family {:?} \
                     (line {}); expfmt would treat it as a second TYPE for that family",
                    self.fams[i].typ.as_deref().unwrap_or("?"),
                    self.fams[i].name,
                    self.meta[i].first_line
                ));
            }
            Resolved::None => self.new_family(ln, &name)?,
        };
        self.fams[i].typ = Some(typ);
        self.meta[i].type_line = Some(ln);
        Ok(())
    }

    fn sample(&mut self, ln: usize, s: Sample) -> Result<(), String> {
        let i = match self.resolve(&s.name) {
            Resolved::Exact(i) | Resolved::Suffix(i) => {
                if Some(i) != self.current() {
                    return Err(self.not_contiguous("sample", &s.name, i));
                }
                i
            }
            Resolved::None => self.new_family(ln, &s.name)?,
        };
        let fam = &self.fams[i];
        match fam.typ.as_deref() {
            Some("histogram") => {
                if let Some(le) = s.label("le") {
                    parse_float(le).map_err(|e| {
                        format!(
                            "histogram sample {:?}: invalid 'le' value {le:?}: {e}",
                            s.name
                        )
                    })?;
                } else if s.name.strip_suffix("_bucket") == Some(fam.name.as_str()) {
                    return Err(format!("histogram bucket {:?} has no 'le' label", s.name));
                }
            }
            Some("summary") => {
                if let Some(q) = s.label("quantile") {
                    parse_float(q).map_err(|e| {
                        format!(
                            "summary sample {:?}: invalid 'quantile' value {q:?}: {e}",
                            s.name
                        )
                    })?;
                } else if s.name == fam.name {
                    return Err(format!(
                        "summary sample {:?} has no 'quantile' label",
                        s.name
                    ));
                }
            }
            _ => {}
        }
        let key = series_key(&s);
        if let Some(&first) = self.series.get(&key) {
            return Err(format!("duplicate series {key} (first at line {first})"));
        }
        self.series.insert(key, ln);
        self.fams[i].samples.push(s);
        Ok(())
    }

    fn finish(self, last_line: usize) -> Result<Exposition, String> {
        self.check_current_nonempty()
            .map_err(|m| format!("line {last_line}: {m}"))?;
        Ok(Exposition {
            families: self.fams,
        })
    }
}

/// Names of all series in `e`, as a set of [`series_key`]s.
pub fn series_set(e: &Exposition) -> HashSet<String> {
    e.samples().map(series_key).collect()
}

/// Render an exposition back to canonical text (HELP, TYPE, samples; values
/// and timestamps verbatim). Useful for building test inputs.
pub fn render(e: &Exposition) -> String {
    let mut out = String::new();
    for f in &e.families {
        if let Some(h) = &f.help {
            let _ = write!(out, "# HELP {} ", f.name);
            for c in h.chars() {
                match c {
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    c => out.push(c),
                }
            }
            out.push('\n');
        }
        if let Some(t) = &f.typ {
            let _ = writeln!(out, "# TYPE {} {t}", f.name);
        }
        for s in &f.samples {
            out.push_str(&s.name);
            if !s.labels.is_empty() {
                out.push('{');
                for (i, (n, v)) in s.labels.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(n);
                    out.push_str("=\"");
                    for c in v.chars() {
                        match c {
                            '\\' => out.push_str("\\\\"),
                            '"' => out.push_str("\\\""),
                            '\n' => out.push_str("\\n"),
                            c => out.push(c),
                        }
                    }
                    out.push('"');
                }
                out.push('}');
            }
            out.push(' ');
            out.push_str(&s.value);
            if let Some(ts) = s.timestamp {
                let _ = write!(out, " {ts}");
            }
            out.push('\n');
        }
    }
    out
}
