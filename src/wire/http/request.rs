//! Server side: parse an HTTP/1.x request head from a client (untrusted).
//!
//! Owns: `httparse` over the bytes received so far, the head size limit,
//! framing checks, and decoding of what the routes need (path, query
//! parameters, `Accept`, `Accept-Encoding`, `Connection`, Prometheus's scrape
//! timeout header). "Need more bytes" (`Ok(None)`) is kept apart from errors.
//!
//! Strict where a lax reading is an attack: `Content-Length` is digits only
//! and repeated ones must agree (request smuggling behind a proxy), and a
//! path with a `.` or `..` segment, raw or percent-encoded, is refused
//! (400) rather than normalized: it is never forwarded to a shim, and no
//! client of the monitor needs one.

/// Largest request head accepted; beyond it the answer is 431.
pub const MAX_HEAD: usize = 8 * 1024;
const MAX_HEADERS: usize = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Other,
}

/// What the routes need of a request.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    pub method: Method,
    /// Path without the query string, percent-decoded.
    pub path: String,
    /// Raw query string (after `?`, without fragment).
    pub query: String,
    /// Raw origin-form target (`/path?query`), for forwarding unchanged.
    pub target: String,
    /// Minor version: 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor: u8,
    /// The client wants the connection kept open after the response.
    pub keep_alive: bool,
    /// What `Accept-Encoding` allows of the codings the monitor speaks.
    pub accept: AcceptEncoding,
    /// `Accept` lists `text/html`.
    pub html: bool,
    /// `X-Prometheus-Scrape-Timeout-Seconds`, when present and sane.
    pub scrape_timeout: Option<f64>,
    /// Bytes of request body that follow the head (to be read and ignored).
    pub body_len: u64,
}

/// Why a request head is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// Head larger than [`MAX_HEAD`] or too many headers: 431.
    TooLarge,
    /// Malformed (including a bad `Content-Length` and dot segments in the
    /// path): 400.
    Bad,
    /// A request body we do not support (chunked): 501... answered 400 too.
    UnsupportedBody,
}

/// Parse a request head at the start of `buf`. `Ok(None)`: incomplete, read
/// more. `Ok(Some((req, n)))`: the head is `buf[..n]`.
pub fn parse(buf: &[u8]) -> Result<Option<(Request, usize)>, Error> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let n = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            return if buf.len() > MAX_HEAD {
                Err(Error::TooLarge)
            } else {
                Ok(None)
            };
        }
        Err(httparse::Error::TooManyHeaders) => return Err(Error::TooLarge),
        Err(_) => return Err(Error::Bad),
    };
    if n > MAX_HEAD {
        return Err(Error::TooLarge);
    }
    let method = match req.method {
        Some("GET") => Method::Get,
        Some("HEAD") => Method::Head,
        _ => Method::Other,
    };
    let minor = req.version.unwrap_or(1);
    let target = req.path.unwrap_or("/");
    let target = target.split('#').next().unwrap_or("");
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, q),
        None => (target, ""),
    };
    // Absolute-form targets (`http://host/path`) are legal; keep the path.
    let path = match path.strip_prefix("http://") {
        Some(rest) => rest.find('/').map_or("/", |i| &rest[i..]),
        None => path,
    };
    let decoded = percent_decode(path).ok_or(Error::Bad)?;
    if has_dot_segment(&decoded) {
        return Err(Error::Bad);
    }
    let mut out = Request {
        method,
        path: decoded,
        query: query.to_string(),
        target: if query.is_empty() {
            path.to_string()
        } else {
            format!("{path}?{query}")
        },
        minor,
        keep_alive: minor >= 1,
        accept: AcceptEncoding::default(),
        html: false,
        scrape_timeout: None,
        body_len: 0,
    };
    let mut length = None;
    for h in req.headers.iter() {
        let v = std::str::from_utf8(h.value).unwrap_or("");
        if h.name.eq_ignore_ascii_case("connection") {
            for t in v.split(',').map(str::trim) {
                if t.eq_ignore_ascii_case("close") {
                    out.keep_alive = false;
                } else if t.eq_ignore_ascii_case("keep-alive") && minor == 0 {
                    out.keep_alive = true;
                }
            }
        } else if h.name.eq_ignore_ascii_case("accept-encoding") {
            out.accept.add(v);
        } else if h.name.eq_ignore_ascii_case("accept") {
            out.html |= v.split(',').any(|t| {
                t.split(';')
                    .next()
                    .is_some_and(|m| m.trim().eq_ignore_ascii_case("text/html"))
            });
        } else if h
            .name
            .eq_ignore_ascii_case("x-prometheus-scrape-timeout-seconds")
        {
            out.scrape_timeout = v
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|t| t.is_finite() && *t > 0.0);
        } else if h.name.eq_ignore_ascii_case("content-length") {
            length = Some(super::fold_content_length(length, h.value).ok_or(Error::Bad)?);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(Error::UnsupportedBody);
        }
    }
    out.body_len = length.unwrap_or(0);
    Ok(Some((out, n)))
}

