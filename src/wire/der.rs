//! Just enough DER to read an X.509 certificate's validity period.
//!
//! The TLS layer exports the serving certificate's `notAfter` as a metric
//! (so an alert can fire before it expires) and logs both bounds when it
//! loads one. rustls and webpki check certificates but do not expose these
//! dates; a full X.509 parser would be a large dependency for two fields.
//!
//! ```text
//! Certificate  ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signature }
//! TBSCertificate ::= SEQUENCE { [0] version OPTIONAL, serialNumber INTEGER,
//!                               signature SEQUENCE, issuer SEQUENCE,
//!                               validity SEQUENCE { notBefore Time, notAfter Time }, ... }
//! Time ::= UTCTime (YYMMDDHHMMSSZ) | GeneralizedTime (YYYYMMDDHHMMSSZ)
//! ```
//!
//! Input is whatever file an operator points the monitor at: every length
//! is checked, nothing panics (fuzzed by `fuzz/fuzz_targets/der.rs`).

/// A certificate's validity period, in seconds since the Unix epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Validity {
    pub not_before: i64,
    pub not_after: i64,
}

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;
/// `[0] EXPLICIT` (constructed, context-specific 0): the version.
const VERSION_TAG: u8 = 0xa0;

/// The validity period of a DER certificate, or `None` when the bytes are
/// not one.
pub fn validity(cert: &[u8]) -> Option<Validity> {
    let (tag, cert_body, _) = element(cert)?;
    if tag != SEQUENCE {
        return None;
    }
    let (tag, mut tbs, _) = element(cert_body)?;
    if tag != SEQUENCE {
        return None;
    }
    let (mut tag, mut value, mut rest) = element(tbs)?;
    if tag == VERSION_TAG {
        tbs = rest;
        (tag, value, rest) = element(tbs)?;
    }
    let _ = value;
    if tag != INTEGER {
        return None;
    }
    // signature AlgorithmIdentifier, issuer Name.
    for _ in 0..2 {
        let (tag, _, r) = element(rest)?;
        if tag != SEQUENCE {
            return None;
        }
        rest = r;
    }
    let (tag, validity, _) = element(rest)?;
    if tag != SEQUENCE {
        return None;
    }
    let (t1, v1, r) = element(validity)?;
    let (t2, v2, _) = element(r)?;
    Some(Validity {
        not_before: time(t1, v1)?,
        not_after: time(t2, v2)?,
    })
}

/// One TLV: (tag, value, what follows). Definite lengths only (DER).
fn element(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, b) = b.split_first()?;
    // Multi-byte tags do not occur in the fields read here.
    if tag & 0x1f == 0x1f {
        return None;
    }
    let (&first, mut b) = b.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || b.len() < n {
            return None;
        }
        let mut len = 0usize;
        for &d in &b[..n] {
            len = (len << 8) | usize::from(d);
        }
        b = &b[n..];
        len
    };
    if b.len() < len {
        return None;
    }
    let (value, rest) = b.split_at(len);
    Some((tag, value, rest))
}

/// UTCTime (years 1950-2049, RFC 5280) or GeneralizedTime, in UTC (`Z`).
fn time(tag: u8, v: &[u8]) -> Option<i64> {
    let (year, rest) = match tag {
        UTC_TIME if v.len() == 13 => {
            let yy = digits(&v[..2])?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &v[2..])
        }
        GENERALIZED_TIME if v.len() == 15 => (digits(&v[..4])?, &v[4..]),
        _ => return None,
    };
    if rest[10] != b'Z' {
        return None;
    }
    let month = digits(&rest[0..2])?;
    let day = digits(&rest[2..4])?;
    let hour = digits(&rest[4..6])?;
    let min = digits(&rest[6..8])?;
    let sec = digits(&rest[8..10])?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || min > 59 || sec > 60 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    Some(days * 86400 + hour * 3600 + min * 60 + sec)
}

fn digits(b: &[u8]) -> Option<i64> {
    b.iter().try_fold(0i64, |acc, &d| {
        d.is_ascii_digit().then(|| acc * 10 + i64::from(d - b'0'))
    })
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A TLV with a short or long length.
    fn tlv(tag: u8, v: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        if v.len() < 0x80 {
            out.push(v.len() as u8);
        } else {
            out.push(0x82);
            out.extend_from_slice(&(v.len() as u16).to_be_bytes());
        }
        out.extend_from_slice(v);
        out
    }

    fn cert(version: bool, nb: (u8, &[u8]), na: (u8, &[u8])) -> Vec<u8> {
        let mut tbs = Vec::new();
        if version {
            tbs.extend(tlv(VERSION_TAG, &tlv(INTEGER, &[2])));
        }
        tbs.extend(tlv(INTEGER, &[0x01, 0x02]));
        tbs.extend(tlv(SEQUENCE, &tlv(0x06, &[1, 2, 3])));
        // A long issuer, for the long-form length.
        tbs.extend(tlv(SEQUENCE, &[0x05; 300]));
        let mut val = tlv(nb.0, nb.1);
        val.extend(tlv(na.0, na.1));
        tbs.extend(tlv(SEQUENCE, &val));
        tbs.extend(tlv(SEQUENCE, b"subject"));
        let mut c = tlv(SEQUENCE, &tbs);
        c.extend(tlv(SEQUENCE, b"alg"));
        c.extend(tlv(0x03, b"sig"));
        tlv(SEQUENCE, &c)
    }

    #[test]
    fn reads_both_time_forms() {
        let c = cert(
            true,
            (UTC_TIME, b"240229120000Z"),
            (GENERALIZED_TIME, b"20510101000000Z"),
        );
        let v = validity(&c).unwrap();
        // 2024-02-29T12:00:00Z and 2051-01-01T00:00:00Z.
        assert_eq!(v.not_before, 1_709_208_000);
        assert_eq!(v.not_after, 2_556_144_000);
        let c = cert(
            false,
            (UTC_TIME, b"700101000000Z"),
            (UTC_TIME, b"491231235959Z"),
        );
        let v = validity(&c).unwrap();
        assert_eq!(v.not_before, 0);
        assert_eq!(v.not_after, 2_524_607_999);
    }

    #[test]
    fn refuses_what_is_not_a_certificate() {
        let good = cert(
            true,
            (UTC_TIME, b"240101000000Z"),
            (UTC_TIME, b"250101000000Z"),
        );
        for bad in [
            cert(
                true,
                (UTC_TIME, b"2401010000Z"),
                (UTC_TIME, b"250101000000Z"),
            ),
            cert(
                true,
                (UTC_TIME, b"241301000000Z"),
                (UTC_TIME, b"250101000000Z"),
            ),
            cert(
                true,
                (UTC_TIME, b"240101000000+"),
                (UTC_TIME, b"250101000000Z"),
            ),
            cert(
                true,
                (INTEGER, b"240101000000Z"),
                (UTC_TIME, b"250101000000Z"),
            ),
            b"-----BEGIN CERTIFICATE-----".to_vec(),
            Vec::new(),
        ] {
            assert_eq!(validity(&bad), None);
        }
        // Every truncation fails cleanly.
        for n in 0..good.len() {
            assert_eq!(validity(&good[..n]), None, "{n}");
        }
        assert!(validity(&good).is_some());
    }
}
