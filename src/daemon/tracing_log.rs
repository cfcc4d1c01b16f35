//! Routes the `tracing` events of our dependencies (h2) to `log`.
//!
//! h2 reports through `tracing`. Its ~300 `trace!`/`debug!` call sites are
//! frame-by-frame protocol chatter; they are compiled out (`tracing`'s
//! `max_level_info` feature, which keeps ~300 KB out of the binary) and the
//! monitor logs CRI failures itself. What h2 reports at info and above (a
//! peer's protocol violations) reaches our logger here, rate-limited per call
//! site like every other line.
//!
//! Owns: a zero-sized global `tracing` subscriber with no span tracking.
//! Must not: allocate per span, or hold state (it runs on the only thread).

use std::fmt::{self, Write as _};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

struct ToLog;

/// Install the bridge (idempotent: a second call is ignored).
pub(super) fn init() {
    let _ = tracing::subscriber::set_global_default(ToLog);
}

fn level(l: &Level) -> log::Level {
    match *l {
        Level::ERROR => log::Level::Error,
        Level::WARN => log::Level::Warn,
        Level::INFO => log::Level::Info,
        Level::DEBUG => log::Level::Debug,
        _ => log::Level::Trace,
    }
}

/// `message` first, then ` key=value` for every other field.
#[derive(Default)]
struct Fields {
    message: String,
    rest: String,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.rest, " {}={value:?}", field.name());
        }
    }
}

impl Subscriber for ToLog {
    fn enabled(&self, m: &Metadata<'_>) -> bool {
        log::log_enabled!(target: "h2", level(m.level()))
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        // Spans are not tracked; every span gets the same id.
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, e: &Event<'_>) {
        let m = e.metadata();
        let mut f = Fields::default();
        e.record(&mut f);
        log::logger().log(
            &log::Record::builder()
                .level(level(m.level()))
                .target(m.target())
                .file_static(m.file())
                .line(m.line())
                .args(format_args!("{}{}", f.message, f.rest))
                .build(),
        );
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_put_the_message_first() {
        struct Capture;
        static LINES: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
        impl log::Log for Capture {
            fn enabled(&self, _: &log::Metadata) -> bool {
                true
            }
            fn log(&self, r: &log::Record) {
                // The logger is global: other tests of this binary log from
                // their threads at the same time. Keep only this test's.
                if !r.target().starts_with("h2::") {
                    return;
                }
                LINES
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(format!("{} {} {}", r.level(), r.target(), r.args()));
            }
            fn flush(&self) {}
        }
        // This test binary has no other logger or subscriber (other tests
        // log through this one).
        let _ = log::set_logger(&Capture);
        log::set_max_level(log::LevelFilter::Info);
        tracing::subscriber::with_default(ToLog, || {
            tracing::warn!(target: "h2::proto", stream = 3, "recv PING ack that we never sent");
            // Compiled out (max_level_info) and below the level anyway.
            tracing::debug!(target: "h2::proto", "frame");
        });
        assert_eq!(
            *LINES.lock().unwrap(),
            ["WARN h2::proto recv PING ack that we never sent stream=3"]
        );
    }
}
