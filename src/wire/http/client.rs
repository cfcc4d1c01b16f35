//! Client side: the request we send to a shim and the reader for its
//! response (the shim is untrusted: it may be broken, slow or hostile).
//!
//! Owns: the response head (`httparse`), body framing (`Content-Length`,
//! chunked, close-delimited) and in-place de-chunking: raw bytes are decoded
//! within the caller's buffer so a body is never copied to a second buffer.
//! Limits: head size, chunk-size line length, body size (the caller's cap).

/// Largest response head accepted from a shim.
pub const MAX_HEAD: usize = 16 * 1024;
const MAX_HEADERS: usize = 32;

/// `GET <target>` for a shim. `keep_alive`: ask to keep the connection for
/// the next request (scrapes); otherwise one request per connection.
pub fn request(target: &str, keep_alive: bool) -> Vec<u8> {
    let conn = if keep_alive {
        ""
    } else {
        "Connection: close\r\n"
    };
    format!("GET {target} HTTP/1.1\r\nHost: shim\r\nUser-Agent: kata-monitor\r\nAccept-Encoding: identity\r\n{conn}\r\n")
        .into_bytes()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFraming {
    Length(u64),
    Chunked,
    Close,
}

/// The parts of a shim's response head the monitor uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Head {
    pub status: u16,
    pub framing: BodyFraming,
    pub content_type: Option<String>,
    pub content_disposition: Option<String>,
    /// The server keeps the connection open after this response.
    pub keep_alive: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// Not HTTP, or a head we cannot use.
    Malformed,
    /// Head over [`MAX_HEAD`].
    HeadTooLarge,
    /// Body over the caller's cap (declared or received).
    TooLarge,
    /// Bad chunk framing.
    BadChunk,
    /// Connection closed before the body was complete.
    Truncated,
}

impl Error {
    pub fn as_str(self) -> &'static str {
        match self {
            Error::Malformed => "malformed_response",
            Error::HeadTooLarge => "head_too_large",
            Error::TooLarge => "body_too_large",
            Error::BadChunk => "bad_chunk",
            Error::Truncated => "truncated",
        }
    }
}

/// Parse a response head at the start of `buf`: `Ok(None)` means read more.
pub fn parse_head(buf: &[u8]) -> Result<Option<(Head, usize)>, Error> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let n = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => return Err(Error::HeadTooLarge),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(Error::HeadTooLarge),
        Err(_) => return Err(Error::Malformed),
    };
    if n > MAX_HEAD {
        return Err(Error::HeadTooLarge);
    }
    let status = resp.code.ok_or(Error::Malformed)?;
    let mut head = Head {
        status,
        framing: BodyFraming::Close,
        content_type: None,
        content_disposition: None,
        keep_alive: resp.version == Some(1),
    };
    let mut length: Option<u64> = None;
    let mut chunked = false;
    for h in resp.headers.iter() {
        let v = std::str::from_utf8(h.value).map_err(|_| Error::Malformed)?;
        if h.name.eq_ignore_ascii_case("content-length") {
            // Digits only, repeated values equal (RFC 9110 §8.6): a shim
            // cannot frame its body one way for us and another for a proxy.
            length = Some(super::fold_content_length(length, h.value).ok_or(Error::Malformed)?);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            // Only `chunked` (last) is supported; other codings are refused.
            let last = v.rsplit(',').next().unwrap_or("").trim();
            if !last.eq_ignore_ascii_case("chunked") {
                return Err(Error::Malformed);
            }
            chunked = true;
        } else if h.name.eq_ignore_ascii_case("content-type") {
            head.content_type = Some(v.to_string());
        } else if h.name.eq_ignore_ascii_case("content-disposition") {
            head.content_disposition = Some(v.to_string());
        } else if h.name.eq_ignore_ascii_case("connection") {
            if v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close")) {
                head.keep_alive = false;
            }
        } else if h.name.eq_ignore_ascii_case("content-encoding")
            && !v.trim().eq_ignore_ascii_case("identity")
        {
            return Err(Error::Malformed);
        }
    }
    head.framing = if chunked {
        BodyFraming::Chunked
    } else if let Some(l) = length {
        BodyFraming::Length(l)
    } else if status == 204 || status == 304 || (100..200).contains(&status) {
        BodyFraming::Length(0)
    } else {
        BodyFraming::Close
    };
    if head.framing == BodyFraming::Close {
        head.keep_alive = false;
    }
    Ok(Some((head, n)))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Chunk {
    /// Reading hex digits of a size line.
    Size {
        value: u64,
        digits: u8,
    },
    /// After the size: extensions until LF.
    Ext {
        value: u64,
    },
    Data {
        left: u64,
    },
    /// CRLF after chunk data.
    DataCr,
    DataLf,
    /// After the last chunk: trailer lines until an empty one.
    TrailerStart,
    TrailerLine,
}

