//! Recycled receive buffers for shim bodies.
//!
//! Owns: buffers between fetch rounds. A round takes one per sandbox sized
//! for that sandbox's last body, the exposition keeps it while responses
//! stream from the snapshot, and it comes back when the snapshot is
//! recycled. Pooled buffers keep their length (initialised, stale bytes),
//! so refilling them costs no zeroing.

/// Buffers over this are not pooled: one huge body must not pin memory.
pub const MAX_POOLED: usize = 4 << 20;

#[derive(Default)]
pub struct BufPool {
    bufs: Vec<Vec<u8>>,
}

impl BufPool {
    /// A buffer for a body of about `hint` bytes: the smallest pooled one
    /// that is big enough, else the biggest (it will grow). A far too big
    /// one is shrunk to `hint`, giving memory back.
    pub fn take(&mut self, hint: usize, slack: usize) -> Vec<u8> {
        let fit = self
            .bufs
            .iter()
            .enumerate()
            .filter(|(_, b)| b.len() >= hint)
            .min_by_key(|(_, b)| b.len())
            .map(|(i, _)| i);
        let i = fit.or_else(|| (0..self.bufs.len()).max_by_key(|&i| self.bufs[i].len()));
        let mut buf = i.map(|i| self.bufs.swap_remove(i)).unwrap_or_default();
        if buf.len() > hint + hint / 2 + slack {
            buf.truncate(hint);
            buf.shrink_to_fit();
        }
        buf
    }

    /// Give a buffer back; at most `max` are kept (the node's sandboxes
    /// plus a few), empty and oversized ones are dropped.
    pub fn put(&mut self, buf: Vec<u8>, max: usize) {
        if buf.capacity() == 0 || buf.len() > MAX_POOLED || self.bufs.len() >= max {
            return;
        }
        self.bufs.push(buf);
    }

    /// Release everything (after a quiet period).
    pub fn clear(&mut self) {
        self.bufs = Vec::new();
    }

    pub fn len(&self) -> usize {
        self.bufs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bufs.is_empty()
    }

    /// Bytes held by pooled buffers.
    pub fn bytes(&self) -> usize {
        self.bufs.iter().map(Vec::capacity).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn best_fit_then_biggest_and_bounded() {
        let mut p = BufPool::default();
        p.put(vec![0; 100], 8);
        p.put(vec![0; 300], 8);
        p.put(vec![0; 200], 8);
        p.put(Vec::new(), 8);
        p.put(vec![0; MAX_POOLED + 1], 8);
        assert_eq!(p.len(), 3, "empty and oversized buffers are not kept");
        assert_eq!(p.take(150, 1000).len(), 200, "smallest that fits");
        assert_eq!(p.take(1000, 1000).len(), 300, "else the biggest");
        let b = p.take(10, 0);
        assert_eq!(b.len(), 10, "far too big: shrunk to the hint");
        assert!(p.is_empty());
        assert!(p.take(10, 0).is_empty());
        for _ in 0..5 {
            p.put(vec![0; 1], 2);
        }
        assert_eq!(p.len(), 2);
        p.clear();
        assert_eq!(p.bytes(), 0);
    }
}
