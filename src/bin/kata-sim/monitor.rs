//! `--monitor`: run kata-monitor against the simulated node.
//!
//! The monitor gets its own process group, so a terminal Ctrl-C reaches only
//! kata-sim, which forwards it once (no double signal), and a parent-death
//! signal, so it never outlives a killed kata-sim.  Its stdout goes to our
//! stderr: kata-sim's stdout carries the control protocol only.

use std::ffi::OsString;
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use crate::node::Node;

pub struct MonitorOpts {
    pub bin: Option<PathBuf>,
    pub listen: String,
    pub args: Vec<OsString>,
}

/// Spawns the monitor and prints the guide to stderr.
pub fn spawn(opts: &MonitorOpts, node: &Node) -> Result<Child, String> {
    let bin = match &opts.bin {
        Some(b) => b.clone(),
        None => std::env::current_exe()
            .map_err(|e| format!("cannot locate kata-sim's own executable: {e}"))?
            .with_file_name("kata-monitor"),
    };
    if !bin.exists() {
        return Err(format!(
            "monitor binary {} not found (build it with `cargo build --bin kata-monitor`, or pass --monitor-bin)",
            bin.display()
        ));
    }
    let out = std::io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .map_err(|e| format!("cannot duplicate stderr: {e}"))?;
    let mut cmd = Command::new(&bin);
    cmd.arg("--sandbox-dirs")
        .arg(format!(
            "{},{}",
            node.go_root.display(),
            node.rs_root.display()
        ))
        .arg("--listen-address")
        .arg(&opts.listen)
        .args(&opts.args)
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .process_group(0);
    // SAFETY: prctl is async-signal-safe; nothing else runs in the child.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    let child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
    print_guide(opts, node, &bin, child.id());
    Ok(child)
}

fn print_guide(opts: &MonitorOpts, node: &Node, bin: &std::path::Path, pid: u32) {
    let addr = &opts.listen;
    let first = node
        .by_index()
        .first()
        .map_or("<sandbox-id>".to_string(), |(id, _)| id.to_string());
    let n = node.ids().count();
    crate::warn(&format!(
        "{n} fake sandboxes under {dir}\n\
         kata-sim: started {bin} (pid {pid}) on http://{addr}; try:\n\
         \x20 curl -s http://{addr}/metrics | head\n\
         \x20 curl -s http://{addr}/sandboxes\n\
         \x20 curl -s 'http://{addr}/metrics?sandbox={first}' | head\n\
         \x20 curl -s --compressed http://{addr}/metrics | wc -c\n\
         kata-sim: Ctrl-C stops both; stdin takes commands (add [KIND], remove ID, fault ID KIND, list, scrapes ID, quit).",
        dir = node.dir.display(),
        bin = bin.display(),
    ));
}
