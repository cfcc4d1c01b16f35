//! Pre-split `/metrics` bodies whose counters move between scrapes.
//!
//! A [`Template`] is parsed once from a Prometheus text body: the bytes are
//! kept as they are, and every sample value that must grow between scrapes
//! becomes a numeric slot with its base value parsed once.  Rendering scrape
//! `n` (0 for the first one) copies the constant runs and prints `base + n`
//! into each slot, so the first scrape returns the fixture byte for byte.
//!
//! Moving values: every sample of a `counter` family, and the `_count`,
//! `_sum` and `_bucket` samples of `histogram` / `summary` families.  Gauges,
//! untyped samples and summary quantiles stay constant, as does any value
//! that is not a finite number (`+Inf`, `NaN`) or any line we cannot parse
//! (a custom `--body-file` may hold anything).

use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;

/// Embedded fixtures (paths relative to this file).
const DEFAULT: &[u8] = include_bytes!("../../../tests/fixtures/default.prom");
const SMALL: &[u8] = include_bytes!("../../../tests/fixtures/small.prom");
const LARGE: &[u8] = include_bytes!("../../../tests/fixtures/large.prom");
const RS: &[u8] = include_bytes!("../../../tests/fixtures/rs-dragonball.prom");

/// Which body a sandbox serves.  `Rs` sandboxes live under the runtime-rs
/// root, and so do those of a `--body-file rs:PATH`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyKind {
    Default,
    Small,
    Large,
    Rs,
    /// The `--body-file` body of this index (0 for the first one given).
    File(usize),
}

impl BodyKind {
    /// `default`, `small`, `large`, `rs`, `file` (the first `--body-file`)
    /// or `file:N`.
    pub fn parse(s: &str) -> Option<BodyKind> {
        Some(match s {
            "default" => BodyKind::Default,
            "small" => BodyKind::Small,
            "large" => BodyKind::Large,
            "rs" | "rs-dragonball" => BodyKind::Rs,
            "file" => BodyKind::File(0),
            _ => BodyKind::File(s.strip_prefix("file:")?.parse().ok()?),
        })
    }
}

/// A `--body-file` argument: `PATH`, or `rs:PATH` for a runtime-rs sandbox.
pub struct BodyFile {
    pub bytes: Vec<u8>,
    pub rs: bool,
}

impl BodyFile {
    /// Reads the file an argument names.
    pub fn read(arg: &std::path::Path) -> Result<BodyFile, String> {
        let s = arg.to_string_lossy();
        let (rs, path) = match s.strip_prefix("rs:") {
            Some(p) => (true, std::path::PathBuf::from(p)),
            None => (false, arg.to_path_buf()),
        };
        let bytes =
            std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Ok(BodyFile { bytes, rs })
    }
}

/// The parsed templates of every body kind, shared by all sandboxes.
pub struct Bodies {
    default: Arc<Template>,
    small: Arc<Template>,
    large: Arc<Template>,
    rs: Arc<Template>,
    /// `--body-file` templates and whether they are runtime-rs bodies.
    files: Vec<(Arc<Template>, bool)>,
}

impl Bodies {
    pub fn new(files: Vec<BodyFile>) -> Bodies {
        Bodies {
            default: Arc::new(Template::parse(DEFAULT.to_vec())),
            small: Arc::new(Template::parse(SMALL.to_vec())),
            large: Arc::new(Template::parse(LARGE.to_vec())),
            rs: Arc::new(Template::parse(RS.to_vec())),
            files: files
                .into_iter()
                .map(|f| (Arc::new(Template::parse(f.bytes)), f.rs))
                .collect(),
        }
    }

    /// The template of `kind`, `None` for a `File` index not given.
    pub fn get(&self, kind: BodyKind) -> Option<Arc<Template>> {
        Some(Arc::clone(match kind {
            BodyKind::Default => &self.default,
            BodyKind::Small => &self.small,
            BodyKind::Large => &self.large,
            BodyKind::Rs => &self.rs,
            BodyKind::File(i) => &self.files.get(i)?.0,
        }))
    }

