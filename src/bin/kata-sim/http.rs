//! Minimal HTTP/1.x server side: request heads in, response heads and bodies out.
//!
//! Behaves like Go's `net/http` server where a client could notice: keep-alive
//! by default for HTTP/1.1, `Connection: close` honoured, HTTP/1.0 closed after
//! one response, `Host` required for HTTP/1.1, `400 Bad Request` (then close)
//! for anything malformed.  Never panics on client bytes.  Request bodies are
//! skipped; nothing of the request is echoed back.

use std::io::{self, IoSlice, Read, Write};
use std::os::unix::io::AsRawFd;
use std::os::unix::net::UnixStream;
use std::time::{SystemTime, UNIX_EPOCH};

/// Largest request head we accept (Go allows 1 MB; nobody sends that much).
const MAX_HEAD: usize = 64 * 1024;
/// Largest request body we skip to keep the connection; bigger ones close it.
const MAX_SKIP: usize = 64 * 1024;

/// A parsed request head.
#[derive(Debug)]
pub struct Request {
    pub method: String,
    /// Percent-decoded path.
    pub path: Vec<u8>,
    /// Raw query string (after `?`), possibly empty.
    pub query: String,
    pub http10: bool,
    /// Close the connection after the response.
    pub close: bool,
}

impl Request {
    /// The percent-decoded value of query parameter `key`, if present.
    pub fn param(&self, key: &str) -> Option<String> {
        self.query.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            if decode(k.as_bytes(), true)? != key.as_bytes() {
                return None;
            }
            Some(String::from_utf8_lossy(&decode(v.as_bytes(), true)?).into_owned())
        })
    }
}

pub enum ReadError {
    /// Clean end of the connection between requests, or an I/O error.
    Closed,
    /// Malformed request: answer with this status and body, then close.
    Bad(&'static str, &'static str),
}

/// A server connection: the stream plus unconsumed input.
pub struct Conn {
    pub stream: UnixStream,
    buf: Vec<u8>,
}

impl Conn {
    pub fn new(stream: UnixStream) -> Conn {
        Conn {
            stream,
            buf: Vec::with_capacity(4096),
        }
    }

    /// Reads and parses the next request head, skipping any request body.
    pub fn read_request(&mut self) -> Result<Request, ReadError> {
        let head_len = loop {
            if let Some(n) = head_end(&self.buf) {
                break n;
            }
            if self.buf.len() >= MAX_HEAD {
                return Err(ReadError::Bad(
                    "431 Request Header Fields Too Large",
                    "431 Request Header Fields Too Large",
                ));
            }
            if self.fill()? == 0 {
                return Err(ReadError::Closed);
            }
        };
        let (mut req, body_len) = parse_head(&self.buf[..head_len])?;
        self.buf.drain(..head_len);
        match body_len {
            Some(n) if n <= MAX_SKIP => {
                while self.buf.len() < n {
                    if self.fill()? == 0 {
                        return Err(ReadError::Closed);
                    }
                }
                self.buf.drain(..n);
            }
            Some(_) | None => {
                // Too big to skip, or chunked: answer, then close.
                req.close = true;
                self.buf.clear();
            }
        }
        Ok(req)
    }

