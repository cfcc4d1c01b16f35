//! The reactor: one thread, one `mio` loop, every fd.
//!
//! Owns: the listener, client sockets, shim sockets, the inotify watcher,
//! the signal fd and the CRI connection, plus the one deadline queue
//! ([`crate::state::timers`]). It turns readiness into calls on the sans-IO
//! machines of [`crate::state`] and carries out what they return; it holds
//! no protocol logic of its own. Nothing here blocks: sockets are
//! non-blocking, readiness is remembered per socket ([`io`]), and a
//! connection is driven until its machine has nothing to do or its socket
//! would block. Entities to drive go through one ready queue, so nothing
//! is driven re-entrantly from inside another's handler.
//!
//! Tokens carry a slot generation ([`token`]), so a connection is removed
//! as soon as it closes: an event or timer still queued for it misses.

#![warn(unreachable_pub)]

mod clients;
pub mod config;
mod cri;
mod fetch;
mod io;
pub mod logger;
pub mod procfs;
mod relay;
mod selfmetrics;
mod signals;
#[cfg(feature = "tls")]
mod tls;
mod token;
mod tracing_log;
mod watch;

use crate::state::body::Pump;
use crate::state::conn::{Conn, Timeouts};
use crate::state::proxy::Profiling;
use crate::state::registry::Registry;
use crate::state::routes::DebugAccess;
use crate::state::scraper::{ScrapeConfig, Scraper};
use crate::state::shim::Exchange;
use crate::state::slab::{Key, Slab};
use crate::state::timers::Timers;
use crate::wire::gzip::{GzipEncoder, GzipPump};
use crate::wire::http::request::{AcceptEncoding, Coding};
#[cfg(feature = "zstd")]
use crate::wire::zstd::ZstdPump;
use config::{Config, Gzip};
use mio::net::{TcpListener, TcpStream, UnixStream};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll};
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};
use token::{Source, token};

/// Concurrent gzip responses (each holds ~300 KB of compressor state); more
/// are answered uncompressed.
const MAX_GZIP: usize = 4;
/// Concurrent zstd responses (each holds ~3 MB: its 2 MiB window); more
/// are answered with gzip (or uncompressed). One context is kept between
/// scrapes.
const MAX_ZSTD: usize = 2;
/// After running out of descriptors, keep-alive to shims stays off this long.
const FD_PRESSURE: Duration = Duration::from_secs(10);
/// Accepts paused for lack of descriptors are retried this often (and as
/// soon as any descriptor is released).
const ACCEPT_RETRY: Duration = Duration::from_millis(100);
#[cfg(feature = "tls")]
const RELOAD_CHECK: Duration = crate::state::tls::reload::CHECK_EVERY;

/// What a deadline in the queue belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum TimerKey {
    Client(Key),
    Shim(Key),
    Scraper,
    Watcher,
    Cri,
    Accept,
    /// The TLS certificate files' periodic check.
    #[cfg(feature = "tls")]
    Tls,
}

/// Something to drive from the ready queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ready {
    Client(Key),
    Shim(Key),
}

/// A client connection: its socket and its machine.
struct Client {
    io: io::Io<TcpStream>,
    conn: Conn,
    /// On a TLS listener: the session between the socket and `conn`.
    #[cfg(feature = "tls")]
    tls: Option<Box<crate::state::tls::Session>>,
    peer: std::net::SocketAddr,
    /// The shim exchange answering this client's request, if any.
    proxy: Option<Key>,
    /// When this client was last queued as an eviction candidate.
    evict_mark: Option<Instant>,
}

/// A shim connection, what it is for, and its exchange.
struct ShimSock {
    io: io::Io<UnixStream>,
    x: Exchange,
    id: String,
    purpose: fetch::Purpose,
}

pub struct Daemon {
    cfg: Config,
    poll: Poll,
    listener: TcpListener,
    signals: signals::Signals,
    watcher: watch::Watcher,
    reg: Registry,
    cri: cri::Cri,
    clients: Slab<Client>,
    shims: Slab<ShimSock>,
    /// Parked keep-alive shim connections by sandbox id, and in the order
    /// they were parked (oldest first, stale entries skipped).
    idle: HashMap<String, Key>,
    idle_order: VecDeque<Key>,
    /// Most parked shim connections (from the descriptor limit).
    idle_cap: usize,
    scraper: Scraper,
    timers: Timers<TimerKey>,
    ready: VecDeque<Ready>,
    /// Clients with no request in progress, oldest first (entries are
    /// checked against the client's `evict_mark` when used).
    evictable: VecDeque<(Instant, Key)>,
    /// Clients draining input before their close (checked when used).
    lingering: VecDeque<Key>,
    gzip_pool: Vec<Pump>,
    gzip_active: usize,
    #[cfg(feature = "zstd")]
    zstd_pool: Vec<ZstdPump>,
    zstd_active: usize,
    accept_paused: bool,
    fd_pressure_until: Option<Instant>,
    /// HTTPS: the certificate files and the configuration they make.
    #[cfg(feature = "tls")]
    tls: Option<tls::Tls>,
    /// Whether `/debug/*` and `/agent-url` are served.
    debug: DebugAccess,
    /// Profiles and traces running, one per sandbox.
    profiling: Profiling,
    /// `run_scraper` is on the stack.
    running_scraper: bool,
    stop: bool,
}

