//! Checked number tokens of the exposition format: sample values and
//! timestamps.
//!
//! Owns: which spellings are accepted, the intersection of Go's
//! `strconv.ParseFloat`/`ParseInt` (expfmt, `promtool`) and Prometheus's
//! scraper. Must not allocate on the common path, panic, or look beyond the
//! token it is given.

/// Is `t` a float both parsers accept: Go `strconv.ParseFloat` syntax without
/// hex or underscores (expfmt rejects `pP_`), finite unless spelled as infinity.
pub fn float_ok(t: &[u8]) -> bool {
    let (signed, rest) = match t.first() {
        Some(b'+' | b'-') => (true, &t[1..]),
        _ => (false, t),
    };
    let Some(&first) = rest.first() else {
        return false;
    };
    if first.is_ascii_alphabetic() {
        return rest.eq_ignore_ascii_case(b"inf")
            || rest.eq_ignore_ascii_case(b"infinity")
            || (!signed && rest.eq_ignore_ascii_case(b"nan"));
    }
    let n = rest.len();
    let digits = |mut i: usize| {
        while i < n && rest[i].is_ascii_digit() {
            i += 1;
        }
        i
    };
    let int_end = digits(0);
    let mut i = int_end;
    let mut frac_digits = 0;
    if i < n && rest[i] == b'.' {
        let e = digits(i + 1);
        frac_digits = e - i - 1;
        i = e;
    }
    if int_end == 0 && frac_digits == 0 {
        return false;
    }
    let mut exp = 0i64;
    if i < n && (rest[i] | 0x20) == b'e' {
        i += 1;
        let neg = i < n && rest[i] == b'-';
        if i < n && (rest[i] == b'-' || rest[i] == b'+') {
            i += 1;
        }
        let es = i;
        while i < n && rest[i].is_ascii_digit() {
            exp = (exp * 10 + i64::from(rest[i] - b'0')).min(1 << 40);
            i += 1;
        }
        if i == es {
            return false;
        }
        if neg {
            exp = -exp;
        }
    }
    if i != n {
        return false;
    }
    // |value| < 10^(integer digits + exponent): surely finite below 10^308.
    if int_end as i64 + exp < 308 {
        return true;
    }
    // Rare: might exceed f64::MAX, which ParseFloat reports as a range error.
    std::str::from_utf8(t)
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .is_some_and(f64::is_finite)
}

/// Digits only (Prometheus's lexer), fitting an `i64` (expfmt's ParseInt).
pub fn timestamp_ok(t: &[u8]) -> bool {
    if t.is_empty() || !t.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let sig = match t.iter().position(|&b| b != b'0') {
        Some(p) => &t[p..],
        None => return true,
    };
    sig.len() < 19 || (sig.len() == 19 && sig <= b"9223372036854775807".as_slice())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats() {
        for ok in [
            "0",
            "1",
            "-1",
            "+1",
            "1.",
            ".5",
            "1.5e3",
            "1E-3",
            "1e+05",
            "NaN",
            "nan",
            "+Inf",
            "-inf",
            "Infinity",
            "-INFINITY",
            "1.7976931348623157e+308",
            "9.223372036854776e+18",
            "1e-400",
            "0e999999",
            "0.000000001e308",
            "00001",
        ] {
            assert!(float_ok(ok.as_bytes()), "{ok}");
        }
        for bad in [
            "",
            "+",
            "-",
            ".",
            "e5",
            "1e",
            "1e+",
            "1.2.3",
            "0x10",
            "0x1p3",
            "1_000",
            "+NaN",
            "-nan",
            "infin",
            "infinityx",
            "1e309",
            "1.8e308",
            "1,5",
            "1 ",
            " 1",
            "١",
        ] {
            assert!(!float_ok(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn timestamps() {
        assert!(timestamp_ok(b"0"));
        assert!(timestamp_ok(b"1700000000000"));
        assert!(timestamp_ok(b"9223372036854775807"));
        assert!(timestamp_ok(b"0009223372036854775807"));
        assert!(!timestamp_ok(b"9223372036854775808"));
        assert!(!timestamp_ok(b"-1"));
        assert!(!timestamp_ok(b"+1"));
        assert!(!timestamp_ok(b"1.5"));
        assert!(!timestamp_ok(b""));
    }
}
