//! Deflate (RFC 1951) back end: literals and copies in, blocks with their
//! own Huffman codes out.
//!
//! Owns: the token buffer of one block (at most [`BLOCK_TOKENS`]), symbol
//! counts, the choice between a dynamic and the fixed code per block, the
//! dynamic block header (code-length codes, run-length coded lengths) and the
//! bit stream. Knows nothing about where the copies come from (see
//! [`super::parse`]). No I/O.

use super::bits::BitWriter;
use super::huffman::{self, Builder};

/// Tokens per block: small enough for the codes to follow the text, which
/// changes character with every family. Measured at 100 sandboxes: 16 Ki
/// tokens (zlib's default) 660,862 bytes, 8 Ki 656,151, 4 Ki 653,185 for
/// 1% more instructions (more codes built).
pub const BLOCK_TOKENS: usize = 4 * 1024;
/// Longest and shortest copy, farthest distance.
pub const MAX_MATCH: usize = 258;
pub const MIN_MATCH: usize = 3;
pub const MAX_DIST: usize = 32 * 1024;

const LITLEN: usize = 286;
const DISTS: usize = 30;
const EOB: usize = 256;
const MATCH_BIT: u32 = 1 << 31;

const LEN_BASE: [u16; 29] = [
    3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131,
    163, 195, 227, 258,
];
const LEN_EXTRA: [u8; 29] = [
    0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
];
const DIST_BASE: [u16; 30] = [
    1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537,
    2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577,
];
const DIST_EXTRA: [u8; 30] = [
    0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13,
    13,
];
/// Order of the code-length code lengths in a dynamic header.
const CL_ORDER: [usize; 19] = [
    16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
];

/// Length code index (0..29) of copy length `len - 3`.
const LEN_CODE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut c = 0;
    while c < 29 {
        let mut l = LEN_BASE[c] as usize;
        let end = if c == 28 {
            259
        } else {
            LEN_BASE[c + 1] as usize
        };
        while l < end {
            t[l - 3] = c as u8;
            l += 1;
        }
        c += 1;
    }
    // 258 has its own code (28), not 227's last extra value.
    t[255] = 28;
    t
};

/// Distance code of `d - 1`: `[d - 1]` below 256, else `[256 + ((d - 1) >> 7)]`.
const DIST_CODE: [u8; 512] = {
    let mut t = [0u8; 512];
    let mut c = 0;
    while c < 30 {
        let mut d = DIST_BASE[c] as usize - 1;
        let end = if c == 29 {
            32768
        } else {
            DIST_BASE[c + 1] as usize - 1
        };
        while d < end {
            if d < 256 {
                t[d] = c as u8;
            } else {
                t[256 + (d >> 7)] = c as u8;
            }
            d += 1;
        }
        c += 1;
    }
    t
};

#[inline(always)]
fn dist_code(d1: u32) -> usize {
    if d1 < 256 {
        DIST_CODE[d1 as usize] as usize
    } else {
        DIST_CODE[256 + (d1 as usize >> 7)] as usize
    }
}

/// A deflate stream being written, one block of tokens at a time.
pub struct Block {
    tokens: Vec<u32>,
    lit: [u32; LITLEN],
    dist: [u32; DISTS],
    /// Compressed bytes; the caller drains `out.buf`.
    pub out: BitWriter,
    hb: Builder,
    /// Run-length coded code lengths of the block header being built.
    rle: Vec<(u8, u8)>,
    lit_len: [u8; LITLEN],
    lit_code: [u16; LITLEN],
    dist_len: [u8; DISTS],
    dist_code: [u16; DISTS],
    finished: bool,
}

impl Default for Block {
    fn default() -> Self {
        Block {
            tokens: Vec::with_capacity(BLOCK_TOKENS),
            lit: [0; LITLEN],
            dist: [0; DISTS],
            out: BitWriter::default(),
            hb: Builder::default(),
            rle: Vec::new(),
            lit_len: [0; LITLEN],
            lit_code: [0; LITLEN],
            dist_len: [0; DISTS],
            dist_code: [0; DISTS],
            finished: false,
        }
    }
}

impl Block {
    /// Start a new stream, keeping allocations.
    pub fn reset(&mut self) {
        self.tokens.clear();
        self.lit = [0; LITLEN];
        self.dist = [0; DISTS];
        self.out.clear();
        self.finished = false;
    }

    #[inline(always)]
    pub fn literal(&mut self, b: u8) {
        self.tokens.push(u32::from(b));
        self.lit[usize::from(b)] += 1;
    }

