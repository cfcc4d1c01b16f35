//! Test harness for the real binaries: a simulated node (`kata-sim`), the
//! monitor (`kata-monitor`) and a minimal HTTP/1.1 client.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

pub const SIM: &str = env!("CARGO_BIN_EXE_kata-sim");
pub const MONITOR: &str = env!("CARGO_BIN_EXE_kata-monitor");

/// A running `kata-sim`, driven through its stdin control protocol.
pub struct Sim {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    pub dir: PathBuf,
    pub roots: Vec<PathBuf>,
    pub ids: Vec<String>,
}

impl Sim {
    pub fn start(args: &[&str]) -> Sim {
        let mut child = Command::new(SIM)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start kata-sim");
        let stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let field = |k: &str| {
            line.split_whitespace()
                .find_map(|f| f.strip_prefix(&format!("{k}=")))
                .unwrap_or_else(|| panic!("no {k} in {line:?}"))
                .to_string()
        };
        let dir = PathBuf::from(field("dir"));
        let roots = field("roots").split(',').map(PathBuf::from).collect();
        let mut ids = Vec::new();
        loop {
            let mut l = String::new();
            stdout.read_line(&mut l).unwrap();
            if l.trim() == "end" || l.is_empty() {
                break;
            }
            ids.push(l.split_whitespace().nth(2).unwrap().to_string());
        }
        Sim {
            child,
            stdin,
            stdout,
            dir,
            roots,
            ids,
        }
    }

    /// Send a control command; returns the text after `ok`.
    pub fn cmd(&mut self, c: &str) -> String {
        writeln!(self.stdin, "{c}").unwrap();
        self.stdin.flush().unwrap();
        let mut l = String::new();
        self.stdout.read_line(&mut l).unwrap();
        let l = l.trim_end();
        assert!(l.starts_with("ok"), "{c}: {l}");
        l.trim_start_matches("ok").trim().to_string()
    }

    pub fn add(&mut self, kind: &str) -> String {
        self.cmd(&format!("add {kind}"))
            .split_whitespace()
            .next()
            .unwrap()
            .to_string()
    }

    pub fn fault(&mut self, id: &str, kind: &str) {
        self.cmd(&format!("fault {id} {kind}"));
    }

    pub fn scrapes(&mut self, id: &str) -> u64 {
        self.cmd(&format!("scrapes {id}")).parse().unwrap()
    }

