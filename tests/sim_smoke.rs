//! Smoke test of `kata-sim`, the simulated Kata node used to test kata-monitor:
//! start it with three sandboxes, talk raw HTTP/1.1 to the fake shims over
//! their unix sockets, drive the stdin control protocol, and quit.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const DEFAULT: &[u8] = include_bytes!("fixtures/default.prom");
const SMALL: &[u8] = include_bytes!("fixtures/small.prom");
const RS: &[u8] = include_bytes!("fixtures/rs-dragonball.prom");
const TIMEOUT: Duration = Duration::from_secs(5);

/// The running simulator; killed (and its directory removed) if the test fails.
struct Sim {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
    dir: PathBuf,
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Sim {
    /// Starts kata-sim with `args`; its stdout lines arrive on a channel.
    fn spawn(args: &[&str]) -> Sim {
        let mut child = Command::new(env!("CARGO_BIN_EXE_kata-sim"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn kata-sim");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                if tx.send(line.unwrap()).is_err() {
                    return;
                }
            }
        });
        Sim {
            child,
            stdin,
            lines,
            dir: PathBuf::new(),
        }
    }

    fn line(&self) -> String {
        self.lines
            .recv_timeout(TIMEOUT)
            .expect("kata-sim stdout line")
    }

    /// Sends one control command and returns its answer line.
    fn cmd(&mut self, cmd: &str) -> String {
        writeln!(self.stdin, "{cmd}").unwrap();
        self.stdin.flush().unwrap();
        self.line()
    }
}

struct Response {
    status: u16,
    headers: HashMap<String, String>,
    body: Vec<u8>,
    /// Sizes of the chunks of a chunked body (empty otherwise).
    chunks: Vec<usize>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    fn text(&self) -> String {
        String::from_utf8(self.body.clone()).expect("utf-8 body")
    }
}

fn connect(sock: &Path) -> BufReader<UnixStream> {
    let s = UnixStream::connect(sock).unwrap_or_else(|e| panic!("connect {}: {e}", sock.display()));
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    BufReader::new(s)
}

fn send(conn: &mut BufReader<UnixStream>, raw: &str) {
    conn.get_mut().write_all(raw.as_bytes()).unwrap();
}

fn get(conn: &mut BufReader<UnixStream>, target: &str) -> Response {
    send(
        conn,
        &format!("GET {target} HTTP/1.1\r\nHost: shim\r\n\r\n"),
    );
    read_response(conn)
}

fn read_line(conn: &mut BufReader<UnixStream>) -> String {
    let mut line = Vec::new();
    conn.read_until(b'\n', &mut line).unwrap();
    assert!(line.ends_with(b"\r\n"), "bad line {line:?}");
    line.truncate(line.len() - 2);
    String::from_utf8(line).unwrap()
}

fn read_response(conn: &mut BufReader<UnixStream>) -> Response {
    let status_line = read_line(conn);
    let status = status_line
        .strip_prefix("HTTP/1.1 ")
        .and_then(|s| s.get(..3))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let mut headers = HashMap::new();
    loop {
        let line = read_line(conn);
        if line.is_empty() {
            break;
        }
        let (k, v) = line.split_once(": ").expect("header");
        headers.insert(k.to_ascii_lowercase(), v.to_string());
    }
    let mut body = Vec::new();
    let mut chunks = Vec::new();
    if headers.get("transfer-encoding").map(String::as_str) == Some("chunked") {
        loop {
            let size = usize::from_str_radix(&read_line(conn), 16).expect("chunk size");
            if size == 0 {
                assert_eq!(read_line(conn), "", "no trailers expected");
                break;
            }
            let start = body.len();
            body.resize(start + size, 0);
            conn.read_exact(&mut body[start..]).unwrap();
            assert_eq!(read_line(conn), "", "chunk must end with CRLF");
            chunks.push(size);
        }
    } else if let Some(n) = headers.get("content-length") {
        body.resize(n.parse().unwrap(), 0);
        conn.read_exact(&mut body).unwrap();
    } else {
        conn.read_to_end(&mut body).unwrap();
    }
    Response {
        status,
        headers,
        body,
        chunks,
    }
}

fn at_eof(conn: &mut BufReader<UnixStream>) -> bool {
    let mut b = [0u8; 1];
    matches!(conn.read(&mut b), Ok(0))
}

