//! Client connections: accepting them (the connection cap, eviction of idle
//! clients, running out of descriptors), moving their bytes (through the
//! TLS session on an HTTPS listener), and carrying out what their machines
//! ask (route a request, answer it, close).

use super::io::{Io, Op, out_of_fds};
use super::token::{Source, token};
use super::{ACCEPT_RETRY, Client, Daemon, Ready, TimerKey};
use crate::state::body::{Body, MetricsBody, Pump};
use crate::state::conn::{CloseReason, Conn, Event};
use crate::state::proxy::Reply;
use crate::state::routes::{self, Route};
use crate::state::scraper::{Snapshot, Waiting};
use crate::state::slab::Key;
#[cfg(feature = "tls")]
use crate::state::tls::{Failure, FailureKind, Session};
use crate::wire::http::request::Coding;
use crate::wire::http::response::{Framing, SERVICE_UNAVAILABLE};
use mio::Interest;
use mio::net::TcpStream;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// A client is closed to admit another only after this long without a
/// request (scrapers send theirs at once; a silent connection is idle).
const EVICT_AFTER: Duration = Duration::from_secs(1);

impl Daemon {
    /// Accept until the listener would block. Without descriptors, idle
    /// shim connections, then idle clients, are given up to make room; if
    /// none is left, accepting pauses and is retried on a timer and as soon
    /// as a descriptor is released (the listener is edge-triggered: no new
    /// event would come for connections already queued).
    pub(super) fn accept(&mut self, now: Instant) {
        self.accept_paused = false;
        self.timers.set(TimerKey::Accept, None);
        loop {
            match self.listener.accept() {
                Ok((sock, peer)) => self.admit(sock, peer, now),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if out_of_fds(&e) => {
                    self.fd_pressure(now);
                    if self.evict_idle_shim() || self.evict_idle_client(now) {
                        continue;
                    }
                    log::warn!(error:% = e; "accept failed, out of file descriptors; retrying");
                    self.accept_paused = true;
                    self.timers.set(TimerKey::Accept, Some(now + ACCEPT_RETRY));
                    return;
                }
                // ECONNABORTED and friends: that connection is gone.
                Err(e) => log::debug!(error:% = e; "accept failed"),
            }
        }
    }

    fn admit(&mut self, mut sock: TcpStream, peer: std::net::SocketAddr, now: Instant) {
        if self.clients.len() >= self.cfg.max_connections
            && !self.close_lingering(now)
            && !self.evict_idle_client(now)
        {
            // Every slot is busy with a request. Best effort: the socket
            // buffer takes this at once. A TLS client would read plain
            // bytes as a broken record: it is only closed.
            if self.cfg.tls.is_none() {
                let _ = std::io::Write::write(&mut sock, SERVICE_UNAVAILABLE);
                log::warn!(max = self.cfg.max_connections; "connection limit reached with every client busy, answered 503");
            } else {
                log::warn!(max = self.cfg.max_connections; "connection limit reached with every client busy, closed a new TLS connection");
            }
            let _ = sock.shutdown(std::net::Shutdown::Write);
            return;
        }
        #[cfg(feature = "tls")]
        let tls = match &self.tls {
            Some(t) => match t.session() {
                Some(s) => Some(s),
                None => return,
            },
            None => None,
        };
        let _ = sock.set_nodelay(true);
        let key = self.clients.next_key();
        if let Err(e) = self.poll.registry().register(
            &mut sock,
            token(Source::Client(key)),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            log::warn!(error:% = e; "cannot register connection");
            return;
        }
        self.clients.insert(Client {
            io: Io::new(sock),
            conn: Conn::new(self.timeouts(), now),
            #[cfg(feature = "tls")]
            tls,
            peer,
            proxy: None,
            evict_mark: None,
        });
        self.ready.push_back(Ready::Client(key));
    }

    /// Close a client whose last answer is out and that is only draining
    /// input before its close: it is done, and its slot is wanted.
    fn close_lingering(&mut self, now: Instant) -> bool {
        while let Some(key) = self.lingering.pop_front() {
            if let Some(c) = self.clients.get_mut(key)
                && c.conn.is_lingering()
            {
                c.conn.close(CloseReason::Done);
                self.drive_client(key, now);
                return true;
            }
        }
        false
    }

