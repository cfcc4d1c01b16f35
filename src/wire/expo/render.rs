//! The output cursor: "fill this buffer with the next bytes" over an
//! [`Exposition`], so a response streams with backpressure and is never
//! materialised. The total length is known before the first byte.
//!
//! Owns: walking the plan (selected families → header → members → runs →
//! body spans and insertions) and resuming exactly where the last call stopped.
//! Holds indices, not references, so it can live in a connection next to a
//! shared `Rc<Exposition>`; the same exposition must be passed on every call.

use super::Exposition;
use super::index::ins_unpack;
use super::labels::{Ins, RENAME_PREFIX};

/// What a compressor learns from the renderer about the bytes it is given
/// (see `wire::deflate`): where each sandbox's lines of a family start,
/// where each piece of a shim body starts and where each sandbox's injected
/// labels are written. Offsets are into the buffer being filled. `()`
/// ignores them: the plain path compiles to what it was.
pub trait Marks {
    /// A family's sample lines start (its header has been written).
    fn family(&mut self);
    /// The next sandbox's lines of this family follow.
    fn member(&mut self);
    /// A piece of the shim's body (up to the next insertion) starts at `at`.
    fn span(&mut self, at: usize);
    /// `src`'s injected labels in form `kind` start at `at`; their
    /// `name="value",...` core (the same bytes in every form) starts `off`
    /// bytes in and is `core` bytes long.
    fn labels(&mut self, at: usize, src: u32, off: u32, core: u32);
}

impl Marks for () {
    #[inline(always)]
    fn family(&mut self) {}
    #[inline(always)]
    fn member(&mut self) {}
    #[inline(always)]
    fn span(&mut self, _: usize) {}
    #[inline(always)]
    fn labels(&mut self, _: usize, _: u32, _: u32, _: u32) {}
}

/// Which families a request wants: prefixes of the output name (empty: all).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    prefixes: Vec<Vec<u8>>,
}

impl Filter {
    pub fn all() -> Filter {
        Filter::default()
    }

    /// From `filter_family` values (each may hold a comma-separated list).
    /// Empty items are ignored; an empty filter selects everything.
    pub fn from_values<'a>(values: impl IntoIterator<Item = &'a str>) -> Filter {
        let mut prefixes: Vec<Vec<u8>> = values
            .into_iter()
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| p.as_bytes().to_vec())
            .collect();
        prefixes.sort();
        prefixes.dedup();
        Filter { prefixes }
    }

    pub fn is_all(&self) -> bool {
        self.prefixes.is_empty()
    }

    pub fn matches(&self, name: &[u8]) -> bool {
        self.is_all() || self.prefixes.iter().any(|p| name.starts_with(p))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    Head,
    Header { piece: u8 },
    Members,
    Done,
}

/// A position in the output of one exposition for one request.
#[derive(Debug)]
pub struct Cursor {
    head: Vec<u8>,
    selected: Vec<u32>,
    len: u64,
    written: u64,
    stage: Stage,
    /// Index into `selected`.
    fam: usize,
    /// Offset inside the current piece (head, header piece or insertion).
    partial: usize,
    member: u32,
    /// Position in the member family's slice of `order`.
    run: u32,
    /// Current insertion index and body position inside the current run.
    ins: u32,
    at: u32,
    in_run: bool,
}

impl Cursor {
    /// Cursor over `head` (e.g. the monitor's own metrics) followed by the
    /// families of `expo` that `filter` selects.
    pub fn new(expo: &Exposition, filter: &Filter, head: Vec<u8>) -> Cursor {
        let plan = &expo.plan;
        let mut len = head.len() as u64;
        let mut selected = Vec::new();
        for &g in &plan.sorted {
            let m = &plan.fams[g as usize];
            if m.kept && filter.matches(plan.name(m)) {
                len += m.bytes;
                selected.push(g);
            }
        }
        Cursor {
            head,
            selected,
            len,
            written: 0,
            stage: Stage::Head,
            fam: 0,
            partial: 0,
            member: 0,
            run: 0,
            ins: 0,
            at: 0,
            in_run: false,
        }
    }

    /// Total output length.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes still to come.
    pub fn remaining(&self) -> u64 {
        self.len - self.written
    }

    pub fn is_done(&self) -> bool {
        self.stage == Stage::Done
    }

