//! The differences between this monitor and upstream's Go kata-monitor that
//! README.md documents ("Differences from upstream"): each constant is the
//! text of an entry (whitespace aside), which the differential tests cite
//! where they allow a difference, and check to be in the README.

pub const DOC_INVALID_LINES: &str =
    "are dropped and counted per sandbox and reason instead of failing the whole sandbox";
pub const DOC_TYPE_CONFLICT: &str = "no single sandbox decides for the others";
pub const DOC_HELP_CONFLICT: &str =
    "HELP comes from a sandbox that kept its samples, by the same rule";
pub const DOC_NO_FABRICATION: &str = "are passed on as they are (upstream's re-encoding adds a `+Inf` bucket and zero `_sum` and `_count` series";
pub const DOC_ORDER: &str =
    "output order is deterministic (families sorted, sandboxes in id order)";
pub const DOC_UNKNOWN_SANDBOX: &str =
    "`?sandbox=` only accepts listed sandbox ids: another is a 404";
pub const DOC_EMPTY_SANDBOX: &str = "and an empty one is a 400";
pub const DOC_ID_NAMES: &str = "a directory in a sandbox root whose name is not a valid id";
pub const DOC_FILTER: &str = "empty prefixes (as in `a,`) are ignored where upstream's match every family, spaces around a prefix are trimmed, and repeated `filter_family` parameters add up (upstream reads the first)";
pub const DOC_ERROR_TEXT: &str = "error answers carry this monitor's own messages";
pub const DOC_SHIM_STATUS: &str = "a shim's error status is passed on";
pub const DOC_METHODS_PATHS: &str = "methods other than GET and HEAD get 405";
pub const DOC_UNKNOWN_PATH: &str = "unknown paths get 404";
pub const DOC_HEALTHZ: &str = "`/healthz` is added";
pub const DOC_CONTENT_TYPE: &str =
    "`/metrics` is always the text format, `text/plain; version=0.0.4; charset=utf-8`";
pub const DOC_SANDBOX_CONTENT_TYPE: &str = "`/metrics?sandbox=` declares the same Content-Type";
pub const DOC_ACCEPT_ENCODING: &str = "`Accept-Encoding` is read as HTTP defines it";
pub const DOC_OWN_COUNTS: &str =
    "upstream's own metrics keep their names, HELP and TYPE, but count a little differently";
pub const DOC_OWN_ADDED: &str = "own metrics upstream does not have are added";
pub const DOC_NO_GO_RUNTIME: &str =
    "upstream's Go runtime families (`kata_monitor_go_*`) are absent";

pub const DOC_RUNTIME_RS_DEBUG: &str =
    "`/debug/vars` and `/debug/pprof/*` of a runtime-rs sandbox answer 501";

pub const ALL_DOCS: &[&str] = &[
    DOC_NO_FABRICATION,
    DOC_TYPE_CONFLICT,
    DOC_HELP_CONFLICT,
    DOC_INVALID_LINES,
    DOC_ORDER,
    DOC_UNKNOWN_SANDBOX,
    DOC_EMPTY_SANDBOX,
    DOC_ID_NAMES,
    DOC_FILTER,
    DOC_ERROR_TEXT,
    DOC_SHIM_STATUS,
    DOC_METHODS_PATHS,
    DOC_UNKNOWN_PATH,
    DOC_HEALTHZ,
    DOC_CONTENT_TYPE,
    DOC_SANDBOX_CONTENT_TYPE,
    DOC_ACCEPT_ENCODING,
    DOC_OWN_COUNTS,
    DOC_OWN_ADDED,
    DOC_NO_GO_RUNTIME,
    DOC_RUNTIME_RS_DEBUG,
];

/// Our own families upstream does not have (DOC_OWN_ADDED).
pub const OWN_ADDED: &[&str] = &[
    "kata_monitor_build_info",
    "kata_monitor_scrape_responses_total",
    "kata_monitor_scrape_reused_rounds_total",
    "kata_monitor_cri_requests_total",
    "kata_monitor_cri_request_duration_seconds",
    "kata_monitor_cri_connected",
    "kata_monitor_cri_connections_total",
    "kata_monitor_cri_pending_sandboxes",
    "kata_monitor_cri_unknown_sandboxes",
    "kata_monitor_sandbox_up",
    "kata_monitor_sandbox_scrape_duration_seconds",
    "kata_monitor_sandbox_scrape_bytes",
    "kata_monitor_sandbox_scrape_errors",
    "kata_monitor_dropped_lines_total",
    "kata_monitor_debug_profiles_running",
    // With TLS on only.
    "kata_monitor_tls_handshake_failures_total",
    "kata_monitor_tls_certificate_reloads_total",
    "kata_monitor_tls_certificate_reload_errors_total",
    "kata_monitor_tls_certificate_expiry_timestamp_seconds",
];

/// The README entry that lets a family be in one answer only.
pub fn excused(family: &str, ours: bool) -> Option<&'static str> {
    if ours && OWN_ADDED.contains(&family) {
        Some(DOC_OWN_ADDED)
    } else if !ours && family.starts_with("kata_monitor_go_") {
        Some(DOC_NO_GO_RUNTIME)
    } else {
        None
    }
}

pub fn squash(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
