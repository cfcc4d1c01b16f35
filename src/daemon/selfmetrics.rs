//! The monitor's own metrics, rendered for each `/metrics` answer.
//!
//! Upstream's names are kept (`kata_monitor_running_shim_count`,
//! `kata_monitor_scrape_count`, ...) so dashboards keep working; per-sandbox
//! health is new. Rendered with the engine's text writer, so the same
//! escaping rules apply.

use super::Daemon;
use super::config::{COMMIT, FEATURES, VERSION};
use crate::state::cri_policy::CallResult;
use crate::state::scraper::{BUCKETS_MS, SlotResult, Snapshot};
use crate::wire::expo::Kind;
use crate::wire::expo::text::{TextWriter, Value};

/// Render the monitor's own families.
pub(super) fn render(d: &Daemon, snap: &Snapshot) -> Vec<u8> {
    let mut out = Vec::with_capacity(4096 + snap.slots.len() * 1024);
    let mut w = TextWriter::new(&mut out);
    scrapes(&mut w, d);
    process(&mut w);
    cri(&mut w, &d.cri);
    debug_and_tls(&mut w, d);
    sandboxes(&mut w, d, snap);
    w.finish();
    out
}

/// Build, sandbox count and upstream's scrape statistics.
fn scrapes(w: &mut TextWriter, d: &Daemon) {
    let st = &d.scraper.stats;
    w.family(
        "kata_monitor_build_info",
        "Build information of this kata-monitor.",
        Kind::Gauge,
    )
    .sample(
        "kata_monitor_build_info",
        &[
            ("version", VERSION),
            ("commit", COMMIT),
            ("features", FEATURES),
        ],
        b"",
        1u64,
    );
    w.family(
        "kata_monitor_running_shim_count",
        "Running shim count(running sandboxes).",
        Kind::Gauge,
    )
    .sample(
        "kata_monitor_running_shim_count",
        &[],
        b"",
        d.reg.len() as u64,
    );
    w.family("kata_monitor_scrape_count", "Scape count.", Kind::Counter)
        .sample("kata_monitor_scrape_count", &[], b"", st.scrapes);
    w.family(
        "kata_monitor_scrape_failed_count",
        "Failed scape count.",
        Kind::Counter,
    )
    .sample(
        "kata_monitor_scrape_failed_count",
        &[],
        b"",
        st.failed_scrapes,
    );
    let n = "kata_monitor_scrape_responses_total";
    w.family(
        n,
        "Merged /metrics answers started, by content encoding.",
        Kind::Counter,
    );
    for (i, enc) in ["identity", "gzip", "zstd"].into_iter().enumerate() {
        w.sample(n, &[("encoding", enc)], b"", st.responses[i]);
    }
    w.family(
        "kata_monitor_scrape_reused_rounds_total",
        "Merged /metrics answers served from the previous fetch round because slow clients still held older ones.",
        Kind::Counter,
    )
    .sample("kata_monitor_scrape_reused_rounds_total", &[], b"", st.reused);
    let h = "kata_monitor_scrape_durations_histogram_milliseconds";
    w.family(h, "Time used to scrape from shims", Kind::Histogram);
    let bucket = format!("{h}_bucket");
    for (i, b) in BUCKETS_MS.iter().enumerate() {
        w.sample(&bucket, &[("le", &b.to_string())], b"", st.buckets[i]);
    }
    w.sample(
        &bucket,
        &[("le", "+Inf")],
        b"",
        st.buckets[BUCKETS_MS.len()],
    );
    w.sample(&format!("{h}_sum"), &[], b"", st.sum_ms);
    w.sample(
        &format!("{h}_count"),
        &[],
        b"",
        st.buckets[BUCKETS_MS.len()],
    );
}

