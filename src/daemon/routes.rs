//! What each endpoint answers.
//!
//! Owns: routing, method checks, query validation (only listed sandbox ids
//! are used), and the small text/HTML pages. Streaming answers are handed to
//! the fetch rounds (`/metrics`) or the shim proxy (`/metrics?sandbox=`,
//! `/agent-url`, `/debug/*`).

use super::Daemon;
use super::conn::{State, Waiting};
use super::proxy::{ProxyKind, ProxyRequest};
use super::slab::Key;
use crate::wire::expo::Filter;
use crate::wire::http::request::{
    Method, Request, percent_encode, query_has, query_value, query_values,
};
use crate::wire::http::response::{self, Framing};
use std::fmt::Write as _;
use std::time::Instant;

/// Endpoints listed by the index page: (path, description).
const ENDPOINTS: &[(&str, &str)] = &[
    ("/metrics", "Get metrics from sandboxes."),
    ("/sandboxes", "List all Kata Containers sandboxes."),
    ("/agent-url", "Get sandbox agent URL."),
    ("/healthz", "Liveness and readiness of the monitor itself."),
];

const DEBUG_ENDPOINTS: &[(&str, &str)] = &[
    (
        "/debug/vars",
        "Golang pprof `/debug/vars` endpoint for kata runtime shim process.",
    ),
    (
        "/debug/pprof/",
        "Golang pprof `/debug/pprof/` endpoint for kata runtime shim process.",
    ),
    (
        "/debug/pprof/cmdline",
        "Golang pprof `/debug/pprof/cmdline` endpoint for kata runtime shim process.",
    ),
    (
        "/debug/pprof/profile",
        "Golang pprof `/debug/pprof/profile` endpoint for kata runtime shim process.",
    ),
    (
        "/debug/pprof/symbol",
        "Golang pprof `/debug/pprof/symbol` endpoint for kata runtime shim process.",
    ),
    (
        "/debug/pprof/trace",
        "Golang pprof `/debug/pprof/trace` endpoint for kata runtime shim process.",
    ),
];

impl Daemon {
    pub(crate) fn route(&mut self, key: Key, req: Request, now: Instant) {
        let head_only = req.method == Method::Head;
        if req.method == Method::Other {
            self.respond(
                key,
                405,
                &[
                    ("Allow", "GET, HEAD"),
                    ("Content-Type", "text/plain; charset=utf-8"),
                ],
                b"method not allowed\n",
                false,
                now,
            );
            return;
        }
        match req.path.as_str() {
            "/metrics" => self.route_metrics(key, &req, head_only, now),
            "/sandboxes" | "/" => {
                let (ctype, body) = if req.path == "/" {
                    self.index_page(req.html)
                } else {
                    self.sandboxes_page(req.html)
                };
                let headers = [("Content-Type", ctype)];
                self.respond(key, 200, &headers, body.as_bytes(), head_only, now);
            }
            "/agent-url" => {
                if let Some(id) = self.sandbox_param(key, &req, now) {
                    let r = ProxyRequest::new(id, "/agent-url", ProxyKind::AgentUrl(Vec::new()));
                    self.start_proxy(key, r.head_only(head_only), now);
                }
            }
            "/healthz" => {
                // Always 200 while the loop answers: a missing runtime or
                // root is reported here, not treated as the monitor's fault.
                let body = format!(
                    "ok\nsandbox_roots_watched {}/{}\nsandboxes {}\nconnections {}\n\
                     cri_connected {}\ncri_pending_sandboxes {}\ncri_unknown_sandboxes {}\n",
                    self.watcher_watched(),
                    self.reg.roots().len(),
                    self.reg.len(),
                    self.connections(),
                    u8::from(self.cri.stats.connected),
                    self.cri.policy.missing(),
                    self.cri.policy.given_up(),
                );
                self.respond_text(key, 200, &body, head_only, now);
            }
            "/debug/pprof" if self.cfg.debug_proxy => {
                // What Go's ServeMux (upstream's router, and the shim's)
                // answers for a subtree without its slash; the query stays.
                let mut location = String::from("/debug/pprof/");
                if !req.query.is_empty() {
                    location.push('?');
                    location.push_str(&req.query);
                }
                let body = format!(
                    "<a href=\"{}\">Moved Permanently</a>.\n\n",
                    html_escape(&location)
                );
                let headers = [
                    ("Location", location.as_str()),
                    ("Content-Type", "text/html; charset=utf-8"),
                ];
                self.respond(key, 301, &headers, body.as_bytes(), head_only, now);
            }
            p if p.starts_with("/debug/") && self.cfg.debug_proxy => {
                self.route_debug(key, &req, head_only, now)
            }
            _ => self.respond_text(key, 404, "404 page not found\n", head_only, now),
        }
    }