    /// Families selected (for tests and logs).
    pub fn families(&self) -> usize {
        self.selected.len()
    }

    /// Write the next bytes into `out`; returns how many. 0 means done (or an
    /// empty `out`).
    pub fn fill(&mut self, expo: &Exposition, out: &mut [u8]) -> usize {
        self.fill_marked(expo, out, &mut ())
    }

    /// [`fill`](Self::fill), telling `marks` where the output came from.
    #[inline]
    pub fn fill_marked<M: Marks>(
        &mut self,
        expo: &Exposition,
        out: &mut [u8],
        marks: &mut M,
    ) -> usize {
        let mut w = 0;
        while w < out.len() {
            match self.stage {
                Stage::Done => break,
                Stage::Head => {
                    let n = copy(&self.head[self.partial..], &mut out[w..]);
                    w += n;
                    self.partial += n;
                    if self.partial < self.head.len() {
                        break;
                    }
                    self.partial = 0;
                    self.stage = self.next_family_stage(0);
                }
                Stage::Header { piece } => {
                    let g = &expo.plan.fams[self.selected[self.fam] as usize];
                    match header_piece(expo, g, piece) {
                        None => {
                            marks.family();
                            self.stage = Stage::Members;
                            self.member = g.members.0;
                            self.run = 0;
                            self.in_run = false;
                        }
                        Some(p) => {
                            let n = copy(&p[self.partial..], &mut out[w..]);
                            w += n;
                            self.partial += n;
                            if self.partial < p.len() {
                                break;
                            }
                            self.partial = 0;
                            self.stage = Stage::Header { piece: piece + 1 };
                        }
                    }
                }
                Stage::Members => {
                    let (n, done) = self.fill_members(expo, &mut out[w..], w, marks);
                    w += n;
                    if !done {
                        break;
                    }
                    self.stage = self.next_family_stage(self.fam + 1);
                }
            }
        }
        self.written += w as u64;
        w
    }

    fn next_family_stage(&mut self, fam: usize) -> Stage {
        self.fam = fam;
        self.partial = 0;
        if fam < self.selected.len() {
            Stage::Header { piece: 0 }
        } else {
            Stage::Done
        }
    }

    /// Sample lines of the current family; `(written, family done)`.
    /// `out` starts at `off` of the caller's buffer (for the marks).
    fn fill_members<M: Marks>(
        &mut self,
        expo: &Exposition,
        out: &mut [u8],
        off: usize,
        marks: &mut M,
    ) -> (usize, bool) {
        let plan = &expo.plan;
        let g = &plan.fams[self.selected[self.fam] as usize];
        let mut w = 0;
        while self.member < g.members.1 {
            let m = plan.members[self.member as usize];
            if !m.kept {
                self.member += 1;
                continue;
            }
            let src = &expo.sources[m.src as usize];
            let idx = &src.index;
            let f = &idx.fams[m.fam as usize];
            let nruns = f.runs.1 - f.runs.0;
            while self.run < nruns {
                let r = idx.runs[idx.order[(f.runs.0 + self.run) as usize] as usize];
                if !self.in_run {
                    if self.run == 0 {
                        marks.member();
                    }
                    marks.span(off + w);
                    self.in_run = true;
                    self.ins = r.ins.0;
                    self.at = r.start;
                    self.partial = 0;
                }
                let body = src.body();
                let end = r.end as usize;
                loop {
                    let (next, kind) = if self.ins < r.ins.1 {
                        let (a, k) = ins_unpack(idx.ins[self.ins as usize]);
                        (a, Some(k))
                    } else {
                        (end, None)
                    };
                    let at = self.at as usize;
                    if at < next {
                        let n = (next - at).min(out.len() - w);
                        copy_short(&mut out[w..w + n], &body[at..at + n]);
                        w += n;
                        self.at += n as u32;
                        if at + n < next {
                            return (w, false);
                        }
                    }
                    let Some(kind) = kind else { break };
                    if self.partial == 0 && w < out.len() && (kind as u8) <= Ins::Before as u8 {
                        let off_core = u32::from(matches!(kind, Ins::Comma | Ins::Braced));
                        let core = src.labels.len_of(Ins::Bare);
                        marks.labels(off + w, m.src, off_core, core);
                    }
                    let bytes = &src.labels.get(kind)[self.partial..];
                    let n = bytes.len().min(out.len() - w);
                    copy_short(&mut out[w..w + n], &bytes[..n]);
                    w += n;
                    if n < bytes.len() {
                        self.partial += n;
                        return (w, false);
                    }
                    self.partial = 0;
                    self.ins += 1;
                    marks.span(off + w);
                }
                self.in_run = false;
                self.run += 1;
            }
            self.run = 0;
            self.member += 1;
        }
        (w, true)
    }
}

