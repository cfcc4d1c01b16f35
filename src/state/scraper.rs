//! Fetch rounds, sans-IO: every shim's `/metrics`, concurrently, into one
//! exposition that every waiting `/metrics` request is answered from.
//!
//! Owns: the round lifecycle (start, per-sandbox completion, the one retry
//! on a stale kept-alive connection, slots waiting for a file descriptor,
//! the deadline, finish), joining a round in flight, the snapshots
//! responses stream from and the cap on how many stay alive, the buffer
//! pool, and the scrape statistics. A failed shim fails its sandbox alone.
//!
//! The reactor calls [`Scraper::request`] for a `/metrics` request, carries
//! out [`Action`]s from [`Scraper::poll_action`] (open a fetch, cancel one,
//! answer a client), and reports each fetch's end with
//! [`fetched`](Scraper::fetched) / [`failed`](Scraper::failed) /
//! [`no_fd`](Scraper::no_fd). Must not: touch a socket, read the clock, log.

use super::bufpool::BufPool;
use super::exclusion::Excluded;
use super::outcome::FetchError;
use super::registry::Registry;
use super::slab::Key;
use crate::wire::expo::{Exposition, Filter, Labels, Limits};
use crate::wire::http::request::AcceptEncoding;
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Buckets of `kata_monitor_scrape_durations_histogram_milliseconds`
/// (upstream: ExponentialBuckets(1, 2, 10)).
pub const BUCKETS_MS: [f64; 10] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];

/// Snapshots that may be alive at once (the newest included). A response
/// keeps its snapshot (all shim bodies, ~85 KB per sandbox) until its last
/// byte is sent, so slow clients, each arriving in a different round, could
/// otherwise hold one each. Past this, a request is answered from the
/// newest snapshot instead of a new round.
pub const MAX_SNAPSHOTS: usize = 4;

/// Without scrapes for this long, cached buffers are released.
pub const TRIM_AFTER: Duration = Duration::from_secs(300);

/// Counters for the monitor's own metrics.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub scrapes: u64,
    pub failed_scrapes: u64,
    /// `/metrics` answers by encoding: identity, gzip, zstd
    /// ([`Coding`](crate::wire::http::request::Coding) order).
    pub responses: [u64; 3],
    pub rounds: u64,
    /// `/metrics` answers served from an earlier round (`MAX_SNAPSHOTS`).
    pub reused: u64,
    /// Cumulative counts per bucket, plus +Inf at the end.
    pub buckets: [u64; BUCKETS_MS.len() + 1],
    pub sum_ms: f64,
}

impl Stats {
    pub fn observe_ms(&mut self, ms: f64) {
        for (i, b) in BUCKETS_MS.iter().enumerate() {
            if ms <= *b {
                self.buckets[i] += 1;
            }
        }
        self.buckets[BUCKETS_MS.len()] += 1;
        self.sum_ms += ms;
    }
}

/// A `/metrics` request waiting for a round.
#[derive(Clone, Debug)]
pub struct Waiting {
    pub filter: Filter,
    pub accept: AcceptEncoding,
    pub head_only: bool,
    pub arrived: Instant,
}

/// How one sandbox's fetch ended.
#[derive(Clone, Debug)]
pub struct SlotResult {
    pub id: String,
    pub labels: Labels,
    /// The sandbox's `first_seen`: its rank in merge votes and ties
    /// (the longest-known sandbox first).
    pub rank: u64,
    pub error: Option<FetchError>,
    pub duration: Duration,
    pub bytes: u64,
}

/// How long a round may take: the shim timeout, shortened by Prometheus's
/// `X-Prometheus-Scrape-Timeout-Seconds` minus a margin for rendering and
/// sending: 10%, at least 50 ms and at most 500 ms, but never more than
/// half of a tiny timeout, so the answer still comes before the client
/// gives up.
pub fn round_budget(shim_timeout: Duration, scrape_timeout: Option<f64>) -> Duration {
    let Some(t) = scrape_timeout.filter(|t| t.is_finite() && *t > 0.0) else {
        return shim_timeout;
    };
    // Client-supplied: bound it before any Duration arithmetic.
    let t = t.min(3600.0);
    let margin = (t * 0.1).clamp(0.05, 0.5).min(t * 0.5);
    shim_timeout.min(Duration::from_secs_f64(t - margin))
}

/// Counts the snapshots alive: one per [`Snapshot`], dropped with it.
struct Live(Rc<std::cell::Cell<usize>>);

