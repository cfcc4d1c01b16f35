//! The lexer's fast path: the one sample-line shape real exporters write.
//!
//! `name value` or `name{a="x",b="y"} value`, with one space before the
//! value, no timestamp, label names strictly increasing (so no duplicates),
//! values without escapes or non-ASCII bytes, and no label named like an
//! injected one. (An empty label value is taken, but the line is then not
//! its own canonical series text.) That is nearly every line of a shim body, and for it the
//! general parser's bookkeeping (blank skipping, the table of earlier label
//! names, renames, collisions) has nothing to do.
//!
//! Owns: recognising that shape and filling [`Sample`] exactly as
//! `lex::sample` would. Must not decide anything else: any other line,
//! valid or not, returns `None` and the general parser classifies it (and
//! names the reason it is dropped). `tests` holds the two to the same answer.

use super::lex::{Sample, is_injected};
use super::number::float_ok;
use super::swar::{eq, scan_label, scan_name, scan_token, scan_value};

/// `a` sorts strictly after `b` (bytewise, a proper prefix first).
#[inline]
fn after(a: &[u8], b: &[u8]) -> bool {
    match a.iter().zip(b).find(|(x, y)| x != y) {
        Some((x, y)) => x > y,
        None => a.len() > b.len(),
    }
}

/// The line at the start of `l` whose metric name starts at `start` (a
/// metric-name start byte), if it has the common shape: its end, with `s`
/// filled. `None`: ask the general parser. `hint` is a valid metric name
/// (or empty); when the line's name is exactly it, it is not scanned again.
/// A line with more than `max_labels` labels is left to the general parser.
#[inline]
pub fn sample(
    l: &[u8],
    start: usize,
    s: &mut Sample,
    hint: &[u8],
    max_labels: usize,
) -> Option<usize> {
    debug_assert!(scan_name(hint, 0) == hint.len(), "hint is a metric name");
    let h = start + hint.len();
    let mut i =
        if !hint.is_empty() && l.len() > h && matches!(l[h], b'{' | b' ') && eq(&l[start..h], hint)
        {
            h
        } else {
            scan_name(l, start + 1)
        };
    let name = (start as u32, i as u32);
    let mut close = None;
    let mut le = None;
    let mut quantile = None;
    let mut empty = false;
    match l.get(i) {
        Some(b' ') => {}
        Some(b'{') => {
            i += 1;
            let mut prev = (0, 0);
            let mut n = 0;
            loop {
                let ns = i;
                let c = *l.get(i)?;
                if !(c.is_ascii_alphabetic() || c == b'_') {
                    return None;
                }
                i = scan_label(l, i + 1);
                let label = &l[ns..i];
                if l.get(i) != Some(&b'=') || l.get(i + 1) != Some(&b'"') {
                    return None;
                }
                if (n > 0 && !after(label, &l[prev.0..prev.1]))
                    || n == max_labels
                    || is_injected(label)
                    || eq(label, b"__name__")
                {
                    return None;
                }
                i = scan_value(l, i + 2);
                if l.get(i) != Some(&b'"') {
                    return None;
                }
                let value = &l[ns + label.len() + 2..i];
                empty |= value.is_empty();
                if eq(label, b"le") {
                    le = Some((ns as u32, float_ok(value)));
                } else if eq(label, b"quantile") {
                    quantile = Some((ns as u32, float_ok(value)));
                }
                prev = (ns, ns + label.len());
                n += 1;
                i += 1;
                match l.get(i) {
                    // A trailing `,}` fails the label-start check above.
                    Some(b',') => i += 1,
                    Some(b'}') => {
                        close = Some(i as u32);
                        i += 1;
                        break;
                    }
                    _ => return None,
                }
            }
            if l.get(i) != Some(&b' ') {
                return None;
            }
        }
        _ => return None,
    }
    let vs = i + 1;
    let ve = scan_token(l, vs);
    if ve == vs || (ve < l.len() && l[ve] != b'\n') || !float_ok(&l[vs..ve]) {
        return None;
    }
    *s = Sample {
        name,
        close,
        bare_close: false,
        le,
        quantile,
        exported: [0; 4],
        n_exported: 0,
        collision: false,
        canonical: !empty,
    };
    Some(ve)
}

