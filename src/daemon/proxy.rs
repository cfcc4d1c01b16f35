//! Requests forwarded to one sandbox's shim: `/metrics?sandbox=`,
//! `/agent-url` and the `/debug/*` pprof proxies.
//!
//! Owns: the answer to the client from the shim's head, and moving body bytes
//! from the shim connection to the client connection as the client accepts
//! them. The shim socket is read only when the client's output buffer is
//! empty (backpressure both ways); the loop keeps serving everything else
//! meanwhile. A shim that is missing, refuses, times out or breaks gives
//! 502/504 when nothing was sent yet, else the client connection is closed.

use super::conn::{Body, State};
use super::shim::{ShimConn, Step};
use super::slab::Key;
use super::{Daemon, Purpose, Shim};
use crate::wire::http::request::{Request, percent_encode, query_value};
use crate::wire::http::response::{self, CHUNK_END, CHUNK_HEAD_ROOM, Framing, LAST_CHUNK};
use std::time::{Duration, Instant};

/// Bodies collected before answering (agent URL, pprof index) are capped.
const MAX_COLLECT: usize = 1 << 20;

pub enum ProxyKind {
    /// `/metrics?sandbox=`: the raw body streamed through.
    Metrics,
    /// `/agent-url`: collected, answered with a newline appended.
    AgentUrl(Vec<u8>),
    /// `/debug/pprof/`: collected, links rewritten to carry `sandbox=`.
    PprofIndex(Vec<u8>),
    /// Other `/debug/*`: streamed with the shim's status and headers.
    Debug {
        content_type: Option<&'static str>,
        disposition: Option<&'static str>,
    },
}

pub struct Proxy {
    pub client: Key,
    pub kind: ProxyKind,
    pub sandbox: String,
    head_only: bool,
    /// The answer's head went to the client; body bytes follow.
    streaming: bool,
    chunked: bool,
    ended: bool,
    /// Inactivity timeout once the head arrived.
    idle: Duration,
    /// Until then a quiet shim is not timed out: a profile or trace of N
    /// seconds may send nothing for most of them.
    until: Instant,
}

/// What a client's pump got from `Daemon::proxy_pull`.
pub enum Pull {
    /// Bytes were queued.
    More,
    /// Nothing yet: the shim's readiness will resume the client.
    Wait,
    /// Body complete.
    Done,
    /// Broken mid-stream: close the client.
    Abort,
}

/// What to forward to a shim.
pub struct ProxyRequest {
    pub id: String,
    pub target: String,
    pub kind: ProxyKind,
    pub head_only: bool,
    /// Time for the shim's head to arrive (default: the shim timeout).
    pub timeout: Option<Duration>,
}

impl ProxyRequest {
    pub fn new(id: String, target: &str, kind: ProxyKind) -> ProxyRequest {
        ProxyRequest {
            id,
            target: target.to_string(),
            kind,
            head_only: false,
            timeout: None,
        }
    }

    pub fn head_only(mut self, h: bool) -> ProxyRequest {
        self.head_only = h;
        self
    }
}

impl Daemon {
    /// Forward `GET target` to the sandbox's shim for client `client`.
    pub(crate) fn start_proxy(&mut self, client: Key, r: ProxyRequest, now: Instant) {
        let ProxyRequest {
            id,
            target,
            kind,
            head_only,
            timeout,
        } = r;
        let id = id.as_str();
        let head_timeout = timeout.unwrap_or(self.cfg.shim_timeout);
        let Some(path) = self.reg.socket_path(id) else {
            return;
        };
        let buf = self.take_buf(0);
        let conn = match ShimConn::connect(
            &path,
            &target,
            true,
            self.cfg.max_shim_body.max(MAX_COLLECT as u64),
            buf,
            0,
            now,
            now + head_timeout,
        ) {
            Ok(c) => c,
            Err(why) => {
                log::warn!(sandbox:% = id, reason = why; "cannot reach shim");
                self.proxy_error(client, id, why, head_only, now);
                return;
            }
        };
        let http10 = self.conns.get(client).is_some_and(|c| c.http10);
        let shim = Shim {
            conn,
            id: id.to_string(),
            purpose: Purpose::Proxy(Proxy {
                client,
                kind,
                sandbox: id.to_string(),
                head_only,
                streaming: false,
                chunked: !http10,
                ended: false,
                idle: self.cfg.shim_timeout,
                until: now + head_timeout,
            }),
        };
        match self.register_shim(shim) {
            Ok(key) => self.proxy_progress(key, now),
            Err(_) => self.proxy_error(client, id, "register_failed", head_only, now),
        }
    }

