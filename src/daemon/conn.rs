//! A client connection: socket, request buffer, output buffer and the body
//! being streamed.
//!
//! Owns: reading request heads (drained to `WouldBlock`), writing what is
//! pending, and refilling the output buffer from a metrics body (plain,
//! chunked or gzip). The output buffer has a fixed size: a slow reader gets
//! backpressure, never a growing buffer. What to answer is decided by the
//! routes; the daemon drives the states.

use super::scrape::Snapshot;
use crate::wire::expo::Cursor;
use crate::wire::gzip::GzipPump;
use crate::wire::http::request::{self, Request};
use crate::wire::http::response::{self, CHUNK_END, CHUNK_HEAD_ROOM, Framing, LAST_CHUNK};
use mio::net::TcpStream;
use std::io::{ErrorKind, Read, Write};
use std::rc::Rc;
use std::time::Instant;

/// Output buffer size for streamed bodies.
pub const OUT_BUF: usize = 64 * 1024;

/// Pending output bytes. Small answers grow it; streamed bodies refill it only
/// when it is empty, so it never exceeds `OUT_BUF` (+ one small head).
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
        self.start += n;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Free space after the pending bytes, at least `OUT_BUF` in total.
    fn space(&mut self) -> &mut [u8] {
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

    fn commit(&mut self, n: usize) {
        self.end += n;
    }

    /// Drop the big allocation (connection idle).
    pub fn release(&mut self) {
        if self.is_empty() && self.buf.len() > 4096 {
            self.buf = Vec::new();
        }
    }
}

/// A `/metrics` body rendered from a snapshot.
pub struct MetricsBody {
    pub snap: Rc<Snapshot>,
    pub cursor: Cursor,
    pub gzip: Option<GzipPump>,
    pub framing: Framing,
    pub finished: bool,
}

impl MetricsBody {
    /// Refill `out` (which is empty). Returns false once everything,
    /// including the last-chunk marker, has been queued.
    pub fn refill(&mut self, out: &mut OutBuf) -> bool {
        if self.finished {
            return false;
        }
        let expo = &self.snap.expo;
        let space = out.space();
        let chunked = self.framing == Framing::Chunked;
        let (head_room, tail_room) = if chunked {
            (CHUNK_HEAD_ROOM, CHUNK_END.len())
        } else {
            (0, 0)
        };
        let area_end = space.len() - tail_room;
        let area = &mut space[head_room..area_end];
        let cursor = &mut self.cursor;
        let n = match self.gzip.as_mut() {
            Some(pump) => pump.fill(area, |b| cursor.fill(expo, b)),
            None => cursor.fill(expo, area),
        };
        if n == 0 {
            self.finished = true;
            if chunked {
                out.push(LAST_CHUNK);
            }
            return !out.is_empty();
        }
        if chunked {
            let start = response::chunk_head(&mut space[..head_room], n);
            space[head_room + n..head_room + n + tail_room].copy_from_slice(CHUNK_END);
            // Skip the unused part of the head room.
            out.commit(head_room + n + tail_room);
            out.consume(start);
        } else {
            out.commit(n);
        }
        true
    }
}

/// What is being sent after the head.
pub enum Body {
    None,
    Metrics(Box<MetricsBody>),
    /// Bytes come from a shim connection (the daemon moves them).
    Proxy(super::slab::Key),
}

/// A `/metrics` request waiting for a fetch round.
#[derive(Clone, Debug)]
pub struct Waiting {
    pub filter: crate::wire::expo::Filter,
    pub gzip: bool,
    pub head_only: bool,
    pub arrived: Instant,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Waiting for (the rest of) a request head.
    Reading,
    /// Request parsed, answer not started (fetch round or shim in flight).
    Waiting,
    /// Sending the response.
    Writing,
}

