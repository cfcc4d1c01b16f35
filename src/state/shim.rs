//! One HTTP exchange with a shim, sans-IO: the request to send, the
//! response read into one buffer, and what the owner must do next.
//!
//! Owns: the request bytes, the receive buffer and the response reader
//! ([`crate::wire::http::client`]), the exchange's deadline, and keep-alive
//! between exchanges. Two modes: *collect* (scrapes: the body is decoded in
//! place into one buffer, capped) and *stream* (proxies: decoded bytes are
//! handed out as they arrive, and [`Exchange::recv_buf`] offers no room
//! until they are consumed, which is the backpressure).
//!
//! The shim is untrusted. The buffer grows as bytes arrive, never ahead of
//! them (a `Content-Length: 33554432` head with no body commits nothing);
//! interim `1xx` responses are skipped (RFC 9110 §15.2); bytes that arrive
//! while a kept-alive connection is idle, or after a response, end the
//! connection rather than being read as the next answer.
//!
//! Must not: touch a socket, read the clock, log.

use super::outcome::FetchError;
use crate::wire::http::client::{self, BodyFraming, Decoder, Head};
use std::time::Instant;

/// Buffer for streamed responses and the smallest read buffer.
pub const STREAM_BUF: usize = 64 * 1024;
/// Room kept past the body for chunk framing still to be read.
const FRAMING_ROOM: usize = 4096;
/// Interim (1xx) responses skipped before the real one, at most.
const MAX_INTERIM: u8 = 8;

/// Buffer length for a collected body expected to be `hint` bytes: room for
/// the head and some growth, rounded up to 8 KiB so bodies that creep by a
/// few bytes per scrape do not reallocate each time.
pub fn want_len(hint: usize, limit: u64) -> usize {
    let want = (hint + hint / 16 + 4096).div_ceil(8192) * 8192;
    want.max(STREAM_BUF).min(cap_len(limit))
}

/// The largest receive buffer for a body cap of `limit`.
fn cap_len(limit: u64) -> usize {
    (limit as usize)
        .saturating_add(client::MAX_HEAD)
        .saturating_add(FRAMING_ROOM)
}

/// Make `buf` `len` long without `Vec`'s doubling (pooled buffers are
/// resident memory: slack is waste).
fn size_exact(buf: &mut Vec<u8>, len: usize) {
    if buf.len() < len {
        buf.reserve_exact(len - buf.len());
        buf.resize(len, 0);
    }
}

/// What the owner should do after feeding the exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Nothing to do until more I/O.
    Pending,
    /// The response head arrived (once): see [`Exchange::head`].
    Head,
    /// Stream mode: decoded bytes wait in [`Exchange::available`].
    Data,
    /// The response is complete (collect: [`Exchange::body_range`]).
    Done,
    Failed(FetchError),
    /// An idle kept-alive connection was closed by the shim, or spoke out
    /// of turn: close it.
    Closed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Sending,
    Receiving,
    Done,
    Idle,
    Closed,
    Failed(FetchError),
}

/// One request/response on a shim connection (reusable for the next one).
pub struct Exchange {
    phase: Phase,
    started: Instant,
    deadline: Option<Instant>,
    req: Vec<u8>,
    sent: usize,
    stream: bool,
    limit: u64,
    /// Receive buffer, always initialised (`len` is the size in use).
    buf: Vec<u8>,
    filled: usize,
    head: Option<Head>,
    decoder: Option<Decoder>,
    interim: u8,
    /// Decoded body bytes are `buf[body_start..dec]`; raw input `buf[raw..filled]`.
    body_start: usize,
    dec: usize,
    raw: usize,
    /// Stream mode: bytes of the body already handed out.
    taken: usize,
    head_reported: bool,
    /// This connection carried an earlier exchange (it may have gone stale).
    reused: bool,
}

