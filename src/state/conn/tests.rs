//! The client connection machine driven with a virtual clock and in-memory
//! bytes: no sockets, no sleeps.

use super::*;
use crate::state::body::{MetricsBody, OUT_BUF};
use crate::state::registry::Registry;
use crate::state::scraper::{Action, ScrapeConfig, Scraper, Snapshot, Waiting};
use crate::state::slab::Key;
use crate::wire::expo::{Filter, Limits};
use std::rc::Rc;

const T: Timeouts = Timeouts {
    header: Duration::from_secs(10),
    idle: Duration::from_secs(120),
    wait: Duration::from_secs(3600),
    write_stall: Duration::from_secs(30),
    linger: Duration::from_secs(2),
};

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Feed `bytes` as one read.
fn recv(c: &mut Conn, bytes: &[u8], now: Instant) {
    let buf = c.recv_buf().expect("reading");
    buf[..bytes.len()].copy_from_slice(bytes);
    c.handle_read(bytes.len(), now);
}

fn events(c: &mut Conn) -> Vec<Event> {
    std::iter::from_fn(|| c.poll_event()).collect()
}

fn names(evs: &[Event]) -> Vec<String> {
    evs.iter()
        .map(|e| match e {
            Event::Request(r) => format!("request {}", r.path),
            Event::Refused(s) => format!("refused {s}"),
            Event::Spent(_) => "spent".into(),
            Event::ShutdownWrite => "shutdown".into(),
            Event::Close(r) => format!("close {}", r.as_label()),
        })
        .collect()
}

/// Write everything the connection has, in writes of at most `chunk`.
fn flush(c: &mut Conn, chunk: usize, now: Instant) -> Vec<u8> {
    let mut all = Vec::new();
    loop {
        let out = c.poll_transmit(now);
        if out.is_empty() {
            return all;
        }
        let n = out.len().min(chunk);
        all.extend_from_slice(&out[..n]);
        c.handle_written(n, now);
    }
}

#[test]
fn request_answer_keep_alive_and_pipelining() {
    let now = Instant::now();
    let mut c = Conn::new(T, now);
    recv(
        &mut c,
        b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n",
        now,
    );
    assert_eq!(names(&events(&mut c)), ["request /a"]);
    assert!(c.is_waiting());
    assert!(c.poll_transmit(now).is_empty());
    c.respond(200, &[("Content-Type", "text/plain")], b"A", false, now);
    let out = flush(&mut c, 7, now);
    assert!(out.starts_with(b"HTTP/1.1 200 OK\r\n") && out.ends_with(b"\r\n\r\nA"));
    // The pipelined request was buffered: parsed once the answer is out.
    assert_eq!(names(&events(&mut c)), ["request /b"]);
    c.respond(404, &[], b"", true, now);
    let out = flush(&mut c, 1000, now);
    assert!(out.starts_with(b"HTTP/1.1 404"));
    assert!(events(&mut c).is_empty());
    assert_eq!(c.evictable_since(), Some(now), "idle, kept alive");
}

#[test]
fn header_timeout_counts_from_accept_then_from_the_first_byte() {
    let t0 = Instant::now();
    let mut c = Conn::new(T, t0);
    assert_eq!(c.deadline(), Some(t0 + T.header));
    // Slowloris: bytes trickling in do not extend the head's deadline.
    recv(&mut c, b"GET / HT", t0 + secs(5));
    assert_eq!(c.deadline(), Some(t0 + T.header));
    c.handle_timeout(t0 + secs(9));
    assert!(events(&mut c).is_empty());
    c.handle_timeout(t0 + T.header);
    assert_eq!(names(&events(&mut c)), ["close header_timeout"]);
    assert!(c.is_closed() && c.deadline().is_none());
    // A kept-alive connection: the idle timeout until a byte, then the
    // header timeout from that byte.
    let mut c = Conn::new(T, t0);
    recv(&mut c, b"GET / HTTP/1.1\r\n\r\n", t0);
    events(&mut c);
    c.respond(200, &[], b"", false, t0);
    flush(&mut c, 1000, t0 + secs(1));
    assert_eq!(c.deadline(), Some(t0 + secs(1) + T.idle));
    recv(&mut c, b"G", t0 + secs(50));
    assert_eq!(c.deadline(), Some(t0 + secs(50) + T.header));
    let mut idle = Conn::new(T, t0);
    recv(&mut idle, b"GET / HTTP/1.1\r\n\r\n", t0);
    events(&mut idle);
    idle.respond(200, &[], b"", false, t0);
    flush(&mut idle, 1000, t0);
    idle.handle_timeout(t0 + T.idle);
    assert_eq!(names(&events(&mut idle)), ["close idle_timeout"]);
}

