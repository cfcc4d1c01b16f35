//! Response bodies and the bounded output buffer they are written through.
//!
//! Owns: [`OutBuf`] (fixed room: a slow reader gets backpressure, never a
//! growing buffer), the `/metrics` body ([`MetricsBody`]: the engine's
//! cursor over a snapshot, optionally through gzip or zstd, optionally
//! chunked),
//! and the relayed body filled from a shim by the reactor.
//!
//! Must not: touch sockets, read the clock, log.

use super::scraper::Snapshot;
use crate::wire::deflate::GzipStream;
use crate::wire::expo::{Cursor, Exposition};
use crate::wire::gzip::GzipPump;
use crate::wire::http::request::Coding;
use crate::wire::http::response::{self, CHUNK_END, CHUNK_HEAD_ROOM, LAST_CHUNK};
#[cfg(feature = "zstd")]
use crate::wire::zstd::ZstdPump;
use std::rc::Rc;

/// Output buffer size for streamed bodies.
pub const OUT_BUF: usize = 64 * 1024;

/// Pending output bytes. Heads and small answers are pushed whole;
/// streamed bodies are refilled only when it is empty, so it never holds
/// more than `OUT_BUF` plus one head.
#[derive(Default)]
pub struct OutBuf {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl OutBuf {
    pub fn pending(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    pub fn len(&self) -> usize {
        self.end - self.start
    }

    /// Append bytes (heads, small bodies).
    pub fn push(&mut self, data: &[u8]) {
        if self.is_empty() {
            self.start = 0;
            self.end = 0;
        }
        if self.end + data.len() > self.buf.len() {
            self.buf.resize(self.end + data.len(), 0);
        }
        self.buf[self.end..self.end + data.len()].copy_from_slice(data);
        self.end += data.len();
    }

    pub fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.end);
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Free space after the pending bytes, at least `OUT_BUF` in all.
    pub fn space(&mut self) -> &mut [u8] {
        if self.buf.len() < OUT_BUF {
            self.buf.resize(OUT_BUF, 0);
        }
        if self.start > 0 && self.end - self.start < OUT_BUF / 2 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        &mut self.buf[self.end..]
    }

    pub fn commit(&mut self, n: usize) {
        self.end += n;
    }

    /// Drop a big allocation (the connection goes idle).
    pub fn release(&mut self) {
        if self.is_empty() && self.buf.len() > 4096 {
            self.buf = Vec::new();
        }
    }

    /// Bytes held (allocation), for tests and accounting.
    pub fn capacity(&self) -> usize {
        self.buf.len()
    }
}

/// A compressor a `/metrics` body is pulled through.
pub enum Pump {
    /// The renderer-led deflate (`--gzip-level auto`).
    Guided(Box<GzipStream>),
    /// miniz_oxide at a level.
    Gzip(GzipPump),
    #[cfg(feature = "zstd")]
    Zstd(ZstdPump),
}

impl Pump {
    pub fn coding(&self) -> Coding {
        match self {
            Pump::Guided(_) | Pump::Gzip(_) => Coding::Gzip,
            #[cfg(feature = "zstd")]
            Pump::Zstd(_) => Coding::Zstd,
        }
    }

    /// Prepare for another response, keeping the allocations.
    pub fn reset(&mut self) {
        match self {
            Pump::Guided(p) => p.reset(),
            Pump::Gzip(p) => p.reset(),
            #[cfg(feature = "zstd")]
            Pump::Zstd(p) => p.reset(),
        }
    }

    /// Compressed bytes into `out` from what `cursor` renders; 0 at the end.
    #[inline]
    pub fn fill(&mut self, out: &mut [u8], cursor: &mut Cursor, expo: &Exposition) -> usize {
        match self {
            Pump::Guided(p) => p.fill(out, |b, h| cursor.fill_marked(expo, b, h)),
            Pump::Gzip(p) => p.fill(out, |b| cursor.fill(expo, b)),
            #[cfg(feature = "zstd")]
            Pump::Zstd(p) => p.fill(out, |b| cursor.fill(expo, b)),
        }
    }
}

/// A `/metrics` body rendered from a snapshot.
pub struct MetricsBody {
    pub snap: Rc<Snapshot>,
    pub cursor: Cursor,
    pub pump: Option<Pump>,
    pub chunked: bool,
    finished: bool,
}

impl MetricsBody {
    pub fn new(snap: Rc<Snapshot>, cursor: Cursor, pump: Option<Pump>, chunked: bool) -> Self {
        MetricsBody {
            snap,
            cursor,
            pump,
            chunked,
            finished: false,
        }
    }

