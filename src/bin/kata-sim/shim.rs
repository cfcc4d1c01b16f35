//! One fake shim: the HTTP endpoints a Kata shim serves on `shim-monitor.sock`.
//!
//! Threading: one accept thread per listening socket and one thread per
//! connection, reused across connections (`pool`); blocking I/O, this is a
//! test tool.  Everything a request
//! needs is prepared up front (body templates, debug pages), so a `/metrics`
//! scrape costs one template render and one vectored write.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::body::Template;
use crate::debug;
use crate::faults::{self, Fault};
use crate::http::{self, Conn, Framing, ReadError, Request};
use crate::pool;

const TEXT: &str = "text/plain; charset=utf-8";
const NOSNIFF: (&str, &str) = ("X-Content-Type-Options", "nosniff");
/// Go's server sends bodies up to this size with a `Content-Length`.
const GO_BUFFERED: usize = 2048;
const SLOW_PIECE: usize = 1024;

/// Serving options shared by every shim.
pub struct ShimConfig {
    /// Send `/metrics` (and every fixed body) with `Content-Length`.
    pub content_length: bool,
    /// Chunk size of chunked bodies.
    pub chunk_size: usize,
    /// Pause between 1 KB pieces under the `slow` fault.
    pub slow_ms: u64,
    /// Pause between the chunks of `/debug/pprof/trace`.
    pub trace_interval_ms: u64,
    /// Serve every `/metrics` body as the fixture is, counters not moving
    /// (two clients of one shim then see the same values).
    pub frozen: bool,
}

/// State of one sandbox's shim, shared by its accept and connection threads.
pub struct Shim {
    pub id: String,
    /// The agent's vsock context id (`/agent-url`).
    pub cid: u64,
    seed: u64,
    body: Arc<Template>,
    cfg: Arc<ShimConfig>,
    fault: AtomicU8,
    scrapes: AtomicU64,
    removed: AtomicBool,
    conns: Mutex<HashMap<u64, RawFd>>,
    next_conn: AtomicU64,
}

impl Shim {
    pub fn new(
        id: String,
        cid: u64,
        seed: u64,
        body: Arc<Template>,
        cfg: Arc<ShimConfig>,
        fault: Fault,
    ) -> Shim {
        Shim {
            id,
            cid,
            seed,
            body,
            cfg,
            fault: AtomicU8::new(fault as u8),
            scrapes: AtomicU64::new(0),
            removed: AtomicBool::new(false),
            conns: Mutex::new(HashMap::new()),
            next_conn: AtomicU64::new(0),
        }
    }

    pub fn fault(&self) -> Fault {
        Fault::from_u8(self.fault.load(Ordering::Relaxed))
    }

    pub fn set_fault(&self, fault: Fault) {
        self.fault.store(fault as u8, Ordering::Relaxed);
    }

    /// Number of `GET /metrics` requests received so far.
    pub fn scrapes(&self) -> u64 {
        self.scrapes.load(Ordering::Relaxed)
    }

    /// Marks the shim dead: sleeping responses give up.
    pub fn set_removed(&self) {
        self.removed.store(true, Ordering::Relaxed);
    }

    /// Shuts down every open connection (their threads then exit).
    pub fn close_connections(&self) {
        let conns = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        for &fd in conns.values() {
            // SAFETY: the fd stays open while registered (see `serve`).
            unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
        }
    }

    /// Sleeps `d`, in steps, unless the shim is removed meanwhile (`false`).
    fn sleep(&self, d: Duration) -> bool {
        let end = Instant::now() + d;
        loop {
            if self.removed.load(Ordering::Relaxed) {
                return false;
            }
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return true;
            }
            thread::sleep(left.min(Duration::from_millis(100)));
        }
    }
}

