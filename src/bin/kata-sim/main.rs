//! kata-sim: a simulated Kata Containers node, for testing and benchmarking
//! kata-monitor without Kata, VMs or root.
//!
//! **Test tool only; not shipped in the image.**  It uses plain threads and
//! blocking I/O (one accept thread per sandbox, one reused thread per
//! connection), but pre-renders what it can so that serving scrapes costs
//! little next to the monitor being measured: about 3 ms of CPU for 100
//! concurrent 84 KB scrapes on keep-alive connections.
//!
//! What it fakes: under one directory `DIR`, the two sandbox roots of a real
//! node (`DIR/vc/sbs` for the Go runtime, `DIR/kata` for runtime-rs), one
//! directory per sandbox, and in each the shim's `shim-monitor.sock`, served
//! like the Go shim's HTTP server: `/metrics` (fixture bodies whose counters
//! move on every scrape), `/agent-url`, `/debug/vars` and `/debug/pprof/*`.
//! Per-sandbox faults (hang, HTTP 500, garbage, truncated, slow, refused,
//! malformed HTTP, oversized) exercise the monitor's error paths.
//!
//! Modules: `body` (counter templates), `shim` (endpoints and threads),
//! `http` (wire format), `faults`, `debug` (pprof/expvar fakes), `node`
//! (layout and sandbox lifecycle), `control` (stdin protocol), `monitor`
//! (`--monitor`), `pool` (reused connection threads).
//!
//! Directory: unix socket paths must fit in 108 bytes and
//! `DIR/vc/sbs/<64-hex-id>/shim-monitor.sock` leaves 17 bytes for `DIR`.  So
//! the default `$TMPDIR/kata-sim.<pid>` is used only when that short; else
//! `/tmp/ksim.<pid>` (or a `mkdtemp` name) is; a longer `--dir` is refused.
//!
//! Startup output on stdout (then only control answers are written there):
//!
//! ```text
//! ready dir=<DIR> roots=<GO_ROOT>,<RS_ROOT> sandboxes=<N>
//! sandbox <index> <id> <root>        (one per sandbox)
//! end
//! ```

mod body;
mod control;
mod debug;
mod faults;
mod http;
mod monitor;
mod node;
mod pool;
mod shim;

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, BufRead, Read, Write};
use std::os::fd::FromRawFd;
use std::path::PathBuf;
use std::process::{Child, ExitStatus};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::Duration;

use body::{Bodies, BodyFile, BodyKind};
use faults::Fault;
use monitor::MonitorOpts;
use node::Node;
use shim::ShimConfig;

const USAGE: &str = "\
kata-sim: a simulated Kata node (fake shims on unix sockets) for testing kata-monitor

usage: kata-sim [OPTIONS] [-- MONITOR-ARGS...]

  --sandboxes N        sandboxes to start with (default 3)
  --ids ID1,ID2,...    ids of the first sandboxes (default: generated, stable per
                       index), e.g. pod sandbox ids from a real CRI runtime
  --dir DIR            node directory (default: a fresh temporary one, removed on
                       exit); at most 17 bytes, for unix socket path limits
  --bodies LIST        bodies cycled over sandboxes: default,small,large,rs
                       (default: default); rs sandboxes live under DIR/kata
  --body-file [rs:]PATH  serve this body instead (repeatable: the files are
                       cycled over sandboxes; rs: puts them under DIR/kata)
  --frozen             counters do not move: every scrape gets the body as is
  --content-length     send bodies with Content-Length instead of chunked
  --chunk-size BYTES   chunk size of chunked bodies (default 4096)
  --slow-ms MS         pause between 1 KB pieces of the slow fault (default 50)
  --trace-interval-ms MS  pause between /debug/pprof/trace chunks (default 50)
  --fault INDEX=KIND   start sandbox INDEX with a fault (repeatable); KIND is one of
                       ok hang http500 garbage close-mid-body slow refuse
                       no-socket-yet stale-socket bad-http huge
  --exit-on-eof        exit when stdin closes (default: keep serving)
  --monitor            also run kata-monitor against the node
  --monitor-bin PATH   monitor binary (default: kata-monitor next to kata-sim)
  --listen ADDR        monitor listen address (default 127.0.0.1:8090)
  -h, --help           this help

