//! What each endpoint answers, as a pure function of the request and the
//! monitor's state.
//!
//! Owns: routing, method checks, query validation (only listed sandbox ids
//! are ever used), the `seconds` rules of the pprof proxies, and the small
//! text/HTML pages. Streaming answers are handed back as [`Route::Metrics`]
//! (a fetch round) or [`Route::Proxy`] (a shim). Must not: touch a socket,
//! read the clock, log.

use super::exclusion::Excluded;
use super::proxy::{ProxyKind, ProxyRequest, Reply};
use super::registry::Registry;
use crate::wire::expo::Filter;
use crate::wire::http::request::{
    AcceptEncoding, Method, Request, percent_encode, query_has, query_value, query_values,
};
use std::fmt::Write as _;
use std::time::Duration;

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

/// What the routes may look at.
pub struct Ctx<'a> {
    pub reg: &'a Registry,
    pub debug: DebugAccess,
    /// Longest profile or trace a request may ask for.
    pub max_profile: Duration,
}

/// Whether `/debug/*` and `/agent-url` are served: they expose shim
/// profiles, traces, command lines and agent URLs, and make a shim
/// profile itself on request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DebugAccess {
    Served,
    /// Not asked for, and the listener is reachable from other hosts
    /// without a client certificate.
    ClosedByDefault,
    /// `--enable-debug-proxy=false`.
    Disabled,
}

impl DebugAccess {
    /// `flag`: `--enable-debug-proxy` if given. Unset, the endpoints are
    /// served only to this host (a loopback listener) or to clients that
    /// proved who they are (client certificates required).
    pub fn decide(flag: Option<bool>, loopback: bool, client_certs: bool) -> DebugAccess {
        match flag {
            Some(true) => DebugAccess::Served,
            Some(false) => DebugAccess::Disabled,
            None if loopback || client_certs => DebugAccess::Served,
            None => DebugAccess::ClosedByDefault,
        }
    }

    fn refusal(self) -> Option<&'static str> {
        match self {
            DebugAccess::Served => None,
            DebugAccess::ClosedByDefault => Some(
                "debug endpoints are off: the listener is not loopback and no client \
                 certificate is required (--tls-client-ca-file); enable them with \
                 --enable-debug-proxy=true\n",
            ),
            DebugAccess::Disabled => Some(
                "debug endpoints are disabled by --enable-debug-proxy=false; enable them \
                 with --enable-debug-proxy=true\n",
            ),
        }
    }
}

/// `/agent-url` and everything under `/debug`.
fn is_debug(path: &str) -> bool {
    path == "/agent-url" || path == "/debug/pprof" || path.starts_with("/debug/")
}

/// How to answer a request.
#[derive(Debug, PartialEq)]
pub enum Route {
    Reply(Reply),
    /// `/healthz`: the reactor fills in its counters.
    Health {
        head_only: bool,
    },
    /// The merged `/metrics`.
    Metrics {
        filter: Filter,
        accept: AcceptEncoding,
        head_only: bool,
        scrape_timeout: Option<f64>,
    },
    Proxy(ProxyRequest),
}

