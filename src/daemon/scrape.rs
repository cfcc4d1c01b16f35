//! Fetch rounds: every shim's `/metrics`, concurrently, into one exposition.
//!
//! Owns: the round lifecycle (start, per-shim completion, deadline, finish),
//! the snapshot every waiting `/metrics` response is rendered from, and the
//! scrape statistics. A `/metrics` request that arrives while a round is in
//! flight joins it instead of fanning out again. A failed shim (refused,
//! timeout, non-200, malformed, oversize) fails its sandbox alone.

use super::conn::{Body, MetricsBody, State, Waiting};
use super::shim::{ShimConn, Step};
use super::slab::Key;
use super::{Daemon, Purpose, Shim};
use crate::wire::expo::{Exposition, Labels};
use crate::wire::http::response::{self, Framing};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Buckets of `kata_monitor_scrape_durations_histogram_milliseconds`
/// (upstream: ExponentialBuckets(1, 2, 10)).
pub const BUCKETS_MS: [f64; 10] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];

/// Counters for the monitor's own metrics.
#[derive(Debug, Default)]
pub struct Stats {
    pub scrapes: u64,
    pub failed_scrapes: u64,
    /// `/metrics` answers by encoding: identity, gzip.
    pub responses: [u64; 2],
    pub rounds: u64,
    /// `/metrics` answers served from the previous round (`MAX_SNAPSHOTS`).
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

/// How one sandbox's fetch ended.
#[derive(Clone, Debug)]
pub struct SlotResult {
    pub id: String,
    pub labels: Labels,
    /// `None`: fetched; `Some(reason)`: failed.
    pub error: Option<&'static str>,
    pub duration: Duration,
    pub bytes: u64,
}

/// Snapshots that may be alive at once (the newest included). A response
/// keeps its snapshot (all shim bodies, ~85 KB per sandbox) until its last
/// byte is sent, so slow clients, each arriving in a different round, could
/// otherwise hold one each: `--max-connections` times the node's bodies.
/// Past this, a request is answered from the newest snapshot instead of a
/// new round (its data is older, by at most the time those clients take).
pub const MAX_SNAPSHOTS: usize = 4;

/// Counts the snapshots alive: one per [`Snapshot`], dropped with it.
pub struct Live(Rc<std::cell::Cell<usize>>);

impl Live {
    pub fn new(count: &Rc<std::cell::Cell<usize>>) -> Live {
        count.set(count.get() + 1);
        Live(count.clone())
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.0.set(self.0.get() - 1);
    }
}

/// How long a round may take: the shim timeout, shortened by Prometheus's
/// `X-Prometheus-Scrape-Timeout-Seconds` (already checked finite and
/// positive) minus a margin for rendering and sending: 10%, at least 50 ms
/// and at most 500 ms, but never more than half of a tiny timeout, so the
/// answer still comes before the client gives up.
pub fn round_budget(shim_timeout: Duration, scrape_timeout: Option<f64>) -> Duration {
    let Some(t) = scrape_timeout.filter(|t| t.is_finite() && *t > 0.0) else {
        return shim_timeout;
    };
    // Client-supplied: bound it before any Duration arithmetic.
    let t = t.min(3600.0);
    let margin = (t * 0.1).clamp(0.05, 0.5).min(t * 0.5);
    shim_timeout.min(Duration::from_secs_f64(t - margin))
}

/// A finished round, shared by every response rendered from it.
pub struct Snapshot {
    pub expo: Exposition,
    _live: Live,
    /// One per sandbox of the round, in id order.
    pub slots: Vec<SlotResult>,
    pub failed: usize,
    pub started: Instant,
    pub finished: Instant,
}

impl Snapshot {
    /// Index of `id` among the exposition's sources.
    pub fn source_index(&self, id: &str) -> Option<usize> {
        self.expo
            .sources()
            .binary_search_by(|s| s.id.as_str().cmp(id))
            .ok()
    }
}

/// A round in flight.
pub struct Round {
    pub seq: u64,
    pub started: Instant,
    pub deadline: Instant,
    pub slots: Vec<SlotResult>,
    /// Slots whose fetch has not ended, with their shim connection.
    pub shims: Vec<Option<Key>>,
    pub pending: usize,
    pub expo: Exposition,
    pub waiters: Vec<Key>,
}

impl Daemon {
    /// A `/metrics` request: join the round in flight or start one.
    pub(crate) fn want_metrics(
        &mut self,
        key: Key,
        w: Waiting,
        scrape_timeout: Option<f64>,
        now: Instant,
    ) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        c.waiting = Some(w);
        c.state = State::Waiting;
        // A client waiting for a round is bounded by the round's deadline.
        c.deadline = now + self.cfg.shim_timeout + Duration::from_secs(3600);
        let deadline = self.round_deadline(scrape_timeout, now);
        if self.round.is_none()
            && self.snapshots_alive.get() >= MAX_SNAPSHOTS
            && let Some(last) = self.last.clone()
        {
            // Slow clients hold older snapshots: bound memory, answer from
            // the newest one.
            self.stats.reused += 1;
            log::debug!(alive = self.snapshots_alive.get(); "answering from the previous round");
            self.respond_metrics(key, &last, now);
            return;
        }
        let kick = if self.round.is_none() {
            self.start_round(deadline, now)
        } else {
            Vec::new()
        };
        let r = self.round.as_mut().expect("a round is in flight");
        r.deadline = r.deadline.min(deadline);
        r.waiters.push(key);
        // Send the requests now rather than waiting for the first event (a
        // shim may even complete here, which may complete the round).
        for k in kick {
            self.scrape_progress(k, now);
        }
        if self.round.as_ref().is_some_and(|r| r.pending == 0) {
            self.finish_round(now);
        }
    }

