//! Series-by-series comparison of two monitors' `/metrics` answers (this
//! one and upstream's Go kata-monitor), for the differential tests.
//!
//! Both answers are parsed with the independent `expo_check` parser (the
//! strict output check: a malformed answer from either side is an error).
//! A series is its name and label set, with label values unescaped and, for
//! `le` of histograms and `quantile` of summaries, read as numbers (Go
//! re-encodes them, as it re-encodes sample values: `7.7956673e+07` for a
//! shim's `77956673`). Values are compared as floats, NaN equal to NaN;
//! timestamps must be the same too.

use super::expo_check::{Sample, check_exposition, parse_float, series_key};
use std::collections::{BTreeMap, BTreeSet};

/// One family of an answer.
#[derive(Debug, Default)]
pub struct Fam {
    pub help: Option<String>,
    pub typ: Option<String>,
    /// Canonical series key -> value.
    pub series: BTreeMap<String, f64>,
    /// Canonical series key -> timestamp, for the series that have one.
    pub timestamps: BTreeMap<String, i64>,
    /// Keys of the series that carry a `sandbox_id` label.
    pub sandboxed: BTreeSet<String>,
    /// The `sandbox_id` values seen in this family.
    pub sandbox_ids: BTreeSet<String>,
}

/// A parsed `/metrics` answer.
#[derive(Debug, Default)]
pub struct View {
    pub fams: BTreeMap<String, Fam>,
}

impl View {
    /// Parses and strictly checks an answer.
    pub fn parse(body: &[u8]) -> Result<View, String> {
        let e = check_exposition(body)?;
        let mut v = View::default();
        for f in e.families {
            let mut fam = Fam {
                help: f.help.clone(),
                typ: f.typ.clone(),
                ..Fam::default()
            };
            let numeric_label = match f.typ.as_deref() {
                Some("histogram") => Some("le"),
                Some("summary") => Some("quantile"),
                _ => None,
            };
            for s in &f.samples {
                let key = canonical_key(s, numeric_label);
                if let Some(id) = s.label("sandbox_id") {
                    fam.sandboxed.insert(key.clone());
                    fam.sandbox_ids.insert(id.to_string());
                }
                if let Some(ts) = s.timestamp {
                    fam.timestamps.insert(key.clone(), ts);
                }
                fam.series.insert(key, s.value_f64());
            }
            v.fams.insert(f.name, fam);
        }
        Ok(v)
    }

    /// Every `sandbox_id` value in the answer's shim families (not in the
    /// monitor's own `kata_monitor_*` ones: ours report failed sandboxes).
    pub fn sandbox_ids(&self) -> BTreeSet<String> {
        self.fams
            .iter()
            .filter(|(name, _)| !name.starts_with("kata_monitor_"))
            .flat_map(|(_, f)| f.sandbox_ids.iter().cloned())
            .collect()
    }

    /// Number of series carrying `sandbox_id`, and of distinct sandboxes.
    pub fn sandboxed_counts(&self) -> (usize, usize) {
        let n = self.fams.values().map(|f| f.sandboxed.len()).sum();
        (n, self.sandbox_ids().len())
    }

    /// Number of series carrying `sandbox_id="id"` in the shim families.
    pub fn series_of(&self, id: &str) -> usize {
        let needle = format!("sandbox_id=\"{id}\"");
        self.fams
            .iter()
            .filter(|(name, _)| !name.starts_with("kata_monitor_"))
            .map(|(_, f)| f.sandboxed.iter().filter(|k| k.contains(&needle)).count())
            .sum()
    }

    /// Removes the series `key` of family `fam`; whether it was there.
    pub fn remove(&mut self, fam: &str, key: &str) -> bool {
        let Some(f) = self.fams.get_mut(fam) else {
            return false;
        };
        f.sandboxed.remove(key);
        f.timestamps.remove(key);
        f.series.remove(key).is_some()
    }