pub fn route(req: &Request, ctx: &Ctx) -> Route {
    let head_only = req.method == Method::Head;
    if req.method == Method::Other {
        return Route::Reply(Reply {
            status: 405,
            headers: vec![
                ("Allow", "GET, HEAD".into()),
                ("Content-Type", "text/plain; charset=utf-8".into()),
            ],
            body: b"method not allowed\n".to_vec(),
            head_only: false,
        });
    }
    if is_debug(&req.path)
        && let Some(why) = ctx.debug.refusal()
    {
        return Route::Reply(Reply::text(403, why, head_only));
    }
    match req.path.as_str() {
        "/metrics" if query_has(&req.query, "sandbox") => {
            match sandbox_param(req, ctx).and_then(|id| scrapable(id, ctx, head_only)) {
                Ok(id) => proxy(
                    id,
                    "/metrics",
                    ProxyKind::Metrics,
                    head_only,
                    Duration::ZERO,
                ),
                Err(r) => Route::Reply(r),
            }
        }
        "/metrics" => {
            let values: Vec<String> = query_values(&req.query, "filter_family").collect();
            Route::Metrics {
                filter: Filter::from_values(values.iter().map(String::as_str)),
                accept: req.accept,
                head_only,
                scrape_timeout: req.scrape_timeout,
            }
        }
        "/" => {
            let (ctype, body) = index_page(req.html, ctx.debug == DebugAccess::Served);
            page(ctype, body, head_only)
        }
        "/sandboxes" => {
            let (ctype, body) = sandboxes_page(req.html, ctx.reg, ctx.debug == DebugAccess::Served);
            page(ctype, body, head_only)
        }
        "/agent-url" => match sandbox_param(req, ctx) {
            Ok(id) => proxy(
                id,
                "/agent-url",
                ProxyKind::AgentUrl,
                head_only,
                Duration::ZERO,
            ),
            Err(r) => Route::Reply(r),
        },
        "/healthz" => Route::Health { head_only },
        "/debug/pprof" => {
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
            Route::Reply(Reply {
                status: 301,
                headers: vec![
                    ("Location", location),
                    ("Content-Type", "text/html; charset=utf-8".into()),
                ],
                body: body.into_bytes(),
                head_only,
            })
        }
        p if p.starts_with("/debug/") => match sandbox_param(req, ctx)
            .and_then(|id| scrapable(id, ctx, head_only))
            .and_then(|id| go_debug(id, p, ctx, head_only))
        {
            Ok(id) => match debug_kind(req, ctx.max_profile) {
                Ok((kind, extra)) => Route::Proxy(ProxyRequest {
                    id,
                    target: req.target.clone(),
                    kind,
                    head_only,
                    extra,
                }),
                Err(r) => Route::Reply(r),
            },
            Err(r) => Route::Reply(r),
        },
        _ => Route::Reply(Reply::text(404, "404 page not found\n", head_only)),
    }
}

fn proxy(id: String, target: &str, kind: ProxyKind, head_only: bool, extra: Duration) -> Route {
    Route::Proxy(ProxyRequest {
        id,
        target: target.to_string(),
        kind,
        head_only,
        extra,
    })
}

fn page(ctype: &'static str, body: String, head_only: bool) -> Route {
    Route::Reply(Reply {
        status: 200,
        headers: vec![("Content-Type", ctype.into())],
        body: body.into_bytes(),
        head_only,
    })
}

/// Which `/debug/*` proxy, and how long past the shim timeout its head may
/// take. How the shim (Go's net/http/pprof) reads `seconds`: an integer
/// for profile and the named profiles, a float for trace; a value that
/// does not parse or is not positive means the default. A duration over
/// `max` (the default included) is refused with 400, as Go's pprof refuses
/// one longer than its server's write timeout: clamping would hand back a
/// shorter profile than asked without saying so.
fn debug_kind(req: &Request, max: Duration) -> Result<(ProxyKind, Duration), Reply> {
    let seconds = |default: f64, float: bool| {
        let v = query_value(&req.query, "seconds");
        let v = v.as_deref().unwrap_or("");
        let parsed = if float {
            v.parse::<f64>().ok()
        } else {
            v.parse::<i64>().ok().map(|n| n as f64)
        };
        let s = parsed
            .filter(|s| s.is_finite() && *s > 0.0)
            .unwrap_or(default);
        if s > max.as_secs_f64() {
            return Err(Reply::text(
                400,
                format!(
                    "seconds={s} is over the {} s a profile or trace may take here \
                     (--max-profile-duration); ask for less\n",
                    max.as_secs_f64()
                ),
                req.method == Method::Head,
            ));
        }
        Ok(Duration::from_secs_f64(s))
    };
    let stream = |content_type, disposition| ProxyKind::Debug {
        content_type,
        disposition,
    };
    Ok(match req.path.as_str() {
        "/debug/pprof/" => (ProxyKind::PprofIndex, Duration::ZERO),
        "/debug/pprof/symbol" => (
            stream(Some("text/plain; charset=utf-8"), None),
            Duration::ZERO,
        ),
        "/debug/pprof/trace" => (
            stream(
                Some("application/octet-stream"),
                Some("attachment; filename=\"trace\""),
            ),
            seconds(1.0, true)?,
        ),
        "/debug/pprof/profile" => (stream(None, None), seconds(30.0, false)?),
        // Named profiles (heap, allocs, block, mutex, goroutine, ...) take
        // `seconds` too: Go then answers a delta after that long.
        p if p.starts_with("/debug/pprof/") => (stream(None, None), seconds(0.0, false)?),
        _ => (stream(None, None), Duration::ZERO),
    })
}

