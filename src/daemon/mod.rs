//! The reactor: one thread, one `mio` loop, every fd.
//!
//! Owns: the listener, client connections, shim connections, the inotify
//! watcher and the signal fd, plus the timers (each connection carries its
//! deadline; the loop sleeps until the earliest). It drives the sans-IO cores
//! in [`crate::wire`]. Nothing here blocks: every socket is non-blocking and
//! drained to `WouldBlock` (mio is edge-triggered); a connection whose output
//! is full stops being filled until the socket is writable again.
//!
//! Closed connections and finished shims are removed only after the whole
//! event batch, and tokens carry a generation, so an event can never reach a
//! connection that reused a slot.

pub mod config;
pub mod conn;
pub mod cri;
pub mod logger;
pub mod procfs;
pub mod proxy;
pub mod registry;
pub mod routes;
pub mod scrape;
pub mod selfmetrics;
pub mod shim;
pub mod signals;
pub mod slab;
mod tracing_log;
pub mod watch;

use crate::wire::expo::Exposition;
use crate::wire::gzip::GzipPump;
use config::Config;
use conn::{Body, Conn, PeerState, ReadOutcome, State};
use mio::net::TcpListener;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll};
use registry::Registry;
use scrape::{Round, Snapshot, Stats};
use slab::{Key, Kind, Slab, token};
use std::io;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// A response that makes no write progress for this long is abandoned.
pub const WRITE_STALL: Duration = Duration::from_secs(30);
/// Concurrent gzip responses (each holds ~300 KB of compressor state); more
/// are answered uncompressed.
pub const MAX_GZIP: usize = 4;
/// Without scrapes for this long, cached buffers are released.
pub const TRIM_AFTER: Duration = Duration::from_secs(300);

/// A shim connection and what it is for.
pub struct Shim {
    pub conn: shim::ShimConn,
    pub id: String,
    pub purpose: Purpose,
}

pub enum Purpose {
    /// Fetch for the current round, into slot `slot`.
    Scrape { round: u64, slot: usize },
    /// Streamed to a client connection.
    Proxy(proxy::Proxy),
    /// Kept open between rounds (HTTP keep-alive) for the next fetch.
    Idle,
}

/// An idle connection needs no deadline; this stands for "never".
pub const NEVER: Duration = Duration::from_secs(365 * 24 * 3600);

pub struct Daemon {
    pub cfg: Config,
    poll: Poll,
    listener: TcpListener,
    signals: signals::Signals,
    watcher: watch::Watcher,
    pub reg: Registry,
    pub cri: cri::Cri,
    conns: Slab<Conn>,
    shims: Slab<Shim>,
    /// Idle keep-alive shim connections by sandbox id.
    idle: std::collections::HashMap<String, Key>,
    round: Option<Round>,
    last: Option<Rc<Snapshot>>,
    /// Snapshots alive (the newest and those responses still stream from).
    snapshots_alive: Rc<std::cell::Cell<usize>>,
    pub stats: Stats,
    gzip_pool: Vec<GzipPump>,
    gzip_active: usize,
    buf_pool: Vec<Vec<u8>>,
    spare_expo: Option<Exposition>,
    /// Connections to remove after the current batch.
    closing: Vec<Key>,
    /// Connections whose next request is read once the current event is
    /// handled (never from inside a response, so a finished answer cannot
    /// start a round while another round's answers are being handed out).
    next_request: Vec<Key>,
    /// Shim connections to remove after the current batch.
    finished_shims: Vec<Key>,
    seed: u64,
    pub started: Instant,
    last_scrape: Instant,
    trimmed: bool,
    round_gen: u64,
    accept_paused_until: Option<Instant>,
    stop: bool,
}