    /// This answer without the series of sandbox `id`.
    pub fn without(mut self, id: &str) -> View {
        let needle = format!("sandbox_id=\"{id}\"");
        for f in self.fams.values_mut() {
            f.sandboxed.retain(|k| !k.contains(&needle));
            f.series.retain(|k, _| !k.contains(&needle));
            f.timestamps.retain(|k, _| !k.contains(&needle));
            f.sandbox_ids.remove(id);
        }
        self
    }

    /// The value of the series `key` (a canonical key) in family `fam`.
    pub fn value(&self, fam: &str, key: &str) -> Option<f64> {
        self.fams.get(fam)?.series.get(key).copied()
    }
}

/// `name{labels sorted}` with `numeric` label values read as numbers.
fn canonical_key(s: &Sample, numeric: Option<&str>) -> String {
    let mut s = s.clone();
    if let Some(n) = numeric {
        for (name, value) in &mut s.labels {
            if name == n
                && let Ok(f) = parse_float(value)
            {
                *value = canonical_float(f);
            }
        }
    }
    series_key(&s)
}

fn canonical_float(f: f64) -> String {
    if f.is_nan() {
        "NaN".into()
    } else if f.is_infinite() {
        if f > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{f}")
    }
}

fn same_value(a: f64, b: f64) -> bool {
    a == b || (a.is_nan() && b.is_nan())
}

/// Differences between the Go answer `go` and ours `rs`:
///
/// * every series carrying `sandbox_id` (in either answer) is in both with
///   the same value;
/// * a family in both answers has the same HELP and TYPE (no TYPE is
///   `untyped`);
/// * a family in one answer only is one `excused(family, ours)` accepts
///   (it returns the README entry that documents why; `ours` tells which
///   side has it).
pub fn compare(
    go: &View,
    rs: &View,
    excused: &dyn Fn(&str, bool) -> Option<&'static str>,
) -> Vec<String> {
    let mut problems = Vec::new();
    let names: BTreeSet<&String> = go.fams.keys().chain(rs.fams.keys()).collect();
    for name in names {
        let (g, r) = (go.fams.get(name), rs.fams.get(name));
        let (g, r) = match (g, r) {
            (Some(g), Some(r)) => (g, r),
            (_, r) => {
                let ours = r.is_some();
                if excused(name, ours).is_none() {
                    problems.push(format!(
                        "family {name} only in {}'s answer",
                        if ours { "ours" } else { "Go" }
                    ));
                }
                continue;
            }
        };
        if g.help != r.help {
            problems.push(format!(
                "family {name}: HELP differs: Go {:?}, ours {:?}",
                g.help, r.help
            ));
        }
        if g.typ.as_deref().unwrap_or("untyped") != r.typ.as_deref().unwrap_or("untyped") {
            problems.push(format!(
                "family {name}: TYPE differs: Go {:?}, ours {:?}",
                g.typ, r.typ
            ));
        }
        for key in g.sandboxed.union(&r.sandboxed) {
            if g.timestamps.get(key) != r.timestamps.get(key) {
                problems.push(format!(
                    "{key}: timestamp Go {:?}, ours {:?}",
                    g.timestamps.get(key),
                    r.timestamps.get(key)
                ));
            }
            match (g.series.get(key), r.series.get(key)) {
                (Some(&a), Some(&b)) if same_value(a, b) => {}
                (Some(a), Some(b)) => {
                    problems.push(format!("{key}: Go {a:?}, ours {b:?}"));
                }
                (Some(_), None) => problems.push(format!("{key}: only in Go's answer")),
                (None, Some(_)) => problems.push(format!("{key}: only in ours")),
                (None, None) => unreachable!(),
            }
        }
    }
    problems
}

/// Panics with the first differences, if any.
pub fn assert_no_problems(what: &str, problems: &[String]) {
    if problems.is_empty() {
        return;
    }
    let shown: Vec<&str> = problems.iter().take(25).map(String::as_str).collect();
    panic!(
        "{what}: {} difference(s) between Go's answer and ours:\n  {}",
        problems.len(),
        shown.join("\n  ")
    );
}
