//! The sans-IO core: the monitor's state machines and their state.
//!
//! Everything here is driven by calls that take `now` and return what the
//! reactor ([`crate::daemon`]) must do: bytes to write, a fetch to open, a
//! client to answer, an fd to close, a deadline to arm. Nothing here opens
//! or touches a file descriptor, reads the clock, logs, or blocks; every
//! transition is unit-tested with a virtual clock and in-memory bytes.
//!
//! * [`conn`]: a client connection (request heads in, responses out);
//!   [`body`]: the bodies it streams and its bounded output buffer.
//! * [`shim`]: one HTTP exchange with a shim (collect or stream), kept
//!   alive between rounds.
//! * [`scraper`]: fetch rounds, joining, snapshots, the scrape statistics;
//!   [`bufpool`]: the body buffers they recycle.
//! * [`timers`]: every deadline in one queue.
//! * [`registry`]: the sandbox list; [`exclusion`]: which sandboxes must
//!   not be scraped; [`cri_policy`]: when to ask the CRI runtime for pod
//!   metadata.
//! * [`routes`]: what each endpoint answers; [`proxy`]: the answers of
//!   requests forwarded to a shim.
//! * [`tls`]: TLS between a client socket and its connection, the
//!   server configuration built from the certificate files, and when to
//!   reload them.
//! * [`outcome`]: typed fetch failures; [`slab`]: generational keys.

#![warn(unreachable_pub)]

pub mod body;
pub mod bufpool;
pub mod conn;
pub mod cri_policy;
pub mod exclusion;
pub mod outcome;
pub mod proxy;
pub mod registry;
pub mod routes;
pub mod scraper;
pub mod shim;
pub mod slab;
pub mod timers;
pub mod tls;