impl Live {
    fn new(count: &Rc<std::cell::Cell<usize>>) -> Live {
        count.set(count.get() + 1);
        Live(count.clone())
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.0.set(self.0.get() - 1);
    }
}

/// A finished round, shared by every response rendered from it.
pub struct Snapshot {
    pub expo: Exposition,
    _live: Live,
    /// One per sandbox scraped in the round, in id order (excluded ones
    /// are not there).
    pub slots: Vec<SlotResult>,
    pub failed: usize,
    pub started: Instant,
    pub finished: Instant,
}

/// One sandbox's fetch in one round.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ticket {
    pub seq: u64,
    pub slot: usize,
}

impl Snapshot {
    /// The round's failures for one log line: counts by reason
    /// (`reason=n,...`) and the first `ids` failed sandboxes, or `None`
    /// when every shim answered.
    pub fn failure_summary(&self, ids: usize) -> Option<(String, String)> {
        if self.failed == 0 {
            return None;
        }
        let mut counts = [0usize; FetchError::ALL.len()];
        let mut first = Vec::new();
        for s in &self.slots {
            let Some(e) = s.error else { continue };
            counts[e as usize] += 1;
            if first.len() < ids {
                first.push(s.id.as_str());
            }
        }
        let reasons: Vec<String> = FetchError::ALL
            .iter()
            .filter(|e| counts[**e as usize] > 0)
            .map(|e| format!("{}={}", e.as_label(), counts[*e as usize]))
            .collect();
        Some((reasons.join(","), first.join(",")))
    }
}

/// What the reactor must do.
pub enum Action {
    /// Fetch `/metrics` of sandbox `id` into `buf` for `ticket`, on the
    /// sandbox's kept-alive connection unless `fresh`; report with
    /// `opened`, `fetched`, `failed` or `no_fd`.
    Fetch {
        ticket: Ticket,
        id: String,
        fresh: bool,
        buf: Vec<u8>,
        hint: usize,
        deadline: Instant,
    },
    /// The round is over: close the fetch `handle` (it timed out).
    Cancel { handle: Key },
    /// Answer `client` from `snap`.
    Answer {
        client: Key,
        snap: Rc<Snapshot>,
        waiting: Waiting,
    },
    /// A round finished (book its drops, log its failures).
    Finished(Rc<Snapshot>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    /// Not scraped until its runtime handler is known (exclusion rules).
    Held,
    /// Turned out excluded: not part of the snapshot.
    Skipped,
    /// Waiting for a file descriptor.
    Queued,
    Fetching {
        handle: Option<Key>,
        retried: bool,
    },
    Ended,
}

struct Round {
    seq: u64,
    started: Instant,
    deadline: Instant,
    results: Vec<SlotResult>,
    slots: Vec<Slot>,
    hints: Vec<usize>,
    /// Slots not ended.
    pending: usize,
    expo: Exposition,
    waiters: Vec<(Key, Waiting)>,
    queued: VecDeque<usize>,
}

/// Settings of the fetch rounds.
#[derive(Clone, Copy, Debug)]
pub struct ScrapeConfig {
    pub shim_timeout: Duration,
    /// Largest shim body (the `--max-shim-body` cap).
    pub max_body: u64,
    pub limits: Limits,
    /// Keys the engine's hashes.
    pub seed: u64,
}

pub struct Scraper {
    cfg: ScrapeConfig,
    round: Option<Round>,
    last: Option<Rc<Snapshot>>,
    alive: Rc<std::cell::Cell<usize>>,
    spare: Option<Exposition>,
    pool: BufPool,
    seq: u64,
    actions: VecDeque<Action>,
    last_scrape: Option<Instant>,
    trimmed: bool,
    pub stats: Stats,
}

impl Scraper {
    pub fn new(cfg: ScrapeConfig) -> Scraper {
        Scraper {
            cfg,
            round: None,
            last: None,
            alive: Rc::default(),
            spare: None,
            pool: BufPool::default(),
            seq: 0,
            actions: VecDeque::new(),
            last_scrape: None,
            trimmed: true,
            stats: Stats::default(),
        }
    }

    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// A round is in flight.
    pub fn in_flight(&self) -> bool {
        self.round.is_some()
    }

    /// Snapshots alive (the newest and those responses stream from).
    pub fn snapshots_alive(&self) -> usize {
        self.alive.get()
    }

    pub fn pool(&self) -> &BufPool {
        &self.pool
    }

    /// The round's deadline, or when cached buffers are due for release.
    pub fn deadline(&self) -> Option<Instant> {
        let trim = (!self.trimmed)
            .then_some(self.last_scrape)
            .flatten()
            .map(|t| t + TRIM_AFTER);
        match (&self.round, trim) {
            (Some(r), _) => Some(r.deadline),
            (None, t) => t,
        }
    }

