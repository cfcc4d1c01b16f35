//! Checks of the engine's merged output against its inputs, using the
//! independent parser in `expo_check` (never the engine's own lexer).
//!
//! Used by the merge tests, the property tests and the fuzz target replays.

use super::expo_check::{self, LineKind, Sample, check_exposition, classify_lines, series_key};
use kata_monitor::wire::expo::{Exposition, Filter, Labels, Limits, Reason};
use kata_monitor::wire::gzip::{GzipEncoder, GzipPump};
use std::collections::HashMap;
#[path = "../../src/wire/test_util.rs"]
mod test_util;
use test_util::{drain, feed, gunzip};

pub const INJECTED: [&str; 4] = ["sandbox_id", "cri_uid", "cri_name", "cri_namespace"];

/// One sandbox's input.
#[derive(Clone, Debug)]
pub struct Input {
    pub labels: [String; 4],
    pub body: Vec<u8>,
}

impl Input {
    pub fn new(id: &str, uid: &str, name: &str, ns: &str, body: &[u8]) -> Input {
        Input {
            labels: [id.into(), uid.into(), name.into(), ns.into()],
            body: body.to_vec(),
        }
    }
}

/// Build the engine's exposition over `inputs`.
pub fn build(inputs: &[Input], seed: u64) -> Exposition {
    build_with(inputs, seed, Limits::default())
}

/// [`build`] with per-sandbox limits; sources are ranked in `inputs` order
/// (the first is known longest).
pub fn build_with<'a>(
    inputs: impl IntoIterator<Item = &'a Input>,
    seed: u64,
    limits: Limits,
) -> Exposition {
    let mut expo = Exposition::with_limits(seed, limits);
    for i in inputs {
        let l = &i.labels;
        expo.add(
            &l[0],
            Labels::new([&l[0], &l[1], &l[2], &l[3]]),
            i.body.clone(),
        );
    }
    expo.finish();
    expo
}

/// Render with a given fill chunk size; checks the announced length.
pub fn render(expo: &Exposition, filter: &Filter, head: &[u8], chunk: usize) -> Vec<u8> {
    let mut cur = expo.cursor(filter, head.to_vec());
    let total = cur.len() as usize;
    let mut out = Vec::with_capacity(total);
    let mut buf = vec![0u8; chunk.max(1)];
    loop {
        let n = cur.fill(expo, &mut buf);
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
        assert!(out.len() <= total, "more bytes than the announced length");
    }
    assert!(cur.is_done());
    assert_eq!(out.len(), total, "announced length differs from the output");
    out
}

/// gzip `plain` through the engine's encoder with the given chunk sizes and
/// decode it with flate2.
pub fn gzip_roundtrip(plain: &[u8], level: u8, src_chunk: usize, out_chunk: usize) -> Vec<u8> {
    let mut pump = GzipPump::new(GzipEncoder::new(level));
    let mut src = feed(plain, src_chunk);
    gunzip(&drain(out_chunk, |buf| pump.fill(buf, &mut src)))
}

/// `expo`'s whole output through the renderer-led gzip (`--gzip-level
/// auto`), `out_chunk` compressed bytes at a time, decoded by flate2.
pub fn guided_roundtrip(expo: &Exposition, out_chunk: usize) -> Vec<u8> {
    let mut s = kata_monitor::wire::deflate::GzipStream::default();
    let mut cur = expo.cursor(&Filter::all(), Vec::new());
    gunzip(&drain(out_chunk, |buf| {
        s.fill(buf, |b, h| cur.fill_marked(expo, b, h))
    }))
}

/// The output sample an input sample should become in a sandbox's output.
pub fn transformed(s: &Sample, labels: &[String; 4]) -> Sample {
    let name = if s.name.starts_with("go_") || s.name.starts_with("process_") {
        format!("kata_shim_{}", s.name)
    } else {
        s.name.clone()
    };
    let mut out: Vec<(String, String)> = s
        .labels
        .iter()
        .map(|(n, v)| {
            if INJECTED.contains(&n.as_str()) {
                (format!("exported_{n}"), v.clone())
            } else {
                (n.clone(), v.clone())
            }
        })
        .collect();
    for (n, v) in INJECTED.iter().zip(labels) {
        out.push((n.to_string(), v.clone()));
    }
    Sample {
        name,
        labels: out,
        value: s.value.clone(),
        timestamp: s.timestamp,
    }
}

/// Reasons that drop a line the independent parser calls a valid sample
/// (decided by family context, duplicates or limits).
/// (`TooManyLabels` past the lexer's hard cap of 32 may also hit a line that
/// is invalid further on; no generator writes that many labels.)
pub const SAMPLE_LEVEL: [Reason; 8] = [
    Reason::RenamedLabelCollision,
    Reason::DuplicateSeries,
    Reason::TypeConflict,
    Reason::NameConflict,
    Reason::ReservedName,
    Reason::BadLeOrQuantile,
    Reason::TooManySeries,
    Reason::TooManyLabels,
];

/// Reasons for lines the independent parser calls invalid.
pub const LINE_LEVEL: [Reason; 9] = [
    Reason::InvalidUtf8,
    Reason::ControlChar,
    Reason::LineTooLong,
    Reason::BadMetricName,
    Reason::BadLabels,
    Reason::DuplicateLabel,
    Reason::BadValue,
    Reason::BadTimestamp,
    Reason::BadHelpOrType,
];