    /// The shim timeout, shortened to answer before Prometheus gives up.
    fn round_deadline(&self, scrape_timeout: Option<f64>, now: Instant) -> Instant {
        now + round_budget(self.cfg.shim_timeout, scrape_timeout)
    }

    /// Open a shim connection per sandbox; returns the ones to kick.
    fn start_round(&mut self, deadline: Instant, now: Instant) -> Vec<Key> {
        self.round_gen += 1;
        self.last_scrape = now;
        self.trimmed = false;
        // Recycle the previous snapshot when nobody streams from it any more.
        let mut expo = self.spare_expo.take();
        if let Some(last) = self.last.take() {
            match Rc::try_unwrap(last) {
                Ok(mut snap) => {
                    let mut bufs = Vec::new();
                    snap.expo.take_buffers(&mut bufs);
                    for b in bufs {
                        self.put_buf(b);
                    }
                    expo = Some(snap.expo);
                }
                Err(still_shared) => {
                    // A response still streams from it: this round gets
                    // new buffers (memory for two snapshots, briefly).
                    log::debug!(refs = Rc::strong_count(&still_shared); "previous snapshot still in use");
                    drop(still_shared)
                }
            }
        }
        let mut expo =
            expo.unwrap_or_else(|| Exposition::with_limits(self.seed, self.cfg.limits()));
        expo.clear();
        let sandboxes: Vec<(String, Labels, usize)> = self
            .reg
            .iter()
            .map(|(id, s)| (id.to_string(), s.labels.clone(), s.size_hint))
            .collect();
        let n = sandboxes.len();
        let mut round = Round {
            seq: self.round_gen,
            started: now,
            deadline,
            slots: Vec::with_capacity(n),
            shims: vec![None; n],
            pending: 0,
            expo,
            waiters: Vec::new(),
        };
        for (slot, (id, labels, hint)) in sandboxes.into_iter().enumerate() {
            let mut error = None;
            match self.open_scrape(&id, round.seq, slot, hint, deadline, now) {
                Ok(key) => {
                    round.shims[slot] = Some(key);
                    round.pending += 1;
                }
                Err(why) => {
                    log::warn!(sandbox:% = id, reason = why; "cannot reach shim");
                    error = Some(why);
                }
            }
            round.slots.push(SlotResult {
                id,
                labels,
                error,
                duration: Duration::ZERO,
                bytes: 0,
            });
        }
        let keys: Vec<Key> = round.shims.iter().flatten().copied().collect();
        self.round = Some(round);
        keys
    }