impl Daemon {
    /// Bind, set up watches and signals. Errors are for the operator.
    pub fn new(cfg: Config) -> std::io::Result<Daemon> {
        let now = Instant::now();
        let nofile = procfs::raise_nofile_limit();
        #[cfg(feature = "tls")]
        let tls = cfg.tls.as_ref().map(tls::Tls::load).transpose()?;
        #[cfg(feature = "tls")]
        let client_auth = tls.as_ref().is_some_and(tls::Tls::client_auth);
        #[cfg(not(feature = "tls"))]
        let client_auth = false;
        let debug =
            DebugAccess::decide(cfg.debug_proxy, cfg.listen.ip().is_loopback(), client_auth);
        let std_listener = std::net::TcpListener::bind(cfg.listen).map_err(|e| {
            std::io::Error::new(e.kind(), format!("cannot listen on {}: {e}", cfg.listen))
        })?;
        std_listener.set_nonblocking(true)?;
        let mut listener = TcpListener::from_std(std_listener);
        let poll = Poll::new()?;
        poll.registry()
            .register(&mut listener, token(Source::Listener), Interest::READABLE)?;
        let signals = signals::Signals::new()?;
        poll.registry().register(
            &mut SourceFd(&signals.fd()),
            token(Source::Signal),
            Interest::READABLE,
        )?;
        let watcher = watch::Watcher::new(cfg.sandbox_dirs.len(), now)?;
        poll.registry().register(
            &mut SourceFd(&watcher.fd()),
            token(Source::Inotify),
            Interest::READABLE,
        )?;
        let seed = {
            use std::hash::BuildHasher;
            std::collections::hash_map::RandomState::new().hash_one(now)
        };
        let scraper = Scraper::new(ScrapeConfig {
            shim_timeout: cfg.shim_timeout,
            max_body: cfg.max_shim_body,
            limits: cfg.limits(),
            seed,
        });
        let mut d = Daemon {
            reg: Registry::with_rules(
                cfg.sandbox_dirs.clone(),
                cfg.rules().map_err(std::io::Error::other)?,
            ),
            cri: cri::Cri::new(cfg.runtime_endpoint.clone(), now),
            cfg,
            poll,
            listener,
            signals,
            watcher,
            clients: Slab::default(),
            shims: Slab::default(),
            idle: HashMap::new(),
            idle_order: VecDeque::new(),
            // Half of what the limit leaves after a reserve for clients and
            // the loop's own fds; the rest is opened per round.
            idle_cap: (nofile.soft.saturating_sub(32) / 2) as usize,
            scraper,
            timers: Timers::default(),
            ready: VecDeque::new(),
            evictable: VecDeque::new(),
            lingering: VecDeque::new(),
            gzip_pool: Vec::new(),
            gzip_active: 0,
            #[cfg(feature = "zstd")]
            zstd_pool: Vec::new(),
            zstd_active: 0,
            accept_paused: false,
            fd_pressure_until: None,
            #[cfg(feature = "tls")]
            tls,
            debug,
            profiling: Profiling::default(),
            running_scraper: false,
            stop: false,
        };
        log::info!(soft = nofile.soft, hard = nofile.hard, raised_from = nofile.was; "file descriptor limit");
        let ch = d.watcher.poll_missing(&mut d.reg, now);
        d.on_changes(ch, now);
        d.cri_timer(now);
        d.timers.set(TimerKey::Watcher, Some(d.watcher.deadline()));
        #[cfg(feature = "tls")]
        if d.tls.is_some() {
            d.timers.set(TimerKey::Tls, Some(now + RELOAD_CHECK));
        }
        if d.debug != DebugAccess::Served {
            log::info!(
                access:? = d.debug;
                "debug endpoints (/debug/*, /agent-url) answer 403; --enable-debug-proxy=true serves them"
            );
        }
        if let Ok(addr) = d.listener.local_addr() {
            let scheme = if d.cfg.tls.is_some() { "https" } else { "http" };
            log::info!(addr:% = addr, scheme = scheme, sandboxes = d.reg.len(); "listening");
        }
        Ok(d)
    }