/// Does the (decoded) path have a `.` or `..` segment?
pub fn has_dot_segment(path: &str) -> bool {
    path.split('/').any(|seg| seg == "." || seg == "..")
}

/// A content coding of a `/metrics` answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Coding {
    Identity,
    Gzip,
    Zstd,
}

/// One listed coding: its q in thousandths and where it was listed (across
/// all `Accept-Encoding` headers of the request).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Listed {
    q: u16,
    at: u16,
}

/// What `Accept-Encoding` says of gzip, zstd and `*` (RFC 9110 12.5.3).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AcceptEncoding {
    gzip: Option<Listed>,
    zstd: Option<Listed>,
    star: Option<Listed>,
    items: u16,
}

impl AcceptEncoding {
    /// Parse one header value (repeated headers add up; a coding listed
    /// twice keeps its first listing).
    pub fn parse(v: &str) -> AcceptEncoding {
        let mut a = AcceptEncoding::default();
        a.add(v);
        a
    }

    pub fn add(&mut self, v: &str) {
        for item in v.split(',') {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or("").trim();
            if coding.is_empty() {
                continue;
            }
            let q = parts
                .filter_map(|p| {
                    let p = p.trim();
                    p.strip_prefix("q=").or(p.strip_prefix("Q="))
                })
                .next()
                .map_or(1000, parse_q);
            let l = Some(Listed { q, at: self.items });
            self.items = self.items.saturating_add(1);
            let slot =
                if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
                    &mut self.gzip
                } else if coding.eq_ignore_ascii_case("zstd") {
                    &mut self.zstd
                } else if coding == "*" {
                    &mut self.star
                } else {
                    continue;
                };
            if slot.is_none() {
                *slot = l;
            }
        }
    }

    /// Does the request allow `coding` (q above 0, listed or through `*`)?
    pub fn allows(&self, coding: Coding) -> bool {
        self.listing(coding).is_some_and(|l| l.q > 0)
    }

    fn listing(&self, coding: Coding) -> Option<Listed> {
        match coding {
            Coding::Identity => None,
            Coding::Gzip => self.gzip.or(self.star),
            Coding::Zstd => self.zstd.or(self.star),
        }
    }

    /// The coding to answer with, among those the server offers: the
    /// highest q wins; on equal q gzip, unless zstd was listed before it.
    pub fn choose(&self, gzip: bool, zstd: bool) -> Coding {
        let g = self.listing(Coding::Gzip).filter(|l| gzip && l.q > 0);
        let z = self.listing(Coding::Zstd).filter(|l| zstd && l.q > 0);
        match (g, z) {
            (None, None) => Coding::Identity,
            (Some(_), None) => Coding::Gzip,
            (None, Some(_)) => Coding::Zstd,
            (Some(g), Some(z)) if z.q > g.q || (z.q == g.q && z.at < g.at) => Coding::Zstd,
            (Some(_), Some(_)) => Coding::Gzip,
        }
    }
}

/// A q-value (`0`, `0.5`, `1.000`) in thousandths; malformed is 0 (refused).
fn parse_q(v: &str) -> u16 {
    let v = v.trim();
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return 0;
    }
    let mut thousandths = 0u16;
    for i in 0..3 {
        let d = frac.as_bytes().get(i).map_or(0, |b| u16::from(b - b'0'));
        thousandths = thousandths * 10 + d;
    }
    match int {
        "0" => thousandths,
        "1" if thousandths == 0 => 1000,
        _ => 0,
    }
}

/// Values of query parameter `key` (percent- and `+`-decoded), in order.
pub fn query_values<'a>(query: &'a str, key: &'a str) -> impl Iterator<Item = String> + 'a {
    pairs(query)
        .filter(move |(k, _)| k.as_deref() == Some(key))
        .filter_map(|(_, v)| percent_decode(&v.replace('+', " ")))
}

/// Whether `key` appears in the query at all, even with a value that does
/// not decode (so a bad `?sandbox=%` is an error, not "no sandbox").
pub fn query_has(query: &str, key: &str) -> bool {
    pairs(query).any(|(k, _)| k.as_deref() == Some(key))
}