impl Exchange {
    /// `GET target`. `buf` is a recycled buffer (any length); `hint` the
    /// expected body size (collect mode). Collected exchanges ask to keep
    /// the connection; streamed ones are one-off.
    pub fn new(
        target: &str,
        stream: bool,
        limit: u64,
        buf: Vec<u8>,
        hint: usize,
        now: Instant,
        deadline: Instant,
    ) -> Exchange {
        let mut x = Exchange {
            phase: Phase::Sending,
            started: now,
            deadline: Some(deadline),
            req: Vec::new(),
            sent: 0,
            stream,
            limit,
            buf: Vec::new(),
            filled: 0,
            head: None,
            decoder: None,
            interim: 0,
            body_start: 0,
            dec: 0,
            raw: 0,
            taken: 0,
            head_reported: false,
            reused: false,
        };
        x.start(target, stream, limit, buf, hint, now, deadline);
        x
    }

    #[allow(clippy::too_many_arguments)]
    fn start(
        &mut self,
        target: &str,
        stream: bool,
        limit: u64,
        mut buf: Vec<u8>,
        hint: usize,
        now: Instant,
        deadline: Instant,
    ) {
        let want = if stream {
            STREAM_BUF
        } else {
            want_len(hint, limit)
        };
        size_exact(&mut buf, want);
        self.phase = Phase::Sending;
        self.started = now;
        self.deadline = Some(deadline);
        self.req = client::request(target, !stream);
        self.sent = 0;
        self.stream = stream;
        self.limit = limit;
        self.buf = buf;
        self.filled = 0;
        self.head = None;
        self.decoder = None;
        self.interim = 0;
        self.body_start = 0;
        self.dec = 0;
        self.raw = 0;
        self.taken = 0;
        self.head_reported = false;
    }

    /// Can this connection carry another request? (Complete response, the
    /// shim keeps the connection, nothing followed the body.)
    pub fn reusable(&self) -> bool {
        self.phase == Phase::Done
            && !self.stream
            && self.head.as_ref().is_some_and(|h| h.keep_alive)
            && self.raw == self.filled
    }

    /// Keep a [`reusable`](Self::reusable) connection for a later
    /// exchange. Returns the receive buffer (the body, for the caller to
    /// keep). From now on any byte or EOF from the shim closes it.
    pub fn park(&mut self) -> Vec<u8> {
        debug_assert!(self.reusable());
        self.phase = Phase::Idle;
        self.deadline = None;
        self.filled = 0;
        self.raw = 0;
        self.dec = 0;
        std::mem::take(&mut self.buf)
    }

    /// Send a new collected request on a parked connection.
    pub fn reuse(
        &mut self,
        target: &str,
        limit: u64,
        buf: Vec<u8>,
        hint: usize,
        now: Instant,
        deadline: Instant,
    ) {
        debug_assert_eq!(self.phase, Phase::Idle);
        self.start(target, false, limit, buf, hint, now, deadline);
        self.reused = true;
    }

    pub fn is_idle(&self) -> bool {
        self.phase == Phase::Idle
    }

    /// This connection carried an earlier exchange.
    pub fn reused(&self) -> bool {
        self.reused
    }

    /// Nothing of a response has arrived (a failure now on a reused
    /// connection means it had gone stale: a retry is safe).
    pub fn nothing_received(&self) -> bool {
        self.filled == 0 && self.head.is_none() && self.interim == 0
    }

    pub fn started(&self) -> Instant {
        self.started
    }

    pub fn deadline(&self) -> Option<Instant> {
        match self.phase {
            Phase::Sending | Phase::Receiving | Phase::Done => self.deadline,
            _ => None,
        }
    }

    pub fn set_deadline(&mut self, at: Instant) {
        self.deadline = Some(at);
    }

    pub fn head(&self) -> Option<&Head> {
        self.head.as_ref()
    }

    /// Collect mode, after `Done`: where the body is in the buffer.
    pub fn body_range(&self) -> std::ops::Range<usize> {
        self.body_start..self.dec
    }

    /// Body bytes received so far.
    pub fn body_len(&self) -> u64 {
        self.decoder.as_ref().map_or(0, Decoder::total)
    }

    /// Take the buffer (after `Done`, or to recycle it).
    pub fn take_buf(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }

