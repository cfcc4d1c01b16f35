//! Real peers (containerd, Prometheus and promtool, the Go kata-monitor,
//! python3 tools, qemu-user): the one rule every test that needs one follows.
//!
//! A test calls [`require_peer`] with what it found. When the peer is there it
//! gets it back. When it is missing:
//!
//! * under `KATA_MONITOR_CI=1` (set by `.ci/run`, which installs every peer)
//!   the test fails: a broken install step must not hide behind a green run;
//! * otherwise the test returns early, after printing one line
//!   `SKIPPED <test>: <peer> missing: <why>` to the process's standard error
//!   *file descriptor*. libtest captures `print!`/`eprint!` (and shows them
//!   only for failing tests), so an `eprintln!` skip message was invisible
//!   and the test showed as `ok` in 0.00 s; a write through
//!   `std::io::stderr()` bypasses that capture and appears in the default
//!   `cargo test` output (`tests/peer_selftest.rs` checks both behaviours on
//!   a child test process).
//!
//! ```ignore
//! let Some(bin) = require_peer("prometheus", find_prometheus()) else { return };
//! ```

#![allow(dead_code)]

use std::io::Write;
use std::path::PathBuf;

/// Is `KATA_MONITOR_CI` set (to anything but empty or `0`)?
pub fn in_ci() -> bool {
    std::env::var("KATA_MONITOR_CI").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// The peer when `found` is `Ok`; on `Err(why)` panics under
/// `KATA_MONITOR_CI=1`, else prints a visible skip line and returns `None`.
pub fn require_peer<T>(peer: &str, found: Result<T, String>) -> Option<T> {
    match found {
        Ok(t) => Some(t),
        Err(why) => {
            let test = std::thread::current()
                .name()
                .unwrap_or("<unnamed test>")
                .to_string();
            assert!(
                !in_ci(),
                "{test}: {peer} missing under KATA_MONITOR_CI=1: {why}"
            );
            visible(&format!(
                "SKIPPED {test}: {peer} missing: {why} (KATA_MONITOR_CI=1 makes this a failure)"
            ));
            None
        }
    }
}

/// One line to standard error past libtest's output capture.
pub fn visible(line: &str) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(format!("{line}\n").as_bytes());
    let _ = err.flush();
}

/// `tool` in `$PATH`, or why not.
pub fn in_path(tool: &str) -> Result<PathBuf, String> {
    std::env::var_os("PATH")
        .and_then(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join(tool))
                .find(|f| f.is_file())
        })
        .ok_or_else(|| format!("{tool} not in PATH"))
}

/// `Ok` when running as root, which the containerd peers need.
pub fn root() -> Result<(), String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        Ok(())
    } else {
        Err("needs root".into())
    }
}

/// containerd, ctr and runc installed and this test running as root: what
/// `tests/peers/start-containerd.sh` needs.
pub fn containerd() -> Result<(), String> {
    for tool in ["containerd", "ctr", "runc"] {
        in_path(tool).map_err(|e| format!("{e} (run tests/peers/install.sh as root)"))?;
    }
    root()
}
