//! Re-indexing a body whose lines are those of the previous body of the same
//! index, with only the sample values changed: the steady state of a shim,
//! scraped again and again.
//!
//! Owns: the [`Memo`] a full `BodyIndex::build` leaves beside its index (no
//! copy of the body: where each kept line's value is, and one keyed hash of
//! every other byte), deciding from it that a new body has the same shape,
//! and then moving the index's offsets instead of indexing again.
//!
//! Why this gives exactly the index a full build would: the memo cuts the
//! old body into *stretches* (every byte that is not a replayable value:
//! names, labels, HELP/TYPE lines, comments, dropped lines, newlines) and
//! *value tokens* (the value of a kept sample line that ends the line). A
//! new body replays when its stretches, at the same lengths, hash equal to
//! the old ones, and every value token is a non-empty float token that ends
//! its line (`\n` or the end of the body) within the line length limit, as
//! the lexer requires. Then every line of the new body is the old line
//! with another valid value: every decision of the index (grammar, family,
//! limits, votes' inputs, series identity, duplicates, insertion points)
//! is made on the same bytes in the same order, and only offsets after a
//! value of another length move. A value that is not a valid float, a
//! timestamp that appears, a new, missing or changed line of any kind: the
//! body is indexed in full (and a new memo kept).
//!
//! The stretches' hash is a polynomial over GF(2^61 - 1) keyed by the
//! engine's secret per-process seed: for two different bodies of the same
//! shape it collides with probability at most (number of 7-byte chunks) /
//! 2^61, whatever the guest writes (it never sees the key, or any output
//! that depends on it). The engine's fast table hash is not used: it has
//! seed-independent differentials a guest could aim at.

use super::index::{BodyIndex, ins_unpack};
use super::labels::Labels;
use super::limits::Limits;
use super::number::float_ok;
use super::swar::scan_token;

/// Longest value token a memo records (values are short floats).
const MAX_VALUE: usize = 255;

/// What the last full build of an index saw, to replay the next body.
#[derive(Default)]
pub struct Memo {
    valid: bool,
    seed: u64,
    limits: Option<Limits>,
    /// One per replayable value, in body order.
    slots: Vec<Slot>,
    /// Bytes after the last value.
    tail: u32,
    /// Polynomial hash of the stretches.
    hash: u64,
}

/// A value token: `stretch` bytes after the previous value (or the body's
/// start), then `value` bytes; the value's line started `pre` bytes before
/// the value.
#[derive(Clone, Copy)]
struct Slot {
    stretch: u32,
    /// Low 24 bits: `pre`; high 8: the value's length.
    pre_value: u32,
}

impl Slot {
    fn pre(self) -> usize {
        (self.pre_value & 0xff_ffff) as usize
    }
    fn value(self) -> usize {
        (self.pre_value >> 24) as usize
    }
}

/// A kept sample line whose value ends it, as a full build finds it:
/// body offsets of the line start, the value's start and end.
#[derive(Clone, Copy)]
pub struct Kept {
    pub line: u32,
    pub value: (u32, u32),
}

impl Memo {
    pub fn invalidate(&mut self) {
        self.valid = false;
    }

    pub fn held_bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<Slot>()
    }

    /// Remember `body` (not cut by a limit) as a full build indexed it:
    /// `kept` are its kept sample lines ending with their value, in order.
    pub fn record(&mut self, body: &[u8], kept: &[Kept], seed: u64, limits: Limits) {
        self.slots.clear();
        let mut h = Poly::new(seed);
        let mut pos = 0usize;
        for k in kept {
            let (vs, ve) = (k.value.0 as usize, k.value.1 as usize);
            let pre = vs - k.line as usize;
            if ve - vs > MAX_VALUE || pre > 0xff_ffff {
                // Left in the stretch: it must come back byte for byte.
                continue;
            }
            h.write(body, pos..vs);
            self.slots.push(Slot {
                stretch: (vs - pos) as u32,
                pre_value: pre as u32 | ((ve - vs) as u32) << 24,
            });
            pos = ve;
        }
        h.write(body, pos..body.len());
        self.tail = (body.len() - pos) as u32;
        self.hash = h.finish();
        self.seed = seed;
        self.limits = Some(limits);
        self.valid = true;
    }
}