    /// Stream mode: decoded bytes not handed out yet.
    pub fn available(&self) -> &[u8] {
        &self.buf[self.body_start + self.taken..self.dec]
    }

    /// Stream mode: `n` bytes of [`available`](Self::available) were handed out.
    pub fn consume(&mut self, n: usize) {
        self.taken += n;
        if self.body_start + self.taken == self.dec {
            self.dec = self.body_start;
            self.taken = 0;
            self.compact();
        }
    }

    /// Request bytes still to write.
    pub fn transmit(&self) -> &[u8] {
        match self.phase {
            Phase::Sending => &self.req[self.sent..],
            _ => &[],
        }
    }

    /// `n` bytes of [`transmit`](Self::transmit) were written.
    pub fn handle_sent(&mut self, n: usize) {
        if self.phase != Phase::Sending {
            return;
        }
        self.sent = (self.sent + n).min(self.req.len());
        if self.sent == self.req.len() {
            self.phase = Phase::Receiving;
        }
    }

    /// Where to read into, or `None` when the exchange does not read now
    /// (done, failed, stream bytes not consumed yet). Grows the buffer
    /// when it is full, up to the body cap.
    pub fn recv_buf(&mut self) -> Option<&mut [u8]> {
        match self.phase {
            // Any byte or EOF ends an idle connection: a small window will do.
            Phase::Idle => {
                size_exact(&mut self.buf, 64);
                return Some(&mut self.buf[..64]);
            }
            // A shim may answer before the request is fully written.
            Phase::Sending | Phase::Receiving => {}
            _ => return None,
        }
        if self.stream && !self.available().is_empty() {
            return None;
        }
        if self.filled == self.buf.len() && !self.grow() {
            self.phase = Phase::Failed(FetchError::BodyTooLarge);
            return None;
        }
        Some(&mut self.buf[self.filled..])
    }

    /// `n > 0` bytes were read into [`recv_buf`](Self::recv_buf).
    pub fn handle_read(&mut self, n: usize) {
        match self.phase {
            Phase::Idle => self.phase = Phase::Closed,
            Phase::Sending | Phase::Receiving => {
                self.filled += n;
                debug_assert!(self.filled <= self.buf.len());
                if let Err(e) = self.process() {
                    self.phase = Phase::Failed(e);
                }
            }
            _ => {}
        }
    }

    /// The shim closed its side.
    pub fn handle_eof(&mut self) {
        self.phase = match self.phase {
            Phase::Idle => Phase::Closed,
            Phase::Sending | Phase::Receiving => match self.decoder.as_mut() {
                None if self.filled == 0 && self.interim == 0 => {
                    Phase::Failed(FetchError::ClosedWithoutResponse)
                }
                None => Phase::Failed(FetchError::TruncatedHead),
                Some(d) => match d.eof() {
                    Ok(()) => Phase::Done,
                    Err(e) => Phase::Failed(e.into()),
                },
            },
            // A shim closing after a complete response is ordinary.
            p => p,
        };
    }

    /// A read or write failed (`Reset` / `SendFailed`).
    pub fn handle_io_error(&mut self, e: FetchError) {
        self.phase = match self.phase {
            Phase::Idle => Phase::Closed,
            Phase::Done => Phase::Done,
            _ => Phase::Failed(e),
        };
    }