/// The `sandbox` query parameter, or the 400/404 answer when it is missing,
/// does not decode, or is not a listed sandbox.
fn sandbox_param(req: &Request, ctx: &Ctx) -> Result<String, Reply> {
    let head_only = req.method == Method::Head;
    let Some(id) = query_value(&req.query, "sandbox")
        .or_else(|| (!query_has(&req.query, "sandbox")).then(String::new))
    else {
        return Err(Reply::text(
            400,
            "invalid sandbox parameter: bad percent-encoding\n",
            head_only,
        ));
    };
    if id.is_empty() {
        return Err(Reply::text(
            400,
            "missing sandbox parameter: use ?sandbox=<id>\n",
            head_only,
        ));
    }
    if ctx.reg.get(&id).is_none() {
        return Err(Reply::text(
            404,
            format!("sandbox {:?} not found\n", truncate(&id)),
            head_only,
        ));
    }
    Ok(id)
}

/// Refuse a request that would reach an excluded sandbox's shim (403), or
/// one whose runtime handler is not known yet while handler rules are set
/// (503: it may be allowed in a moment).
fn scrapable(id: String, ctx: &Ctx, head_only: bool) -> Result<String, Reply> {
    match ctx.reg.verdict(&id) {
        Some(Err(Excluded::HandlerUnknown)) => {
            let mut r = Reply::text(
                503,
                format!(
                    "sandbox {id}: {}; retry when the CRI runtime has listed it\n",
                    Excluded::HandlerUnknown.explain()
                ),
                head_only,
            );
            r.headers.push(("Retry-After", "1".into()));
            Err(r)
        }
        Some(Err(e)) => Err(Reply::text(
            403,
            format!("sandbox {id} is excluded from scraping: {}\n", e.explain()),
            head_only,
        )),
        _ => Ok(id),
    }
}

/// runtime-rs shims have no Go debug endpoints: say so (501) instead of
/// relaying their 404.
fn go_debug(id: String, path: &str, ctx: &Ctx, head_only: bool) -> Result<String, Reply> {
    let go_only = path == "/debug/vars" || path.starts_with("/debug/pprof");
    if go_only && ctx.reg.is_runtime_rs(&id) {
        return Err(Reply::text(
            501,
            format!(
                "sandbox {id} runs runtime-rs, whose shim has no Go debug endpoints (/debug/vars, /debug/pprof)\n"
            ),
            head_only,
        ));
    }
    Ok(id)
}