/// Working memory of a replay (in the engine's shared scratch).
#[derive(Default)]
pub struct ReplayScratch {
    /// Old body offset where each value ended, and how far it moved.
    old_end: Vec<u32>,
    shift: Vec<u32>,
}

/// Index `body` into `idx` by moving the offsets of `idx`, if `body` has
/// the shape its memo describes (see the module doc). False: nothing was
/// changed, index it in full. `limits` are clamped.
pub fn replay(
    idx: &mut BodyIndex,
    body: &[u8],
    labels: &Labels,
    seed: u64,
    limits: Limits,
    sc: &mut ReplayScratch,
) -> bool {
    let m = &idx.memo;
    if !m.valid
        || m.seed != seed
        || m.limits != Some(limits)
        || body.len() > limits.max_body as usize
    {
        return false;
    }
    let max_line = limits.max_line as usize;
    let mut h = Poly::new(seed);
    sc.old_end.clear();
    sc.shift.clear();
    let (mut pos, mut old) = (0usize, 0usize);
    for s in &m.slots {
        let vs = pos + s.stretch as usize;
        if vs >= body.len() {
            return false;
        }
        h.write(body, pos..vs);
        let ve = value_end(body, vs);
        let n = ve - vs;
        if n == 0 || s.pre() + n > max_line {
            return false;
        }
        old += s.stretch as usize + s.value();
        sc.old_end.push(old as u32);
        sc.shift.push((ve as u32).wrapping_sub(old as u32));
        pos = ve;
    }
    if body.len() - pos != m.tail as usize {
        return false;
    }
    h.write(body, pos..body.len());
    if h.finish() != m.hash {
        return false;
    }
    move_offsets(idx, labels, sc);
    // Same stretches: only the values' lengths change.
    let mut pos = 0u32;
    for ((s, &end), &shift) in idx.memo.slots.iter_mut().zip(&sc.old_end).zip(&sc.shift) {
        let new_end = end.wrapping_add(shift);
        let value = new_end - (pos + s.stretch);
        s.pre_value = (s.pre_value & 0xff_ffff) | value << 24;
        pos = new_end;
    }
    true
}

/// End of the value token at `vs` if it is a valid one (a float ending its
/// line, at most `MAX_VALUE` bytes), else `vs`. Most values are small
/// integers: digits then the line's end need no more checking.
#[inline]
fn value_end(body: &[u8], vs: usize) -> usize {
    let mut ve = vs;
    while ve < body.len() && body[ve].is_ascii_digit() {
        ve += 1;
    }
    let eol = ve == body.len() || body[ve] == b'\n';
    // Up to 15 digits: below 10^15, finite.
    if eol && ve > vs && ve - vs <= 15 {
        return ve;
    }
    let ve = scan_token(body, vs);
    let eol = ve == body.len() || body[ve] == b'\n';
    if eol && ve - vs <= MAX_VALUE && float_ok(&body[vs..ve]) {
        ve
    } else {
        vs
    }
}

