//! kata-monitor: a single-threaded Prometheus exporter for Kata Containers nodes.
//!
//! Layers (each module's docs say what it owns and what it must not do):
//!
//! * [`wire`]: sans-IO protocol cores. Pure parse/emit over byte slices: no file
//!   descriptors, no clock reads, no logging, no panics on untrusted bytes.

pub mod wire;