#[test]
fn malformed_heads_get_one_answer_then_a_lingering_close() {
    let now = Instant::now();
    for (input, status) in [
        (&b"GARBAGE\r\n\r\nGET / HTTP/1.1\r\n\r\n"[..], 400u16),
        (&[b'A'; request::MAX_HEAD + 1][..], 431),
    ] {
        let mut c = Conn::new(T, now);
        recv(&mut c, input, now);
        assert_eq!(names(&events(&mut c)), [format!("refused {status}")]);
        let out = flush(&mut c, 1000, now);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with(&format!("HTTP/1.1 {status}")), "{text}");
        assert!(text.contains("Connection: close"));
        assert_eq!(
            names(&events(&mut c)),
            ["shutdown"],
            "the request after it is not served"
        );
        // Input is drained (so the close is not a reset) until EOF.
        recv(&mut c, b"more junk", now);
        assert!(events(&mut c).is_empty());
        assert_eq!(c.deadline(), Some(now + T.linger));
        c.handle_eof();
        assert_eq!(names(&events(&mut c)), ["close done"]);
    }
    // Lingering ends at its deadline too.
    let mut c = Conn::new(T, now);
    recv(&mut c, b"BAD\r\n\r\n", now);
    flush(&mut c, 1000, now);
    events(&mut c);
    c.handle_timeout(now + T.linger);
    assert_eq!(names(&events(&mut c)), ["close done"]);
}

#[test]
fn half_closed_client_still_gets_its_answer() {
    let now = Instant::now();
    let mut c = Conn::new(T, now);
    recv(&mut c, b"GET / HTTP/1.1\r\n\r\n", now);
    events(&mut c);
    c.handle_eof();
    assert!(c.is_waiting(), "a FIN after the request is not a goodbye");
    c.respond(200, &[], b"ok", false, now);
    let out = flush(&mut c, 1000, now);
    assert!(
        String::from_utf8(out)
            .unwrap()
            .contains("Connection: close")
    );
    assert_eq!(names(&events(&mut c)), ["shutdown", "close done"]);
    assert!(c.recv_buf().is_none(), "nothing more is read after EOF");
    // A reset while waiting closes at once.
    let mut c = Conn::new(T, now);
    recv(&mut c, b"GET / HTTP/1.1\r\n\r\n", now);
    events(&mut c);
    c.handle_error();
    assert_eq!(names(&events(&mut c)), ["close reset"]);
}

#[test]
fn http10_and_request_bodies_close_after_the_answer() {
    let now = Instant::now();
    let mut c = Conn::new(T, now);
    recv(&mut c, b"GET / HTTP/1.0\r\n\r\n", now);
    events(&mut c);
    assert_eq!(c.stream_framing(), Framing::Close);
    c.respond(200, &[], b"x", false, now);
    flush(&mut c, 1000, now);
    assert_eq!(names(&events(&mut c)), ["shutdown"]);
    let mut c = Conn::new(T, now);
    recv(
        &mut c,
        b"GET / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
        now,
    );
    events(&mut c);
    assert_eq!(c.stream_framing(), Framing::Chunked);
    c.respond(200, &[], b"x", false, now);
    let out = flush(&mut c, 1000, now);
    assert!(
        String::from_utf8(out)
            .unwrap()
            .contains("Connection: close")
    );
    assert_eq!(names(&events(&mut c)), ["shutdown"]);
}