    fn fill(&mut self) -> Result<usize, ReadError> {
        let mut tmp = [0u8; 4096];
        loop {
            // Wait for readability the way a Go shim's netpoller does
            // (epoll), not in a blocking read: a thread sleeping in read(2)
            // is woken each time the monitor drains a chunk of the previous
            // response (socket write space), an IPI per chunk that real
            // shims do not cost the monitor.
            let mut pfd = libc::pollfd {
                fd: self.stream.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd for the duration of the call.
            if unsafe { libc::poll(&mut pfd, 1, -1) } < 0
                && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted
            {
                continue;
            }
            match self.stream.read(&mut tmp) {
                Ok(n) => {
                    self.buf.extend_from_slice(&tmp[..n]);
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return Err(ReadError::Closed),
            }
        }
    }

    /// Writes bytes as they are (a streamed response head).
    pub fn write_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Ends a streamed body: the last chunk if chunked, nothing otherwise.
    pub fn end_chunked(&mut self, framing: Framing) -> io::Result<()> {
        if framing == Framing::Chunked {
            self.stream.write_all(b"0\r\n\r\n")?;
        }
        Ok(())
    }

    /// Reads and discards everything until the peer closes (the `hang` fault).
    pub fn drain_forever(&mut self) {
        let mut tmp = [0u8; 4096];
        loop {
            match self.stream.read(&mut tmp) {
                Ok(0) => return,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
    }
}

/// Length of the head (through the blank line), accepting bare LF line ends.
fn head_end(buf: &[u8]) -> Option<usize> {
    // Go skips empty lines before the request line.
    let start = buf.iter().position(|&b| b != b'\r' && b != b'\n')?;
    let mut i = start;
    while let Some(off) = buf[i..].iter().position(|&b| b == b'\n') {
        let nl = i + off;
        match buf.get(nl + 1) {
            Some(b'\n') => return Some(nl + 2),
            Some(b'\r') => match buf.get(nl + 2) {
                Some(b'\n') => return Some(nl + 3),
                None => return None,
                Some(_) => i = nl + 1,
            },
            None => return None,
            Some(_) => i = nl + 1,
        }
    }
    None
}

const BAD: ReadError = ReadError::Bad("400 Bad Request", "400 Bad Request");

/// Parses a complete head; returns the request and the body length to skip
/// (`None`: unknown, i.e. chunked request body).
fn parse_head(head: &[u8]) -> Result<(Request, Option<usize>), ReadError> {
    let text = std::str::from_utf8(head).map_err(|_| BAD)?;
    let mut lines = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .skip_while(|l| l.is_empty());
    let line = lines.next().ok_or(BAD)?;
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(BAD);
    };
    if method.is_empty() || !method.bytes().all(is_token) {
        return Err(BAD);
    }
    let http10 = match version {
        "HTTP/1.1" => false,
        "HTTP/1.0" => true,
        _ => {
            return Err(ReadError::Bad(
                "505 HTTP Version Not Supported",
                "unsupported protocol version",
            ));
        }
    };
    // Origin form, or absolute form whose authority we ignore.
    let target = match target.strip_prefix("http://") {
        Some(rest) => rest.find('/').map_or("/", |i| &rest[i..]),
        None => target,
    };
    if !target.starts_with('/') || target.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(BAD);
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let path = decode(path.as_bytes(), false).ok_or(BAD)?;
    let mut req = Request {
        method: method.to_string(),
        path,
        query: query.to_string(),
        http10,
        close: http10,
    };
    let (mut host, mut body, mut chunked) = (false, 0usize, false);
    for line in lines.take_while(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':').ok_or(BAD)?;
        if name.is_empty() || !name.bytes().all(is_token) {
            return Err(BAD);
        }
        let value = value.trim_matches([' ', '\t']);
        if name.eq_ignore_ascii_case("host") {
            host = true;
        } else if name.eq_ignore_ascii_case("connection") {
            if value
                .split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("close"))
            {
                req.close = true;
            }
        } else if name.eq_ignore_ascii_case("content-length") {
            body = value.parse().map_err(|_| BAD)?;
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = true;
        }
    }
    if !http10 && !host {
        return Err(ReadError::Bad(
            "400 Bad Request",
            "400 Bad Request: missing required Host header",
        ));
    }
    Ok((req, (!chunked).then_some(body)))
}

fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Percent-decodes `s` (and `+` as space in query components).
fn decode(s: &[u8], query: bool) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                if !hex.iter().all(u8::is_ascii_hexdigit) {
                    return None;
                }
                out.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
                i += 3;
                continue;
            }
            b'+' if query => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    Some(out)
}

/// How a response body is delimited.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Framing {
    Length(usize),
    Chunked,
    /// Ends when the connection closes (streams to HTTP/1.0 clients).
    UntilClose,
}