/// The process's own figures, as client_golang's process collector names them.
fn process(w: &mut TextWriter) {
    let p = super::procfs::read();
    let proc_metrics: [(&str, &str, Kind, Value); 7] = [
        (
            "kata_monitor_process_cpu_seconds_total",
            "Total user and system CPU time spent in seconds.",
            Kind::Counter,
            Value::Float(p.cpu_seconds),
        ),
        (
            "kata_monitor_process_resident_memory_bytes",
            "Resident memory size in bytes.",
            Kind::Gauge,
            Value::Int(p.resident_bytes),
        ),
        (
            "kata_monitor_process_virtual_memory_bytes",
            "Virtual memory size in bytes.",
            Kind::Gauge,
            Value::Int(p.virtual_bytes),
        ),
        (
            "kata_monitor_process_open_fds",
            "Number of open file descriptors.",
            Kind::Gauge,
            Value::Int(p.open_fds),
        ),
        (
            "kata_monitor_process_max_fds",
            "Maximum number of open file descriptors.",
            Kind::Gauge,
            Value::Int(p.max_fds),
        ),
        (
            "kata_monitor_process_start_time_seconds",
            "Start time of the process since unix epoch in seconds.",
            Kind::Gauge,
            Value::Float(p.start_time_seconds),
        ),
        (
            "kata_monitor_process_virtual_memory_max_bytes",
            "Maximum amount of virtual memory available in bytes.",
            Kind::Gauge,
            Value::Int(p.virtual_max_bytes),
        ),
    ];
    for (name, help, kind, v) in proc_metrics {
        w.family(name, help, kind).sample(name, &[], b"", v);
    }
    if let Some((rx, tx)) = p.net_octets {
        for (name, help, v) in [
            (
                "kata_monitor_process_network_receive_bytes_total",
                "Number of bytes received by the process over the network.",
                rx,
            ),
            (
                "kata_monitor_process_network_transmit_bytes_total",
                "Number of bytes sent by the process over the network.",
                tx,
            ),
        ] {
            w.family(name, help, Kind::Counter)
                .sample(name, &[], b"", v);
        }
    }
}

/// The CRI client: calls, connection, sandboxes waiting for metadata.
fn cri(w: &mut TextWriter, cri: &super::cri::Cri) {
    let n = "kata_monitor_cri_requests_total";
    w.family(
        n,
        "ListPodSandbox calls to the CRI runtime, by result.",
        Kind::Counter,
    );
    for r in CallResult::ALL {
        let count = cri.stats.requests[r as usize];
        if count > 0 || r.always_shown() {
            w.sample(n, &[("result", r.as_label())], b"", count);
        }
    }
    let n = "kata_monitor_cri_request_duration_seconds";
    w.family(
        n,
        "Time from sending a ListPodSandbox call to its answer (or failure).",
        Kind::Summary,
    );
    w.sample(&format!("{n}_sum"), &[], b"", cri.stats.call_seconds);
    w.sample(&format!("{n}_count"), &[], b"", cri.stats.call_count);
    w.family(
        "kata_monitor_cri_connected",
        "Whether the connection to the CRI runtime is up (1) or not (0).",
        Kind::Gauge,
    )
    .sample(
        "kata_monitor_cri_connected",
        &[],
        b"",
        u64::from(cri.stats.connected),
    );
    w.family(
        "kata_monitor_cri_connections_total",
        "Connections to the CRI runtime established since start (one long-lived connection is the norm).",
        Kind::Counter,
    )
    .sample(
        "kata_monitor_cri_connections_total",
        &[],
        b"",
        cri.stats.connections,
    );
    w.family(
        "kata_monitor_cri_pending_sandboxes",
        "Sandboxes still waiting for pod metadata from the CRI runtime.",
        Kind::Gauge,
    )
    .sample(
        "kata_monitor_cri_pending_sandboxes",
        &[],
        b"",
        cri.policy.missing() as u64,
    );
    w.family(
        "kata_monitor_cri_unknown_sandboxes",
        "Sandboxes the CRI runtime did not know after repeated asks (served without pod labels).",
        Kind::Gauge,
    )
    .sample(
        "kata_monitor_cri_unknown_sandboxes",
        &[],
        b"",
        cri.policy.given_up() as u64,
    );
}

/// Profiles being relayed; the HTTPS listener when TLS is on.
fn debug_and_tls(w: &mut TextWriter, d: &Daemon) {
    w.family(
        "kata_monitor_debug_profiles_running",
        "pprof profiles and traces being relayed now (at most one per sandbox).",
        Kind::Gauge,
    )
    .sample(
        "kata_monitor_debug_profiles_running",
        &[],
        b"",
        d.profiling.running() as u64,
    );

    #[cfg(feature = "tls")]
    if let Some(t) = &d.tls {
        tls(w, t);
    }
}