    pub fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.listener.local_addr()
    }

    /// Serve until SIGTERM/SIGINT.
    pub fn run(&mut self) -> std::io::Result<()> {
        let mut events = Events::with_capacity(512);
        while !self.stop {
            let now = Instant::now();
            let timeout = self
                .timers
                .next_deadline()
                .map(|d| d.saturating_duration_since(now));
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            let now = Instant::now();
            for ev in events.iter() {
                let (r, w) = (
                    ev.is_readable() || ev.is_read_closed() || ev.is_error(),
                    ev.is_writable() || ev.is_write_closed() || ev.is_error(),
                );
                match token::source(ev.token()) {
                    Some(Source::Listener) => self.accept(now),
                    Some(Source::Signal) => self.on_signals(),
                    Some(Source::Inotify) => {
                        let ch = self.watcher.handle(&mut self.reg, now);
                        self.on_changes(ch, now);
                    }
                    Some(Source::Cri) => {
                        if let Some(listing) = self.cri.on_event(now) {
                            self.apply_listing(listing, now);
                        }
                        self.judge_held(now);
                        self.timers.set(TimerKey::Cri, self.cri.next_deadline());
                    }
                    Some(Source::Client(k)) => {
                        if let Some(c) = self.clients.get_mut(k) {
                            c.io.on_event(r, w);
                            self.ready.push_back(Ready::Client(k));
                        }
                    }
                    Some(Source::Shim(k)) => {
                        if let Some(s) = self.shims.get_mut(k) {
                            s.io.on_event(r, w);
                            self.ready.push_back(Ready::Shim(k));
                        }
                    }
                    None => {}
                }
                self.drain_ready(now);
            }
            self.on_timers(Instant::now());
        }
        Ok(())
    }

    fn on_signals(&mut self) {
        while let Some(sig) = self.signals.read() {
            if signals::is_shutdown(sig) {
                log::info!(signal = signals::name(sig); "shutting down");
                self.stop = true;
            } else {
                log::info!(signal = signals::name(sig); "signal ignored");
            }
        }
    }

    /// Drive everything queued, including what driving queues.
    fn drain_ready(&mut self, now: Instant) {
        while let Some(r) = self.ready.pop_front() {
            match r {
                Ready::Client(k) => self.drive_client(k, now),
                Ready::Shim(k) => self.drive_shim(k, now),
            }
        }
    }

    fn on_timers(&mut self, now: Instant) {
        while let Some(k) = self.timers.pop_expired(now) {
            match k {
                TimerKey::Client(key) => {
                    if let Some(c) = self.clients.get_mut(key) {
                        c.conn.handle_timeout(now);
                        self.ready.push_back(Ready::Client(key));
                    }
                }
                TimerKey::Shim(key) => {
                    if let Some(s) = self.shims.get_mut(key) {
                        s.x.handle_timeout(now);
                        self.ready.push_back(Ready::Shim(key));
                    }
                }
                TimerKey::Scraper => {
                    if self.scraper.handle_timeout(now) {
                        release_heap();
                        log::debug!("released cached buffers after idle period");
                    }
                    self.run_scraper(now);
                }
                TimerKey::Watcher => {
                    let ch = self.watcher.on_timer(&mut self.reg, now);
                    self.on_changes(ch, now);
                    self.timers
                        .set(TimerKey::Watcher, Some(self.watcher.deadline()));
                }
                TimerKey::Cri => self.cri_timer(now),
                TimerKey::Accept => self.accept(now),
                #[cfg(feature = "tls")]
                TimerKey::Tls => {
                    if let Some(t) = self.tls.as_mut() {
                        t.check();
                    }
                    self.timers.set(TimerKey::Tls, Some(now + RELOAD_CHECK));
                }
            }
            self.drain_ready(now);
        }
    }

    fn on_changes(&mut self, ch: watch::Changes, now: Instant) {
        for id in &ch.added {
            log::info!(sandbox:% = id; "sandbox added");
            self.cri.policy.added(id, now);
        }
        for id in &ch.removed {
            log::info!(sandbox:% = id; "sandbox removed");
            self.cri.policy.removed(id);
            if let Some(k) = self.idle.remove(id) {
                self.remove_shim(k, now);
            }
        }
        if !ch.added.is_empty() {
            self.timers.set(TimerKey::Cri, self.cri.next_deadline());
        }
    }

    /// CRI timers (reconnects, deadlines, due calls).
    fn cri_timer(&mut self, now: Instant) {
        if let Some(listing) = self.cri.on_timer(self.poll.registry(), now) {
            self.apply_listing(listing, now);
        }
        self.judge_held(now);
        self.timers.set(TimerKey::Cri, self.cri.next_deadline());
    }

    /// Pod metadata from the runtime, for the sandboxes we list.
    fn apply_listing(&mut self, listing: cri::Listing, now: Instant) {
        for (id, meta) in listing {
            if self.reg.set_meta(&id, Some(meta)) {
                log::debug!(sandbox:% = id; "pod metadata from the CRI runtime");
            }
        }
        self.judge_held(now);
    }

    /// Sandboxes a round holds until their runtime handler is known: go on
    /// with those the CRI runtime named (or that are no longer worth
    /// waiting for).
    fn judge_held(&mut self, now: Instant) {
        if !self.scraper.holding() {
            return;
        }
        let cri = &self.cri;
        let hold = |id: &str| cri.holds(id);
        self.scraper.judge(&self.reg, &hold, now);
        self.run_scraper(now);
    }

    /// A descriptor was released: give it to a fetch waiting for one, or
    /// to a paused accept.
    fn fd_freed(&mut self, now: Instant) {
        if self.scraper.starved() {
            self.scraper.fd_freed();
            self.run_scraper(now);
        } else if self.accept_paused {
            self.timers.set(TimerKey::Accept, Some(now));
        }
    }

    /// Descriptors ran out just now.
    fn fd_pressure(&mut self, now: Instant) {
        if self.fd_pressure_until.is_none() {
            log::warn!(
                open_idle_shim_connections = self.idle.len(),
                clients = self.clients.len(),
                shims = self.shims.len();
                "out of file descriptors: shim keep-alive off until descriptors free up"
            );
        }
        self.fd_pressure_until = Some(now + FD_PRESSURE);
    }

    fn under_fd_pressure(&mut self, now: Instant) -> bool {
        match self.fd_pressure_until {
            Some(t) if now < t => true,
            Some(_) => {
                self.fd_pressure_until = None;
                false
            }
            None => false,
        }
    }

    /// A compressor for an answer, as the request allows and the server
    /// offers (a level of 0 turns a coding off; so does a full pool).
    fn pump(&mut self, accept: &AcceptEncoding) -> Option<Pump> {
        let gzip = self.cfg.gzip != Gzip::Off && self.gzip_active < MAX_GZIP;
        let zstd = self.cfg.zstd_level > 0 && self.zstd_active < MAX_ZSTD;
        match accept.choose(gzip, zstd) {
            Coding::Identity => None,
            Coding::Gzip => {
                self.gzip_active += 1;
                let pump = self.gzip_pool.pop().unwrap_or_else(|| match self.cfg.gzip {
                    Gzip::Level(n) => Pump::Gzip(GzipPump::new(GzipEncoder::new(n))),
                    Gzip::Guided | Gzip::Off => Pump::Guided(Box::default()),
                });
                Some(pump)
            }
            Coding::Zstd => self.zstd_pump(),
        }
    }

    #[cfg(feature = "zstd")]
    fn zstd_pump(&mut self) -> Option<Pump> {
        self.zstd_active += 1;
        let level = self.cfg.zstd_level;
        let pump = self
            .zstd_pool
            .pop()
            .unwrap_or_else(|| ZstdPump::new(i32::from(level)));
        Some(Pump::Zstd(pump))
    }

    /// Not built in: `--zstd-level` is 0, so zstd is never offered and a
    /// client asking only for it gets identity.
    #[cfg(not(feature = "zstd"))]
    fn zstd_pump(&mut self) -> Option<Pump> {
        None
    }

    fn put_pump(&mut self, mut pump: Pump) {
        pump.reset();
        match pump {
            Pump::Guided(_) | Pump::Gzip(_) => {
                self.gzip_active -= 1;
                if self.gzip_pool.len() < MAX_GZIP {
                    self.gzip_pool.push(pump);
                }
            }
            #[cfg(feature = "zstd")]
            Pump::Zstd(p) => {
                self.zstd_active -= 1;
                if self.zstd_pool.is_empty() {
                    self.zstd_pool.push(p);
                }
            }
        }
    }

    fn timeouts(&self) -> Timeouts {
        Timeouts {
            header: self.cfg.header_timeout,
            idle: self.cfg.idle_timeout,
            // A proxied profile may take its duration (up to an hour) plus
            // the shim timeout before its head; rounds end sooner.
            wait: self.cfg.shim_timeout + Duration::from_secs(3600 + 60),
            write_stall: Duration::from_secs(30),
            linger: Duration::from_secs(2),
        }
    }
}

/// Hand freed heap back to the OS after a quiet period.
fn release_heap() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only returns free memory to the OS.
    unsafe {
        libc::malloc_trim(0);
    }
}
