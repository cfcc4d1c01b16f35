//! Index of one shim body: its families, the runs of kept sample lines, and the
//! insertion points that turn a source line into an output line.
//!
//! Owns: grouping lines into families the way expfmt does, per-sandbox checks
//! (duplicate HELP/TYPE, TYPE after samples, `le`/`quantile` values, duplicate
//! series, the series limit) and the drop counters. Stores byte offsets into the body,
//! never copies of it. Does not know about other sandboxes (see `merge`).
//!
//! Output of a run is the body bytes `[start, end)` with the bytes of each
//! insertion (see [`Ins`]) placed before the body byte at its offset.

use super::hash::{HashTable, hash_bytes};
use super::labels::{EXPORTED_PREFIX, Ins, Labels, RENAME_PREFIX};
use super::lex::{self, Kind, Line, Reason, Sample};
use super::limits::{self, Limits};
use super::replay::{self, Kept, Memo, ReplayScratch};

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
    /// What the last full build saw, to replay the next body (`replay`).
    pub(super) memo: Memo,
}

/// Working memory of `build` that no index needs afterwards. One per engine,
/// shared by all bodies, so its tables stay hot in cache.
#[derive(Default)]
pub struct Scratch {
    fam_table: HashTable,
    series: HashTable,
    pairs: Vec<Pair>,
    canon: Vec<u8>,
    canon2: Vec<u8>,
    counts: Vec<u32>,
    /// Kept lines that end with their value, for the memo.
    kept: Vec<Kept>,
    pub(super) replay: ReplayScratch,
}

/// Keys series hashes apart from name hashes.
const SERIES_SEED: u64 = 0x5e41_e5e5_0000_0001;
/// In a series-table payload (a body offset, below `MAX_BODY`): the line's
/// family is renamed on output.
const RENAMED_BIT: u32 = 1 << 31;

/// A label's (name, raw value) spans.
type Pair = ((u32, u32), (u32, u32));

/// Which family the previous sample line went to.
#[derive(Clone, Copy)]
struct Cache {
    name: (u32, u32),
    fam: u32,
}

impl BodyIndex {
    /// More lines were dropped as malformed than samples kept: the body is
    /// not an exposition with a few bad lines but junk with a few lucky ones
    /// (a broken shim, a wrong endpoint). The daemon fails such a sandbox
    /// instead of serving the scraps. Lines dropped by a limit do not count:
    /// a sandbox over its limits keeps what is under them.
    pub fn mostly_invalid(&self) -> bool {
        let limited: u64 = limits::LIMIT_REASONS
            .iter()
            .map(|&r| u64::from(self.drops.get(r)))
            .sum();
        self.drops.total() - limited > u64::from(self.samples)
    }

    /// Capacity of the index's vectors, in bytes.
    pub fn held_bytes(&self) -> usize {
        self.fams.capacity() * std::mem::size_of::<Family>()
            + self.runs.capacity() * std::mem::size_of::<Run>()
            + self.ins.capacity() * 4
            + self.order.capacity() * 4
            + self.memo.held_bytes()
    }

    pub fn clear(&mut self) {
        self.fams.clear();
        self.runs.clear();
        self.ins.clear();
        self.order.clear();
        self.drops = Drops::default();
        self.samples = 0;
        self.memo.invalidate();
    }

    /// Index `body`. `labels` gives insertion sizes, `seed` keys the hashes.
    /// A body shaped like the one this index was last built from (the same
    /// lines, other values) is not indexed again: its offsets are moved
    /// (see `replay`), to the same result.
    pub fn build(
        &mut self,
        body: &[u8],
        labels: &Labels,
        seed: u64,
        limits: Limits,
        scratch: &mut Scratch,
    ) {
        let limits = limits.clamped();
        if replay::replay(self, body, labels, seed, limits, &mut scratch.replay) {
            return;
        }
        self.clear();
        let (body, tail) = limits::cut(body, limits.max_body as usize);
        if tail > 0 {
            self.drops.add(Reason::BodyTooLarge, tail);
        }
        scratch.fam_table.clear();
        scratch.series.clear();
        // Typical bodies have ~70 bytes per sample line.
        scratch.series.reserve(body.len() / 64);
        self.ins.reserve(body.len() / 64);
        scratch.kept.clear();
        let mut b = Builder {
            idx: self,
            sc: scratch,
            body,
            labels,
            seed,
            limits,
            cache: None,
        };
        b.lines();
        b.group_runs();
        if tail == 0 {
            self.memo.record(body, &scratch.kept, seed, limits);
        }
    }
}