fn sandboxes_page(html: bool, reg: &Registry, debug_proxy: bool) -> (&'static str, String) {
    let mut body = String::new();
    if html {
        // Upstream's page, byte for byte (but for the order); the pprof
        // link only while the debug proxy is on; an excluded sandbox says
        // why instead of linking to what it refuses.
        body.push_str("<h1>Sandbox list</h1>\n<ul>\n");
        for id in reg.ids() {
            // Ids are [A-Za-z0-9._-]: nothing to escape in HTML.
            let q = percent_encode(id);
            let _ = write!(body, "<li>{id}: ");
            if let Some(Err(e)) = reg.verdict(id) {
                let _ = writeln!(
                    body,
                    "excluded ({}), <a href='/agent-url?sandbox={q}'>agent-url</a></li>",
                    html_escape(&e.explain())
                );
                continue;
            }
            if debug_proxy {
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
        // One id per line, as upstream; an excluded one says why after it.
        for id in reg.ids() {
            body.push_str(id);
            if let Some(Err(e)) = reg.verdict(id) {
                let _ = write!(body, " excluded={}", e.as_label());
            }
            body.push('\n');
        }
        ("text/plain; charset=utf-8", body)
    }
}

fn index_page(html: bool, debug_proxy: bool) -> (&'static str, String) {
    let mut list: Vec<(&str, &str)> = ENDPOINTS.to_vec();
    if debug_proxy {
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

/// Shorten untrusted text echoed in an error message.
fn truncate(s: &str) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::http::request;
    use crate::wire::http::request::Coding;

    fn req(s: &str) -> Request {
        request::parse(s.as_bytes()).unwrap().unwrap().0
    }

    fn reg() -> Registry {
        let mut r = Registry::new(vec!["/r".into()]);
        r.add(0, "sb1");
        r
    }

    fn route_of(s: &str) -> Route {
        let reg = reg();
        route(
            &req(s),
            &Ctx {
                reg: &reg,
                debug: DebugAccess::Served,
                max_profile: Duration::from_secs(3600),
            },
        )
    }

    fn status(r: &Route) -> u16 {
        match r {
            Route::Reply(r) => r.status,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn metrics_and_filters() {
        match route_of(
            "GET /metrics?filter_family=kata_guest&filter_family=x HTTP/1.1\r\nAccept-Encoding: gzip\r\nX-Prometheus-Scrape-Timeout-Seconds: 5\r\n\r\n",
        ) {
            Route::Metrics {
                filter,
                accept,
                head_only,
                scrape_timeout,
            } => {
                assert!(!filter.is_all() && filter.matches(b"kata_guest_load"));
                assert!(accept.allows(Coding::Gzip) && !head_only);
                assert_eq!(scrape_timeout, Some(5.0));
            }
            other => panic!("{other:?}"),
        }
        match route_of("HEAD /metrics HTTP/1.1\r\n\r\n") {
            Route::Metrics { head_only, .. } => assert!(head_only),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn only_listed_sandboxes_are_proxied() {
        match route_of("GET /metrics?sandbox=sb1 HTTP/1.1\r\n\r\n") {
            Route::Proxy(p) => assert_eq!((p.id.as_str(), p.kind), ("sb1", ProxyKind::Metrics)),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            status(&route_of("GET /metrics?sandbox=nope HTTP/1.1\r\n\r\n")),
            404
        );
        assert_eq!(
            status(&route_of("GET /metrics?sandbox=../../etc HTTP/1.1\r\n\r\n")),
            404
        );
        assert_eq!(
            status(&route_of("GET /metrics?sandbox=% HTTP/1.1\r\n\r\n")),
            400
        );
        assert_eq!(status(&route_of("GET /agent-url HTTP/1.1\r\n\r\n")), 400);
        assert_eq!(
            status(&route_of("GET /agent-url?sandbox= HTTP/1.1\r\n\r\n")),
            400
        );
        match route_of("GET /agent-url?sandbox=sb1 HTTP/1.1\r\n\r\n") {
            Route::Proxy(p) => assert_eq!(p.kind, ProxyKind::AgentUrl),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn debug_proxies_and_their_durations() {
        let extra = |q: &str| match route_of(&format!("GET {q} HTTP/1.1\r\n\r\n")) {
            Route::Proxy(p) => p.extra.as_secs_f64(),
            other => panic!("{other:?}"),
        };
        assert_eq!(extra("/debug/pprof/profile?sandbox=sb1"), 30.0);
        assert_eq!(extra("/debug/pprof/profile?sandbox=sb1&seconds=5"), 5.0);
        assert_eq!(extra("/debug/pprof/profile?sandbox=sb1&seconds=0"), 30.0);
        assert_eq!(
            extra("/debug/pprof/profile?sandbox=sb1&seconds=1.5"),
            30.0,
            "Go reads an integer"
        );
        assert_eq!(extra("/debug/pprof/trace?sandbox=sb1&seconds=1.5"), 1.5);
        assert_eq!(extra("/debug/pprof/heap?sandbox=sb1&seconds=2"), 2.0);
        assert_eq!(
            extra("/debug/pprof/profile?sandbox=sb1&seconds=3600"),
            3600.0
        );
        assert_eq!(
            status(&route_of(
                "GET /debug/pprof/profile?sandbox=sb1&seconds=3601 HTTP/1.1\r\n\r\n"
            )),
            400
        );
        assert_eq!(extra("/debug/vars?sandbox=sb1"), 0.0);
        match route_of("GET /debug/pprof/?sandbox=sb1 HTTP/1.1\r\n\r\n") {
            Route::Proxy(p) => assert_eq!(p.kind, ProxyKind::PprofIndex),
            other => panic!("{other:?}"),
        }
        match route_of("GET /debug/pprof?sandbox=sb1 HTTP/1.1\r\n\r\n") {
            Route::Reply(r) => {
                assert_eq!(r.status, 301);
                assert!(
                    r.headers
                        .contains(&("Location", "/debug/pprof/?sandbox=sb1".into()))
                );
            }
            other => panic!("{other:?}"),
        }
        let (_, index) = index_page(false, false);
        assert!(!index.contains("/debug"));
    }

    #[test]
    fn debug_endpoints_closed_by_default_off_loopback() {
        use DebugAccess::*;
        assert_eq!(DebugAccess::decide(None, true, false), Served);
        assert_eq!(DebugAccess::decide(None, false, true), Served);
        assert_eq!(DebugAccess::decide(None, false, false), ClosedByDefault);
        assert_eq!(DebugAccess::decide(Some(true), false, false), Served);
        assert_eq!(DebugAccess::decide(Some(false), true, true), Disabled);
        let reg = reg();
        for (debug, hint) in [
            (ClosedByDefault, "--enable-debug-proxy=true"),
            (Disabled, "disabled by --enable-debug-proxy=false"),
        ] {
            let ctx = Ctx {
                reg: &reg,
                debug,
                max_profile: Duration::from_secs(30),
            };
            for target in [
                "/debug/vars?sandbox=sb1",
                "/debug/pprof/profile?sandbox=sb1",
                "/debug/pprof",
                "/debug/pprof/",
                "/agent-url?sandbox=sb1",
                "/debug/anything",
            ] {
                match route(&req(&format!("GET {target} HTTP/1.1\r\n\r\n")), &ctx) {
                    Route::Reply(r) => {
                        assert_eq!(r.status, 403, "{target}");
                        assert!(String::from_utf8_lossy(&r.body).contains(hint));
                    }
                    other => panic!("{target}: {other:?}"),
                }
            }
            match route(&req("GET /metrics HTTP/1.1\r\n\r\n"), &ctx) {
                Route::Metrics { .. } => {}
                other => panic!("{other:?}"),
            }
            match route(&req("GET / HTTP/1.1\r\n\r\n"), &ctx) {
                Route::Reply(r) => assert!(!String::from_utf8_lossy(&r.body).contains("/debug")),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn profile_durations_are_capped() {
        let reg = reg();
        let ctx = Ctx {
            reg: &reg,
            debug: DebugAccess::Served,
            max_profile: Duration::from_secs(30),
        };
        let st = |t: &str| match route(&req(&format!("GET {t} HTTP/1.1\r\n\r\n")), &ctx) {
            Route::Reply(r) => r.status,
            Route::Proxy(p) => {
                assert!(p.extra <= Duration::from_secs(30));
                200
            }
            other => panic!("{other:?}"),
        };
        assert_eq!(
            st("/debug/pprof/profile?sandbox=sb1"),
            200,
            "Go's default 30 s"
        );
        assert_eq!(st("/debug/pprof/profile?sandbox=sb1&seconds=30"), 200);
        assert_eq!(st("/debug/pprof/profile?sandbox=sb1&seconds=31"), 400);
        assert_eq!(st("/debug/pprof/trace?sandbox=sb1&seconds=30.5"), 400);
        assert_eq!(st("/debug/pprof/heap?sandbox=sb1&seconds=600"), 400);
        assert_eq!(st("/debug/pprof/heap?sandbox=sb1"), 200);
        let short = Ctx {
            max_profile: Duration::from_secs(10),
            ..ctx
        };
        match route(
            &req("GET /debug/pprof/profile?sandbox=sb1 HTTP/1.1\r\n\r\n"),
            &short,
        ) {
            Route::Reply(r) => {
                assert_eq!(r.status, 400, "the default 30 s is over a 10 s cap");
                assert!(String::from_utf8_lossy(&r.body).contains("--max-profile-duration"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn excluded_and_runtime_rs_sandboxes() {
        use crate::state::exclusion::Rules;
        use crate::state::registry::PodMeta;
        let rules = Rules {
            handlers: vec!["kata-*-rs".into()],
            roots: 0,
            runtime_rs: 0b10,
        };
        let mut reg = Registry::with_rules(vec!["/go".into(), "/rs".into()], rules);
        for (root, id) in [(0, "ok"), (0, "fc"), (0, "new"), (1, "rs")] {
            reg.add(root, id);
        }
        let meta = |h: &str| PodMeta {
            uid: "u".into(),
            name: "n".into(),
            namespace: "ns".into(),
            runtime_handler: h.into(),
        };
        reg.set_meta("ok", Some(meta("kata-qemu")));
        reg.set_meta("fc", Some(meta("kata-fc-rs")));
        reg.set_meta("rs", Some(meta("kata-dragonball")));
        let ctx = Ctx {
            reg: &reg,
            debug: DebugAccess::Served,
            max_profile: Duration::from_secs(30),
        };
        let get = |t: &str| route(&req(&format!("GET {t} HTTP/1.1\r\n\r\n")), &ctx);
        let reply = |t: &str| match get(t) {
            Route::Reply(r) => (r.status, String::from_utf8(r.body).unwrap()),
            other => panic!("{t}: {other:?}"),
        };
        // Excluded: refused before anything reaches the shim, saying why.
        let (status, text) = reply("/metrics?sandbox=fc");
        assert_eq!(status, 403);
        assert!(
            text.contains("\"kata-fc-rs\" matches --exclude-runtime-handler \"kata-*-rs\""),
            "{text}"
        );
        assert_eq!(reply("/debug/vars?sandbox=fc").0, 403);
        assert!(
            matches!(get("/agent-url?sandbox=fc"), Route::Proxy(_)),
            "harmless: allowed"
        );
        // Handler not known yet: not now, maybe soon.
        assert_eq!(reply("/metrics?sandbox=new").0, 503);
        // runtime-rs: no Go debug endpoints, but its metrics are fine.
        assert_eq!(reply("/debug/vars?sandbox=rs").0, 501);
        assert_eq!(reply("/debug/pprof/heap?sandbox=rs").0, 501);
        assert!(reply("/debug/pprof/?sandbox=rs").1.contains("runtime-rs"));
        assert!(matches!(get("/metrics?sandbox=rs"), Route::Proxy(_)));
        assert!(matches!(get("/debug/vars?sandbox=ok"), Route::Proxy(_)));
        // Listed, marked.
        let (_, list) = reply("/sandboxes");
        assert_eq!(
            list,
            "fc excluded=runtime_handler\nnew excluded=runtime_handler_unknown\nok\nrs\n"
        );
    }

    #[test]
    fn pages_methods_and_unknown_paths() {
        assert_eq!(status(&route_of("POST /metrics HTTP/1.1\r\n\r\n")), 405);
        assert_eq!(status(&route_of("GET /nope HTTP/1.1\r\n\r\n")), 404);
        assert_eq!(
            route_of("HEAD /healthz HTTP/1.1\r\n\r\n"),
            Route::Health { head_only: true }
        );
        match route_of("GET /sandboxes HTTP/1.1\r\n\r\n") {
            Route::Reply(r) => assert_eq!(r.body, b"sb1\n"),
            other => panic!("{other:?}"),
        }
        match route_of("GET /sandboxes HTTP/1.1\r\nAccept: text/html\r\n\r\n") {
            Route::Reply(r) => assert!(
                String::from_utf8(r.body)
                    .unwrap()
                    .contains("<a href='/metrics?sandbox=sb1'>")
            ),
            other => panic!("{other:?}"),
        }
        match route_of("GET / HTTP/1.1\r\n\r\n") {
            Route::Reply(r) => assert!(
                String::from_utf8(r.body)
                    .unwrap()
                    .contains("/debug/pprof/trace")
            ),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            html_escape("<a href='x'>&\""),
            "&lt;a href=&#39;x&#39;&gt;&amp;&quot;"
        );
    }
}
