//! The /debug proxies: headers as upstream, streaming in both directions
//! with backpressure, failures mapped to 502/504 or a closed connection, and
//! the loop serving everything else meanwhile.

mod common;

use common::node::{Client, Monitor, Sim};
use std::io::Read;
use std::time::Duration;

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

#[test]
fn endpoints_headers_and_links() {
    let sim = Sim::start(&["--sandboxes", "2"]);
    let m = Monitor::start(&sim.roots_arg(), &[]);
    let id = &sim.ids[0];
    let get = |p: &str| {
        m.get(&format!(
            "{p}{}sandbox={id}",
            if p.contains('?') { "&" } else { "?" }
        ))
    };

    let r = get("/debug/vars");
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-type")
            .unwrap()
            .starts_with("application/json")
    );
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert!(r.text().contains("memstats"));

    let r = get("/debug/pprof/cmdline");
    assert_eq!(r.status, 200);
    assert!(r.body.contains(&0), "NUL-separated argv");

    let r = get("/debug/pprof/symbol");
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(r.text(), "num_symbols: 1\n");

    let r = get("/debug/pprof/heap");
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));
    assert_eq!(
        r.header("content-disposition"),
        Some("attachment; filename=\"heap\"")
    );
    let r = get("/debug/pprof/goroutine?debug=2");
    assert!(r.header("content-type").unwrap().starts_with("text/plain"));
    assert!(r.text().contains("goroutine"));

    // Without its slash, the index is a redirect (Go's ServeMux, upstream)
    // that keeps the sandbox; a client following it gets the page.
    let r = get("/debug/pprof");
    assert_eq!(r.status, 301);
    assert_eq!(
        r.header("location"),
        Some(format!("/debug/pprof/?sandbox={id}").as_str())
    );
    // The index page's links carry the sandbox, with either quote style.
    {
        let r = get("/debug/pprof/");
        assert_eq!(r.status, 200);
        assert!(r.header("content-type").unwrap().starts_with("text/html"));
        let page = r.text();
        assert!(
            page.contains(&format!("href='allocs?sandbox={id}&debug=1'")),
            "{page}"
        );
        assert!(
            page.contains(&format!("href=\"heap?sandbox={id}&debug=1\"")),
            "{page}"
        );
        assert!(page.contains(&format!("goroutine?sandbox={id}&debug=2")));
    }
    // Unknown sub-page: the shim's own answer.
    assert_eq!(get("/debug/pprof/nope").status, 404);
    // Missing and unknown sandboxes (nosniff, as Go's http.Error).
    let r = m.get("/debug/vars");
    assert_eq!(r.status, 400);
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(m.get("/debug/pprof/heap?sandbox=").status, 400);
    assert_eq!(m.get("/debug/vars?sandbox=../../x").status, 404);
}

#[test]
fn pprof_index_keeps_the_shims_content_type() {
    // Kata's default shim has pprof off: its mux answers 404 text/plain.
    let root = common::node::tmpdir("nopprof");
    let body = "404 page not found\n";
    let resp = format!(
        "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\n\
         X-Content-Type-Options: nosniff\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let _shim = common::node::FakeShim::start_raw(&root.join("sb1"), resp.into_bytes());
    let m = Monitor::start(&root.display().to_string(), &[]);
    let r = m.get("/debug/pprof/?sandbox=sb1");
    assert_eq!(r.status, 404);
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(r.text(), body);
}

#[test]
fn long_profile_does_not_delay_scrapes() {
    let sim = Sim::start(&["--sandboxes", "10"]);
    let m = Monitor::start(&sim.roots_arg(), &[]);
    let id = sim.ids[0].clone();
    let addr = m.addr;
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let done2 = done.clone();
    let profile = std::thread::spawn(move || {
        let r = common::node::http(
            addr,
            "GET",
            &format!("/debug/pprof/profile?seconds=3&sandbox={id}"),
            &[],
        );
        done2.store(true, std::sync::atomic::Ordering::SeqCst);
        r
    });
    std::thread::sleep(Duration::from_millis(200));
    // While the shim profiles (and its connection is quiet), scrapes are
    // answered, every sandbox up, the profiled one included.
    let mut during = 0;
    for _ in 0..3 {
        let r = m.get("/metrics");
        assert_eq!(r.status, 200);
        let text = r.text();
        let up: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("kata_monitor_sandbox_up{"))
            .collect();
        assert_eq!(up.len(), 10);
        assert!(up.iter().all(|l| l.ends_with(" 1")), "{up:?}");
        if !done.load(std::sync::atomic::Ordering::SeqCst) {
            during += 1;
        }
    }
    assert!(during > 0, "no scrape was answered while the profile ran");
    let r = profile.join().unwrap();
    assert_eq!(r.status, 200);
    assert!(r.body.len() > 60_000);
    assert_eq!(
        r.header("content-disposition"),
        Some("attachment; filename=\"profile\"")
    );
}