impl Daemon {
    /// Bind, set up watches and signals. Errors are for the operator.
    pub fn new(cfg: Config) -> io::Result<Daemon> {
        let now = Instant::now();
        let std_listener = std::net::TcpListener::bind(cfg.listen).map_err(|e| {
            io::Error::new(e.kind(), format!("cannot listen on {}: {e}", cfg.listen))
        })?;
        std_listener.set_nonblocking(true)?;
        let mut listener = TcpListener::from_std(std_listener);
        let poll = Poll::new()?;
        poll.registry()
            .register(&mut listener, token(Kind::Listener), Interest::READABLE)?;
        let signals = signals::Signals::new()?;
        poll.registry().register(
            &mut SourceFd(&signals.fd()),
            token(Kind::Signal),
            Interest::READABLE,
        )?;
        let watcher = watch::Watcher::new(cfg.sandbox_dirs.len(), now)?;
        poll.registry().register(
            &mut SourceFd(&watcher.fd()),
            token(Kind::Inotify),
            Interest::READABLE,
        )?;
        let seed = {
            use std::hash::BuildHasher;
            std::collections::hash_map::RandomState::new().hash_one(now)
        };
        let reg = Registry::new(cfg.sandbox_dirs.clone());
        let cri = cri::Cri::new(cfg.runtime_endpoint.clone(), now);
        let mut d = Daemon {
            cfg,
            poll,
            listener,
            signals,
            watcher,
            reg,
            cri,
            conns: Slab::default(),
            shims: Slab::default(),
            idle: std::collections::HashMap::new(),
            round: None,
            last: None,
            snapshots_alive: Rc::default(),
            stats: Stats::default(),
            gzip_pool: Vec::new(),
            gzip_active: 0,
            buf_pool: Vec::new(),
            spare_expo: None,
            closing: Vec::new(),
            next_request: Vec::new(),
            finished_shims: Vec::new(),
            seed,
            started: now,
            last_scrape: now,
            trimmed: true,
            round_gen: 0,
            accept_paused_until: None,
            stop: false,
        };
        let ch = d.watcher.poll_missing(&mut d.reg, now);
        d.on_changes(ch);
        d.cri_timer(now);
        if let Ok(addr) = d.listener.local_addr() {
            log::info!(addr:% = addr, sandboxes = d.reg.len(); "listening");
        }
        Ok(d)
    }

    pub fn local_addr(&self) -> io::Result<std::net::SocketAddr> {
        self.listener.local_addr()
    }

    /// Serve until SIGTERM/SIGINT.
    pub fn run(&mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(512);
        while !self.stop {
            let now = Instant::now();
            let timeout = self
                .next_deadline()
                .map(|d| d.saturating_duration_since(now));
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            let now = Instant::now();
            for ev in events.iter() {
                match slab::kind(ev.token()) {
                    Some(Kind::Listener) => self.accept(now),
                    Some(Kind::Signal) => {
                        while let Some(sig) = self.signals.read() {
                            log::info!(signal = sig; "shutting down");
                            self.stop = true;
                        }
                    }
                    Some(Kind::Inotify) => {
                        let ch = self.watcher.handle(&mut self.reg, now);
                        self.on_changes(ch);
                    }
                    Some(Kind::Conn(key)) => {
                        let closed = ev.is_read_closed() || ev.is_error();
                        self.conn_event(key, closed, now);
                    }
                    Some(Kind::Shim(key)) => self.shim_event(key, now),
                    Some(Kind::Cri) => {
                        if let Some(listing) = self.cri.on_event(now) {
                            self.apply_listing(listing);
                        }
                    }
                    None => {}
                }
                self.run_deferred(now);
            }
            self.on_timers(Instant::now());
            self.run_deferred(Instant::now());
            self.reap();
        }
        Ok(())
    }