#[cfg(test)]
mod tests {
    use super::super::lex::{
        Line, LineLimits, MAX_LABELS, classify_next, classify_next_general, classify_next_hinted,
    };
    use super::*;

    /// The fast path and the general parser agree on `line`: same class,
    /// same end, same layout for samples.
    fn agree(line: &[u8]) {
        agree_with(line, LineLimits::MAX);
        let (mut a, mut b) = (Sample::default(), Sample::default());
        assert_eq!(
            format!("{:?}", classify_next(line, &mut a)),
            format!(
                "{:?}",
                classify_next_hinted(line, &mut b, b"", LineLimits::MAX)
            )
        );
    }

    /// [`agree`] under the sandbox line limits `lim`.
    fn agree_with(line: &[u8], lim: LineLimits) {
        let (mut a, mut b) = (Sample::default(), Sample::default());
        let (la, ea) = classify_next_hinted(line, &mut a, b"", lim);
        let (lb, eb) = classify_next_general(line, &mut b, lim);
        let text = String::from_utf8_lossy(line);
        assert_eq!(format!("{la:?}"), format!("{lb:?}"), "{text:?}");
        assert_eq!(ea, eb, "{text:?}");
        if matches!(la, Line::Sample) {
            assert_eq!(format!("{a:?}"), format!("{b:?}"), "{text:?}");
        }
        // With a name hint (the line's own name, a prefix of it, a longer
        // name, another name): still the same answer.
        let own = &line[..scan_name(line, 0)];
        let longer = [own, b"_x"].concat();
        for hint in [own, &own[..own.len() / 2], &longer[..], b"up", b"m"] {
            if hint.is_empty() {
                continue;
            }
            let mut h = Sample::default();
            let (lh, eh) = classify_next_hinted(line, &mut h, hint, lim);
            assert_eq!(
                format!("{lh:?}"),
                format!("{lb:?}"),
                "{text:?} hint {hint:?}"
            );
            assert_eq!(eh, eb, "{text:?}");
            if matches!(lh, Line::Sample) {
                assert_eq!(format!("{h:?}"), format!("{b:?}"), "{text:?}");
            }
        }
    }

    fn taken(line: &[u8]) -> bool {
        let start = line.iter().position(|&b| b != b' ' && b != b'\t').unwrap();
        sample(line, start, &mut Sample::default(), b"", MAX_LABELS).is_some()
    }

    #[test]
    fn common_lines_take_the_fast_path() {
        for line in [
            &b"up 1"[..],
            b"up 1\nnext 2",
            b"go_gc_duration_seconds{quantile=\"0.25\"} 6.0841e-05",
            b"x_bucket{action=\"grpc.X\",le=\"+Inf\"} 1",
            b"kata_guest_diskstat{disk=\"loop0\",item=\"time_discarding\"} 0\n",
            b"a:b{_x=\"\",a=\"v\",b=\"w\"} NaN",
        ] {
            assert!(taken(line), "{}", String::from_utf8_lossy(line));
            agree(line);
        }
    }

    #[test]
    fn other_lines_are_left_to_the_general_parser() {
        for line in [
            &b"up 1 1700000000000"[..],
            b"up  1",
            b"up\t1",
            b"up 1 ",
            b"up{} 1",
            b"up{a=\"x\",} 1",
            b"up{b=\"x\",a=\"y\"} 1",
            b"up{a=\"x\",a=\"y\"} 1",
            b"up{a=\"x\"}  1",
            b"up{ a=\"x\"} 1",
            b"up{a = \"x\"} 1",
            b"up{a=\"x\\\"y\"} 1",
            b"up{a=\"\xc3\xa9\"} 1",
            b"up{a=\"\xff\"} 1",
            b"up{sandbox_id=\"x\"} 1",
            b"up{__name__=\"x\"} 1",
            b"up{le=\"x\"} 1",
            b"up 1x",
            b"up 1\r",
            b"up {a=\"x\"} 1",
            b"up",
            b"up ",
            b"up{a=\"x\"}",
            b"up{a=\"x",
            b"up{a=\"x\"\n} 1",
            b"9up 1",
        ] {
            agree(line);
        }
        assert!(!taken(b"up 1 1700000000000"));
        assert!(!taken(b"up{b=\"x\",a=\"y\"} 1"));
    }

