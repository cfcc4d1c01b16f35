//! HTTPS on the listener: a real Prometheus (2.42, tests/peers/fetch-prometheus.sh)
//! scraping with a client certificate, clients refused without one or with
//! one from another CA, the server certificate rotated in place (kubelet's
//! `..data` symlink swap) without a restart, plain HTTP and stalled
//! handshakes closed with a log line, gzip streaming and the connection
//! cap over TLS, and the debug endpoints' defaults on a non-loopback
//! listener. Certificates are made by rcgen in the test (tests/common/pki.rs).

#![cfg(feature = "tls")]

mod common;

use common::node::{Client, Monitor, Sim, tmpdir};
use common::pki::{Ca, Https, Leaf, client_config, https_get};
use common::prom::Prom;
use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Server certificate files (and client CA) for a monitor.
struct Files {
    _dir: PathBuf,
    cert: String,
    key: String,
    client_ca: String,
}

fn files(server: &Leaf, client_ca: Option<&Ca>) -> Files {
    let dir = tmpdir("tls");
    let (cert, key) = server.write(&dir);
    let ca = dir.join("client-ca.pem");
    if let Some(c) = client_ca {
        std::fs::write(&ca, c.pem()).unwrap();
    }
    Files {
        cert: cert.display().to_string(),
        key: key.display().to_string(),
        client_ca: ca.display().to_string(),
        _dir: dir,
    }
}

impl Files {
    fn args(&self, client_auth: bool) -> Vec<&str> {
        let mut a = vec!["--tls-cert-file", &self.cert, "--tls-key-file", &self.key];
        if client_auth {
            a.extend(["--tls-client-ca-file", self.client_ca.as_str()]);
        }
        a
    }
}

/// Poll `f` until it holds (or panic after `secs`, with `what`).
fn eventually(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < until, "timed out: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.parse().ok())
}

#[test]
fn client_certificates_are_required_and_checked() {
    let sim = Sim::start(&["--sandboxes", "2"]);
    let (ca, clients, other) = (Ca::new("server ca"), Ca::new("client ca"), Ca::new("other"));
    let f = files(&ca.server(), Some(&clients));
    let m = Monitor::start(&sim.roots_arg(), &f.args(true));
    let good = client_config(&ca, Some(&clients.client("prometheus")));

    let r = https_get(m.addr, good.clone(), "/metrics").unwrap();
    assert_eq!(r.status, 200);
    assert!(r.text().contains("kata_monitor_sandbox_up{"));

    let e = https_get(m.addr, client_config(&ca, None), "/metrics").unwrap_err();
    assert!(
        e.contains("CertificateRequired") || e.contains("alert"),
        "{e}"
    );
    let stranger = client_config(&ca, Some(&other.client("prometheus")));
    let e = https_get(m.addr, stranger, "/metrics").unwrap_err();
    assert!(e.contains("alert") || e.contains("Unknown"), "{e}");

    m.wait_log(5, |l| l.contains("reason=client_certificate_invalid"));
    assert!(
        m.log_text()
            .contains("msg=\"TLS failed, closing connection\"")
    );
    let text = https_get(m.addr, good.clone(), "/metrics").unwrap().text();
    let failures = |r: &str| {
        metric(
            &text,
            &format!("kata_monitor_tls_handshake_failures_total{{reason=\"{r}\"}}"),
        )
    };
    assert_eq!(failures("client_certificate_missing"), Some(1.0));
    assert_eq!(failures("client_certificate_invalid"), Some(1.0));
    assert!(
        metric(
            &text,
            "kata_monitor_tls_certificate_expiry_timestamp_seconds"
        )
        .unwrap()
            > 1.7e9
    );

    // A client that does not trust the server's CA gives up by itself.
    let e = https_get(
        m.addr,
        client_config(&other, Some(&clients.client("p"))),
        "/",
    )
    .unwrap_err();
    assert!(
        e.contains("UnknownIssuer") || e.contains("invalid peer certificate"),
        "{e}"
    );
}

/// Kubelet's secret volume: `cert.pem -> ..data/cert.pem`, `..data` a
/// symlink to a timestamped directory, swapped atomically on update.
struct SecretVolume {
    dir: PathBuf,
    version: u32,
}