    /// Close the client that has been without a request the longest. A
    /// candidate is read first: a request that already arrived (a burst of
    /// new connections is accepted before any is read) is served, not
    /// dropped.
    fn evict_idle_client(&mut self, now: Instant) -> bool {
        while let Some(&(mark, key)) = self.evictable.front() {
            if self
                .clients
                .get(key)
                .is_none_or(|c| c.evict_mark != Some(mark))
            {
                self.evictable.pop_front();
                continue;
            }
            if now.saturating_duration_since(mark) < EVICT_AFTER {
                // The oldest is fresh (a client between its connect and its
                // request, or between two requests): none is worth closing.
                return false;
            }
            self.evictable.pop_front();
            self.drive_client(key, now);
            let Some(c) = self.clients.get_mut(key) else {
                continue;
            };
            if c.conn.evictable_since() == Some(mark) {
                log::info!(idle_ms = now.saturating_duration_since(mark).as_millis() as u64; "closing the longest-idle client to admit a new one");
                c.conn.close(CloseReason::Evicted);
                self.drive_client(key, now);
                return true;
            }
        }
        false
    }

    /// Read, route, answer and write for one client until it would block
    /// or has nothing to do.
    pub(super) fn drive_client(&mut self, key: Key, now: Instant) {
        loop {
            let Some(c) = self.clients.get_mut(key) else {
                return;
            };
            #[cfg(feature = "tls")]
            let mut progress = match c.tls.as_deref_mut() {
                None => move_plain(&mut c.io, &mut c.conn, now),
                Some(tls) => move_tls(&mut c.io, tls, &mut c.conn, now),
            };
            #[cfg(not(feature = "tls"))]
            let mut progress = move_plain(&mut c.io, &mut c.conn, now);
            #[cfg(feature = "tls")]
            if let Some(f) = c.tls.as_mut().and_then(|t| t.poll_failure()) {
                self.tls_failed(key, f);
                continue;
            }
            let Some(c) = self.clients.get_mut(key) else {
                return;
            };
            if c.conn.wants_relay()
                && let Some(shim) = c.proxy
            {
                self.ready.push_back(Ready::Shim(shim));
            }
            while let Some(ev) = self.clients.get_mut(key).and_then(|c| c.conn.poll_event()) {
                progress = true;
                if self.on_client_event(key, ev, now) {
                    return;
                }
            }
            if !progress {
                break;
            }
        }
        let Some(c) = self.clients.get_mut(key) else {
            return;
        };
        self.timers.set(TimerKey::Client(key), c.conn.deadline());
        let mark = c.conn.evictable_since();
        if let Some(m) = mark
            && mark != c.evict_mark
        {
            c.evict_mark = mark;
            self.evictable.push_back((m, key));
            if self.evictable.len() > 2 * self.clients.len() + 64 {
                let clients = &self.clients;
                self.evictable
                    .retain(|(m, k)| clients.get(*k).is_some_and(|c| c.evict_mark == Some(*m)));
            }
        }
    }

    /// Carry out one event. True when the client is gone.
    fn on_client_event(&mut self, key: Key, ev: Event, now: Instant) -> bool {
        match ev {
            Event::Request(req) => {
                let route = routes::route(
                    &req,
                    &routes::Ctx {
                        reg: &self.reg,
                        debug: self.debug,
                        max_profile: self.cfg.max_profile,
                    },
                );
                self.on_route(key, route, now);
            }
            Event::Refused(status) => {
                if let Some(c) = self.clients.get(key) {
                    log::info!(status = status, peer:% = c.peer; "refused malformed request");
                }
            }
            Event::Spent(body) => self.release_body(key, body, now),
            Event::ShutdownWrite => {
                if let Some(c) = self.clients.get_mut(key) {
                    #[cfg(feature = "tls")]
                    if let Some(t) = c.tls.as_mut() {
                        // close_notify first; the session says when to shut.
                        t.close_notify();
                    } else {
                        let _ = c.io.sock.shutdown(std::net::Shutdown::Write);
                    }
                    #[cfg(not(feature = "tls"))]
                    let _ = c.io.sock.shutdown(std::net::Shutdown::Write);
                    if c.conn.is_lingering() {
                        self.lingering.push_back(key);
                    }
                }
            }
            Event::Close(reason) => {
                if reason == CloseReason::HeaderTimeout && !self.tls_handshake_timeout(key) {
                    log::info!("request head timeout, closing connection");
                }
                self.remove_client(key, now);
                return true;
            }
        }
        false
    }

