//! The real `kata-monitor` binary against simulated nodes (`kata-sim`):
//! discovery, faults, endpoints, HTTP limits, flags and signals. Every
//! `/metrics` body is checked by the independent strict parser.

mod common;

use common::expo_check::{Exposition, check_exposition};
use common::node::{Client, FakeShim, Monitor, Resp, Sim, http, tmpdir};
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Strict check of a `/metrics` answer.
fn metrics(r: &Resp) -> Exposition {
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let body = match r.header("content-encoding") {
        Some("gzip") => {
            let mut plain = Vec::new();
            flate2::read::GzDecoder::new(&r.body[..])
                .read_to_end(&mut plain)
                .expect("valid gzip");
            plain
        }
        Some("zstd") => {
            let zstd =
                common::decode::decoder("zstd").expect("zstd answers only to tests that have it");
            common::decode::decode_with(&zstd, &r.body)
        }
        None => r.body.clone(),
        Some(other) => panic!("unexpected content-encoding {other}"),
    };
    check_exposition(&body).unwrap_or_else(|e| panic!("invalid /metrics: {e}"))
}

fn up(e: &Exposition) -> Vec<(String, String)> {
    e.family("kata_monitor_sandbox_up")
        .map(|f| {
            f.samples
                .iter()
                .map(|s| (s.label("sandbox_id").unwrap().to_string(), s.value.clone()))
                .collect()
        })
        .unwrap_or_default()
}

fn sandbox_ids(e: &Exposition) -> BTreeSet<String> {
    e.samples()
        .filter(|s| !s.name.starts_with("kata_monitor_"))
        .filter_map(|s| s.label("sandbox_id").map(String::from))
        .collect()
}

fn listed(m: &Monitor) -> Vec<String> {
    m.get("/sandboxes")
        .text()
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn serves_merged_metrics_of_all_sandboxes() {
    let sim = Sim::start(&["--sandboxes", "4", "--bodies", "default,small,large,rs"]);
    let m = Monitor::start(&sim.roots_arg(), &[]);
    let e = metrics(&m.get("/metrics"));
    let want: BTreeSet<String> = sim.ids.iter().cloned().collect();
    assert_eq!(sandbox_ids(&e), want);
    assert!(up(&e).iter().all(|(_, v)| v == "1"));
    // Own metrics first, sandbox families after, each family once.
    assert_eq!(e.families[0].name, "kata_monitor_build_info");
    let info = &e.families[0].samples[0];
    let keys: Vec<&str> = info.labels.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["version", "commit", "features"]);
    // The optional parts built in, as `version` prints them.
    let features: Vec<&str> = [
        ("tls", cfg!(feature = "tls")),
        ("zstd", cfg!(feature = "zstd")),
    ]
    .into_iter()
    .filter_map(|(f, on)| on.then_some(f))
    .collect();
    let features = features.join(",");
    assert_eq!(info.label("features"), Some(features.as_str()));
    assert_eq!(info.label("version"), Some(env!("CARGO_PKG_VERSION")));
    assert_eq!(info.value, "1");
    let running = e.family("kata_monitor_running_shim_count").unwrap();
    assert_eq!(running.samples[0].value, "4");
    assert!(e.family("kata_shim_go_goroutines").is_some());
    // 1168 + 1217 + 1590 + 823 sandbox series (README of the fixtures).
    let n = e
        .samples()
        .filter(|s| !s.name.starts_with("kata_monitor_"))
        .count();
    assert_eq!(n, 1168 + 1217 + 1590 + 823);
    // Counters move between scrapes; the answer is a new round each time.
    let e2 = metrics(&m.get("/metrics"));
    let count = |e: &Exposition| {
        e.family("kata_monitor_scrape_count").unwrap().samples[0]
            .value
            .clone()
    };
    assert_eq!((count(&e), count(&e2)), ("1".to_string(), "2".to_string()));
}