    #[test]
    fn many_labels_and_long_lines() {
        let labels: Vec<String> = (0..40).map(|k| format!("l{k:02}=\"v\"")).collect();
        for n in [31, 32, 33, 40] {
            agree(format!("m{{{}}} 1", labels[..n].join(",")).as_bytes());
        }
        let long = format!("m{{a=\"{}\"}} 1", "x".repeat(super::super::lex::MAX_LINE));
        agree(long.as_bytes());
    }

    /// Lines built like real ones (name, sorted or shuffled labels, value,
    /// sometimes a timestamp), then often damaged by one to three byte
    /// edits: the fast path must accept exactly what it can and agree with
    /// the general parser on all of it.
    #[test]
    fn agrees_with_the_general_parser_on_random_lines() {
        const NAMES: &[&str] = &[
            "up",
            "a_b:c",
            "x",
            "go_gc_duration_seconds",
            "m_bucket",
            "m_sum",
        ];
        const LABELS: &[&str] = &[
            "a",
            "action",
            "b",
            "disk",
            "item",
            "le",
            "quantile",
            "sandbox_id",
            "cri_uid",
            "exported_cri_uid",
            "__name__",
            "_",
            "z9",
        ];
        const VALUES: &[&str] = &[
            "", "v", "0.5", "+Inf", "a b", "x\\\"y", "\u{e9}", "le", "1e309",
        ];
        const NUMS: &[&str] = &[
            "1", "0", "-Inf", "NaN", "1e308", "1e309", "0x1", "1_0", ".5", "-",
        ];
        const BYTES: &[u8] = b" \t\n\r\0\"\\{},=#:_aZ9\x80\xff";
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        let mut fast = 0;
        for _ in 0..300_000 {
            let mut line = NAMES[next(NAMES.len())].as_bytes().to_vec();
            let n = next(5);
            if n > 0 || next(4) == 0 {
                let mut names: Vec<&str> = (0..n).map(|_| LABELS[next(LABELS.len())]).collect();
                if next(3) > 0 {
                    names.sort();
                    names.dedup();
                }
                let pairs: Vec<String> = names
                    .iter()
                    .map(|k| format!("{k}=\"{}\"", VALUES[next(VALUES.len())]))
                    .collect();
                line.extend_from_slice(format!("{{{}}}", pairs.join(",")).as_bytes());
            }
            line.push(b' ');
            line.extend_from_slice(NUMS[next(NUMS.len())].as_bytes());
            if next(10) == 0 {
                line.extend_from_slice(b" 1700000000000");
            }
            for _ in 0..next(4) {
                let at = next(line.len() + 1);
                match next(3) {
                    0 if at < line.len() => {
                        line.remove(at);
                    }
                    1 if at < line.len() => line[at] = BYTES[next(BYTES.len())],
                    _ => line.insert(at, BYTES[next(BYTES.len())]),
                }
            }
            if line.first().is_some_and(|&b| b.is_ascii_alphabetic()) && taken(&line) {
                fast += 1;
            }
            agree(&line);
            let lim = LineLimits {
                max_line: 10 + next(40),
                max_labels: next(4),
            };
            agree_with(&line, lim);
        }
        // The generator must exercise the fast path, not only the fallbacks.
        assert!(fast > 20_000, "only {fast} lines took the fast path");
    }
}
