//! Shim connections for fetch rounds: opening them (or reusing a parked
//! one), moving their bytes, handing bodies and failures to the scraper,
//! parking them for the next round, and carrying out the scraper's actions.

use super::io::{Io, Op, out_of_fds};
use super::token::{Source, token};
use super::{Daemon, Ready, ShimSock, TimerKey};
use crate::state::outcome::FetchError;
use crate::state::scraper::{Action, Snapshot, Ticket};
use crate::state::shim::{Exchange, Step};
use crate::state::slab::Key;
use mio::Interest;
use mio::net::UnixStream;
use std::time::Instant;

/// What a shim connection is for.
pub(super) enum Purpose {
    /// A fetch of a round.
    Scrape(Ticket),
    /// Answering a client (see `relay`).
    Proxy(super::relay::Proxy),
    /// Parked between rounds (HTTP keep-alive).
    Idle,
}

/// What driving a shim connection may go on with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Flow {
    /// Something moved: look again.
    Continue,
    /// Nothing to do until I/O or the other side moves.
    Wait,
    /// The connection was removed.
    Gone,
}

/// Failed sandboxes named in a round's summary line.
const SUMMARY_IDS: usize = 5;

impl Daemon {
    /// Carry out what the scraper asks, until it asks nothing more.
    pub(super) fn run_scraper(&mut self, now: Instant) {
        // Actions queued while carrying one out (a retry, a released
        // descriptor) are taken by this loop, not by a nested one.
        if self.running_scraper {
            return;
        }
        self.running_scraper = true;
        while let Some(a) = self.scraper.poll_action() {
            match a {
                Action::Fetch {
                    ticket,
                    id,
                    fresh,
                    buf,
                    hint,
                    deadline,
                } => self.open_fetch(ticket, &id, fresh, buf, hint, deadline, now),
                Action::Cancel { handle } => self.remove_shim(handle, now),
                Action::Answer {
                    client,
                    snap,
                    waiting,
                } => self.respond_metrics(client, snap, waiting, now),
                Action::Finished(snap) => self.round_finished(&snap),
            }
        }
        self.running_scraper = false;
        self.timers.set(TimerKey::Scraper, self.scraper.deadline());
        if self.scraper.holding() && self.cri.policy.next_due().is_some_and(|d| d > now) {
            // A scrape waits for handlers: ask the runtime now.
            self.cri.policy.hurry(now);
            self.timers.set(TimerKey::Cri, Some(now));
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn open_fetch(
        &mut self,
        t: Ticket,
        id: &str,
        fresh: bool,
        buf: Vec<u8>,
        hint: usize,
        deadline: Instant,
        now: Instant,
    ) {
        let limit = self.cfg.max_shim_body;
        if !fresh
            && let Some(k) = self.idle.remove(id)
            && let Some(s) = self.shims.get_mut(k)
            && s.x.is_idle()
        {
            s.x.reuse("/metrics", limit, buf, hint, now, deadline);
            s.purpose = Purpose::Scrape(t);
            self.scraper.opened(t, k);
            self.ready.push_back(Ready::Shim(k));
            return;
        }
        let Some(path) = self.reg.socket_path(id) else {
            self.scraper
                .failed(t, FetchError::NoSocket, false, buf, now, now);
            return;
        };
        let mut sock = match UnixStream::connect(&path) {
            Ok(s) => s,
            Err(e) => {
                let err = FetchError::from_connect(&e);
                if err == FetchError::FdExhausted {
                    self.fd_pressure(now);
                    self.scraper.no_fd(t, buf);
                } else {
                    self.scraper.failed(t, err, false, buf, now, now);
                }
                return;
            }
        };
        let key = self.shims.next_key();
        if let Err(e) = self.poll.registry().register(
            &mut sock,
            token(Source::Shim(key)),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            if out_of_fds(&e) {
                self.fd_pressure(now);
                self.scraper.no_fd(t, buf);
            } else {
                self.scraper
                    .failed(t, FetchError::ConnectFailed, false, buf, now, now);
            }
            return;
        }
        self.shims.insert(ShimSock {
            io: Io::new(sock),
            x: Exchange::new("/metrics", false, limit, buf, hint, now, deadline),
            id: id.to_string(),
            purpose: Purpose::Scrape(t),
        });
        self.scraper.opened(t, key);
        self.ready.push_back(Ready::Shim(key));
    }

    /// Move a shim connection's bytes and act on what its exchange says,
    /// until it would block or waits on its client.
    pub(super) fn drive_shim(&mut self, key: Key, now: Instant) {
        loop {
            let Some(s) = self.shims.get_mut(key) else {
                return;
            };
            let mut moved = false;
            let out = s.x.transmit();
            if !out.is_empty() {
                match s.io.write(out) {
                    Op::Done(n) => {
                        s.x.handle_sent(n);
                        moved = true;
                    }
                    Op::Blocked | Op::Eof => {}
                    Op::Failed(_) => s.x.handle_io_error(FetchError::SendFailed),
                }
            }
            if let Some(buf) = s.x.recv_buf() {
                match s.io.read(buf) {
                    Op::Done(n) => {
                        s.x.handle_read(n);
                        moved = true;
                    }
                    Op::Eof => {
                        s.x.handle_eof();
                        moved = true;
                    }
                    Op::Blocked => {}
                    Op::Failed(_) => s.x.handle_io_error(FetchError::Reset),
                }
            }
            let step = s.x.poll();
            let scrape = match s.purpose {
                Purpose::Scrape(t) => Some(t),
                _ => None,
            };
            let flow = if let Some(t) = scrape {
                self.scrape_step(key, t, step, now)
            } else if matches!(s.purpose, Purpose::Proxy(_)) {
                self.proxy_step(key, step, now)
            } else if step == Step::Closed {
                log::debug!(sandbox:% = s.id; "kept-alive shim connection closed or spoke out of turn");
                self.remove_shim(key, now);
                Flow::Gone
            } else {
                Flow::Wait
            };
            match flow {
                Flow::Gone => return,
                Flow::Wait if !moved => break,
                _ => {}
            }
        }
        if let Some(s) = self.shims.get(key) {
            self.timers.set(TimerKey::Shim(key), s.x.deadline());
        }
    }

    fn scrape_step(&mut self, key: Key, t: Ticket, step: Step, now: Instant) -> Flow {
        let s = self.shims.get_mut(key).expect("driven");
        match step {
            Step::Pending | Step::Data => Flow::Wait,
            Step::Head => match s.x.head().map_or(0, |h| h.status) {
                200 => Flow::Continue,
                status => {
                    log::debug!(sandbox:% = s.id, status = status; "shim answered an error status");
                    self.scrape_failed(key, t, FetchError::HttpStatus, now)
                }
            },
            Step::Done => {
                let range = s.x.body_range();
                let started = s.x.started();
                let buf = s.x.take_buf();
                if let Some(sb) = self.reg.get_mut(&s.id) {
                    sb.size_hint = range.len();
                }
                self.scraper.fetched(t, buf, range, started, now);
                let flow = self.park_or_remove(key, now);
                self.run_scraper(now);
                flow
            }
            Step::Failed(e) => self.scrape_failed(key, t, e, now),
            Step::Closed => self.scrape_failed(key, t, FetchError::Reset, now),
        }
    }

    fn scrape_failed(&mut self, key: Key, t: Ticket, e: FetchError, now: Instant) -> Flow {
        let s = self.shims.get_mut(key).expect("driven");
        log::debug!(sandbox:% = s.id, reason = e.as_label(); "shim scrape failed");
        // A kept-alive connection the shim had closed in the meantime:
        // the scraper retries once on a new one.
        let stale = s.x.reused() && s.x.nothing_received();
        let started = s.x.started();
        let buf = s.x.take_buf();
        self.remove_shim(key, now);
        self.scraper.failed(t, e, stale, buf, started, now);
        self.run_scraper(now);
        Flow::Gone
    }

    /// Keep a finished scrape connection for the next round if the shim
    /// allows it, the sandbox still exists and descriptors are not short;
    /// otherwise close it.
    fn park_or_remove(&mut self, key: Key, now: Instant) -> Flow {
        let pressure = self.under_fd_pressure(now);
        let s = self.shims.get_mut(key).expect("driven");
        if s.x.reusable()
            && !pressure
            && self.idle.len() < self.idle_cap
            && self.reg.get(&s.id).is_some()
            && !self.idle.contains_key(&s.id)
        {
            drop(s.x.park());
            s.purpose = Purpose::Idle;
            self.idle.insert(s.id.clone(), key);
            self.idle_order.push_back(key);
            if self.idle_order.len() > 2 * self.idle.len() + 64 {
                let shims = &self.shims;
                self.idle_order
                    .retain(|k| shims.get(*k).is_some_and(|s| s.x.is_idle()));
            }
            // Bytes may already wait behind the response: look now.
            Flow::Continue
        } else {
            self.remove_shim(key, now);
            Flow::Gone
        }
    }

    /// Close the longest-parked shim connection (descriptors are short).
    pub(super) fn evict_idle_shim(&mut self) -> bool {
        while let Some(k) = self.idle_order.pop_front() {
            let Some(s) = self.shims.get(k) else {
                continue;
            };
            if s.x.is_idle() && self.idle.get(&s.id) == Some(&k) {
                let id = s.id.clone();
                self.idle.remove(&id);
                if let Some(mut s) = self.shims.remove(k) {
                    let _ = self.poll.registry().deregister(&mut s.io.sock);
                }
                self.timers.set(TimerKey::Shim(k), None);
                return true;
            }
        }
        false
    }

    /// Deregister and close a shim connection (its purpose is settled by
    /// the caller); the descriptor goes to whoever waits for one.
    pub(super) fn remove_shim(&mut self, key: Key, now: Instant) {
        let Some(mut s) = self.shims.remove(key) else {
            return;
        };
        let _ = self.poll.registry().deregister(&mut s.io.sock);
        drop(s.io);
        self.timers.set(TimerKey::Shim(key), None);
        if self.idle.get(&s.id) == Some(&key) {
            self.idle.remove(&s.id);
        }
        if let Purpose::Proxy(p) = &s.purpose {
            if p.timed {
                self.profiling.end(&s.id);
            }
            if let Some(c) = self.clients.get_mut(p.client)
                && c.proxy == Some(key)
            {
                c.proxy = None;
            }
        }
        self.fd_freed(now);
    }

    /// Book a finished round: drops per sandbox, one log line for its
    /// failures.
    fn round_finished(&mut self, snap: &Snapshot) {
        for (i, src) in snap.expo.sources().iter().enumerate() {
            if let Some(sb) = self.reg.get_mut(&src.id) {
                sb.drops_total.merge(&snap.expo.drops(i));
            }
        }
        if let Some((reasons, first)) = snap.failure_summary(SUMMARY_IDS) {
            log::warn!(
                failed = snap.failed,
                sandboxes = snap.slots.len(),
                reasons:% = reasons,
                first:% = first;
                "fetch round: shims failed"
            );
        }
        if log::log_enabled!(log::Level::Debug) {
            let body_bytes: usize = snap.expo.sources().iter().map(|s| s.body().len()).sum();
            log::debug!(
                sandboxes = snap.slots.len(),
                failed = snap.failed,
                body_bytes = body_bytes,
                pooled_buffers = self.scraper.pool().len(),
                pooled_bytes = self.scraper.pool().bytes(),
                held_bytes = snap.expo.held_bytes(),
                took_ms = snap.finished.saturating_duration_since(snap.started).as_millis() as u64;
                "fetch round done"
            );
        }
    }
}