#[test]
fn discovery_follows_sandboxes_and_late_roots() {
    let mut sim = Sim::start(&["--sandboxes", "1"]);
    let late = tmpdir("late");
    let late_root = late.join("kata");
    let dirs = format!("{},{}", sim.roots_arg(), late_root.display());
    let m = Monitor::start(&dirs, &[]);
    assert_eq!(listed(&m), sim.ids);
    // Added and removed sandboxes.
    let id = sim.add("small");
    m.wait_for("/sandboxes", 5, |r| r.text().contains(&id));
    sim.cmd(&format!("remove {}", sim.ids[0]));
    m.wait_for("/sandboxes", 5, |r| !r.text().contains(&sim.ids[0]));
    let e = metrics(&m.get("/metrics"));
    assert_eq!(sandbox_ids(&e), BTreeSet::from([id.clone()]));
    // A root created after start is picked up (polled every 2 s).
    let _shim = FakeShim::start(&late_root.join("late-sandbox"), b"# TYPE x gauge\nx 1\n");
    m.wait_for("/sandboxes", 10, |r| r.text().contains("late-sandbox"));
    let e = metrics(&m.get("/metrics"));
    assert!(sandbox_ids(&e).contains("late-sandbox"));
    // Invalid names are not sandboxes.
    std::fs::create_dir_all(late_root.join("bad name")).unwrap();
    std::fs::write(late_root.join("a-file"), b"").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let l = listed(&m);
    assert!(!l.iter().any(|s| s == "bad name" || s == "a-file"), "{l:?}");
    // The root vanishing takes its sandboxes along; it is found again.
    std::fs::remove_dir_all(&late_root).unwrap();
    m.wait_for("/sandboxes", 5, |r| !r.text().contains("late-sandbox"));
    let _shim2 = FakeShim::start(&late_root.join("again"), b"y 1\n");
    m.wait_for("/sandboxes", 5, |r| r.text().contains("again"));
    let _ = std::fs::remove_dir_all(&late);
}

#[test]
fn each_fault_fails_only_its_sandbox() {
    let kinds = [
        "hang",
        "http500",
        "garbage",
        "close-mid-body",
        "slow",
        "refuse",
        "bad-http",
        "huge",
    ];
    let mut args = vec!["--sandboxes".to_string(), (kinds.len() + 2).to_string()];
    for (i, k) in kinds.iter().enumerate() {
        args.push("--fault".into());
        args.push(format!("{}={k}", i + 2));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let sim = Sim::start(&args);
    let m = Monitor::start(&sim.roots_arg(), &["-shim-timeout=1s"]);
    for round in 0..2 {
        // (When the round ends is unit-tested with a virtual clock in
        // state::scraper; here: what each fault does to its sandbox.)
        let r = m.get("/metrics");
        let e = metrics(&r);
        let up = up(&e);
        let healthy: Vec<&String> = up
            .iter()
            .filter(|(_, v)| v == "1")
            .map(|(id, _)| id)
            .collect();
        // Every broken sandbox is down, the two good ones up. (The garbage
        // body is a 200 whose lines are mostly junk: failed as
        // `invalid_body`, not served in scraps.)
        let mut want: Vec<&String> = vec![&sim.ids[0], &sim.ids[1]];
        want.sort();
        assert_eq!(healthy, want, "round {round}");
        assert_eq!(up.len(), kinds.len() + 2, "every sandbox reports up");
        let ids = sandbox_ids(&e);
        assert!(ids.contains(&sim.ids[0]) && ids.contains(&sim.ids[1]));
        let errors = e.family("kata_monitor_sandbox_scrape_errors").unwrap();
        let reason = |i: usize| {
            errors
                .samples
                .iter()
                .find(|s| s.label("sandbox_id") == Some(&sim.ids[i]))
                .and_then(|s| s.label("reason"))
                .map(String::from)
        };
        assert_eq!(reason(2).as_deref(), Some("timeout"));
        assert_eq!(reason(3).as_deref(), Some("http_status"));
        assert_eq!(reason(5).as_deref(), Some("truncated"));
        assert_eq!(reason(6).as_deref(), Some("timeout"));
        assert!(matches!(
            reason(7).as_deref(),
            Some("no_socket" | "refused")
        ));
        assert_eq!(reason(8).as_deref(), Some("malformed_response"));
        assert_eq!(reason(9).as_deref(), Some("body_too_large"));
        assert_eq!(reason(4).as_deref(), Some("invalid_body"));
        // Nothing of the junk body is served.
        assert!(!sandbox_ids(&e).contains(&sim.ids[4]));
        let failed = e.family("kata_monitor_scrape_failed_count").unwrap();
        assert_eq!(failed.samples[0].value, (round + 1).to_string());
    }
}

#[test]
fn concurrent_scrapes_join_one_round() {
    let mut sim = Sim::start(&["--sandboxes", "3", "--fault", "2=slow", "--slow-ms", "10"]);
    let m = Monitor::start(&sim.roots_arg(), &[]);
    let before = sim.scrapes(&sim.ids[0].clone());
    let addr = m.addr;
    let threads: Vec<_> = (0..6)
        .map(|i| {
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20 * i));
                let gz = if i % 2 == 0 { "gzip" } else { "identity" };
                http(addr, "GET", "/metrics", &[("Accept-Encoding", gz)])
            })
        })
        .collect();
    for (i, t) in threads.into_iter().enumerate() {
        let r = t.join().unwrap();
        let gz = (i % 2 == 0).then_some("gzip");
        assert_eq!(r.header("content-encoding"), gz);
        let e = metrics(&r);
        assert_eq!(sandbox_ids(&e).len(), 3, "request {i}");
    }
    let after = sim.scrapes(&sim.ids[0].clone());
    assert_eq!(after - before, 1, "requests during a round share its fetch");
}

