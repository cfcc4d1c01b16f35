//! Requests forwarded to one sandbox's shim (`/metrics?sandbox=`,
//! `/agent-url`, `/debug/*`): what the client is answered, given what the
//! shim answers.
//!
//! Owns: the answer's head from the shim's head (status, Content-Type,
//! Content-Disposition, framing), the collected answers (agent URL, the
//! pprof index with its links rewritten), and the 502/504 answers for a
//! shim that fails. The reactor moves the bytes. Must not: touch a socket,
//! read the clock, log.

use super::outcome::FetchError;
use crate::wire::http::client::{BodyFraming, Head};
use crate::wire::http::request::percent_encode;
use std::time::{Duration, Instant};

/// Bodies collected before answering (agent URL, pprof index) are capped.
pub const MAX_COLLECT: usize = 1 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyKind {
    /// `/metrics?sandbox=`: the raw body streamed through.
    Metrics,
    /// `/agent-url`: collected, answered with a newline appended.
    AgentUrl,
    /// `/debug/pprof/`: collected, links rewritten to carry `sandbox=`.
    PprofIndex,
    /// Other `/debug/*`: streamed with the shim's status and headers, or
    /// these defaults (upstream's) when the shim sends none.
    Debug {
        content_type: Option<&'static str>,
        disposition: Option<&'static str>,
    },
}

impl ProxyKind {
    /// The body is collected, then answered whole.
    pub fn collects(self) -> bool {
        matches!(self, ProxyKind::AgentUrl | ProxyKind::PprofIndex)
    }
}

/// What to forward to a shim.
#[derive(Clone, Debug, PartialEq)]
pub struct ProxyRequest {
    pub id: String,
    pub target: String,
    pub kind: ProxyKind,
    pub head_only: bool,
    /// Added to the shim timeout for the head to arrive: a profile answers
    /// only after its duration.
    pub extra: Duration,
}

/// When a proxied exchange times out. The head may take the shim timeout
/// plus the profile's duration (a profile answers only after it); after
/// that, the shim may stay quiet for the shim timeout at a time, but is
/// never cut off before the profile's end (a trace of N seconds may send
/// nothing for most of them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deadlines {
    idle: Duration,
    until: Instant,
}

impl Deadlines {
    pub fn new(shim_timeout: Duration, extra: Duration, now: Instant) -> Deadlines {
        Deadlines {
            idle: shim_timeout,
            until: now + shim_timeout + extra,
        }
    }

    /// For the shim's head.
    pub fn head(&self) -> Instant {
        self.until
    }

    /// After the head or body bytes arrived at `now`.
    pub fn after_progress(&self, now: Instant) -> Instant {
        (now + self.idle).max(self.until)
    }
}

/// A complete small answer.
#[derive(Clone, Debug, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
    pub head_only: bool,
}

impl Reply {
    pub fn text(status: u16, body: impl Into<String>, head_only: bool) -> Reply {
        let mut headers = vec![("Content-Type", "text/plain; charset=utf-8".to_string())];
        if status >= 400 {
            // As Go's http.Error (upstream) sets it.
            headers.push(("X-Content-Type-Options", "nosniff".into()));
        }
        Reply {
            status,
            headers,
            body: body.into().into_bytes(),
            head_only,
        }
    }

    /// Headers as the response writer takes them.
    pub fn header_refs(&self) -> Vec<(&str, &str)> {
        self.headers.iter().map(|(k, v)| (*k, v.as_str())).collect()
    }
}