    /// A `/metrics` request from `client`: join the round in flight, start
    /// one over the sandboxes of `reg`, or (when slow clients hold
    /// [`MAX_SNAPSHOTS`]) answer from the newest snapshot.
    /// `hold(id)`: whether a sandbox whose verdict waits for its runtime
    /// handler may be held until the CRI runtime names it (the runtime is
    /// up and has not answered about it yet); otherwise it is skipped.
    pub fn request(
        &mut self,
        client: Key,
        w: Waiting,
        scrape_timeout: Option<f64>,
        reg: &Registry,
        hold: &dyn Fn(&str) -> bool,
        now: Instant,
    ) {
        let deadline = now + round_budget(self.cfg.shim_timeout, scrape_timeout);
        if self.round.is_none()
            && self.alive.get() >= MAX_SNAPSHOTS
            && let Some(last) = self.last.clone()
        {
            self.stats.reused += 1;
            self.answer(client, last, w, now);
            return;
        }
        if self.round.is_none() {
            self.start(reg, hold, deadline, now);
        }
        let r = self.round.as_mut().expect("a round is in flight");
        r.deadline = r.deadline.min(deadline);
        r.waiters.push((client, w));
        if r.pending == 0 {
            self.finish(now);
        }
    }

    /// A waiting client went away: do not answer it.
    pub fn forget(&mut self, client: Key) {
        if let Some(r) = self.round.as_mut() {
            r.waiters.retain(|(k, _)| *k != client);
        }
    }

    /// The fetch for `slot` runs on connection `handle`.
    pub fn opened(&mut self, t: Ticket, handle: Key) {
        if let Some(Slot::Fetching { handle: h, .. }) = self.slot_mut(t) {
            *h = Some(handle);
        }
    }

    /// No file descriptor for `slot`: it waits for one
    /// ([`fd_freed`](Self::fd_freed)) until the deadline.
    pub fn no_fd(&mut self, t: Ticket, buf: Vec<u8>) {
        self.put_buf(buf);
        if let Some(s) = self.slot_mut(t) {
            *s = Slot::Queued;
            self.round
                .as_mut()
                .expect("slot exists")
                .queued
                .push_back(t.slot);
        }
    }

    /// A file descriptor was released: start one queued fetch.
    pub fn fd_freed(&mut self) {
        let Some(r) = self.round.as_mut() else {
            return;
        };
        let Some(slot) = r.queued.pop_front() else {
            return;
        };
        r.slots[slot] = Slot::Fetching {
            handle: None,
            retried: true,
        };
        let (seq, deadline, hint) = (r.seq, r.deadline, r.hints[slot]);
        let id = r.results[slot].id.clone();
        self.fetch(Ticket { seq, slot }, id, true, hint, deadline);
    }

    /// Whether fetches wait for file descriptors.
    pub fn starved(&self) -> bool {
        self.round.as_ref().is_some_and(|r| !r.queued.is_empty())
    }

    /// `slot`'s body arrived: `buf[range]`, `bytes` long on the wire.
    pub fn fetched(
        &mut self,
        t: Ticket,
        buf: Vec<u8>,
        range: std::ops::Range<usize>,
        started: Instant,
        now: Instant,
    ) {
        let slot = t.slot;
        if !matches!(self.slot_mut(t), Some(Slot::Fetching { .. })) {
            self.put_buf(buf);
            return;
        }
        let r = self.round.as_mut().expect("slot exists");
        let bytes = range.len() as u64;
        let result = &mut r.results[slot];
        let recycled = r
            .expo
            .add_range(&result.id, result.labels.clone(), result.rank, buf, range);
        result.duration = now.saturating_duration_since(started);
        result.bytes = bytes;
        let mut rejected = None;
        if r.expo.last().is_some_and(|s| s.index.mostly_invalid()) {
            // Junk, not an exposition with a few bad lines: the sandbox
            // fails (up 0) rather than serving scraps.
            result.error = Some(FetchError::InvalidBody);
            rejected = r.expo.reject_last();
        }
        self.put_buf(recycled);
        if let Some(b) = rejected {
            self.put_buf(b);
        }
        self.end_slot(slot, now, false);
    }