    /// A copy of `len` (3..=258) bytes from `dist` (1..=32768) back.
    #[inline(always)]
    pub fn copy(&mut self, len: usize, dist: usize) {
        debug_assert!((MIN_MATCH..=MAX_MATCH).contains(&len) && (1..=MAX_DIST).contains(&dist));
        let (l3, d1) = ((len - 3) as u32, (dist - 1) as u32);
        self.tokens.push(MATCH_BIT | (l3 << 15) | d1);
        self.lit[257 + LEN_CODE[l3 as usize] as usize] += 1;
        self.dist[dist_code(d1)] += 1;
    }

    /// The block is full: call [`flush`](Self::flush).
    #[inline(always)]
    pub fn is_full(&self) -> bool {
        self.tokens.len() >= BLOCK_TOKENS
    }

    pub fn pending_tokens(&self) -> usize {
        self.tokens.len()
    }

    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Write the tokens so far as one block (the last one if `last`: the
    /// stream then ends on a byte boundary).
    pub fn flush(&mut self, last: bool) {
        if self.tokens.is_empty() && !last {
            return;
        }
        self.lit[EOB] = 1;
        let dynamic_bits = self.build_dynamic();
        let fixed_bits = self.fixed_cost();
        if fixed_bits <= dynamic_bits {
            self.out.put(u32::from(last) | (1 << 1), 3);
            self.use_fixed();
        } else {
            self.out.put(u32::from(last) | (2 << 1), 3);
            self.write_dynamic_header();
        }
        self.write_tokens();
        self.tokens.clear();
        self.lit = [0; LITLEN];
        self.dist = [0; DISTS];
        if last {
            self.out.align();
            self.finished = true;
        }
    }

    /// Extra bits of every token, the same under any code.
    fn extra_bits(&self) -> u64 {
        let l: u64 = (0..29)
            .map(|c| u64::from(self.lit[257 + c]) * u64::from(LEN_EXTRA[c]))
            .sum();
        let d: u64 = (0..DISTS)
            .map(|c| u64::from(self.dist[c]) * u64::from(DIST_EXTRA[c]))
            .sum();
        l + d
    }

    fn fixed_cost(&self) -> u64 {
        let mut bits = self.extra_bits();
        for (s, &n) in self.lit.iter().enumerate() {
            bits += u64::from(n) * u64::from(fixed_lit_len(s));
        }
        bits + 5 * self.dist.iter().map(|&n| u64::from(n)).sum::<u64>()
    }

    fn use_fixed(&mut self) {
        // RFC 1951 3.2.6 defines the fixed codes over 288 and 32 symbols:
        // the two literal/length and distance symbols never used still take
        // their place in the canonical order (286 and 287 shift every 9-bit
        // code), so the codes are built over the full alphabets.
        let mut lens = [0u8; 288];
        let mut codes = [0u16; 288];
        for (s, l) in lens.iter_mut().enumerate() {
            *l = fixed_lit_len(s);
        }
        huffman::canonical_reversed(&lens, &mut codes);
        self.lit_len.copy_from_slice(&lens[..LITLEN]);
        self.lit_code.copy_from_slice(&codes[..LITLEN]);
        let mut codes = [0u16; 32];
        huffman::canonical_reversed(&[5; 32], &mut codes);
        self.dist_len = [5; DISTS];
        self.dist_code.copy_from_slice(&codes[..DISTS]);
    }

    /// Build the block's own codes; returns the block's size in bits with them
    /// (header included).
    fn build_dynamic(&mut self) -> u64 {
        // At least two codes in each alphabet (some decoders refuse a
        // one-code tree): EOB plus any literal, and two distance codes.
        let mut lit = self.lit;
        if lit.iter().filter(|&&n| n > 0).count() < 2 {
            lit[if lit[0] == 0 { 0 } else { 1 }] = 1;
        }
        let mut dist = self.dist;
        for d in 0..2 {
            if dist.iter().filter(|&&n| n > 0).count() < 2 && dist[d] == 0 {
                dist[d] = 1;
            }
        }
        self.hb.lengths(&lit, 15, &mut self.lit_len);
        self.hb.lengths(&dist, 15, &mut self.dist_len);
        huffman::canonical_reversed(&self.lit_len, &mut self.lit_code);
        huffman::canonical_reversed(&self.dist_len, &mut self.dist_code);
        let mut bits = self.extra_bits() + self.header(None);
        for s in 0..LITLEN {
            bits += u64::from(self.lit[s]) * u64::from(self.lit_len[s]);
        }
        for s in 0..DISTS {
            bits += u64::from(self.dist[s]) * u64::from(self.dist_len[s]);
        }
        bits
    }

    fn write_dynamic_header(&mut self) {
        let mut out = std::mem::take(&mut self.out);
        self.header(Some(&mut out));
        self.out = out;
    }

    /// The dynamic header for the current lengths: its size in bits, written
    /// to `out` when given.
    fn header(&mut self, out: Option<&mut BitWriter>) -> u64 {
        let hlit = 257
            + (257..LITLEN)
                .rev()
                .find(|&s| self.lit_len[s] > 0)
                .map_or(0, |s| s - 256);
        let hlit = hlit.max(257);
        let hdist = 1
            + (0..DISTS)
                .rev()
                .find(|&s| self.dist_len[s] > 0)
                .unwrap_or(0);
        // Run-length code the lengths: (symbol, extra value) pairs.
        let mut all = [0u8; LITLEN + DISTS];
        all[..hlit].copy_from_slice(&self.lit_len[..hlit]);
        all[hlit..hlit + hdist].copy_from_slice(&self.dist_len[..hdist]);
        let all = &all[..hlit + hdist];
        // Kept between blocks: no allocation per block.
        let mut rle = std::mem::take(&mut self.rle);
        rle.clear();
        let mut i = 0;
        while i < all.len() {
            let l = all[i];
            let mut run = 1;
            while i + run < all.len() && all[i + run] == l {
                run += 1;
            }
            i += run;
            if l == 0 {
                while run >= 11 {
                    let n = run.min(138);
                    rle.push((18, (n - 11) as u8));
                    run -= n;
                }
                if run >= 3 {
                    rle.push((17, (run - 3) as u8));
                    run = 0;
                }
            } else {
                rle.push((l, 0));
                run -= 1;
                while run >= 3 {
                    let n = run.min(6);
                    rle.push((16, (n - 3) as u8));
                    run -= n;
                }
            }
            for _ in 0..run {
                rle.push((l, 0));
            }
        }
        let mut cl_count = [0u32; 19];
        for &(s, _) in &rle {
            cl_count[usize::from(s)] += 1;
        }
        let mut cl_len = [0u8; 19];
        if cl_count.iter().filter(|&&n| n > 0).count() < 2 {
            cl_count[if cl_count[0] == 0 { 0 } else { 1 }] += 1;
        }
        self.hb.lengths(&cl_count, 7, &mut cl_len);
        let mut cl_code = [0u16; 19];
        huffman::canonical_reversed(&cl_len, &mut cl_code);
        let hclen = 4.max(
            1 + (0..19)
                .rev()
                .find(|&i| cl_len[CL_ORDER[i]] > 0)
                .unwrap_or(0),
        );
        let extra = |s: u8| match s {
            16 => 2,
            17 => 3,
            18 => 7,
            _ => 0,
        };
        let mut bits = 5 + 5 + 4 + 3 * hclen as u64;
        for &(s, _) in &rle {
            bits += u64::from(cl_len[usize::from(s)]) + extra(s);
        }
        if let Some(w) = out {
            w.put((hlit - 257) as u32, 5);
            w.put((hdist - 1) as u32, 5);
            w.put((hclen - 4) as u32, 4);
            for &o in &CL_ORDER[..hclen] {
                w.put(u32::from(cl_len[o]), 3);
            }
            for &(s, e) in &rle {
                let s = usize::from(s);
                w.put(u32::from(cl_code[s]), u32::from(cl_len[s]));
                let x = extra(s as u8);
                if x > 0 {
                    w.put(u32::from(e), x as u32);
                }
            }
        }
        self.rle = rle;
        bits
    }

    fn write_tokens(&mut self) {
        // Each copy length's code and extra bits, and each distance code's,
        // as one value and bit count for this block's codes.
        let mut len_bits = [(0u32, 0u32); 256];
        for (l3, e) in len_bits.iter_mut().enumerate() {
            let lc = LEN_CODE[l3] as usize;
            let ls = 257 + lc;
            let lv = l3 as u32 + 3 - u32::from(LEN_BASE[lc]);
            *e = (
                u32::from(self.lit_code[ls]) | (lv << self.lit_len[ls]),
                u32::from(self.lit_len[ls]) + u32::from(LEN_EXTRA[lc]),
            );
        }
        let w = &mut self.out;
        w.reserve(self.tokens.len() * 6 + 8);
        for &t in &self.tokens {
            if t & MATCH_BIT == 0 {
                let s = t as usize;
                w.put(u32::from(self.lit_code[s]), u32::from(self.lit_len[s]));
                continue;
            }
            let (lb, ln) = len_bits[((t >> 15) & 0xff) as usize];
            let d1 = t & 0x7fff;
            let dc = dist_code(d1);
            let dv = d1 + 1 - u32::from(DIST_BASE[dc]);
            let dl = u32::from(self.dist_len[dc]);
            let db = u32::from(self.dist_code[dc]) | (dv << dl);
            // At most 15 + 5 + 15 + 13 = 48 bits: two puts.
            w.put(lb, ln);
            w.put(db, dl + u32::from(DIST_EXTRA[dc]));
        }
        w.put(u32::from(self.lit_code[EOB]), u32::from(self.lit_len[EOB]));
    }
}

fn fixed_lit_len(s: usize) -> u8 {
    match s {
        0..=143 => 8,
        144..=255 => 9,
        256..=279 => 7,
        _ => 8,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn inflate(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::DeflateDecoder::new(data)
            .read_to_end(&mut out)
            .expect("valid deflate");
        out
    }

    #[test]
    fn fixed_codes_are_rfc_1951s() {
        let mut b = Block::default();
        b.use_fixed();
        // RFC 1951 3.2.6 (codes MSB first; ours are bit-reversed).
        let code = |s: usize| {
            let l = b.lit_len[s];
            (b.lit_code[s].reverse_bits() >> (16 - l), l)
        };
        assert_eq!(code(0), (0b0011_0000, 8));
        assert_eq!(code(143), (0b1011_1111, 8));
        assert_eq!(code(144), (0b1_1001_0000, 9));
        assert_eq!(code(255), (0b1_1111_1111, 9));
        assert_eq!(code(256), (0, 7));
        assert_eq!(code(279), (0b001_0111, 7));
        assert_eq!(code(280), (0b1100_0000, 8));
        assert_eq!(code(285), (0b1100_0101, 8));
        assert_eq!(b.dist_code[29].reverse_bits() >> 11, 29);
    }

    /// A block the fixed code wins, with literals above 143 (9-bit codes).
    #[test]
    fn fixed_block_with_high_literals_decodes() {
        let text: Vec<u8> = b"ab\xd2\xc3\x92\xffcd".to_vec();
        let mut d = Block::default();
        naive(&text, &mut d);
        assert_eq!(d.out.buf[0] & 0b110, 0b010, "a fixed block");
        assert_eq!(inflate(&d.out.buf), text);
    }

    #[test]
    fn code_tables() {
        for len in 3..=258usize {
            let c = LEN_CODE[len - 3] as usize;
            assert!(usize::from(LEN_BASE[c]) <= len);
            assert!(len - usize::from(LEN_BASE[c]) < 1 << LEN_EXTRA[c]);
        }
        assert_eq!(LEN_CODE[255], 28);
        for d in 1..=32768u32 {
            let c = dist_code(d - 1);
            assert!(u32::from(DIST_BASE[c]) <= d, "{d}");
            assert!(d - u32::from(DIST_BASE[c]) < 1 << DIST_EXTRA[c], "{d}");
        }
    }

    /// Literal-and-copy stream of `text` from a naive matcher.
    fn naive(text: &[u8], d: &mut Block) {
        let mut i = 0;
        while i < text.len() {
            let mut best = (0, 0);
            for dist in 1..=i.min(MAX_DIST).min(300) {
                let mut l = 0;
                while l < MAX_MATCH && i + l < text.len() && text[i + l] == text[i + l - dist] {
                    l += 1;
                }
                if l > best.0 {
                    best = (l, dist);
                }
            }
            if best.0 >= MIN_MATCH {
                d.copy(best.0, best.1);
                i += best.0;
            } else {
                d.literal(text[i]);
                i += 1;
            }
            if d.is_full() {
                d.flush(false);
            }
        }
        d.flush(true);
    }

    #[test]
    fn roundtrip_through_flate2() {
        let texts: Vec<Vec<u8>> = vec![
            Vec::new(),
            b"a".to_vec(),
            b"abcabcabcabcabcabcabcabc".to_vec(),
            (0..3000u32)
                .flat_map(|i| format!("m{{i=\"{}\"}} {}\n", i % 13, i * 7).into_bytes())
                .collect(),
            (0..70_000u32)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
                .collect(),
        ];
        let mut d = Block::default();
        for t in &texts {
            d.reset();
            naive(t, &mut d);
            assert!(d.is_finished());
            assert_eq!(&inflate(&d.out.buf), t);
        }
    }
}
