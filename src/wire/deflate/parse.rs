//! Match finding led by the renderer: where to look, not a search.
//!
//! The merged text repeats itself in a known way. Within a family, each
//! sandbox's lines are the previous sandbox's lines with its own label block
//! and numbers; a sandbox's label block recurs on each of its lines. The
//! renderer says where every piece starts ([`Marks`]); the [`Hinter`] turns
//! that into one [`Hint`] per piece with the distances worth trying:
//!
//! * a body piece: the same piece of the previous sandbox in this family
//!   (its `k`-th piece), then this sandbox's previous piece (the line
//!   before, for the first sandbox of a family);
//! * a label block: the previous copy of the same sandbox's labels (the
//!   same bytes, so the copy runs at least to the block's end); when that
//!   copy is out of the window, the block is mostly new bytes.
//!
//! The [`Parser`] tries those distances first and stops at a copy that
//! reaches the next piece; then the last two distances used and a small
//! hash table of 4-byte strings; one byte of lazy look-ahead when a copy
//! ends inside its piece. Every copy is verified against the window (a
//! renderer bug must not corrupt every sandbox's output). Nothing is tried
//! at each byte of a copy, so the cost follows the number of copies, not of
//! bytes.
//!
//! Owns: the hints of the text not yet parsed and the parse. Emits literals
//! and copies to the block writer. No I/O.

use super::block::{Block, MAX_DIST, MAX_MATCH};
use crate::wire::expo::Marks;

/// Pieces remembered per sandbox for pairing with the next sandbox's (a
/// sandbox with more pieces than this in one family is paired no further).
const MAX_PAIRED: usize = 1 << 14;
const HASH_BITS: u32 = 14;
/// Copies shorter than this that end inside their piece are checked
/// against the copy one byte on (lazy matching).
const LAZY: usize = 259;

/// Where to look for the bytes from `pos` on (absolute output positions).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hint {
    pub pos: u64,
    /// First distance to try (0: none).
    pub d1: u32,
    /// Second distance (0: none).
    pub d2: u32,
    /// Bytes from `pos` that equal those `d1` back (a label core; the
    /// parser still verifies them).
    pub known: u32,
    /// Bytes from `pos` of a label core whose last copy is out of reach:
    /// new bytes (an id, a uid) but for what the previous sandbox's core
    /// holds at the same offsets.
    pub fresh: u32,
}

/// Collects [`Hint`]s while the renderer fills the window.
#[derive(Default)]
pub struct Hinter {
    /// Per source: absolute position of its label core's last copy, plus 1.
    last_core: Vec<u64>,
    /// Piece starts of the previous and the current sandbox in this family.
    prev: Vec<u64>,
    cur: Vec<u64>,
    /// Absolute position of the buffer being filled.
    pub base: u64,
    pub hints: Vec<Hint>,
}

impl Hinter {
    pub fn reset(&mut self) {
        self.last_core.clear();
        self.prev.clear();
        self.cur.clear();
        self.base = 0;
        self.hints.clear();
    }

    /// Drop the hints that govern no byte from absolute position `end` on
    /// (those at or before `end` but the last of them).
    pub fn parsed(&mut self, end: u64) {
        let n = self.hints.partition_point(|h| h.pos <= end);
        if n > 1 {
            self.hints.drain(..n - 1);
        }
    }
}

#[inline]
fn dist(from: u64, to: u64) -> u32 {
    let d = to - from;
    if d <= MAX_DIST as u64 { d as u32 } else { 0 }
}

impl Marks for Hinter {
    #[inline]
    fn family(&mut self) {
        self.prev.clear();
        self.cur.clear();
    }

    #[inline]
    fn member(&mut self) {
        std::mem::swap(&mut self.prev, &mut self.cur);
        self.cur.clear();
    }

    #[inline]
    fn span(&mut self, at: usize) {
        let pos = self.base + at as u64;
        let k = self.cur.len();
        let d1 = self.prev.get(k).map_or(0, |&p| dist(p, pos));
        let d2 = self.cur.last().map_or(0, |&p| dist(p, pos));
        if k < MAX_PAIRED {
            self.cur.push(pos);
        }
        self.hints.push(Hint {
            pos,
            d1,
            d2,
            known: 0,
            fresh: 0,
        });
    }

