//! gRPC over HTTP/2, the parts a unary client needs, sans-IO.
//!
//! Owns: the 5-byte message prefix (flag, big-endian length), a decoder that
//! reassembles one message from DATA chunks with a size cap, and reading
//! `grpc-status`/`grpc-message` from response headers (Trailers-Only) or
//! trailers. The HTTP/2 connection itself belongs to the reactor (`h2`).

use bytes::{BufMut, Bytes, BytesMut};

/// Largest message accepted (gRPC's default receive limit).
pub const MAX_MESSAGE: usize = 4 << 20;

/// Frame `msg` (an encoded protobuf) as one uncompressed gRPC message.
pub fn frame(msg: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(5 + msg.len());
    b.put_u8(0);
    b.put_u32(msg.len() as u32);
    b.put_slice(msg);
    b.freeze()
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// Compressed messages were not negotiated.
    Compressed,
    /// Over [`MAX_MESSAGE`].
    TooLarge(usize),
    /// A second message in a unary response, or bytes after the message.
    Trailing,
    /// The stream ended inside a message.
    Truncated,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Compressed => write!(f, "compressed gRPC message not supported"),
            Error::TooLarge(n) => {
                write!(f, "gRPC message of {n} bytes over the {MAX_MESSAGE} limit")
            }
            Error::Trailing => write!(f, "unexpected data after the gRPC message"),
            Error::Truncated => write!(f, "gRPC message truncated"),
        }
    }
}

/// Reassembles the single message of a unary response.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: BytesMut,
    want: Option<usize>,
    done: Option<Bytes>,
}

impl Decoder {
    /// Feed a DATA chunk.
    pub fn push(&mut self, chunk: &[u8]) -> Result<(), Error> {
        if self.done.is_some() {
            return if chunk.is_empty() {
                Ok(())
            } else {
                Err(Error::Trailing)
            };
        }
        self.buf.extend_from_slice(chunk);
        if self.want.is_none() && self.buf.len() >= 5 {
            if self.buf[0] != 0 {
                return Err(Error::Compressed);
            }
            let n =
                u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]) as usize;
            if n > MAX_MESSAGE {
                return Err(Error::TooLarge(n));
            }
            self.want = Some(n);
        }
        if let Some(n) = self.want
            && self.buf.len() >= 5 + n
        {
            if self.buf.len() > 5 + n {
                return Err(Error::Trailing);
            }
            let _ = self.buf.split_to(5);
            self.done = Some(self.buf.split_to(n).freeze());
        }
        Ok(())
    }

    /// The stream ended: the message (None when there was none at all).
    pub fn finish(self) -> Result<Option<Bytes>, Error> {
        match (self.done, self.buf.is_empty()) {
            (Some(m), _) => Ok(Some(m)),
            (None, true) => Ok(None),
            (None, false) => Err(Error::Truncated),
        }
    }
}

/// A call's outcome per `grpc-status` (0 is OK).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    pub code: u32,
    pub message: String,
}

impl Status {
    pub fn is_ok(&self) -> bool {
        self.code == 0
    }

    /// Name of a code, for logs and metric labels.
    pub fn code_name(code: u32) -> &'static str {
        match code {
            0 => "ok",
            1 => "cancelled",
            2 => "unknown",
            3 => "invalid_argument",
            4 => "deadline_exceeded",
            5 => "not_found",
            7 => "permission_denied",
            8 => "resource_exhausted",
            12 => "unimplemented",
            13 => "internal",
            14 => "unavailable",
            16 => "unauthenticated",
            _ => "other",
        }
    }
}

/// `grpc-status` (and `grpc-message`, percent-decoded) from a header map,
/// if present.
pub fn status(headers: &http::HeaderMap) -> Option<Status> {
    let code = headers
        .get("grpc-status")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let message = headers
        .get("grpc-message")
        .and_then(|v| v.to_str().ok())
        .map(|m| crate::wire::http::request::percent_decode(m).unwrap_or_else(|| m.to_string()))
        .unwrap_or_default();
    Some(Status { code, message })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_and_reassembles_across_chunks() {
        let msg = b"hello protobuf";
        let f = frame(msg);
        assert_eq!(&f[..5], &[0, 0, 0, 0, 14]);
        for split in 0..=f.len() {
            let mut d = Decoder::default();
            d.push(&f[..split]).unwrap();
            d.push(&f[split..]).unwrap();
            assert_eq!(d.finish().unwrap().as_deref(), Some(&msg[..]));
        }
        let mut d = Decoder::default();
        d.push(&frame(b"")).unwrap();
        assert_eq!(d.finish().unwrap().as_deref(), Some(&b""[..]));
        assert_eq!(Decoder::default().finish().unwrap(), None);
    }

    #[test]
    fn rejects_bad_framing() {
        let mut d = Decoder::default();
        assert_eq!(d.push(&[1, 0, 0, 0, 1, 9]), Err(Error::Compressed));
        let mut d = Decoder::default();
        assert!(matches!(
            d.push(&[0, 0x7f, 0, 0, 0]),
            Err(Error::TooLarge(_))
        ));
        let mut d = Decoder::default();
        assert_eq!(d.push(&[0, 0, 0, 0, 1, 7, 7]), Err(Error::Trailing));
        let mut d = Decoder::default();
        d.push(&[0, 0, 0, 0, 3, 7]).unwrap();
        assert_eq!(d.finish(), Err(Error::Truncated));
    }

    #[test]
    fn status_from_headers() {
        let mut h = http::HeaderMap::new();
        assert_eq!(status(&h), None);
        h.insert("grpc-status", "14".parse().unwrap());
        h.insert("grpc-message", "connection%20refused".parse().unwrap());
        let s = status(&h).unwrap();
        assert_eq!(s.code, 14);
        assert_eq!(s.message, "connection refused");
        assert_eq!(Status::code_name(s.code), "unavailable");
        assert!(!s.is_ok());
    }
}