/// Per sandbox: health of the round this answer is rendered from,
/// exclusions and dropped lines.
fn sandboxes(w: &mut TextWriter, d: &Daemon, snap: &Snapshot) {
    // Per sandbox of the round this answer is rendered from.
    type Get = fn(&SlotResult) -> Value;
    let per_sandbox: [(&str, &str, Get); 3] = [
        (
            "kata_monitor_sandbox_up",
            "Whether the sandbox's shim answered the last scrape (1) or not (0).",
            |s| Value::Int(u64::from(s.error.is_none())),
        ),
        (
            "kata_monitor_sandbox_scrape_duration_seconds",
            "Time taken to fetch the sandbox's shim metrics in the last scrape.",
            |s| Value::Float(s.duration.as_secs_f64()),
        ),
        (
            "kata_monitor_sandbox_scrape_bytes",
            "Size of the sandbox's shim metrics body in the last scrape.",
            |s| Value::Int(s.bytes),
        ),
    ];
    for (name, help, get) in per_sandbox {
        w.family(name, help, Kind::Gauge);
        for s in &snap.slots {
            w.sample(name, &[], s.labels.plain(), get(s));
        }
    }
    let n = "kata_monitor_sandbox_scrape_errors";
    w.family(
        n,
        "Why the sandbox's shim failed the last scrape (1 for the reason).",
        Kind::Gauge,
    );
    for s in &snap.slots {
        if let Some(why) = s.error {
            w.sample(n, &[("reason", why.as_label())], s.labels.plain(), 1u64);
        }
    }
    let n = "kata_monitor_sandbox_excluded";
    w.family(
        n,
        "Sandboxes not scraped by rule (1 for the reason): --exclude-runtime-handler, --exclude-sandbox-dir, or a runtime handler not known yet while handler rules are set.",
        Kind::Gauge,
    );
    for (id, sb) in d.reg.iter() {
        if let Some(Err(e)) = d.reg.verdict(id) {
            w.sample(n, &[("reason", e.as_label())], sb.labels.plain(), 1u64);
        }
    }
    let n = "kata_monitor_dropped_lines_total";
    w.family(
        n,
        "Lines of a sandbox's shim metrics that were dropped, by reason.",
        Kind::Counter,
    );
    for (_, sb) in d.reg.iter() {
        for (reason, count) in sb.drops_total.iter() {
            w.sample(
                n,
                &[("reason", reason.as_str())],
                sb.labels.plain(),
                u64::from(count),
            );
        }
    }
}

/// HTTPS listener figures (only when TLS is on).
#[cfg(feature = "tls")]
fn tls(w: &mut TextWriter, t: &super::tls::Tls) {
    let n = "kata_monitor_tls_handshake_failures_total";
    w.family(
        n,
        "TLS connections closed before or while serving, by reason (plain_http: a plain HTTP request on the TLS port).",
        Kind::Counter,
    );
    for (label, count) in super::tls::FAILURE_LABELS.iter().zip(t.failures) {
        w.sample(n, &[("reason", label)], b"", count);
    }
    let counters = [
        (
            "kata_monitor_tls_certificate_reloads_total",
            "Times changed certificate files were loaded without a restart.",
            t.reloads,
        ),
        (
            "kata_monitor_tls_certificate_reload_errors_total",
            "Times changed certificate files could not be used (the previous certificate stays in use).",
            t.reload_errors,
        ),
    ];
    for (name, help, v) in counters {
        w.family(name, help, Kind::Counter)
            .sample(name, &[], b"", v);
    }
    if let Some(not_after) = t.not_after() {
        let n = "kata_monitor_tls_certificate_expiry_timestamp_seconds";
        w.family(
            n,
            "notAfter of the certificate served to new connections, in seconds since the Unix epoch.",
            Kind::Gauge,
        )
        .sample(n, &[], b"", not_after.max(0) as u64);
    }
}
