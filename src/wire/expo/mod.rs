//! Exposition engine (in progress).