/// How to answer once the shim's head is in.
#[derive(Clone, Debug, PartialEq)]
pub enum OnHead {
    /// Keep reading: the body is collected first.
    Collect,
    /// Answer this head, then relay the body (`length`: the shim's
    /// Content-Length, else the client connection picks chunked or close).
    Stream {
        status: u16,
        headers: Vec<(&'static str, String)>,
        length: Option<u64>,
    },
    Reply(Reply),
}

/// The shim's head arrived for a request of `kind`.
pub fn on_head(kind: ProxyKind, head: &Head, sandbox: &str, head_only: bool) -> OnHead {
    let length = match head.framing {
        BodyFraming::Length(n) => Some(n),
        _ => None,
    };
    match kind {
        ProxyKind::AgentUrl | ProxyKind::PprofIndex => OnHead::Collect,
        ProxyKind::Metrics if head.status != 200 => OnHead::Reply(Reply::text(
            502,
            format!("sandbox {sandbox}: shim answered status {}\n", head.status),
            head_only,
        )),
        ProxyKind::Metrics => OnHead::Stream {
            status: 200,
            headers: vec![(
                "Content-Type",
                "text/plain; version=0.0.4; charset=utf-8".into(),
            )],
            length,
        },
        ProxyKind::Debug {
            content_type,
            disposition,
        } => {
            let mut headers = Vec::new();
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
            OnHead::Stream {
                status: head.status,
                headers,
                length,
            }
        }
    }
}

/// A collected body is complete.
pub fn collected(
    kind: ProxyKind,
    head: &Head,
    mut body: Vec<u8>,
    sandbox: &str,
    head_only: bool,
) -> Reply {
    match kind {
        ProxyKind::AgentUrl if head.status != 200 => Reply::text(
            502,
            format!("sandbox {sandbox}: shim answered status {}\n", head.status),
            head_only,
        ),
        ProxyKind::AgentUrl => {
            body.push(b'\n');
            Reply {
                status: 200,
                headers: vec![("Content-Type", "text/plain; charset=utf-8".into())],
                body,
                head_only,
            }
        }
        _ => {
            // The pprof index. The shim's Content-Type is kept (a shim
            // without pprof answers 404 text/plain); links are rewritten in
            // HTML only.
            let ctype = head
                .content_type
                .clone()
                .unwrap_or_else(|| "text/html; charset=utf-8".into());
            let html = ctype.to_ascii_lowercase().starts_with("text/html");
            let body = if html {
                rewrite_pprof_links(&String::from_utf8_lossy(&body), sandbox).into_bytes()
            } else {
                body
            };
            Reply {
                status: head.status,
                headers: vec![
                    ("Content-Type", ctype),
                    ("X-Content-Type-Options", "nosniff".into()),
                ],
                body,
                head_only,
            }
        }
    }
}

/// The answer when the shim fails before anything was sent: 504 for a
/// timeout, else 502, saying which.
pub fn error_reply(sandbox: &str, err: FetchError, head_only: bool) -> Reply {
    let (status, msg) = match err {
        FetchError::Timeout => (
            504,
            format!("sandbox {sandbox}: shim did not answer in time\n"),
        ),
        e if e.unreachable() => (
            502,
            format!("sandbox {sandbox}: shim not reachable ({})\n", e.as_label()),
        ),
        e => (
            502,
            format!(
                "sandbox {sandbox}: bad answer from shim ({})\n",
                e.as_label()
            ),
        ),
    };
    Reply::text(status, msg, head_only)
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

/// Profiles and traces running, by sandbox: at most one each, since a
/// second would make the shim profile itself twice over (Go's pprof
/// refuses a concurrent CPU profile anyway, after its whole duration).
/// A request is timed when it has a duration (`extra`).
#[derive(Default)]
pub struct Profiling {
    /// Sandbox id, and when its profile's answer is due at the latest.
    running: std::collections::HashMap<String, Instant>,
}

impl Profiling {
    /// May a request for `id` with duration `extra` start now? `Err`: the
    /// 429 answer, while another profile of `id` runs.
    pub fn admit(
        &self,
        id: &str,
        extra: Duration,
        head_only: bool,
        now: Instant,
    ) -> Result<(), Reply> {
        let Some(&due) = self.running.get(id).filter(|_| !extra.is_zero()) else {
            return Ok(());
        };
        let wait = due.saturating_duration_since(now).as_secs().max(1);
        let mut r = Reply::text(
            429,
            format!(
                "a profile or trace of sandbox {id} is running; one at a time per sandbox, \
                 retry in {wait} s\n"
            ),
            head_only,
        );
        r.headers.push(("Retry-After", wait.to_string()));
        Err(r)
    }

    /// A timed request for `id` started; its answer is due by `until`.
    pub fn begin(&mut self, id: &str, until: Instant) {
        self.running.insert(id.to_string(), until);
    }

    /// The profile of `id` ended (answered, failed or abandoned).
    pub fn end(&mut self, id: &str) {
        self.running.remove(id);
    }

    /// Profiles and traces running.
    pub fn running(&self) -> usize {
        self.running.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_profile_per_sandbox_at_a_time() {
        let now = Instant::now();
        let secs = Duration::from_secs;
        let mut p = Profiling::default();
        assert_eq!(p.admit("a", secs(30), false, now), Ok(()));
        p.begin("a", now + secs(33));
        let r = p.admit("a", secs(5), false, now + secs(10)).unwrap_err();
        assert_eq!(r.status, 429);
        assert!(r.headers.contains(&("Retry-After", "23".into())));
        assert_eq!(
            p.admit("a", secs(0), false, now),
            Ok(()),
            "untimed: still served"
        );
        assert_eq!(p.admit("b", secs(1), false, now), Ok(()));
        assert_eq!(p.running(), 1);
        p.end("a");
        assert_eq!(p.running(), 0);
        assert_eq!(p.admit("a", secs(1), false, now), Ok(()));
    }

    fn head(status: u16, ctype: Option<&str>, framing: BodyFraming) -> Head {
        Head {
            status,
            framing,
            content_type: ctype.map(String::from),
            content_disposition: None,
            keep_alive: false,
        }
    }

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

    #[test]
    fn heads_decide_the_answer() {
        let ok = head(200, None, BodyFraming::Length(5));
        assert_eq!(
            on_head(ProxyKind::AgentUrl, &ok, "s", false),
            OnHead::Collect
        );
        match on_head(ProxyKind::Metrics, &ok, "s", false) {
            OnHead::Stream { status, length, .. } => assert_eq!((status, length), (200, Some(5))),
            other => panic!("{other:?}"),
        }
        match on_head(
            ProxyKind::Metrics,
            &head(500, None, BodyFraming::Close),
            "s",
            false,
        ) {
            OnHead::Reply(r) => assert_eq!(r.status, 502),
            other => panic!("{other:?}"),
        }
        let debug = ProxyKind::Debug {
            content_type: Some("application/octet-stream"),
            disposition: Some("attachment; filename=\"trace\""),
        };
        match on_head(debug, &head(200, None, BodyFraming::Chunked), "s", false) {
            OnHead::Stream {
                headers, length, ..
            } => {
                assert_eq!(length, None);
                assert!(headers.contains(&("Content-Type", "application/octet-stream".into())));
                assert!(headers.iter().any(|h| h.0 == "Content-Disposition"));
            }
            other => panic!("{other:?}"),
        }
        // The shim's own Content-Type wins over the default.
        match on_head(
            debug,
            &head(404, Some("text/plain"), BodyFraming::Close),
            "s",
            false,
        ) {
            OnHead::Stream {
                status, headers, ..
            } => {
                assert_eq!(status, 404);
                assert!(headers.contains(&("Content-Type", "text/plain".into())));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn collected_answers() {
        let ok = head(200, None, BodyFraming::Close);
        let r = collected(
            ProxyKind::AgentUrl,
            &ok,
            b"vsock://3:1024".to_vec(),
            "s",
            false,
        );
        assert_eq!(
            (r.status, r.body.as_slice()),
            (200, &b"vsock://3:1024\n"[..])
        );
        let r = collected(
            ProxyKind::AgentUrl,
            &head(500, None, BodyFraming::Close),
            Vec::new(),
            "s",
            true,
        );
        assert_eq!(r.status, 502);
        assert!(r.head_only);
        let r = collected(
            ProxyKind::PprofIndex,
            &ok,
            b"<a href='heap?debug=1'>".to_vec(),
            "s 1",
            false,
        );
        assert_eq!(r.body, b"<a href='heap?sandbox=s%201&debug=1'>");
        let plain = head(404, Some("text/plain; charset=utf-8"), BodyFraming::Close);
        let r = collected(
            ProxyKind::PprofIndex,
            &plain,
            b"<a href='heap?x=1'>".to_vec(),
            "s",
            false,
        );
        assert_eq!(r.status, 404);
        assert_eq!(r.body, b"<a href='heap?x=1'>", "not HTML: untouched");
    }

    #[test]
    fn profiles_extend_the_deadlines() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        // A 30 s profile against a 3 s shim timeout.
        let d = Deadlines::new(s(3), s(30), t0);
        assert_eq!(d.head(), t0 + s(33));
        // Quiet stretches during the profile are not cut off...
        assert_eq!(d.after_progress(t0 + s(1)), t0 + s(33));
        // ...after it, the shim timeout applies from the last bytes.
        assert_eq!(d.after_progress(t0 + s(40)), t0 + s(43));
        // No profile: the plain shim timeout.
        let d = Deadlines::new(s(1), Duration::ZERO, t0);
        assert_eq!(d.head(), t0 + s(1));
        assert_eq!(d.after_progress(t0 + s(5)), t0 + s(6));
    }

    #[test]
    fn errors_say_what_failed() {
        let r = error_reply("s", FetchError::Timeout, false);
        assert_eq!(r.status, 504);
        let r = error_reply("s", FetchError::Refused, false);
        assert_eq!(r.status, 502);
        assert!(
            String::from_utf8(r.body)
                .unwrap()
                .contains("not reachable (refused)")
        );
        let r = error_reply("s", FetchError::BadChunk, false);
        assert!(
            String::from_utf8(r.body)
                .unwrap()
                .contains("bad answer from shim (bad_chunk)")
        );
        assert!(r.headers.iter().any(|h| h.0 == "X-Content-Type-Options"));
    }
}
