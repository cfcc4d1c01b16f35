//! The real-peer rule (`tests/common/peer.rs`) on a child test process: a
//! missing peer is reported on the default `cargo test` output, past libtest's
//! capture, and fails the test under `KATA_MONITOR_CI=1`.

mod common;

use common::peer::require_peer;
use std::process::{Command, Output};

/// Run by `skip_is_visible_and_fails_in_ci` only (ignored in normal runs).
#[test]
#[ignore = "child of skip_is_visible_and_fails_in_ci"]
fn child_with_missing_peer() {
    let found: Result<(), String> = Err("not installed on purpose".into());
    if require_peer("frobnicator", found).is_none() {
        return;
    }
    unreachable!("the peer is never found");
}

fn run_child(ci: Option<&str>) -> Output {
    let mut cmd = Command::new(std::env::current_exe().expect("test binary"));
    // Default capture, as `cargo test` runs it.
    cmd.args(["--ignored", "--exact", "child_with_missing_peer"]);
    cmd.env_remove("KATA_MONITOR_CI");
    cmd.env_remove("RUST_TEST_NOCAPTURE");
    if let Some(v) = ci {
        cmd.env("KATA_MONITOR_CI", v);
    }
    cmd.output().expect("run the test binary")
}

#[test]
fn skip_is_visible_and_fails_in_ci() {
    let out = run_child(None);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains("test child_with_missing_peer ... ok"),
        "{stdout}"
    );
    assert!(
        stderr.contains(
            "SKIPPED child_with_missing_peer: frobnicator missing: not installed on purpose"
        ),
        "skip line not on the child's stderr:\n{stderr}"
    );

    for ci in ["1", "yes"] {
        let out = run_child(Some(ci));
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            !out.status.success(),
            "KATA_MONITOR_CI={ci} passed:\n{text}"
        );
        assert!(
            text.contains("test child_with_missing_peer ... FAILED"),
            "{text}"
        );
        assert!(
            text.contains("frobnicator missing under KATA_MONITOR_CI=1: not installed on purpose"),
            "{text}"
        );
    }
    // "0" and empty mean off, as elsewhere in the suite.
    assert!(run_child(Some("0")).status.success());
}