/// Decodes a body in place. Positions are offsets into the caller's buffer:
/// decoded bytes accumulate at `dec`, raw bytes are consumed from `raw`
/// (`dec <= raw` always, so decoding never overwrites unread input).
#[derive(Clone, Debug)]
pub struct Decoder {
    framing: BodyFraming,
    chunk: Chunk,
    /// Body bytes decoded so far.
    total: u64,
    limit: u64,
    done: bool,
}

impl Decoder {
    /// `limit`: most body bytes accepted.
    pub fn new(framing: BodyFraming, limit: u64) -> Result<Decoder, Error> {
        if let BodyFraming::Length(n) = framing
            && n > limit
        {
            return Err(Error::TooLarge);
        }
        Ok(Decoder {
            framing,
            chunk: Chunk::Size {
                value: 0,
                digits: 0,
            },
            total: 0,
            limit,
            done: framing == BodyFraming::Length(0),
        })
    }

    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Body bytes decoded so far.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Decode `buf[*raw..end]` into `buf[*dec..]`, advancing both. Returns
    /// whether the body is complete. Bytes after the end of the body are left
    /// unconsumed at `*raw`.
    pub fn decode(
        &mut self,
        buf: &mut [u8],
        dec: &mut usize,
        raw: &mut usize,
        end: usize,
    ) -> Result<bool, Error> {
        debug_assert!(*dec <= *raw && *raw <= end && end <= buf.len());
        match self.framing {
            BodyFraming::Length(n) => {
                let take = ((n - self.total) as usize).min(end - *raw);
                self.data(buf, dec, raw, take)?;
                self.done = self.total == n;
            }
            BodyFraming::Close => {
                let take = end - *raw;
                self.data(buf, dec, raw, take)?;
            }
            BodyFraming::Chunked => self.chunked(buf, dec, raw, end)?,
        }
        Ok(self.done)
    }

    /// The connection closed: fine only for close-delimited bodies.
    pub fn eof(&mut self) -> Result<(), Error> {
        if self.done {
            return Ok(());
        }
        if self.framing == BodyFraming::Close {
            self.done = true;
            return Ok(());
        }
        Err(Error::Truncated)
    }

    fn data(
        &mut self,
        buf: &mut [u8],
        dec: &mut usize,
        raw: &mut usize,
        n: usize,
    ) -> Result<(), Error> {
        if self.total + n as u64 > self.limit {
            return Err(Error::TooLarge);
        }
        if *dec != *raw {
            buf.copy_within(*raw..*raw + n, *dec);
        }
        *dec += n;
        *raw += n;
        self.total += n as u64;
        Ok(())
    }