    /// Read the next requests of connections whose response just ended.
    fn run_deferred(&mut self, now: Instant) {
        while let Some(key) = self.next_request.pop() {
            if !self.closing.contains(&key) {
                self.read_requests(key, now);
            }
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        let mut d = self.watcher.deadline();
        for (_, c) in self.conns.iter() {
            d = d.min(c.deadline);
        }
        for (_, s) in self.shims.iter() {
            d = d.min(s.conn.deadline);
        }
        if let Some(r) = &self.round {
            d = d.min(r.deadline);
        }
        if let Some(t) = self.accept_paused_until {
            d = d.min(t);
        }
        if !self.trimmed {
            d = d.min(self.last_scrape + TRIM_AFTER);
        }
        if let Some(t) = self.cri.next_deadline() {
            d = d.min(t);
        }
        Some(d)
    }

    fn on_changes(&mut self, ch: watch::Changes) {
        let now = Instant::now();
        for id in &ch.added {
            log::info!(sandbox:% = id; "sandbox added");
            self.cri.policy.added(id, now);
        }
        for id in &ch.removed {
            log::info!(sandbox:% = id; "sandbox removed");
            self.cri.policy.removed(id);
            if let Some(k) = self.idle.remove(id) {
                self.finish_shim(k);
            }
        }
    }

    /// CRI timers (reconnects, deadlines, due calls).
    fn cri_timer(&mut self, now: Instant) {
        if let Some(listing) = self.cri.on_timer(self.poll.registry(), now) {
            self.apply_listing(listing);
        }
    }

    /// Pod metadata from the runtime, for the sandboxes we list.
    fn apply_listing(&mut self, listing: cri::Listing) {
        for (id, m) in listing {
            let meta = registry::PodMeta {
                uid: m.uid,
                name: m.name,
                namespace: m.namespace,
            };
            if self.reg.set_meta(&id, Some(meta)) {
                log::debug!(sandbox:% = id; "pod metadata from the CRI runtime");
            }
        }
    }

    fn accept(&mut self, now: Instant) {
        if self.accept_paused_until.is_some_and(|t| now < t) {
            return;
        }
        self.accept_paused_until = None;
        loop {
            match self.listener.accept() {
                Ok((mut sock, _peer)) => {
                    // Connections closed during this batch (possibly served
                    // inline by this very loop) no longer count.
                    let live = self.conns.len() - self.closing.len();
                    if live >= self.cfg.max_connections {
                        // Best effort: the socket buffer takes this at once.
                        let _ = io::Write::write(
                            &mut sock,
                            crate::wire::http::response::SERVICE_UNAVAILABLE,
                        );
                        let _ = sock.shutdown(std::net::Shutdown::Write);
                        log::warn!(max = self.cfg.max_connections; "connection limit reached, answered 503");
                        continue;
                    }
                    let _ = sock.set_nodelay(true);
                    let key = self.conns.next_key();
                    if self
                        .poll
                        .registry()
                        .register(
                            &mut sock,
                            token(Kind::Conn(key)),
                            Interest::READABLE | Interest::WRITABLE,
                        )
                        .is_err()
                    {
                        continue;
                    }
                    self.conns
                        .insert(Conn::new(sock, now, now + self.cfg.header_timeout));
                    self.conn_event(key, false, now);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // EMFILE and friends: the pending connection stays queued;
                    // try again shortly rather than spin.
                    log::warn!(error:% = e; "accept failed, pausing accepts");
                    self.accept_paused_until = Some(now + Duration::from_millis(100));
                    return;
                }
            }
        }
    }

    /// Readiness on a client connection.
    fn conn_event(&mut self, key: Key, closed: bool, now: Instant) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        match c.state {
            State::Reading => self.read_requests(key, now),
            State::Waiting => {
                if closed {
                    match c.peer_state() {
                        PeerState::Open => {}
                        // A half-closed client still gets its answer (RFC
                        // 9112 §9.6); one that has gone for good makes the
                        // first write fail, which closes the connection.
                        PeerState::Eof => c.keep_alive = false,
                        PeerState::Gone => self.close(key),
                    }
                }
            }
            State::Writing => self.pump(key, now),
        }
    }

    /// Read and answer requests until the socket would block or a response
    /// cannot be completed at once.
    fn read_requests(&mut self, key: Key, now: Instant) {
        loop {
            let Some(c) = self.conns.get_mut(key) else {
                return;
            };
            if c.state != State::Reading {
                return;
            }
            match c.read_request(now) {
                ReadOutcome::Request(req) => {
                    c.keep_alive = req.keep_alive;
                    c.http10 = req.minor == 0;
                    c.state = State::Waiting;
                    c.deadline = now + self.cfg.idle_timeout;
                    if req.body_len > 0 {
                        // Request bodies are not read: answer, then close.
                        c.keep_alive = false;
                    }
                    self.route(key, req, now);
                }
                ReadOutcome::NeedMore => {
                    c.deadline = match c.head_started {
                        Some(t) => t + self.cfg.header_timeout,
                        None => now + self.cfg.idle_timeout,
                    };
                    return;
                }
                ReadOutcome::Closed => {
                    self.close(key);
                    return;
                }
                ReadOutcome::Refuse(status) => {
                    log::info!(status = status; "refused malformed request");
                    // One answer, then close: nothing after a bad head can
                    // be trusted to start a request (set before answering,
                    // which may complete at once and resume reading).
                    c.keep_alive = false;
                    c.discard_input();
                    let msg = if status == 431 {
                        "request header fields too large\n"
                    } else {
                        "bad request\n"
                    };
                    self.respond_text(key, status, msg, false, now);
                    return;
                }
            }
        }
    }

