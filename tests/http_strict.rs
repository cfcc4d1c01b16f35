//! A hostile client against the real binary: a `Content-Length` that is not
//! digits only (`+5`), differing `Content-Length`s, and dot segments in the
//! path (raw or percent-encoded) are answered 400, and nothing reaches the
//! shim: the fake shim counts the connections it gets.

mod common;

use common::node::{Client, Monitor, tmpdir};
use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// A shim that answers `200 ok` and counts connections.
fn counting_shim(dir: &std::path::Path) -> Arc<AtomicUsize> {
    std::fs::create_dir_all(dir).unwrap();
    let l = std::os::unix::net::UnixListener::bind(dir.join("shim-monitor.sock")).unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            c.fetch_add(1, Ordering::SeqCst);
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let mut req = [0u8; 4096];
            let _ = s.read(&mut req);
            let _ = s.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n",
            );
        }
    });
    count
}

fn status(m: &Monitor, raw: &str) -> u16 {
    let mut c = Client::connect(m.addr);
    c.send(raw.as_bytes());
    c.response().map_or(0, |r| r.status)
}

#[test]
fn smuggling_lengths_and_dot_segments_get_400_and_reach_no_shim() {
    let root = tmpdir("strict");
    let shim = counting_shim(&root.join("sb1"));
    let m = Monitor::start(
        &root.display().to_string(),
        &["--runtime-endpoint", "/nonexistent/cri.sock"],
    );
    m.wait_for("/sandboxes", 10, |r| r.text().contains("sb1"));
    for target in [
        "/debug/pprof/../../x?sandbox=sb1",
        "/debug/pprof/%2e%2e/%2e%2e/x?sandbox=sb1",
        "/debug/pprof/..%2f..%2fx?sandbox=sb1",
        "/debug/./vars?sandbox=sb1",
        "/debug/vars/..?sandbox=sb1",
    ] {
        let raw = format!("GET {target} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        assert_eq!(status(&m, &raw), 400, "{target}");
    }
    for headers in [
        "Content-Length: +5\r\n",
        "Content-Length: 5 5\r\n",
        "Content-Length: 5\r\nContent-Length: 6\r\n",
        "Content-Length: 5, 5\r\n",
    ] {
        let raw = format!(
            "GET /debug/vars?sandbox=sb1 HTTP/1.1\r\nHost: t\r\n{headers}Connection: close\r\n\r\nhello"
        );
        assert_eq!(status(&m, &raw), 400, "{headers:?}");
    }
    assert_eq!(
        shim.load(Ordering::SeqCst),
        0,
        "a refused request reached the shim"
    );
    // The same requests, well formed, are forwarded.
    let raw = "GET /debug/vars?sandbox=sb1 HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello";
    assert_eq!(status(&m, raw), 200);
    assert_eq!(shim.load(Ordering::SeqCst), 1);
    let _ = std::fs::remove_dir_all(&root);
}
