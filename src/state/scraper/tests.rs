//! The fetch-round machine driven with a virtual clock: no sockets, no sleeps.

use super::*;
use crate::state::registry::Registry;

const SHIM_TIMEOUT: Duration = Duration::from_secs(3);

fn scraper() -> Scraper {
    Scraper::new(ScrapeConfig {
        shim_timeout: SHIM_TIMEOUT,
        max_body: 1 << 20,
        limits: Limits::default(),
        seed: 7,
    })
}

fn registry(ids: &[&str]) -> Registry {
    let mut r = Registry::new(vec!["/r".into()]);
    for id in ids {
        r.add(0, id);
    }
    r
}

fn client(n: u32) -> Key {
    Key {
        slot: n,
        generation: 0,
    }
}

fn waiting(now: Instant) -> Waiting {
    Waiting {
        filter: Filter::all(),
        accept: Default::default(),
        head_only: false,
        arrived: now,
    }
}

/// (seq, slot, id, fresh) of every queued fetch; other actions are returned apart.
#[derive(Default)]
struct Out {
    fetches: Vec<(u64, usize, String, bool, Vec<u8>)>,
    cancels: Vec<Key>,
    answers: Vec<(Key, Rc<Snapshot>)>,
    finished: usize,
}

fn drain(s: &mut Scraper) -> Out {
    let mut o = Out::default();
    while let Some(a) = s.poll_action() {
        match a {
            Action::Fetch {
                ticket,
                id,
                fresh,
                buf,
                ..
            } => o.fetches.push((ticket.seq, ticket.slot, id, fresh, buf)),
            Action::Cancel { handle } => o.cancels.push(handle),
            Action::Answer { client, snap, .. } => o.answers.push((client, snap)),
            Action::Finished(_) => o.finished += 1,
        }
    }
    o
}

fn body(id: &str) -> Vec<u8> {
    format!("# TYPE up gauge\nup{{shim=\"{id}\"}} 1\n").into_bytes()
}

fn t(seq: u64, slot: usize) -> Ticket {
    Ticket { seq, slot }
}

fn deliver(s: &mut Scraper, seq: u64, slot: usize, id: &str, now: Instant) {
    let b = body(id);
    let n = b.len();
    s.fetched(t(seq, slot), b, 0..n, now, now);
}

fn text(snap: &Snapshot) -> String {
    String::from_utf8(snap.expo.render_to_vec(&Filter::all())).unwrap()
}