    /// A shim connection for round slot `slot`: the sandbox's idle
    /// keep-alive connection when there is one, else a new one.
    fn open_scrape(
        &mut self,
        id: &str,
        round: u64,
        slot: usize,
        hint: usize,
        deadline: Instant,
        now: Instant,
    ) -> Result<Key, &'static str> {
        let limit = self.cfg.max_shim_body;
        let buf = self.take_buf(super::shim::want_len(hint, limit));
        if let Some(key) = self.idle.remove(id)
            && let Some(s) = self.shims.get_mut(key)
            && matches!(s.purpose, Purpose::Idle)
        {
            s.conn.reuse("/metrics", limit, buf, hint, now, deadline);
            s.purpose = Purpose::Scrape { round, slot };
            return Ok(key);
        }
        let path = self.reg.socket_path(id).ok_or("no_socket")?;
        let conn = ShimConn::connect(&path, "/metrics", false, limit, buf, hint, now, deadline)?;
        let shim = Shim {
            conn,
            id: id.to_string(),
            purpose: Purpose::Scrape { round, slot },
        };
        self.register_shim(shim).map_err(|_| "register_failed")
    }

    /// Readiness (or a kick) on a scrape connection.
    pub(crate) fn scrape_progress(&mut self, key: Key, now: Instant) {
        loop {
            let Some(s) = self.shims.get_mut(key) else {
                return;
            };
            match s.conn.drive() {
                Step::Pending | Step::Data => return,
                Step::Head => {
                    let status = s.conn.head().map_or(0, |h| h.status);
                    if status != 200 {
                        log::warn!(sandbox:% = s.id, status = status; "shim answered an error status");
                        self.scrape_failed(key, "http_status", now);
                        return;
                    }
                }
                Step::Done => {
                    self.scrape_done(key, now);
                    return;
                }
                Step::Failed(why) => {
                    self.scrape_failed(key, why, now);
                    return;
                }
            }
        }
    }

    fn scrape_slot(&self, key: Key) -> Option<usize> {
        let s = self.shims.get(key)?;
        let Purpose::Scrape { round, slot } = s.purpose else {
            return None;
        };
        let r = self.round.as_ref()?;
        (r.seq == round && r.shims[slot] == Some(key)).then_some(slot)
    }

    fn scrape_done(&mut self, key: Key, now: Instant) {
        let Some(slot) = self.scrape_slot(key) else {
            self.finish_shim(key);
            return;
        };
        let s = self.shims.get_mut(key).expect("checked");
        let range = s.conn.body_range();
        let bytes = s.conn.body_len();
        let buf = s.conn.take_buf();
        let started = s.conn.started;
        let r = self.round.as_mut().expect("checked");
        let result = &mut r.slots[slot];
        let rank = self.reg.get(&result.id).map_or(u64::MAX, |s| s.first_seen);
        let recycled = r
            .expo
            .add_range(&result.id, result.labels.clone(), rank, buf, range);
        result.duration = now.saturating_duration_since(started);
        result.bytes = bytes;
        let mut rejected = None;
        if r.expo.last().is_some_and(|s| s.index.mostly_invalid()) {
            // Junk, not an exposition with a few bad lines: the sandbox
            // fails (up 0) rather than serving scraps.
            let drops = r.expo.last().map_or(0, |s| s.index.drops.total());
            log::warn!(sandbox:% = result.id, dropped_lines = drops; "shim answered junk, not metrics");
            result.error = Some("invalid_body");
            rejected = r.expo.reject_last();
        }
        r.shims[slot] = None;
        r.pending -= 1;
        let done = r.pending == 0;
        if let Some(sb) = self.reg.get_mut(&r.slots[slot].id) {
            sb.size_hint = bytes as usize;
        }
        self.put_buf(recycled);
        if let Some(b) = rejected {
            self.put_buf(b);
        }
        self.park_or_finish(key);
        if done {
            self.finish_round(now);
        }
    }

    /// Keep a finished scrape connection for the next round if the shim
    /// allows it and the sandbox still exists; otherwise close it.
    fn park_or_finish(&mut self, key: Key) {
        let Some(s) = self.shims.get_mut(key) else {
            return;
        };
        if s.conn.reusable() && self.reg.get(&s.id).is_some() && !self.idle.contains_key(&s.id) {
            s.purpose = Purpose::Idle;
            s.conn.deadline = Instant::now() + super::NEVER;
            self.idle.insert(s.id.clone(), key);
        } else {
            self.finish_shim(key);
        }
    }

    pub(crate) fn scrape_failed(&mut self, key: Key, why: &'static str, now: Instant) {
        let Some(slot) = self.scrape_slot(key) else {
            self.finish_shim(key);
            return;
        };
        // A kept-alive connection the shim had closed in the meantime: try
        // once more on a new connection (a GET is safe to repeat).
        let s = self.shims.get_mut(key).expect("checked");
        if s.conn.reused && s.conn.nothing_received() && why != "timeout" {
            let id = s.id.clone();
            let buf = s.conn.take_buf();
            self.put_buf(buf);
            self.finish_shim(key);
            let r = self.round.as_ref().expect("checked");
            let (seq, deadline) = (r.seq, r.deadline);
            let hint = self.reg.get(&id).map_or(0, |sb| sb.size_hint);
            match self.open_scrape(&id, seq, slot, hint, deadline, now) {
                Ok(k) => {
                    self.round.as_mut().expect("checked").shims[slot] = Some(k);
                    self.scrape_progress(k, now);
                    return;
                }
                Err(e) => {
                    let r = self.round.as_mut().expect("checked");
                    let result = &mut r.slots[slot];
                    log::warn!(sandbox:% = result.id, reason = e; "shim scrape failed");
                    result.error = Some(e);
                    result.duration = now.saturating_duration_since(r.started);
                    r.shims[slot] = None;
                    r.pending -= 1;
                    if r.pending == 0 {
                        self.finish_round(now);
                    }
                    return;
                }
            }
        }
        let started = self.shims.get(key).expect("checked").conn.started;
        let r = self.round.as_mut().expect("checked");
        let result = &mut r.slots[slot];
        if why != "http_status" {
            log::warn!(sandbox:% = result.id, reason = why; "shim scrape failed");
        }
        result.error = Some(why);
        result.duration = now.saturating_duration_since(started);
        r.shims[slot] = None;
        r.pending -= 1;
        let done = r.pending == 0;
        self.finish_shim(key);
        if done {
            self.finish_round(now);
        }
    }

    /// End the round (all shims answered, or the deadline): answer waiters.
    pub(crate) fn finish_round(&mut self, now: Instant) {
        let Some(mut r) = self.round.take() else {
            return;
        };
        for (slot, key) in r.shims.iter_mut().enumerate() {
            if let Some(k) = key.take() {
                let res = &mut r.slots[slot];
                res.error = Some("timeout");
                res.duration = now.saturating_duration_since(r.started);
                log::warn!(sandbox:% = res.id; "shim scrape timed out");
                self.finished_shims.push(k);
            }
        }
        r.expo.finish();
        for (i, src) in r.expo.sources().iter().enumerate() {
            if let Some(sb) = self.reg.get_mut(&src.id) {
                sb.drops_total.merge(&r.expo.drops(i));
            }
        }
        let failed = r.slots.iter().filter(|s| s.error.is_some()).count();
        let snap = Rc::new(Snapshot {
            expo: r.expo,
            _live: Live::new(&self.snapshots_alive),
            slots: r.slots,
            failed,
            started: r.started,
            finished: now,
        });
        self.stats.rounds += 1;
        if log::log_enabled!(log::Level::Debug) {
            let body_bytes: usize = snap.expo.sources().iter().map(|s| s.body().len()).sum();
            let pooled: usize = self.buf_pool.iter().map(Vec::capacity).sum();
            log::debug!(
                sandboxes = snap.slots.len(),
                failed = failed,
                body_bytes = body_bytes,
                pooled_buffers = self.buf_pool.len(),
                pooled_bytes = pooled,
                held_bytes = snap.expo.held_bytes(),
                took_ms = now.saturating_duration_since(snap.started).as_millis() as u64;
                "fetch round done"
            );
        }
        self.last = Some(snap.clone());
        for key in r.waiters {
            self.respond_metrics(key, &snap, now);
        }
        debug_assert!(self.round.is_none(), "no round may start while answering");
    }

    /// Start streaming a `/metrics` answer from `snap`.
    fn respond_metrics(&mut self, key: Key, snap: &Rc<Snapshot>, now: Instant) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        let Some(w) = c.waiting.take() else {
            return;
        };
        if c.state != State::Waiting {
            return;
        }
        self.stats.scrapes += 1;
        if snap.failed > 0 {
            self.stats.failed_scrapes += 1;
        }
        let ms = now.saturating_duration_since(w.arrived).as_millis() as f64;
        self.stats.observe_ms(ms);
        // The monitor's own metrics lead, unless the request filters families
        // (as upstream does).
        let head = if w.filter.is_all() {
            super::selfmetrics::render(self, snap)
        } else {
            Vec::new()
        };
        let cursor = snap.expo.cursor(&w.filter, head);
        let gzip = if w.gzip { self.gzip_pump() } else { None };
        self.stats.responses[usize::from(gzip.is_some())] += 1;
        let c = self.conns.get_mut(key).expect("checked");
        let framing = match (&gzip, c.http10) {
            (None, _) => Framing::Length(cursor.len()),
            (Some(_), false) => Framing::Chunked,
            (Some(_), true) => Framing::Close,
        };
        let mut headers = vec![
            ("Content-Type", "text/plain; version=0.0.4; charset=utf-8"),
            ("Vary", "Accept-Encoding"),
        ];
        if gzip.is_some() {
            headers.push(("Content-Encoding", "gzip"));
        }
        let keep = c.keep_alive && framing != Framing::Close;
        c.keep_alive = keep;
        let mut head = Vec::with_capacity(256);
        response::head(&mut head, 200, &headers, framing, keep);
        c.out.push(&head);
        c.state = State::Writing;
        c.deadline = now + super::WRITE_STALL;
        if w.head_only {
            c.body = Body::None;
            if let Some(mut p) = gzip {
                p.reset();
                self.gzip_active -= 1;
                self.gzip_pool.push(p);
            }
        } else {
            c.body = Body::Metrics(Box::new(MetricsBody {
                snap: snap.clone(),
                cursor,
                gzip,
                framing,
                finished: false,
            }));
        }
        self.pump(key, now);
    }
}

#[cfg(test)]
mod tests {
    use super::round_budget;
    use std::time::Duration;

    #[test]
    fn round_budget_leaves_a_margin_before_the_scrape_timeout() {
        let shim = Duration::from_secs(3);
        let ms = |t: Option<f64>| round_budget(shim, t).as_millis();
        assert_eq!(ms(None), 3000);
        assert_eq!(ms(Some(10.0)), 3000, "the shim timeout is shorter");
        assert_eq!(ms(Some(2.0)), 1800);
        assert_eq!(ms(Some(1.0)), 900);
        assert_eq!(ms(Some(0.3)), 250, "at least 50 ms");
        assert_eq!(ms(Some(0.05)), 25, "at most half of a tiny timeout");
        assert_eq!(
            round_budget(Duration::from_secs(60), Some(30.0)).as_millis(),
            29_500
        );
        for bad in [0.0, -3.0, f64::NAN, f64::INFINITY] {
            assert_eq!(ms(Some(bad)), 3000, "{bad}");
        }
    }
}