#[test]
fn gzip_filter_and_passthrough() {
    let sim = Sim::start(&["--sandboxes", "3", "--bodies", "default,small,rs"]);
    let m = Monitor::start(&sim.roots_arg(), &[]);
    // gzip round trip, honouring q=0.
    let r = m.get_with("/metrics", &[("Accept-Encoding", "gzip")]);
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(r.header("vary"), Some("Accept-Encoding"));
    let mut plain = Vec::new();
    flate2::read::GzDecoder::new(&r.body[..])
        .read_to_end(&mut plain)
        .unwrap();
    let gz = check_exposition(&plain).unwrap();
    assert_eq!(sandbox_ids(&gz).len(), 3);
    assert!(plain.len() > 10 * r.body.len(), "compresses");
    let r = m.get_with("/metrics", &[("Accept-Encoding", "gzip;q=0, identity")]);
    assert_eq!(r.header("content-encoding"), None);
    metrics(&r);
    // zstd when asked first or with a higher q, gzip on a tie otherwise
    // (when built in: else gzip, as for `--zstd-level 0` below).
    if let Some(zstd) = common::decode::decoder("zstd").filter(|_| cfg!(feature = "zstd")) {
        for (accept, want) in [
            ("zstd,gzip", "zstd"),
            ("gzip;q=0.5, zstd;q=0.9", "zstd"),
            ("gzip, zstd", "gzip"),
        ] {
            let r = m.get_with("/metrics", &[("Accept-Encoding", accept)]);
            assert_eq!(r.header("content-encoding"), Some(want), "{accept}");
            assert_eq!(r.header("vary"), Some("Accept-Encoding"));
            assert_eq!(sandbox_ids(&metrics(&r)).len(), 3, "{accept}");
        }
        let r = m.get_with("/metrics", &[("Accept-Encoding", "zstd")]);
        let plain = common::decode::decode_with(&zstd, &r.body);
        assert!(plain.len() > 10 * r.body.len(), "compresses");
    }
    // Turned off by its level flag: gzip instead.
    let m0 = Monitor::start(&sim.roots_arg(), &["--zstd-level", "0"]);
    let r = m0.get_with("/metrics", &[("Accept-Encoding", "zstd,gzip")]);
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    drop(m0);
    // filter_family: prefixes, each family once, own metrics left out.
    let r = m.get("/metrics?filter_family=kata_guest_load,kata_guest_lo,kata_shim_go_gor");
    let e = metrics(&r);
    let names: Vec<&str> = e.families.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["kata_guest_load", "kata_shim_go_goroutines"]);
    // sandbox= streams the raw body through.
    let rs = sim.ids[2].clone();
    let r = m.get(&format!("/metrics?sandbox={rs}"));
    assert_eq!(r.status, 200);
    // The sim's counters move between scrapes: same lines, same families.
    let fixture = include_bytes!("fixtures/rs-dragonball.prom");
    let shape = |b: &[u8]| -> Vec<String> {
        String::from_utf8_lossy(b)
            .lines()
            .map(|l| l.rsplit_once(' ').map_or(l, |(k, _)| k).to_string())
            .collect()
    };
    assert!(
        shape(&r.body) == shape(fixture),
        "passthrough is the raw rs body"
    );
    assert_eq!(m.get("/metrics?sandbox=").status, 400);
    // A value that does not decode is an error, not "no sandbox given"
    // (which would answer the whole node's metrics).
    for q in ["%", "%ff", "%zz"] {
        let r = m.get(&format!("/metrics?sandbox={q}"));
        assert_eq!(r.status, 400, "{q}");
        assert!(r.text().contains("invalid sandbox"), "{q}");
    }
    assert_eq!(m.get("/metrics?sandbox=nope").status, 404);
    assert_eq!(m.get("/metrics?sandbox=..%2F..%2Fetc").status, 404);
    // agent-url with the newline upstream adds.
    let r = m.get(&format!("/agent-url?sandbox={rs}"));
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "vsock://5:1024\n");
    assert_eq!(m.get("/agent-url").status, 400);
}

