//! A real Prometheus (2.42, from Debian's package, unpacked by
//! tests/peers/fetch-prometheus.sh into target/peers/prometheus) for tests:
//! where its binaries are, and a server scraping one target every second,
//! removed on drop.

#![allow(dead_code)]

use super::node::tmpdir;
use super::peer::require_peer;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The directory holding `prometheus` and `promtool`; `None` (a visible
/// skip, or a failure under `KATA_MONITOR_CI=1`) when missing.
pub fn bin_dir() -> Option<PathBuf> {
    require_peer("prometheus", find_prometheus())
}

pub fn find_prometheus() -> Result<PathBuf, String> {
    let dir = std::env::var_os("PROMETHEUS_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/peers/prometheus/usr/bin")
        });
    if dir.join("prometheus").is_file() && dir.join("promtool").is_file() {
        return Ok(dir);
    }
    // An installed Prometheus (e.g. `apt-get install prometheus`) does too.
    if let Some(path) = std::env::var_os("PATH") {
        for d in std::env::split_paths(&path) {
            if d.join("prometheus").is_file() && d.join("promtool").is_file() {
                return Ok(d);
            }
        }
    }
    Err(format!(
        "prometheus and promtool not in {} nor in PATH (run tests/peers/fetch-prometheus.sh target/peers/prometheus)",
        dir.display()
    ))
}

pub struct Prom {
    child: Child,
    pub port: u16,
    pub dir: PathBuf,
}

impl Drop for Prom {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Prom {
    pub fn start(bin: &std::path::Path, target: std::net::SocketAddr) -> Prom {
        Prom::start_job(bin, target, "", |_| {})
    }

    /// `job` is YAML added to the scrape job at its indentation (e.g.
    /// `scheme: https` and a `tls_config`); `setup` writes files it names
    /// into Prometheus's directory first.
    pub fn start_job(
        bin: &std::path::Path,
        target: std::net::SocketAddr,
        job: &str,
        setup: impl FnOnce(&std::path::Path),
    ) -> Prom {
        let dir = tmpdir("prom");
        setup(&dir);
        let job: String = job.lines().map(|l| format!("    {l}\n")).collect();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let cfg = dir.join("prometheus.yml");
        std::fs::write(
            &cfg,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: kata\n{job}    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
        let child = Command::new(bin.join("prometheus"))
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start prometheus");
        Prom { child, port, dir }
    }

    /// GET on Prometheus's API; Null while it is not listening yet.
    pub fn api(&self, path: &str) -> serde_json::Value {
        let addr: std::net::SocketAddr = format!("127.0.0.1:{}", self.port).parse().unwrap();
        if std::net::TcpStream::connect(addr).is_err() {
            return serde_json::Value::Null;
        }
        let r = super::node::http(addr, "GET", path, &[]);
        serde_json::from_slice(&r.body).unwrap_or(serde_json::Value::Null)
    }

    /// The single target, once it has been scraped `n` times (by lastScrape changes).
    pub fn target_after_scrapes(&self, n: usize, secs: u64) -> serde_json::Value {
        let until = Instant::now() + Duration::from_secs(secs);
        let mut seen = std::collections::BTreeSet::new();
        loop {
            let t = self.api("/api/v1/targets")["data"]["activeTargets"][0].clone();
            if let Some(last) = t["lastScrape"].as_str()
                && !last.starts_with("0001")
            {
                seen.insert(last.to_string());
                if seen.len() >= n {
                    return t;
                }
            }
            if Instant::now() > until {
                let log =
                    std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default();
                panic!("target not scraped {n} times in {secs} s: {t}\n{log}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn query(&self, q: &str) -> Vec<serde_json::Value> {
        let q = kata_monitor::wire::http::request::percent_encode(q);
        let v = self.api(&format!("/api/v1/query?query={q}"));
        v["data"]["result"].as_array().cloned().unwrap_or_default()
    }
}
