//! One TLS connection between a client socket and its [`Conn`]; see the
//! module above for how the reactor drives it.

use crate::state::body::OUT_BUF;
use crate::state::conn::Conn;
use rustls::ServerConnection;
use std::io::{ErrorKind, Read, Write};
use std::sync::Arc;
use std::time::Instant;

/// Ciphertext read ahead: one full TLS record and its header.
const IN_BUF: usize = 16 * 1024 + 512;

/// What Go's net/http answers a plain HTTP request on a TLS port, and so
/// do we: a client that forgot `https://` learns why.
pub const PLAIN_HTTP_ANSWER: &[u8] =
    b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n";

/// Why a TLS connection was given up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureKind {
    /// The client spoke plain HTTP (answered [`PLAIN_HTTP_ANSWER`]).
    PlainHttp,
    /// Client certificates are required and none was presented.
    ClientCertMissing,
    /// The client's certificate did not verify (unknown CA, expired, ...).
    ClientCertInvalid,
    /// Any other failure before the handshake completed.
    Handshake,
    /// A failure after it (bad record, unexpected message).
    Protocol,
}

impl FailureKind {
    pub const ALL: [FailureKind; 5] = [
        FailureKind::PlainHttp,
        FailureKind::ClientCertMissing,
        FailureKind::ClientCertInvalid,
        FailureKind::Handshake,
        FailureKind::Protocol,
    ];

    pub const fn as_label(self) -> &'static str {
        match self {
            FailureKind::PlainHttp => "plain_http",
            FailureKind::ClientCertMissing => "client_certificate_missing",
            FailureKind::ClientCertInvalid => "client_certificate_invalid",
            FailureKind::Handshake => "handshake",
            FailureKind::Protocol => "protocol",
        }
    }
}

/// A failed TLS connection: what to count and log. Its answer (an alert,
/// or the plain HTTP 400) is queued in [`Session::poll_transmit`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub kind: FailureKind,
    pub detail: String,
}

pub struct Session {
    tls: ServerConnection,
    inbuf: Box<[u8]>,
    in_start: usize,
    in_end: usize,
    /// The first bytes the client sent, to recognise plain HTTP.
    first: [u8; 5],
    first_len: usize,
    out: Vec<u8>,
    out_start: usize,
    /// The socket reached EOF; told to rustls once the buffer is taken.
    eof: bool,
    eof_told: bool,
    /// close_notify queued: shut the write side once it is written.
    closing: bool,
    shut: bool,
    failure: Option<Failure>,
    failure_reported: bool,
}

impl Session {
    pub fn new(config: Arc<rustls::ServerConfig>) -> Result<Session, rustls::Error> {
        let mut tls = ServerConnection::new(config)?;
        tls.set_buffer_limit(Some(OUT_BUF));
        Ok(Session {
            tls,
            inbuf: vec![0; IN_BUF].into_boxed_slice(),
            in_start: 0,
            in_end: 0,
            first: [0; 5],
            first_len: 0,
            out: Vec::new(),
            out_start: 0,
            eof: false,
            eof_told: false,
            closing: false,
            shut: false,
            failure: None,
            failure_reported: false,
        })
    }

    pub fn is_handshaking(&self) -> bool {
        self.tls.is_handshaking()
    }

    /// Protocol version and cipher suite, once negotiated.
    pub fn negotiated(&self) -> Option<(String, String)> {
        let v = self.tls.protocol_version()?;
        let s = self.tls.negotiated_cipher_suite()?;
        Some((format!("{v:?}"), format!("{:?}", s.suite())))
    }

    /// Where to read ciphertext into, or `None` when rustls takes no more
    /// now (plaintext waits for the connection, the session failed or the
    /// socket ended).
    pub fn recv_buf(&mut self) -> Option<&mut [u8]> {
        if self.eof || self.failure.is_some() || !self.tls.wants_read() {
            return None;
        }
        if self.in_start == self.in_end {
            self.in_start = 0;
            self.in_end = 0;
        } else if self.in_end == self.inbuf.len() {
            self.inbuf.copy_within(self.in_start..self.in_end, 0);
            self.in_end -= self.in_start;
            self.in_start = 0;
        }
        (self.in_end < self.inbuf.len()).then(|| &mut self.inbuf[self.in_end..])
    }

    /// `n > 0` bytes were read into [`recv_buf`](Self::recv_buf).
    pub fn handle_read(&mut self, n: usize) {
        if self.first_len < self.first.len() {
            let take = n.min(self.first.len() - self.first_len);
            self.first[self.first_len..self.first_len + take]
                .copy_from_slice(&self.inbuf[self.in_end..self.in_end + take]);
            self.first_len += take;
        }
        self.in_end += n;
        self.feed();
    }

    /// The socket reached EOF.
    pub fn handle_eof(&mut self) {
        self.eof = true;
        self.feed();
    }

