//! Sans-IO protocol cores: pure functions and state machines over bytes.
//!
//! Nothing in here opens a file descriptor, reads the clock, logs or blocks.
//! Callers (the reactor) own all I/O and pass time in explicitly.

pub mod cri;
pub mod deflate;
pub mod der;
pub mod expo;
pub mod grpc;
pub mod gzip;
pub mod http;
#[cfg(feature = "zstd")]
pub mod zstd;

#[cfg(test)]
pub(crate) mod test_util;
