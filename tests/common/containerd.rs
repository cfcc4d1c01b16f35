//! A private containerd (tests/peers/start-containerd.sh: all state under one
//! short directory, the CRI plugin, a `kata` runtime handler that is really
//! runc), torn down by tests/peers/stop-containerd.sh on drop, also when the
//! test panics. Needs root and containerd: check with
//! `peer::require_peer("containerd", peer::containerd())` first.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use super::cri_client::CriClient;

pub fn peers_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers")
}

pub struct Containerd {
    pub dir: PathBuf,
    pub socket: PathBuf,
}

impl Containerd {
    /// Starts it in `dir` (keep it short: unix socket paths are limited to
    /// 107 bytes).
    pub fn start(dir: &Path) -> Containerd {
        // guard first, so a half-started instance is cleaned up too
        let mut guard = Containerd {
            dir: dir.to_path_buf(),
            socket: PathBuf::new(),
        };
        let out = Command::new(peers_dir().join("start-containerd.sh"))
            .arg(dir)
            .output()
            .expect("run start-containerd.sh");
        assert!(
            out.status.success(),
            "start-containerd.sh failed: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8(out.stdout).unwrap();
        guard.socket = PathBuf::from(stdout.lines().last().expect("socket path on stdout").trim());
        guard
    }

    /// `ctr --address <socket> -n k8s.io ARGS...` (the CRI's namespace);
    /// stdout, or panics with ctr's stderr.
    pub fn ctr(&self, args: &[&str]) -> String {
        let out = Command::new("ctr")
            .arg("--address")
            .arg(&self.socket)
            .args(["-n", "k8s.io"])
            .args(args)
            .output()
            .expect("run ctr");
        assert!(
            out.status.success(),
            "ctr {args:?}: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        match Command::new(peers_dir().join("stop-containerd.sh"))
            .arg(&self.dir)
            .status()
        {
            Ok(s) if s.success() => {}
            other => eprintln!("stop-containerd.sh {}: {other:?}", self.dir.display()),
        }
    }
}

/// Two pods with runtime handler "kata" (really runc), `web-<tag>` in
/// namespace team-a and `db-<tag>` in team-b: their (name, uid, namespace)
/// and the sandbox ids containerd gave them.
pub fn two_kata_pods(
    cri: &mut CriClient,
    tag: u32,
) -> (Vec<(String, String, &'static str)>, Vec<String>) {
    let pods = vec![
        (format!("web-{tag}"), format!("uid-web-{tag}"), "team-a"),
        (format!("db-{tag}"), format!("uid-db-{tag}"), "team-b"),
    ];
    let ids = pods
        .iter()
        .map(|(name, uid, ns)| {
            cri.run_pod_sandbox(name, uid, ns, 0, "kata")
                .unwrap_or_else(|e| panic!("RunPodSandbox {name}: {e}"))
        })
        .collect();
    (pods, ids)
}
