//! Per-sandbox limits (the daemon's `--max-*` flags) and the one the index
//! applies to a whole body: cutting it after its last full line.
//!
//! Owns: the limits' values and bounds, which drop reasons are limits (not
//! malformed input), and the body cut. The per-line limits are applied by
//! the lexer (`lex::LineLimits`), the series limit by the index.

use super::lex::{self, Reason};

/// Largest body the index can address (insertion offsets have 29 bits; the
/// series table keeps a flag in bit 31): the upper bound of
/// [`Limits::max_body`].
pub const MAX_BODY: usize = 128 << 20;

/// Per-sandbox limits (the daemon's `--max-*` flags). Every hit is counted
/// under its [`Reason`]; what is under the limit is kept, as with
/// Prometheus's `sample_limit`: a body over `max_series` keeps its first
/// `max_series` series, not none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most kept series (and families) per body; later ones are dropped
    /// ([`Reason::TooManySeries`]).
    pub max_series: u32,
    /// Longest line, without its `\n` (at most [`lex::MAX_LINE`]); longer
    /// lines are dropped ([`Reason::LineTooLong`]).
    pub max_line: u32,
    /// Most labels on a sample line, not counting the injected ones (at
    /// most [`lex::MAX_LABELS`]); lines with more are dropped
    /// ([`Reason::TooManyLabels`]).
    pub max_labels: u8,
    /// Most body bytes indexed (at most [`MAX_BODY`]). A longer body is cut
    /// after its last full line within the limit and the lines after it are
    /// dropped ([`Reason::BodyTooLarge`]): a line is never cut.
    pub max_body: u32,
}

impl Limits {
    pub const DEFAULT: Limits = Limits {
        max_series: 100_000,
        max_line: 16 * 1024,
        max_labels: lex::MAX_LABELS as u8,
        max_body: MAX_BODY as u32,
    };

