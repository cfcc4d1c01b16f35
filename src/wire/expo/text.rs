//! Writer for metrics the monitor renders itself (its own counters, per-sandbox
//! health), with the same escaping and number rules as the engine's output.
//!
//! Owns: formatting HELP/TYPE/sample lines into a byte buffer, and leaving out
//! families that got no sample. The caller is responsible for emitting each
//! family once with its samples contiguous.

use super::labels::{escape_help, escape_label_value};
use super::lex::Kind;
use std::io::Write as _;

/// Appends exposition text to a buffer.
pub struct TextWriter<'a> {
    out: &'a mut Vec<u8>,
    /// Where the current family's header starts, while it has no sample.
    empty_family: Option<usize>,
}

/// A sample value.
#[derive(Clone, Copy, Debug)]
pub enum Value {
    Int(u64),
    Float(f64),
}

impl From<u64> for Value {
    fn from(v: u64) -> Value {
        Value::Int(v)
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Value {
        Value::Float(v)
    }
}

impl<'a> TextWriter<'a> {
    pub fn new(out: &'a mut Vec<u8>) -> TextWriter<'a> {
        TextWriter {
            out,
            empty_family: None,
        }
    }

    /// `# HELP` and `# TYPE` lines. `name` must be a valid metric name. The
    /// lines are taken back if no sample follows before the next family or
    /// [`finish`](Self::finish) (an empty family is not valid exposition for
    /// every parser, and says nothing).
    pub fn family(&mut self, name: &str, help: &str, kind: Kind) -> &mut Self {
        debug_assert!(valid_name(name), "{name}");
        self.drop_empty_family();
        self.empty_family = Some(self.out.len());
        self.out.extend_from_slice(b"# HELP ");
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(b' ');
        escape_help(help.as_bytes(), self.out);
        self.out.extend_from_slice(b"\n# TYPE ");
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(b' ');
        self.out.extend_from_slice(kind.as_str().as_bytes());
        self.out.push(b'\n');
        self
    }

    /// A sample with `labels` (escaped here) and optionally pre-rendered label
    /// bytes `raw` (already valid, e.g. `Labels::plain()`), appended after them.
    pub fn sample(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        raw: &[u8],
        value: impl Into<Value>,
    ) -> &mut Self {
        self.empty_family = None;
        self.out.extend_from_slice(name.as_bytes());
        if !labels.is_empty() || !raw.is_empty() {
            self.out.push(b'{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(b',');
                }
                self.out.extend_from_slice(k.as_bytes());
                self.out.extend_from_slice(b"=\"");
                escape_label_value(v.as_bytes(), self.out);
                self.out.push(b'"');
            }
            if !raw.is_empty() {
                if !labels.is_empty() {
                    self.out.push(b',');
                }
                self.out.extend_from_slice(raw);
            }
            self.out.push(b'}');
        }
        self.out.push(b' ');
        write_value(self.out, value.into());
        self.out.push(b'\n');
        self
    }

    /// Take back the last family if it got no sample.
    pub fn finish(mut self) {
        self.drop_empty_family();
    }

    fn drop_empty_family(&mut self) {
        if let Some(start) = self.empty_family.take() {
            self.out.truncate(start);
        }
    }
}

/// Write a float so both parsers accept it (Rust's `inf`/`NaN` spelled as in
/// Prometheus).
pub fn write_value(out: &mut Vec<u8>, v: Value) {
    match v {
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Float(f) if f.is_nan() => out.extend_from_slice(b"NaN"),
        Value::Float(f) if f == f64::INFINITY => out.extend_from_slice(b"+Inf"),
        Value::Float(f) if f == f64::NEG_INFINITY => out.extend_from_slice(b"-Inf"),
        Value::Float(f) => {
            let _ = write!(out, "{f}");
        }
    }
}

fn valid_name(n: &str) -> bool {
    let b = n.as_bytes();
    !b.is_empty()
        && (b[0].is_ascii_alphabetic() || b[0] == b'_' || b[0] == b':')
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || c == b'_' || c == b':')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_valid_lines() {
        let mut out = Vec::new();
        TextWriter::new(&mut out)
            .family("m_total", "Help with \\ and\nnewline.", Kind::Counter)
            .sample("m_total", &[], b"", 3u64)
            .sample("m_total", &[("a", "q\"\\\n")], b"", 0.5)
            .sample("m_total", &[("a", "x")], b"sandbox_id=\"s\"", f64::INFINITY)
            .sample("m_total", &[], b"sandbox_id=\"t\"", f64::NAN);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "# HELP m_total Help with \\\\ and\\nnewline.\n# TYPE m_total counter\n\
             m_total 3\nm_total{a=\"q\\\"\\\\\\n\"} 0.5\nm_total{a=\"x\",sandbox_id=\"s\"} +Inf\n\
             m_total{sandbox_id=\"t\"} NaN\n"
        );
    }

    #[test]
    fn families_without_samples_are_left_out() {
        let mut out = Vec::new();
        let mut w = TextWriter::new(&mut out);
        w.family("a", "A.", Kind::Gauge).sample("a", &[], b"", 1u64);
        w.family("b", "B.", Kind::Gauge);
        w.family("c", "C.", Kind::Gauge).sample("c", &[], b"", 2u64);
        w.family("d", "D.", Kind::Gauge);
        w.finish();
        assert_eq!(
            out,
            b"# HELP a A.\n# TYPE a gauge\na 1\n# HELP c C.\n# TYPE c gauge\nc 2\n"
        );
    }

    #[test]
    fn floats_need_no_exponent_support() {
        let mut out = Vec::new();
        write_value(&mut out, Value::Float(1e300));
        write_value(&mut out, Value::Float(-0.0));
        let s = String::from_utf8(out).unwrap();
        assert!(s.starts_with("1000"));
        assert!(s.ends_with("-0"));
    }
}