/// A snapshot of `n` sandboxes with bodies of about `size` bytes.
fn snapshot(n: usize, size: usize) -> Rc<Snapshot> {
    let now = Instant::now();
    let mut reg = Registry::new(vec!["/r".into()]);
    for i in 0..n {
        reg.add(0, &format!("sb{i:03}"));
    }
    let mut s = Scraper::new(ScrapeConfig {
        shim_timeout: secs(3),
        max_body: 1 << 24,
        limits: Limits::default(),
        seed: 1,
    });
    let w = Waiting {
        filter: Filter::all(),
        accept: Default::default(),
        head_only: false,
        arrived: now,
    };
    s.request(
        Key {
            slot: 0,
            generation: 0,
        },
        w,
        None,
        &reg,
        &|_| false,
        now,
    );
    let mut snap = None;
    while let Some(a) = s.poll_action() {
        match a {
            Action::Fetch { ticket, .. } => {
                let mut body = b"# TYPE m gauge\n".to_vec();
                let mut i = 0;
                while body.len() < size {
                    body.extend_from_slice(format!("m{{i=\"{i}\"}} {i}\n").as_bytes());
                    i += 1;
                }
                let len = body.len();
                s.fetched(ticket, body, 0..len, now, now);
            }
            Action::Answer { snap: sn, .. } => snap = Some(sn),
            _ => {}
        }
    }
    snap.unwrap()
}

fn start_metrics(c: &mut Conn, snap: &Rc<Snapshot>, chunked: bool, now: Instant) -> u64 {
    let cursor = snap.expo.cursor(&Filter::all(), Vec::new());
    let len = cursor.len();
    let framing = if chunked {
        Framing::Chunked
    } else {
        Framing::Length(len)
    };
    let body = Body::Metrics(Box::new(MetricsBody::new(
        snap.clone(),
        cursor,
        None,
        chunked,
    )));
    c.start(200, &[], framing, body, false, now);
    len
}

#[test]
fn streamed_bodies_apply_backpressure() {
    let now = Instant::now();
    let snap = snapshot(20, 50_000);
    let mut c = Conn::new(T, now);
    recv(&mut c, b"GET /metrics HTTP/1.1\r\n\r\n", now);
    events(&mut c);
    let len = start_metrics(&mut c, &snap, false, now);
    assert!(len > 10 * OUT_BUF as u64);
    // A client that reads nothing: the output never holds more than one
    // buffer, however often the reactor asks.
    for _ in 0..100 {
        let pending = c.poll_transmit(now).len();
        assert!(pending <= OUT_BUF + 256, "{pending}");
    }
    // Reading slowly, in small pieces, gets every byte, in order.
    let out = flush(&mut c, 1000, now + secs(1));
    let body_start = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert_eq!((out.len() - body_start) as u64, len);
    assert_eq!(
        &out[body_start..],
        snap.expo.render_to_vec(&Filter::all()).as_slice()
    );
    assert_eq!(
        names(&events(&mut c)),
        ["spent"],
        "the body comes back for recycling"
    );
}

#[test]
fn chunked_stream_decodes_to_the_body() {
    let now = Instant::now();
    let snap = snapshot(3, 100_000);
    let mut c = Conn::new(T, now);
    recv(&mut c, b"GET /metrics HTTP/1.1\r\n\r\n", now);
    events(&mut c);
    start_metrics(&mut c, &snap, true, now);
    let out = flush(&mut c, 4096, now);
    let body_start = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let mut rest = &out[body_start..];
    let mut decoded = Vec::new();
    loop {
        let line_end = rest.windows(2).position(|w| w == b"\r\n").unwrap();
        let n = usize::from_str_radix(std::str::from_utf8(&rest[..line_end]).unwrap(), 16).unwrap();
        rest = &rest[line_end + 2..];
        if n == 0 {
            assert_eq!(rest, b"\r\n");
            break;
        }
        decoded.extend_from_slice(&rest[..n]);
        rest = &rest[n + 2..];
    }
    assert_eq!(decoded, snap.expo.render_to_vec(&Filter::all()));
}