    /// `/debug/*` for a listed sandbox.
    pub(crate) fn route_debug(&mut self, key: Key, req: &Request, head_only: bool, now: Instant) {
        let Some(id) = self.sandbox_param(key, req, now) else {
            return;
        };
        let p = req.path.as_str();
        // How the shim (Go's net/http/pprof) reads `seconds`: an integer for
        // profile and the named profiles, a float for trace; a value that
        // does not parse or is not positive means the default.
        let seconds = |default: f64, float: bool| {
            let v = query_value(&req.query, "seconds");
            let v = v.as_deref().unwrap_or("");
            let parsed = if float {
                v.parse::<f64>().ok()
            } else {
                v.parse::<i64>().ok().map(|n| n as f64)
            };
            parsed
                .filter(|s| s.is_finite() && *s > 0.0)
                .unwrap_or(default)
                .min(3600.0)
        };
        let (kind, extra) = match p {
            "/debug/pprof/" => (ProxyKind::PprofIndex(Vec::new()), 0.0),
            "/debug/pprof/symbol" => (
                ProxyKind::Debug {
                    content_type: Some("text/plain; charset=utf-8"),
                    disposition: None,
                },
                0.0,
            ),
            "/debug/pprof/trace" => (
                ProxyKind::Debug {
                    content_type: Some("application/octet-stream"),
                    disposition: Some("attachment; filename=\"trace\""),
                },
                seconds(1.0, true),
            ),
            "/debug/pprof/profile" => (
                ProxyKind::Debug {
                    content_type: None,
                    disposition: None,
                },
                seconds(30.0, false),
            ),
            // Named profiles (heap, allocs, block, mutex, goroutine, ...)
            // take `seconds` too: Go then answers a delta after that long.
            p if p.starts_with("/debug/pprof/") => (
                ProxyKind::Debug {
                    content_type: None,
                    disposition: None,
                },
                seconds(0.0, false),
            ),
            _ => (
                ProxyKind::Debug {
                    content_type: None,
                    disposition: None,
                },
                0.0,
            ),
        };
        // Profiles answer only after their duration.
        let r = ProxyRequest {
            id,
            target: req.target.clone(),
            kind,
            head_only,
            timeout: Some(self.cfg.shim_timeout + Duration::from_secs_f64(extra)),
        };
        self.start_proxy(key, r, now);
    }

    fn proxy_error(&mut self, client: Key, id: &str, why: &str, head_only: bool, now: Instant) {
        let status = if why == "timeout" { 504 } else { 502 };
        let msg = match why {
            "no_socket" | "refused" | "connect_failed" => {
                format!("sandbox {id}: shim not reachable ({why})\n")
            }
            "timeout" => format!("sandbox {id}: shim did not answer in time\n"),
            _ => format!("sandbox {id}: bad answer from shim ({why})\n"),
        };
        if self
            .conns
            .get(client)
            .is_some_and(|c| c.state == State::Waiting)
        {
            self.respond(
                client,
                status,
                &[
                    ("Content-Type", "text/plain; charset=utf-8"),
                    ("X-Content-Type-Options", "nosniff"),
                ],
                msg.as_bytes(),
                head_only,
                now,
            );
        }
    }

    /// Readiness on a proxied shim connection.
    pub(crate) fn proxy_progress(&mut self, key: Key, now: Instant) {
        loop {
            let Some(s) = self.shims.get_mut(key) else {
                return;
            };
            let Purpose::Proxy(p) = &mut s.purpose else {
                return;
            };
            let client = p.client;
            if !self
                .conns
                .get(client)
                .is_some_and(|c| c.state != State::Reading)
            {
                // The client went away.
                self.finish_shim(key);
                return;
            }
            if p.streaming {
                // Bytes move when the client's output is empty.
                if self.conns.get(client).is_some_and(|c| c.out.is_empty()) {
                    self.pump(client, now);
                }
                return;
            }
            match s.conn.drive() {
                Step::Pending => return,
                Step::Head => {
                    s.conn.deadline = (now + p.idle).max(p.until);
                    if !matches!(p.kind, ProxyKind::AgentUrl(_) | ProxyKind::PprofIndex(_)) {
                        self.proxy_head(key, now);
                        return;
                    }
                }
                Step::Data => {
                    let data = s.conn.available();
                    let n = data.len();
                    let (ProxyKind::AgentUrl(acc) | ProxyKind::PprofIndex(acc)) = &mut p.kind
                    else {
                        return;
                    };
                    if acc.len() + n > MAX_COLLECT {
                        self.proxy_failed(key, "body_too_large", now);
                        return;
                    }
                    acc.extend_from_slice(data);
                    s.conn.consume(n);
                }
                Step::Done => {
                    self.proxy_collected(key, now);
                    return;
                }
                Step::Failed(why) => {
                    self.proxy_failed(key, why, now);
                    return;
                }
            }
        }
    }

