//! One HTTP request to a shim over its unix socket, non-blocking.
//!
//! Owns: the socket, the request bytes, the receive buffer and the sans-IO
//! response reader. Two modes: *collect* (scrapes: the whole body is decoded
//! in place into one buffer, capped) and *stream* (proxies: decoded bytes are
//! handed out as they arrive and the socket is not read again until they are
//! consumed, which is the backpressure). Deadlines are enforced by the owner.

use crate::wire::http::client::{self, BodyFraming, Decoder, Head};
use mio::net::UnixStream;
use std::io::{ErrorKind, Read, Write};
use std::path::Path;
use std::time::Instant;

/// Buffer for streamed responses and the first read of collected ones.
pub const STREAM_BUF: usize = 64 * 1024;

/// Buffer length for a collected body expected to be `hint` bytes: room for
/// the head, chunk lines and some growth, so most bodies are read without
/// growing. (Written with max/min: `clamp` panics for a cap under
/// `STREAM_BUF`.)
pub fn want_len(hint: usize, limit: u64) -> usize {
    // Rounded up to 8 KiB so bodies that creep by a few bytes per scrape
    // (counters getting longer) do not reallocate their buffer each time.
    let want = (hint + hint / 16 + 4096).div_ceil(8192) * 8192;
    want.max(STREAM_BUF).min(limit as usize + client::MAX_HEAD)
}

/// Make `buf` at least `len` long without `Vec`'s doubling (these buffers
/// are pooled and held per sandbox: slack is resident memory).
fn size_exact(buf: &mut Vec<u8>, len: usize) {
    if buf.len() < len {
        buf.reserve_exact(len - buf.len());
        buf.resize(len, 0);
    }
}

/// What the owner should look at after [`ShimConn::drive`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Waiting for the socket.
    Pending,
    /// The response head just arrived: see [`ShimConn::head`].
    Head,
    /// Stream mode: decoded bytes are waiting in [`ShimConn::available`].
    Data,
    /// The body is complete (collect mode: see [`ShimConn::body_range`]).
    Done,
    Failed(&'static str),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Sending,
    Receiving,
    Finished,
}

pub struct ShimConn {
    pub sock: UnixStream,
    pub started: Instant,
    pub deadline: Instant,
    state: State,
    req: Vec<u8>,
    sent: usize,
    stream: bool,
    limit: u64,
    /// Receive buffer; always fully initialised (`len` is the capacity in use).
    buf: Vec<u8>,
    filled: usize,
    head: Option<Head>,
    decoder: Option<Decoder>,
    /// Decoded body bytes are `buf[body_start..dec]`; raw input `buf[raw..filled]`.
    body_start: usize,
    dec: usize,
    raw: usize,
    /// Stream mode: bytes of `buf[body_start..dec]` already handed out.
    taken: usize,
    head_reported: bool,
    /// This connection served an earlier request (it may have gone stale).
    pub reused: bool,
}

