//! Index of one shim body: its families, the runs of kept sample lines, and the
//! insertion points that turn a source line into an output line.
//!
//! Owns: grouping lines into families the way expfmt does, per-sandbox checks
//! (duplicate HELP/TYPE, TYPE after samples, `le`/`quantile` values, duplicate
//! series, limits) and the drop counters. Stores byte offsets into the body,
//! never copies of it. Does not know about other sandboxes (see `merge`).
//!
//! Output of a run is the body bytes `[start, end)` with the bytes of each
//! insertion (see [`Ins`]) placed before the body byte at its offset.

use super::hash::{HashTable, hash_bytes};
use super::labels::{Ins, Labels};
use super::lex::{self, Kind, Line, Reason, Sample};

/// Largest body offset an insertion can address (27 bits); bytes beyond are
/// dropped (the daemon caps bodies far below this).
pub const MAX_BODY: usize = (1 << 27) - 1;

/// Per-sandbox limits.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Most kept series (and families) per body; the rest is dropped.
    pub max_series: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_series: 100_000,
        }
    }
}

/// Dropped-line counters by [`Reason`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Drops([u32; Reason::COUNT]);

impl Drops {
    #[inline]
    pub fn add(&mut self, r: Reason, n: u32) {
        self.0[r as usize] = self.0[r as usize].saturating_add(n);
    }
    pub fn get(&self, r: Reason) -> u32 {
        self.0[r as usize]
    }
    pub fn total(&self) -> u64 {
        self.0.iter().map(|&n| u64::from(n)).sum()
    }
    /// Non-zero counters.
    pub fn iter(&self) -> impl Iterator<Item = (Reason, u32)> + '_ {
        Reason::ALL
            .iter()
            .map(|&r| (r, self.get(r)))
            .filter(|&(_, n)| n > 0)
    }
    pub fn merge(&mut self, other: &Drops) {
        for r in Reason::ALL {
            self.add(r, other.get(r));
        }
    }
}

/// A family as found in one body.
#[derive(Clone, Debug)]
pub struct Family {
    /// Name span in the body.
    pub name: (u32, u32),
    /// `go_*`/`process_*`: printed with the `kata_shim_` prefix.
    pub renamed: bool,
    pub kind: Kind,
    /// A TYPE line was seen (otherwise `kind` is the implicit untyped).
    pub typed: bool,
    /// HELP text span in the body (escaped as in the source).
    pub help: Option<(u32, u32)>,
    reserved: bool,
    /// Kept sample lines.
    pub samples: u32,
    /// Output bytes of the kept sample lines, insertions included.
    pub bytes: u64,
    /// Range of this family's runs in `BodyIndex::order`.
    pub runs: (u32, u32),
}

/// Consecutive kept sample lines of one family: body `[start, end)`, with
/// insertions `ins[ins.0..ins.1]`.
#[derive(Clone, Copy, Debug)]
pub struct Run {
    pub fam: u32,
    pub start: u32,
    pub end: u32,
    pub ins: (u32, u32),
}

/// Packed insertion: body offset in the high 29 bits... (27 used), kind in 3.
#[inline]
pub fn ins_unpack(p: u32) -> (usize, Ins) {
    ((p >> 3) as usize, Ins::from_bits(p))
}

#[inline]
fn ins_pack(at: usize, k: Ins) -> u32 {
    ((at as u32) << 3) | k as u32
}

/// The index of one body. Reusable: `build` clears and keeps allocations.
#[derive(Default)]
pub struct BodyIndex {
    pub fams: Vec<Family>,
    pub runs: Vec<Run>,
    pub ins: Vec<u32>,
    /// Run indices grouped by family (families' `runs` index into this).
    pub order: Vec<u32>,
    pub drops: Drops,
    /// Kept sample lines.
    pub samples: u32,
    fam_table: HashTable,
    series: HashTable,
    scratch: Vec<Pair>,
    scratch2: Vec<Pair>,
}

/// A label's (name, raw value) spans.
type Pair = ((u32, u32), (u32, u32));

/// Which family the previous sample line went to.
#[derive(Clone, Copy)]
struct Cache {
    name: (u32, u32),
    hash: u64,
    fam: u32,
}