    /// The deadline passed (the caller checks `now >= deadline`).
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.deadline().is_some_and(|d| now >= d)
            && matches!(self.phase, Phase::Sending | Phase::Receiving)
        {
            self.phase = Phase::Failed(FetchError::Timeout);
        }
    }

    /// What to do next.
    pub fn poll(&mut self) -> Step {
        match self.phase {
            Phase::Failed(e) => return Step::Failed(e),
            Phase::Closed => return Step::Closed,
            Phase::Idle => return Step::Pending,
            _ => {}
        }
        if self.head.is_some() && !self.head_reported {
            self.head_reported = true;
            return Step::Head;
        }
        if self.stream && !self.available().is_empty() {
            return Step::Data;
        }
        if self.phase == Phase::Done {
            Step::Done
        } else {
            Step::Pending
        }
    }

    /// Parse and decode what arrived.
    fn process(&mut self) -> Result<(), FetchError> {
        while self.head.is_none() {
            let Some((head, n)) = client::parse_head(&self.buf[..self.filled])? else {
                return Ok(());
            };
            if (100..200).contains(&head.status) {
                // Interim answers (100 Continue, 103 Early Hints) precede the
                // real one; 101 would switch protocols, which we never ask.
                if head.status == 101 || self.interim >= MAX_INTERIM {
                    return Err(FetchError::Malformed);
                }
                self.interim += 1;
                self.buf.copy_within(n..self.filled, 0);
                self.filled -= n;
                continue;
            }
            self.decoder = Some(Decoder::new(head.framing, self.limit)?);
            self.body_start = n;
            self.dec = n;
            self.raw = n;
            self.head = Some(head);
        }
        let Some(d) = self.decoder.as_mut() else {
            return Ok(());
        };
        if self.phase == Phase::Receiving || self.phase == Phase::Sending {
            let done = d.decode(&mut self.buf, &mut self.dec, &mut self.raw, self.filled)?;
            if done {
                self.phase = Phase::Done;
                // Bytes after the body stay at `raw..filled`: the
                // connection is then not reusable.
                return Ok(());
            }
            self.compact();
        }
        Ok(())
    }

    /// Reclaim the space of consumed framing bytes (chunk lines), so a
    /// body of tiny chunks needs no more room than its data.
    fn compact(&mut self) {
        if self.raw > self.dec {
            self.buf.copy_within(self.raw..self.filled, self.dec);
            self.filled -= self.raw - self.dec;
            self.raw = self.dec;
        }
    }

    /// Room for more input: double, up to what the response can still need
    /// (its declared length when known) and the body cap. Stream mode never
    /// grows: a full buffer there is undecodable framing.
    fn grow(&mut self) -> bool {
        if self.stream {
            return false;
        }
        let mut max = cap_len(self.limit);
        if let Some(BodyFraming::Length(len)) = self.head.as_ref().map(|h| h.framing) {
            max = max.min(self.body_start.saturating_add(len as usize));
        }
        if self.buf.len() >= max {
            return false;
        }
        let new = (self.buf.len().saturating_mul(2)).max(STREAM_BUF).min(max);
        size_exact(&mut self.buf, new);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Drive `x` with `wire` as the shim's bytes, `step` bytes per read,
    /// the way the reactor does. Returns the first non-Pending, non-Head step.
    fn feed(x: &mut Exchange, wire: &[u8], step: usize) -> Step {
        let req = x.transmit().len();
        x.handle_sent(req);
        let mut at = 0;
        loop {
            match x.poll() {
                Step::Pending | Step::Head => {}
                s => return s,
            }
            if at == wire.len() {
                x.handle_eof();
                continue;
            }
            let Some(room) = x.recv_buf() else {
                return x.poll();
            };
            let n = step.min(room.len()).min(wire.len() - at);
            room[..n].copy_from_slice(&wire[at..at + n]);
            at += n;
            x.handle_read(n);
        }
    }

    fn collect(limit: u64) -> Exchange {
        let now = Instant::now();
        Exchange::new(
            "/metrics",
            false,
            limit,
            Vec::new(),
            0,
            now,
            now + Duration::from_secs(1),
        )
    }

    fn body(x: &mut Exchange) -> Vec<u8> {
        let r = x.body_range();
        x.take_buf()[r].to_vec()
    }

    #[test]
    fn request_is_written_then_response_read() {
        let mut x = collect(1 << 20);
        let req = String::from_utf8(x.transmit().to_vec()).unwrap();
        assert!(req.starts_with("GET /metrics HTTP/1.1\r\n"), "{req}");
        assert!(
            !req.contains("Connection: close"),
            "scrapes keep the connection"
        );
        x.handle_sent(5);
        assert_eq!(x.transmit().len(), req.len() - 5);
        let wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
        for step in [1, 3, 7, 1000] {
            let mut x = collect(1 << 20);
            assert_eq!(feed(&mut x, wire, step), Step::Done, "step {step}");
            assert!(x.reusable());
            assert_eq!(body(&mut x), b"hello world");
        }
    }

    #[test]
    fn failures_have_reasons() {
        for (wire, why) in [
            (
                &b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort"[..],
                FetchError::Truncated,
            ),
            (b"", FetchError::ClosedWithoutResponse),
            (b"HTTP/1.1 200", FetchError::TruncatedHead),
            (b"garbage\r\n\r\n", FetchError::Malformed),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n",
                FetchError::BodyTooLarge,
            ),
            (b"HTTP/1.1 101 Switching\r\n\r\n", FetchError::Malformed),
        ] {
            let mut x = collect(1000);
            assert_eq!(
                feed(&mut x, wire, 7),
                Step::Failed(why),
                "{:?}",
                String::from_utf8_lossy(wire)
            );
        }
        // A chunked body over the cap fails while it arrives.
        let mut wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for _ in 0..20 {
            wire.extend_from_slice(b"64\r\n");
            wire.extend_from_slice(&[b'x'; 100]);
            wire.extend_from_slice(b"\r\n");
        }
        let mut x = collect(1000);
        assert_eq!(
            feed(&mut x, &wire, 4096),
            Step::Failed(FetchError::BodyTooLarge)
        );
    }

    #[test]
    fn interim_responses_are_skipped() {
        let wire = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        for step in [1, 5, 1000] {
            let mut x = collect(1 << 20);
            assert_eq!(feed(&mut x, wire, step), Step::Done);
            assert_eq!(x.head().unwrap().status, 200);
            assert_eq!(body(&mut x), b"ok");
        }
        let endless = b"HTTP/1.1 100 Continue\r\n\r\n".repeat(9);
        let mut x = collect(1 << 20);
        assert_eq!(
            feed(&mut x, &endless, 1000),
            Step::Failed(FetchError::Malformed)
        );
    }

    #[test]
    fn buffer_grows_with_bytes_not_with_content_length() {
        let mut x = collect(32 << 20);
        let req = x.transmit().len();
        x.handle_sent(req);
        let head = b"HTTP/1.1 200 OK\r\nContent-Length: 33554432\r\n\r\n";
        let room = x.recv_buf().unwrap();
        room[..head.len()].copy_from_slice(head);
        x.handle_read(head.len());
        assert_eq!(x.poll(), Step::Head);
        assert_eq!(x.poll(), Step::Pending);
        assert!(
            x.buf.len() <= STREAM_BUF,
            "a head alone commits {} bytes",
            x.buf.len()
        );
        // Bytes arriving make it grow, by doubling, never past the
        // declared length.
        let mut total = 0usize;
        while total < 3 * STREAM_BUF {
            let room = x.recv_buf().unwrap();
            let n = room.len();
            total += n;
            x.handle_read(n);
        }
        assert!(
            x.buf.len() <= 4 * STREAM_BUF + head.len(),
            "{}",
            x.buf.len()
        );
        let mut x = collect(1 << 20);
        let small = b"HTTP/1.1 200 OK\r\nContent-Length: 70000\r\n\r\n";
        let mut wire = small.to_vec();
        wire.extend_from_slice(&[b'a'; 70000]);
        assert_eq!(feed(&mut x, &wire, 1 << 20), Step::Done);
        assert_eq!(
            x.buf.len(),
            small.len() + 70000,
            "grown exactly to the declared size"
        );
    }

    #[test]
    fn tiny_chunks_need_no_room_for_their_framing() {
        let mut wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for _ in 0..3000 {
            wire.extend_from_slice(b"1;a-long-chunk-extension=ignored\r\nx\r\n");
        }
        wire.extend_from_slice(b"0\r\n\r\n");
        let mut x = collect(3000);
        assert_eq!(feed(&mut x, &wire, 700), Step::Done);
        assert_eq!(body(&mut x), vec![b'x'; 3000]);
    }

    #[test]
    fn bytes_after_the_response_make_it_unreusable() {
        let mut x = collect(1 << 20);
        let wire = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n";
        assert_eq!(feed(&mut x, wire, 1000), Step::Done);
        assert!(!x.reusable(), "extra bytes came with the body");
        let mut x = collect(1 << 20);
        let wire = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok";
        assert_eq!(feed(&mut x, wire, 1000), Step::Done);
        assert!(!x.reusable(), "the shim closes it");
    }

    #[test]
    fn parked_connection_closes_on_any_byte_and_is_reused_otherwise() {
        let now = Instant::now();
        let mut x = collect(1 << 20);
        let wire = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        assert_eq!(feed(&mut x, wire, 1000), Step::Done);
        let buf = x.park();
        assert!(!buf.is_empty());
        assert!(x.is_idle() && x.deadline().is_none());
        assert_eq!(x.poll(), Step::Pending);
        // Unsolicited bytes: closed, never read as the next answer.
        let mut y = collect(1 << 20);
        assert_eq!(feed(&mut y, wire, 1000), Step::Done);
        y.park();
        let room = y.recv_buf().unwrap();
        room[0] = b'H';
        y.handle_read(1);
        assert_eq!(y.poll(), Step::Closed);
        // EOF while idle: closed too.
        let mut z = collect(1 << 20);
        assert_eq!(feed(&mut z, wire, 1000), Step::Done);
        z.park();
        z.handle_eof();
        assert_eq!(z.poll(), Step::Closed);
        // Reuse: a fresh exchange on the same connection.
        x.reuse(
            "/metrics",
            1 << 20,
            buf,
            2,
            now,
            now + Duration::from_secs(1),
        );
        assert!(x.reused() && x.nothing_received());
        let wire2 = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc";
        assert_eq!(feed(&mut x, wire2, 1000), Step::Done);
        assert_eq!(body(&mut x), b"abc");
    }

    #[test]
    fn stale_reused_connection_is_recognisable() {
        let now = Instant::now();
        let mut x = collect(1 << 20);
        let wire = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        assert_eq!(feed(&mut x, wire, 1000), Step::Done);
        let buf = x.park();
        x.reuse(
            "/metrics",
            1 << 20,
            buf,
            2,
            now,
            now + Duration::from_secs(1),
        );
        x.handle_io_error(FetchError::SendFailed);
        assert_eq!(x.poll(), Step::Failed(FetchError::SendFailed));
        assert!(x.reused() && x.nothing_received(), "safe to retry");
    }

    #[test]
    fn deadline_only_while_in_flight() {
        let now = Instant::now();
        let mut x = Exchange::new(
            "/metrics",
            false,
            1 << 20,
            Vec::new(),
            0,
            now,
            now + Duration::from_secs(1),
        );
        x.handle_timeout(now);
        assert_eq!(x.poll(), Step::Pending, "not due yet");
        x.handle_timeout(now + Duration::from_secs(1));
        assert_eq!(x.poll(), Step::Failed(FetchError::Timeout));
        assert_eq!(x.deadline(), None);
    }

    #[test]
    fn streams_with_backpressure() {
        let now = Instant::now();
        let mut x = Exchange::new("/x", true, 1 << 20, Vec::new(), 0, now, now);
        assert!(String::from_utf8_lossy(x.transmit()).contains("Connection: close"));
        let n = x.transmit().len();
        x.handle_sent(n);
        let wire = b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello world";
        let room = x.recv_buf().unwrap();
        room[..wire.len()].copy_from_slice(wire);
        x.handle_read(wire.len());
        assert_eq!(x.poll(), Step::Head);
        assert_eq!(x.poll(), Step::Data);
        assert!(x.recv_buf().is_none(), "no reading while bytes wait");
        let mut got = Vec::new();
        while x.poll() == Step::Data {
            let a = x.available();
            let n = a.len().min(3);
            got.extend_from_slice(&a[..n]);
            x.consume(n);
        }
        assert_eq!(x.poll(), Step::Done);
        assert_eq!(got, b"hello world");
    }
}