stdin commands (each answered by one `ok ...` or `err ...` line on stdout):
  add [KIND] | remove ID | fault ID KIND | list | scrapes ID | quit
  (KIND: default small large rs, or file:N for the Nth --body-file from 0)
";

struct Cli {
    sandboxes: usize,
    ids: Vec<String>,
    dir: Option<PathBuf>,
    bodies: Vec<BodyKind>,
    body_files: Vec<PathBuf>,
    shim: ShimConfig,
    faults: Vec<(usize, Fault)>,
    exit_on_eof: bool,
    monitor: Option<MonitorOpts>,
}

fn parse_cli() -> Result<Cli, String> {
    use lexopt::prelude::*;
    let err = |e: lexopt::Error| e.to_string();
    let mut cli = Cli {
        sandboxes: 3,
        ids: Vec::new(),
        dir: None,
        bodies: vec![BodyKind::Default],
        body_files: Vec::new(),
        shim: ShimConfig {
            content_length: false,
            chunk_size: 4096,
            slow_ms: 50,
            trace_interval_ms: 50,
            frozen: false,
        },
        faults: Vec::new(),
        exit_on_eof: false,
        monitor: None,
    };
    let (mut monitor, mut bin, mut listen, mut extra) = (false, None, None, Vec::<OsString>::new());
    let mut p = lexopt::Parser::from_env();
    while let Some(arg) = p.next().map_err(err)? {
        match arg {
            Long("sandboxes") => cli.sandboxes = p.value().and_then(|v| v.parse()).map_err(err)?,
            Long("ids") => {
                let list = p.value().and_then(|v| v.string()).map_err(err)?;
                cli.ids = list.split(',').map(|s| s.trim().to_string()).collect();
                for id in &cli.ids {
                    node::check_id(id)?;
                }
            }
            Long("dir") => cli.dir = Some(p.value().map_err(err)?.into()),
            Long("bodies") => {
                let list = p.value().and_then(|v| v.string()).map_err(err)?;
                cli.bodies = list
                    .split(',')
                    .map(|b| BodyKind::parse(b.trim()).filter(|k| !matches!(k, BodyKind::File(_))))
                    .collect::<Option<_>>()
                    .filter(|v: &Vec<_>| !v.is_empty())
                    .ok_or_else(|| format!("bad --bodies {list:?}: use default,small,large,rs"))?;
            }
            Long("body-file") => cli.body_files.push(p.value().map_err(err)?.into()),
            Long("frozen") => cli.shim.frozen = true,
            Long("content-length") => cli.shim.content_length = true,
            Long("chunk-size") => {
                cli.shim.chunk_size = p.value().and_then(|v| v.parse()).map_err(err)?;
                if cli.shim.chunk_size == 0 {
                    return Err("--chunk-size must be positive".into());
                }
            }
            Long("slow-ms") => cli.shim.slow_ms = p.value().and_then(|v| v.parse()).map_err(err)?,
            Long("trace-interval-ms") => {
                cli.shim.trace_interval_ms = p.value().and_then(|v| v.parse()).map_err(err)?
            }
            Long("fault") => {
                let spec = p.value().and_then(|v| v.string()).map_err(err)?;
                let parsed = spec
                    .split_once('=')
                    .and_then(|(i, k)| Some((i.parse().ok()?, Fault::parse(k)?)));
                cli.faults.push(parsed.ok_or_else(|| {
                    format!(
                        "bad --fault {spec:?}: want INDEX=KIND, KIND one of {}",
                        faults::NAMES
                    )
                })?);
            }
            Long("exit-on-eof") => cli.exit_on_eof = true,
            Long("monitor") => monitor = true,
            Long("monitor-bin") => bin = Some(p.value().map_err(err)?.into()),
            Long("listen") => listen = Some(p.value().and_then(|v| v.string()).map_err(err)?),
            Value(v) => extra.push(v),
            Short('h') | Long("help") => {
                let _ = io::stdout().write_all(USAGE.as_bytes());
                std::process::exit(0);
            }
            _ => return Err(arg.unexpected().to_string()),
        }
    }
    if let Some(&(i, _)) = cli.faults.iter().find(|(i, _)| *i >= cli.sandboxes) {
        return Err(format!(
            "--fault {i}=...: there are only {} sandboxes",
            cli.sandboxes
        ));
    }
    if monitor {
        let listen = listen.unwrap_or_else(|| "127.0.0.1:8090".into());
        cli.monitor = Some(MonitorOpts {
            bin,
            listen,
            args: extra,
        });
    } else if !extra.is_empty() || bin.is_some() || listen.is_some() {
        return Err("--monitor-bin, --listen and MONITOR-ARGS need --monitor".into());
    }
    Ok(cli)
}

