//! kata-monitor: a single-threaded Prometheus exporter for Kata Containers nodes.
//!
//! Layers (each module's docs say what it owns and what it must not do):
//!
//! * [`wire`]: sans-IO protocol cores. Pure parse/emit over byte slices: no file
//!   descriptors, no clock reads, no logging, no panics on untrusted bytes.
//! * [`daemon`]: the reactor. One `mio` event loop that owns every fd
//!   (listener, client connections, shim sockets, inotify, signals) and drives
//!   the cores; plus the command line, the logger and the endpoints.

pub mod daemon;
pub mod state;
pub mod wire;