    /// Refill `out` (which is empty). Returns false once everything,
    /// the last-chunk marker included, has been queued.
    ///
    /// Not inlined: inlined into the reactor's large driving function, the
    /// compressor's hot loop (itself inlined here) lost ~3% to worse code
    /// generation (callgrind, 100 sandboxes, gzip).
    #[inline(never)]
    fn refill(&mut self, out: &mut OutBuf) -> bool {
        if self.finished {
            return false;
        }
        let expo = &self.snap.expo;
        let space = out.space();
        let (head_room, tail_room) = if self.chunked {
            (CHUNK_HEAD_ROOM, CHUNK_END.len())
        } else {
            (0, 0)
        };
        let area_end = space.len() - tail_room;
        let area = &mut space[head_room..area_end];
        let cursor = &mut self.cursor;
        let n = match self.pump.as_mut() {
            Some(pump) => pump.fill(area, cursor, expo),
            None => cursor.fill(expo, area),
        };
        if n == 0 {
            self.finished = true;
            if self.chunked {
                out.push(LAST_CHUNK);
            }
            return !out.is_empty();
        }
        if self.chunked {
            let start = response::chunk_head(&mut space[..head_room], n);
            space[head_room + n..head_room + n + tail_room].copy_from_slice(CHUNK_END);
            out.commit(head_room + n + tail_room);
            // Skip the unused part of the head room.
            out.consume(start);
        } else {
            out.commit(n);
        }
        true
    }
}

/// What follows a response head.
pub enum Body {
    /// Nothing more (the whole answer is in the output buffer).
    None,
    Metrics(Box<MetricsBody>),
    /// Bytes a shim sends, moved by the reactor with
    /// [`Conn::relay_push`](super::conn::Conn::relay_push).
    Relay {
        chunked: bool,
        ended: bool,
    },
}

impl Body {
    /// Queue more of the body into the empty `out`. False: the body is
    /// complete (or, for a relay, waits for the reactor).
    pub(crate) fn refill(&mut self, out: &mut OutBuf) -> bool {
        match self {
            Body::Metrics(m) => m.refill(out),
            Body::None | Body::Relay { .. } => false,
        }
    }

    /// Everything has been queued.
    pub(crate) fn complete(&self) -> bool {
        match self {
            Body::None => true,
            Body::Metrics(m) => m.finished,
            Body::Relay { ended, .. } => *ended,
        }
    }

    /// Frame relayed bytes into `out`.
    pub(crate) fn relay(&mut self, out: &mut OutBuf, data: &[u8]) {
        if let Body::Relay { chunked: true, .. } = self {
            let mut room = [0u8; CHUNK_HEAD_ROOM];
            let start = response::chunk_head(&mut room, data.len());
            out.push(&room[start..]);
            out.push(data);
            out.push(CHUNK_END);
        } else {
            out.push(data);
        }
    }

    /// The relayed body is complete.
    pub(crate) fn relay_end(&mut self, out: &mut OutBuf) {
        if let Body::Relay { chunked, ended } = self {
            if *chunked && !*ended {
                out.push(LAST_CHUNK);
            }
            *ended = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outbuf_push_consume_space() {
        let mut o = OutBuf::default();
        o.push(b"hello");
        o.push(b" world");
        assert_eq!(o.pending(), b"hello world");
        o.consume(6);
        assert_eq!(o.pending(), b"world");
        let s = o.space();
        assert!(s.len() >= OUT_BUF - 5);
        s[..2].copy_from_slice(b"!!");
        o.commit(2);
        assert_eq!(o.pending(), b"world!!");
        o.consume(100);
        assert!(o.is_empty());
        o.release();
        assert_eq!(o.capacity(), 0);
    }

    #[test]
    fn relay_framing() {
        let mut o = OutBuf::default();
        let mut b = Body::Relay {
            chunked: true,
            ended: false,
        };
        b.relay(&mut o, b"abc");
        b.relay_end(&mut o);
        b.relay_end(&mut o);
        assert_eq!(o.pending(), b"3\r\nabc\r\n0\r\n\r\n");
        assert!(b.complete());
        let mut o = OutBuf::default();
        let mut b = Body::Relay {
            chunked: false,
            ended: false,
        };
        b.relay(&mut o, b"abc");
        b.relay_end(&mut o);
        assert_eq!(o.pending(), b"abc");
    }
}