/// One `build` in progress.
struct Builder<'a> {
    idx: &'a mut BodyIndex,
    sc: &'a mut Scratch,
    body: &'a [u8],
    labels: &'a Labels,
    seed: u64,
    limits: Limits,
    cache: Option<Cache>,
}

impl Builder<'_> {
    fn lines(&mut self) {
        let body = self.body;
        let mut sample = Sample::default();
        let mut pos = 0usize;
        // The previous sample line's metric name (valid, so a fine hint).
        let mut hint = (0, 0);
        let lim = lex::LineLimits {
            max_line: self.limits.max_line as usize,
            max_labels: usize::from(self.limits.max_labels),
        };
        while pos < body.len() {
            let start = pos;
            let (line, len) =
                lex::classify_next_hinted(&body[start..], &mut sample, &body[hint.0..hint.1], lim);
            let end = start + len;
            let next = if end < body.len() { end + 1 } else { end };
            pos = next;
            match line {
                Line::Blank | Line::Comment => {}
                Line::Invalid(r) => self.idx.drops.add(r, 1),
                Line::Help { name, text } => {
                    let Some(f) = self.meta_family(start, name) else {
                        continue;
                    };
                    let fam = &mut self.idx.fams[f];
                    if fam.help.is_some() {
                        self.idx.drops.add(Reason::DuplicateHelpOrType, 1);
                    } else {
                        fam.help = Some((start as u32 + text.0, start as u32 + text.1));
                    }
                }
                Line::Type { name, kind } => {
                    let Some(f) = self.meta_family(start, name) else {
                        continue;
                    };
                    let fam = &mut self.idx.fams[f];
                    if fam.typed {
                        self.idx.drops.add(Reason::DuplicateHelpOrType, 1);
                    } else if fam.samples > 0 {
                        self.idx.drops.add(Reason::TypeAfterSamples, 1);
                    } else {
                        fam.kind = kind;
                        fam.typed = true;
                    }
                }
                Line::Sample => {
                    hint = (
                        start + sample.name.0 as usize,
                        start + sample.name.1 as usize,
                    );
                    self.sample(start, next, &sample);
                }
            }
        }
    }

    /// Family named exactly `name` (relative to `start`), created if new.
    fn meta_family(&mut self, start: usize, name: (u32, u32)) -> Option<usize> {
        let span = (start as u32 + name.0, start as u32 + name.1);
        let bytes = &self.body[span.0 as usize..span.1 as usize];
        let h = hash_bytes(self.seed, bytes);
        if let Some(f) = self.find(bytes, h) {
            return Some(f as usize);
        }
        if self.idx.fams.len() >= self.limits.max_series as usize {
            self.idx.drops.add(Reason::TooManySeries, 1);
            return None;
        }
        // A new exact name can change where later samples of that name go.
        self.cache = None;
        Some(self.create(span, h) as usize)
    }

    fn find(&self, name: &[u8], h: u64) -> Option<u32> {
        self.sc.fam_table.probe(h).find(|&f| {
            let (s, e) = self.idx.fams[f as usize].name;
            lex::eq(&self.body[s as usize..e as usize], name)
        })
    }

    fn create(&mut self, span: (u32, u32), h: u64) -> u32 {
        let name = &self.body[span.0 as usize..span.1 as usize];
        let id = self.idx.fams.len() as u32;
        self.idx.fams.push(Family {
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
        self.sc.fam_table.insert(h, id);
        id
    }

    /// expfmt's rule: exact name first, then `_sum`/`_count` of a summary,
    /// then `_bucket`/`_sum`/`_count` of a histogram, else a new untyped family.
    fn sample_family(&self, name: &[u8], h: u64) -> Option<u32> {
        if let Some(f) = self.find(name, h) {
            return Some(f);
        }
        for (suffix, hist_only) in [
            (&b"_sum"[..], false),
            (b"_count", false),
            (b"_bucket", true),
        ] {
            if name.len() > suffix.len() && name.ends_with(suffix) {
                let base = &name[..name.len() - suffix.len()];
                if let Some(f) = self.find(base, hash_bytes(self.seed, base)) {
                    let k = self.idx.fams[f as usize].kind;
                    if k == Kind::Histogram || (k == Kind::Summary && !hist_only) {
                        return Some(f);
                    }
                }
            }
        }
        None
    }

    fn sample(&mut self, start: usize, next: usize, s: &Sample) {
        let body = self.body;
        let span = (start as u32 + s.name.0, start as u32 + s.name.1);
        let name = &body[span.0 as usize..span.1 as usize];
        let fam = match self.cache {
            Some(c) if lex::eq(&body[c.name.0 as usize..c.name.1 as usize], name) => c.fam,
            _ => {
                let h = hash_bytes(self.seed, name);
                let fam = match self.sample_family(name, h) {
                    Some(f) => f,
                    None if self.idx.fams.len() >= self.limits.max_series as usize => {
                        self.idx.drops.add(Reason::TooManySeries, 1);
                        return;
                    }
                    None => self.create(span, h),
                };
                self.cache = Some(Cache { name: span, fam });
                fam
            }
        };
        let f = &self.idx.fams[fam as usize];
        if f.reserved {
            self.idx.drops.add(Reason::ReservedName, 1);
            return;
        }
        let before = match f.kind {
            Kind::Histogram => s.le,
            Kind::Summary => s.quantile,
            _ => None,
        };
        // `le`/`quantile` must parse as floats; a bucket needs `le` and a
        // summary quantile line needs `quantile` (expfmt drops them silently).
        let base_len = (f.name.1 - f.name.0) as usize;
        let needs = match f.kind {
            Kind::Histogram => name.len() == base_len + 7 && name.ends_with(b"_bucket"),
            Kind::Summary => name.len() == base_len,
            _ => false,
        };
        if matches!(before, Some((_, false))) || (needs && before.is_none()) {
            self.idx.drops.add(Reason::BadLeOrQuantile, 1);
            return;
        }
        if self.idx.samples >= self.limits.max_series {
            self.idx.drops.add(Reason::TooManySeries, 1);
            return;
        }
        let renamed = self.idx.fams[fam as usize].renamed;
        if self.is_duplicate(start, next, s, renamed) {
            self.idx.drops.add(Reason::DuplicateSeries, 1);
            return;
        }

        // Insertion points, in body order.
        let name_start = span.0;
        let idx = &mut *self.idx;
        let labels = self.labels;
        let first_ins = idx.ins.len() as u32;
        let mut bytes = (next - name_start as usize) as u64;
        let mut push = |ins: &mut Vec<u32>, at: usize, k: Ins| {
            ins.push(ins_pack(at, k));
            bytes += u64::from(labels.len_of(k));
        };
        if idx.fams[fam as usize].renamed {
            push(&mut idx.ins, name_start as usize, Ins::Rename);
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
                push(&mut idx.ins, inject.0, inject.1);
                injected = true;
            }
            push(&mut idx.ins, at, Ins::Exported);
        }
        if !injected {
            push(&mut idx.ins, inject.0, inject.1);
        }
        if body.get(next - 1) != Some(&b'\n') {
            // Last line of a body without a final newline.
            push(&mut idx.ins, next, Ins::Newline);
        }
        let last_ins = idx.ins.len() as u32;
        // Where the value is, when it ends the line (for the memo): the
        // last token (values are short: scanned from the end), when only
        // blanks come before it (else it is a timestamp).
        let line_end = if body[next - 1] == b'\n' {
            next - 1
        } else {
            next
        };
        let after = start + s.close.map_or(s.name.1, |c| c + 1) as usize;
        let blank = |b: u8| b == b' ' || b == b'\t';
        let mut vs = line_end;
        while vs > after && !blank(body[vs - 1]) {
            vs -= 1;
        }
        if vs > after && body[after..vs].iter().all(|&b| blank(b)) {
            self.sc.kept.push(Kept {
                line: start as u32,
                value: (vs as u32, line_end as u32),
            });
        }

        let f = &mut idx.fams[fam as usize];
        f.samples += 1;
        f.bytes += bytes;
        idx.samples += 1;
        match idx.runs.last_mut() {
            Some(r) if r.fam == fam && r.end == name_start => {
                r.end = next as u32;
                r.ins.1 = last_ins;
            }
            _ => idx.runs.push(Run {
                fam,
                start: name_start,
                end: next as u32,
                ins: (first_ins, last_ins),
            }),
        }
    }

    /// Is this line's series (same canonical `name{sorted labels}` text, with
    /// the name as it is output: `kata_shim_` prepended for a `renamed`
    /// family, so a source's `go_x` and `kata_shim_go_x` are one series;
    /// empty-valued labels left out, so `m{a=""}` and `m` are one series)
    /// already kept? If not, remember it. The injected labels are the same
    /// on every line of a body, so they cannot tell two lines apart.
    fn is_duplicate(&mut self, start: usize, next: usize, s: &Sample, renamed: bool) -> bool {
        let body = self.body;
        let line = &body[start..next];
        let sc = &mut *self.sc;
        let prefix = |r: bool| -> &'static [u8] { if r { RENAME_PREFIX.as_bytes() } else { b"" } };
        let canon: &[u8] = if s.canonical && !renamed {
            &line[s.name.0 as usize..s.close.map_or(s.name.1, |c| c + 1) as usize]
        } else {
            canonical(line, s, prefix(renamed), &mut sc.pairs, &mut sc.canon);
            &sc.canon
        };
        let hash = hash_bytes(self.seed ^ SERIES_SEED, canon);
        let dup = sc.series.probe(hash).any(|payload| {
            let (other, o_renamed) = (
                (payload & !RENAMED_BIT) as usize,
                payload & RENAMED_BIT != 0,
            );
            let mut os = Sample::default();
            let (kind, len) = lex::classify_next(&body[other..], &mut os);
            let o = &body[other..other + len];
            match kind {
                Line::Sample if os.canonical && !o_renamed => {
                    canon == &o[os.name.0 as usize..os.close.map_or(os.name.1, |c| c + 1) as usize]
                }
                Line::Sample => {
                    canonical(o, &os, prefix(o_renamed), &mut sc.pairs, &mut sc.canon2);
                    canon == &sc.canon2[..]
                }
                _ => false,
            }
        });
        if !dup {
            let at = start as u32 + s.name.0;
            sc.series
                .insert(hash, at | if renamed { RENAMED_BIT } else { 0 });
        }
        dup
    }

    /// Counting sort of runs by family (stable: body order within a family).
    fn group_runs(&mut self) {
        let idx = &mut *self.idx;
        let counts = &mut self.sc.counts;
        let nf = idx.fams.len();
        counts.clear();
        counts.resize(nf + 1, 0);
        for r in &idx.runs {
            counts[r.fam as usize + 1] += 1;
        }
        for i in 0..nf {
            counts[i + 1] += counts[i];
            idx.fams[i].runs = (counts[i], counts[i + 1]);
        }
        idx.order.clear();
        idx.order.resize(idx.runs.len(), 0);
        for (i, r) in idx.runs.iter().enumerate() {
            let slot = &mut counts[r.fam as usize];
            idx.order[*slot as usize] = i as u32;
            *slot += 1;
        }
    }
}