    /// The shim's head arrived for a streamed kind: answer the client's head.
    fn proxy_head(&mut self, key: Key, now: Instant) {
        let Some(s) = self.shims.get_mut(key) else {
            return;
        };
        let Purpose::Proxy(p) = &mut s.purpose else {
            return;
        };
        let Some(head) = s.conn.head().cloned() else {
            return;
        };
        let client = p.client;
        let Some(c) = self.conns.get_mut(client) else {
            self.finish_shim(key);
            return;
        };
        let mut headers: Vec<(&str, String)> = Vec::new();
        let status = match &p.kind {
            ProxyKind::Metrics => {
                if head.status != 200 {
                    let msg = format!(
                        "sandbox {}: shim answered status {}\n",
                        p.sandbox, head.status
                    );
                    let head_only = p.head_only;
                    self.finish_shim(key);
                    self.respond(
                        client,
                        502,
                        &[("Content-Type", "text/plain; charset=utf-8")],
                        msg.as_bytes(),
                        head_only,
                        now,
                    );
                    return;
                }
                headers.push((
                    "Content-Type",
                    "text/plain; version=0.0.4; charset=utf-8".into(),
                ));
                200
            }
            ProxyKind::Debug {
                content_type,
                disposition,
            } => {
                if let Some(t) = head.content_type.clone().or(content_type.map(String::from)) {
                    headers.push(("Content-Type", t));
                }
                if let Some(d) = head
                    .content_disposition
                    .clone()
                    .or(disposition.map(String::from))
                {
                    headers.push(("Content-Disposition", d));
                }
                headers.push(("X-Content-Type-Options", "nosniff".into()));
                head.status
            }
            ProxyKind::AgentUrl(_) | ProxyKind::PprofIndex(_) => return,
        };
        let framing = match head.framing {
            crate::wire::http::client::BodyFraming::Length(n) => Framing::Length(n),
            _ if p.chunked => Framing::Chunked,
            _ => Framing::Close,
        };
        p.chunked = framing == Framing::Chunked;
        let keep = c.keep_alive && framing != Framing::Close;
        c.keep_alive = keep;
        let hdrs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let mut out = Vec::with_capacity(256);
        response::head(&mut out, status, &hdrs, framing, keep);
        c.out.push(&out);
        c.state = State::Writing;
        c.deadline = now + super::WRITE_STALL;
        if p.head_only {
            c.body = Body::None;
            self.finish_shim(key);
        } else {
            p.streaming = true;
            c.body = Body::Proxy(key);
        }
        self.pump(client, now);
    }

    /// A collected body is complete: answer the client.
    fn proxy_collected(&mut self, key: Key, now: Instant) {
        let Some(s) = self.shims.get_mut(key) else {
            return;
        };
        let Purpose::Proxy(p) = &mut s.purpose else {
            return;
        };
        let status = s.conn.head().map_or(0, |h| h.status);
        let shim_type = s.conn.head().and_then(|h| h.content_type.clone());
        let client = p.client;
        let head_only = p.head_only;
        let sandbox = p.sandbox.clone();
        let kind = std::mem::replace(&mut p.kind, ProxyKind::Metrics);
        self.finish_shim(key);
        match kind {
            ProxyKind::AgentUrl(mut body) => {
                if status != 200 {
                    let msg = format!("sandbox {sandbox}: shim answered status {status}\n");
                    self.respond_text(client, 502, &msg, head_only, now);
                    return;
                }
                body.push(b'\n');
                self.respond(
                    client,
                    200,
                    &[("Content-Type", "text/plain; charset=utf-8")],
                    &body,
                    head_only,
                    now,
                );
            }
            ProxyKind::PprofIndex(body) => {
                // The shim's Content-Type is kept (a shim without pprof
                // answers 404 text/plain); links are rewritten in HTML only.
                let ctype = shim_type.unwrap_or_else(|| "text/html; charset=utf-8".into());
                let html = ctype.to_ascii_lowercase().starts_with("text/html");
                let page = if html {
                    rewrite_pprof_links(&String::from_utf8_lossy(&body), &sandbox).into_bytes()
                } else {
                    body
                };
                self.respond(
                    client,
                    status,
                    &[
                        ("Content-Type", ctype.as_str()),
                        ("X-Content-Type-Options", "nosniff"),
                    ],
                    &page,
                    head_only,
                    now,
                );
            }
            _ => {}
        }
    }

