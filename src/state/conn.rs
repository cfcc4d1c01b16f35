//! A client connection, sans-IO: request heads in, responses out.
//!
//! Owns: the request buffer and head parsing, the connection's phase
//! (reading a head, waiting for its answer, writing it, lingering before
//! close), keep-alive, the header/idle/wait/write-stall deadlines, and the
//! output buffer refilled from the response body.
//!
//! The reactor reads into [`Conn::recv_buf`] and reports with
//! [`handle_read`](Conn::handle_read)/[`handle_eof`](Conn::handle_eof)/
//! [`handle_error`](Conn::handle_error); writes [`Conn::poll_transmit`] and
//! reports [`handle_written`](Conn::handle_written); calls
//! [`handle_timeout`](Conn::handle_timeout) when [`Conn::deadline`] passes;
//! and takes [`Event`]s from [`Conn::poll_event`] (a request to route, a
//! body to recycle, shut the write side, close the fd). It answers a
//! request with [`respond`](Conn::respond) or [`start`](Conn::start).
//!
//! Must not: touch a socket, read the clock, log.

use super::body::{Body, OutBuf};
use crate::wire::http::request::{self, Request};
use crate::wire::http::response::{self, Framing};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How long a connection may stay in each phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// From a request head's first byte (or the accept) to its end.
    pub header: Duration,
    /// A kept-alive connection with no request.
    pub idle: Duration,
    /// A request whose answer has not started (bounded by the round or
    /// the proxy's own deadlines; this is the safety net).
    pub wait: Duration,
    /// A response that makes no write progress.
    pub write_stall: Duration,
    /// After the last response, the write side is shut and input drained
    /// this long, so unread request bytes cannot turn the close into a
    /// reset that destroys the answer in flight.
    pub linger: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            header: Duration::from_secs(10),
            idle: Duration::from_secs(120),
            wait: Duration::from_secs(3600),
            write_stall: Duration::from_secs(30),
            linger: Duration::from_secs(2),
        }
    }
}

/// Why a connection ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// The client closed (between requests, or for good).
    PeerClosed,
    /// A read or write failed.
    Reset,
    HeaderTimeout,
    IdleTimeout,
    WaitTimeout,
    WriteStall,
    /// The last response went out and the close was graceful.
    Done,
    /// Closed by the reactor (to admit another client, or shutting down).
    Evicted,
    /// The TLS session failed (handshake, plain HTTP, bad record).
    Tls,
}

impl CloseReason {
    pub fn as_label(self) -> &'static str {
        match self {
            CloseReason::PeerClosed => "peer_closed",
            CloseReason::Reset => "reset",
            CloseReason::HeaderTimeout => "header_timeout",
            CloseReason::IdleTimeout => "idle_timeout",
            CloseReason::WaitTimeout => "wait_timeout",
            CloseReason::WriteStall => "write_stall",
            CloseReason::Done => "done",
            CloseReason::Evicted => "evicted",
            CloseReason::Tls => "tls_failed",
        }
    }
}

/// What the reactor must do.
pub enum Event {
    /// A request to route and answer.
    Request(Request),
    /// A malformed head was refused with this status (answer queued; the
    /// connection closes after it).
    Refused(u16),
    /// A body is finished or abandoned: recycle what it holds.
    Spent(Body),
    /// Shut the write side down (everything is written).
    ShutdownWrite,
    /// Deregister and close the fd. Nothing follows.
    Close(CloseReason),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Reading a request head. `started`: its first byte (a new connection
    /// counts from the accept); `None` while idle since `since`.
    Head {
        started: Option<Instant>,
        since: Instant,
    },
    /// A request was handed out; its answer has not started.
    Waiting {
        since: Instant,
    },
    /// Sending a response; `progress`: the last write that moved bytes.
    Writing {
        progress: Instant,
    },
    /// Write side shut; draining input until EOF or `until`.
    Linger {
        until: Instant,
    },
    Closed,
}

pub struct Conn {
    phase: Phase,
    timeouts: Timeouts,
    inbuf: Box<[u8]>,
    in_len: usize,
    out: OutBuf,
    body: Body,
    /// Keep the connection after the current response.
    keep_alive: bool,
    /// HTTP/1.0 client: no chunked encoding.
    http10: bool,
    /// The client closed its side: nothing more to read.
    eof: bool,
    events: VecDeque<Event>,
}

impl Conn {
    /// A connection accepted at `now`: it has the header timeout to send
    /// its first request head.
    pub fn new(timeouts: Timeouts, now: Instant) -> Conn {
        Conn {
            phase: Phase::Head {
                started: Some(now),
                since: now,
            },
            timeouts,
            inbuf: vec![0; request::MAX_HEAD + 1].into_boxed_slice(),
            in_len: 0,
            out: OutBuf::default(),
            body: Body::None,
            keep_alive: true,
            http10: false,
            eof: false,
            events: VecDeque::new(),
        }
    }

    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// The last answer is out; only draining input before the close.
    pub fn is_lingering(&self) -> bool {
        matches!(self.phase, Phase::Linger { .. })
    }

