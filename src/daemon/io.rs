//! Non-blocking sockets with their readiness remembered.
//!
//! mio is edge-triggered: an event says a socket *became* readable or
//! writable, once. [`Io`] keeps that as two flags, cleared only when a call
//! returns `WouldBlock` and set again by the next event, so the reactor
//! keeps reading and writing while the flags allow, resumes a connection
//! itself (after a timer, or when another connection made room) without
//! waiting for an event that will not come, and never spins on a socket
//! that has nothing to give.

use std::io::{self, ErrorKind, Read, Write};

/// What one read or write did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    /// `n > 0` bytes moved.
    Done(usize),
    /// End of stream (reads only).
    Eof,
    /// Not now: the flag is cleared until the next event.
    Blocked,
    Failed(ErrorKind),
}

pub(crate) struct Io<S> {
    pub(crate) sock: S,
    pub(crate) readable: bool,
    pub(crate) writable: bool,
}

impl<S: Read + Write> Io<S> {
    /// A new socket: assume both until told otherwise (the first event may
    /// have fired before registration finished).
    pub(crate) fn new(sock: S) -> Io<S> {
        Io {
            sock,
            readable: true,
            writable: true,
        }
    }

    pub(crate) fn on_event(&mut self, readable: bool, writable: bool) {
        self.readable |= readable;
        self.writable |= writable;
    }

    pub(crate) fn read(&mut self, buf: &mut [u8]) -> Op {
        if !self.readable || buf.is_empty() {
            return Op::Blocked;
        }
        loop {
            return match self.sock.read(buf) {
                Ok(0) => Op::Eof,
                Ok(n) => Op::Done(n),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    self.readable = false;
                    Op::Blocked
                }
                Err(e) => Op::Failed(e.kind()),
            };
        }
    }

    pub(crate) fn write(&mut self, buf: &[u8]) -> Op {
        if !self.writable || buf.is_empty() {
            return Op::Blocked;
        }
        loop {
            return match self.sock.write(buf) {
                Ok(0) => Op::Failed(ErrorKind::WriteZero),
                Ok(n) => Op::Done(n),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                // A unix socket still connecting answers ENOTCONN: wait.
                Err(e)
                    if e.kind() == ErrorKind::WouldBlock
                        || e.raw_os_error() == Some(libc::ENOTCONN) =>
                {
                    self.writable = false;
                    Op::Blocked
                }
                Err(e) => Op::Failed(e.kind()),
            };
        }
    }
}

/// EMFILE/ENFILE (and the kernel's own allocation failures): out of
/// descriptors, not a property of the peer.
pub(crate) fn out_of_fds(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An in-memory stream: reads from `input` then WouldBlock (or EOF).
    struct Mem {
        input: Vec<u8>,
        eof: bool,
        room: usize,
        written: Vec<u8>,
    }

    impl Read for Mem {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.input.is_empty() {
                return if self.eof {
                    Ok(0)
                } else {
                    Err(ErrorKind::WouldBlock.into())
                };
            }
            let n = buf.len().min(self.input.len());
            buf[..n].copy_from_slice(&self.input[..n]);
            self.input.drain(..n);
            Ok(n)
        }
    }

    impl Write for Mem {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.room == 0 {
                return Err(ErrorKind::WouldBlock.into());
            }
            let n = buf.len().min(self.room);
            self.room -= n;
            self.written.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn flags_follow_would_block_and_events() {
        let mut io = Io::new(Mem {
            input: b"abc".to_vec(),
            eof: false,
            room: 2,
            written: Vec::new(),
        });
        let mut b = [0u8; 8];
        assert_eq!(io.read(&mut b), Op::Done(3));
        assert_eq!(io.read(&mut b), Op::Blocked);
        assert!(!io.readable);
        io.sock.input.extend_from_slice(b"d");
        assert_eq!(io.read(&mut b), Op::Blocked, "no event yet: not read");
        io.on_event(true, false);
        assert_eq!(io.read(&mut b), Op::Done(1));
        assert_eq!(io.write(b"xyz"), Op::Done(2));
        assert_eq!(io.write(b"z"), Op::Blocked);
        assert!(!io.writable);
        io.sock.room = 10;
        io.on_event(false, true);
        assert_eq!(io.write(b"z"), Op::Done(1));
        assert_eq!(io.sock.written, b"xyz");
        io.sock.eof = true;
        io.on_event(true, false);
        assert_eq!(io.read(&mut b), Op::Eof);
    }

    #[test]
    fn fd_exhaustion_is_recognised() {
        assert!(out_of_fds(&io::Error::from_raw_os_error(libc::EMFILE)));
        assert!(out_of_fds(&io::Error::from_raw_os_error(libc::ENFILE)));
        assert!(!out_of_fds(&io::Error::from_raw_os_error(
            libc::ECONNREFUSED
        )));
    }
}