    /// `slot`'s fetch failed. `stale`: it ran on a reused connection and
    /// nothing came back, so the shim had closed it in the meantime: the
    /// GET is retried once on a new connection.
    pub fn failed(
        &mut self,
        t: Ticket,
        err: FetchError,
        stale: bool,
        buf: Vec<u8>,
        started: Instant,
        now: Instant,
    ) {
        let slot = t.slot;
        let Some(&mut Slot::Fetching { retried, .. }) = self.slot_mut(t) else {
            self.put_buf(buf);
            return;
        };
        if stale && !retried && err != FetchError::Timeout {
            let r = self.round.as_mut().expect("slot exists");
            r.slots[slot] = Slot::Fetching {
                handle: None,
                retried: true,
            };
            let (deadline, hint) = (r.deadline, r.hints[slot]);
            let id = r.results[slot].id.clone();
            self.pool.put(buf, usize::MAX);
            self.fetch(t, id, true, hint, deadline);
            return;
        }
        self.put_buf(buf);
        let r = self.round.as_mut().expect("slot exists");
        let res = &mut r.results[slot];
        res.error = Some(err);
        res.duration = now.saturating_duration_since(started);
        self.end_slot(slot, now, false);
    }

    /// The round's deadline passed, or cached buffers are due for release.
    /// True when buffers were released now (the caller may hand freed heap
    /// back to the OS).
    pub fn handle_timeout(&mut self, now: Instant) -> bool {
        if self.round.as_ref().is_some_and(|r| now >= r.deadline) {
            self.finish(now);
        }
        if self.round.is_none()
            && !self.trimmed
            && self.last_scrape.is_some_and(|t| now >= t + TRIM_AFTER)
        {
            self.trim();
            return true;
        }
        false
    }

    /// Release cached buffers (a quiet node keeps a small footprint).
    fn trim(&mut self) {
        self.trimmed = true;
        if self.last.as_ref().is_some_and(|s| Rc::strong_count(s) == 1) {
            self.last = None;
        }
        self.spare = None;
        self.pool.clear();
    }

    fn slot_mut(&mut self, t: Ticket) -> Option<&mut Slot> {
        let r = self.round.as_mut().filter(|r| r.seq == t.seq)?;
        r.slots.get_mut(t.slot)
    }

    fn put_buf(&mut self, buf: Vec<u8>) {
        let max = self.round.as_ref().map_or(0, |r| r.slots.len()) + 8;
        self.pool.put(buf, max);
    }

    fn fetch(&mut self, ticket: Ticket, id: String, fresh: bool, hint: usize, deadline: Instant) {
        let want = super::shim::want_len(hint, self.cfg.max_body);
        let buf = self.pool.take(want, super::shim::STREAM_BUF);
        self.actions.push_back(Action::Fetch {
            ticket,
            id,
            fresh,
            buf,
            hint,
            deadline,
        });
    }

    fn start(
        &mut self,
        reg: &Registry,
        hold: &dyn Fn(&str) -> bool,
        deadline: Instant,
        now: Instant,
    ) {
        self.seq += 1;
        self.last_scrape = Some(now);
        self.trimmed = false;
        // Recycle the previous snapshot when nobody streams from it any more.
        let mut expo = self.spare.take();
        if let Some(last) = self.last.take() {
            if let Ok(mut snap) = Rc::try_unwrap(last) {
                let mut bufs = Vec::new();
                snap.expo.take_buffers(&mut bufs);
                for b in bufs {
                    self.pool.put(b, reg.len() + 8);
                }
                expo = Some(snap.expo);
            }
        }
        let mut expo =
            expo.unwrap_or_else(|| Exposition::with_limits(self.cfg.seed, self.cfg.limits));
        expo.clear();
        let n = reg.len();
        let mut round = Round {
            seq: self.seq,
            started: now,
            deadline,
            results: Vec::with_capacity(n),
            slots: Vec::with_capacity(n),
            hints: Vec::with_capacity(n),
            pending: 0,
            expo,
            waiters: Vec::new(),
            queued: VecDeque::new(),
        };
        let mut fetches = Vec::with_capacity(n);
        for (id, sb) in reg.iter() {
            // Excluded sandboxes are not part of the round; those whose
            // verdict waits for the CRI runtime are held.
            let slot = match reg.verdict(id) {
                Some(Ok(())) => Slot::Fetching {
                    handle: None,
                    retried: false,
                },
                Some(Err(Excluded::HandlerUnknown)) if hold(id) => Slot::Held,
                _ => continue,
            };
            if slot != Slot::Held {
                fetches.push((round.slots.len(), id.to_string(), sb.size_hint));
            }
            round.slots.push(slot);
            round.pending += 1;
            round.results.push(SlotResult {
                id: id.to_string(),
                labels: sb.labels.clone(),
                rank: sb.first_seen,
                error: None,
                duration: Duration::ZERO,
                bytes: 0,
            });
            round.hints.push(sb.size_hint);
        }
        let seq = round.seq;
        self.round = Some(round);
        for (slot, id, hint) in fetches {
            self.fetch(Ticket { seq, slot }, id, false, hint, deadline);
        }
    }

