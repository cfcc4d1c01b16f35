//! Independent decoders for the monitor's content codings: Debian's `zstd`
//! and `gzip` command-line tools (libzstd's and gzip's own decoders, not the
//! encoders' crates). `.ci/run` installs both; without them a test skips
//! visibly (and fails under `KATA_MONITOR_CI=1`, see [`super::peer`]).

use super::peer::{in_path, require_peer};
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// The decoder command for a `Content-Encoding`, when installed.
pub fn decoder(coding: &str) -> Option<PathBuf> {
    let tool = match coding {
        "gzip" => "gzip",
        "zstd" => "zstd",
        other => panic!("no decoder for {other}"),
    };
    require_peer(tool, in_path(tool))
}

/// Decode `data` with `tool -dc`; panics with the tool's message when the
/// stream is invalid.
pub fn decode_with(tool: &PathBuf, data: &[u8]) -> Vec<u8> {
    let mut child = Command::new(tool)
        .args(["-d", "-c", "-q"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}", tool.display()));
    let mut stdin = child.stdin.take().expect("piped");
    let input = data.to_vec();
    // Written from another thread: the decoder's output could fill its pipe.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().expect("decoder ran");
    writer.join().expect("writer");
    assert!(
        out.status.success(),
        "{} -dc rejected the stream: {}",
        tool.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}
