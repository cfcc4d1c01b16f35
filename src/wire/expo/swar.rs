//! Word-at-a-time (SWAR) byte scanners for the lexer: eight bytes per step in
//! plain `u64` arithmetic, portable to every target, no `unsafe`.
//!
//! Owns: "index of the first byte at or after `i` that is (not) in class C"
//! for the few classes the grammar scans over, and short-slice equality.
//! Every function is exact per byte: no operation carries across byte lanes
//! in a way that could flag a wrong position (each is checked against a
//! per-byte definition in the tests for every byte value at every lane).

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

const fn rep(b: u8) -> u64 {
    LO * b as u64
}

#[inline(always)]
fn load8(b: &[u8]) -> u64 {
    u64::from_le_bytes(b[..8].try_into().expect("8 bytes"))
}

/// High bit of each byte of `w` that equals zero. Only the lowest flagged
/// byte is exact (a borrow can flag a 0x01 byte above a zero byte), which is
/// all the scanners below use.
#[inline(always)]
fn zero(v: u64) -> u64 {
    v.wrapping_sub(LO) & !v & HI
}

#[inline(always)]
fn ge(v: u64, m: u8) -> u64 {
    (v + rep(0x80 - m)) & HI
}

#[inline(always)]
fn lt(v: u64, n: u8) -> u64 {
    !(v + rep(0x80 - n)) & HI
}

/// High bit of each byte set iff the byte is in `[a-zA-Z0-9_]`, plus `:`
/// when `colon` (exact per byte: no operation below carries across bytes).
#[inline(always)]
fn word_mask(w: u64, colon: bool) -> u64 {
    let t = w & !HI;
    let y = t | rep(0x20);
    let letters = ge(y, b'a') & lt(y, b'z' + 1);
    let hi_digit = if colon { b':' + 1 } else { b'9' + 1 };
    let digits = ge(t, b'0') & lt(t, hi_digit);
    let under = !((t ^ rep(b'_')) + rep(0x7f)) & HI;
    (letters | digits | under) & !w
}

#[inline(always)]
fn is_word(b: u8, colon: bool) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || (colon && b == b':')
}