    #[inline]
    fn labels(&mut self, at: usize, src: u32, off: u32, core: u32) {
        let pos = self.base + at as u64 + u64::from(off);
        let src = src as usize;
        if src >= self.last_core.len() {
            self.last_core.resize(src + 1, 0);
        }
        let d1 = match self.last_core[src] {
            0 => 0,
            l => dist(l - 1, pos),
        };
        self.last_core[src] = pos + 1;
        self.hints.push(Hint {
            pos,
            d1,
            d2: 0,
            known: if d1 == 0 { 0 } else { core },
            fresh: if d1 == 0 { core } else { 0 },
        });
    }
}

/// Parser state that lives across windows of one stream.
pub struct Parser {
    /// The last two distances used.
    reps: [usize; 2],
    /// Last absolute position of each 4-byte string's hash, at token starts.
    table: Box<[u32]>,
}

impl Default for Parser {
    fn default() -> Self {
        Parser {
            reps: [0; 2],
            table: vec![0; 1 << HASH_BITS].into_boxed_slice(),
        }
    }
}

#[inline(always)]
fn load32(b: &[u8]) -> u32 {
    u32::from_le_bytes(b[..4].try_into().expect("4 bytes"))
}

/// Length of the common prefix of `a` and `b`: 16 bytes per step (no
/// `memcmp`: musl's compares byte by byte).
#[inline(always)]
fn common(a: &[u8], b: &[u8]) -> usize {
    let len = a.len().min(b.len());
    let (a, b) = (&a[..len], &b[..len]);
    let mut n = 0;
    while n + 16 <= len {
        let x = u128::from_le_bytes(a[n..n + 16].try_into().expect("16 bytes"));
        let y = u128::from_le_bytes(b[n..n + 16].try_into().expect("16 bytes"));
        if x != y {
            return n + ((x ^ y).trailing_zeros() / 8) as usize;
        }
        n += 16;
    }
    if n + 8 <= len {
        let x = u64::from_le_bytes(a[n..n + 8].try_into().expect("8 bytes"));
        let y = u64::from_le_bytes(b[n..n + 8].try_into().expect("8 bytes"));
        if x != y {
            return n + ((x ^ y).trailing_zeros() / 8) as usize;
        }
        n += 8;
    }
    while n < len && a[n] == b[n] {
        n += 1;
    }
    n
}

#[inline(always)]
fn hash4(v: u32) -> usize {
    (v.wrapping_mul(0x9e37_79b1) >> (32 - HASH_BITS)) as usize
}

/// Shortest copy worth its codes at distance `d`.
#[inline(always)]
fn worth(len: usize, d: usize) -> bool {
    len >= 5 || (len >= 3 && d <= 256) || (len == 4 && d <= 4096)
}

/// The best copy found so far at one position.
struct Best<'a> {
    buf: &'a [u8],
    /// The bytes to cover: `buf[i..i + max]` (`max` at least 4).
    cur: &'a [u8],
    i: usize,
    /// Farthest distance.
    limit: usize,
    here: u32,
    len: usize,
    dist: usize,
}

impl<'a> Best<'a> {
    #[inline(always)]
    fn new(buf: &'a [u8], i: usize, max: usize) -> Best<'a> {
        let cur = &buf[i..i + max];
        Best {
            buf,
            cur,
            i,
            limit: i.min(MAX_DIST),
            here: load32(cur),
            len: 0,
            dist: 0,
        }
    }

    /// Verify a copy from `d` back; keep it if it is longer.
    #[inline(always)]
    fn try_dist(&mut self, d: usize) {
        let max = self.cur.len();
        // `d == 0` wraps to the largest value.
        if d.wrapping_sub(1) >= self.limit || d == self.dist || self.len >= max {
            return;
        }
        let j = self.i - d;
        let cand = &self.buf[j..j + max];
        // Only a longer copy matters: the byte that makes it so first.
        if self.len >= 4 && cand[self.len] != self.cur[self.len] {
            return;
        }
        if load32(cand) != self.here {
            return;
        }
        let l = 4 + common(&cand[4..], &self.cur[4..]);
        if l > self.len {
            self.len = l;
            self.dist = d;
        }
    }
}

impl Parser {
    pub fn reset(&mut self) {
        self.reps = [0; 2];
        self.table.fill(0);
    }