/// A listening socket and its accept thread.
pub struct Listening {
    listener: Arc<UnixListener>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Listening {
    pub fn start(shim: Arc<Shim>, listener: UnixListener) -> io::Result<Listening> {
        let listener = Arc::new(listener);
        let stop = Arc::new(AtomicBool::new(false));
        let (l, s) = (Arc::clone(&listener), Arc::clone(&stop));
        let thread = thread::Builder::new()
            .name(format!("accept-{}", &shim.id[..shim.id.len().min(8)]))
            .stack_size(64 * 1024)
            .spawn(move || accept_loop(&shim, &l, &s))?;
        Ok(Listening {
            listener,
            stop,
            thread: Some(thread),
        })
    }

    /// Stops accepting and closes the socket (the file is left in place).
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // On Linux this wakes a blocked accept() with EINVAL.  The fd is still
        // open: `self.listener` holds it until this function returns.
        unsafe { libc::shutdown(self.listener.as_raw_fd(), libc::SHUT_RDWR) };
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn accept_loop(shim: &Arc<Shim>, listener: &UnixListener, stop: &AtomicBool) {
    loop {
        let accepted = listener.accept();
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => {
                // EMFILE and friends: back off instead of spinning.
                thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        // Registered before the thread starts, so `close_connections` after
        // `Listening::stop` sees every connection.
        let key = shim.next_conn.fetch_add(1, Ordering::Relaxed);
        let fd = stream.as_raw_fd();
        shim.conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, fd);
        let s = Arc::clone(shim);
        if pool::run(move || serve(&s, key, stream)).is_err() {
            // The job (and the stream) was dropped: unregister.
            shim.conns
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&key);
        }
    }
}

/// Serves requests on one connection until it closes.
fn serve(shim: &Shim, key: u64, stream: UnixStream) {
    let mut conn = Conn::new(stream);
    let mut ex = Exchange {
        shim,
        fault: Fault::Ok,
        buf: Vec::new(),
        head: Vec::new(),
    };
    loop {
        match conn.read_request() {
            Ok(req) => match ex.respond(&mut conn, &req) {
                Ok(true) => {}
                Ok(false) | Err(_) => break,
            },
            Err(ReadError::Bad(status, msg)) => {
                let hdr = [("Content-Type", TEXT)];
                ex.head.clear();
                http::write_head(&mut ex.head, status, &hdr, Framing::UntilClose, true, false);
                let _ = http::send(
                    &mut conn.stream,
                    &ex.head,
                    msg.as_bytes(),
                    Framing::UntilClose,
                    0,
                );
                break;
            }
            Err(ReadError::Closed) => break,
        }
    }
    // Unregister before the fd is closed (when `conn` drops).
    shim.conns
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&key);
}

/// Per-connection scratch buffers, reused across keep-alive requests.
struct Exchange<'a> {
    shim: &'a Shim,
    /// The fault in force for the current request (read once per request).
    fault: Fault,
    buf: Vec<u8>,
    head: Vec<u8>,
}