impl SecretVolume {
    fn new(first: &Leaf) -> SecretVolume {
        let dir = tmpdir("secret");
        let mut v = SecretVolume { dir, version: 0 };
        v.publish(&first.cert, &first.key);
        for f in ["cert.pem", "key.pem"] {
            std::os::unix::fs::symlink(Path::new("..data").join(f), v.dir.join(f)).unwrap();
        }
        v
    }

    /// A new version, swapped in as kubelet's AtomicWriter does.
    fn publish(&mut self, cert: &str, key: &str) {
        self.version += 1;
        let name = format!("..2026_01_01_00_00_0{}", self.version);
        let d = self.dir.join(&name);
        std::fs::create_dir(&d).unwrap();
        std::fs::write(d.join("cert.pem"), cert).unwrap();
        std::fs::write(d.join("key.pem"), key).unwrap();
        let tmp = self.dir.join("..data_tmp");
        std::os::unix::fs::symlink(&name, &tmp).unwrap();
        std::fs::rename(&tmp, self.dir.join("..data")).unwrap();
    }

    fn path(&self, f: &str) -> String {
        self.dir.join(f).display().to_string()
    }
}

#[test]
fn server_certificate_rotates_without_restart() {
    let sim = Sim::start(&["--sandboxes", "1"]);
    let ca = Ca::new("ca");
    let (v1, v2) = (ca.server(), ca.server());
    let mut vol = SecretVolume::new(&v1);
    let (cert, key) = (vol.path("cert.pem"), vol.path("key.pem"));
    let m = Monitor::start(
        &sim.roots_arg(),
        &["--tls-cert-file", &cert, "--tls-key-file", &key],
    );
    let cfg = client_config(&ca, None);
    let mut kept = Https::connect(m.addr, cfg.clone());
    assert_eq!(kept.server_cert(), v1.der());
    assert_eq!(kept.request("/healthz", &[]).unwrap().status, 200);

    vol.publish(&v2.cert, &v2.key);
    eventually(15, "a new connection gets the new certificate", || {
        Https::connect(m.addr, cfg.clone()).server_cert() == v2.der()
    });
    m.wait_log(5, |l| l.contains("new connections use the new ones"));
    // The connection made before the rotation carries on.
    assert_eq!(kept.request("/healthz", &[]).unwrap().status, 200);

    // A broken rotation (a key that does not match the certificate): the
    // previous certificate stays in use, and the log and a metric say so.
    let v3 = ca.server();
    vol.publish(&v3.cert, &v2.key);
    m.wait_log(15, |l| {
        l.contains("cannot be used: still serving the previous certificate")
    });
    assert_eq!(Https::connect(m.addr, cfg.clone()).server_cert(), v2.der());
    let text = https_get(m.addr, cfg.clone(), "/metrics").unwrap().text();
    assert_eq!(
        metric(&text, "kata_monitor_tls_certificate_reloads_total"),
        Some(1.0)
    );
    assert_eq!(
        metric(&text, "kata_monitor_tls_certificate_reload_errors_total"),
        Some(1.0)
    );
    // Fixed by the next rotation.
    vol.publish(&v3.cert, &v3.key);
    eventually(15, "the fixed certificate is served", || {
        Https::connect(m.addr, cfg.clone()).server_cert() == v3.der()
    });
}

/// cp over the files (same inodes, new contents), as an operator or a
/// systemd unit's ExecReload would: seen as well, without a restart.
#[test]
fn server_certificate_rewritten_in_place() {
    let sim = Sim::start(&["--sandboxes", "1"]);
    let ca = Ca::new("ca");
    let (v1, v2) = (ca.server(), ca.server());
    let f = files(&v1, None);
    let m = Monitor::start(&sim.roots_arg(), &f.args(false));
    let cfg = client_config(&ca, None);
    assert_eq!(Https::connect(m.addr, cfg.clone()).server_cert(), v1.der());
    let inode = |p: &str| std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(p).unwrap());
    let before = inode(&f.cert);
    std::fs::write(&f.cert, &v2.cert).unwrap();
    std::fs::write(&f.key, &v2.key).unwrap();
    assert_eq!(inode(&f.cert), before, "rewritten in place");
    eventually(
        15,
        "a new connection gets the rewritten certificate",
        || Https::connect(m.addr, cfg.clone()).server_cert() == v2.der(),
    );
    // A half-written file (truncated PEM): the current one stays.
    std::fs::write(&f.cert, &v1.cert[..v1.cert.len() / 2]).unwrap();
    m.wait_log(15, |l| {
        l.contains("cannot be used: still serving the previous certificate")
    });
    assert_eq!(Https::connect(m.addr, cfg.clone()).server_cert(), v2.der());
}

