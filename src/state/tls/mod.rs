//! TLS between a client socket and its [`Conn`], sans-IO.
//!
//! Owns: a rustls `ServerConnection`, the ciphertext read from the socket
//! and not yet taken by rustls, the ciphertext to write, the close_notify
//! on a graceful close, and what a failed handshake is answered and
//! counted as. [`Session::pump`] moves plaintext between rustls and the
//! connection machine.
//!
//! The reactor reads ciphertext into [`Session::recv_buf`] and reports
//! [`handle_read`](Session::handle_read)/[`handle_eof`](Session::handle_eof),
//! calls [`pump`](Session::pump), writes [`poll_transmit`](Session::poll_transmit)
//! and reports [`handle_written`](Session::handle_written); it shuts the
//! socket's write side when [`take_shutdown`](Session::take_shutdown) says
//! so, and closes the connection on [`Failure`].
//!
//! Backpressure is kept as over plain HTTP: plaintext is taken from the
//! connection only once every byte of ciphertext before it has been
//! written to the socket, and rustls's own buffers are capped, so a slow
//! reader holds at most one output buffer's worth (`OUT_BUF`) in rustls,
//! its ciphertext here, and the connection's output buffer, never a whole
//! response. Since the connection finishes a response only when its
//! plaintext is taken, it shuts the socket (after close_notify) only when
//! the response is on the wire.
//!
//! [`policy`] (what the flags mean) and [`reload`] (when to reload the
//! files) need no TLS library; [`session`] and [`setup`] exist with the
//! `tls` cargo feature (on by default: the image ships it).
//!
//! Must not: touch a socket or file, read the clock, log.

pub mod policy;
pub mod reload;
#[cfg(feature = "tls")]
pub mod session;
#[cfg(feature = "tls")]
pub mod setup;

#[cfg(feature = "tls")]
pub use session::{Failure, FailureKind, PLAIN_HTTP_ANSWER, Session};