    fn route_metrics(&mut self, key: Key, req: &Request, head_only: bool, now: Instant) {
        if query_has(&req.query, "sandbox") {
            if let Some(id) = self.sandbox_param(key, req, now) {
                let r = ProxyRequest::new(id, "/metrics", ProxyKind::Metrics);
                self.start_proxy(key, r.head_only(head_only), now);
            }
            return;
        }
        let values: Vec<String> = query_values(&req.query, "filter_family").collect();
        let w = Waiting {
            filter: Filter::from_values(values.iter().map(String::as_str)),
            gzip: req.gzip,
            head_only,
            arrived: now,
        };
        self.want_metrics(key, w, req.scrape_timeout, now);
    }

    /// The `sandbox` query parameter, answered with 400/404 when it is
    /// missing or not a listed sandbox.
    pub(crate) fn sandbox_param(
        &mut self,
        key: Key,
        req: &Request,
        now: Instant,
    ) -> Option<String> {
        let head_only = req.method == Method::Head;
        let Some(id) = query_value(&req.query, "sandbox")
            .or_else(|| (!query_has(&req.query, "sandbox")).then(String::new))
        else {
            self.respond_text(
                key,
                400,
                "invalid sandbox parameter: bad percent-encoding\n",
                head_only,
                now,
            );
            return None;
        };
        if id.is_empty() {
            self.respond_text(
                key,
                400,
                "missing sandbox parameter: use ?sandbox=<id>\n",
                head_only,
                now,
            );
            return None;
        }
        if self.reg.get(&id).is_none() {
            let msg = format!("sandbox {:?} not found\n", truncate(&id));
            self.respond_text(key, 404, &msg, head_only, now);
            return None;
        }
        Some(id)
    }

    fn sandboxes_page(&self, html: bool) -> (&'static str, String) {
        let mut body = String::new();
        if html {
            // Upstream's page, byte for byte (but for the order); the pprof
            // link only while the debug proxy is on.
            body.push_str("<h1>Sandbox list</h1>\n<ul>\n");
            for id in self.reg.ids() {
                // Ids are [A-Za-z0-9._-]: nothing to escape in HTML.
                let q = percent_encode(id);
                let _ = write!(body, "<li>{id}: ");
                if self.cfg.debug_proxy {
                    let _ = write!(body, "<a href='/debug/pprof/?sandbox={q}'>pprof</a>, ");
                }
                let _ = writeln!(
                    body,
                    "<a href='/metrics?sandbox={q}'>metrics</a>, <a href='/agent-url?sandbox={q}'>agent-url</a></li>"
                );
            }
            body.push_str("</ul>\n");
            ("text/html", body)
        } else {
            for id in self.reg.ids() {
                body.push_str(id);
                body.push('\n');
            }
            ("text/plain; charset=utf-8", body)
        }
    }

    fn index_page(&self, html: bool) -> (&'static str, String) {
        let mut list: Vec<(&str, &str)> = ENDPOINTS.to_vec();
        if self.cfg.debug_proxy {
            list.extend_from_slice(DEBUG_ENDPOINTS);
        }
        let mut body = String::new();
        if html {
            // Upstream's page, byte for byte, plus /healthz.
            body.push_str("<h1>Available HTTP endpoints:</h1>\n<ul>");
            for (p, d) in &list {
                if ["/metrics", "/sandboxes", "/healthz"].contains(p) {
                    let _ = write!(body, "<li><b><a href='{p}'>{p}</a></b>: {d}\n</li>");
                } else {
                    let _ = write!(body, "<li><b>{p}</b>: {d}\n</li>");
                }
            }
            body.push_str("</ul>");
            ("text/html", body)
        } else {
            body.push_str("Available HTTP endpoints:\n");
            let width = list.iter().map(|(p, _)| p.len()).max().unwrap_or(0) + 3;
            for (p, d) in &list {
                let _ = writeln!(body, "{p:<width$}: {d}");
            }
            ("text/plain; charset=utf-8", body)
        }
    }

    /// A complete answer with a small body.
    pub(crate) fn respond(
        &mut self,
        key: Key,
        status: u16,
        headers: &[(&str, &str)],
        body: &[u8],
        head_only: bool,
        now: Instant,
    ) {
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        let mut out = Vec::with_capacity(160 + body.len());
        response::head(
            &mut out,
            status,
            headers,
            Framing::Length(body.len() as u64),
            c.keep_alive,
        );
        if !head_only {
            out.extend_from_slice(body);
        }
        c.out.push(&out);
        c.state = State::Writing;
        c.deadline = now + super::WRITE_STALL;
        self.pump(key, now);
    }

    pub(crate) fn respond_text(
        &mut self,
        key: Key,
        status: u16,
        body: &str,
        head_only: bool,
        now: Instant,
    ) {
        // Errors carry nosniff, as Go's http.Error (upstream) sets it.
        let headers: &[(&str, &str)] = if status >= 400 {
            &[
                ("Content-Type", "text/plain; charset=utf-8"),
                ("X-Content-Type-Options", "nosniff"),
            ]
        } else {
            &[("Content-Type", "text/plain; charset=utf-8")]
        };
        self.respond(key, status, headers, body.as_bytes(), head_only, now);
    }
}

/// Shorten untrusted text echoed in an error message.
pub fn truncate(s: &str) -> String {
    s.chars().take(140).collect()
}

/// Escape text for HTML (attribute values included).
fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