    /// Whether sandboxes serving `kind` live under the runtime-rs root.
    pub fn is_rs(&self, kind: BodyKind) -> bool {
        match kind {
            BodyKind::Rs => true,
            BodyKind::File(i) => self.files.get(i).is_some_and(|f| f.1),
            _ => false,
        }
    }

    /// Number of `--body-file` bodies.
    pub fn file_count(&self) -> usize {
        self.files.len()
    }
}

/// A numeric slot's parsed base value.
#[derive(Clone, Copy, Debug)]
enum Base {
    /// Written without a decimal point or exponent: stays an integer.
    Int(u64),
    Float(f64),
}

#[derive(Clone, Copy, Debug)]
struct Slot {
    /// Byte range of the original value text in `Template::text`.
    start: u32,
    end: u32,
    base: Base,
}

/// A body split into constant byte runs and moving numeric slots.
pub struct Template {
    text: Vec<u8>,
    /// Sorted, non-overlapping.  Everything between slots is constant.
    slots: Vec<Slot>,
}

impl Template {
    pub fn parse(text: Vec<u8>) -> Template {
        let types = family_types(&text);
        let mut slots = Vec::new();
        let mut pos = 0;
        while pos < text.len() {
            let end = text[pos..]
                .iter()
                .position(|&b| b == b'\n')
                .map_or(text.len(), |i| pos + i);
            if let Some(slot) = moving_slot(&text, pos, end, &types) {
                slots.push(slot);
            }
            pos = end + 1;
        }
        Template { text, slots }
    }

    /// Number of moving values.
    #[cfg(test)]
    pub fn slot_count(&self) -> usize {
        self.slots.len()
    }

    /// Appends the body of scrape `n` (0-based) to `out`.
    pub fn render(&self, n: u64, out: &mut Vec<u8>) {
        if n == 0 {
            out.extend_from_slice(&self.text);
            return;
        }
        out.reserve(self.text.len() + self.slots.len() * 4);
        let mut pos = 0;
        for slot in &self.slots {
            out.extend_from_slice(&self.text[pos..slot.start as usize]);
            match slot.base {
                Base::Int(v) => push_u64(out, v.saturating_add(n)),
                // Writing to a Vec cannot fail.
                Base::Float(v) => {
                    let _ = write!(out, "{}", v + n as f64);
                }
            }
            pos = slot.end as usize;
        }
        out.extend_from_slice(&self.text[pos..]);
    }
}

