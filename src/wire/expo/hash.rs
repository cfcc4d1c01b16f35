//! A small seeded hash for short byte strings, and the open-addressing tables the
//! indexer uses (family names, series identities).
//!
//! Owns: hashing and slot management only. Key equality is decided by the caller
//! (the tables store hashes and `u32` payloads, never keys), so the same table
//! serves names that live in a shim body and names in an arena.
//!
//! The hash is not collision resistant on purpose (speed); every table lookup is
//! confirmed by a byte comparison done by the caller, so a collision costs a
//! comparison, never a wrong answer. The seed is per process (chosen by the
//! daemon) so a guest cannot precompute long probe chains.

const K1: u64 = 0x9E37_79B9_7F4A_7C15;
const K2: u64 = 0xBF58_476D_1CE4_E5B9;

#[inline]
fn fmix(mut h: u64) -> u64 {
    h ^= h >> 32;
    h = h.wrapping_mul(K2);
    h ^= h >> 29;
    h
}

/// Hash `bytes` with `seed`. Two independent lanes halve the dependency
/// chain on the ~50-byte series keys the indexer hashes per line.
#[inline]
pub fn hash_bytes(seed: u64, bytes: &[u8]) -> u64 {
    let n = bytes.len();
    let mut a = seed ^ (n as u64).wrapping_mul(K1);
    let mut b = seed.rotate_left(32) ^ K2;
    let mut i = 0;
    while i + 16 <= n {
        a = (a ^ load8(&bytes[i..])).wrapping_mul(K1).rotate_left(29);
        b = (b ^ load8(&bytes[i + 8..]))
            .wrapping_mul(K2)
            .rotate_left(31);
        i += 16;
    }
    if i + 8 <= n {
        a = (a ^ load8(&bytes[i..])).wrapping_mul(K1).rotate_left(29);
        i += 8;
    }
    if i < n {
        // Tail: the last 8 bytes when there are that many (overlapping the
        // previous word), else the short remainder assembled byte by byte.
        let w = if n >= 8 {
            load8(&bytes[n - 8..])
        } else {
            bytes
                .iter()
                .rev()
                .fold(0u64, |w, &b| (w << 8) | u64::from(b))
        };
        b = (b ^ w).wrapping_mul(K2).rotate_left(31);
    }
    fmix(a ^ b.rotate_left(17))
}

#[inline(always)]
fn load8(b: &[u8]) -> u64 {
    u64::from_le_bytes(b[..8].try_into().expect("8 bytes"))
}

/// Mix a value so that sums of mixed values are order independent but still
/// spread (used to combine label-pair hashes).
#[inline]
pub fn mix(h: u64) -> u64 {
    fmix(h.wrapping_mul(K2) ^ K1)
}

/// Open-addressing multimap from a hash to `u32` payloads.
///
/// Lookups return candidates one by one (`probe`), the caller confirms each by
/// comparing keys (only 32 bits of the hash are stored, as a tag). `clear`
/// keeps the allocation.
#[derive(Default)]
pub struct HashTable {
    /// `(hash tag, payload + 1)`; payload 0 marks an empty slot.
    slots: Vec<(u32, u32)>,
    len: usize,
}

#[inline]
fn tag(hash: u64) -> u32 {
    (hash >> 32) as u32
}

impl HashTable {
    pub fn clear(&mut self) {
        if self.len > 0 {
            self.slots.fill((0, 0));
            self.len = 0;
        }
    }

    /// Make room for `n` more entries without rehashing on the way.
    pub fn reserve(&mut self, n: usize) {
        let need = (self.len + n) * 2;
        if need > self.slots.len() {
            self.grow(need);
        }
    }

    fn grow(&mut self, min: usize) {
        let cap = min.next_power_of_two().max(16);
        let old = std::mem::replace(&mut self.slots, vec![(0, 0); cap]);
        let mask = cap - 1;
        for (t, v) in old.into_iter().filter(|s| s.1 != 0) {
            // Slot position comes from the low bits, which were not stored:
            // rebuild from the tag's own bits (positions only need spreading).
            let mut i = spread(t) & mask;
            while self.slots[i].1 != 0 {
                i = (i + 1) & mask;
            }
            self.slots[i] = (t, v);
        }
    }

    /// Iterate over payloads stored under `hash` (candidates; confirm by key).
    #[inline]
    pub fn probe(&self, hash: u64) -> Probe<'_> {
        Probe {
            table: self,
            pos: spread(tag(hash)),
            tag: tag(hash),
            done: self.slots.is_empty(),
        }
    }

    /// Insert `payload` under `hash` (duplicates allowed; the caller checks first).
    pub fn insert(&mut self, hash: u64, payload: u32) {
        if (self.len + 1) * 2 > self.slots.len() {
            self.grow((self.len + 1) * 2);
        }
        let mask = self.slots.len() - 1;
        let mut i = spread(tag(hash)) & mask;
        while self.slots[i].1 != 0 {
            i = (i + 1) & mask;
        }
        self.slots[i] = (tag(hash), payload.wrapping_add(1));
        self.len += 1;
    }
}

/// Slot position from a tag (a multiply spreads all 32 bits into the low ones).
#[inline]
fn spread(tag: u32) -> usize {
    (u64::from(tag).wrapping_mul(K1) >> 20) as usize
}

pub struct Probe<'a> {
    table: &'a HashTable,
    pos: usize,
    tag: u32,
    done: bool,
}

impl Iterator for Probe<'_> {
    type Item = u32;
    #[inline]
    fn next(&mut self) -> Option<u32> {
        if self.done {
            return None;
        }
        let mask = self.table.slots.len() - 1;
        loop {
            let (h, v) = self.table.slots[self.pos & mask];
            self.pos = (self.pos & mask) + 1;
            if v == 0 {
                self.done = true;
                return None;
            }
            if h == self.tag {
                return Some(v - 1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_depends_on_seed_len_and_bytes() {
        assert_ne!(hash_bytes(1, b"abc"), hash_bytes(2, b"abc"));
        assert_ne!(hash_bytes(1, b"abc"), hash_bytes(1, b"abd"));
        assert_ne!(hash_bytes(1, b""), hash_bytes(1, b"\0"));
        assert_ne!(hash_bytes(1, b"abcdefgh"), hash_bytes(1, b"abcdefgh\0"));
        assert_eq!(hash_bytes(7, b"same"), hash_bytes(7, b"same"));
    }

    #[test]
    fn table_multimap_and_growth() {
        let mut t = HashTable::default();
        assert_eq!(t.probe(5).count(), 0);
        let key = |k: u32| u64::from(k) << 32;
        for i in 0..1000u32 {
            t.insert(key(i % 10), i);
        }
        let mut got: Vec<u32> = t.probe(key(3)).collect();
        got.sort_unstable();
        assert_eq!(got, (0..100).map(|k| k * 10 + 3).collect::<Vec<_>>());
        t.clear();
        assert_eq!(t.probe(key(3)).count(), 0);
        t.insert(key(3), 0);
        assert_eq!(t.probe(key(3)).collect::<Vec<_>>(), vec![0]);
    }
}