/// Sample value text by series, and the declared type of each sample's family.
fn samples(body: &[u8]) -> Vec<(String, String, String)> {
    let text = std::str::from_utf8(body).unwrap();
    let mut ty = String::new();
    let mut out = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            ty = rest.split(' ').nth(1).unwrap().to_string();
        } else if !line.starts_with('#') && !line.is_empty() {
            let (series, value) = line.rsplit_once(' ').expect("sample line");
            out.push((series.to_string(), value.to_string(), ty.clone()));
        }
    }
    out
}

/// Checks that scrape 2 moved every counter-like value by exactly 1 and
/// nothing else.
fn check_moved_once(first: &[u8], second: &[u8]) {
    let (a, b) = (samples(first), samples(second));
    assert_eq!(a.len(), b.len());
    let mut moved = 0;
    for ((series, v1, ty), (series2, v2, _)) in a.iter().zip(&b) {
        assert_eq!(series, series2);
        let name = series.split('{').next().unwrap();
        let counts = ty == "counter"
            || (matches!(&**ty, "histogram" | "summary")
                && (name.ends_with("_sum")
                    || name.ends_with("_count")
                    || name.ends_with("_bucket")));
        let finite = v1.parse::<f64>().is_ok_and(f64::is_finite);
        if counts && finite {
            let (x, y): (f64, f64) = (v1.parse().unwrap(), v2.parse().unwrap());
            assert!(
                (y - x - 1.0).abs() <= 1e-9 * x.abs().max(1.0),
                "{series}: {v1} -> {v2}"
            );
            moved += 1;
        } else {
            assert_eq!(v1, v2, "{series} ({ty}) must not move");
        }
    }
    assert!(moved > 10, "only {moved} values moved");
}