/// Appends a response head.  `bad_status` writes the malformed status line
/// `HTTP/1.1 2OO OK` of the `bad-http` fault.
pub fn write_head(
    out: &mut Vec<u8>,
    status: &str,
    headers: &[(&str, &str)],
    framing: Framing,
    close: bool,
    bad_status: bool,
) {
    out.extend_from_slice(if bad_status {
        b"HTTP/1.1 2OO OK\r\n"
    } else {
        b"HTTP/1.1 "
    });
    if !bad_status {
        out.extend_from_slice(status.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    for (name, value) in headers {
        for part in [name.as_bytes(), b": ", value.as_bytes(), b"\r\n"] {
            out.extend_from_slice(part);
        }
    }
    push_date(out);
    match framing {
        Framing::Length(n) => {
            let _ = write!(out, "Content-Length: {n}\r\n");
        }
        Framing::Chunked => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
        Framing::UntilClose => {}
    }
    if close {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// Appends `Date: <IMF-fixdate>` for the current time.
fn push_date(out: &mut Vec<u8>) {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    let _ = write!(
        out,
        "Date: {}, {day:02} {} {year} {:02}:{:02}:{:02} GMT\r\n",
        DAYS[(days % 7) as usize],
        MONTHS[(month - 1) as usize],
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    );
}

/// Writes `head` then `body` framed as `framing`, chunks of `chunk` bytes,
/// in as few system calls as possible and without copying the body.
pub fn send(
    stream: &mut UnixStream,
    head: &[u8],
    body: &[u8],
    framing: Framing,
    chunk: usize,
) -> io::Result<()> {
    if framing != Framing::Chunked || body.is_empty() {
        let tail: &[u8] = if framing == Framing::Chunked {
            b"0\r\n\r\n"
        } else {
            b""
        };
        return write_all_vectored(
            stream,
            &mut [IoSlice::new(head), IoSlice::new(body), IoSlice::new(tail)],
        );
    }
    let chunk = chunk.max(1);
    let mut sizes = Vec::with_capacity(body.len() / chunk * 8 + 16);
    let mut marks = Vec::with_capacity(body.len() / chunk + 1);
    for piece in body.chunks(chunk) {
        let start = sizes.len();
        let _ = write!(sizes, "{:x}\r\n", piece.len());
        marks.push(start..sizes.len());
    }
    let mut slices = Vec::with_capacity(marks.len() * 3 + 2);
    slices.push(IoSlice::new(head));
    for (piece, mark) in body.chunks(chunk).zip(marks) {
        slices.push(IoSlice::new(&sizes[mark]));
        slices.push(IoSlice::new(piece));
        slices.push(IoSlice::new(b"\r\n"));
    }
    slices.push(IoSlice::new(b"0\r\n\r\n"));
    write_all_vectored(stream, &mut slices)
}

/// Writes one chunk of a streamed chunked body (or raw bytes for `UntilClose`).
pub fn send_chunk(stream: &mut UnixStream, data: &[u8], framing: Framing) -> io::Result<()> {
    if framing != Framing::Chunked {
        return stream.write_all(data);
    }
    let size = format!("{:x}\r\n", data.len());
    write_all_vectored(
        stream,
        &mut [
            IoSlice::new(size.as_bytes()),
            IoSlice::new(data),
            IoSlice::new(b"\r\n"),
        ],
    )
}

fn write_all_vectored(stream: &mut UnixStream, mut slices: &mut [IoSlice<'_>]) -> io::Result<()> {
    IoSlice::advance_slices(&mut slices, 0);
    while !slices.is_empty() {
        match stream.write_vectored(slices) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut slices, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Request, &'static str> {
        let n = head_end(s.as_bytes()).ok_or("incomplete")?;
        match parse_head(&s.as_bytes()[..n]) {
            Ok((r, _)) => Ok(r),
            Err(ReadError::Bad(_, m)) => Err(m),
            Err(ReadError::Closed) => Err("closed"),
        }
    }

    #[test]
    fn heads() {
        let r =
            parse("\r\nGET /debug/pprof/%68eap?debug=1&x=a+b HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        assert_eq!(r.path, b"/debug/pprof/heap");
        assert_eq!(r.param("debug").as_deref(), Some("1"));
        assert_eq!(r.param("x").as_deref(), Some("a b"));
        assert!(!r.close);
        assert!(parse("GET / HTTP/1.0\n\n").unwrap().close);
        assert!(
            parse("GET / HTTP/1.1\r\nhost: x\r\nConnection: keep-alive, Close\r\n\r\n")
                .unwrap()
                .close
        );
        assert!(
            parse("GET / HTTP/1.1\r\n\r\n")
                .unwrap_err()
                .contains("Host")
        );
        for bad in [
            "GET  / HTTP/1.1\r\nHost: x\r\n\r\n",
            "GET x HTTP/1.1\r\nHost: x\r\n\r\n",
            "G\u{e9}T / HTTP/1.1\r\n\r\n",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        assert!(parse("GET /%zz HTTP/1.1\r\nHost: x\r\n\r\n").is_err());
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: x\r\n"), None);
    }

    #[test]
    fn date_header_shape() {
        let mut out = Vec::new();
        push_date(&mut out);
        let s = String::from_utf8(out).unwrap();
        assert_eq!(
            s.len(),
            "Date: Mon, 02 Jan 2006 15:04:05 GMT\r\n".len(),
            "{s}"
        );
        assert!(s.ends_with(" GMT\r\n"));
    }
}
