//! A small logfmt logger on stderr: `time=… level=… msg="…" key=value`.
//!
//! Messages at info and above are rate-limited per call site (a broken shim
//! or a hostile client can trigger them at will): at most `BURST` per
//! `WINDOW`, then one line saying how many were suppressed.

use log::kv::{Key, Value, VisitSource};
use log::{LevelFilter, Log, Metadata, Record};
use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const BURST: u32 = 10;
const WINDOW: Duration = Duration::from_secs(10);

struct Site {
    start: Instant,
    count: u32,
    suppressed: u64,
}

struct Logger {
    /// Per call site (file, line); few enough for a linear search.
    sites: Mutex<Vec<((&'static str, u32), Site)>>,
}

static LOGGER: Logger = Logger {
    sites: Mutex::new(Vec::new()),
};

/// Install the logger with `level` (idempotent).
pub fn init(level: LevelFilter) {
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level);
    super::tracing_log::init();
}

impl Log for Logger {
    fn enabled(&self, m: &Metadata) -> bool {
        m.level() <= log::max_level()
    }

    fn log(&self, r: &Record) {
        if !self.enabled(r.metadata()) {
            return;
        }
        let mut suppressed_note = None;
        if r.level() <= log::Level::Info {
            let key = (r.file_static().unwrap_or(""), r.line().unwrap_or(0));
            let now = Instant::now();
            let mut sites = self.sites.lock().unwrap_or_else(|e| e.into_inner());
            let i = match sites.iter().position(|(k, _)| *k == key) {
                Some(i) => i,
                None => {
                    sites.push((
                        key,
                        Site {
                            start: now,
                            count: 0,
                            suppressed: 0,
                        },
                    ));
                    sites.len() - 1
                }
            };
            let site = &mut sites[i].1;
            if now.duration_since(site.start) >= WINDOW {
                if site.suppressed > 0 {
                    suppressed_note = Some(site.suppressed);
                }
                *site = Site {
                    start: now,
                    count: 0,
                    suppressed: 0,
                };
            }
            site.count += 1;
            if site.count > BURST {
                site.suppressed += 1;
                return;
            }
        }
        let mut line = String::with_capacity(160);
        let _ = write!(
            line,
            "time={} level={} msg=",
            rfc3339(SystemTime::now()),
            r.level().as_str().to_ascii_lowercase()
        );
        quote(&mut line, &r.args().to_string());
        let mut v = Visitor(&mut line);
        let _ = r.key_values().visit(&mut v);
        if let Some(n) = suppressed_note {
            let _ = write!(line, " suppressed_before={n}");
        }
        line.push('\n');
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn flush(&self) {}
}

struct Visitor<'a>(&'a mut String);

impl<'kvs> VisitSource<'kvs> for Visitor<'_> {
    fn visit_pair(&mut self, k: Key<'kvs>, v: Value<'kvs>) -> Result<(), log::kv::Error> {
        self.0.push(' ');
        self.0.push_str(k.as_str());
        self.0.push('=');
        quote(self.0, &v.to_string());
        Ok(())
    }
}

/// logfmt value: bare when safe, else quoted with `\"`, `\\` and `\n` escaped.
fn quote(out: &mut String, v: &str) {
    let bare = !v.is_empty()
        && v.chars()
            .all(|c| c.is_ascii_graphic() && c != '"' && c != '=' && c != '\\');
    if bare {
        out.push_str(v);
        return;
    }
    out.push('"');
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `2026-11-22T10:04:05.123Z`.
pub fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil-from-days (H. Hinnant).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        d.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_format() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_785_000_000_123);
        assert_eq!(rfc3339(t), "2026-07-25T17:20:00.123Z");
        let t = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(rfc3339(t), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn logfmt_quoting() {
        let q = |v: &str| {
            let mut s = String::new();
            quote(&mut s, v);
            s
        };
        assert_eq!(q("abc"), "abc");
        assert_eq!(q("a b"), "\"a b\"");
        assert_eq!(q("x=\"1\"\n"), "\"x=\\\"1\\\"\\n\"");
        assert_eq!(q(""), "\"\"");
        assert_eq!(q("\u{7}"), "\"\\u{7}\"");
    }
}
