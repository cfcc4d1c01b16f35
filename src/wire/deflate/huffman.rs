//! Length-limited prefix codes from symbol counts: the code lengths both
//! deflate (limit 15, code-length codes 7) and zstd's literal tables (limit
//! 11) need.
//!
//! Owns: optimal lengths (Moffat and Katajainen's in-place algorithm over the
//! counts sorted once), the Kraft-sum repair when the limit cuts the tree,
//! and deflate's canonical (bit-reversed) codes. No I/O, no allocation after
//! the first use of a [`Builder`].

/// Reusable working memory of [`Builder::lengths`].
#[derive(Default)]
pub struct Builder {
    /// `(count << 16) | symbol`, sorted.
    sorted: Vec<u64>,
    depth: Vec<u32>,
}

impl Builder {
    /// Code lengths of a prefix code for `counts` into `lens` (same length),
    /// none over `limit`. Unused symbols get 0. With a single used symbol it
    /// gets length 1 (callers that need two codes add a second symbol).
    /// Returns the largest length.
    pub fn lengths(&mut self, counts: &[u32], limit: u8, lens: &mut [u8]) -> u8 {
        debug_assert_eq!(counts.len(), lens.len());
        debug_assert!(counts.len() <= 1 << 16 && (1..=15).contains(&limit));
        lens.fill(0);
        self.sorted.clear();
        self.sorted.extend(
            counts
                .iter()
                .enumerate()
                .filter(|&(_, &c)| c > 0)
                .map(|(s, &c)| (u64::from(c) << 16) | s as u64),
        );
        let n = self.sorted.len();
        match n {
            0 => return 0,
            1 => {
                lens[(self.sorted[0] & 0xffff) as usize] = 1;
                return 1;
            }
            _ => {}
        }
        self.sorted.sort_unstable();
        self.depth.clear();
        self.depth.extend(
            self.sorted
                .iter()
                .map(|&k| (k >> 16).min(u64::from(u32::MAX >> 1)) as u32),
        );
        minimum_redundancy(&mut self.depth);
        // depth[i] is the length of the i-th least frequent symbol
        // (non-increasing). Count lengths, then cut at `limit`.
        let mut count = [0u32; 64];
        for &d in &self.depth {
            count[d.min(63) as usize] += 1;
        }
        let limit = usize::from(limit);
        let max = (1..64).rev().find(|&l| count[l] > 0).unwrap_or(1);
        if max > limit {
            for l in limit + 1..=max {
                count[limit] += count[l];
                count[l] = 0;
            }
            // Kraft sum in units of 2^-limit; over-full after folding.
            let mut total: u64 = (1..=limit)
                .map(|l| u64::from(count[l]) << (limit - l))
                .sum();
            while total > 1u64 << limit {
                // Take a leaf off the deepest level, lengthen one shorter leaf.
                count[limit] -= 1;
                if let Some(l) = (1..limit).rev().find(|&l| count[l] > 0) {
                    count[l] -= 1;
                    count[l + 1] += 2;
                }
                total -= 1;
            }
        }
        // Longest codes to the least frequent symbols.
        let mut i = 0;
        let mut top = 0;
        for l in (1..=limit.max(max).min(63)).rev() {
            for _ in 0..count[l] {
                lens[(self.sorted[i] & 0xffff) as usize] = l as u8;
                i += 1;
            }
            if count[l] > 0 {
                top = top.max(l);
            }
        }
        top as u8
    }
}