/// `key=value` pairs: the decoded key (`None` when it does not decode) and
/// the raw value.
fn pairs(query: &str) -> impl Iterator<Item = (Option<String>, &str)> {
    query.split('&').map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(&k.replace('+', " ")), v)
    })
}

/// First value of `key`, if present.
pub fn query_value(query: &str, key: &str) -> Option<String> {
    query_values(query, key).next()
}

/// Decode `%XX` escapes; `None` for bad escapes or invalid UTF-8.
pub fn percent_decode(s: &str) -> Option<String> {
    if !s.contains('%') {
        return Some(s.to_string());
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b.get(i + 1..i + 3)?;
            let v = u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?;
            out.push(v);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Escape a query parameter value for building links.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(s: &str) -> Request {
        parse(s.as_bytes()).unwrap().unwrap().0
    }

    #[test]
    fn complete_partial_and_errors() {
        assert_eq!(parse(b"GET / HTTP/1.1\r\nHost: x\r\n"), Ok(None));
        assert_eq!(parse(b""), Ok(None));
        let (r, n) = parse(b"GET /metrics?x=1 HTTP/1.1\r\nHost: x\r\n\r\nrest")
            .unwrap()
            .unwrap();
        assert_eq!(n, 38);
        assert_eq!(r.path, "/metrics");
        assert_eq!(r.query, "x=1");
        assert_eq!(r.target, "/metrics?x=1");
        assert!(r.keep_alive);
        assert_eq!(parse(b"GARBAGE\r\n\r\n"), Err(Error::Bad));
        let big = format!("GET / HTTP/1.1\r\nX: {}\r\n", "a".repeat(MAX_HEAD));
        assert_eq!(parse(big.as_bytes()), Err(Error::TooLarge));
        let many: String = (0..70).map(|i| format!("H{i}: v\r\n")).collect();
        assert_eq!(
            parse(format!("GET / HTTP/1.1\r\n{many}\r\n").as_bytes()),
            Err(Error::TooLarge)
        );
        assert_eq!(
            parse(b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Err(Error::UnsupportedBody)
        );
    }

    #[test]
    fn methods_versions_connection() {
        assert_eq!(req("HEAD / HTTP/1.1\r\n\r\n").method, Method::Head);
        assert_eq!(req("POST / HTTP/1.1\r\n\r\n").method, Method::Other);
        assert!(!req("GET / HTTP/1.0\r\n\r\n").keep_alive);
        assert!(req("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive);
        assert!(!req("GET / HTTP/1.1\r\nConnection: foo, close\r\n\r\n").keep_alive);
        assert_eq!(req("GET http://h:1/p?q HTTP/1.1\r\n\r\n").path, "/p");
        assert_eq!(req("GET /a%2Fb HTTP/1.1\r\n\r\n").path, "/a/b");
        assert_eq!(
            req("GET / HTTP/1.1\r\nContent-Length: 5\r\n\r\n").body_len,
            5
        );
        assert_eq!(
            req("GET / HTTP/1.1\r\nContent-Length: 5\r\ncontent-length:  5 \r\n\r\n").body_len,
            5
        );
    }

    /// RFC 9110 §8.6: digits only, repeated values equal. Anything else is
    /// a request a proxy in front of the monitor may frame differently.
    #[test]
    fn content_length_is_strict() {
        for v in [
            "+5",
            "-1",
            "5 5",
            "5,5",
            "5, 5",
            "0x5",
            "5a",
            "",
            "99999999999999999999",
        ] {
            let head = format!("GET / HTTP/1.1\r\nContent-Length: {v}\r\n\r\n");
            assert_eq!(parse(head.as_bytes()), Err(Error::Bad), "{v:?}");
        }
        assert_eq!(
            parse(b"GET / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"),
            Err(Error::Bad)
        );
        assert_eq!(
            parse(b"GET / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: +5\r\n\r\n"),
            Err(Error::Bad)
        );
    }

    /// `.` and `..` segments, raw or percent-encoded, are refused before
    /// anything could forward them to a shim.
    #[test]
    fn dot_segments_are_refused() {
        for t in [
            "/debug/pprof/../../x",
            "/debug/pprof/..",
            "/debug/./vars",
            "/.",
            "/debug/pprof/%2e%2e/%2E%2E/x",
            "/debug/pprof/.%2e/x",
            "/debug/pprof/..%2fx",
            "/debug/pprof/%2e/x",
            "http://h/debug/../x",
            "/debug/pprof/..?sandbox=a",
        ] {
            let head = format!("GET {t} HTTP/1.1\r\n\r\n");
            assert_eq!(parse(head.as_bytes()), Err(Error::Bad), "{t}");
        }
        for t in [
            "/debug/pprof/...",
            "/debug/pprof/.x",
            "/debug/pprof/x..",
            "/debug/pprof/heap?x=..",
            "/debug/pprof/a.b",
            "//x",
        ] {
            assert!(
                parse(format!("GET {t} HTTP/1.1\r\n\r\n").as_bytes()).is_ok(),
                "{t}"
            );
        }
    }

    #[test]
    fn prometheus_headers() {
        let r = req(
            "GET /metrics HTTP/1.1\r\nAccept: application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1\r\nAccept-Encoding: gzip\r\nX-Prometheus-Scrape-Timeout-Seconds: 10\r\n\r\n",
        );
        assert_eq!(r.accept.choose(true, true), Coding::Gzip);
        assert!(!r.html);
        assert_eq!(r.scrape_timeout, Some(10.0));
        let r = req(
            "GET / HTTP/1.1\r\nAccept: text/html,application/xhtml+xml\r\nX-Prometheus-Scrape-Timeout-Seconds: nan\r\n\r\n",
        );
        assert!(r.html);
        assert_eq!(r.scrape_timeout, None);
    }

    #[test]
    fn gzip_negotiation() {
        for (v, want) in [
            ("gzip", true),
            ("GZIP", true),
            ("deflate, gzip;q=0.5", true),
            ("gzip;q=0", false),
            ("gzip; q=0.0", false),
            ("*", true),
            ("*;q=0", false),
            ("gzip;q=0, *", false),
            ("identity", false),
            ("x-gzip", true),
            ("br", false),
            ("", false),
            ("gzip;q=2", false),
            ("gzip;q=0.001", true),
            ("gzip;q=0.0001", false),
            ("gzip;q=abc", false),
        ] {
            assert_eq!(AcceptEncoding::parse(v).allows(Coding::Gzip), want, "{v}");
        }
    }

    #[test]
    fn zstd_negotiation() {
        use Coding::{Gzip, Identity, Zstd};
        for (v, want) in [
            ("zstd", Zstd),
            ("ZSTD", Zstd),
            ("gzip, zstd", Gzip),
            // Prometheus 3 with its zstd-scrape feature.
            ("zstd,gzip", Zstd),
            ("gzip;q=0.5, zstd;q=0.8", Zstd),
            ("zstd;q=0.5, gzip", Gzip),
            ("zstd;q=0, gzip", Gzip),
            ("zstd;q=0, gzip;q=0", Identity),
            ("*", Gzip),
            ("zstd, *", Zstd),
            ("*, zstd", Gzip),
            ("gzip;q=0, *", Zstd),
            ("identity", Identity),
            ("br, deflate", Identity),
            ("", Identity),
        ] {
            assert_eq!(AcceptEncoding::parse(v).choose(true, true), want, "{v}");
        }
        // Only what the server offers.
        assert_eq!(AcceptEncoding::parse("zstd,gzip").choose(true, false), Gzip);
        assert_eq!(
            AcceptEncoding::parse("zstd,gzip").choose(false, false),
            Identity
        );
        assert_eq!(AcceptEncoding::parse("gzip,zstd").choose(false, true), Zstd);
        // Repeated headers add up.
        let mut a = AcceptEncoding::parse("zstd;q=0.9");
        a.add("gzip;q=0.9, zstd");
        assert_eq!(a.choose(true, true), Zstd);
    }

    #[test]
    fn query_parsing() {
        let q = "filter_family=kata_guest%2Ckata_shim&sandbox=abc&filter_family=x+y&bad=%zz";
        let v: Vec<String> = query_values(q, "filter_family").collect();
        assert_eq!(v, ["kata_guest,kata_shim", "x y"]);
        assert_eq!(query_value(q, "sandbox").as_deref(), Some("abc"));
        assert_eq!(query_value(q, "bad"), None);
        assert_eq!(query_value("sandbox", "sandbox").as_deref(), Some(""));
        assert_eq!(percent_encode("a b/é"), "a%20b%2F%C3%A9");
        assert_eq!(percent_decode("%C3%A9").as_deref(), Some("é"));
        assert_eq!(percent_decode("%ff"), None);
        assert_eq!(percent_decode("%4"), None);
        assert!(query_has(q, "bad") && query_has(q, "sandbox"));
        assert!(query_has("sandbox", "sandbox") && query_has("a=1&sandbox=%", "sandbox"));
        assert!(!query_has(q, "nope") && !query_has("", "sandbox"));
    }
}