    /// Parse `buf[from..to]` (`buf[..from]` is history; `buf[0]` is at
    /// absolute position `base`) into `out`, flushing full blocks. `hints`
    /// are sorted by position; the first may start before `from`.
    #[inline(never)]
    pub fn parse(
        &mut self,
        buf: &[u8],
        from: usize,
        to: usize,
        base: u64,
        hints: &[Hint],
        out: &mut Block,
    ) {
        let none = Hint {
            pos: 0,
            d1: 0,
            d2: 0,
            known: 0,
            fresh: 0,
        };
        // `g` governs the bytes from `g.pos` up to the next hint's position.
        let mut h = 0;
        while h + 1 < hints.len() && hints[h + 1].pos <= base + from as u64 {
            h += 1;
        }
        let mut g = hints
            .get(h)
            .filter(|g| g.pos <= base + from as u64)
            .copied();
        let mut next = match g {
            Some(_) => hints.get(h + 1),
            None => hints.first(),
        }
        .map_or(u64::MAX, |n| n.pos);
        let mut i = from;
        while i < to {
            let abs = base + i as u64;
            if abs >= next {
                h = if g.is_some() { h + 1 } else { 0 };
                while h + 1 < hints.len() && hints[h + 1].pos <= abs {
                    h += 1;
                }
                g = Some(hints[h]);
                next = hints.get(h + 1).map_or(u64::MAX, |n| n.pos);
            }
            let g = g.as_ref().unwrap_or(&none);
            let max = (to - i).min(MAX_MATCH);
            if max < 4 {
                out.literal(buf[i]);
                i += 1;
                continue;
            }
            let piece_end = next.saturating_sub(base).min(to as u64) as usize;
            let (mut len, mut d) = self.best(buf, i, max, abs, g, piece_end);
            if worth(len, d) && len < LAZY && i + len < piece_end && abs + 1 < next && max > 4 {
                // Lazy: a longer copy one byte on is worth a literal.
                let (l2, d2) = self.best(buf, i + 1, max - 1, abs + 1, g, piece_end);
                if l2 > len + 1 && worth(l2, d2) {
                    out.literal(buf[i]);
                    i += 1;
                    (len, d) = (l2, d2);
                }
            }
            if worth(len, d) {
                out.copy(len, d);
                if d != self.reps[0] {
                    self.reps = [d, self.reps[0]];
                }
                i += len;
            } else {
                out.literal(buf[i]);
                i += 1;
            }
            if out.is_full() {
                out.flush(false);
            }
        }
    }

    /// Longest verified copy at `i` among the distances worth trying.
    #[inline(always)]
    fn best(
        &mut self,
        buf: &[u8],
        i: usize,
        max: usize,
        abs: u64,
        g: &Hint,
        piece_end: usize,
    ) -> (usize, usize) {
        let mut b = Best::new(buf, i, max);
        let d1 = g.d1 as usize;
        let into = abs - g.pos;
        if into < u64::from(g.fresh) {
            // Mostly new bytes: the last distance (the previous sandbox's
            // core at the same offsets, when a copy led here) and the hash
            // (what other sandboxes' names share) are all worth a try.
            b.try_dist(self.reps[0]);
            if b.len < 8 {
                let d = self.hash_swap(b.here, abs);
                b.try_dist(d);
            }
            return (b.len, b.dist);
        }
        b.try_dist(d1);
        // A label core is the same bytes as its previous copy: that copy
        // runs at least to the core's end (verified all the same: a renderer
        // bug must not corrupt every sandbox's output). Other pieces: enough
        // when the copy reaches the next piece (or is the longest).
        let enough = if into < u64::from(g.known) {
            (g.known as usize - into as usize).min(max)
        } else {
            piece_end.saturating_sub(i).clamp(1, max)
        };
        if b.len >= enough {
            return (b.len, b.dist);
        }
        b.try_dist(g.d2 as usize);
        b.try_dist(self.reps[0]);
        b.try_dist(self.reps[1]);
        if b.len < enough {
            let d = self.hash_swap(b.here, abs);
            b.try_dist(d);
        }
        (b.len, b.dist)
    }