/// Moffat and Katajainen, "In-place calculation of minimum-redundancy codes"
/// (1995): `a` holds counts sorted ascending; on return, code lengths.
fn minimum_redundancy(a: &mut [u32]) {
    let n = a.len();
    debug_assert!(n >= 2);
    // Phase 1: internal node weights, leaves consumed in order.
    a[0] += a[1];
    let (mut root, mut leaf) = (0usize, 2usize);
    for next in 1..n - 1 {
        if leaf >= n || a[root] < a[leaf] {
            a[next] = a[root];
            a[root] = next as u32;
            root += 1;
        } else {
            a[next] = a[leaf];
            leaf += 1;
        }
        if leaf >= n || (root < next && a[root] < a[leaf]) {
            a[next] += a[root];
            a[root] = next as u32;
            root += 1;
        } else {
            a[next] += a[leaf];
            leaf += 1;
        }
    }
    // Phase 2: internal node depths.
    a[n - 2] = 0;
    for next in (0..n - 2).rev() {
        a[next] = a[a[next] as usize] + 1;
    }
    // Phase 3: leaf depths.
    let (mut avbl, mut used, mut depth) = (1i64, 0i64, 0u32);
    let mut root = n as i64 - 2;
    let mut next = n as i64 - 1;
    while avbl > 0 {
        while root >= 0 && a[root as usize] == depth {
            used += 1;
            root -= 1;
        }
        while avbl > used {
            a[next as usize] = depth;
            next -= 1;
            avbl -= 1;
        }
        avbl = 2 * used;
        depth += 1;
        used = 0;
    }
}

/// Deflate's canonical codes (RFC 1951 3.2.2) for `lens`, bit-reversed for
/// LSB-first output, into `codes`.
pub fn canonical_reversed(lens: &[u8], codes: &mut [u16]) {
    let mut count = [0u16; 16];
    for &l in lens {
        count[usize::from(l)] += 1;
    }
    count[0] = 0;
    let mut next = [0u16; 16];
    let mut code = 0u16;
    for bits in 1..16 {
        code = (code + count[bits - 1]) << 1;
        next[bits] = code;
    }
    for (c, &l) in codes.iter_mut().zip(lens) {
        if l == 0 {
            *c = 0;
            continue;
        }
        let v = next[usize::from(l)];
        next[usize::from(l)] += 1;
        *c = v.reverse_bits() >> (16 - l);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kraft(lens: &[u8]) -> f64 {
        lens.iter()
            .filter(|&&l| l > 0)
            .map(|&l| 0.5f64.powi(i32::from(l)))
            .sum()
    }

    #[test]
    fn optimal_without_limit() {
        let mut b = Builder::default();
        let counts = [5u32, 9, 12, 13, 16, 45];
        let mut lens = [0u8; 6];
        b.lengths(&counts, 15, &mut lens);
        // The textbook example: 45 gets 1 bit, the rest 3 or 4.
        assert_eq!(lens, [4, 4, 3, 3, 3, 1]);
        assert_eq!(kraft(&lens), 1.0);
    }

    #[test]
    fn limit_is_kept_and_code_complete() {
        let mut b = Builder::default();
        // Fibonacci counts give the deepest tree.
        let mut counts = vec![1u32, 1];
        while counts.len() < 30 {
            let n = counts.len();
            counts.push(counts[n - 1] + counts[n - 2]);
        }
        for limit in [7u8, 11, 15] {
            let mut lens = vec![0u8; counts.len()];
            let top = b.lengths(&counts, limit, &mut lens);
            assert!(top <= limit);
            assert!(lens.iter().all(|&l| (1..=limit).contains(&l)));
            assert_eq!(kraft(&lens), 1.0, "limit {limit}");
            // More frequent symbols never get longer codes.
            for w in lens.windows(2) {
                assert!(w[0] >= w[1]);
            }
        }
    }

    #[test]
    fn zero_and_single_symbols() {
        let mut b = Builder::default();
        let mut lens = [9u8; 4];
        assert_eq!(b.lengths(&[0, 0, 0, 0], 15, &mut lens), 0);
        assert_eq!(lens, [0; 4]);
        b.lengths(&[0, 7, 0, 0], 15, &mut lens);
        assert_eq!(lens, [0, 1, 0, 0]);
    }

    #[test]
    fn canonical_codes_match_rfc_example() {
        // RFC 1951 3.2.2: lengths (3,3,3,3,3,2,4,4) give 010..110, 00, 1110, 1111.
        let lens = [3u8, 3, 3, 3, 3, 2, 4, 4];
        let mut codes = [0u16; 8];
        canonical_reversed(&lens, &mut codes);
        let want = [0b010u16, 0b011, 0b100, 0b101, 0b110, 0b00, 0b1110, 0b1111];
        for i in 0..8 {
            let l = lens[i];
            assert_eq!(codes[i].reverse_bits() >> (16 - l), want[i], "symbol {i}");
        }
    }
}