#[test]
fn a_round_fetches_every_sandbox_and_answers_when_all_are_in() {
    let now = Instant::now();
    let reg = registry(&["a", "b", "c"]);
    let mut s = scraper();
    s.request(client(1), waiting(now), None, &reg, &|_| false, now);
    let o = drain(&mut s);
    let ids: Vec<&str> = o.fetches.iter().map(|f| f.2.as_str()).collect();
    assert_eq!(ids, ["a", "b", "c"]);
    assert!(
        o.fetches.iter().all(|f| !f.3),
        "first try reuses kept-alive connections"
    );
    assert!(o.answers.is_empty());
    let seq = o.fetches[0].0;
    for (slot, id) in ["a", "b"].iter().enumerate() {
        deliver(&mut s, seq, slot, id, now);
    }
    assert!(drain(&mut s).answers.is_empty(), "c is still out");
    deliver(&mut s, seq, 2, "c", now + Duration::from_millis(5));
    let o = drain(&mut s);
    assert_eq!(o.finished, 1);
    assert_eq!(o.answers.len(), 1);
    let snap = &o.answers[0].1;
    assert_eq!(snap.failed, 0);
    assert!(
        text(snap).contains(r#"up{shim="c",sandbox_id="c""#),
        "{}",
        text(snap)
    );
    assert!(!s.in_flight());
    assert_eq!(s.stats.scrapes, 1);
    assert_eq!(s.stats.rounds, 1);
}

#[test]
fn requests_join_the_round_in_flight() {
    let now = Instant::now();
    let reg = registry(&["a"]);
    let mut s = scraper();
    s.request(client(1), waiting(now), None, &reg, &|_| false, now);
    let o = drain(&mut s);
    s.request(
        client(2),
        waiting(now),
        None,
        &reg,
        &|_| false,
        now + Duration::from_millis(1),
    );
    assert!(drain(&mut s).fetches.is_empty(), "joining fans out nothing");
    deliver(&mut s, o.fetches[0].0, 0, "a", now);
    let o = drain(&mut s);
    let clients: Vec<Key> = o.answers.iter().map(|a| a.0).collect();
    assert_eq!(clients, [client(1), client(2)]);
    assert!(
        Rc::ptr_eq(&o.answers[0].1, &o.answers[1].1),
        "one snapshot for both"
    );
    assert_eq!(s.stats.rounds, 1);
}

#[test]
fn the_deadline_comes_from_the_shim_timeout_or_the_scrape_timeout_header() {
    let now = Instant::now();
    let reg = registry(&["a"]);
    let mut s = scraper();
    s.request(client(1), waiting(now), None, &reg, &|_| false, now);
    assert_eq!(s.deadline(), Some(now + SHIM_TIMEOUT));
    // A later request with a short Prometheus timeout pulls it in.
    s.request(
        client(2),
        waiting(now),
        Some(1.0),
        &reg,
        &|_| false,
        now + Duration::from_millis(100),
    );
    assert_eq!(s.deadline(), Some(now + Duration::from_millis(1000)));
    let o = drain(&mut s);
    s.opened(t(o.fetches[0].0, 0), client(99));
    s.handle_timeout(now + Duration::from_millis(999));
    assert!(s.in_flight(), "not yet");
    s.handle_timeout(now + Duration::from_millis(1000));
    let o = drain(&mut s);
    assert_eq!(o.cancels, [client(99)], "the hung fetch is closed");
    assert_eq!(o.answers.len(), 2);
    let snap = &o.answers[0].1;
    assert_eq!(snap.slots[0].error, Some(FetchError::Timeout));
    assert_eq!(snap.failed, 1);
    assert_eq!(s.stats.failed_scrapes, 2);
}

#[test]
fn round_budget_leaves_a_margin_before_the_scrape_timeout() {
    let ms = |t: Option<f64>| round_budget(SHIM_TIMEOUT, t).as_millis();
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

#[test]
fn a_stale_kept_alive_connection_is_retried_once_on_a_new_one() {
    let now = Instant::now();
    let reg = registry(&["a"]);
    let mut s = scraper();
    s.request(client(1), waiting(now), None, &reg, &|_| false, now);
    let mut o = drain(&mut s);
    let (seq, _, _, _, buf) = o.fetches.pop().unwrap();
    s.failed(t(seq, 0), FetchError::SendFailed, true, buf, now, now);
    let mut o = drain(&mut s);
    assert_eq!(o.fetches.len(), 1);
    assert!(o.fetches[0].3, "the retry asks for a fresh connection");
    assert!(o.answers.is_empty());
    // A second stale failure is not retried again.
    let (seq, _, _, _, buf) = o.fetches.pop().unwrap();
    s.failed(t(seq, 0), FetchError::Reset, true, buf, now, now);
    let o = drain(&mut s);
    assert!(o.fetches.is_empty());
    assert_eq!(o.answers[0].1.slots[0].error, Some(FetchError::Reset));
}

#[test]
fn timeouts_and_fresh_failures_are_not_retried() {
    let now = Instant::now();
    let reg = registry(&["a", "b"]);
    let mut s = scraper();
    s.request(client(1), waiting(now), None, &reg, &|_| false, now);
    let mut o = drain(&mut s);
    let (seq, _, _, _, b1) = o.fetches.pop().unwrap();
    let (_, _, _, _, b0) = o.fetches.pop().unwrap();
    s.failed(t(seq, 0), FetchError::Timeout, true, b0, now, now);
    s.failed(t(seq, 1), FetchError::Refused, false, b1, now, now);
    let o = drain(&mut s);
    assert!(o.fetches.is_empty());
    let errs: Vec<_> = o.answers[0].1.slots.iter().map(|r| r.error).collect();
    assert_eq!(errs, [Some(FetchError::Timeout), Some(FetchError::Refused)]);
}

#[test]
fn junk_bodies_fail_their_sandbox_alone() {
    let now = Instant::now();
    let reg = registry(&["a", "b"]);
    let mut s = scraper();
    s.request(client(1), waiting(now), None, &reg, &|_| false, now);
    let o = drain(&mut s);
    let seq = o.fetches[0].0;
    let junk = b"<html>\nnot metrics\nat all\n".to_vec();
    let n = junk.len();
    s.fetched(t(seq, 0), junk, 0..n, now, now);
    deliver(&mut s, seq, 1, "b", now);
    let o = drain(&mut s);
    let snap = &o.answers[0].1;
    assert_eq!(snap.slots[0].error, Some(FetchError::InvalidBody));
    assert_eq!(snap.slots[1].error, None);
    assert!(!text(snap).contains("not"), "nothing of the junk is served");
    assert!(text(snap).contains(r#"sandbox_id="b""#));
}

#[test]
fn slots_without_a_descriptor_wait_for_one_then_time_out() {
    let now = Instant::now();
    let reg = registry(&["a", "b", "c"]);
    let mut s = scraper();
    s.request(client(1), waiting(now), None, &reg, &|_| false, now);
    let mut o = drain(&mut s);
    let seq = o.fetches[0].0;
    // b and c find no fd.
    let (_, _, _, _, bc) = o.fetches.pop().unwrap();
    let (_, _, _, _, bb) = o.fetches.pop().unwrap();
    s.no_fd(t(seq, 2), bc);
    s.no_fd(t(seq, 1), bb);
    assert!(s.starved());
    deliver(&mut s, seq, 0, "a", now);
    assert!(drain(&mut s).answers.is_empty());
    // a's connection closes: one fd for the first queued slot.
    s.fd_freed();
    let o = drain(&mut s);
    assert_eq!(o.fetches.len(), 1);
    assert_eq!(
        (o.fetches[0].1, o.fetches[0].3),
        (2, true),
        "queue order, fresh"
    );
    deliver(&mut s, seq, 2, "c", now);
    // b never gets one: at the deadline it fails as fd_exhausted, not timeout.
    s.handle_timeout(now + SHIM_TIMEOUT);
    let o = drain(&mut s);
    let errs: Vec<_> = o.answers[0].1.slots.iter().map(|r| r.error).collect();
    assert_eq!(errs, [None, Some(FetchError::FdExhausted), None]);
    assert!(o.cancels.is_empty());
}

#[test]
fn slow_readers_cap_live_snapshots_and_get_the_newest() {
    let now = Instant::now();
    let reg = registry(&["a"]);
    let mut s = scraper();
    let mut held = Vec::new();
    for i in 0..MAX_SNAPSHOTS as u32 {
        s.request(client(i), waiting(now), None, &reg, &|_| false, now);
        let o = drain(&mut s);
        deliver(&mut s, o.fetches[0].0, 0, "a", now);
        let mut o = drain(&mut s);
        held.push(o.answers.pop().unwrap().1);
    }
    assert_eq!(s.snapshots_alive(), MAX_SNAPSHOTS);
    s.request(client(50), waiting(now), None, &reg, &|_| false, now);
    let o = drain(&mut s);
    assert!(
        o.fetches.is_empty(),
        "no new round while slow clients hold 4"
    );
    assert!(
        Rc::ptr_eq(&o.answers[0].1, held.last().unwrap()),
        "the newest snapshot"
    );
    assert_eq!(s.stats.reused, 1);
    // Once the slow clients finish, rounds resume and old snapshots are recycled.
    held.clear();
    s.request(client(51), waiting(now), None, &reg, &|_| false, now);
    let o = drain(&mut s);
    assert_eq!(o.fetches.len(), 1);
    assert!(s.snapshots_alive() <= 2, "{}", s.snapshots_alive());
}

#[test]
fn an_empty_node_is_answered_at_once() {
    let now = Instant::now();
    let reg = registry(&[]);
    let mut s = scraper();
    s.request(client(1), waiting(now), None, &reg, &|_| false, now);
    let o = drain(&mut s);
    assert!(o.fetches.is_empty());
    assert_eq!(o.answers.len(), 1);
    assert!(!s.in_flight());
}

#[test]
fn a_client_that_leaves_is_not_answered_and_late_results_are_ignored() {
    let now = Instant::now();
    let reg = registry(&["a"]);
    let mut s = scraper();
    s.request(client(1), waiting(now), None, &reg, &|_| false, now);
    let o = drain(&mut s);
    let seq = o.fetches[0].0;
    s.forget(client(1));
    deliver(&mut s, seq, 0, "a", now);
    let o = drain(&mut s);
    assert!(o.answers.is_empty());
    assert_eq!(
        o.finished, 1,
        "the round still completes (its snapshot serves the next)"
    );
    // A result for a round that is over is ignored.
    deliver(&mut s, seq, 0, "a", now);
    s.failed(t(seq, 0), FetchError::Reset, false, Vec::new(), now, now);
    assert!(drain(&mut s).answers.is_empty());
}

#[test]
fn buffers_are_recycled_and_released_after_a_quiet_period() {
    let now = Instant::now();
    let reg = registry(&["a"]);
    let mut s = scraper();
    for i in 0..3 {
        s.request(client(i), waiting(now), None, &reg, &|_| false, now);
        let o = drain(&mut s);
        let (seq, slot, id, _, mut buf) = o.fetches.into_iter().next().unwrap();
        if i > 0 {
            assert!(buf.capacity() > 0, "the previous round's buffer comes back");
        }
        let b = body(&id);
        buf.resize(buf.len().max(b.len()), 0);
        buf[..b.len()].copy_from_slice(&b);
        s.fetched(t(seq, slot), buf, 0..b.len(), now, now);
        drain(&mut s);
    }
    assert!(s.pool().len() <= 2, "bounded by the node's size");
    assert_eq!(s.deadline(), Some(now + TRIM_AFTER));
    assert!(!s.handle_timeout(now + TRIM_AFTER - Duration::from_millis(1)));
    assert!(s.handle_timeout(now + TRIM_AFTER));
    assert!(s.pool().is_empty());
    assert_eq!(
        s.deadline(),
        None,
        "nothing more to do until the next scrape"
    );
}

#[test]
fn failures_are_summed_up_in_one_line() {
    let now = Instant::now();
    let ids: Vec<String> = (0..40).map(|i| format!("sb{i:02}")).collect();
    let reg = registry(&ids.iter().map(String::as_str).collect::<Vec<_>>());
    let mut s = scraper();
    s.request(client(1), waiting(now), None, &reg, &|_| false, now);
    let o = drain(&mut s);
    for (seq, slot, id, _, buf) in o.fetches {
        match slot % 4 {
            0 => deliver(&mut s, seq, slot, &id, now),
            1 => s.failed(t(seq, slot), FetchError::Refused, false, buf, now, now),
            2 => s.failed(t(seq, slot), FetchError::HttpStatus, false, buf, now, now),
            _ => {}
        }
    }
    s.handle_timeout(now + SHIM_TIMEOUT);
    let o = drain(&mut s);
    let (reasons, first) = o.answers[0].1.failure_summary(5).unwrap();
    assert_eq!(reasons, "refused=10,http_status=10,timeout=10");
    assert_eq!(
        first, "sb01,sb02,sb03,sb05,sb06",
        "the first five, in id order"
    );
    s.request(
        client(2),
        waiting(now),
        None,
        &registry(&["x"]),
        &|_| false,
        now,
    );
    let o = drain(&mut s);
    deliver(&mut s, o.fetches[0].0, 0, "x", now);
    assert_eq!(drain(&mut s).answers[0].1.failure_summary(5), None);
}

mod exclusions {
    use super::*;
    use crate::state::exclusion::Rules;
    use crate::state::registry::PodMeta;

    fn meta(handler: &str) -> Option<PodMeta> {
        Some(PodMeta {
            uid: "u".into(),
            name: "n".into(),
            namespace: "ns".into(),
            runtime_handler: handler.into(),
        })
    }

    /// "a" allowed, "b" with no known handler, "c" excluded.
    fn node() -> Registry {
        let rules = Rules {
            handlers: vec!["kata-*-rs".into()],
            ..Rules::default()
        };
        let mut reg = Registry::with_rules(vec!["/r".into()], rules);
        for id in ["a", "b", "c"] {
            reg.add(0, id);
        }
        reg.set_meta("a", meta("kata-qemu"));
        reg.set_meta("c", meta("kata-fc-rs"));
        reg
    }

    fn ids(snap: &Snapshot) -> Vec<&str> {
        snap.slots.iter().map(|s| s.id.as_str()).collect()
    }

    #[test]
    fn excluded_sandboxes_are_never_fetched_and_unknown_ones_wait() {
        let now = Instant::now();
        let mut reg = node();
        let mut s = scraper();
        s.request(client(1), waiting(now), None, &reg, &|_| true, now);
        let o = drain(&mut s);
        let fetched: Vec<&str> = o.fetches.iter().map(|f| f.2.as_str()).collect();
        assert_eq!(fetched, ["a"], "c is excluded, b waits for its handler");
        assert!(s.holding());
        deliver(&mut s, o.fetches[0].0, o.fetches[0].1, "a", now);
        assert!(
            drain(&mut s).answers.is_empty(),
            "the round waits for b's verdict"
        );
        // The CRI runtime names b's handler: allowed, fetched now.
        reg.set_meta("b", meta("kata-clh"));
        s.judge(&reg, &|_| true, now);
        let o = drain(&mut s);
        assert_eq!(o.fetches.len(), 1);
        assert_eq!(o.fetches[0].2, "b");
        assert!(!s.holding());
        deliver(&mut s, o.fetches[0].0, o.fetches[0].1, "b", now);
        let o = drain(&mut s);
        assert_eq!(ids(&o.answers[0].1), ["a", "b"]);
        assert_eq!(o.answers[0].1.failed, 0, "excluded ones are not failures");
    }

    #[test]
    fn a_held_sandbox_named_excluded_is_skipped() {
        let now = Instant::now();
        let mut reg = node();
        let mut s = scraper();
        s.request(client(1), waiting(now), None, &reg, &|_| true, now);
        let o = drain(&mut s);
        deliver(&mut s, o.fetches[0].0, o.fetches[0].1, "a", now);
        reg.set_meta("b", meta("kata-qemu-runtime-rs"));
        s.judge(&reg, &|_| true, now);
        let o = drain(&mut s);
        assert!(o.fetches.is_empty());
        assert_eq!(ids(&o.answers[0].1), ["a"]);
    }

    #[test]
    fn held_sandboxes_are_given_up_at_the_deadline_or_when_not_worth_waiting() {
        let now = Instant::now();
        let reg = node();
        // The deadline comes first.
        let mut s = scraper();
        s.request(client(1), waiting(now), None, &reg, &|_| true, now);
        let o = drain(&mut s);
        deliver(&mut s, o.fetches[0].0, o.fetches[0].1, "a", now);
        s.handle_timeout(now + SHIM_TIMEOUT);
        let o = drain(&mut s);
        assert_eq!(
            ids(&o.answers[0].1),
            ["a"],
            "b not scraped, not down either"
        );
        assert!(o.cancels.is_empty());
        // The CRI runtime answered without b (or went away): no more waiting.
        let mut s = scraper();
        s.request(client(1), waiting(now), None, &reg, &|_| true, now);
        let o = drain(&mut s);
        s.judge(&reg, &|_| false, now);
        assert!(!s.holding());
        deliver(&mut s, o.fetches[0].0, o.fetches[0].1, "a", now);
        assert_eq!(ids(&drain(&mut s).answers[0].1), ["a"]);
        // Not worth holding from the start: answered as soon as a is in.
        let mut s = scraper();
        s.request(client(1), waiting(now), None, &reg, &|_| false, now);
        assert!(!s.holding());
        let o = drain(&mut s);
        deliver(&mut s, o.fetches[0].0, o.fetches[0].1, "a", now);
        assert_eq!(drain(&mut s).answers.len(), 1);
    }
}