#[inline(always)]
fn scan_word(l: &[u8], mut i: usize, colon: bool) -> usize {
    while i + 8 <= l.len() {
        let stop = !word_mask(load8(&l[i..]), colon) & HI;
        if stop != 0 {
            return i + (stop.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < l.len() && is_word(l[i], colon) {
        i += 1;
    }
    i
}

/// Index of the first byte at or after `i` that is not a metric-name byte
/// `[a-zA-Z0-9_:]` (or `l.len()`).
#[inline]
pub fn scan_name(l: &[u8], i: usize) -> usize {
    scan_word(l, i, true)
}

/// Index of the first byte at or after `i` that is not a label-name byte
/// `[a-zA-Z0-9_]` (or `l.len()`).
#[inline]
pub fn scan_label(l: &[u8], i: usize) -> usize {
    scan_word(l, i, false)
}

/// Is `b` a byte that ends a quoted label value scan: `"`, `\`, CR, LF, NUL
/// or non-ASCII?
#[inline(always)]
pub fn is_value_stop(b: u8) -> bool {
    matches!(b, b'"' | b'\\' | b'\r' | b'\n' | 0) || b >= 0x80
}

/// Index of the first `"`, `\`, CR, LF, NUL or non-ASCII byte at or after
/// `i` (or `l.len()`).
#[inline]
pub fn scan_value(l: &[u8], mut i: usize) -> usize {
    while i + 8 <= l.len() {
        let w = load8(&l[i..]);
        let m = zero(w ^ rep(b'"'))
            | zero(w ^ rep(b'\\'))
            | zero(w ^ rep(b'\r'))
            | zero(w ^ rep(b'\n'))
            | zero(w)
            | (w & HI);
        if m != 0 {
            return i + (m.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < l.len() && !is_value_stop(l[i]) {
        i += 1;
    }
    i
}

/// Is `b` a byte that ends a plain run of HELP text: `\`, CR, NUL or
/// non-ASCII?
#[inline(always)]
pub fn is_help_stop(b: u8) -> bool {
    matches!(b, b'\\' | b'\r' | 0) || b >= 0x80
}

/// Index of the first `\`, CR, NUL or non-ASCII byte at or after `i` (or
/// `l.len()`).
#[inline]
pub fn scan_help(l: &[u8], mut i: usize) -> usize {
    while i + 8 <= l.len() {
        let w = load8(&l[i..]);
        let m = zero(w ^ rep(b'\\')) | zero(w ^ rep(b'\r')) | zero(w) | (w & HI);
        if m != 0 {
            return i + (m.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < l.len() && !is_help_stop(l[i]) {
        i += 1;
    }
    i
}

/// Index of the first blank (space, tab) or `\n` at or after `i` (or
/// `l.len()`): the end of a sample's value token.
#[inline]
pub fn scan_token(l: &[u8], mut i: usize) -> usize {
    while i + 8 <= l.len() {
        let w = load8(&l[i..]);
        let m = zero(w ^ rep(b' ')) | zero(w ^ rep(b'\t')) | zero(w ^ rep(b'\n'));
        if m != 0 {
            return i + (m.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < l.len() && !matches!(l[i], b' ' | b'\t' | b'\n') {
        i += 1;
    }
    i
}

/// Position of the first `\n`.
#[inline]
pub fn find_nl(s: &[u8]) -> Option<usize> {
    let mut i = 0;
    while i + 8 <= s.len() {
        let z = zero(load8(&s[i..]) ^ rep(b'\n'));
        if z != 0 {
            return Some(i + (z.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    s[i..].iter().position(|&b| b == b'\n').map(|p| i + p)
}

/// Byte equality without a libc call (names are short; memcmp's call
/// overhead dominated the index profile).
#[inline]
pub fn eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i + 8 <= a.len() {
        if load8(&a[i..]) != load8(&b[i..]) {
            return false;
        }
        i += 8;
    }
    a[i..].iter().zip(&b[i..]).all(|(x, y)| x == y)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every byte value at every lane, with word-byte fillers around it, and
    /// the short tails: each scanner against its per-byte definition.
    #[test]
    fn scanners_match_their_definitions() {
        type Scan = fn(&[u8], usize) -> usize;
        type Stop = fn(u8) -> bool;
        let cases: [(&str, Scan, Stop); 5] = [
            ("help", scan_help, is_help_stop),
            ("name", scan_name, |c| !is_word(c, true)),
            ("label", scan_label, |c| !is_word(c, false)),
            ("value", scan_value, is_value_stop),
            ("token", scan_token, |c| matches!(c, b' ' | b'\t' | b'\n')),
        ];
        for (what, scan, stop) in cases {
            for b in 0..=255u8 {
                for len in [3usize, 8, 13] {
                    for pos in 0..len {
                        let mut w = b"abcdefghijklm"[..len].to_vec();
                        w[pos] = b;
                        for from in [0, 1] {
                            let naive = (from..len).find(|&k| stop(w[k])).unwrap_or(len);
                            assert_eq!(scan(&w, from), naive, "{what}: {b:#x} at {pos} of {len}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn find_nl_and_eq() {
        for len in 0..20 {
            for pos in 0..len {
                let mut v = vec![b'x'; len];
                v[pos] = b'\n';
                if pos + 1 < len {
                    v[pos + 1] = b'\n';
                }
                assert_eq!(find_nl(&v), Some(pos));
            }
            assert_eq!(find_nl(&vec![b'x'; len]), None);
        }
        assert!(eq(b"kata_guest_load", b"kata_guest_load"));
        assert!(!eq(b"kata_guest_load", b"kata_guest_loaf"));
        assert!(!eq(b"abc", b"abcd"));
        assert!(eq(b"", b""));
    }
}