    pub(crate) fn proxy_failed(&mut self, key: Key, why: &'static str, now: Instant) {
        let Some(s) = self.shims.get(key) else {
            return;
        };
        let Purpose::Proxy(p) = &s.purpose else {
            return;
        };
        let (client, head_only, streaming) = (p.client, p.head_only, p.streaming);
        let id = s.id.clone();
        log::warn!(sandbox:% = id, reason = why; "shim proxy failed");
        self.finish_shim(key);
        if streaming {
            self.close(client);
        } else {
            self.proxy_error(client, &id, why, head_only, now);
        }
    }

    /// The client's output is empty: move the next bytes from the shim.
    pub(crate) fn proxy_pull(&mut self, client: Key, key: Key, now: Instant) -> Pull {
        let (Some(s), Some(c)) = (self.shims.get_mut(key), self.conns.get_mut(client)) else {
            return Pull::Abort;
        };
        let Purpose::Proxy(p) = &mut s.purpose else {
            return Pull::Abort;
        };
        if p.ended {
            return Pull::Done;
        }
        s.conn.deadline = (now + p.idle).max(p.until);
        loop {
            match s.conn.drive() {
                Step::Head => {}
                Step::Data => {
                    let data = s.conn.available();
                    let n = data.len();
                    if p.chunked {
                        let mut room = [0u8; CHUNK_HEAD_ROOM];
                        let start = response::chunk_head(&mut room, n);
                        c.out.push(&room[start..]);
                        c.out.push(data);
                        c.out.push(CHUNK_END);
                    } else {
                        c.out.push(data);
                    }
                    s.conn.consume(n);
                    return Pull::More;
                }
                Step::Pending => return Pull::Wait,
                Step::Done => {
                    p.ended = true;
                    if p.chunked {
                        c.out.push(LAST_CHUNK);
                        return Pull::More;
                    }
                    return Pull::Done;
                }
                Step::Failed(why) => {
                    log::warn!(sandbox:% = p.sandbox, reason = why; "shim broke mid-stream");
                    return Pull::Abort;
                }
            }
        }
    }
}

/// Make the pprof index's relative links (`<a href='NAME?QUERY'>`, either
/// quote) carry `sandbox=ID&`, as upstream does, so they work through the
/// monitor.
pub fn rewrite_pprof_links(page: &str, sandbox: &str) -> String {
    let sb = percent_encode(sandbox);
    let mut out = String::with_capacity(page.len() + 64);
    let mut rest = page;
    while let Some(i) = rest.find("<a href=") {
        let (before, tail) = rest.split_at(i + "<a href=".len());
        out.push_str(before);
        rest = tail;
        let Some(q) = rest.chars().next().filter(|c| *c == '\'' || *c == '"') else {
            continue;
        };
        let inner = &rest[1..];
        let Some(end) = inner.find(q) else {
            continue;
        };
        let link = &inner[..end];
        let relative = !link.contains("://") && !link.starts_with('/') && !link.starts_with('#');
        match link.split_once('?') {
            Some((name, query)) if relative && !name.is_empty() && !query.is_empty() => {
                out.push(q);
                out.push_str(name);
                out.push_str("?sandbox=");
                out.push_str(&sb);
                out.push('&');
                out.push_str(query);
                out.push(q);
                rest = &inner[end + 1..];
            }
            _ => {}
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pprof_links_rewritten() {
        let page = "<a href='allocs?debug=1'>allocs</a> <a href=\"heap?debug=1\">heap</a>\n\
                    <a href='goroutine?debug=2'>full</a> <a href='cmdline'>cmd</a> \
                    <a href='/abs?x=1'>abs</a> <a href=\"https://go.dev/?x=1\">doc</a>";
        let out = rewrite_pprof_links(page, "abc.1");
        assert!(out.contains("<a href='allocs?sandbox=abc.1&debug=1'>allocs</a>"));
        assert!(out.contains("<a href=\"heap?sandbox=abc.1&debug=1\">heap</a>"));
        assert!(out.contains("<a href='goroutine?sandbox=abc.1&debug=2'>full</a>"));
        assert!(out.contains("<a href='cmdline'>cmd</a>"));
        assert!(out.contains("<a href='/abs?x=1'>abs</a>"));
        assert!(out.contains("<a href=\"https://go.dev/?x=1\">doc</a>"));
        assert_eq!(rewrite_pprof_links("<a href=", "x"), "<a href=");
        assert_eq!(rewrite_pprof_links("<a href='x?y", "x"), "<a href='x?y");
    }
}
