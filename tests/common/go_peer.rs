//! Upstream's Go kata-monitor as a peer, for the differential tests and the
//! end-to-end benchmark's `--baseline`.
//!
//! The peer is a command taking this monitor's flag spelling
//! (`--listen-address`, `--sandbox-dirs`, `--runtime-endpoint`,
//! `--log-level`): `../shared/peers/go-kata-monitor/run-go.sh` beside the
//! repository (CI has the same layout), or whatever `KATA_MONITOR_GO_PEER`
//! names. `run-go.sh` runs the Go binary in a private mount namespace with
//! the given roots bound on `/run/vc/sbs` and `/run/kata`, so it needs root;
//! it execs, so the child's pid is the Go process's own.
//!
//! Go does not log the port it bound, so [`start`] picks a free
//! port itself and waits until the peer answers on it. The result is an
//! ordinary [`Monitor`] handle.

use super::node::{Monitor, http};
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Overrides where the Go peer is found.
pub const ENV: &str = "KATA_MONITOR_GO_PEER";
/// Where the peer is, relative to the repository root's parent (CI's
/// layout: `../shared`) or, for a worktree nested deeper, to one of its
/// ancestors.
pub const DEFAULT_PATH: &str = "shared/peers/go-kata-monitor/run-go.sh";

/// The Go peer's command, or why it cannot run here.
pub fn locate() -> Result<PathBuf, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let path = match std::env::var_os(ENV) {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => root
            .ancestors()
            .skip(1)
            .map(|a| a.join(DEFAULT_PATH))
            .find(|p| p.exists())
            .unwrap_or_else(|| root.join("..").join(DEFAULT_PATH)),
    };
    let meta = std::fs::metadata(&path).map_err(|e| {
        format!(
            "the Go kata-monitor peer {} is missing ({e}); set {ENV} to its run-go.sh",
            path.display()
        )
    })?;
    use std::os::unix::fs::PermissionsExt;
    if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
        return Err(format!("{} is not an executable file", path.display()));
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(format!(
            "{} needs root (it binds the sandbox roots in a private mount namespace)",
            path.display()
        ));
    }
    Ok(path)
}

/// The Go peer, or `None` after the visible skip of
/// [`require_peer`](super::peer::require_peer) (a failure under
/// `KATA_MONITOR_CI=1`). `test` names the test in the skip line, since the
/// differential tests run the check from their own thread name too.
pub fn or_skip(test: &str) -> Option<PathBuf> {
    super::peer::require_peer(
        "the Go kata-monitor",
        locate().map_err(|why| format!("{test}: {why}")),
    )
}

/// Starts a baseline monitor (the Go peer, or any command with the same
/// flags), `cmd --listen-address 127.0.0.1:PORT ARGS...`, and waits until
/// it answers `GET /`. A port taken meanwhile by someone else makes the
/// peer exit: then another port is tried. Dropping the result kills it
/// (the Go process itself: run-go.sh execs; its mount namespace goes with
/// it).
pub fn start(cmd: &Path, args: &[&str]) -> Monitor {
    let mut last = String::new();
    for _ in 0..5 {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let mut child = Command::new(cmd)
            .arg("--listen-address")
            .arg(addr.to_string())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", cmd.display()));
        let log = Arc::new(Mutex::new(String::new()));
        let (stderr, log2) = (child.stderr.take().unwrap(), log.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let mut l = log2.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                last = format!(
                    "{} exited ({status}): {}",
                    cmd.display(),
                    log.lock().unwrap()
                );
                break;
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
                && http(addr, "GET", "/", &[]).status == 200
            {
                return Monitor { child, addr, log };
            }
            if Instant::now() > until {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "{} did not answer on {addr}: {}",
                    cmd.display(),
                    log.lock().unwrap()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    panic!("the baseline did not start: {last}");
}