    /// Waiting for an answer to a request.
    pub fn is_waiting(&self) -> bool {
        matches!(self.phase, Phase::Waiting { .. })
    }

    /// Sending a relayed body whose output buffer is empty: the reactor
    /// may move more bytes from the shim.
    pub fn wants_relay(&self) -> bool {
        matches!(self.phase, Phase::Writing { .. })
            && matches!(self.body, Body::Relay { ended: false, .. })
            && self.out.is_empty()
    }

    /// Not busy with a request (no head bytes, nothing to answer): since
    /// when. Such a connection may be closed to admit another client.
    pub fn evictable_since(&self) -> Option<Instant> {
        match self.phase {
            Phase::Head { started, since } if self.in_len == 0 => Some(started.unwrap_or(since)),
            _ => None,
        }
    }

    /// Framing for a streamed body of unknown length.
    pub fn stream_framing(&self) -> Framing {
        if self.http10 {
            Framing::Close
        } else {
            Framing::Chunked
        }
    }

    pub fn deadline(&self) -> Option<Instant> {
        let t = &self.timeouts;
        match self.phase {
            Phase::Head {
                started: Some(s), ..
            } => Some(s + t.header),
            Phase::Head { since, .. } => Some(since + t.idle),
            Phase::Waiting { since } => Some(since + t.wait),
            Phase::Writing { progress } => Some(progress + t.write_stall),
            Phase::Linger { until } => Some(until),
            Phase::Closed => None,
        }
    }

    /// Where to read into, or `None` when the connection does not read
    /// now (writing, closed, or a full buffer of pipelined bytes).
    pub fn recv_buf(&mut self) -> Option<&mut [u8]> {
        if self.eof {
            return None;
        }
        match self.phase {
            Phase::Head { .. } | Phase::Waiting { .. } if self.in_len < self.inbuf.len() => {
                Some(&mut self.inbuf[self.in_len..])
            }
            // Input is discarded: the whole buffer is scratch.
            Phase::Linger { .. } => Some(&mut self.inbuf[..]),
            _ => None,
        }
    }

    /// `n > 0` bytes were read into [`recv_buf`](Self::recv_buf).
    pub fn handle_read(&mut self, n: usize, now: Instant) {
        match &mut self.phase {
            Phase::Head { started, .. } => {
                // A kept-alive connection's head counts from its first byte.
                started.get_or_insert(now);
                self.in_len += n;
                self.parse(now);
            }
            // Pipelined bytes, read after the current answer.
            Phase::Waiting { .. } => self.in_len += n,
            Phase::Linger { .. } | Phase::Writing { .. } | Phase::Closed => {}
        }
    }

    /// The client closed its side.
    pub fn handle_eof(&mut self) {
        self.eof = true;
        match self.phase {
            Phase::Head { .. } => self.close(CloseReason::PeerClosed),
            // A half-closed client still gets its answer (RFC 9112 §9.6);
            // one that has gone for good makes a write fail.
            Phase::Waiting { .. } | Phase::Writing { .. } => self.keep_alive = false,
            Phase::Linger { .. } => self.close(CloseReason::Done),
            Phase::Closed => {}
        }
    }

    /// A read or write failed: nobody will read an answer.
    pub fn handle_error(&mut self) {
        self.close(CloseReason::Reset);
    }

    /// The deadline passed (the caller checks `now >= deadline`).
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.deadline().is_none_or(|d| now < d) {
            return;
        }
        let reason = match self.phase {
            Phase::Head {
                started: Some(_), ..
            } => CloseReason::HeaderTimeout,
            Phase::Head { .. } => CloseReason::IdleTimeout,
            Phase::Waiting { .. } => CloseReason::WaitTimeout,
            Phase::Writing { .. } => CloseReason::WriteStall,
            Phase::Linger { .. } => CloseReason::Done,
            Phase::Closed => return,
        };
        self.close(reason);
    }