impl BodyIndex {
    pub fn clear(&mut self) {
        self.fams.clear();
        self.runs.clear();
        self.ins.clear();
        self.order.clear();
        self.drops = Drops::default();
        self.samples = 0;
        self.fam_table.clear();
        self.series.clear();
    }

    /// Index `body`. `labels` gives insertion sizes, `seed` keys the hashes.
    pub fn build(&mut self, body: &[u8], labels: &Labels, seed: u64, limits: Limits) {
        self.clear();
        let body = if body.len() > MAX_BODY {
            self.drops.add(Reason::LineTooLong, 1);
            &body[..MAX_BODY]
        } else {
            body
        };
        // Typical bodies have ~70 bytes per sample line.
        self.series.reserve(body.len() / 64);
        self.ins.reserve(body.len() / 64);
        let utf8_ok = std::str::from_utf8(body).is_ok();
        let mut cache: Option<Cache> = None;
        let mut pos = 0usize;
        while pos < body.len() {
            let (end, next) = match find_nl(&body[pos..]) {
                Some(n) => (pos + n, pos + n + 1),
                None => (body.len(), body.len()),
            };
            let line = &body[pos..end];
            pos = next;
            if !utf8_ok && std::str::from_utf8(line).is_err() {
                self.drops.add(Reason::InvalidUtf8, 1);
                continue;
            }
            let start = end - line.len();
            match lex::classify(line, seed) {
                Line::Blank | Line::Comment => {}
                Line::Invalid(r) => self.drops.add(r, 1),
                Line::Help { name, text } => {
                    let Some(f) = self.meta_family(body, start, name, seed, limits, &mut cache)
                    else {
                        continue;
                    };
                    let fam = &mut self.fams[f];
                    if fam.help.is_some() {
                        self.drops.add(Reason::DuplicateHelpOrType, 1);
                    } else {
                        fam.help = Some((start as u32 + text.0, start as u32 + text.1));
                    }
                }
                Line::Type { name, kind } => {
                    let Some(f) = self.meta_family(body, start, name, seed, limits, &mut cache)
                    else {
                        continue;
                    };
                    let fam = &mut self.fams[f];
                    if fam.typed {
                        self.drops.add(Reason::DuplicateHelpOrType, 1);
                    } else if fam.samples > 0 {
                        self.drops.add(Reason::TypeAfterSamples, 1);
                    } else {
                        fam.kind = kind;
                        fam.typed = true;
                    }
                }
                Line::Sample(s) => {
                    self.sample(body, start, next, &s, labels, seed, limits, &mut cache);
                }
            }
        }
        self.group_runs();
    }

    /// Family named exactly `name` (relative to `start`), created if new.
    fn meta_family(
        &mut self,
        body: &[u8],
        start: usize,
        name: (u32, u32),
        seed: u64,
        limits: Limits,
        cache: &mut Option<Cache>,
    ) -> Option<usize> {
        let span = (start as u32 + name.0, start as u32 + name.1);
        let bytes = &body[span.0 as usize..span.1 as usize];
        let h = hash_bytes(seed, bytes);
        if let Some(f) = self.find(body, bytes, h) {
            return Some(f as usize);
        }
        if self.fams.len() >= limits.max_series as usize {
            self.drops.add(Reason::TooManySeries, 1);
            return None;
        }
        // A new exact name can change where later samples of that name go.
        *cache = None;
        Some(self.create(body, span, h) as usize)
    }

    fn find(&self, body: &[u8], name: &[u8], h: u64) -> Option<u32> {
        self.fam_table.probe(h).find(|&f| {
            let (s, e) = self.fams[f as usize].name;
            &body[s as usize..e as usize] == name
        })
    }

    fn create(&mut self, body: &[u8], span: (u32, u32), h: u64) -> u32 {
        let name = &body[span.0 as usize..span.1 as usize];
        let id = self.fams.len() as u32;
        self.fams.push(Family {
            name: span,
            renamed: name.starts_with(b"go_") || name.starts_with(b"process_"),
            kind: Kind::Untyped,
            typed: false,
            help: None,
            reserved: name.starts_with(b"kata_monitor_"),
            samples: 0,
            bytes: 0,
            runs: (0, 0),
        });
        self.fam_table.insert(h, id);
        id
    }

