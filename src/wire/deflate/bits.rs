//! LSB-first bit writer (deflate's bit order) into a growable byte buffer.

#[derive(Default)]
pub struct BitWriter {
    pub buf: Vec<u8>,
    acc: u64,
    n: u32,
}

impl BitWriter {
    /// Append the low `len` bits of `v` (`len` <= 32, higher bits of `v` zero).
    #[inline(always)]
    pub fn put(&mut self, v: u32, len: u32) {
        debug_assert!(len <= 32 && (len == 32 || v >> len == 0));
        self.acc |= u64::from(v) << self.n;
        self.n += len;
        if self.n >= 32 {
            self.buf.extend_from_slice(&(self.acc as u32).to_le_bytes());
            self.acc >>= 32;
            self.n -= 32;
        }
    }

    /// Room for `n` more bytes without growing.
    pub fn reserve(&mut self, n: usize) {
        self.buf.reserve(n);
    }

    /// Pad with zero bits to a byte boundary and write out every whole byte.
    pub fn align(&mut self) {
        while self.n > 0 {
            self.buf.push(self.acc as u8);
            self.acc >>= 8;
            self.n = self.n.saturating_sub(8);
        }
        self.acc = 0;
    }

    /// Forget everything written.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.acc = 0;
        self.n = 0;
    }

    /// Bits written so far (including the ones not yet in `buf`).
    pub fn bit_len(&self) -> u64 {
        self.buf.len() as u64 * 8 + u64::from(self.n)
    }
}

#[cfg(test)]
mod tests {
    use super::BitWriter;

    #[test]
    fn lsb_first_packing() {
        let mut w = BitWriter::default();
        w.put(0b1, 1);
        w.put(0b10, 2);
        w.put(0b11111, 5);
        w.put(0xabcd, 16);
        w.put(0xffff_ffff, 32);
        w.put(0b101, 3);
        assert_eq!(w.bit_len(), 59);
        w.align();
        assert_eq!(
            w.buf,
            [0b1111_1101, 0xcd, 0xab, 0xff, 0xff, 0xff, 0xff, 0b101]
        );
    }
}
