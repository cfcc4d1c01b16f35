//! The mio token layout: what an event is for.
//!
//! A token carries the kind of source, the slot and the slot's generation
//! ([`crate::state::slab`]), so an event for a socket that was closed and
//! whose slot was reused within the same batch is recognised as stale.

use crate::state::slab::{GEN_MASK, Key};
use mio::Token;

/// What a token refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    Listener,
    Inotify,
    Signal,
    Cri,
    Client(Key),
    Shim(Key),
}

const KIND_SHIFT: u32 = 60;
const GEN_SHIFT: u32 = 32;

pub(crate) fn token(src: Source) -> Token {
    let (k, key) = match src {
        Source::Listener => (0u64, None),
        Source::Inotify => (1, None),
        Source::Signal => (2, None),
        Source::Cri => (3, None),
        Source::Client(key) => (4, Some(key)),
        Source::Shim(key) => (5, Some(key)),
    };
    let low = key.map_or(0, |k| {
        u64::from(k.generation & GEN_MASK) << GEN_SHIFT | u64::from(k.slot)
    });
    Token(((k << KIND_SHIFT) | low) as usize)
}

pub(crate) fn source(t: Token) -> Option<Source> {
    let v = t.0 as u64;
    let key = Key {
        slot: v as u32,
        generation: ((v >> GEN_SHIFT) as u32) & GEN_MASK,
    };
    Some(match v >> KIND_SHIFT {
        0 => Source::Listener,
        1 => Source::Inotify,
        2 => Source::Signal,
        3 => Source::Cri,
        4 => Source::Client(key),
        5 => Source::Shim(key),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_roundtrip() {
        for s in [
            Source::Listener,
            Source::Inotify,
            Source::Signal,
            Source::Cri,
            Source::Client(Key {
                slot: 7,
                generation: 3,
            }),
            Source::Shim(Key {
                slot: u32::MAX,
                generation: GEN_MASK,
            }),
        ] {
            assert_eq!(source(token(s)), Some(s));
        }
        assert_eq!(source(Token(usize::MAX)), None);
    }
}