/// Canonical series text of a valid sample line, as it will be output:
/// `name{a="1",b="2"}` with label names (after `exported_` renames) sorted,
/// no blanks, and no label with an empty value (Prometheus's identity: `a=""`
/// is no label `a`); `name` alone without labels.
fn canonical(line: &[u8], s: &Sample, prefix: &[u8], pairs: &mut Vec<Pair>, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(prefix);
    out.extend_from_slice(&line[s.name.0 as usize..s.name.1 as usize]);
    lex_pairs(line, s.name.1 as usize, pairs);
    pairs.retain(|&(_, v)| v.0 != v.1);
    if pairs.is_empty() {
        return;
    }
    let span = |(a, b): (u32, u32)| &line[a as usize..b as usize];
    let eff = |n: (u32, u32)| -> (&[u8], &[u8]) {
        if lex::is_injected(span(n)) {
            (EXPORTED_PREFIX.as_bytes(), span(n))
        } else {
            (b"", span(n))
        }
    };
    pairs.sort_unstable_by(|x, y| {
        let (a, b) = (eff(x.0), eff(y.0));
        a.0.iter().chain(a.1).cmp(b.0.iter().chain(b.1))
    });
    out.push(b'{');
    for (i, &(n, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let (p, name) = eff(n);
        out.extend_from_slice(p);
        out.extend_from_slice(name);
        out.extend_from_slice(b"=\"");
        out.extend_from_slice(span(v));
        out.push(b'"');
    }
    out.push(b'}');
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
            &mut Scratch::default(),
        );
        i
    }

    #[test]
    fn find_nl_matches_naive() {
        use super::super::lex::find_nl;
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
             c 1\n# TYPE c gauge\nb{le=\"x\"} 1\n# TYPE h histogram\nh_bucket{le=\"x\"} 1\nkata_monitor_x 1\nbad line\n\xff 1\nu{a=\"\xff\"} 1\nu{a=\"\xc3\xa9\"} 1\n",
        );
        // The second TYPE of `a` and the TYPE after its samples, the second HELP.
        assert_eq!(i.drops.get(Reason::DuplicateHelpOrType), 3);
        assert_eq!(i.drops.get(Reason::DuplicateSeries), 1);
        assert_eq!(i.drops.get(Reason::TypeAfterSamples), 1);
        assert_eq!(i.drops.get(Reason::BadLeOrQuantile), 1);
        assert_eq!(i.drops.get(Reason::ReservedName), 1);
        assert_eq!(i.drops.get(Reason::BadValue), 1);
        assert_eq!(i.drops.get(Reason::InvalidUtf8), 1);
        assert_eq!(i.drops.get(Reason::BadMetricName), 1);
        // a 1, c 1, b{le="x"} (untyped: le is an ordinary label), u{a="é"}
        assert_eq!(i.samples, 4);
        // 9 dropped lines against 4 kept samples: junk, not metrics.
        assert!(i.mostly_invalid());
    }

    #[test]
    fn a_few_bad_lines_do_not_make_a_body_junk() {
        assert!(
            !idx(b"a 1
b 2
bad line
")
            .mostly_invalid()
        );
        assert!(!idx(b"").mostly_invalid());
        assert!(
            !idx(b"# only a comment
")
            .mostly_invalid()
        );
        assert!(
            idx(b"a 1
\x00\x01\x02
bad line
")
            .mostly_invalid()
        );
    }

    #[test]
    fn buckets_need_le_and_quantiles_quantile() {
        let i =
            idx("# TYPE h histogram\nh_bucket 1\nh 2\nh_sum 3\n# TYPE s summary\ns 1\ns_sum 2\n");
        assert_eq!(i.drops.get(Reason::BadLeOrQuantile), 2);
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
    fn exported_renames_count_for_duplicates() {
        let i = idx(
            "m{sandbox_id=\"x\"} 1\nm{exported_sandbox_id=\"x\"} 2\nm{exported_sandbox_id=\"y\"} 3\n",
        );
        assert_eq!(i.samples, 2);
        assert_eq!(i.drops.get(Reason::DuplicateSeries), 1);
    }

    #[test]
    fn empty_label_values_are_absent_labels() {
        // Prometheus's identity: `a=""` is no label `a`; the first is kept.
        let i = idx(
            "m{x=\"\"} 5\nm 6\nm{} 7\nm{a=\"1\",b=\"\"} 1\nm{a=\"1\"} 2\n\
             m{b=\"\",a=\"1\",c=\"\"} 3\nm{cri_uid=\"\"} 8\nm{a=\"\",b=\"2\"} 9\nm{b=\"2\"} 10\n",
        );
        assert_eq!(i.samples, 3);
        assert_eq!(i.drops.get(Reason::DuplicateSeries), 6);
        // The kept lines are the first of each identity.
        let kept: Vec<u32> = i.runs.iter().map(|r| r.start).collect();
        assert_eq!(kept.len(), 3);
        // Non-empty values still tell series apart.
        let i = idx("m{a=\"\",b=\"1\"} 1\nm{a=\"1\",b=\"\"} 2\nm{a=\"0\"} 3\n");
        assert_eq!(i.samples, 3);
    }
}