impl Exchange<'_> {
    /// Answers one request; `Ok(false)` closes the connection.
    fn respond(&mut self, conn: &mut Conn, req: &Request) -> io::Result<bool> {
        let shim = self.shim;
        let metrics = req.path == b"/metrics";
        let scrape = if metrics && req.method == "GET" {
            shim.scrapes.fetch_add(1, Ordering::Relaxed)
        } else {
            0
        };
        let fault = shim.fault();
        self.fault = fault;
        match fault {
            Fault::Hang => {
                conn.drain_forever();
                return Ok(false);
            }
            Fault::Http500 => {
                let hdr = [("Content-Type", TEXT), NOSNIFF];
                return self.fixed(
                    conn,
                    req,
                    "500 Internal Server Error",
                    &hdr,
                    Some(b"internal error\n"),
                );
            }
            _ => {}
        }
        if req.method != "GET" {
            self.buf.clear();
            self.buf.extend_from_slice(b"Method Not Allowed\n");
            let hdr = [("Allow", "GET"), ("Content-Type", TEXT), NOSNIFF];
            return self.fixed(conn, req, "405 Method Not Allowed", &hdr, None);
        }
        let ok = "200 OK";
        let text = [("Content-Type", TEXT)];
        self.buf.clear();
        match req.path.as_slice() {
            b"/metrics" => match fault {
                Fault::Huge => return self.huge(conn, req),
                Fault::Garbage => self.buf.extend_from_slice(&faults::garbage_body(shim.seed)),
                _ => {
                    let n = if shim.cfg.frozen { 0 } else { scrape };
                    shim.body.render(n, &mut self.buf)
                }
            },
            b"/agent-url" => self
                .buf
                .extend_from_slice(format!("vsock://{}:1024", shim.cid).as_bytes()),
            b"/debug/vars" => {
                self.buf
                    .extend_from_slice(&debug::expvar(&shim.id, shim.scrapes()));
                return self.fixed(
                    conn,
                    req,
                    ok,
                    &[("Content-Type", "application/json; charset=utf-8")],
                    None,
                );
            }
            b"/debug/pprof" => {
                // Go's ServeMux: a subtree without its slash is redirected.
                self.buf
                    .extend_from_slice(b"<a href=\"/debug/pprof/\">Moved Permanently</a>.\n\n");
                let hdr = [
                    ("Location", "/debug/pprof/"),
                    ("Content-Type", "text/html; charset=utf-8"),
                ];
                return self.fixed(conn, req, "301 Moved Permanently", &hdr, None);
            }
            b"/debug/pprof/" => {
                let hdr = [("Content-Type", "text/html; charset=utf-8")];
                return self.fixed(conn, req, ok, &hdr, Some(debug::index()));
            }
            path => match path.strip_prefix(b"/debug/pprof/") {
                Some(name) => return self.pprof(conn, req, name),
                None => {
                    self.buf.extend_from_slice(b"404 page not found\n");
                    return self.fixed(
                        conn,
                        req,
                        "404 Not Found",
                        &[("Content-Type", TEXT), NOSNIFF],
                        None,
                    );
                }
            },
        }
        self.fixed(conn, req, ok, &text, None)
    }

    /// `/debug/pprof/<name>`.
    fn pprof(&mut self, conn: &mut Conn, req: &Request, name: &[u8]) -> io::Result<bool> {
        let name = String::from_utf8_lossy(name);
        let debug: i64 = req.param("debug").and_then(|d| d.parse().ok()).unwrap_or(0);
        let text = [("Content-Type", TEXT), NOSNIFF];
        match &*name {
            "cmdline" => self.buf.extend_from_slice(&debug::cmdline(&self.shim.id)),
            "symbol" => self.buf.extend_from_slice(b"num_symbols: 1\n"),
            "profile" => {
                if !self.shim.sleep(seconds(req, 30.0, false)) {
                    return Ok(false);
                }
                let hdr = binary("attachment; filename=\"profile\"");
                return self.fixed(conn, req, "200 OK", &hdr, Some(debug::cpu_profile()));
            }
            "trace" => return self.trace(conn, req, seconds(req, 1.0, true)),
            // Go's delta profiles: `seconds` on a named profile waits that
            // long, and is refused with a text format.
            n if debug::PROFILES.contains(&n) && req.param("seconds").is_some() => {
                if debug != 0 {
                    self.buf
                        .extend_from_slice(b"seconds and debug params are incompatible\n");
                    return self.fixed(conn, req, "400 Bad Request", &text, None);
                }
                let valid = req
                    .param("seconds")
                    .and_then(|s| s.parse::<i64>().ok())
                    .is_some_and(|n| n > 0);
                if !valid {
                    self.buf.extend_from_slice(
                        b"invalid value for \"seconds\", must be a positive integer\n",
                    );
                    return self.fixed(conn, req, "400 Bad Request", &text, None);
                }
                if !self.shim.sleep(seconds(req, 0.0, false)) {
                    return Ok(false);
                }
                self.buf.extend_from_slice(&debug::profile_binary(n));
                let disposition = format!("attachment; filename=\"{n}-delta\"");
                return self.fixed(conn, req, "200 OK", &binary(&disposition), None);
            }
            n if debug::PROFILES.contains(&n) && debug != 0 => {
                self.buf.extend_from_slice(&debug::profile_text(n, debug))
            }
            n if debug::PROFILES.contains(&n) => {
                self.buf.extend_from_slice(&debug::profile_binary(n));
                let disposition = format!("attachment; filename=\"{n}\"");
                return self.fixed(conn, req, "200 OK", &binary(&disposition), None);
            }
            _ => {
                self.buf.extend_from_slice(b"Unknown profile\n");
                return self.fixed(conn, req, "404 Not Found", &text, None);
            }
        }
        self.fixed(conn, req, "200 OK", &text, None)
    }

    /// Sends a complete body (`body`, or `self.buf` when `None`), applying
    /// the fixed-body faults.
    fn fixed(
        &mut self,
        conn: &mut Conn,
        req: &Request,
        status: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> io::Result<bool> {
        let fault = self.fault;
        let body = body.unwrap_or(&self.buf);
        let special = matches!(fault, Fault::CloseMidBody | Fault::Slow | Fault::BadHttp);
        let framing =
            if special || req.http10 || self.shim.cfg.content_length || body.len() <= GO_BUFFERED {
                Framing::Length(body.len())
            } else {
                Framing::Chunked
            };
        let close = req.close || matches!(fault, Fault::CloseMidBody | Fault::BadHttp);
        self.head.clear();
        http::write_head(
            &mut self.head,
            status,
            headers,
            framing,
            close && !req.http10,
            fault == Fault::BadHttp,
        );
        let stream = &mut conn.stream;
        match fault {
            Fault::CloseMidBody => {
                http::send(
                    stream,
                    &self.head,
                    &body[..body.len() / 2],
                    Framing::UntilClose,
                    0,
                )?;
                return Ok(false);
            }
            Fault::Slow => {
                http::send(stream, &self.head, b"", Framing::UntilClose, 0)?;
                for (i, piece) in body.chunks(SLOW_PIECE).enumerate() {
                    if i > 0
                        && !self
                            .shim
                            .sleep(Duration::from_millis(self.shim.cfg.slow_ms))
                    {
                        return Ok(false);
                    }
                    http::send_chunk(stream, piece, Framing::UntilClose)?;
                }
            }
            _ => http::send(stream, &self.head, body, framing, self.shim.cfg.chunk_size)?,
        }
        Ok(!close)
    }

    /// `/debug/pprof/trace`: 32 KB chunks every `--trace-interval-ms` for
    /// `secs`.
    fn trace(&mut self, conn: &mut Conn, req: &Request, secs: Duration) -> io::Result<bool> {
        let start = Instant::now();
        let interval = Duration::from_millis(self.shim.cfg.trace_interval_ms.max(1));
        let chunks = ((secs.as_secs_f64() / interval.as_secs_f64()).round() as u64).max(1);
        let framing = self.stream_head(req, "attachment; filename=\"trace\"", None);
        conn.write_raw(&self.head)?;
        for i in 0..chunks {
            if i > 0 && !self.shim.sleep(interval) {
                return Ok(false);
            }
            http::send_chunk(&mut conn.stream, debug::trace_chunk(), framing)?;
        }
        if !self.shim.sleep(secs.saturating_sub(start.elapsed())) {
            return Ok(false);
        }
        conn.end_chunked(framing)?;
        Ok(framing == Framing::Chunked && !req.close && self.fault != Fault::BadHttp)
    }

    /// The `huge` fault: a 40 MiB valid-looking body generated on the fly.
    fn huge(&mut self, conn: &mut Conn, req: &Request) -> io::Result<bool> {
        let len = (req.http10 || self.shim.cfg.content_length).then(faults::huge_len);
        let framing = self.stream_head(req, "", len);
        conn.write_raw(&self.head)?;
        faults::huge_body(|block| http::send_chunk(&mut conn.stream, block, framing))?;
        conn.end_chunked(framing)?;
        Ok(!req.close)
    }

    /// Writes the head of a streamed body into `self.head`.  An empty
    /// `disposition` means a text body.
    fn stream_head(&mut self, req: &Request, disposition: &str, len: Option<usize>) -> Framing {
        let framing = match len {
            Some(n) => Framing::Length(n),
            None if req.http10 => Framing::UntilClose,
            None => Framing::Chunked,
        };
        let bad = self.fault == Fault::BadHttp;
        let close = req.close || bad;
        let bin = binary(disposition);
        let hdr: &[(&str, &str)] = if disposition.is_empty() {
            &[("Content-Type", TEXT)]
        } else {
            &bin
        };
        self.head.clear();
        http::write_head(
            &mut self.head,
            "200 OK",
            hdr,
            framing,
            close && !req.http10,
            bad,
        );
        framing
    }
}

fn binary(disposition: &str) -> [(&str, &str); 3] {
    [
        NOSNIFF,
        ("Content-Type", "application/octet-stream"),
        ("Content-Disposition", disposition),
    ]
}

/// The `seconds` parameter as Go's pprof reads it: an integer (profile,
/// delta profiles) or a float (trace); missing, invalid or non-positive
/// means `default`. Capped at one hour.
fn seconds(req: &Request, default: f64, float: bool) -> Duration {
    let s = req
        .param("seconds")
        .and_then(|s| {
            if float {
                s.parse::<f64>().ok()
            } else {
                s.parse::<i64>().ok().map(|n| n as f64)
            }
        })
        .filter(|s| s.is_finite() && *s > 0.0)
        .unwrap_or(default);
    Duration::from_secs_f64(s.min(3600.0))
}