impl ShimConn {
    /// Start `GET target` on the socket at `path`. `buf` is a recycled buffer
    /// (any length); `hint` the expected body size in collect mode.
    #[allow(clippy::too_many_arguments)]
    pub fn connect(
        path: &Path,
        target: &str,
        stream: bool,
        limit: u64,
        mut buf: Vec<u8>,
        hint: usize,
        now: Instant,
        deadline: Instant,
    ) -> Result<ShimConn, &'static str> {
        let sock = UnixStream::connect(path).map_err(|e| match e.kind() {
            ErrorKind::NotFound => "no_socket",
            ErrorKind::ConnectionRefused => "refused",
            _ if e.raw_os_error() == Some(libc::ENAMETOOLONG)
                || e.kind() == ErrorKind::InvalidInput =>
            {
                "socket_path_too_long"
            }
            _ => "connect_failed",
        })?;
        let want = if stream {
            STREAM_BUF
        } else {
            want_len(hint, limit)
        };
        size_exact(&mut buf, want);
        Ok(ShimConn {
            sock,
            started: now,
            deadline,
            state: State::Sending,
            // Collected fetches (scrapes) keep the connection for the next
            // round; streamed ones are one-off.
            req: client::request(target, !stream),
            sent: 0,
            stream,
            limit,
            buf,
            filled: 0,
            head: None,
            decoder: None,
            body_start: 0,
            dec: 0,
            raw: 0,
            taken: 0,
            head_reported: false,
            reused: false,
        })
    }

    /// Can this connection carry another request? (The response was complete,
    /// the shim keeps the connection, and nothing followed the body.)
    pub fn reusable(&self) -> bool {
        self.state == State::Finished
            && self.decoder.as_ref().is_some_and(Decoder::is_done)
            && self.head.as_ref().is_some_and(|h| h.keep_alive)
            && self.raw == self.filled
    }

    /// Send a new collected request on this (reusable) connection.
    pub fn reuse(
        &mut self,
        target: &str,
        limit: u64,
        mut buf: Vec<u8>,
        hint: usize,
        now: Instant,
        deadline: Instant,
    ) {
        size_exact(&mut buf, want_len(hint, limit));
        self.started = now;
        self.deadline = deadline;
        self.state = State::Sending;
        self.req = client::request(target, true);
        self.sent = 0;
        self.stream = false;
        self.limit = limit;
        self.buf = buf;
        self.filled = 0;
        self.head = None;
        self.decoder = None;
        self.body_start = 0;
        self.dec = 0;
        self.raw = 0;
        self.taken = 0;
        self.head_reported = false;
        self.reused = true;
    }

    /// Nothing of a response has arrived yet (a failure now on a reused
    /// connection means it was stale: retrying is safe).
    pub fn nothing_received(&self) -> bool {
        self.filled == 0 && self.head.is_none()
    }

    /// An idle connection became readable: true if it is still usable
    /// (a spurious wakeup), false if the shim closed it or sent bytes.
    pub fn idle_ok(&mut self) -> bool {
        let mut b = [0u8; 1];
        matches!(self.sock.read(&mut b), Err(e) if e.kind() == ErrorKind::WouldBlock)
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
            // All handed out: reclaim the space (keep unread raw bytes).
            let rest = self.filled - self.raw;
            self.buf.copy_within(self.raw..self.filled, self.body_start);
            self.dec = self.body_start;
            self.raw = self.body_start;
            self.filled = self.body_start + rest;
            self.taken = 0;
        }
    }

    pub fn is_finished(&self) -> bool {
        self.state == State::Finished
    }

    /// Do all the I/O possible now.
    pub fn drive(&mut self) -> Step {
        loop {
            match self.state {
                State::Finished if self.stream && !self.available().is_empty() => {
                    return Step::Data;
                }
                State::Finished => return Step::Done,
                State::Sending => match self.sock.write(&self.req[self.sent..]) {
                    Ok(n) => {
                        self.sent += n;
                        if self.sent == self.req.len() {
                            self.state = State::Receiving;
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => return Step::Pending,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    // Not connected yet (ENOTCONN while connecting): wait.
                    Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => return Step::Pending,
                    Err(_) => return self.fail("send_failed"),
                },
                State::Receiving => {
                    if self.stream && !self.available().is_empty() {
                        return Step::Data;
                    }
                    if self.filled == self.buf.len() && !self.grow() {
                        return self.fail("body_too_large");
                    }
                    match self.sock.read(&mut self.buf[self.filled..]) {
                        Ok(0) => return self.eof(),
                        Ok(n) => {
                            self.filled += n;
                            if let Some(step) = self.process() {
                                return step;
                            }
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => return Step::Pending,
                        Err(e) if e.kind() == ErrorKind::Interrupted => {}
                        Err(_) => return self.fail("reset"),
                    }
                }
            }
        }
    }

    fn fail(&mut self, why: &'static str) -> Step {
        self.state = State::Finished;
        Step::Failed(why)
    }

    fn eof(&mut self) -> Step {
        let Some(d) = self.decoder.as_mut() else {
            return self.fail(if self.filled == 0 {
                "closed_without_response"
            } else {
                "truncated_head"
            });
        };
        match d.eof() {
            Ok(()) => {
                self.state = State::Finished;
                if self.stream && !self.available().is_empty() {
                    Step::Data
                } else {
                    Step::Done
                }
            }
            Err(e) => self.fail(e.as_str()),
        }
    }

    /// Parse/decode what arrived; `Some` when the owner must act.
    fn process(&mut self) -> Option<Step> {
        if self.head.is_none() {
            match client::parse_head(&self.buf[..self.filled]) {
                Ok(None) => return None,
                Ok(Some((head, n))) => {
                    let d = match Decoder::new(head.framing, self.limit) {
                        Ok(d) => d,
                        Err(e) => return Some(self.fail(e.as_str())),
                    };
                    if let BodyFraming::Length(len) = head.framing
                        && !self.stream
                        && n + len as usize > self.buf.len()
                    {
                        // Exact size known: grow once.
                        size_exact(&mut self.buf, n + len as usize);
                    }
                    self.body_start = n;
                    self.dec = n;
                    self.raw = n;
                    self.head = Some(head);
                    self.decoder = Some(d);
                }
                Err(e) => return Some(self.fail(e.as_str())),
            }
        }
        let d = self.decoder.as_mut()?;
        let done = match d.decode(&mut self.buf, &mut self.dec, &mut self.raw, self.filled) {
            Ok(done) => done,
            Err(e) => return Some(self.fail(e.as_str())),
        };
        if done {
            self.state = State::Finished;
        }
        if !self.head_reported {
            self.head_reported = true;
            return Some(Step::Head);
        }
        if self.stream && !self.available().is_empty() {
            return Some(Step::Data);
        }
        done.then_some(Step::Done)
    }

    /// Collect mode: make room (double, up to the cap). Stream mode: the
    /// buffer is full of raw bytes not decoded yet, which cannot happen
    /// unless a chunk line is absurdly long.
    fn grow(&mut self) -> bool {
        if self.stream {
            return false;
        }
        let max = self.limit as usize + client::MAX_HEAD + 64 * 1024;
        if self.buf.len() >= max {
            return false;
        }
        let new = (self.buf.len() * 2).max(STREAM_BUF).min(max);
        size_exact(&mut self.buf, new);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;
    use std::time::Duration;

    fn serve(reply: &'static [u8]) -> (tempdir::Dir, std::path::PathBuf) {
        let dir = tempdir::Dir::new();
        let path = dir.0.join("s.sock");
        let l = UnixListener::bind(&path).unwrap();
        std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut req = [0u8; 1024];
            let _ = std::io::Read::read(&mut s, &mut req);
            for piece in reply.chunks(7) {
                let _ = s.write_all(piece);
                std::thread::sleep(Duration::from_micros(50));
            }
        });
        (dir, path)
    }

    mod tempdir {
        pub struct Dir(pub std::path::PathBuf);
        impl Dir {
            pub fn new() -> Dir {
                let p = std::env::temp_dir().join(format!(
                    "km-shim-{}-{:?}",
                    std::process::id(),
                    std::thread::current().id()
                ));
                let _ = std::fs::remove_dir_all(&p);
                std::fs::create_dir_all(&p).unwrap();
                Dir(p)
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    /// Drive until done with a blocking-ish poll loop (test only).
    fn run(c: &mut ShimConn) -> Step {
        let until = Instant::now() + Duration::from_secs(5);
        loop {
            match c.drive() {
                Step::Pending | Step::Head => {
                    assert!(Instant::now() < until, "timed out");
                    std::thread::sleep(Duration::from_millis(1));
                }
                other => return other,
            }
        }
    }

    #[test]
    fn collects_a_chunked_body() {
        let (_d, path) = serve(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
        );
        let now = Instant::now();
        let mut c =
            ShimConn::connect(&path, "/metrics", false, 1 << 20, Vec::new(), 0, now, now).unwrap();
        assert_eq!(run(&mut c), Step::Done);
        let r = c.body_range();
        assert_eq!(&c.take_buf()[r], b"hello world");
    }

    #[test]
    fn streams_with_backpressure() {
        let (_d, path) = serve(b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello world");
        let now = Instant::now();
        let mut c = ShimConn::connect(&path, "/x", true, 1 << 20, Vec::new(), 0, now, now).unwrap();
        let mut got = Vec::new();
        loop {
            match run(&mut c) {
                Step::Data => {
                    let a = c.available();
                    let n = a.len().min(3);
                    got.extend_from_slice(&a[..n]);
                    c.consume(n);
                }
                Step::Done => break,
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(got, b"hello world");
    }

    #[test]
    fn failures_have_reasons() {
        let now = Instant::now();
        let missing = std::env::temp_dir().join("km-definitely-missing.sock");
        assert_eq!(
            ShimConn::connect(&missing, "/", false, 10, Vec::new(), 0, now, now).err(),
            Some("no_socket")
        );
        for (reply, why) in [
            (
                &b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort"[..],
                "truncated",
            ),
            (&b""[..], "closed_without_response"),
            (&b"garbage\r\n\r\n"[..], "malformed_response"),
            (
                &b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n"[..],
                "body_too_large",
            ),
        ] {
            let (_d, path) = serve(reply);
            let mut c =
                ShimConn::connect(&path, "/", false, 1000, Vec::new(), 0, now, now).unwrap();
            assert_eq!(run(&mut c), Step::Failed(why));
        }
    }
}