    /// Sandboxes held by the round in flight waiting for their runtime
    /// handler: those now allowed are fetched, those now excluded or no
    /// longer worth holding (see [`request`](Self::request)) skipped.
    pub fn judge(&mut self, reg: &Registry, hold: &dyn Fn(&str) -> bool, now: Instant) {
        let Some(r) = self.round.as_mut() else {
            return;
        };
        let (seq, deadline) = (r.seq, r.deadline);
        let mut fetches = Vec::new();
        let mut skipped = Vec::new();
        for (slot, state) in r.slots.iter_mut().enumerate() {
            if *state != Slot::Held {
                continue;
            }
            let id = &r.results[slot].id;
            match reg.verdict(id) {
                Some(Err(Excluded::HandlerUnknown)) if hold(id) => {}
                Some(Ok(())) => {
                    *state = Slot::Fetching {
                        handle: None,
                        retried: false,
                    };
                    fetches.push((slot, id.clone(), r.hints[slot]));
                }
                _ => skipped.push(slot),
            }
        }
        for (slot, id, hint) in fetches {
            self.fetch(Ticket { seq, slot }, id, false, hint, deadline);
        }
        for slot in skipped {
            self.round.as_mut().expect("in flight").slots[slot] = Slot::Skipped;
            self.end_slot(slot, now, true);
        }
    }

    /// The round in flight holds sandboxes until the CRI runtime names
    /// their handlers (the caller should ask it now).
    pub fn holding(&self) -> bool {
        self.round
            .as_ref()
            .is_some_and(|r| r.slots.contains(&Slot::Held))
    }

    fn end_slot(&mut self, slot: usize, now: Instant, skipped: bool) {
        let r = self.round.as_mut().expect("slot exists");
        if r.slots[slot] == Slot::Ended || (r.slots[slot] == Slot::Skipped && !skipped) {
            return;
        }
        if !skipped {
            r.slots[slot] = Slot::Ended;
        }
        r.pending -= 1;
        if r.pending == 0 {
            self.finish(now);
        }
    }

    /// End the round (every shim answered, or the deadline): answer waiters.
    fn finish(&mut self, now: Instant) {
        let Some(mut r) = self.round.take() else {
            return;
        };
        for (slot, state) in r.slots.iter_mut().enumerate() {
            let why = match *state {
                Slot::Ended | Slot::Skipped => continue,
                // Still no verdict: not scraped this round (reported as
                // excluded, not as down).
                Slot::Held => {
                    *state = Slot::Skipped;
                    continue;
                }
                Slot::Queued => FetchError::FdExhausted,
                Slot::Fetching { handle, .. } => {
                    if let Some(handle) = handle {
                        self.actions.push_back(Action::Cancel { handle });
                    }
                    FetchError::Timeout
                }
            };
            let res = &mut r.results[slot];
            res.error = Some(why);
            res.duration = now.saturating_duration_since(r.started);
        }
        r.expo.finish();
        let slots: Vec<SlotResult> = r
            .results
            .into_iter()
            .zip(&r.slots)
            .filter(|(_, s)| **s != Slot::Skipped)
            .map(|(res, _)| res)
            .collect();
        let failed = slots.iter().filter(|s| s.error.is_some()).count();
        let snap = Rc::new(Snapshot {
            expo: r.expo,
            _live: Live::new(&self.alive),
            slots,
            failed,
            started: r.started,
            finished: now,
        });
        self.stats.rounds += 1;
        self.last = Some(snap.clone());
        self.actions.push_back(Action::Finished(snap.clone()));
        for (client, w) in r.waiters {
            self.answer(client, snap.clone(), w, now);
        }
    }

    fn answer(&mut self, client: Key, snap: Rc<Snapshot>, waiting: Waiting, now: Instant) {
        self.stats.scrapes += 1;
        if snap.failed > 0 {
            self.stats.failed_scrapes += 1;
        }
        let ms = now.saturating_duration_since(waiting.arrived).as_millis() as f64;
        self.stats.observe_ms(ms);
        self.actions.push_back(Action::Answer {
            client,
            snap,
            waiting,
        });
    }
}

#[cfg(test)]
mod tests;