    fn on_route(&mut self, key: Key, route: Route, now: Instant) {
        match route {
            Route::Reply(r) => self.reply(key, &r, now),
            Route::Health { head_only } => {
                // Always 200 while the loop answers: a missing runtime or
                // root is reported here, not treated as the monitor's fault.
                let body = format!(
                    "ok\nsandbox_roots_watched {}/{}\nsandboxes {}\nconnections {}\n\
                     cri_connected {}\ncri_pending_sandboxes {}\ncri_unknown_sandboxes {}\n",
                    self.watcher.watched(),
                    self.reg.roots().len(),
                    self.reg.len(),
                    self.clients.len(),
                    u8::from(self.cri.stats.connected),
                    self.cri.policy.missing(),
                    self.cri.policy.given_up(),
                );
                self.reply(key, &Reply::text(200, body, head_only), now);
            }
            Route::Metrics {
                filter,
                accept,
                head_only,
                scrape_timeout,
            } => {
                let w = Waiting {
                    filter,
                    accept,
                    head_only,
                    arrived: now,
                };
                let cri = &self.cri;
                let hold = |id: &str| cri.holds(id);
                self.scraper
                    .request(key, w, scrape_timeout, &self.reg, &hold, now);
                self.run_scraper(now);
            }
            Route::Proxy(p) => self.start_proxy(key, p, now),
        }
    }

    /// Answer a waiting client with a small complete response.
    pub(super) fn reply(&mut self, key: Key, r: &Reply, now: Instant) {
        if let Some(c) = self.clients.get_mut(key) {
            c.conn
                .respond(r.status, &r.header_refs(), &r.body, r.head_only, now);
            self.ready.push_back(Ready::Client(key));
        }
    }

    /// Start streaming a `/metrics` answer from `snap`.
    pub(super) fn respond_metrics(
        &mut self,
        key: Key,
        snap: Rc<Snapshot>,
        w: Waiting,
        now: Instant,
    ) {
        if !self.clients.get(key).is_some_and(|c| c.conn.is_waiting()) {
            return;
        }
        // The monitor's own metrics lead, unless the request filters
        // families (as upstream does).
        let head = if w.filter.is_all() {
            super::selfmetrics::render(self, &snap)
        } else {
            Vec::new()
        };
        let cursor = snap.expo.cursor(&w.filter, head);
        let pump = self.pump(&w.accept);
        let coding = pump.as_ref().map_or(Coding::Identity, Pump::coding);
        self.scraper.stats.responses[coding as usize] += 1;
        let c = self.clients.get_mut(key).expect("checked");
        let framing = match pump {
            None => Framing::Length(cursor.len()),
            Some(_) => c.conn.stream_framing(),
        };
        let mut headers = vec![
            ("Content-Type", "text/plain; version=0.0.4; charset=utf-8"),
            ("Vary", "Accept-Encoding"),
        ];
        match coding {
            Coding::Identity => {}
            Coding::Gzip => headers.push(("Content-Encoding", "gzip")),
            Coding::Zstd => headers.push(("Content-Encoding", "zstd")),
        }
        let body = MetricsBody::new(snap, cursor, pump, framing == Framing::Chunked);
        c.conn.start(
            200,
            &headers,
            framing,
            Body::Metrics(Box::new(body)),
            w.head_only,
            now,
        );
        self.ready.push_back(Ready::Client(key));
    }

    /// Give back what a finished or abandoned body holds.
    fn release_body(&mut self, key: Key, body: Body, now: Instant) {
        match body {
            Body::Metrics(m) => {
                if let Some(pump) = m.pump {
                    self.put_pump(pump);
                }
            }
            Body::Relay { .. } => {
                let shim = self.clients.get_mut(key).and_then(|c| c.proxy.take());
                if let Some(s) = shim {
                    self.remove_shim(s, now);
                }
            }
            Body::None => {}
        }
    }