#[test]
fn plain_http_and_stalled_handshakes_are_closed_with_a_log_line() {
    let sim = Sim::start(&["--sandboxes", "1"]);
    let ca = Ca::new("ca");
    let f = files(&ca.server(), None);
    let mut args = f.args(false);
    args.extend(["--http-header-timeout", "1s"]);
    let m = Monitor::start(&sim.roots_arg(), &args);

    // Plain HTTP: Go's answer, then the connection ends.
    let mut c = Client::connect(m.addr);
    c.send(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut answer = Vec::new();
    c.sock.read_to_end(&mut answer).expect("closed, not hung");
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.0 400 Bad Request\r\n"),
        "{answer}"
    );
    assert!(answer.contains("Client sent an HTTP request to an HTTPS server."));
    m.wait_log(5, |l| l.contains("plain HTTP request on the TLS port"));

    // Bytes that are no TLS at all: an alert, then closed.
    let mut c = Client::connect(m.addr);
    c.send(b"\x99\x03\x03\x00\x02ab");
    let mut answer = Vec::new();
    c.sock.read_to_end(&mut answer).expect("closed, not hung");
    assert_eq!(answer.first(), Some(&21), "an alert record");
    m.wait_log(5, |l| l.contains("reason=handshake"));

    // A client that connects and says nothing is cut by the header timeout.
    let mut c = Client::connect(m.addr);
    let mut buf = [0u8; 16];
    assert_eq!(c.sock.read(&mut buf).expect("closed, not hung"), 0);
    m.wait_log(5, |l| l.contains("TLS handshake timeout"));

    let text = https_get(m.addr, client_config(&ca, None), "/metrics")
        .unwrap()
        .text();
    for (reason, n) in [
        ("plain_http", 1.0),
        ("handshake", 1.0),
        ("handshake_timeout", 1.0),
    ] {
        assert_eq!(
            metric(
                &text,
                &format!("kata_monitor_tls_handshake_failures_total{{reason=\"{reason}\"}}")
            ),
            Some(n),
            "{reason}"
        );
    }
}

