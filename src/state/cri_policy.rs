//! When to ask the CRI runtime, and when to stop: a sans-IO state machine
//! driven with an explicit `now` (no clock reads, no I/O).
//!
//! Owns: the set of sandboxes still missing pod metadata, per-id attempt
//! counts and backoff, coalescing (one `ListPodSandbox` covers every pending
//! id), giving up on ids the runtime does not know (sandboxes started with
//! `ctr`, `nerdctl`...), and the connection's reconnect backoff.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Wait this long after a sandbox appears before asking (more may follow:
/// one call covers them all, and the runtime needs a moment to list a new
/// pod as READY).
pub const COALESCE: Duration = Duration::from_millis(200);
/// Retry delays for an id still missing after an answer, doubling, capped.
pub const RETRY_BASE: Duration = Duration::from_millis(500);
pub const RETRY_MAX: Duration = Duration::from_secs(30);
/// Answers without the id before giving up on it: calls at 0.2 s, then
/// 0.5, 1, 2, 4, 8, 16 and 30 s apart, ~62 s in all.
pub const MAX_TRIES: u32 = 8;
/// Reconnect delays, doubling, capped.
pub const RECONNECT_BASE: Duration = Duration::from_millis(100);
pub const RECONNECT_MAX: Duration = Duration::from_secs(30);

/// How one `ListPodSandbox` call ended (the `result` label of
/// `kata_monitor_cri_requests_total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallResult {
    Ok,
    Timeout,
    /// The connection broke or could not be used.
    Connection,
    /// Not a gRPC answer we can decode.
    BadResponse,
    GrpcNotFound,
    GrpcUnimplemented,
    GrpcUnavailable,
    GrpcDeadlineExceeded,
    GrpcPermission,
    GrpcError,
}

impl CallResult {
    pub const ALL: [CallResult; 10] = [
        CallResult::Ok,
        CallResult::Timeout,
        CallResult::Connection,
        CallResult::BadResponse,
        CallResult::GrpcNotFound,
        CallResult::GrpcUnimplemented,
        CallResult::GrpcUnavailable,
        CallResult::GrpcDeadlineExceeded,
        CallResult::GrpcPermission,
        CallResult::GrpcError,
    ];