fn main() {
    let cli = match parse_cli() {
        Ok(cli) => cli,
        Err(e) => {
            warn(&format!("{e}\n(see kata-sim --help)"));
            std::process::exit(2);
        }
    };
    if let Err(e) = run(cli) {
        warn(&format!("error: {e}"));
        std::process::exit(1);
    }
}

enum Event {
    Quit,
    Signal(i32),
    MonitorExit(io::Result<ExitStatus>),
}

fn run(cli: Cli) -> Result<(), String> {
    let files = cli
        .body_files
        .iter()
        .map(|p| BodyFile::read(p))
        .collect::<Result<Vec<_>, _>>()?;
    // Every sandbox holds a listening socket and its connections: 1000
    // sandboxes scraped by two monitors need over 3000 fds.
    kata_monitor::daemon::procfs::raise_nofile_limit();
    let (tx, rx) = mpsc::channel();
    install_signals(tx.clone()).map_err(|e| format!("cannot install signal handlers: {e}"))?;

    let mut node = Node::create(cli.dir.clone(), Bodies::new(files), cli.shim)?;
    if let Err(e) = node.set_ids(cli.ids.clone()) {
        node.cleanup();
        return Err(e);
    }
    for i in 0..cli.sandboxes {
        let kind = if !cli.body_files.is_empty() {
            BodyKind::File(i % cli.body_files.len())
        } else {
            cli.bodies[i % cli.bodies.len()]
        };
        let fault = cli
            .faults
            .iter()
            .rev()
            .find(|(j, _)| *j == i)
            .map_or(Fault::Ok, |&(_, f)| f);
        if let Err(e) = node.add(kind, fault) {
            node.cleanup();
            return Err(e);
        }
    }
    print_ready(&node);

    let mut child = match &cli.monitor {
        Some(opts) => match monitor::spawn(opts, &node) {
            Ok(c) => Some(c),
            Err(e) => {
                node.cleanup();
                return Err(e);
            }
        },
        None => None,
    };
    let pid = child.as_ref().map(Child::id);
    if let Some(c) = child.take() {
        wait_monitor(c, tx.clone());
    }
    let node = Arc::new(Mutex::new(node));
    let ctl = Arc::clone(&node);
    let exit_on_eof = cli.exit_on_eof;
    thread::Builder::new()
        .name("control".into())
        .spawn(move || control_loop(&ctl, &tx, exit_on_eof))
        .map_err(|e| format!("cannot start control thread: {e}"))?;

    let code = event_loop(&rx, pid);
    node.lock().unwrap_or_else(|e| e.into_inner()).cleanup();
    std::process::exit(code);
}

/// Waits for quit, a signal or the monitor's exit; returns the exit code.
fn event_loop(rx: &mpsc::Receiver<Event>, pid: Option<u32>) -> i32 {
    loop {
        match (rx.recv(), pid) {
            (Ok(Event::Signal(sig)), Some(pid)) => forward(pid, sig),
            (Ok(Event::Signal(_)), None) | (Ok(Event::Quit), None) | (Err(_), _) => return 0,
            (Ok(Event::Quit), Some(pid)) => {
                forward(pid, libc::SIGTERM);
                match rx.recv_timeout(Duration::from_secs(10)) {
                    Ok(Event::MonitorExit(_)) => {}
                    _ => forward(pid, libc::SIGKILL),
                }
                return 0;
            }
            (Ok(Event::MonitorExit(status)), _) => {
                return match status {
                    Ok(s) => s.code().unwrap_or_else(|| {
                        use std::os::unix::process::ExitStatusExt;
                        128 + s.signal().unwrap_or(0)
                    }),
                    Err(e) => {
                        warn(&format!("waiting for the monitor: {e}"));
                        1
                    }
                };
            }
        }
    }
}