    /// Hand buffered ciphertext to rustls as far as it takes it. True when
    /// some was taken.
    fn feed(&mut self) -> bool {
        let mut took = false;
        while self.failure.is_none() && self.in_start < self.in_end && self.tls.wants_read() {
            let mut rd = &self.inbuf[self.in_start..self.in_end];
            match self.tls.read_tls(&mut rd) {
                // After the peer's close_notify nothing more is read.
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    self.in_start += n;
                    took = true;
                }
            }
            if let Err(e) = self.tls.process_new_packets() {
                self.fail(e);
            }
        }
        if self.eof && !self.eof_told && self.in_start == self.in_end && self.failure.is_none() {
            self.eof_told = true;
            // An empty read is how rustls learns of the EOF.
            let _ = self.tls.read_tls(&mut &[][..]);
            if let Err(e) = self.tls.process_new_packets() {
                self.fail(e);
            }
        }
        took
    }

    fn fail(&mut self, e: rustls::Error) {
        let handshaking = self.tls.is_handshaking();
        let kind = match &e {
            _ if handshaking && looks_like_http(&self.first[..self.first_len]) => {
                FailureKind::PlainHttp
            }
            rustls::Error::NoCertificatesPresented => FailureKind::ClientCertMissing,
            rustls::Error::InvalidCertificate(_) => FailureKind::ClientCertInvalid,
            _ if handshaking => FailureKind::Handshake,
            _ => FailureKind::Protocol,
        };
        // rustls queued its alert; the plain HTTP client gets an answer it
        // can read instead.
        let _ = self.tls.write_tls(&mut self.out);
        if kind == FailureKind::PlainHttp {
            self.out.clear();
            self.out_start = 0;
            self.out.extend_from_slice(PLAIN_HTTP_ANSWER);
        }
        self.failure = Some(Failure {
            kind,
            detail: e.to_string(),
        });
    }

    /// The failure, once (then close the connection after a last write).
    pub fn poll_failure(&mut self) -> Option<Failure> {
        if self.failure_reported {
            return None;
        }
        self.failure_reported = self.failure.is_some();
        self.failure.clone()
    }

    /// Move plaintext between rustls and `conn`: received plaintext into
    /// the connection while it reads, the connection's output into rustls
    /// once all earlier ciphertext is written, and new ciphertext out. True
    /// when anything moved or the connection changed what it waits for.
    pub fn pump(&mut self, conn: &mut Conn, now: Instant) -> bool {
        if self.failure.is_some() {
            return false;
        }
        let mut progress = false;
        while let Some(buf) = conn.recv_buf() {
            match self.tls.reader().read(buf) {
                Ok(n) if n > 0 => {
                    conn.handle_read(n, now);
                    progress = true;
                }
                // No plaintext now.
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                // Ok(0): the client's close_notify; an error: its socket
                // ended without one. Either way nothing more comes.
                _ => {
                    conn.handle_eof();
                    progress = true;
                    break;
                }
            }
        }
        progress |= self.feed();
        if self.failure.is_some() {
            return true;
        }
        if self.flushed() && !self.closing {
            let was_reading = conn.recv_buf().is_some();
            let data = conn.poll_transmit(now);
            if !data.is_empty() {
                let n = self.tls.writer().write(data).unwrap_or(0);
                if n > 0 {
                    conn.handle_written(n, now);
                    progress = true;
                }
            }
            // A finished response may have turned the connection back to
            // reading: plaintext rustls already holds is for it.
            progress |= !was_reading && conn.recv_buf().is_some();
        }
        if self.out_start == self.out.len() && self.tls.wants_write() {
            self.out.clear();
            self.out_start = 0;
            let _ = self.tls.write_tls(&mut self.out);
            progress = true;
        }
        progress
    }

    /// Every byte of ciphertext so far is written.
    fn flushed(&self) -> bool {
        self.out_start == self.out.len() && !self.tls.wants_write()
    }

    /// Ciphertext to write now.
    pub fn poll_transmit(&self) -> &[u8] {
        &self.out[self.out_start..]
    }

    /// `n` bytes of [`poll_transmit`](Self::poll_transmit) were written.
    pub fn handle_written(&mut self, n: usize) {
        self.out_start = (self.out_start + n).min(self.out.len());
        if self.out_start == self.out.len() {
            self.out_start = 0;
            self.out.clear();
            if self.out.capacity() > 2 * OUT_BUF {
                self.out = Vec::new();
            }
        }
    }

    /// The connection's last answer is out: send close_notify, then the
    /// socket's write side is shut ([`take_shutdown`](Self::take_shutdown)).
    pub fn close_notify(&mut self) {
        if !self.closing {
            self.closing = true;
            self.tls.send_close_notify();
        }
    }

    /// True once, when close_notify is written: shut the write side now.
    pub fn take_shutdown(&mut self) -> bool {
        if self.closing && !self.shut && self.flushed() {
            self.shut = true;
            return true;
        }
        false
    }

    /// Bytes held for this session (ciphertext both ways), for tests.
    pub fn buffered(&self) -> usize {
        (self.in_end - self.in_start) + (self.out.len() - self.out_start)
    }
}

/// The start of a plain HTTP request, as Go's `looksLikeHTTP` checks it.
fn looks_like_http(first: &[u8]) -> bool {
    matches!(first, b"GET /" | b"HEAD " | b"POST " | b"PUT /" | b"OPTIO")
}

#[cfg(test)]
mod tests;