    pub fn as_label(self) -> &'static str {
        match self {
            CallResult::Ok => "ok",
            CallResult::Timeout => "timeout",
            CallResult::Connection => "connection",
            CallResult::BadResponse => "bad_response",
            CallResult::GrpcNotFound => "grpc_not_found",
            CallResult::GrpcUnimplemented => "grpc_unimplemented",
            CallResult::GrpcUnavailable => "grpc_unavailable",
            CallResult::GrpcDeadlineExceeded => "grpc_deadline_exceeded",
            CallResult::GrpcPermission => "grpc_permission",
            CallResult::GrpcError => "grpc_error",
        }
    }

    /// A gRPC status code that is not OK.
    pub fn from_grpc(code: u32) -> CallResult {
        match code {
            5 => CallResult::GrpcNotFound,
            12 => CallResult::GrpcUnimplemented,
            14 => CallResult::GrpcUnavailable,
            4 => CallResult::GrpcDeadlineExceeded,
            7 | 16 => CallResult::GrpcPermission,
            _ => CallResult::GrpcError,
        }
    }

    /// Always listed in the self metrics, even at zero.
    pub fn always_shown(self) -> bool {
        matches!(
            self,
            CallResult::Ok
                | CallResult::Timeout
                | CallResult::Connection
                | CallResult::BadResponse
                | CallResult::GrpcError
        )
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Pending {
    /// Answers received that did not list the id.
    tries: u32,
    /// Not asked about before this.
    due: Instant,
}

/// The policy state.
#[derive(Debug, Default)]
pub struct Policy {
    pending: BTreeMap<String, Pending>,
    /// Ids given up on (until they disappear and reappear).
    given_up: BTreeMap<String, ()>,
    /// Ids asked about by the call in flight.
    in_flight: Vec<String>,
    /// Consecutive connection failures.
    failures: u32,
    /// Consecutive failed calls (bad answers, error statuses, timeouts).
    call_failures: u32,
}

impl Policy {
    /// A sandbox appeared without metadata.
    pub fn added(&mut self, id: &str, now: Instant) {
        if self.given_up.contains_key(id) {
            return;
        }
        self.pending.insert(
            id.to_string(),
            Pending {
                tries: 0,
                due: now + COALESCE,
            },
        );
    }

    /// A sandbox disappeared: forget it (its metadata goes with it).
    pub fn removed(&mut self, id: &str) {
        self.pending.remove(id);
        self.given_up.remove(id);
    }

    /// Sandboxes still waiting for metadata (the gauge).
    pub fn missing(&self) -> usize {
        self.pending.len()
    }

    pub fn given_up(&self) -> usize {
        self.given_up.len()
    }

    pub fn in_flight(&self) -> bool {
        !self.in_flight.is_empty()
    }

    /// No answer has come yet since `id` appeared (it may still be listed
    /// by the next one).
    pub fn unanswered(&self, id: &str) -> bool {
        self.pending.get(id).is_some_and(|p| p.tries == 0)
    }

    /// A scrape waits for ids nobody asked about yet: ask now rather than
    /// after the coalescing delay (ids the runtime already answered keep
    /// their backoff).
    pub fn hurry(&mut self, now: Instant) {
        for p in self.pending.values_mut() {
            if p.tries == 0 {
                p.due = p.due.min(now);
            }
        }
    }

    /// When a call should be made next (None: nothing to ask).
    pub fn next_due(&self) -> Option<Instant> {
        if self.in_flight() {
            return None;
        }
        self.pending.values().map(|p| p.due).min()
    }

    /// Start a call if one is due: returns true and remembers every pending
    /// id as covered by it (one READY listing answers them all).
    pub fn start_call(&mut self, now: Instant) -> bool {
        if self.next_due().is_none_or(|d| d > now) {
            return false;
        }
        self.in_flight = self.pending.keys().cloned().collect();
        true
    }

    /// The runtime answered; `found` are the ids it listed. Returns the ids
    /// given up on now.
    pub fn answered(&mut self, found: &dyn Fn(&str) -> bool, now: Instant) -> Vec<String> {
        let mut gave_up = Vec::new();
        for id in std::mem::take(&mut self.in_flight) {
            if found(&id) {
                self.pending.remove(&id);
                continue;
            }
            let Some(p) = self.pending.get_mut(&id) else {
                continue;
            };
            p.tries += 1;
            if p.tries >= MAX_TRIES {
                self.pending.remove(&id);
                self.given_up.insert(id.clone(), ());
                gave_up.push(id);
            } else {
                p.due = now + backoff(RETRY_BASE, RETRY_MAX, p.tries - 1);
            }
        }
        self.failures = 0;
        self.call_failures = 0;
        gave_up
    }

    /// The call failed (error status, garbage, timeout, connection lost):
    /// the ids are not charged a try (the runtime, not the id, is at
    /// fault); they are asked again after `base`, doubled for each
    /// consecutive failed call up to `RETRY_MAX`, so a runtime that keeps
    /// failing is not hammered.
    pub fn failed(&mut self, now: Instant, base: Duration) {
        let delay = backoff(base, RETRY_MAX, self.call_failures);
        self.call_failures = self.call_failures.saturating_add(1);
        for id in std::mem::take(&mut self.in_flight) {
            if let Some(p) = self.pending.get_mut(&id) {
                p.due = p.due.max(now + delay);
            }
        }
    }

    /// The connection dropped or could not be made: the delay before the
    /// next attempt.
    pub fn connection_failed(&mut self) -> Duration {
        self.failures = self.failures.saturating_add(1);
        backoff(RECONNECT_BASE, RECONNECT_MAX, self.failures - 1)
    }

    /// The connection came up.
    pub fn connected(&mut self) {
        self.failures = 0;
    }
}

/// `base * 2^n`, capped.
pub fn backoff(base: Duration, max: Duration, n: u32) -> Duration {
    base.saturating_mul(1u32 << n.min(16)).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coalesces_then_retries_with_backoff_then_gives_up() {
        let t0 = Instant::now();
        let mut p = Policy::default();
        assert_eq!(p.next_due(), None);
        p.added("a", t0);
        p.added("b", t0 + Duration::from_millis(50));
        assert!(!p.start_call(t0 + Duration::from_millis(100)));
        let t = t0 + COALESCE;
        assert!(p.start_call(t));
        assert!(p.in_flight());
        assert_eq!(p.next_due(), None, "one call at a time");
        // "a" is known, "b" not yet.
        let gave = p.answered(&|id| id == "a", t);
        assert!(gave.is_empty());
        assert_eq!(p.missing(), 1);
        let mut t = t;
        let mut delays = Vec::new();
        for _ in 1..MAX_TRIES {
            let due = p.next_due().unwrap();
            delays.push(due - t);
            t = due;
            assert!(p.start_call(t));
            assert!(p.answered(&|_| false, t).is_empty() || p.missing() == 0);
        }
        assert_eq!(delays[0], RETRY_BASE);
        assert_eq!(delays[1], RETRY_BASE * 2);
        assert!(delays.iter().all(|d| *d <= RETRY_MAX));
        assert_eq!(p.missing(), 0);
        assert_eq!(p.given_up(), 1);
        // Given up: not asked again, even if listed as added again...
        p.added("b", t);
        assert_eq!(p.missing(), 0);
        // ...until it disappears and reappears.
        p.removed("b");
        p.added("b", t);
        assert_eq!(p.missing(), 1);
    }

    #[test]
    fn failures_do_not_count_as_tries() {
        let t0 = Instant::now();
        let mut p = Policy::default();
        p.added("a", t0);
        let mut delays = Vec::new();
        let mut last = t0;
        for i in 0..20 {
            let t = p.next_due().unwrap();
            delays.push(t - last);
            last = t;
            assert!(p.start_call(t), "{i}");
            p.failed(t, Duration::from_secs(1));
        }
        assert_eq!(p.missing(), 1);
        assert_eq!(p.given_up(), 0);
        // Failed calls back off: 1 s, 2 s, 4 s, ... capped.
        // (delays[0] is the coalescing delay after the sandbox appeared.)
        assert_eq!(delays[1], Duration::from_secs(1));
        assert_eq!(delays[2], Duration::from_secs(2));
        assert_eq!(delays[3], Duration::from_secs(4));
        assert_eq!(*delays.last().unwrap(), RETRY_MAX);
        // A good answer resets the backoff.
        let t = p.next_due().unwrap();
        assert!(p.start_call(t));
        p.answered(&|_| false, t);
        let t = p.next_due().unwrap();
        assert!(p.start_call(t));
        p.failed(t, Duration::from_secs(1));
        assert_eq!(p.next_due().unwrap() - t, Duration::from_secs(1));
        assert_eq!(p.connection_failed(), RECONNECT_BASE);
        assert_eq!(p.connection_failed(), RECONNECT_BASE * 2);
        for _ in 0..20 {
            assert!(p.connection_failed() <= RECONNECT_MAX);
        }
        p.connected();
        assert_eq!(p.connection_failed(), RECONNECT_BASE);
    }

    #[test]
    fn removal_during_a_call() {
        let t0 = Instant::now();
        let mut p = Policy::default();
        p.added("a", t0);
        assert!(p.start_call(t0 + COALESCE));
        p.removed("a");
        assert!(p.answered(&|_| false, t0 + COALESCE).is_empty());
        assert_eq!(p.missing(), 0);
        assert_eq!(p.given_up(), 0);
    }

    #[test]
    fn a_waiting_scrape_hurries_only_unanswered_ids() {
        let t0 = Instant::now();
        let mut p = Policy::default();
        p.added("a", t0);
        assert!(p.unanswered("a") && !p.unanswered("zz"));
        assert_eq!(p.next_due(), Some(t0 + COALESCE));
        p.hurry(t0);
        assert_eq!(p.next_due(), Some(t0), "asked at once");
        assert!(p.start_call(t0));
        p.answered(&|_| false, t0);
        assert!(!p.unanswered("a"), "one answer without it");
        let due = p.next_due().unwrap();
        p.hurry(t0);
        assert_eq!(p.next_due(), Some(due), "its backoff is kept");
    }

    #[test]
    fn call_results_have_distinct_labels() {
        let mut seen = std::collections::BTreeSet::new();
        for r in CallResult::ALL {
            assert!(seen.insert(r.as_label()));
            assert_eq!(CallResult::ALL[r as usize], r);
        }
        assert_eq!(CallResult::from_grpc(5), CallResult::GrpcNotFound);
        assert_eq!(CallResult::from_grpc(16), CallResult::GrpcPermission);
        assert_eq!(CallResult::from_grpc(99), CallResult::GrpcError);
    }
}