/// A `kata-sim: ` line on stderr; never panics (unlike `eprintln!`).
pub fn warn(msg: &str) {
    let _ = writeln!(io::stderr(), "kata-sim: {msg}");
}

fn forward(pid: u32, sig: i32) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: plain kill(2); the child is not reaped until its waiter
        // thread reports, so the pid is still ours.
        unsafe { libc::kill(pid, sig) };
    }
}

fn wait_monitor(mut child: Child, tx: mpsc::Sender<Event>) {
    thread::spawn(move || {
        let status = child.wait();
        let _ = tx.send(Event::MonitorExit(status));
    });
}

fn print_ready(node: &Node) {
    let mut out = io::stdout().lock();
    let list = node.by_index();
    let _ = writeln!(
        out,
        "ready dir={} roots={},{} sandboxes={}",
        node.dir.display(),
        node.go_root.display(),
        node.rs_root.display(),
        list.len()
    );
    for (id, sb) in list {
        let _ = writeln!(out, "sandbox {} {id} {}", sb.index, sb.root.display());
    }
    let _ = writeln!(out, "end");
    let _ = out.flush();
}

/// Reads control commands from stdin until `quit` (or EOF).
fn control_loop(node: &Mutex<Node>, tx: &mpsc::Sender<Event>, exit_on_eof: bool) {
    let stdin = io::stdin();
    let mut line = String::new();
    loop {
        line.clear();
        match stdin.lock().read_line(&mut line) {
            Ok(0) | Err(_) => {
                if exit_on_eof {
                    let _ = tx.send(Event::Quit);
                }
                return;
            }
            Ok(_) => {}
        }
        let reply = control::handle(&mut node.lock().unwrap_or_else(|e| e.into_inner()), &line);
        if let Some(text) = reply.line {
            let mut out = io::stdout().lock();
            let _ = writeln!(out, "{text}");
            let _ = out.flush();
        }
        if reply.quit {
            let _ = tx.send(Event::Quit);
            return;
        }
    }
}

/// Write end of the self-pipe the signal handler writes signal numbers to.
static SIGNAL_PIPE: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_signal(sig: libc::c_int) {
    let fd = SIGNAL_PIPE.load(Ordering::Relaxed);
    if fd >= 0 {
        let b = sig as u8;
        // SAFETY: write(2) is async-signal-safe; errno is preserved.
        unsafe {
            let errno = *libc::__errno_location();
            libc::write(fd, (&raw const b).cast(), 1);
            *libc::__errno_location() = errno;
        }
    }
}

/// Routes SIGINT and SIGTERM to `tx` through a self-pipe and a thread.
fn install_signals(tx: mpsc::Sender<Event>) -> io::Result<()> {
    let mut fds = [0; 2];
    // SAFETY: fds is a valid 2-int array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    SIGNAL_PIPE.store(fds[1], Ordering::Relaxed);
    // SAFETY: we own the fresh read end.
    let mut rd = unsafe { File::from_raw_fd(fds[0]) };
    thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let mut b = [0u8; 1];
            while let Ok(1) = rd.read(&mut b) {
                if tx.send(Event::Signal(i32::from(b[0]))).is_err() {
                    return;
                }
            }
        })?;
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: a zeroed sigaction with our handler, empty mask, SA_RESTART.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as *const () as usize;
            sa.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            if libc::sigaction(sig, &sa, std::ptr::null_mut()) != 0 {
                return Err(io::Error::last_os_error());
            }
        }
    }
    Ok(())
}
