//! Server side: response heads and body framing.
//!
//! Owns: status lines, the header block, `Content-Length` vs chunked vs
//! close-delimited framing, and chunk headers. The bodies themselves come from
//! elsewhere (the engine cursor, a shim, a static string).

use std::io::Write as _;

/// How the body that follows a head is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    Length(u64),
    Chunked,
    /// Body ends when the connection closes (HTTP/1.0 clients, unknown length).
    Close,
}

pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

/// Append a response head. `headers` must not contain framing headers.
pub fn head(
    out: &mut Vec<u8>,
    status: u16,
    headers: &[(&str, &str)],
    framing: Framing,
    keep_alive: bool,
) {
    let _ = write!(out, "HTTP/1.1 {status} {}\r\n", reason(status));
    for (k, v) in headers {
        // Values come from us or are copied from a shim: never let a CR/LF
        // through (header injection).
        if v.bytes().any(|b| b == b'\r' || b == b'\n') {
            continue;
        }
        let _ = write!(out, "{k}: {v}\r\n");
    }
    match framing {
        Framing::Length(n) => {
            let _ = write!(out, "Content-Length: {n}\r\n");
        }
        Framing::Chunked => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
        Framing::Close => {}
    }
    if !keep_alive || framing == Framing::Close {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// A complete small response with a plain-text body.
pub fn text(out: &mut Vec<u8>, status: u16, body: &str, keep_alive: bool, head_only: bool) {
    head(
        out,
        status,
        &[("Content-Type", "text/plain; charset=utf-8")],
        Framing::Length(body.len() as u64),
        keep_alive,
    );
    if !head_only {
        out.extend_from_slice(body.as_bytes());
    }
}

/// Pre-rendered answer for connections over the cap (sent, then closed).
pub const SERVICE_UNAVAILABLE: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
Content-Type: text/plain; charset=utf-8\r\nContent-Length: 35\r\nConnection: close\r\n\
Retry-After: 1\r\n\r\ntoo many connections, retry later.\n";

/// Room to reserve before chunk data for its size line (`ffffffff\r\n`).
pub const CHUNK_HEAD_ROOM: usize = 10;
/// Chunk trailer and the last-chunk marker.
pub const CHUNK_END: &[u8] = b"\r\n";
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// Write the size line of a `len`-byte chunk right-aligned into
/// `room[..CHUNK_HEAD_ROOM]`; returns where it starts.
pub fn chunk_head(room: &mut [u8], len: usize) -> usize {
    let mut tmp = [0u8; CHUNK_HEAD_ROOM];
    let mut n = 0;
    let _ = write!(&mut tmp[..], "{len:x}\r\n").map(|_| ());
    while n < CHUNK_HEAD_ROOM && tmp[n] != 0 {
        n += 1;
    }
    let start = CHUNK_HEAD_ROOM - n;
    room[start..CHUNK_HEAD_ROOM].copy_from_slice(&tmp[..n]);
    start
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads() {
        let mut o = Vec::new();
        head(
            &mut o,
            200,
            &[("Content-Type", "text/plain")],
            Framing::Length(5),
            true,
        );
        assert_eq!(
            o,
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\n"
        );
        o.clear();
        head(
            &mut o,
            502,
            &[("X", "a\r\nInjected: 1")],
            Framing::Chunked,
            false,
        );
        assert_eq!(
            o,
            b"HTTP/1.1 502 Bad Gateway\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        );
        o.clear();
        head(&mut o, 200, &[], Framing::Close, true);
        assert!(o.ends_with(b"Connection: close\r\n\r\n"));
    }

    #[test]
    fn preset_503_is_consistent() {
        let s = std::str::from_utf8(SERVICE_UNAVAILABLE).unwrap();
        let (h, body) = s.split_once("\r\n\r\n").unwrap();
        assert!(h.contains(&format!("Content-Length: {}", body.len())));
    }

    #[test]
    fn chunk_heads() {
        let mut room = [0u8; CHUNK_HEAD_ROOM];
        let s = chunk_head(&mut room, 0x1a2b);
        assert_eq!(&room[s..], b"1a2b\r\n");
        let s = chunk_head(&mut room, 1);
        assert_eq!(&room[s..], b"1\r\n");
    }
}