#[test]
fn a_stalled_reader_is_cut_off_and_its_body_released() {
    let t0 = Instant::now();
    let snap = snapshot(5, 50_000);
    let mut c = Conn::new(T, t0);
    recv(&mut c, b"GET /metrics HTTP/1.1\r\n\r\n", t0);
    events(&mut c);
    start_metrics(&mut c, &snap, false, t0);
    let n = c.poll_transmit(t0).len();
    c.handle_written(n / 2, t0 + secs(20));
    assert_eq!(
        c.deadline(),
        Some(t0 + secs(20) + T.write_stall),
        "progress extends it"
    );
    c.handle_timeout(t0 + secs(49));
    assert!(events(&mut c).is_empty());
    c.handle_timeout(t0 + secs(50));
    assert_eq!(names(&events(&mut c)), ["spent", "close write_stall"]);
    assert_eq!(
        Rc::strong_count(&snap),
        1,
        "the connection let go of the snapshot"
    );
}

#[test]
fn head_only_answers_release_the_body_at_once() {
    let now = Instant::now();
    let snap = snapshot(1, 1000);
    let mut c = Conn::new(T, now);
    recv(&mut c, b"HEAD /metrics HTTP/1.1\r\n\r\n", now);
    events(&mut c);
    let cursor = snap.expo.cursor(&Filter::all(), Vec::new());
    let len = cursor.len();
    let body = Body::Metrics(Box::new(MetricsBody::new(
        snap.clone(),
        cursor,
        None,
        false,
    )));
    c.start(200, &[], Framing::Length(len), body, true, now);
    assert_eq!(names(&events(&mut c)), ["spent"]);
    let out = flush(&mut c, 1000, now);
    assert!(
        String::from_utf8(out)
            .unwrap()
            .contains(&format!("Content-Length: {len}\r\n"))
    );
    assert!(c.evictable_since().is_some());
}

#[test]
fn relayed_bodies_move_when_the_output_is_empty() {
    let now = Instant::now();
    let mut c = Conn::new(T, now);
    recv(&mut c, b"GET /debug/vars HTTP/1.1\r\n\r\n", now);
    events(&mut c);
    assert!(!c.wants_relay());
    c.start(
        200,
        &[],
        Framing::Chunked,
        Body::Relay {
            chunked: true,
            ended: false,
        },
        false,
        now,
    );
    assert!(!c.wants_relay(), "the head is still pending");
    let head = flush(&mut c, 1000, now);
    assert!(head.ends_with(b"\r\n\r\n"));
    assert!(c.wants_relay());
    c.relay_push(b"hello");
    assert!(!c.wants_relay());
    c.relay_push(b"ignored: output not empty");
    assert_eq!(flush(&mut c, 1000, now), b"5\r\nhello\r\n");
    c.relay_end();
    assert_eq!(flush(&mut c, 1000, now), b"0\r\n\r\n");
    assert_eq!(names(&events(&mut c)), ["spent"]);
    assert!(c.evictable_since().is_some());
}

#[test]
fn eviction_candidates_are_only_connections_without_a_request() {
    let now = Instant::now();
    let mut c = Conn::new(T, now);
    assert_eq!(c.evictable_since(), Some(now), "accepted, silent");
    recv(&mut c, b"GET", now + secs(1));
    assert_eq!(c.evictable_since(), None, "a head in progress");
    recv(&mut c, b" / HTTP/1.1\r\n\r\n", now + secs(1));
    events(&mut c);
    assert_eq!(c.evictable_since(), None, "waiting for its answer");
    c.close(CloseReason::Evicted);
    assert_eq!(names(&events(&mut c)), ["close evicted"]);
    c.close(CloseReason::Evicted);
    assert!(events(&mut c).is_empty(), "closing twice is a no-op");
    assert!(c.recv_buf().is_none());
}