/// `dst.copy_from_slice(src)` tuned for the short pieces a render is made of
/// (a line's head or tail, 100-250 label bytes): two overlapping fixed-size
/// moves (4 to 128 bytes) that the compiler inlines, instead of a `memcpy` call
/// per piece. musl's `memcpy` (the static build) starts every copy with
/// `rep movsq`, which made copying a fifth of a scrape's CPU there. Long
/// pieces still go to `memcpy`.
#[inline(always)]
fn copy_short(dst: &mut [u8], src: &[u8]) {
    // No loops: LLVM turns a loop of block copies back into a `memcpy` call.
    let n = src.len();
    if n > 256 || n != dst.len() {
        dst.copy_from_slice(src);
    } else if n > 128 {
        block::<128>(dst, src, 0);
        block::<128>(dst, src, n - 128);
    } else if n > 64 {
        block::<64>(dst, src, 0);
        block::<64>(dst, src, n - 64);
    } else if n > 32 {
        block::<32>(dst, src, 0);
        block::<32>(dst, src, n - 32);
    } else if n >= 16 {
        block::<16>(dst, src, 0);
        block::<16>(dst, src, n - 16);
    } else if n >= 8 {
        block::<8>(dst, src, 0);
        block::<8>(dst, src, n - 8);
    } else if n >= 4 {
        block::<4>(dst, src, 0);
        block::<4>(dst, src, n - 4);
    } else {
        for (d, s) in dst.iter_mut().zip(src) {
            *d = *s;
        }
    }
}

/// `N` bytes at `at`: a fixed-size move the compiler emits inline.
#[inline(always)]
fn block<const N: usize>(dst: &mut [u8], src: &[u8], at: usize) {
    dst[at..at + N].copy_from_slice(&src[at..at + N]);
}

#[inline]
fn copy(src: &[u8], dst: &mut [u8]) -> usize {
    let n = src.len().min(dst.len());
    dst[..n].copy_from_slice(&src[..n]);
    n
}

/// The pieces of a family header; `None` past the last one.
fn header_piece<'a>(
    expo: &'a Exposition,
    g: &'a super::merge::Merged,
    piece: u8,
) -> Option<&'a [u8]> {
    let (s, f) = g.first;
    let src = &expo.sources[s as usize];
    let fam = &src.index.fams[f as usize];
    let name = &src.body()[fam.name.0 as usize..fam.name.1 as usize];
    let prefix: &[u8] = if fam.renamed {
        RENAME_PREFIX.as_bytes()
    } else {
        b""
    };
    let help = g.help.and_then(|(hs, hf)| {
        let hsrc = &expo.sources[hs as usize];
        hsrc.index.fams[hf as usize]
            .help
            .map(|(a, b)| &hsrc.body()[a as usize..b as usize])
    });
    // 0..6: HELP line (skipped without help), 6..12: TYPE line.
    let p = if help.is_none() { piece + 6 } else { piece };
    Some(match p {
        0 => b"# HELP ",
        1 => prefix,
        2 => name,
        3 => b" ",
        4 => help.unwrap_or(b""),
        5 => b"\n",
        6 => b"# TYPE ",
        7 => prefix,
        8 => name,
        9 => b" ",
        10 => g.kind.as_str().as_bytes(),
        11 => b"\n",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::copy_short;

    #[test]
    fn copy_short_copies_every_length_exactly() {
        let src: Vec<u8> = (0..310u32).map(|i| (i * 7 + 3) as u8).collect();
        for n in 0..=300 {
            for off in [0, 1, 5] {
                let mut dst = vec![0xAAu8; n + 2 * off];
                copy_short(&mut dst[off..off + n], &src[off..off + n]);
                assert_eq!(&dst[off..off + n], &src[off..off + n], "n={n}");
                assert!(dst[..off].iter().all(|&b| b == 0xAA));
                assert!(dst[off + n..].iter().all(|&b| b == 0xAA));
            }
        }
    }
}