/// Check the merged output `out` of `inputs` (rendered without filter or
/// head). Returns the number of output samples.
///
/// * the output is valid (strict checker: families unique and contiguous,
///   HELP/TYPE once and first, no duplicate series, final newline);
/// * families are sorted by name;
/// * every output sample is the transformed version of a valid input sample
///   of the sandbox named by its `sandbox_id`, with that input's value (the
///   first occurrence when an input repeats a series);
/// * per sandbox, valid input samples = kept + sample-level drops, and
///   invalid input lines = line-level drops (nothing is lost silently);
/// * with `complete`, no sample-level drops at all: every valid input sample
///   is in the output.
pub fn check_merge(
    inputs: &[Input],
    expo: &Exposition,
    out: &[u8],
    complete: bool,
) -> Result<usize, String> {
    let parsed = check_exposition(out)?;
    let names: Vec<&str> = parsed.families.iter().map(|f| f.name.as_str()).collect();
    if names.windows(2).any(|w| w[0] >= w[1]) {
        return Err(format!("families not sorted: {names:?}"));
    }
    // Expected series per sandbox id: key -> values of its occurrences, in order.
    let mut expected: HashMap<String, HashMap<String, Vec<String>>> = HashMap::new();
    let mut valid_count: HashMap<String, usize> = HashMap::new();
    let mut invalid_count: HashMap<String, usize> = HashMap::new();
    for i in inputs {
        let id = i.labels[0].clone();
        let exp = expected.entry(id.clone()).or_default();
        for line in classify_lines(&i.body) {
            match line {
                LineKind::Sample(s) => {
                    *valid_count.entry(id.clone()).or_default() += 1;
                    let t = transformed(&s, &i.labels);
                    exp.entry(series_key(&t)).or_default().push(t.value);
                }
                LineKind::Invalid(_) => *invalid_count.entry(id.clone()).or_default() += 1,
                _ => {}
            }
        }
    }
    let context_drops: HashMap<&str, u64> = expo
        .sources()
        .iter()
        .enumerate()
        .map(|(k, src)| {
            let d = expo.drops(k);
            let n = SAMPLE_LEVEL
                .iter()
                .filter(|&&r| r != Reason::DuplicateSeries)
                .map(|&r| u64::from(d.get(r)))
                .sum();
            (src.id.as_str(), n)
        })
        .collect();
    let mut kept: HashMap<String, usize> = HashMap::new();
    for s in parsed.samples() {
        let id = s
            .label("sandbox_id")
            .ok_or_else(|| format!("sample without sandbox_id: {}", series_key(s)))?;
        let key = series_key(s);
        let values = expected
            .get(id)
            .and_then(|e| e.get(&key))
            .ok_or_else(|| format!("unexpected output sample {key}"))?;
        // The first occurrence wins, unless an earlier one was dropped for its
        // family context (a bare summary line, a type conflict...): then the
        // first *kept* one does, which the oracle cannot tell apart from a
        // later one.
        let context_drops = context_drops.get(id).copied().unwrap_or(0) > 0;
        let ok = values[0] == s.value || (context_drops && values.contains(&s.value));
        if !ok {
            return Err(format!("{key}: value {} expected {}", s.value, values[0]));
        }
        *kept.entry(id.to_string()).or_default() += 1;
    }
    for (k, src) in expo.sources().iter().enumerate() {
        let d = expo.drops(k);
        let id = &src.id;
        let sample_drops: u64 = SAMPLE_LEVEL.iter().map(|&r| u64::from(d.get(r))).sum();
        let line_drops: u64 = LINE_LEVEL.iter().map(|&r| u64::from(d.get(r))).sum();
        let valid = valid_count.get(id).copied().unwrap_or(0) as u64;
        let invalid = invalid_count.get(id).copied().unwrap_or(0) as u64;
        let k_out = kept.get(id).copied().unwrap_or(0) as u64;
        if valid != k_out + sample_drops {
            return Err(format!(
                "sandbox {id}: {valid} valid input samples, {k_out} output + {sample_drops} dropped ({:?})",
                d.iter().collect::<Vec<_>>()
            ));
        }
        if invalid != line_drops {
            return Err(format!(
                "sandbox {id}: {invalid} invalid input lines, {line_drops} counted ({:?})",
                d.iter().collect::<Vec<_>>()
            ));
        }
        if complete && sample_drops > 0 {
            return Err(format!(
                "sandbox {id}: samples dropped: {:?}",
                d.iter().collect::<Vec<_>>()
            ));
        }
    }
    Ok(parsed.sample_count())
}

/// Everything in one call: build, render at several chunk sizes (all equal),
/// check, gzip round trip. Returns the plain output.
pub fn run_all(inputs: &[Input], complete: bool) -> Result<Vec<u8>, String> {
    let expo = build(inputs, 0xfeed);
    let out = render(&expo, &Filter::all(), b"", 1 << 16);
    for chunk in [1, 7, 4096] {
        if out.len() < 200_000 || chunk > 1 {
            let again = render(&expo, &Filter::all(), b"", chunk);
            if again != out {
                return Err(format!("chunk size {chunk} changes the output"));
            }
        }
    }
    check_merge(inputs, &expo, &out, complete)?;
    if std::str::from_utf8(&out).is_err() {
        return Err("output is not UTF-8".into());
    }
    if gzip_roundtrip(&out, 1, 5000, 3000) != out {
        return Err("gzip round trip differs".into());
    }
    Ok(out)
}

/// Parse helper for tests that inspect the output.
pub fn parse(out: &[u8]) -> expo_check::Exposition {
    check_exposition(out).unwrap_or_else(|e| panic!("invalid output: {e}"))
}