    /// expfmt's rule: exact name first, then `_sum`/`_count` of a summary,
    /// then `_bucket`/`_sum`/`_count` of a histogram, else a new untyped family.
    fn sample_family(&mut self, body: &[u8], span: (u32, u32), h: u64, seed: u64) -> Option<u32> {
        let name = &body[span.0 as usize..span.1 as usize];
        if let Some(f) = self.find(body, name, h) {
            return Some(f);
        }
        for (suffix, hist_only) in [
            (&b"_sum"[..], false),
            (b"_count", false),
            (b"_bucket", true),
        ] {
            if name.len() > suffix.len() && name.ends_with(suffix) {
                let base = &name[..name.len() - suffix.len()];
                if let Some(f) = self.find(body, base, hash_bytes(seed, base)) {
                    let k = self.fams[f as usize].kind;
                    if k == Kind::Histogram || (k == Kind::Summary && !hist_only) {
                        return Some(f);
                    }
                }
            }
        }
        None
    }

    #[allow(clippy::too_many_arguments)]
    fn sample(
        &mut self,
        body: &[u8],
        start: usize,
        next: usize,
        s: &Sample,
        labels: &Labels,
        seed: u64,
        limits: Limits,
        cache: &mut Option<Cache>,
    ) {
        let span = (start as u32 + s.name.0, start as u32 + s.name.1);
        let name = &body[span.0 as usize..span.1 as usize];
        let (fam, name_hash) = match *cache {
            Some(c) if &body[c.name.0 as usize..c.name.1 as usize] == name => (c.fam, c.hash),
            _ => {
                let h = hash_bytes(seed, name);
                let fam = match self.sample_family(body, span, h, seed) {
                    Some(f) => f,
                    None if self.fams.len() >= limits.max_series as usize => {
                        self.drops.add(Reason::TooManySeries, 1);
                        return;
                    }
                    None => self.create(body, span, h),
                };
                *cache = Some(Cache {
                    name: span,
                    hash: h,
                    fam,
                });
                (fam, h)
            }
        };
        let f = &self.fams[fam as usize];
        if f.reserved {
            self.drops.add(Reason::ReservedName, 1);
            return;
        }
        let kind = f.kind;
        let before = match kind {
            Kind::Histogram => s.le,
            Kind::Summary => s.quantile,
            _ => None,
        };
        if let Some((_, false)) = before {
            self.drops.add(Reason::BadLeOrQuantile, 1);
            return;
        }
        if self.samples >= limits.max_series {
            self.drops.add(Reason::TooManySeries, 1);
            return;
        }
        // Duplicate series: same name and label set, confirmed byte-wise.
        let series_hash = name_hash.rotate_left(23) ^ s.labels_hash;
        let name_start = span.0;
        let line = &body[start..next];
        let dup = self.series.probe(series_hash).any(|other| {
            same_series(
                body,
                other as usize,
                line,
                s.name,
                &mut self.scratch,
                &mut self.scratch2,
            )
        });
        if dup {
            self.drops.add(Reason::DuplicateSeries, 1);
            return;
        }
        self.series.insert(series_hash, name_start);

        // Insertion points, in body order.
        let first_ins = self.ins.len() as u32;
        let mut bytes = (next - name_start as usize) as u64;
        let mut push = |ins: &mut Vec<u32>, at: usize, k: Ins| {
            ins.push(ins_pack(at, k));
            bytes += u64::from(labels.len_of(k));
        };
        if self.fams[fam as usize].renamed {
            push(&mut self.ins, name_start as usize, Ins::Rename);
        }
        let inject = match (before, s.close) {
            (Some((p, _)), _) => (start + p as usize, Ins::Before),
            (None, Some(c)) if s.bare_close => (start + c as usize, Ins::Bare),
            (None, Some(c)) => (start + c as usize, Ins::Comma),
            (None, None) => (start + s.name.1 as usize, Ins::Braced),
        };
        let mut injected = false;
        for &e in &s.exported[..s.n_exported as usize] {
            let at = start + e as usize;
            if !injected && inject.0 < at {
                push(&mut self.ins, inject.0, inject.1);
                injected = true;
            }
            push(&mut self.ins, at, Ins::Exported);
        }
        if !injected {
            push(&mut self.ins, inject.0, inject.1);
        }
        let line_end = start + line.len() - usize::from(line.last() == Some(&b'\n'));
        if line_end == next {
            // Last line of a body without a final newline.
            push(&mut self.ins, line_end, Ins::Newline);
        }
        let last_ins = self.ins.len() as u32;

        let f = &mut self.fams[fam as usize];
        f.samples += 1;
        f.bytes += bytes;
        self.samples += 1;
        match self.runs.last_mut() {
            Some(r) if r.fam == fam && r.end == name_start => {
                r.end = next as u32;
                r.ins.1 = last_ins;
            }
            _ => self.runs.push(Run {
                fam,
                start: name_start,
                end: next as u32,
                ins: (first_ins, last_ins),
            }),
        }
    }

