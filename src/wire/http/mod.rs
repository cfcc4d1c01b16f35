//! HTTP/1.1, sans-IO: request heads from clients, response framing for them,
//! and the reader for shim responses. No sockets here.

pub mod client;
pub mod request;
pub mod response;

/// A `Content-Length` value as RFC 9110 §8.6 writes it: ASCII digits only
/// (optional whitespace around them is the header's, not the value's).
/// `+5`, `-1`, `5 5`, `0x10`, `5, 5` and values past `u64` are refused: a
/// parser that reads one of them differently from a proxy in front of it is
/// how requests are smuggled.
pub fn content_length(v: &[u8]) -> Option<u64> {
    let ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = v.iter().position(|b| !ows(b))?;
    let end = v.iter().rposition(|b| !ows(b))? + 1;
    let digits = &v[start..end];
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// Fold one more `Content-Length` header value `v` into the length `seen`
/// so far: `None` when it is invalid or differs (RFC 9110 §8.6: differing
/// values are an unrecoverable error).
pub fn fold_content_length(seen: Option<u64>, v: &[u8]) -> Option<u64> {
    let n = content_length(v)?;
    seen.is_none_or(|old| old == n).then_some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_length_is_digits_only() {
        for (v, want) in [
            (&b"5"[..], Some(5)),
            (b"0", Some(0)),
            (b" 42\t", Some(42)),
            (b"007", Some(7)),
            (b"18446744073709551615", Some(u64::MAX)),
            (b"18446744073709551616", None),
            (b"+5", None),
            (b"-1", None),
            (b"5 5", None),
            (b"5,5", None),
            (b"5, 5", None),
            (b"0x10", None),
            (b"1e3", None),
            (b"", None),
            (b"  ", None),
            (b"5\x0b", None),
            (b"\xd9\xa5", None),
        ] {
            assert_eq!(content_length(v), want, "{:?}", String::from_utf8_lossy(v));
        }
        assert_eq!(fold_content_length(None, b"5"), Some(5));
        assert_eq!(fold_content_length(Some(5), b" 5"), Some(5));
        assert_eq!(fold_content_length(Some(5), b"6"), None);
        assert_eq!(fold_content_length(Some(5), b"+5"), None);
    }
}