    fn chunked(
        &mut self,
        buf: &mut [u8],
        dec: &mut usize,
        raw: &mut usize,
        end: usize,
    ) -> Result<(), Error> {
        while *raw < end && !self.done {
            let b = buf[*raw];
            match self.chunk {
                Chunk::Size { value, digits } => {
                    let d = match b {
                        b'0'..=b'9' => b - b'0',
                        b'a'..=b'f' => b - b'a' + 10,
                        b'A'..=b'F' => b - b'A' + 10,
                        _ if digits > 0 => {
                            self.chunk = Chunk::Ext { value };
                            continue;
                        }
                        _ => return Err(Error::BadChunk),
                    };
                    if digits >= 15 {
                        return Err(Error::BadChunk);
                    }
                    self.chunk = Chunk::Size {
                        value: value * 16 + u64::from(d),
                        digits: digits + 1,
                    };
                    *raw += 1;
                }
                Chunk::Ext { value } => {
                    // `;ext=val` and the CR are skipped; LF ends the line.
                    if b == b'\n' {
                        self.chunk = if value == 0 {
                            Chunk::TrailerStart
                        } else {
                            if self.total + value > self.limit {
                                return Err(Error::TooLarge);
                            }
                            Chunk::Data { left: value }
                        };
                    } else if !(b == b'\r' || b == b';' || b == b' ' || b == b'\t' || b >= 0x20) {
                        return Err(Error::BadChunk);
                    }
                    *raw += 1;
                }
                Chunk::Data { left } => {
                    let take = (left as usize).min(end - *raw);
                    self.data(buf, dec, raw, take)?;
                    let left = left - take as u64;
                    self.chunk = if left == 0 {
                        Chunk::DataCr
                    } else {
                        Chunk::Data { left }
                    };
                }
                Chunk::DataCr => {
                    match b {
                        b'\r' => self.chunk = Chunk::DataLf,
                        b'\n' => {
                            self.chunk = Chunk::Size {
                                value: 0,
                                digits: 0,
                            }
                        }
                        _ => return Err(Error::BadChunk),
                    }
                    *raw += 1;
                }
                Chunk::DataLf => {
                    if b != b'\n' {
                        return Err(Error::BadChunk);
                    }
                    self.chunk = Chunk::Size {
                        value: 0,
                        digits: 0,
                    };
                    *raw += 1;
                }
                Chunk::TrailerStart => {
                    *raw += 1;
                    match b {
                        b'\n' => self.done = true,
                        b'\r' => {}
                        _ => self.chunk = Chunk::TrailerLine,
                    }
                }
                Chunk::TrailerLine => {
                    *raw += 1;
                    if b == b'\n' {
                        self.chunk = Chunk::TrailerStart;
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decode `wire` (a whole response) fed in pieces of `step` bytes, the way
    /// the reactor does: bytes are appended, then decoded in place.
    fn run(wire: &[u8], step: usize, limit: u64) -> Result<(Head, Vec<u8>), Error> {
        let mut buf = vec![0u8; wire.len()];
        let mut filled = 0;
        let mut head: Option<(Head, Decoder)> = None;
        let (mut dec, mut raw) = (0, 0);
        while filled < wire.len() {
            let n = step.min(wire.len() - filled);
            buf[filled..filled + n].copy_from_slice(&wire[filled..filled + n]);
            filled += n;
            if head.is_none() {
                if let Some((h, len)) = parse_head(&buf[..filled])? {
                    let d = Decoder::new(h.framing, limit)?;
                    dec = len;
                    raw = len;
                    head = Some((h, d));
                } else {
                    continue;
                }
            }
            let (h, d) = head.as_mut().unwrap();
            let start = dec - (d.total() as usize);
            if d.decode(&mut buf, &mut dec, &mut raw, filled)? {
                let _ = h;
                return Ok((head.clone().unwrap().0, buf[start..dec].to_vec()));
            }
        }
        let (h, mut d) = head.ok_or(Error::Truncated)?;
        d.eof()?;
        let start = dec - d.total() as usize;
        Ok((h, buf[start..dec].to_vec()))
    }

    #[test]
    fn content_length_chunked_close_at_every_split() {
        let body = b"# TYPE a gauge\na 1\n".repeat(50);
        let mut chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for c in body.chunks(97) {
            chunked.extend_from_slice(format!("{:x};ext=1\r\n", c.len()).as_bytes());
            chunked.extend_from_slice(c);
            chunked.extend_from_slice(b"\r\n");
        }
        chunked.extend_from_slice(b"0\r\nX-Trailer: 1\r\n\r\n");
        let mut length =
            format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
        length.extend_from_slice(&body);
        let mut close = b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n".to_vec();
        close.extend_from_slice(&body);
        for step in [1, 2, 5, 64, 4096, 1 << 20] {
            for wire in [&chunked, &length, &close] {
                let (h, got) = run(wire, step, 1 << 20).unwrap();
                assert_eq!(h.status, 200);
                assert_eq!(got, body, "step {step}");
            }
        }
    }

    #[test]
    fn limits_and_errors() {
        let body = vec![b'x'; 100];
        let mut length = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n".to_vec();
        length.extend_from_slice(&body);
        assert_eq!(run(&length, 7, 99).unwrap_err(), Error::TooLarge);
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n64\r\n".to_vec();
        assert_eq!(run(&chunked, 7, 50).unwrap_err(), Error::TooLarge);
        let mut close = b"HTTP/1.1 200 OK\r\n\r\n".to_vec();
        close.extend_from_slice(&body);
        assert_eq!(run(&close, 7, 50).unwrap_err(), Error::TooLarge);
        assert_eq!(
            run(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", 3, 100).unwrap_err(),
            Error::Truncated
        );
        assert_eq!(
            run(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                3,
                100
            )
            .unwrap_err(),
            Error::BadChunk
        );
        assert_eq!(
            run(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX",
                3,
                100
            )
            .unwrap_err(),
            Error::BadChunk
        );
        assert_eq!(
            run(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff\r\n",
                3,
                100
            )
            .unwrap_err(),
            Error::BadChunk
        );
        assert_eq!(
            run(b"HTTP/1.1 2OO OK\r\n\r\n", 3, 100).unwrap_err(),
            Error::Malformed
        );
        assert_eq!(
            run(
                b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                3,
                100
            )
            .unwrap_err(),
            Error::Malformed
        );
        assert_eq!(
            run(b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n\r\n", 3, 100).unwrap_err(),
            Error::Malformed
        );
        // Content-Length is digits only (`+5` once parsed as 5).
        for v in [
            "+5",
            "-0",
            "5 5",
            "5,5",
            "0x5",
            "5x",
            " ",
            "99999999999999999999",
        ] {
            let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {v}\r\n\r\nhello");
            assert_eq!(parse_head(head.as_bytes()), Err(Error::Malformed), "{v:?}");
        }
        let (h, _) =
            parse_head(b"HTTP/1.1 200 OK\r\nContent-Length:  5 \r\nContent-Length: 5\r\n\r\n")
                .unwrap()
                .unwrap();
        assert_eq!(h.framing, BodyFraming::Length(5));
        let big = format!("HTTP/1.1 200 OK\r\nX: {}\r\n", "a".repeat(MAX_HEAD));
        assert_eq!(
            run(big.as_bytes(), 4096, 100).unwrap_err(),
            Error::HeadTooLarge
        );
    }

    #[test]
    fn head_fields() {
        let (h, n) = parse_head(
            b"HTTP/1.1 404 Not Found\r\nContent-Type: text/html\r\nContent-Disposition: attachment; filename=\"x\"\r\nContent-Length: 0\r\n\r\n",
        )
        .unwrap()
        .unwrap();
        assert_eq!(h.status, 404);
        assert_eq!(h.framing, BodyFraming::Length(0));
        assert_eq!(h.content_type.as_deref(), Some("text/html"));
        assert_eq!(
            h.content_disposition.as_deref(),
            Some("attachment; filename=\"x\"")
        );
        assert!(n > 0);
        assert!(Decoder::new(h.framing, 0).unwrap().is_done());
    }

    #[test]
    fn bytes_after_the_body_are_left_alone() {
        let wire = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcEXTRA";
        let (_, n) = parse_head(wire).unwrap().unwrap();
        let mut buf = wire.to_vec();
        let (mut dec, mut raw) = (n, n);
        let mut d = Decoder::new(BodyFraming::Length(3), 10).unwrap();
        assert!(d.decode(&mut buf, &mut dec, &mut raw, wire.len()).unwrap());
        assert_eq!(&buf[n..dec], b"abc");
        assert_eq!(&buf[raw..], b"EXTRA");
    }
}