    /// Send pending output and refill it from the body until the socket
    /// blocks or the response is complete.
    pub(crate) fn pump(&mut self, key: Key, now: Instant) {
        loop {
            let Some(c) = self.conns.get_mut(key) else {
                return;
            };
            if c.state != State::Writing {
                return;
            }
            let before = c.out.len();
            match c.flush() {
                Ok(true) => {}
                Ok(false) => {
                    if c.out.len() < before {
                        c.deadline = now + WRITE_STALL;
                    }
                    return;
                }
                Err(_) => {
                    self.close(key);
                    return;
                }
            }
            c.deadline = now + WRITE_STALL;
            let more = if let Body::Proxy(shim) = c.body {
                match self.proxy_pull(key, shim, now) {
                    proxy::Pull::More => true,
                    proxy::Pull::Wait => return,
                    proxy::Pull::Done => false,
                    proxy::Pull::Abort => {
                        self.close(key);
                        return;
                    }
                }
            } else if let Body::Metrics(m) = &mut c.body {
                m.refill(&mut c.out)
            } else {
                false
            };
            if !more {
                self.response_done(key, now);
                return;
            }
        }
    }

    /// The response is fully written: keep the connection or close it.
    fn response_done(&mut self, key: Key, now: Instant) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        let body = std::mem::replace(&mut c.body, Body::None);
        self.release_body(body);
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        if !c.keep_alive {
            let _ = c.sock.shutdown(std::net::Shutdown::Write);
            self.close(key);
            return;
        }
        c.state = State::Reading;
        c.out.release();
        c.deadline = now + self.cfg.idle_timeout;
        // The next request may already be buffered or waiting in the socket
        // (edge-triggered: no new event will say so). Read it after the
        // current event, not from inside this response.
        self.next_request.push(key);
    }

    /// Give back what a finished or abandoned body holds.
    fn release_body(&mut self, body: Body) {
        match body {
            Body::Metrics(m) => {
                if let Some(mut pump) = m.gzip {
                    pump.reset();
                    self.gzip_active -= 1;
                    if self.gzip_pool.len() < MAX_GZIP {
                        self.gzip_pool.push(pump);
                    }
                }
            }
            Body::Proxy(shim) => self.finish_shim(shim),
            Body::None => {}
        }
    }

    /// Mark a connection for removal after this batch. It is not read,
    /// written or answered any more.
    pub(crate) fn close(&mut self, key: Key) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        // Whatever it was waiting for must not write to it any more.
        c.state = State::Reading;
        if !self.closing.contains(&key) {
            self.closing.push(key);
        }
    }

    pub(crate) fn finish_shim(&mut self, key: Key) {
        if !self.finished_shims.contains(&key) {
            self.finished_shims.push(key);
        }
    }

    /// Remove what was closed during the batch.
    fn reap(&mut self) {
        for key in std::mem::take(&mut self.closing) {
            if let Some(mut c) = self.conns.remove(key) {
                let _ = self.poll.registry().deregister(&mut c.sock);
                let body = std::mem::replace(&mut c.body, Body::None);
                self.release_body(body);
                if let Some(r) = self.round.as_mut() {
                    r.waiters.retain(|w| *w != key);
                }
            }
        }
        for key in std::mem::take(&mut self.finished_shims) {
            if let Some(mut s) = self.shims.remove(key) {
                let _ = self.poll.registry().deregister(&mut s.conn.sock);
                if self.idle.get(&s.id) == Some(&key) {
                    self.idle.remove(&s.id);
                }
                if let Purpose::Proxy(p) = &s.purpose {
                    // The client may still be waiting on this shim.
                    let client = p.client;
                    if let Some(c) = self.conns.get(client)
                        && matches!(c.body, Body::Proxy(k) if k == key)
                        && c.state == State::Writing
                    {
                        self.close(client);
                    }
                }
                let buf = s.conn.take_buf();
                self.put_buf(buf);
            }
        }
        // Closing clients above may have queued more.
        if !self.closing.is_empty() {
            self.reap();
        }
    }

    fn on_timers(&mut self, now: Instant) {
        let ch = self.watcher.on_timer(&mut self.reg, now);
        self.on_changes(ch);
        self.cri_timer(now);
        if self.round.as_ref().is_some_and(|r| now >= r.deadline) {
            self.finish_round(now);
        }
        let expired: Vec<Key> = self
            .shims
            .iter()
            .filter(|(_, s)| now >= s.conn.deadline)
            .map(|(k, _)| k)
            .collect();
        for key in expired {
            self.shim_failed(key, "timeout", now);
        }
        let expired: Vec<(Key, State)> = self
            .conns
            .iter()
            .filter(|(_, c)| now >= c.deadline && c.state != State::Waiting)
            .map(|(k, c)| (k, c.state))
            .collect();
        for (key, state) in expired {
            if state == State::Reading
                && self
                    .conns
                    .get(key)
                    .is_some_and(|c| c.head_started.is_some())
            {
                log::info!("request head timeout, closing connection");
            }
            self.close(key);
        }
        if !self.trimmed && self.round.is_none() && now >= self.last_scrape + TRIM_AFTER {
            self.trim();
        }
    }

    /// Release cached buffers after a quiet period.
    fn trim(&mut self) {
        self.trimmed = true;
        if self.last.as_ref().is_some_and(|s| Rc::strong_count(s) == 1) {
            self.last = None;
        }
        self.spare_expo = None;
        self.buf_pool = Vec::new();
        self.gzip_pool = Vec::new();
        #[cfg(target_env = "gnu")]
        // SAFETY: malloc_trim only returns free memory to the OS.
        unsafe {
            libc::malloc_trim(0);
        }
        log::debug!("released cached buffers after idle period");
    }

    pub(crate) fn register_shim(&mut self, shim: Shim) -> io::Result<Key> {
        let key = self.shims.next_key();
        let mut shim = shim;
        self.poll.registry().register(
            &mut shim.conn.sock,
            token(Kind::Shim(key)),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        Ok(self.shims.insert(shim))
    }

    /// Readiness on a shim connection.
    fn shim_event(&mut self, key: Key, now: Instant) {
        let Some(s) = self.shims.get(key) else {
            return;
        };
        match s.purpose {
            Purpose::Scrape { .. } => self.scrape_progress(key, now),
            Purpose::Proxy(_) => self.proxy_progress(key, now),
            Purpose::Idle => {
                let s = self.shims.get_mut(key).expect("checked above");
                if !s.conn.idle_ok() {
                    // The shim closed its side (or spoke out of turn).
                    self.finish_shim(key);
                }
            }
        }
    }

    fn shim_failed(&mut self, key: Key, why: &'static str, now: Instant) {
        let Some(s) = self.shims.get(key) else {
            return;
        };
        match s.purpose {
            Purpose::Scrape { .. } => self.scrape_failed(key, why, now),
            Purpose::Proxy(_) => self.proxy_failed(key, why, now),
            Purpose::Idle => self.finish_shim(key),
        }
    }

    /// A buffer for a shim response (recycled when possible): the smallest
    /// pooled one that is big enough, else the biggest (it will grow).
    /// Pooled buffers keep their length (initialised, stale contents).
    pub(crate) fn take_buf(&mut self, hint: usize) -> Vec<u8> {
        let fit = self
            .buf_pool
            .iter()
            .enumerate()
            .filter(|(_, b)| b.len() >= hint)
            .min_by_key(|(_, b)| b.len())
            .map(|(i, _)| i);
        let i = fit.or_else(|| (0..self.buf_pool.len()).max_by_key(|&i| self.buf_pool[i].len()));
        let mut buf = i.map(|i| self.buf_pool.swap_remove(i)).unwrap_or_default();
        if buf.len() > hint + hint / 2 + shim::STREAM_BUF {
            // Far too big (first-round doubling, or a body that shrank):
            // give the memory back rather than pin it in the pool.
            buf.truncate(hint);
            buf.shrink_to_fit();
        }
        buf
    }

    /// Return a buffer to the pool. Empty ones are dropped, and so are very
    /// large ones (one huge body must not pin memory forever); the pool is
    /// bounded by the number of sandboxes.
    pub(crate) fn put_buf(&mut self, buf: Vec<u8>) {
        const MAX_POOLED: usize = 4 << 20;
        if buf.capacity() == 0
            || buf.len() > MAX_POOLED
            || self.buf_pool.len() >= self.reg.len() + 8
        {
            return;
        }
        self.buf_pool.push(buf);
    }

    pub(crate) fn gzip_pump(&mut self) -> Option<GzipPump> {
        if self.cfg.gzip_level == 0 || self.gzip_active >= MAX_GZIP {
            return None;
        }
        self.gzip_active += 1;
        Some(self.gzip_pool.pop().unwrap_or_else(|| {
            GzipPump::new(crate::wire::gzip::GzipEncoder::new(self.cfg.gzip_level))
        }))
    }

    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    pub fn watcher_watched(&self) -> usize {
        self.watcher.watched()
    }
}