#[test]
fn gzip_streaming_and_the_connection_cap_over_tls() {
    let sim = Sim::start(&["--sandboxes", "20", "--bodies", "large"]);
    let ca = Ca::new("ca");
    let f = files(&ca.server(), None);
    let mut args = f.args(false);
    args.extend(["--max-connections", "1"]);
    let m = Monitor::start(&sim.roots_arg(), &args);
    let cfg = client_config(&ca, None);

    let mut c = Https::connect(m.addr, cfg.clone());
    let r = c
        .request("/metrics", &[("Accept-Encoding", "gzip")])
        .unwrap();
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    let mut text = String::new();
    flate2::read::GzDecoder::new(&r.body[..])
        .read_to_string(&mut text)
        .unwrap();
    let up = text
        .lines()
        .filter(|l| l.starts_with("kata_monitor_sandbox_up{") && l.ends_with(" 1"))
        .count();
    assert_eq!(up, 20);
    assert!(text.len() > 1 << 20, "{} bytes", text.len());

    // A slow reader gets every byte, through the same kept-alive session.
    std::io::Write::write_all(&mut c.s, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut slow = Vec::new();
    let mut buf = [0u8; 4096];
    let mut total_expected = None;
    while total_expected.is_none_or(|t| slow.len() < t) {
        let n = c.s.read(&mut buf).unwrap();
        assert!(n > 0);
        slow.extend_from_slice(&buf[..n]);
        if total_expected.is_none()
            && let Some(p) = slow.windows(4).position(|w| w == b"\r\n\r\n")
        {
            let head = String::from_utf8_lossy(&slow[..p]).to_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .unwrap()
                .parse()
                .unwrap();
            total_expected = Some(p + 4 + len);
        }
        if slow.len() < 256 << 10 {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    assert_eq!(slow.len(), total_expected.unwrap());

    // At the cap (1), the idle TLS client is closed to admit a new one
    // once it has idled long enough (newer ones are closed meanwhile).
    eventually(10, "a new client admitted at the cap", || {
        https_get(m.addr, cfg.clone(), "/healthz").is_ok_and(|r| r.status == 200)
    });
    m.wait_log(5, |l| l.contains("closing the longest-idle client"));
    assert!(
        c.request("/healthz", &[]).is_err(),
        "the idle one was closed"
    );
}

#[test]
fn debug_endpoints_default_on_a_non_loopback_listener() {
    let sim = Sim::start(&["--sandboxes", "1"]);
    let id = &sim.ids[0];
    let ca = Ca::new("ca");
    let clients = Ca::new("clients");
    let f = files(&ca.server(), Some(&clients));
    let any = ["--listen-address", "0.0.0.0:0"];
    let local = |m: &Monitor| SocketAddr::from(([127, 0, 0, 1], m.addr.port()));

    // Over TLS without client certificates, on every interface: closed.
    let mut args = f.args(false);
    args.extend(any);
    let m = Monitor::start(&sim.roots_arg(), &args);
    let cfg = client_config(&ca, None);
    for target in [
        format!("/debug/vars?sandbox={id}"),
        format!("/agent-url?sandbox={id}"),
    ] {
        let r = https_get(local(&m), cfg.clone(), &target).unwrap();
        assert_eq!(r.status, 403, "{target}");
        assert!(
            r.text().contains("--enable-debug-proxy=true"),
            "{}",
            r.text()
        );
    }
    assert_eq!(https_get(local(&m), cfg, "/metrics").unwrap().status, 200);
    drop(m);

    // The same with client certificates required: served.
    let mut args = f.args(true);
    args.extend(any);
    let m = Monitor::start(&sim.roots_arg(), &args);
    let cfg = client_config(&ca, Some(&clients.client("admin")));
    let r = https_get(local(&m), cfg, &format!("/debug/vars?sandbox={id}")).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("memstats"));
}

#[test]
fn prometheus_scrapes_over_tls_with_a_client_certificate() {
    let Some(bin) = common::prom::bin_dir() else {
        return;
    };
    let sim = Sim::start(&["--sandboxes", "3", "--bodies", "default,small,rs"]);
    let (ca, clients) = (Ca::new("server ca"), Ca::new("client ca"));
    let f = files(&ca.server(), Some(&clients));
    let m = Monitor::start(&sim.roots_arg(), &f.args(true));

    // Prometheus's tls_config, as the PodMonitor's tlsConfig renders it.
    let job = "scheme: https\ntls_config:\n  ca_file: ca.pem\n  cert_file: client/cert.pem\n  key_file: client/key.pem\n  server_name: localhost\n";
    let identity = clients.client("prometheus");
    // (Relative paths: Prometheus resolves them from its config file's
    // directory.)
    let p = Prom::start_job(&bin, m.addr, job, |dir| {
        std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
        identity.write(&dir.join("client"));
    });
    let target = p.target_after_scrapes(3, 40);
    assert_eq!(
        target["health"],
        "up",
        "{target}\nmonitor:\n{}",
        m.log_text()
    );
    assert_eq!(target["lastError"], "", "{target}");
    assert_eq!(target["scrapeUrl"], format!("https://{}/metrics", m.addr));
    let r = p.query("sum(kata_monitor_sandbox_up)");
    assert_eq!(r[0]["value"][1], "3", "{r:?}");
    let good = &sim.ids[0];
    let r = p.query(&format!(
        "kata_guest_load{{sandbox_id=\"{good}\",item=\"load1\"}}"
    ));
    assert_eq!(r.len(), 1, "{r:?}");
    // Prometheus asked for gzip: it was compressed inside TLS.
    let r = p.query("kata_monitor_scrape_responses_total{encoding=\"gzip\"}");
    let gz: f64 = r[0]["value"][1].as_str().unwrap().parse().unwrap();
    assert!(gz >= 1.0, "{r:?}");
    // Every handshake of Prometheus succeeded.
    let r = p.query("sum(kata_monitor_tls_handshake_failures_total)");
    assert_eq!(r[0]["value"][1], "0", "{r:?}");
}
