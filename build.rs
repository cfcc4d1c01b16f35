//! Embeds the git commit in the binary for `kata-monitor version` and
//! `kata_monitor_build_info`, unless the builder already set
//! `KATA_MONITOR_COMMIT` (the Dockerfile and `deploy/build-static.sh` do; a
//! source tarball without `.git` gets "unknown").

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!s.is_empty()).then_some(s)
}

fn main() {
    println!("cargo:rerun-if-env-changed=KATA_MONITOR_COMMIT");
    if std::env::var_os("KATA_MONITOR_COMMIT").is_some() {
        return;
    }
    let Some(commit) = git(&["rev-parse", "--short=12", "HEAD"]) else {
        return;
    };
    // Re-run when HEAD moves: HEAD itself (branch switch) and the ref it names.
    if let Some(dir) = git(&["rev-parse", "--git-dir"]) {
        println!("cargo:rerun-if-changed={dir}/HEAD");
        if let Some(r) = git(&["symbolic-ref", "-q", "HEAD"]) {
            if std::path::Path::new(&format!("{dir}/{r}")).exists() {
                println!("cargo:rerun-if-changed={dir}/{r}");
            }
        }
        // The reflog moves on every commit, even when the branch ref is packed.
        let reflog = format!("{dir}/logs/HEAD");
        if std::path::Path::new(&reflog).exists() {
            println!("cargo:rerun-if-changed={reflog}");
        }
        // Only existing files: cargo re-runs the script on every build for a missing one.
        let packed = format!("{dir}/packed-refs");
        if std::path::Path::new(&packed).exists() {
            println!("cargo:rerun-if-changed={packed}");
        }
    }
    println!("cargo:rustc-env=KATA_MONITOR_COMMIT={commit}");
}