    /// Deregister and close a client; whatever served it lets go.
    fn remove_client(&mut self, key: Key, now: Instant) {
        let Some(mut c) = self.clients.remove(key) else {
            return;
        };
        let _ = self.poll.registry().deregister(&mut c.io.sock);
        drop(c.io);
        self.timers.set(TimerKey::Client(key), None);
        self.scraper.forget(key);
        if let Some(s) = c.proxy {
            self.remove_shim(s, now);
        }
        self.fd_freed(now);
    }
}

#[cfg(not(feature = "tls"))]
impl Daemon {
    /// No TLS in this build: a header timeout is only that.
    fn tls_handshake_timeout(&mut self, _key: Key) -> bool {
        false
    }
}

#[cfg(feature = "tls")]
impl Daemon {
    /// The header timeout cut a TLS handshake: logged and counted as such.
    fn tls_handshake_timeout(&mut self, key: Key) -> bool {
        let Some(c) = self
            .clients
            .get(key)
            .filter(|c| c.tls.as_ref().is_some_and(|t| t.is_handshaking()))
        else {
            return false;
        };
        log::info!(peer:% = c.peer; "TLS handshake timeout, closing connection");
        if let Some(t) = self.tls.as_mut() {
            t.count_timeout();
        }
        true
    }

    /// A TLS session failed: its last words (an alert, or the plain HTTP
    /// 400) go out best effort, then the connection is closed.
    fn tls_failed(&mut self, key: Key, f: Failure) {
        let Some(c) = self.clients.get_mut(key) else {
            return;
        };
        if let Some(t) = c.tls.as_mut() {
            let out = t.poll_transmit();
            if let Op::Done(n) = c.io.write(out) {
                t.handle_written(n);
            }
        }
        let _ = c.io.sock.shutdown(std::net::Shutdown::Write);
        if f.kind == FailureKind::PlainHttp {
            log::info!(peer:% = c.peer; "plain HTTP request on the TLS port: answered 400, closing connection");
        } else {
            log::info!(peer:% = c.peer, reason = f.kind.as_label(), error:% = f.detail; "TLS failed, closing connection");
        }
        c.conn.close(CloseReason::Tls);
        if let Some(t) = self.tls.as_mut() {
            t.count_failure(f.kind);
        }
    }
}

/// Plain HTTP: socket bytes to and from the connection machine. True when
/// anything moved or the connection turned back to reading.
fn move_plain(io: &mut Io<TcpStream>, conn: &mut Conn, now: Instant) -> bool {
    let mut progress = false;
    let was_reading = match conn.recv_buf() {
        Some(buf) => {
            match io.read(buf) {
                Op::Done(n) => {
                    conn.handle_read(n, now);
                    progress = true;
                }
                Op::Eof => {
                    conn.handle_eof();
                    progress = true;
                }
                Op::Blocked => {}
                Op::Failed(_) => conn.handle_error(),
            }
            true
        }
        None => false,
    };
    let out = conn.poll_transmit(now);
    if !out.is_empty() {
        match io.write(out) {
            Op::Done(n) => {
                conn.handle_written(n, now);
                progress = true;
            }
            Op::Blocked | Op::Eof => {}
            Op::Failed(_) => conn.handle_error(),
        }
    }
    // A response finished without an event (a small answer): the socket
    // may hold the next request, and no readiness event will say so.
    progress || (!was_reading && conn.recv_buf().is_some())
}

/// HTTPS: ciphertext to and from the session, plaintext between the
/// session and the connection machine.
#[cfg(feature = "tls")]
fn move_tls(io: &mut Io<TcpStream>, tls: &mut Session, conn: &mut Conn, now: Instant) -> bool {
    let mut progress = false;
    if let Some(buf) = tls.recv_buf() {
        match io.read(buf) {
            Op::Done(n) => {
                tls.handle_read(n);
                progress = true;
            }
            Op::Eof => {
                tls.handle_eof();
                progress = true;
            }
            Op::Blocked => {}
            Op::Failed(_) => conn.handle_error(),
        }
    }
    progress |= tls.pump(conn, now);
    let out = tls.poll_transmit();
    if !out.is_empty() {
        match io.write(out) {
            Op::Done(n) => {
                tls.handle_written(n);
                progress = true;
            }
            Op::Blocked | Op::Eof => {}
            Op::Failed(_) => conn.handle_error(),
        }
    }
    if tls.take_shutdown() {
        let _ = io.sock.shutdown(std::net::Shutdown::Write);
        progress = true;
    }
    progress
}