pub struct Conn {
    pub sock: TcpStream,
    pub state: State,
    inbuf: Vec<u8>,
    in_len: usize,
    pub out: OutBuf,
    pub body: Body,
    /// Keep the connection after the current response.
    pub keep_alive: bool,
    /// HTTP/1.0 client: no chunked encoding.
    pub http10: bool,
    pub waiting: Option<Waiting>,
    /// Header/idle/write-progress deadline (see the daemon's timeouts).
    pub deadline: Instant,
    /// When the first byte of the current request head arrived.
    pub head_started: Option<Instant>,
}

/// Result of [`Conn::read_request`].
/// What a waiting client's socket says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerState {
    /// Nothing new, or a next (pipelined) request.
    Open,
    /// FIN: the client sent all it will send. It may still read (a
    /// half-close after the request), or have closed for good; only a
    /// write can tell, so the answer is still sent.
    Eof,
    /// Reset or another error: nobody will read the answer.
    Gone,
}

pub enum ReadOutcome {
    Request(Request),
    NeedMore,
    Closed,
    /// Answer with this status and close.
    Refuse(u16),
}

impl Conn {
    /// A connection accepted at `now`: it has the header timeout to send its
    /// first request head.
    pub fn new(sock: TcpStream, now: Instant, deadline: Instant) -> Conn {
        Conn {
            sock,
            state: State::Reading,
            inbuf: vec![0; request::MAX_HEAD + 1],
            in_len: 0,
            out: OutBuf::default(),
            body: Body::None,
            keep_alive: true,
            http10: false,
            waiting: None,
            deadline,
            head_started: Some(now),
        }
    }

    /// Parse a buffered request or read until one is complete or the socket
    /// would block.
    pub fn read_request(&mut self, now: Instant) -> ReadOutcome {
        loop {
            if self.in_len > 0 {
                match request::parse(&self.inbuf[..self.in_len]) {
                    Ok(Some((req, n))) => {
                        self.inbuf.copy_within(n..self.in_len, 0);
                        self.in_len -= n;
                        self.head_started = (self.in_len > 0).then_some(now);
                        return ReadOutcome::Request(req);
                    }
                    Ok(None) => {}
                    Err(request::Error::TooLarge) => return ReadOutcome::Refuse(431),
                    Err(_) => return ReadOutcome::Refuse(400),
                }
            }
            if self.in_len == self.inbuf.len() {
                return ReadOutcome::Refuse(431);
            }
            match self.sock.read(&mut self.inbuf[self.in_len..]) {
                Ok(0) => return ReadOutcome::Closed,
                Ok(n) => {
                    // A new connection counts from its accept (set by the
                    // daemon); a kept-alive one from the first byte.
                    if self.head_started.is_none() {
                        self.head_started = Some(now);
                    }
                    self.in_len += n;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return ReadOutcome::NeedMore,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return ReadOutcome::Closed,
            }
        }
    }

    /// Forget buffered input (after a refused request head).
    pub fn discard_input(&mut self) {
        self.in_len = 0;
        self.head_started = None;
    }

    /// Bytes of a next request already buffered (pipelining).
    pub fn has_buffered_input(&self) -> bool {
        self.in_len > 0
    }

    /// Write pending output. `Ok(true)`: all written; `Ok(false)`: blocked.
    pub fn flush(&mut self) -> std::io::Result<bool> {
        while !self.out.is_empty() {
            match self.sock.write(self.out.pending()) {
                Ok(0) => return Err(ErrorKind::WriteZero.into()),
                Ok(n) => self.out.consume(n),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    /// Check, without consuming request bytes, what the peer did (used
    /// while a request waits for its answer).
    pub fn peer_state(&mut self) -> PeerState {
        let mut b = [0u8; 1];
        match self.sock.peek(&mut b) {
            Ok(0) => PeerState::Eof,
            Ok(_) => PeerState::Open,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {
                PeerState::Open
            }
            Err(_) => PeerState::Gone,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outbuf_push_consume() {
        let mut o = OutBuf::default();
        o.push(b"hello");
        o.push(b" world");
        assert_eq!(o.pending(), b"hello world");
        o.consume(6);
        assert_eq!(o.pending(), b"world");
        o.consume(5);
        assert!(o.is_empty());
        o.release();
    }
}
