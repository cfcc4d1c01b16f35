//! A generational slab: connections and shim exchanges by [`Key`].
//!
//! A key carries its slot's generation, so a key kept for a connection that
//! was closed and whose slot was reused is recognised as stale and misses
//! (rust-vmm event-manager's guard): an event or a timer meant for the old
//! connection can never reach the new one.

/// A slot and its generation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    pub slot: u32,
    pub generation: u32,
}

/// Generations wrap within this mask (the token layout has 28 bits).
pub const GEN_MASK: u32 = (1 << 28) - 1;

/// Slots with generations; removal bumps the generation.
pub struct Slab<T> {
    slots: Vec<(u32, Option<T>)>,
    free: Vec<u32>,
    len: usize,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Slab {
            slots: Vec::new(),
            free: Vec::new(),
            len: 0,
        }
    }
}

impl<T> Slab<T> {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The key the next `insert` will return.
    pub fn next_key(&self) -> Key {
        match self.free.last() {
            Some(&slot) => Key {
                slot,
                generation: self.slots[slot as usize].0,
            },
            None => Key {
                slot: self.slots.len() as u32,
                generation: 0,
            },
        }
    }

    pub fn insert(&mut self, v: T) -> Key {
        let key = self.next_key();
        if key.slot as usize == self.slots.len() {
            self.slots.push((0, Some(v)));
        } else {
            self.free.pop();
            self.slots[key.slot as usize].1 = Some(v);
        }
        self.len += 1;
        key
    }

    pub fn get(&self, k: Key) -> Option<&T> {
        match self.slots.get(k.slot as usize) {
            Some((g, Some(v))) if *g == k.generation => Some(v),
            _ => None,
        }
    }

    pub fn get_mut(&mut self, k: Key) -> Option<&mut T> {
        match self.slots.get_mut(k.slot as usize) {
            Some((g, Some(v))) if *g == k.generation => Some(v),
            _ => None,
        }
    }

    pub fn remove(&mut self, k: Key) -> Option<T> {
        let (g, slot) = self.slots.get_mut(k.slot as usize)?;
        if *g != k.generation || slot.is_none() {
            return None;
        }
        let v = slot.take();
        *g = (*g + 1) & GEN_MASK;
        self.free.push(k.slot);
        self.len -= 1;
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_keys_miss() {
        let mut s = Slab::default();
        let a = s.insert("a");
        assert_eq!(s.get(a), Some(&"a"));
        assert_eq!(s.remove(a), Some("a"));
        let b = s.insert("b");
        assert_eq!(a.slot, b.slot);
        assert_ne!(a.generation, b.generation);
        assert_eq!(s.get(a), None);
        assert_eq!(s.remove(a), None);
        assert_eq!(s.get(b), Some(&"b"));
        assert_eq!(s.len(), 1);
    }
}