    /// The same limits, each clamped to what the engine can do.
    pub fn clamped(self) -> Limits {
        Limits {
            max_series: self.max_series,
            max_line: self.max_line.min(lex::MAX_LINE as u32),
            max_labels: self.max_labels.min(lex::MAX_LABELS as u8),
            max_body: self.max_body.min(MAX_BODY as u32),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}

/// Reasons that are limits, not malformed input: a sandbox over a limit
/// keeps what is under it and is not failed as junk (`mostly_invalid`).
pub const LIMIT_REASONS: [Reason; 4] = [
    Reason::TooManySeries,
    Reason::TooManyLabels,
    Reason::LineTooLong,
    Reason::BodyTooLarge,
];

/// `body` up to its last line that ends within `max` bytes, and how many
/// lines come after it (dropped as [`Reason::BodyTooLarge`]). A line is
/// never cut: `x 123456789` cannot come out as `x 123456`.
pub fn cut(body: &[u8], max: usize) -> (&[u8], u32) {
    if body.len() <= max {
        return (body, 0);
    }
    // Keep `..=nl` for the last `\n` at index < max (a line of exactly `max`
    // bytes with its `\n` at `max` is cut too: simpler, and only ever one
    // line).
    let keep = body[..max]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |nl| nl + 1);
    let tail = &body[keep..];
    let lines =
        tail.iter().filter(|&&b| b == b'\n').count() + usize::from(tail.last() != Some(&b'\n'));
    (&body[..keep], u32::try_from(lines).unwrap_or(u32::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::expo::index::{BodyIndex, Scratch};
    use crate::wire::expo::labels::Labels;

    fn idx_with(body: &[u8], limits: Limits) -> BodyIndex {
        let mut i = BodyIndex::default();
        i.build(
            body,
            &Labels::new(["s", "", "", ""]),
            1,
            limits,
            &mut Scratch::default(),
        );
        i
    }

    #[test]
    fn line_and_label_limits() {
        let lim = Limits {
            max_line: 12,
            max_labels: 2,
            ..Limits::DEFAULT
        };
        let i = idx_with(
            b"ok 1\nm{a=\"1\"} 1\nm{a=\"1\",b=\"2\"} 2\n# a comment too long\nn{a=\"1\",b=\"2\",c=\"3\"} 3\n",
            lim,
        );
        // `m{a="1"} 1` is 10 bytes; the 2-label line is 16: too long.
        assert_eq!(i.samples, 2);
        assert_eq!(i.drops.get(Reason::LineTooLong), 3);
        let i = idx_with(
            b"n{a=\"1\",b=\"2\",c=\"3\"} 3\nn{a=\"1\",b=\"2\"} 3\n",
            Limits {
                max_labels: 2,
                ..Limits::DEFAULT
            },
        );
        assert_eq!(i.samples, 1);
        assert_eq!(i.drops.get(Reason::TooManyLabels), 1);
        // Limits past what the engine can do are clamped to it.
        let big = Limits {
            max_line: u32::MAX,
            max_labels: u8::MAX,
            max_body: u32::MAX,
            ..Limits::DEFAULT
        };
        assert_eq!(big.clamped().max_line as usize, lex::MAX_LINE);
        assert_eq!(big.clamped().max_labels as usize, lex::MAX_LABELS);
        assert_eq!(big.clamped().max_body as usize, MAX_BODY);
    }

    /// A body over the limit loses whole lines from its end, never a part
    /// of one (`x 123456789` must not come out as `x 123456`).
    #[test]
    fn a_long_body_is_cut_between_lines() {
        let body = b"a 1\nb 2\nx 123456789\ny 1\nz 0";
        for (max, kept, dropped) in [
            (100, 3 + 2, 0),
            (body.len(), 5, 0),
            (body.len() - 1, 4, 1),
            (20, 3, 2),
            (19, 2, 3),
            (10, 2, 3),
            (8, 2, 3),
            (7, 1, 4),
            (3, 0, 5),
            (0, 0, 5),
        ] {
            let i = idx_with(
                body,
                Limits {
                    max_body: max as u32,
                    ..Limits::DEFAULT
                },
            );
            assert_eq!(i.samples, kept, "max {max}");
            assert_eq!(i.drops.get(Reason::BodyTooLarge), dropped, "max {max}");
            // What is kept ends at a line end.
            let end = i.runs.iter().map(|r| r.end).max().unwrap_or(0) as usize;
            assert!(
                end == 0 || body[end - 1] == b'\n' || end == body.len(),
                "max {max}"
            );
        }
        // A cut body ending in `\n` counts its lines exactly.
        let i = idx_with(
            b"a 1\nb 2\n",
            Limits {
                max_body: 5,
                ..Limits::DEFAULT
            },
        );
        assert_eq!((i.samples, i.drops.get(Reason::BodyTooLarge)), (1, 1));
    }

    /// A sandbox over its limits keeps what is under them: limit drops do
    /// not make a body "mostly invalid" (which would fail the sandbox).
    #[test]
    fn limit_drops_do_not_fail_a_body() {
        let body: String = (0..1000).map(|n| format!("m{n} 1\n")).collect();
        let i = idx_with(
            body.as_bytes(),
            Limits {
                max_series: 10,
                max_body: 2000,
                ..Limits::DEFAULT
            },
        );
        assert_eq!(i.samples, 10);
        assert!(i.drops.total() > 900);
        assert!(!i.mostly_invalid());
    }

    #[test]
    fn limits() {
        let mut i = BodyIndex::default();
        let body: String = (0..10).map(|n| format!("m{n} 1\n")).collect();
        i.build(
            body.as_bytes(),
            &Labels::new(["s", "", "", ""]),
            1,
            Limits {
                max_series: 4,
                ..Limits::DEFAULT
            },
            &mut Scratch::default(),
        );
        assert_eq!(i.samples, 4);
        assert_eq!(i.drops.get(Reason::TooManySeries), 6);
    }
}