    /// Close now (eviction, shutdown, or a reset seen by the reactor).
    pub fn close(&mut self, reason: CloseReason) {
        if self.phase == Phase::Closed {
            return;
        }
        self.phase = Phase::Closed;
        let body = std::mem::replace(&mut self.body, Body::None);
        if !matches!(body, Body::None) {
            self.events.push_back(Event::Spent(body));
        }
        self.events.push_back(Event::Close(reason));
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Bytes to write now. Refills the output from the body when it is
    /// empty, and finishes the response when the body is complete.
    pub fn poll_transmit(&mut self, now: Instant) -> &[u8] {
        if matches!(self.phase, Phase::Writing { .. })
            && self.out.is_empty()
            && !self.body.refill(&mut self.out)
            && self.body.complete()
        {
            self.finish_response(now);
        }
        self.out.pending()
    }

    /// `n` bytes of [`poll_transmit`](Self::poll_transmit) were written.
    pub fn handle_written(&mut self, n: usize, now: Instant) {
        self.out.consume(n);
        if let Phase::Writing { progress } = &mut self.phase
            && n > 0
        {
            *progress = now;
        }
    }

    /// Answer the waiting request with a complete small response.
    pub fn respond(
        &mut self,
        status: u16,
        headers: &[(&str, &str)],
        body: &[u8],
        head_only: bool,
        now: Instant,
    ) {
        if !self.is_waiting() {
            return;
        }
        let mut head = Vec::with_capacity(160 + body.len());
        response::head(
            &mut head,
            status,
            headers,
            Framing::Length(body.len() as u64),
            self.keep_alive,
        );
        if !head_only {
            head.extend_from_slice(body);
        }
        self.out.push(&head);
        self.phase = Phase::Writing { progress: now };
    }

    /// Answer with a head and a streamed body (`head_only`: the head alone;
    /// the body is handed back at once as [`Event::Spent`]).
    pub fn start(
        &mut self,
        status: u16,
        headers: &[(&str, &str)],
        framing: Framing,
        body: Body,
        head_only: bool,
        now: Instant,
    ) {
        if !self.is_waiting() {
            self.events.push_back(Event::Spent(body));
            return;
        }
        if framing == Framing::Close {
            self.keep_alive = false;
        }
        let mut head = Vec::with_capacity(256);
        response::head(&mut head, status, headers, framing, self.keep_alive);
        self.out.push(&head);
        self.phase = Phase::Writing { progress: now };
        if head_only {
            self.events.push_back(Event::Spent(body));
        } else {
            self.body = body;
        }
    }

    /// Relay `data` from a shim into the output (call when
    /// [`wants_relay`](Self::wants_relay)).
    pub fn relay_push(&mut self, data: &[u8]) {
        if self.wants_relay() {
            self.body.relay(&mut self.out, data);
        }
    }

    /// The relayed body is complete.
    pub fn relay_end(&mut self) {
        if matches!(self.phase, Phase::Writing { .. }) {
            self.body.relay_end(&mut self.out);
        }
    }

    /// Parse a buffered request head.
    fn parse(&mut self, now: Instant) {
        if self.in_len == 0 {
            return;
        }
        match request::parse(&self.inbuf[..self.in_len]) {
            Ok(Some((req, n))) => {
                self.inbuf.copy_within(n..self.in_len, 0);
                self.in_len -= n;
                // Request bodies are not read: answer, then close.
                self.keep_alive = req.keep_alive && req.body_len == 0;
                self.http10 = req.minor == 0;
                self.phase = Phase::Waiting { since: now };
                self.events.push_back(Event::Request(req));
            }
            Ok(None) if self.in_len < self.inbuf.len() => {}
            Ok(None) => self.refuse(431, now),
            Err(request::Error::TooLarge) => self.refuse(431, now),
            Err(_) => self.refuse(400, now),
        }
    }

    /// One answer to a malformed head, then close: nothing after a bad head
    /// can be trusted to start a request.
    fn refuse(&mut self, status: u16, now: Instant) {
        self.in_len = 0;
        self.keep_alive = false;
        self.phase = Phase::Waiting { since: now };
        let msg: &[u8] = if status == 431 {
            b"request header fields too large\n"
        } else {
            b"bad request\n"
        };
        self.respond(
            status,
            &[
                ("Content-Type", "text/plain; charset=utf-8"),
                ("X-Content-Type-Options", "nosniff"),
            ],
            msg,
            false,
            now,
        );
        self.events.push_back(Event::Refused(status));
    }

    /// The whole response is written: keep the connection or close it.
    fn finish_response(&mut self, now: Instant) {
        let body = std::mem::replace(&mut self.body, Body::None);
        if !matches!(body, Body::None) {
            self.events.push_back(Event::Spent(body));
        }
        if !self.keep_alive {
            self.events.push_back(Event::ShutdownWrite);
            self.in_len = 0;
            if self.eof {
                // Nothing left to drain.
                self.close(CloseReason::Done);
            } else {
                self.phase = Phase::Linger {
                    until: now + self.timeouts.linger,
                };
            }
            return;
        }
        self.out.release();
        self.phase = Phase::Head {
            started: (self.in_len > 0).then_some(now),
            since: now,
        };
        // A pipelined request may be buffered already.
        self.parse(now);
    }
}

#[cfg(test)]
mod tests;