#[test]
fn sim_smoke() {
    let started = Instant::now();
    let mut sim = Sim::spawn(&[
        "--sandboxes",
        "3",
        "--bodies",
        "default,small,rs",
        "--fault",
        "1=http500",
    ]);

    // ready dir=<DIR> roots=<GO>,<RS> sandboxes=3, then the sandboxes, then end.
    let ready = sim.line();
    let fields: HashMap<&str, &str> = ready
        .strip_prefix("ready ")
        .unwrap_or_else(|| panic!("bad ready line {ready:?}"))
        .split(' ')
        .map(|kv| kv.split_once('=').unwrap())
        .collect();
    sim.dir = PathBuf::from(fields["dir"]);
    let (go_root, rs_root) = fields["roots"].split_once(',').unwrap();
    assert_eq!(fields["sandboxes"], "3");
    assert_eq!(go_root, sim.dir.join("vc/sbs").to_str().unwrap());
    assert_eq!(rs_root, sim.dir.join("kata").to_str().unwrap());
    let mut ids = Vec::new();
    for (i, want_root) in [go_root, go_root, rs_root].into_iter().enumerate() {
        let line = sim.line();
        let parts: Vec<&str> = line.split(' ').collect();
        assert_eq!(parts[..2], ["sandbox", &i.to_string()], "{line}");
        assert_eq!(parts[2].len(), 64);
        assert!(
            parts[2]
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_eq!(parts[3], want_root);
        ids.push(parts[2].to_string());
    }
    assert_eq!(sim.line(), "end");
    let sock = |root: &str, id: &str| Path::new(root).join(id).join("shim-monitor.sock");

    // Sandbox 0: default body, chunked in 4 KiB chunks, counters move.
    let mut c0 = connect(&sock(go_root, &ids[0]));
    let m1 = get(&mut c0, "/metrics");
    assert_eq!(m1.status, 200);
    assert_eq!(m1.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(m1.body, DEFAULT, "first scrape is the fixture");
    assert_eq!(m1.chunks.len(), DEFAULT.len().div_ceil(4096));
    assert!(m1.chunks[..m1.chunks.len() - 1].iter().all(|&c| c == 4096));
    let m2 = get(&mut c0, "/metrics"); // same keep-alive connection
    assert_eq!(m2.status, 200);
    check_moved_once(&m1.body, &m2.body);
    assert_eq!(sim.cmd(&format!("scrapes {}", ids[0])), "ok 2");

    let agent = get(&mut c0, "/agent-url");
    assert_eq!(
        (agent.status, agent.text()),
        (200, "vsock://3:1024".to_string())
    );
    let vars = get(&mut c0, "/debug/vars");
    assert_eq!(
        vars.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    assert!(vars.text().contains("\"cmdline\"") && vars.text().contains("\"memstats\""));
    let index = get(&mut c0, "/debug/pprof/");
    assert_eq!(
        index.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    for link in [
        "<a href='allocs?debug=1'>allocs</a>",
        "<a href='goroutine?debug=1'>goroutine</a>",
        "<a href=\"heap?debug=1\">heap</a>",
        "<a href='goroutine?debug=2'>full goroutine stack dump</a>",
        "<a href='profile?seconds=30'>",
        "<a href='trace?seconds=5'>",
    ] {
        assert!(index.text().contains(link), "index lacks {link}");
    }
    assert_eq!(
        get(&mut c0, "/debug/pprof/symbol").text(),
        "num_symbols: 1\n"
    );
    assert!(get(&mut c0, "/debug/pprof/cmdline").body.contains(&0));
    assert!(
        get(&mut c0, "/debug/pprof/heap?debug=1")
            .text()
            .starts_with("heap profile:")
    );
    let heap = get(&mut c0, "/debug/pprof/heap");
    assert_eq!(
        heap.header("content-type"),
        Some("application/octet-stream")
    );
    assert_eq!(
        heap.header("content-disposition"),
        Some("attachment; filename=\"heap\"")
    );
    gunzip(&heap.body);

    // Streamed trace: 32 KiB chunks every 50 ms.
    let t = Instant::now();
    let trace = get(&mut c0, "/debug/pprof/trace?seconds=0.3");
    assert_eq!(
        trace.header("content-disposition"),
        Some("attachment; filename=\"trace\"")
    );
    assert!(trace.chunks.len() >= 4, "{:?}", trace.chunks);
    assert!(trace.chunks.iter().all(|&c| c == 32 * 1024));
    assert!(t.elapsed() >= Duration::from_millis(250));
    // An integer, as Go reads it (a fraction would mean the 30 s default).
    let profile = get(&mut c0, "/debug/pprof/profile?seconds=1");
    assert_eq!(
        profile.header("content-disposition"),
        Some("attachment; filename=\"profile\"")
    );
    assert!(gunzip(&profile.body) > 60_000);

    let nope = get(&mut c0, "/nope");
    assert_eq!(
        (nope.status, nope.text()),
        (404, "404 page not found\n".to_string())
    );
    send(
        &mut c0,
        "POST /metrics HTTP/1.1\r\nHost: shim\r\nContent-Length: 3\r\n\r\nabc",
    );
    assert_eq!(read_response(&mut c0).status, 405);
    send(
        &mut c0,
        "GET /agent-url HTTP/1.1\r\nHost: shim\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(read_response(&mut c0).status, 200);
    assert!(at_eof(&mut c0), "Connection: close must close");

    // Bad requests get 400 and a closed connection; HTTP/1.0 closes too.
    for bad in [
        "GARBAGE\r\n\r\n",
        "GET /metrics HTTP/1.1\r\n\r\n",
        "GET /\x01 HTTP/1.1\r\nHost:\r\n\r\n",
    ] {
        let mut c = connect(&sock(go_root, &ids[0]));
        send(&mut c, bad);
        assert_eq!(read_response(&mut c).status, 400, "{bad:?}");
        assert!(at_eof(&mut c));
    }
    let mut c = connect(&sock(go_root, &ids[0]));
    send(&mut c, "GET /metrics HTTP/1.0\r\n\r\n");
    let old = read_response(&mut c);
    assert!(old.chunks.is_empty() && old.header("content-length").is_some());
    assert!(at_eof(&mut c));

    // Sandbox 1: the http500 fault.
    let r = get(&mut connect(&sock(go_root, &ids[1])), "/metrics");
    assert_eq!((r.status, r.text()), (500, "internal error\n".to_string()));

    // Sandbox 2: runtime-rs body under the rs root.
    let mut c2 = connect(&sock(rs_root, &ids[2]));
    assert_eq!(get(&mut c2, "/metrics").body, RS);
    assert_eq!(get(&mut c2, "/agent-url").text(), "vsock://5:1024");

    // Control protocol.
    let added = sim.cmd("add small");
    let (new_id, root) = added.strip_prefix("ok ").unwrap().split_once(' ').unwrap();
    assert_eq!(root, go_root);
    let new_sock = sock(go_root, new_id);
    let mut c3 = connect(&new_sock);
    assert_eq!(get(&mut c3, "/metrics").body, SMALL);
    let mut all = ids.clone();
    all.push(new_id.to_string());
    all.sort();
    assert_eq!(sim.cmd("list"), format!("ok {}", all.join(" ")));
    assert_eq!(sim.cmd(&format!("fault {new_id} http500")), "ok");
    assert_eq!(get(&mut c3, "/metrics").status, 500);
    assert_eq!(sim.cmd(&format!("scrapes {new_id}")), "ok 2");
    assert_eq!(sim.cmd(&format!("fault {new_id} refuse")), "ok");
    assert!(UnixStream::connect(&new_sock).is_err());
    assert_eq!(sim.cmd(&format!("fault {new_id} ok")), "ok");
    assert_eq!(get(&mut connect(&new_sock), "/metrics").status, 200);
    assert_eq!(sim.cmd(&format!("remove {new_id}")), "ok");
    assert!(!Path::new(go_root).join(new_id).exists());
    let mut rest = ids.clone();
    rest.sort();
    assert_eq!(sim.cmd("list"), format!("ok {}", rest.join(" ")));
    assert!(sim.cmd("frobnicate").starts_with("err "));
    assert!(sim.cmd("remove 0123").starts_with("err "));

    // quit: answer, exit 0, directory gone.
    assert_eq!(sim.cmd("quit"), "ok");
    let status = sim.child.wait().unwrap();
    assert!(status.success(), "{status}");
    assert!(!sim.dir.exists(), "{} left behind", sim.dir.display());
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// Decompresses a gzip body; returns the decompressed size.
fn gunzip(body: &[u8]) -> usize {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(body)
        .read_to_end(&mut out)
        .expect("valid gzip");
    out.len()
}

/// `--body-file` (repeatable, `rs:` for the runtime-rs root), `add file:N`
/// and `--frozen` (every scrape gets the body as it is).
#[test]
fn body_files_and_frozen() {
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
    let (default, rs) = (
        format!("{fixtures}/default.prom"),
        format!("rs:{fixtures}/rs-dragonball.prom"),
    );
    let mut sim = Sim::spawn(&[
        "--frozen",
        "--sandboxes",
        "3",
        "--body-file",
        &default,
        "--body-file",
        &rs,
    ]);
    let ready = sim.line();
    let roots = ready
        .split(' ')
        .find_map(|f| f.strip_prefix("roots="))
        .unwrap()
        .to_string();
    let (go_root, rs_root) = roots.split_once(',').unwrap();
    sim.dir = Path::new(go_root)
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .into();
    // The files cycle over the sandboxes: default, rs, default.
    let sandboxes: Vec<(String, String)> = (0..3)
        .map(|_| {
            let l = sim.line();
            let p: Vec<&str> = l.split(' ').collect();
            (p[2].to_string(), p[3].to_string())
        })
        .collect();
    assert_eq!(sim.line(), "end");
    let want_roots = [go_root, rs_root, go_root];
    for ((_, root), want) in sandboxes.iter().zip(want_roots) {
        assert_eq!(root, want);
    }
    let sock = |root: &str, id: &str| Path::new(root).join(id).join("shim-monitor.sock");
    let mut c0 = connect(&sock(go_root, &sandboxes[0].0));
    for _ in 0..3 {
        assert_eq!(get(&mut c0, "/metrics").body, DEFAULT, "frozen");
    }
    assert_eq!(
        get(&mut connect(&sock(rs_root, &sandboxes[1].0)), "/metrics").body,
        RS
    );
    let added = sim.cmd("add file:1");
    let (id, root) = added.strip_prefix("ok ").unwrap().split_once(' ').unwrap();
    assert_eq!(root, rs_root);
    assert_eq!(get(&mut connect(&sock(rs_root, id)), "/metrics").body, RS);
    let err = sim.cmd("add file:2");
    assert!(
        err.starts_with("err body file:2 needs 3 --body-file"),
        "{err}"
    );
    assert_eq!(sim.cmd("quit"), "ok");
    assert!(sim.child.wait().unwrap().success());
}