    pub fn roots_arg(&self) -> String {
        self.roots
            .iter()
            .map(|r| r.display().to_string())
            .collect::<Vec<_>>()
            .join(",")
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "quit");
        let _ = self.stdin.flush();
        let until = Instant::now() + Duration::from_secs(3);
        while Instant::now() < until {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running `kata-monitor` on an ephemeral port.
pub struct Monitor {
    pub child: Child,
    pub addr: SocketAddr,
    pub log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Monitor {
    /// Start with `--sandbox-dirs dirs` and `extra` flags; waits until it listens.
    pub fn start(dirs: &str, extra: &[&str]) -> Monitor {
        let mut args = vec![
            "--listen-address",
            "127.0.0.1:0",
            "--sandbox-dirs",
            dirs,
            "--log-level",
            "debug",
        ];
        args.extend_from_slice(extra);
        Self::start_args(&args)
    }

    pub fn start_args(args: &[&str]) -> Monitor {
        Self::start_bin(MONITOR, args)
    }

    /// Like `start_args`, for another build of the monitor (the static one).
    pub fn start_bin(bin: &str, args: &[&str]) -> Monitor {
        Self::spawn(Command::new(bin).args(args))
    }

    /// Like `start`, with the descriptor limit (soft and hard) at `nofile`,
    /// as `prlimit --nofile=N` would set it.
    pub fn start_limited(dirs: &str, extra: &[&str], nofile: u64) -> Monitor {
        use std::os::unix::process::CommandExt;
        let mut cmd = Command::new(MONITOR);
        cmd.args([
            "--listen-address",
            "127.0.0.1:0",
            "--sandbox-dirs",
            dirs,
            "--log-level",
            "debug",
        ])
        .args(extra);
        // SAFETY: setrlimit is async-signal-safe; nothing else runs here.
        unsafe {
            cmd.pre_exec(move || {
                let lim = libc::rlimit {
                    rlim_cur: nofile,
                    rlim_max: nofile,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        Self::spawn(&mut cmd)
    }

    fn spawn(cmd: &mut Command) -> Monitor {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start kata-monitor");
        let stderr = child.stderr.take().unwrap();
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let log2 = log.clone();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if line.contains("msg=listening")
                    && let Some(tx) = tx.take()
                {
                    let addr = line
                        .split_whitespace()
                        .find_map(|f| f.strip_prefix("addr="))
                        .unwrap()
                        .to_string();
                    let _ = tx.send(addr);
                }
                let mut l = log2.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("monitor did not start listening");
        Monitor {
            child,
            addr: addr.parse().unwrap(),
            log,
        }
    }

    pub fn get(&self, target: &str) -> Resp {
        http(self.addr, "GET", target, &[])
    }

    pub fn get_with(&self, target: &str, headers: &[(&str, &str)]) -> Resp {
        http(self.addr, "GET", target, headers)
    }

    pub fn request(&self, method: &str, target: &str, headers: &[(&str, &str)]) -> Resp {
        http(self.addr, method, target, headers)
    }

    /// Poll `target` until `f` accepts the answer (or panic after `secs`).
    pub fn wait_for(&self, target: &str, secs: u64, f: impl Fn(&Resp) -> bool) -> Resp {
        let until = Instant::now() + Duration::from_secs(secs);
        loop {
            let r = self.get(target);
            if f(&r) {
                return r;
            }
            assert!(
                Instant::now() < until,
                "timed out waiting on {target}: {:?}\nmonitor log:\n{}",
                r.text(),
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Poll the monitor's log until `f` accepts it (or panic after `secs`).
    pub fn wait_log(&self, secs: u64, f: impl Fn(&str) -> bool) {
        let until = Instant::now() + Duration::from_secs(secs);
        while !f(&self.log_text()) {
            assert!(
                Instant::now() < until,
                "timed out waiting on the log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP response.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One request on a fresh connection (`Connection: close`).
pub fn http(addr: SocketAddr, method: &str, target: &str, headers: &[(&str, &str)]) -> Resp {
    let mut c = Client::connect(addr);
    let mut req = format!("{method} {target} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    c.send(req.as_bytes());
    read_response(&mut c, method == "HEAD").expect("response")
}

/// Read one response from `s` (Content-Length, chunked or close-delimited).
/// Bytes after it stay in `s.pending` for the next call (pipelining).
pub fn read_response(s: &mut Client, head_only: bool) -> Option<Resp> {
    read_response_from(&mut s.sock, &mut s.pending, head_only)
}

/// [`read_response`] over any stream (a TLS one), with its read-ahead.
pub fn read_response_from(
    sock: &mut impl Read,
    pending: &mut Vec<u8>,
    head_only: bool,
) -> Option<Resp> {
    let mut tmp = [0u8; 65536];
    let head_end = loop {
        if let Some(p) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
        let n = sock.read(&mut tmp).ok()?;
        if n == 0 {
            return None;
        }
        pending.extend_from_slice(&tmp[..n]);
    };
    let head = String::from_utf8(pending[..head_end].to_vec()).ok()?;
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let get = |n: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v.clone())
    };
    let mut rest: Vec<u8> = pending.drain(..).skip(head_end).collect();
    let mut fill = |rest: &mut Vec<u8>, want: usize| -> bool {
        while rest.len() < want {
            match sock.read(&mut tmp) {
                Ok(0) | Err(_) => return false,
                Ok(n) => rest.extend_from_slice(&tmp[..n]),
            }
        }
        true
    };
    let body = if head_only || status == 304 || status == 204 {
        *pending = rest;
        Vec::new()
    } else if let Some(l) = get("content-length") {
        let l: usize = l.parse().ok()?;
        if !fill(&mut rest, l) {
            return None;
        }
        *pending = rest.split_off(l);
        rest
    } else if get("transfer-encoding").is_some_and(|t| t.contains("chunked")) {
        let mut body = Vec::new();
        let mut pos = 0;
        loop {
            let line_end = loop {
                if let Some(p) = rest[pos..].windows(2).position(|w| w == b"\r\n") {
                    break pos + p;
                }
                let want = rest.len() + 1;
                if !fill(&mut rest, want) {
                    return None;
                }
            };
            let size = usize::from_str_radix(
                std::str::from_utf8(&rest[pos..line_end])
                    .ok()?
                    .split(';')
                    .next()?
                    .trim(),
                16,
            )
            .ok()?;
            pos = line_end + 2;
            if !fill(&mut rest, pos + size + 2) {
                return None;
            }
            if size == 0 {
                pos += 2;
                break;
            }
            body.extend_from_slice(&rest[pos..pos + size]);
            pos += size + 2;
        }
        *pending = rest.split_off(pos);
        body
    } else {
        let _ = sock.read_to_end(&mut rest);
        rest
    };
    Some(Resp {
        status,
        headers,
        body,
    })
}

/// A client connection that keeps bytes read past one response.
pub struct Client {
    pub sock: TcpStream,
    pub pending: Vec<u8>,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let sock = TcpStream::connect(addr).expect("connect");
        sock.set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        Client {
            sock,
            pending: Vec::new(),
        }
    }

    pub fn send(&mut self, raw: &[u8]) {
        self.sock.write_all(raw).unwrap();
    }

    pub fn response(&mut self) -> Option<Resp> {
        read_response(self, false)
    }
}

/// A minimal fake shim: answers every request with `body` until dropped.
pub struct FakeShim {
    path: PathBuf,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl FakeShim {
    pub fn start(dir: &Path, body: &'static [u8]) -> FakeShim {
        let mut resp =
            format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
        resp.extend_from_slice(body);
        Self::start_raw(dir, resp)
    }

    /// Answers every request with `response`, a whole raw HTTP response.
    pub fn start_raw(dir: &Path, response: Vec<u8>) -> FakeShim {
        std::fs::create_dir_all(dir).unwrap();
        let path = dir.join("shim-monitor.sock");
        let _ = std::fs::remove_file(&path);
        let l = std::os::unix::net::UnixListener::bind(&path).unwrap();
        l.set_nonblocking(true).unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop2 = stop.clone();
        std::thread::spawn(move || {
            while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
                match l.accept() {
                    Ok((mut s, _)) => {
                        s.set_nonblocking(false).unwrap();
                        let mut req = [0u8; 4096];
                        let _ = s.read(&mut req);
                        let _ = s.write_all(&response);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        FakeShim { path, stop }
    }
}

impl Drop for FakeShim {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A unique, short temporary directory (unix socket paths are limited).
pub fn tmpdir(tag: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("km{}{tag}{}", std::process::id(), rand_suffix()));
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(&p).unwrap();
    p
}

fn rand_suffix() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(Instant::now().elapsed().as_nanos() as u64);
    (h.finish() % 100_000) as u32
}
