//! The labels the monitor injects into every sandbox series, pre-rendered once
//! per sandbox, and the other fixed byte strings the renderer inserts.
//!
//! Owns: escaping label values per the text format and the table of insertion
//! byte strings addressed by [`Ins`]. Knows nothing about bodies.

/// Names of the injected labels, in output order (upstream's order).
pub const INJECTED: [&str; 4] = ["sandbox_id", "cri_uid", "cri_name", "cri_namespace"];

/// Prefix upstream gives the shim's Go client metrics (`go_*`, `process_*`).
pub const RENAME_PREFIX: &str = "kata_shim_";
/// Source label names that collide with an injected one get this prefix.
pub const EXPORTED_PREFIX: &str = "exported_";

/// What the renderer inserts at an insertion point. Stored in 3 bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Ins {
    /// `,L` before the `}` of a non-empty label set.
    Comma = 0,
    /// `L` before the `}` of `{}` or after a trailing comma.
    Bare = 1,
    /// `{L}` after a metric name without labels.
    Braced = 2,
    /// `L,` before the `le`/`quantile` label (upstream prints those last).
    Before = 3,
    /// `kata_shim_` before a renamed metric name.
    Rename = 4,
    /// `exported_` before a colliding source label name.
    Exported = 5,
    /// `\n` after a last line that had none.
    Newline = 6,
}

impl Ins {
    pub const ALL: [Ins; 7] = [
        Ins::Comma,
        Ins::Bare,
        Ins::Braced,
        Ins::Before,
        Ins::Rename,
        Ins::Exported,
        Ins::Newline,
    ];

    #[inline]
    pub fn from_bits(b: u32) -> Ins {
        match b & 7 {
            0 => Ins::Comma,
            1 => Ins::Bare,
            2 => Ins::Braced,
            3 => Ins::Before,
            4 => Ins::Rename,
            5 => Ins::Exported,
            _ => Ins::Newline,
        }
    }
}

/// One sandbox's injected label set, rendered once.
#[derive(Clone, Debug)]
pub struct Labels {
    /// `{L}` then `,L,` then the fixed strings; `spans` addresses the forms.
    bytes: Vec<u8>,
    spans: [(u32, u32); 7],
    /// `L` alone (no braces/commas), for the monitor's own per-sandbox series.
    plain: (u32, u32),
}

impl Labels {
    /// Render `sandbox_id`, `cri_uid`, `cri_name`, `cri_namespace` with these values.
    pub fn new(values: [&str; 4]) -> Labels {
        let mut l = Vec::with_capacity(64 + values.iter().map(|v| v.len()).sum::<usize>());
        for (i, (name, value)) in INJECTED.iter().zip(values).enumerate() {
            if i > 0 {
                l.push(b',');
            }
            l.extend_from_slice(name.as_bytes());
            l.extend_from_slice(b"=\"");
            escape_label_value(value.as_bytes(), &mut l);
            l.push(b'"');
        }
        let n = l.len() as u32;
        let mut bytes = Vec::with_capacity(2 * l.len() + 32);
        bytes.push(b'{');
        bytes.extend_from_slice(&l);
        bytes.push(b'}');
        let comma_at = bytes.len() as u32;
        bytes.push(b',');
        bytes.extend_from_slice(&l);
        bytes.push(b',');
        let rename_at = bytes.len() as u32;
        bytes.extend_from_slice(RENAME_PREFIX.as_bytes());
        let exported_at = bytes.len() as u32;
        bytes.extend_from_slice(EXPORTED_PREFIX.as_bytes());
        let nl_at = bytes.len() as u32;
        bytes.push(b'\n');
        let spans = [
            (comma_at, n + 1),                           // ,L
            (comma_at + 1, n),                           // L
            (0, n + 2),                                  // {L}
            (comma_at + 1, n + 1),                       // L,
            (rename_at, RENAME_PREFIX.len() as u32),     // kata_shim_
            (exported_at, EXPORTED_PREFIX.len() as u32), // exported_
            (nl_at, 1),                                  // \n
        ];
        Labels {
            bytes,
            spans,
            plain: (1, n),
        }
    }

    /// The bytes inserted for `kind`.
    #[inline]
    pub fn get(&self, kind: Ins) -> &[u8] {
        let (s, n) = self.spans[kind as usize];
        &self.bytes[s as usize..(s + n) as usize]
    }

    #[inline]
    pub fn len_of(&self, kind: Ins) -> u32 {
        self.spans[kind as usize].1
    }

    /// `sandbox_id="..",cri_uid="..",cri_name="..",cri_namespace=".."`.
    pub fn plain(&self) -> &[u8] {
        let (s, n) = self.plain;
        &self.bytes[s as usize..(s + n) as usize]
    }
}

/// Escape a label value per the text format: `\` → `\\`, `"` → `\"`, LF → `\n`.
pub fn escape_label_value(v: &[u8], out: &mut Vec<u8>) {
    for &b in v {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'"' => out.extend_from_slice(b"\\\""),
            b'\n' => out.extend_from_slice(b"\\n"),
            _ => out.push(b),
        }
    }
}

/// Escape HELP text: `\` → `\\`, LF → `\n`.
pub fn escape_help(v: &[u8], out: &mut Vec<u8>) {
    for &b in v {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            _ => out.push(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        let l = Labels::new(["s1", "u\"1", "n\\1", "ns\n1"]);
        let core = r#"sandbox_id="s1",cri_uid="u\"1",cri_name="n\\1",cri_namespace="ns\n1""#;
        assert_eq!(l.get(Ins::Bare), core.as_bytes());
        assert_eq!(l.get(Ins::Comma), format!(",{core}").as_bytes());
        assert_eq!(l.get(Ins::Before), format!("{core},").as_bytes());
        assert_eq!(l.get(Ins::Braced), format!("{{{core}}}").as_bytes());
        assert_eq!(l.get(Ins::Rename), b"kata_shim_");
        assert_eq!(l.get(Ins::Exported), b"exported_");
        assert_eq!(l.get(Ins::Newline), b"\n");
        assert_eq!(l.plain(), core.as_bytes());
        for k in Ins::ALL {
            assert_eq!(l.len_of(k) as usize, l.get(k).len());
            assert_eq!(Ins::from_bits(k as u32), k);
        }
    }

    #[test]
    fn empty_values() {
        let l = Labels::new(["id", "", "", ""]);
        assert_eq!(
            l.get(Ins::Bare),
            br#"sandbox_id="id",cri_uid="",cri_name="",cri_namespace="""#
        );
    }
}