#[test]
fn pages_methods_and_limits() {
    let sim = Sim::start(&["--sandboxes", "2"]);
    let m = Monitor::start(
        &sim.roots_arg(),
        &["--max-connections", "4", "--http-header-timeout", "1s"],
    );
    // Index and sandboxes, text and HTML.
    assert!(m.get("/").text().starts_with("Available HTTP endpoints:"));
    let html = m.get_with("/", &[("Accept", "text/html")]);
    assert!(html.text().contains("<a href='/metrics'>"));
    let mut ids = sim.ids.clone();
    ids.sort();
    // Upstream's HTML list, byte for byte (tests/differential.rs compares
    // it with the Go monitor's).
    let s = m.get_with("/sandboxes", &[("Accept", "text/html,*/*")]);
    let items: String = ids
        .iter()
        .map(|id| {
            format!(
                "<li>{id}: <a href='/debug/pprof/?sandbox={id}'>pprof</a>, \
                 <a href='/metrics?sandbox={id}'>metrics</a>, \
                 <a href='/agent-url?sandbox={id}'>agent-url</a></li>\n"
            )
        })
        .collect();
    assert_eq!(s.header("content-type"), Some("text/html"));
    assert_eq!(
        s.text(),
        format!("<h1>Sandbox list</h1>\n<ul>\n{items}</ul>\n")
    );
    assert_eq!(listed(&m), ids);
    // HEAD, 405, 404.
    let h = http(m.addr, "HEAD", "/metrics", &[]);
    assert_eq!(h.status, 200);
    assert!(h.header("content-length").unwrap().parse::<u64>().unwrap() > 100_000);
    assert_eq!(http(m.addr, "POST", "/metrics", &[]).status, 405);
    assert_eq!(
        http(m.addr, "DELETE", "/", &[]).header("allow"),
        Some("GET, HEAD")
    );
    assert_eq!(m.get("/nope").status, 404);
    // A malformed head gets exactly one answer, which closes the connection.
    for bad in [
        &b"BLAH\r\n\r\n"[..],
        b"GET /%zz HTTP/1.1\r\nHost: a\r\n\r\n",
    ] {
        let mut s = TcpStream::connect(m.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(bad).unwrap();
        let mut all = Vec::new();
        s.read_to_end(&mut all).unwrap();
        let text = String::from_utf8_lossy(&all);
        assert_eq!(text.matches("HTTP/1.1 ").count(), 1, "{text}");
        assert!(text.starts_with("HTTP/1.1 400 "), "{text}");
        assert!(
            text.to_ascii_lowercase().contains("connection: close"),
            "{text}"
        );
    }
    // 431 for an oversized head.
    let big = "x".repeat(9000);
    assert_eq!(m.get_with("/", &[("X-Big", &big)]).status, 431);
    // Keep-alive and pipelining on one connection.
    let mut c = Client::connect(m.addr);
    c.send(b"GET /sandboxes HTTP/1.1\r\nHost: a\r\n\r\nGET /healthz HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(c.response().unwrap().text().lines().count(), 2);
    assert!(c.response().unwrap().text().starts_with("ok"));
    c.send(b"GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n");
    metrics(&c.response().unwrap());
    c.send(b"GET /metrics HTTP/1.1\r\nHost: a\r\nAccept-Encoding: gzip\r\n\r\nGET /healthz HTTP/1.1\r\nHost: a\r\n\r\n");
    let r = c.response().unwrap();
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(sandbox_ids(&metrics(&r)).len(), 2);
    assert!(c.response().unwrap().text().starts_with("ok"));
    // A slowloris client is dropped after the header timeout.
    let mut slow = TcpStream::connect(m.addr).unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\n").unwrap();
    for _ in 0..30 {
        if slow.write_all(b"X: y\r\n").is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    slow.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 16];
    let n = slow.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "slowloris connection must be closed");
    // The connection cap. Idle connections do not lock a scraper out: the
    // one idle the longest is closed to admit a new one.
    let mut idle: Vec<Client> = (0..4)
        .map(|_| {
            let mut c = Client::connect(m.addr);
            c.send(b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n");
            assert_eq!(c.response().unwrap().status, 200);
            c
        })
        .collect();
    // (Idle means silent for a second: a client between two requests, or
    // between its connect and its request, is not closed sooner.)
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(m.get("/").status, 200);
    assert!(
        idle[0].response().is_none(),
        "the oldest idle one was closed"
    );
    let mut idle: Vec<TcpStream> = idle.into_iter().map(|c| c.sock).collect();
    // Connections each busy with a request (a head in progress) are not
    // closed: past the cap, a newcomer gets the pre-rendered 503.
    for c in idle.iter_mut().skip(1) {
        c.write_all(b"GET / HTTP/1.1\r\n").unwrap();
    }
    let busy = TcpStream::connect(m.addr).unwrap();
    (&busy).write_all(b"GET / HTTP/1.1\r\n").unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(m.get("/").status, 503);
    drop(idle);
    drop(busy);
    m.wait_for("/healthz", 5, |r| r.status == 200);
}

#[test]
fn go_style_flags_and_bad_flags() {
    let sim = Sim::start(&["--sandboxes", "1"]);
    let dirs = format!("-sandbox-dirs={}", sim.roots_arg());
    let m = Monitor::start_args(&[
        "-listen-address=127.0.0.1:0",
        &dirs,
        "-log-level",
        "debug",
        "-runtime-endpoint=unix:///run/nothing/here.sock",
        "-shim-timeout",
        "2s",
    ]);
    metrics(&m.get("/metrics"));
    let out = std::process::Command::new(common::node::MONITOR)
        .args(["-shim-timeout=forever"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("--shim-timeout"));
    let out = std::process::Command::new(common::node::MONITOR)
        .arg("version")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("Version:"));
    // Port in use: clear error, exit 1.
    let taken = m.addr.to_string();
    let out = std::process::Command::new(common::node::MONITOR)
        .args([
            "--listen-address",
            &taken,
            "--sandbox-dirs",
            &sim.roots_arg(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.matches("cannot listen on").count(), 1, "{err}");
}

#[test]
fn signals_stop_or_are_ignored() {
    let sim = Sim::start(&["--sandboxes", "2", "--fault", "1=hang"]);
    // A round that would hang for an hour: shutdown must not wait for it.
    let mut m = Monitor::start(&sim.roots_arg(), &["--shim-timeout", "1h"]);
    // SIGHUP, SIGUSR1 and SIGUSR2 are logged and ignored, not fatal.
    for sig in [libc::SIGHUP, libc::SIGUSR1, libc::SIGUSR2] {
        // SAFETY: sending a signal to our own child.
        unsafe { libc::kill(m.child.id() as i32, sig) };
    }
    m.wait_for("/healthz", 5, |r| r.status == 200);
    m.wait_log(5, |l| l.matches("signal ignored").count() == 3);
    let addr = m.addr;
    std::thread::spawn(move || http(addr, "GET", "/metrics", &[]));
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: as above.
    unsafe { libc::kill(m.child.id() as i32, libc::SIGTERM) };
    let until = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = m.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < until,
            "no exit: shutdown waited for the round"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(status.code(), Some(0));
}

#[test]
fn scrape_timeout_header_bounds_the_round() {
    let sim = Sim::start(&["--sandboxes", "2", "--fault", "1=hang"]);
    // With an hour's shim timeout, only the header can end the round (at
    // 0.9 s: round_budget's unit test) before the client gives up.
    let m = Monitor::start(&sim.roots_arg(), &["--shim-timeout", "1h"]);
    let r = m.get_with("/metrics", &[("X-Prometheus-Scrape-Timeout-Seconds", "1")]);
    let e = metrics(&r);
    assert_eq!(up(&e).iter().filter(|(_, v)| v == "1").count(), 1);
    // Absurd values from a client are bounded, never fatal (the shim
    // timeout ends this round: 1e300 s is not believed).
    let m = Monitor::start(&sim.roots_arg(), &["--shim-timeout", "1s"]);
    for v in ["1e300", "-3", "NaN", "abc", "0"] {
        let r = m.get_with("/healthz", &[("X-Prometheus-Scrape-Timeout-Seconds", v)]);
        assert_eq!(r.status, 200);
    }
    let r = m.get_with(
        "/metrics?filter_family=x",
        &[("X-Prometheus-Scrape-Timeout-Seconds", "1e300")],
    );
    // No family starts with "x": a valid, empty exposition.
    assert_eq!(metrics(&r).families.len(), 0);
}

#[test]
fn stale_keep_alive_connections_are_retried() {
    // The fake shim answers with Content-Length and no `Connection: close`,
    // then closes: the monitor parks the connection, finds it stale on the
    // next round and must retry on a fresh one, transparently.
    let root = tmpdir("ka");
    let _shim = FakeShim::start(&root.join("sb1"), b"# TYPE x gauge\nx 1\n");
    let m = Monitor::start(&root.display().to_string(), &[]);
    for _ in 0..4 {
        let e = metrics(&m.get("/metrics"));
        assert_eq!(up(&e), vec![("sb1".to_string(), "1".to_string())]);
        std::thread::sleep(Duration::from_millis(30));
    }
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn keep_alive_connections_follow_sandbox_lifecycle() {
    let mut sim = Sim::start(&["--sandboxes", "3"]);
    let m = Monitor::start(&sim.roots_arg(), &[]);
    metrics(&m.get("/metrics"));
    let gone = sim.ids[0].clone();
    sim.cmd(&format!("remove {gone}"));
    m.wait_for("/sandboxes", 5, |r| !r.text().contains(&gone));
    let e = metrics(&m.get("/metrics"));
    assert_eq!(up(&e).len(), 2);
    assert!(up(&e).iter().all(|(_, v)| v == "1"));
    // Fault injected after connections were kept: the next round sees it.
    let id = sim.ids[1].clone();
    sim.fault(&id, "http500");
    let e = metrics(&m.get("/metrics"));
    assert!(up(&e).contains(&(id.clone(), "0".to_string())));
    sim.fault(&id, "ok");
    let e = metrics(&m.get("/metrics"));
    assert!(up(&e).iter().all(|(_, v)| v == "1"));
}

/// Connections the monitor has finished with must not count against the
/// cap, even before the end of the event batch that closed them (a client
/// that reads its answer and reconnects at once can be accepted in the
/// same batch).
#[test]
fn finished_connections_free_their_slot_at_once() {
    let sim = Sim::start(&["--sandboxes", "1"]);
    let m = Monitor::start(&sim.roots_arg(), &["--max-connections", "1"]);
    for i in 0..200 {
        assert_eq!(m.get("/healthz").status, 200, "request {i}");
    }
}

#[test]
fn half_closed_clients_get_their_answer() {
    // A client may shut down its sending side right after the request
    // (RFC 9112 §9.6). The slow sandbox keeps the round open, so the FIN
    // arrives while the request waits.
    let sim = Sim::start(&["--sandboxes", "2", "--fault", "1=slow", "--slow-ms", "20"]);
    let m = Monitor::start(&sim.roots_arg(), &[]);
    let id = sim.ids[0].clone();
    for target in ["/metrics".to_string(), format!("/metrics?sandbox={id}")] {
        for _ in 0..4 {
            let mut s = TcpStream::connect(m.addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            s.write_all(format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
                .unwrap();
            s.shutdown(std::net::Shutdown::Write).unwrap();
            let mut c = Client {
                sock: s,
                pending: Vec::new(),
            };
            let r = c
                .response()
                .unwrap_or_else(|| panic!("{target}: no answer"));
            assert_eq!(r.status, 200, "{target}");
            check_exposition(&r.body).unwrap_or_else(|e| panic!("{target}: {e}"));
            // Then the connection closes: with `Connection: close` when the
            // FIN came first, otherwise after a kept-alive answer, when
            // reading the next request hits EOF.
            let mut rest = Vec::new();
            c.sock.read_to_end(&mut rest).unwrap();
            assert!(rest.is_empty() && c.pending.is_empty());
        }
    }
    // A client that closes for good while waiting frees its slot.
    for _ in 0..5 {
        let mut s = TcpStream::connect(m.addr).unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        drop(s);
    }
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let h = m.get("/healthz").text();
        if h.contains("\nconnections 1\n") {
            break;
        }
        assert!(Instant::now() < until, "slots not freed: {h}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A client socket with a tiny receive buffer, so an unread answer stalls
/// the monitor's writes instead of landing in the kernel's buffers.
fn slow_client(addr: std::net::SocketAddr) -> TcpStream {
    use std::os::fd::FromRawFd;
    let std::net::SocketAddr::V4(a) = addr else {
        panic!("IPv4 expected")
    };
    // SAFETY: plain socket calls on a fresh fd, owned by the TcpStream after.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        assert!(fd >= 0);
        let size: libc::c_int = 4096;
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            &size as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
        let sin = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: a.port().to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(*a.ip()).to_be(),
            },
            sin_zero: [0; 8],
        };
        let r = libc::connect(
            fd,
            &sin as *const _ as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        );
        assert_eq!(r, 0, "connect");
        TcpStream::from_raw_fd(fd)
    }
}

#[test]
fn slow_clients_cannot_pin_a_snapshot_each() {
    // ~6.6 MB answers: more than the kernel buffers (4 MB send buffer at
    // most) can take off the monitor's hands.
    let sim = Sim::start(&["--sandboxes", "30"]);
    let m = Monitor::start(&sim.roots_arg(), &[]);
    let reused = |m: &Monitor| {
        metrics(&m.get("/metrics"))
            .family("kata_monitor_scrape_reused_rounds_total")
            .unwrap()
            .samples[0]
            .value_f64()
    };
    // Eight clients, each in its own round, none reading its answer.
    let mut slow = Vec::new();
    for _ in 0..8 {
        let mut s = slow_client(m.addr);
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        slow.push(s);
        std::thread::sleep(Duration::from_millis(150));
    }
    // At most MAX_SNAPSHOTS (4) alive: the last four, and this scrape, were
    // answered from the newest round.
    let n = reused(&m);
    assert!(n >= 5.0, "reused {n}");
    // Every slow client still gets a complete, valid answer.
    for s in slow {
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut c = Client {
            sock: s,
            pending: Vec::new(),
        };
        let e = metrics(&c.response().expect("answer"));
        assert_eq!(sandbox_ids(&e).len(), 30);
    }
    // With them gone, scrapes get fresh rounds again.
    std::thread::sleep(Duration::from_millis(100));
    let before = reused(&m);
    let after = reused(&m);
    assert_eq!(before, after, "fresh rounds once the slow clients are done");
}

#[test]
fn first_sandbox_dir_wins_for_an_id_in_both() {
    // The same id under both roots (a runtime switch mid-flight): the first
    // root's shim is served; when it goes, the second one takes over.
    let (a, b) = (tmpdir("ra"), tmpdir("rb"));
    let shim_a = FakeShim::start(&a.join("dup"), b"# TYPE from_a gauge\nfrom_a 1\n");
    let _shim_b = FakeShim::start(&b.join("dup"), b"# TYPE from_b gauge\nfrom_b 1\n");
    let m = Monitor::start(&format!("{},{}", a.display(), b.display()), &[]);
    let e = metrics(&m.get("/metrics"));
    assert!(e.family("from_a").is_some() && e.family("from_b").is_none());
    assert_eq!(listed(&m), ["dup"]);
    drop(shim_a);
    std::fs::remove_dir_all(a.join("dup")).unwrap();
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let e = metrics(&m.get("/metrics"));
        if e.family("from_b").is_some() {
            assert!(e.family("from_a").is_none());
            break;
        }
        assert!(Instant::now() < until, "second root not used");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(listed(&m), ["dup"]);
}

#[test]
fn inotify_queue_overflow_triggers_a_rescan() {
    // Stop the monitor, create more sandbox dirs than the inotify queue
    // holds (fs.inotify.max_queued_events, 16384 by default), resume it: the
    // overflow event must make it rescan (long before the 30 s resync).
    let max: usize = std::fs::read_to_string("/proc/sys/fs/inotify/max_queued_events")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(16384);
    if max > 100_000 {
        // Not a peer, a kernel setting: say so visibly, never fail for it.
        common::peer::visible(&format!(
            "SKIPPED inotify_queue_overflow_triggers_a_rescan: fs.inotify.max_queued_events \
             {max} is too large to overflow cheaply"
        ));
        return;
    }
    let root = tmpdir("ovf");
    let m = Monitor::start(&root.display().to_string(), &[]);
    let pid = m.child.id() as libc::pid_t;
    // SAFETY: signals to our own child process.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    let n = max + 500;
    for i in 0..n {
        std::fs::create_dir(root.join(format!("sb{i:06}"))).unwrap();
    }
    unsafe { libc::kill(pid, libc::SIGCONT) };
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let h = m.get("/healthz").text();
        if h.contains(&format!("\nsandboxes {n}\n")) {
            break;
        }
        assert!(Instant::now() < until, "not all sandboxes found: {h}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(m.log_text().contains("inotify queue overflow"));
    let _ = std::fs::remove_dir_all(&root);
}

/// Like Go programs (upstream among them), the monitor raises its soft
/// limit on open files to the hard one: one shim connection per sandbox.
#[test]
fn open_files_soft_limit_is_raised_to_the_hard_one() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
    if lim.rlim_max <= 256 {
        eprintln!("skip: the hard limit on open files is {}", lim.rlim_max);
        return;
    }
    let sim = Sim::start(&["--sandboxes", "1"]);
    let roots = sim.roots_arg();
    let m = Monitor::start_bin(
        "sh",
        &[
            "-c",
            "ulimit -Sn 256 && exec \"$0\" \"$@\"",
            common::node::MONITOR,
            "--listen-address",
            "127.0.0.1:0",
            "--sandbox-dirs",
            &roots,
        ],
    );
    let e = metrics(&m.get("/metrics"));
    let max = &e.family("kata_monitor_process_max_fds").unwrap().samples[0];
    assert_eq!(max.value, lim.rlim_max.to_string());
}