    /// Counting sort of runs by family (stable: body order within a family).
    fn group_runs(&mut self) {
        let nf = self.fams.len();
        let mut counts = vec![0u32; nf + 1];
        for r in &self.runs {
            counts[r.fam as usize + 1] += 1;
        }
        for i in 0..nf {
            counts[i + 1] += counts[i];
            self.fams[i].runs = (counts[i], counts[i + 1]);
        }
        self.order.clear();
        self.order.resize(self.runs.len(), 0);
        for (i, r) in self.runs.iter().enumerate() {
            let slot = &mut counts[r.fam as usize];
            self.order[*slot as usize] = i as u32;
            *slot += 1;
        }
    }
}

/// Is the kept line starting at `other` the same series as `line`?
fn same_series(
    body: &[u8],
    other: usize,
    line: &[u8],
    name: (u32, u32),
    a: &mut Vec<Pair>,
    b: &mut Vec<Pair>,
) -> bool {
    let rest = &body[other..];
    let o = &rest[..find_nl(rest).unwrap_or(rest.len())];
    let n = (name.1 - name.0) as usize;
    let my_name = &line[name.0 as usize..name.1 as usize];
    if o.len() < n || &o[..n] != my_name || o.get(n).is_some_and(|&c| lex_is_name(c)) {
        return false;
    }
    lex_pairs(o, n, a);
    lex_pairs(line, name.1 as usize, b);
    if a.len() != b.len() {
        return false;
    }
    let key = |l: &[u8], (n, v): Pair| -> (Vec<u8>, Vec<u8>) {
        (
            l[n.0 as usize..n.1 as usize].to_vec(),
            l[v.0 as usize..v.1 as usize].to_vec(),
        )
    };
    let mut ka: Vec<_> = a.iter().map(|&p| key(o, p)).collect();
    let mut kb: Vec<_> = b.iter().map(|&p| key(line, p)).collect();
    ka.sort();
    kb.sort();
    ka == kb
}

fn lex_is_name(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b':'
}

/// Label (name, raw value) spans of an already validated sample line whose
/// metric name ends at `i`.
fn lex_pairs(l: &[u8], mut i: usize, out: &mut Vec<Pair>) {
    out.clear();
    let blank = |c: u8| c == b' ' || c == b'\t';
    while i < l.len() && blank(l[i]) {
        i += 1;
    }
    if l.get(i) != Some(&b'{') {
        return;
    }
    i += 1;
    loop {
        while i < l.len() && (blank(l[i]) || l[i] == b',') {
            i += 1;
        }
        if i >= l.len() || l[i] == b'}' {
            return;
        }
        let ns = i;
        while i < l.len() && (l[i].is_ascii_alphanumeric() || l[i] == b'_') {
            i += 1;
        }
        let ne = i;
        while i < l.len() && l[i] != b'"' {
            i += 1;
        }
        i += 1;
        let vs = i;
        while i < l.len() && l[i] != b'"' {
            i += if l[i] == b'\\' { 2 } else { 1 };
        }
        let ve = i.min(l.len());
        out.push(((ns as u32, ne as u32), (vs as u32, ve as u32)));
        i += 1;
    }
}