/// Appends the decimal digits of `v` (no formatting machinery).
fn push_u64(out: &mut Vec<u8>, mut v: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Type {
    Counter,
    Histogram,
    Summary,
    Other,
}

/// Family name -> declared type, from the `# TYPE name type` lines.
fn family_types(text: &[u8]) -> HashMap<&[u8], Type> {
    let mut types = HashMap::new();
    for line in text.split(|&b| b == b'\n') {
        let Some(rest) = line.strip_prefix(b"# TYPE ") else {
            continue;
        };
        let mut words = rest
            .split(|&b| b == b' ' || b == b'\t' || b == b'\r')
            .filter(|w| !w.is_empty());
        let (Some(name), Some(ty)) = (words.next(), words.next()) else {
            continue;
        };
        let ty = match ty {
            b"counter" => Type::Counter,
            b"histogram" => Type::Histogram,
            b"summary" => Type::Summary,
            _ => Type::Other,
        };
        types.entry(name).or_insert(ty);
    }
    types
}

/// Whether samples named `name` move, given the declared family types.
fn is_moving(name: &[u8], types: &HashMap<&[u8], Type>) -> bool {
    if let Some(&ty) = types.get(name) {
        // A sample named exactly like its family: counters move, summary
        // quantiles and everything else stay.
        return ty == Type::Counter;
    }
    let family = |suffix: &[u8]| {
        name.strip_suffix(suffix)
            .and_then(|f| types.get(f).copied())
    };
    family(b"_total") == Some(Type::Counter)
        || matches!(family(b"_bucket"), Some(Type::Histogram))
        || matches!(
            family(b"_sum").or_else(|| family(b"_count")),
            Some(Type::Histogram | Type::Summary)
        )
}

/// The value slot of the sample line `text[start..end]` if it must move.
fn moving_slot(
    text: &[u8],
    start: usize,
    end: usize,
    types: &HashMap<&[u8], Type>,
) -> Option<Slot> {
    let line = &text[start..end];
    let name_len = line
        .iter()
        .position(|&b| !(b.is_ascii_alphanumeric() || b == b'_' || b == b':'))
        .unwrap_or(line.len());
    if name_len == 0 || line[0].is_ascii_digit() || !is_moving(&line[..name_len], types) {
        return None;
    }
    let mut i = name_len;
    if line.get(i) == Some(&b'{') {
        i = labels_end(line, i + 1)?;
    }
    let value_start = i + line[i..].iter().position(|&b| b != b' ' && b != b'\t')?;
    if value_start == i {
        return None; // no separator between name/labels and value
    }
    let value_len = line[value_start..]
        .iter()
        .position(|&b| b == b' ' || b == b'\t' || b == b'\r')
        .unwrap_or(line.len() - value_start);
    let value = &line[value_start..value_start + value_len];
    let base = parse_value(value)?;
    let abs = start + value_start;
    Some(Slot {
        start: u32::try_from(abs).ok()?,
        end: u32::try_from(abs + value_len).ok()?,
        base,
    })
}

/// Index just past the `}` closing a label set that starts at `i`.
fn labels_end(line: &[u8], mut i: usize) -> Option<usize> {
    let mut quoted = false;
    while i < line.len() {
        match (quoted, line[i]) {
            (true, b'\\') => i += 1,
            (_, b'"') => quoted = !quoted,
            (false, b'}') => return Some(i + 1),
            _ => {}
        }
        i += 1;
    }
    None
}

fn parse_value(value: &[u8]) -> Option<Base> {
    let s = std::str::from_utf8(value).ok()?;
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().ok().map(Base::Int);
    }
    let v: f64 = s.parse().ok()?;
    v.is_finite().then_some(Base::Float(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = b"# TYPE a_total counter\na_total{x=\"}\\\" 1\"} 4\n\
# TYPE g gauge\ng 7\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 0.5\nh_count 2\n\
# TYPE s summary\ns{quantile=\"0.5\"} 3\ns_sum 1e3\ns_count 9 1700000000\n\
# TYPE c counter\nc NaN\nc_created 5\n";

    #[test]
    fn counters_move_gauges_stay() {
        let t = Template::parse(BODY.to_vec());
        assert_eq!(t.slot_count(), 6);
        let mut out = Vec::new();
        t.render(0, &mut out);
        assert_eq!(out, BODY);
        out.clear();
        t.render(2, &mut out);
        let text = String::from_utf8(out).unwrap();
        for want in [
            "a_total{x=\"}\\\" 1\"} 6\n",
            "g 7\n",
            "h_bucket{le=\"+Inf\"} 4\n",
            "h_sum 2.5\n",
            "h_count 4\n",
            "s{quantile=\"0.5\"} 3\n",
            "s_sum 1002\n",
            "s_count 11 1700000000\n",
            "c NaN\n",
            "c_created 5\n",
        ] {
            assert!(text.contains(want), "missing {want:?} in {text}");
        }
    }

    #[test]
    fn fixtures_have_moving_values() {
        let b = Bodies::new(Vec::new());
        for kind in [
            BodyKind::Default,
            BodyKind::Small,
            BodyKind::Large,
            BodyKind::Rs,
        ] {
            assert!(b.get(kind).unwrap().slot_count() > 0, "{kind:?}");
        }
        assert!(b.get(BodyKind::File(0)).is_none());
        assert_eq!(BodyKind::parse("file:3"), Some(BodyKind::File(3)));
        assert_eq!(BodyKind::parse("file"), Some(BodyKind::File(0)));
        assert_eq!(BodyKind::parse("file:x"), None);
    }
}
