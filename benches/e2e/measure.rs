//! What the end-to-end benchmark reads of a monitor process, and one series
//! of scrapes over a keep-alive connection.

use crate::common::node::Client;
use std::collections::HashSet;
use std::io::Read;
use std::time::Instant;

/// CPU time of every thread of `pid` (user + system, ns, from each
/// `/proc/<pid>/task/<tid>/schedstat`): ns resolution, where
/// `/proc/<pid>/stat` counts 10 ms ticks. The Go monitor is
/// multi-threaded, so the main thread's own schedstat would miss most of
/// its CPU; Go keeps its threads, so none of it leaves with an exited one
/// (the stat cross-check printed at the end would show it).
pub fn cpu_ns(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .filter_map(Result::ok)
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| {
            s.split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
        })
        .sum()
}

/// utime + stime of the whole process from `/proc/<pid>/stat`, in ms
/// (clock-tick resolution): a cross-check of [`cpu_ns`].
pub fn stat_cpu_ms(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields of the whole line.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    ticks as f64 * 1000.0 / hz
}

/// A `/proc/<pid>/status` field in kB (`VmRSS:`, `VmHWM:`).
pub fn status_kb(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next().and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}

/// The machine's 1-minute load average.
pub fn loadavg() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(f64::NAN)
}

/// The `p` quantile of sorted values (nearest rank).
pub fn pct(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// One series of scrapes.
pub struct Run {
    /// Latency of each scrape, ms.
    pub lat_ms: Vec<f64>,
    pub p50_ms: f64,
    pub p90_ms: f64,
    /// The process's CPU per scrape over the series, ms.
    pub cpu_ms: f64,
    /// Bytes on the wire of the last answer.
    pub bytes: usize,
    /// Per scrape: shim series carrying `sandbox_id`, and sandboxes present
    /// (empty unless counting was asked for).
    pub series: Vec<(usize, usize)>,
}

/// `n` scrapes of `/metrics` over one keep-alive connection to `addr`,
/// after `warmup` ones; CPU is `pid`'s. With `count`, every answer is
/// decompressed and its series counted (client-side work outside the
/// measured process, but on the same machine).
pub fn scrape_series(
    addr: std::net::SocketAddr,
    pid: u32,
    coding: &str,
    n: usize,
    warmup: usize,
    count: bool,
) -> Run {
    let mut c = Client::connect(addr);
    let req = match coding {
        "identity" => "GET /metrics HTTP/1.1\r\nHost: b\r\n\r\n".to_string(),
        c => format!("GET /metrics HTTP/1.1\r\nHost: b\r\nAccept-Encoding: {c}\r\n\r\n"),
    };
    let want = (coding != "identity").then_some(coding);
    let debug = std::env::var("E2E_DEBUG").is_ok();
    // Warm up: buffers, pools, page cache.
    for i in 0..warmup {
        c.send(req.as_bytes());
        c.response().expect("response");
        if debug {
            eprintln!(
                "warmup {i}: rss {} kB hwm {} kB",
                status_kb(pid, "VmRSS:"),
                status_kb(pid, "VmHWM:")
            );
        }
    }
    let mut lat = Vec::with_capacity(n);
    let (mut bytes, mut series) = (0, Vec::new());
    // Over the whole series: work a monitor leaves for after its answer
    // (Go's garbage collection) is part of a scrape's cost.
    let cpu0 = cpu_ns(pid);
    for _ in 0..n {
        let t = Instant::now();
        c.send(req.as_bytes());
        let r = c.response().expect("response");
        lat.push(t.elapsed().as_secs_f64() * 1e3);
        assert_eq!(r.status, 200);
        // The coding asked for, not a fallback (a full encoder pool).
        assert_eq!(r.header("content-encoding"), want, "{coding}");
        bytes = r.body.len();
        if count {
            series.push(count_series(&r.body, r.header("content-encoding")));
        }
        if debug {
            eprintln!(
                "scrape: {:.1} ms rss {} kB hwm {} kB",
                lat[lat.len() - 1],
                status_kb(pid, "VmRSS:"),
                status_kb(pid, "VmHWM:")
            );
        }
    }
    let cpu = cpu_ns(pid) - cpu0;
    let mut sorted = lat.clone();
    sorted.sort_by(|a, b| a.partial_cmp(b).unwrap());
    Run {
        p50_ms: pct(&sorted, 0.5),
        p90_ms: pct(&sorted, 0.9),
        lat_ms: lat,
        cpu_ms: cpu as f64 / 1e6 / n as f64,
        bytes,
        series,
    }
}

/// Shim series carrying `sandbox_id` (the monitor's own `kata_monitor_*`
/// families left out: ours has per-sandbox ones, upstream has none) and
/// the distinct sandboxes they name.
pub fn count_series(body: &[u8], coding: Option<&str>) -> (usize, usize) {
    let mut plain = Vec::new();
    let body = match coding {
        None => body,
        Some("gzip") => {
            flate2::read::GzDecoder::new(body)
                .read_to_end(&mut plain)
                .expect("valid gzip");
            &plain[..]
        }
        Some(c) => {
            let tool = crate::common::decode::decoder(c).expect("a decoder for a coding asked for");
            plain = crate::common::decode::decode_with(&tool, body);
            &plain[..]
        }
    };
    let needle = b"sandbox_id=\"";
    let mut ids: HashSet<&[u8]> = HashSet::new();
    let mut n = 0;
    for line in body.split(|&b| b == b'\n') {
        if line.first() == Some(&b'#') || line.starts_with(b"kata_monitor_") {
            continue;
        }
        let Some(at) = line.windows(needle.len()).position(|w| w == needle) else {
            continue;
        };
        let rest = &line[at + needle.len()..];
        let end = rest.iter().position(|&b| b == b'"').unwrap_or(rest.len());
        ids.insert(&rest[..end]);
        n += 1;
    }
    (n, ids.len())
}