/// Position of the first `\n` (word-at-a-time scan).
#[inline]
pub fn find_nl(s: &[u8]) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    const NL: u64 = LO * b'\n' as u64;
    let mut i = 0;
    while i + 8 <= s.len() {
        let w = u64::from_le_bytes([
            s[i],
            s[i + 1],
            s[i + 2],
            s[i + 3],
            s[i + 4],
            s[i + 5],
            s[i + 6],
            s[i + 7],
        ]) ^ NL;
        let z = w.wrapping_sub(LO) & !w & HI;
        if z != 0 {
            return Some(i + (z.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    s[i..].iter().position(|&b| b == b'\n').map(|p| i + p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idx(body: impl AsRef<[u8]>) -> BodyIndex {
        let mut i = BodyIndex::default();
        i.build(
            body.as_ref(),
            &Labels::new(["s", "", "", ""]),
            42,
            Limits::default(),
        );
        i
    }

    #[test]
    fn find_nl_matches_naive() {
        let data = b"abcdefghij\nklmnopqrstuvwxyz0123456789\n\n1234567\n";
        for start in 0..data.len() {
            for end in start..=data.len() {
                let s = &data[start..end];
                assert_eq!(find_nl(s), s.iter().position(|&b| b == b'\n'));
            }
        }
    }

    #[test]
    fn families_runs_and_order() {
        let i = idx("# TYPE a gauge\na 1\n# TYPE b counter\nb 2\na{x=\"1\"} 3\nb{x=\"1\"} 4\n");
        assert_eq!(i.fams.len(), 2);
        assert_eq!(i.runs.len(), 4);
        assert_eq!(i.fams[0].runs, (0, 2));
        assert_eq!(i.fams[1].runs, (2, 4));
        assert_eq!(&i.order, &[0, 2, 1, 3]);
        assert_eq!(i.samples, 4);
    }

    #[test]
    fn consecutive_lines_share_a_run() {
        let i = idx("# TYPE a gauge\na{x=\"1\"} 1\na{x=\"2\"} 2\na{x=\"3\"} 3\n");
        assert_eq!(i.runs.len(), 1);
        assert_eq!(i.runs[0].ins, (0, 3));
    }

    #[test]
    fn histogram_and_summary_suffixes() {
        let i = idx(
            "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n\
             # TYPE s summary\ns{quantile=\"0.5\"} 1\ns_sum 1\ns_count 1\ns_bucket 1\n",
        );
        let names: Vec<_> = i.fams.iter().map(|f| (f.samples, f.kind)).collect();
        // s_bucket is not part of a summary: its own untyped family.
        assert_eq!(
            names,
            vec![(3, Kind::Histogram), (3, Kind::Summary), (1, Kind::Untyped)]
        );
    }

    #[test]
    fn drops_are_counted() {
        let i = idx(
            b"# TYPE a gauge\n# TYPE a gauge\n# HELP a x\n# HELP a y\na 1\na 2\n# TYPE a counter\n\
             c 1\n# TYPE c gauge\nb{le=\"x\"} 1\n# TYPE h histogram\nh_bucket{le=\"x\"} 1\nkata_monitor_x 1\nbad line\n\xff 1\n",
        );
        // The second TYPE of `a` and the TYPE after its samples, the second HELP.
        assert_eq!(i.drops.get(Reason::DuplicateHelpOrType), 3);
        assert_eq!(i.drops.get(Reason::DuplicateSeries), 1);
        assert_eq!(i.drops.get(Reason::TypeAfterSamples), 1);
        assert_eq!(i.drops.get(Reason::BadLeOrQuantile), 1);
        assert_eq!(i.drops.get(Reason::ReservedName), 1);
        assert_eq!(i.drops.get(Reason::BadValue), 1);
        assert_eq!(i.drops.get(Reason::InvalidUtf8), 1);
        // a 1, c 1, b{le="x"} (untyped: le is an ordinary label)
        assert_eq!(i.samples, 3);
    }

    #[test]
    fn duplicate_series_is_label_order_independent() {
        let i =
            idx("m{a=\"1\",b=\"2\"} 1\nm{b=\"2\",a=\"1\"} 2\nm{a=\"1\",b=\"3\"} 3\nm 4\nm{} 5\n");
        assert_eq!(i.samples, 3);
        assert_eq!(i.drops.get(Reason::DuplicateSeries), 2);
    }

    #[test]
    fn limits() {
        let mut i = BodyIndex::default();
        let body: String = (0..10).map(|n| format!("m{n} 1\n")).collect();
        i.build(
            body.as_bytes(),
            &Labels::new(["s", "", "", ""]),
            1,
            Limits { max_series: 4 },
        );
        assert_eq!(i.samples, 4);
        assert_eq!(i.drops.get(Reason::TooManySeries), 6);
    }
}