#[test]
fn trace_streams_progressively_with_backpressure() {
    let sim = Sim::start(&["--sandboxes", "2"]);
    let m = Monitor::start(&sim.roots_arg(), &[]);
    let id = sim.ids[0].clone();
    // Streams: the first bytes arrive long before the trace ends.
    let mut c = Client::connect(m.addr);
    c.send(
        format!("GET /debug/pprof/trace?seconds=2&sandbox={id} HTTP/1.1\r\nHost: t\r\n\r\n")
            .as_bytes(),
    );
    let mut first = [0u8; 512];
    let n = c.sock.read(&mut first).unwrap();
    assert!(n > 0);
    let head = String::from_utf8_lossy(&first[..n]).to_string();
    assert!(
        head.contains("Content-Type: application/octet-stream"),
        "{head}"
    );
    assert!(head.contains("Content-Disposition: attachment; filename=\"trace\""));
    c.pending.extend_from_slice(&first[..n]);
    let r = c.response().expect("complete trace");
    assert!(r.body.len() > 1_000_000, "{} bytes", r.body.len());
    // The connection is kept alive after a complete stream.
    c.send(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
    assert!(c.response().unwrap().text().starts_with("ok"));

    // A client that does not read: the monitor stops reading the shim
    // instead of buffering the trace; its memory stays flat.
    let pid = m.child.id();
    let before = rss_kb(pid);
    let mut stalled = Client::connect(m.addr);
    stalled.send(
        format!("GET /debug/pprof/trace?seconds=3&sandbox={id} HTTP/1.1\r\nHost: t\r\n\r\n")
            .as_bytes(),
    );
    std::thread::sleep(Duration::from_millis(1500));
    let during = rss_kb(pid);
    assert!(
        during < before + 2048,
        "RSS grew from {before} to {during} kB"
    );
    // Everything else is still served.
    assert_eq!(m.get("/metrics").status, 200);
    drop(stalled);
}

#[test]
fn shim_failures_are_502_504_or_a_closed_stream() {
    let mut sim = Sim::start(&[
        "--sandboxes",
        "3",
        "--fault",
        "1=refuse",
        "--fault",
        "2=hang",
    ]);
    let m = Monitor::start(&sim.roots_arg(), &["--shim-timeout", "1s"]);
    let r = m.get(&format!("/debug/vars?sandbox={}", sim.ids[1]));
    assert_eq!(r.status, 502);
    assert!(r.text().contains("not reachable"), "{}", r.text());
    let r = m.get(&format!("/debug/pprof/heap?sandbox={}", sim.ids[2]));
    assert_eq!(r.status, 504);
    assert_eq!(
        m.get(&format!("/agent-url?sandbox={}", sim.ids[2])).status,
        504
    );

    // The shim dies mid-stream: the client's connection is closed (the
    // chunked body never completes), and the monitor carries on.
    let id = sim.ids[0].clone();
    let mut c = Client::connect(m.addr);
    c.send(
        format!("GET /debug/pprof/trace?seconds=3&sandbox={id} HTTP/1.1\r\nHost: t\r\n\r\n")
            .as_bytes(),
    );
    let mut first = [0u8; 256];
    let n = c.sock.read(&mut first).unwrap();
    assert!(n > 0);
    c.pending.extend_from_slice(&first[..n]);
    std::thread::sleep(Duration::from_millis(300));
    sim.cmd(&format!("remove {id}"));
    assert!(
        c.response().is_none(),
        "a broken stream must not look complete"
    );
    assert_eq!(m.get("/healthz").status, 200);
}

/// The time allowed for a profile is its duration plus the shim timeout,
/// for every profile that takes `seconds` (not only `profile` and `trace`),
/// and a trace that goes quiet for longer than the shim timeout during its
/// duration is not cut off. A shim that sends nothing still gets 504.
#[test]
fn profile_durations_extend_the_shim_timeout() {
    // Trace chunks 1.5 s apart, against a 1 s shim timeout.
    let sim = Sim::start(&[
        "--sandboxes",
        "4",
        "--trace-interval-ms",
        "1500",
        "--fault",
        "1=hang",
    ]);
    let m = Monitor::start(&sim.roots_arg(), &["--shim-timeout", "1s"]);
    let (id, hung) = (&sim.ids[0], &sim.ids[1]);

    let r = m.get(&format!("/debug/pprof/profile?seconds=2&sandbox={id}"));
    assert_eq!(r.status, 200, "{}", r.text());
    // A delta heap profile: Go sleeps `seconds` before answering, longer
    // than the shim timeout: not cut off.
    let r = m.get(&format!("/debug/pprof/heap?seconds=2&sandbox={id}"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.header("content-disposition"),
        Some("attachment; filename=\"heap-delta\"")
    );
    // Go refuses `seconds` with a text format; the answer is passed on.
    let r = m.get(&format!("/debug/pprof/heap?seconds=1&debug=1&sandbox={id}"));
    assert_eq!(r.status, 400);

    // Three chunks over 3 s, 1.5 s apart: all arrive.
    let r = m.get(&format!("/debug/pprof/trace?seconds=3&sandbox={id}"));
    assert_eq!(r.status, 200);
    assert_eq!(
        r.body.len(),
        2 * 32 * 1024,
        "both chunks of the sparse trace"
    );

    // No answer at all: 504 (after the shim timeout: state::proxy's
    // Deadlines, unit-tested).
    let r = m.get(&format!("/debug/pprof/heap?sandbox={hung}"));
    assert_eq!(r.status, 504);

    // `seconds=0` (or not an integer) means Go's default of 30 s for a CPU
    // profile: the answer is not cut off at the 1 s shim timeout. (Last,
    // and one sandbox each: the abandoned profiles run on in their shims
    // and hold their sandbox's one profiling slot.)
    for (q, id) in [("seconds=0", &sim.ids[2]), ("seconds=1.5", &sim.ids[3])] {
        let mut c = Client::connect(m.addr);
        c.send(
            format!("GET /debug/pprof/profile?{q}&sandbox={id} HTTP/1.1\r\nHost: t\r\n\r\n")
                .as_bytes(),
        );
        c.sock
            .set_read_timeout(Some(Duration::from_millis(2500)))
            .unwrap();
        assert!(
            c.response().is_none(),
            "{q}: answered before the profile ended"
        );
    }
}

/// Profiles and traces: at most `--max-profile-duration` (400 beyond it,
/// not silently shortened), and one at a time per sandbox (429 with
/// Retry-After for a second one); other sandboxes and untimed endpoints
/// are served meanwhile.
#[test]
fn one_profile_per_sandbox_and_durations_capped() {
    let sim = Sim::start(&["--sandboxes", "2"]);
    let m = Monitor::start(&sim.roots_arg(), &["--max-profile-duration", "5s"]);
    let (a, b) = (sim.ids[0].clone(), sim.ids[1].clone());
    let r = m.get(&format!("/debug/pprof/profile?seconds=6&sandbox={a}"));
    assert_eq!(r.status, 400);
    assert!(r.text().contains("--max-profile-duration"), "{}", r.text());
    let r = m.get(&format!("/debug/pprof/profile?sandbox={a}"));
    assert_eq!(r.status, 400, "Go's default 30 s is over the 5 s cap");

    let addr = m.addr;
    let first = {
        let a = a.clone();
        std::thread::spawn(move || {
            common::node::http(
                addr,
                "GET",
                &format!("/debug/pprof/profile?seconds=5&sandbox={a}"),
                &[],
            )
        })
    };
    // The monitor says when the first profile is running.
    let running = || {
        m.get("/metrics")
            .text()
            .lines()
            .find_map(|l| l.strip_prefix("kata_monitor_debug_profiles_running "))
            .map(str::to_string)
    };
    let until = std::time::Instant::now() + Duration::from_secs(4);
    while running().as_deref() != Some("1") {
        assert!(
            std::time::Instant::now() < until,
            "the profile never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    for p in [
        "/debug/pprof/profile?seconds=1",
        "/debug/pprof/trace?seconds=1",
    ] {
        let r = m.get(&format!("{p}&sandbox={a}"));
        assert_eq!(r.status, 429, "{p}");
        assert!(r.header("retry-after").is_some());
    }
    assert_eq!(m.get(&format!("/debug/vars?sandbox={a}")).status, 200);
    assert_eq!(
        m.get(&format!("/debug/pprof/profile?seconds=1&sandbox={b}"))
            .status,
        200
    );
    assert_eq!(first.join().unwrap().status, 200);
    assert_eq!(running().as_deref(), Some("0"));
    // The slot is free again.
    assert_eq!(
        m.get(&format!("/debug/pprof/trace?seconds=1&sandbox={a}"))
            .status,
        200
    );
}

/// `/debug/*` and `/agent-url` by default: served on a loopback listener,
/// 403 (saying how to enable them) on one reachable from other hosts;
/// `--enable-debug-proxy` decides either way when given. (Over TLS with
/// client certificates: tests/tls.rs.)
#[test]
fn debug_endpoints_default_by_listener_address() {
    let sim = Sim::start(&["--sandboxes", "1"]);
    let id = &sim.ids[0];
    let status = |m: &Monitor, p: &str| {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], m.addr.port()));
        let r = common::node::http(addr, "GET", &format!("{p}?sandbox={id}"), &[]);
        (r.status, r.text())
    };
    for (listen, flag, served) in [
        ("127.0.0.1:0", None, true),
        ("127.0.0.1:0", Some("-enable-debug-proxy=false"), false),
        ("0.0.0.0:0", None, false),
        ("0.0.0.0:0", Some("--enable-debug-proxy=true"), true),
    ] {
        let mut args = vec!["--listen-address", listen];
        args.extend(flag);
        let m = Monitor::start(&sim.roots_arg(), &args);
        for p in ["/debug/vars", "/debug/pprof/cmdline", "/agent-url"] {
            let (st, text) = status(&m, p);
            if served {
                assert_eq!(st, 200, "{listen} {flag:?} {p}: {text}");
            } else {
                assert_eq!(st, 403, "{listen} {flag:?} {p}");
                assert!(text.contains("--enable-debug-proxy=true"), "{text}");
            }
        }
        assert_eq!(status(&m, "/metrics").0, 200);
        assert_eq!(status(&m, "/").1.contains("/debug/"), served, "index page");
        if !served && flag.is_none() {
            assert!(
                m.log_text()
                    .contains("debug endpoints (/debug/*, /agent-url) answer 403")
            );
        }
    }
}