/// Move every body offset of `idx` by the shift of the last value ending
/// at or before it, and recount the families' output bytes for `labels`.
fn move_offsets(idx: &mut BodyIndex, labels: &Labels, sc: &ReplayScratch) {
    let (ends, shift) = (&sc.old_end[..], &sc.shift[..]);
    let moved = |p: u32, k: usize| {
        if k == 0 {
            p
        } else {
            p.wrapping_add(shift[k - 1])
        }
    };
    // Runs, their insertions and the families' names are in body order: a
    // cursor instead of a search.
    let cursor = || {
        let mut k = 0;
        move |p: u32| {
            while k < ends.len() && ends[k] <= p {
                k += 1;
            }
            moved(p, k)
        }
    };
    let mut next = cursor();
    let mut names = cursor();
    for f in &mut idx.fams {
        f.name = (names(f.name.0), names(f.name.1));
        let at = |p: u32| moved(p, ends.partition_point(|&e| e <= p));
        f.help = f.help.map(|(a, b)| (at(a), at(b)));
        f.bytes = 0;
    }
    for r in &mut idx.runs {
        r.start = next(r.start);
        let mut added = 0u64;
        for p in &mut idx.ins[r.ins.0 as usize..r.ins.1 as usize] {
            let (o, kind) = ins_unpack(*p);
            *p = (next(o as u32) << 3) | kind as u32;
            added += u64::from(labels.len_of(kind));
        }
        r.end = next(r.end);
        idx.fams[r.fam as usize].bytes += u64::from(r.end - r.start) + added;
    }
}

const P: u64 = (1 << 61) - 1;
const CHUNK: u64 = (1 << 56) - 1;

/// Polynomial hash over GF(2^61 - 1) of a sequence of byte strings, each
/// cut into 7-byte chunks (the last zero-padded): `sum c_i r^(n-i)`.
/// Injective in the chunks for strings of fixed lengths, which is how it
/// is used (the memo fixes every length).
struct Poly {
    h: u64,
    /// r, r^2, r^3, r^4 (reduced).
    r: [u64; 4],
}

/// A value congruent to `x` mod P, below 2^63 (for `x` below 2^125).
#[inline(always)]
fn fold(x: u128) -> u64 {
    let lo = (x as u64) & P;
    let hi = (x >> 61) as u64;
    lo + (hi & P) + (hi >> 61)
}

#[inline(always)]
fn mul(a: u64, b: u64) -> u128 {
    u128::from(a) * u128::from(b)
}

#[inline(always)]
fn chunk(b: &[u8], i: usize) -> u64 {
    u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes")) & CHUNK
}

impl Poly {
    fn new(seed: u64) -> Poly {
        // The key from the seed through SipHash: not invertible, and no
        // relation to the table hash keyed by the same seed.
        #[allow(deprecated)]
        let mut s = std::hash::SipHasher::new_with_keys(seed, 0x7265_706c_6179_2121);
        std::hash::Hasher::write_u64(&mut s, 0x706f_6c79);
        let r = std::hash::Hasher::finish(&s) % P;
        let r = r.max(2);
        let r2 = fold(mul(r, r)) % P;
        let r3 = fold(mul(r2, r)) % P;
        let r4 = fold(mul(r2, r2)) % P;
        Poly {
            h: 0,
            r: [r, r2, r3, r4],
        }
    }

    /// Hash `body[range]`. Bytes of `body` after the range may be loaded
    /// (and masked off): the last chunk needs no copy.
    #[inline(always)]
    fn write(&mut self, body: &[u8], range: std::ops::Range<usize>) {
        let [r1, r2, r3, r4] = self.r;
        let (mut i, end) = (range.start, range.end);
        let mut h = self.h;
        // Four chunks per step: one multiplication on the dependency chain.
        while i + 28 <= end && i + 29 <= body.len() {
            let g: &[u8; 29] = body[i..i + 29].try_into().expect("29 bytes");
            let x = mul(h, r4)
                + mul(chunk(g, 0), r3)
                + mul(chunk(g, 7), r2)
                + mul(chunk(g, 14), r1)
                + u128::from(chunk(g, 21));
            h = fold(x);
            i += 28;
        }
        while i < end {
            let k = (end - i).min(7);
            let c = if i + 8 <= body.len() {
                chunk(body, i) & (CHUNK >> (8 * (7 - k)))
            } else {
                let mut w = [0u8; 8];
                w[..k].copy_from_slice(&body[i..i + k]);
                u64::from_le_bytes(w)
            };
            h = fold(mul(h, r1) + u128::from(c));
            i += k;
        }
        self.h = h;
    }

    fn finish(&self) -> u64 {
        self.h % P
    }
}

#[cfg(test)]
mod tests;