    /// Distance to the last position whose 4 bytes hashed like `here`'s;
    /// `abs` takes its place.
    #[inline(always)]
    fn hash_swap(&mut self, here: u32, abs: u64) -> usize {
        let slot = hash4(here);
        let cand = self.table[slot];
        self.table[slot] = abs as u32;
        (abs as u32).wrapping_sub(cand) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::expo::{Exposition, Filter, Labels};

    /// The hints the renderer's marks give for `expo`'s whole output, and
    /// that output.
    fn hints(expo: &Exposition) -> (Vec<Hint>, Vec<u8>) {
        let mut cur = expo.cursor(&Filter::all(), Vec::new());
        let mut h = Hinter::default();
        let mut out = vec![0u8; cur.len() as usize];
        let n = cur.fill_marked(expo, &mut out, &mut h);
        assert_eq!(n, out.len());
        (h.hints, out)
    }

    fn node(bodies: &[&[u8]]) -> Exposition {
        let mut expo = Exposition::new(1);
        for (i, b) in bodies.iter().enumerate() {
            let id = format!("id{i}");
            expo.add(&id, Labels::new([&id, "u", "n", "ns"]), b.to_vec());
        }
        expo.finish();
        expo
    }

    #[test]
    fn pieces_pair_with_the_previous_sandbox_and_cores_with_their_last_copy() {
        let body: &[u8] = b"# TYPE a gauge\na{x=\"1\"} 1\na{x=\"2\"} 2\n";
        let expo = node(&[body, body]);
        let (hints, out) = hints(&expo);
        let core = br#"sandbox_id="id0",cri_uid="u",cri_name="n",cri_namespace="ns""#;
        let at = |h: &Hint| &out[h.pos as usize..];
        // Every label hint starts at a core; its known bytes equal the copy
        // d1 back, which is the same sandbox's previous core.
        let labels: Vec<&Hint> = hints
            .iter()
            .filter(|h| at(h).starts_with(b"sandbox_id="))
            .collect();
        assert_eq!(labels.len(), 4);
        assert!(at(labels[0]).starts_with(core));
        assert_eq!(
            (labels[0].d1, labels[0].known),
            (0, 0),
            "first copy: nothing to copy"
        );
        for h in &labels[1..] {
            let (p, d) = (h.pos as usize, h.d1 as usize);
            if h.known > 0 {
                let k = h.known as usize;
                assert_eq!(out[p..p + k], out[p - d..p - d + k]);
            }
        }
        // Sandbox 1's second core copies sandbox 1's first one, not id0's.
        assert_eq!(labels[3].known as usize, core.len());
        assert!(at(labels[3]).starts_with(br#"sandbox_id="id1""#));
        // Body pieces of the second sandbox pair with the first one's: the
        // same bytes d1 back (identical bodies).
        let spans: Vec<&Hint> = hints.iter().filter(|h| h.known == 0 && h.d1 > 0).collect();
        assert!(!spans.is_empty());
        for h in spans.iter().filter(|h| !at(h).starts_with(b"sandbox_id=")) {
            let (p, d) = (h.pos as usize, h.d1 as usize);
            let end = (p + 6).min(out.len());
            assert_eq!(out[p..end], out[p - d..end - d], "pair at {p}");
        }
        // Sorted by position: the parser walks them in order.
        assert!(hints.windows(2).all(|w| w[0].pos <= w[1].pos));
    }

    #[test]
    fn distances_beyond_the_window_are_not_hinted() {
        // One sandbox's part of a family longer than the window: no pairs.
        let mut body = b"# TYPE big gauge\n".to_vec();
        for i in 0..600 {
            body.extend_from_slice(format!("big{{i=\"{i:04}\"}} {i}\n").as_bytes());
        }
        let expo = node(&[&body, &body]);
        let (hints, _) = hints(&expo);
        assert!(
            hints
                .iter()
                .all(|h| h.d1 as usize <= MAX_DIST && h.d2 as usize <= MAX_DIST)
        );
        let second = hints.len() / 2 + 2;
        assert!(hints[second..].iter().all(|h| h.known > 0 || h.d1 == 0));
    }

    #[test]
    fn hints_before_the_parsed_end_are_dropped_but_the_governing_one() {
        let mut h = Hinter::default();
        for pos in [10u64, 20, 30, 40] {
            h.hints.push(Hint {
                pos,
                d1: 0,
                d2: 0,
                known: 0,
                fresh: 0,
            });
        }
        h.parsed(35);
        assert_eq!(h.hints.iter().map(|h| h.pos).collect::<Vec<_>>(), [30, 40]);
        h.parsed(40);
        assert_eq!(h.hints.iter().map(|h| h.pos).collect::<Vec<_>>(), [40]);
    }

    #[test]
    fn common_prefix_lengths() {
        let a: Vec<u8> = (0..100u8).collect();
        for n in 0..100 {
            let mut b = a.clone();
            b[n] ^= 0xff;
            assert_eq!(common(&a, &b), n);
            assert_eq!(common(&a[..n], &b[..n]), n);
        }
        assert_eq!(common(&a, &a[..37]), 37);
    }
}
