//! Majority rules for what sandboxes disagree on: a family's TYPE, its HELP
//! text, and which of two families a parser would read as one survives.
//!
//! Owns: the decisions, as pure functions of per-sandbox ballots. One
//! sandbox has one ballot per family however many lines it sends, so no
//! single sandbox can outvote two others that agree: a hostile guest can
//! only win where it is alone against one other sandbox, and there the tie
//! goes to what Kata itself defines ([`kata_types`](super::kata_types)),
//! then to the sandbox known longest (lowest rank), then to the first in id
//! order. Knows nothing about bodies (see `merge`).
//!
//! TYPE rule: a sandbox votes for the TYPE it declares, and a sandbox
//! without a TYPE line for the family votes `untyped` (its samples are plain
//! lines, which is what an untyped family holds). It cannot abstain: then a
//! lone guest declaring `histogram` would outvote any number of sandboxes
//! that send the family without a TYPE line, and take their samples out.
//! The kind with the most ballots wins. Who keeps their samples ([`fits`]):
//! * `untyped` wins: every sandbox whose samples are plain lines (no TYPE,
//!   or `counter`, `gauge`, `untyped`): an untyped family claims nothing a
//!   counter's or gauge's lines contradict;
//! * `counter`/`gauge` wins: the sandboxes that declare it, and those with
//!   no TYPE line (as upstream, an undeclared family joins a declared one);
//! * `histogram`/`summary` wins: only the sandboxes that declare it (plain
//!   lines are not buckets or quantiles).

use super::lex::Kind;

/// Who breaks a tie: lower is older. `(rank, index in id order)`.
pub type Age = (u64, u32);

/// Kinds in `Kind as usize` order.
const KINDS: [Kind; 5] = [
    Kind::Counter,
    Kind::Gauge,
    Kind::Histogram,
    Kind::Summary,
    Kind::Untyped,
];

/// One sandbox's say on a family's TYPE: what it declares (`Untyped` when
/// it has no TYPE line), and its age.
#[derive(Clone, Copy, Debug)]
pub struct Ballot {
    pub kind: Kind,
    pub age: Age,
}

/// The index with the largest `count` (a count of 0 never wins over a
/// positive one). Ties go to `preferred` if it is among them, else to the
/// lowest `oldest`.
pub fn pick(count: &[u32], oldest: &[Age], preferred: Option<usize>) -> usize {
    let best = count.iter().copied().max().unwrap_or(0);
    if let Some(p) = preferred
        && count.get(p) == Some(&best)
    {
        return p;
    }
    (0..count.len())
        .filter(|&i| count[i] == best)
        .min_by_key(|&i| oldest[i])
        .unwrap_or(0)
}

/// The winning TYPE of a family (see the module doc); `kata` is the kind
/// Kata defines for it, if any.
pub fn kind(ballots: &[Ballot], kata: Option<Kind>) -> Kind {
    let mut count = [0u32; 5];
    let mut oldest = [(u64::MAX, u32::MAX); 5];
    for b in ballots {
        let k = b.kind as usize;
        count[k] += 1;
        oldest[k] = oldest[k].min(b.age);
    }
    KINDS[pick(&count, &oldest, kata.map(|k| k as usize))]
}

/// Whether a member that declared `kind` (`typed`: with a TYPE line) keeps
/// its samples in a family whose TYPE is `outcome`.
pub fn fits(outcome: Kind, typed: bool, kind: Kind) -> bool {
    let plain = matches!(kind, Kind::Counter | Kind::Gauge | Kind::Untyped);
    match outcome {
        Kind::Untyped => plain,
        Kind::Counter | Kind::Gauge => kind == outcome || !typed,
        Kind::Histogram | Kind::Summary => typed && kind == outcome,
    }
}

/// The sandboxes behind a family: how many, and the oldest of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Support {
    pub sandboxes: u32,
    pub oldest: Age,
    /// Kata defines this family under this name (with this TYPE, for the
    /// histogram/summary side).
    pub kata: bool,
}

/// Histogram/summary `x` and a family named `x_bucket`/`x_sum`/`x_count`
/// cannot both be output (a parser files the second under the first): does
/// `base` stay (and the suffixed family go)? More sandboxes win; a tie goes
/// to the one Kata defines, then to the older, then to `base`.
pub fn base_wins(base: Support, suffixed: Support) -> bool {
    if base.sandboxes != suffixed.sandboxes {
        return base.sandboxes > suffixed.sandboxes;
    }
    if base.kata != suffixed.kata {
        return base.kata;
    }
    base.oldest <= suffixed.oldest
}

#[cfg(test)]
mod tests {
    use super::*;
    use Kind::*;

    fn b(kind: Kind, rank: u64) -> Ballot {
        Ballot {
            kind,
            age: (rank, rank as u32),
        }
    }

    #[test]
    fn most_ballots_win() {
        assert_eq!(
            kind(&[b(Gauge, 0), b(Counter, 1), b(Counter, 2)], None),
            Counter
        );
        assert_eq!(
            kind(&[b(Histogram, 0), b(Gauge, 1), b(Gauge, 2)], None),
            Gauge
        );
        assert_eq!(kind(&[b(Summary, 0)], Some(Gauge)), Summary);
        // Undeclared families vote untyped.
        assert_eq!(
            kind(
                &[b(Counter, 0), b(Untyped, 1), b(Untyped, 2)],
                Some(Counter)
            ),
            Untyped
        );
    }

    #[test]
    fn ties_go_to_kata_then_to_the_oldest() {
        let tie = [b(Counter, 5), b(Gauge, 3)];
        assert_eq!(kind(&tie, Some(Counter)), Counter);
        assert_eq!(kind(&tie, Some(Gauge)), Gauge);
        // Kata's kind not among the tied: the oldest ballot's.
        assert_eq!(kind(&tie, Some(Histogram)), Gauge);
        assert_eq!(kind(&tie, None), Gauge);
        assert_eq!(kind(&[b(Counter, 1), b(Gauge, 3)], None), Counter);
        // Same rank: the first in id order.
        let same = [
            Ballot {
                kind: Gauge,
                age: (7, 1),
            },
            Ballot {
                kind: Counter,
                age: (7, 0),
            },
        ];
        assert_eq!(kind(&same, None), Counter);
        assert_eq!(pick(&[0, 0], &[(1, 1), (0, 0)], None), 1);
    }

    #[test]
    fn who_fits() {
        for k in [Counter, Gauge, Untyped] {
            assert!(fits(Untyped, true, k));
        }
        assert!(fits(Untyped, false, Untyped));
        assert!(!fits(Untyped, true, Histogram) && !fits(Untyped, true, Summary));
        assert!(fits(Counter, true, Counter) && fits(Counter, false, Untyped));
        assert!(!fits(Counter, true, Gauge) && !fits(Counter, true, Untyped));
        assert!(fits(Histogram, true, Histogram));
        assert!(!fits(Histogram, false, Untyped) && !fits(Summary, true, Histogram));
    }

    #[test]
    fn name_conflicts() {
        let s = |sandboxes, rank, kata| Support {
            sandboxes,
            oldest: (rank, 0),
            kata,
        };
        assert!(base_wins(s(2, 9, false), s(1, 0, true)));
        assert!(!base_wins(s(1, 0, true), s(2, 9, false)));
        assert!(base_wins(s(1, 9, true), s(1, 0, false)));
        assert!(!base_wins(s(1, 0, false), s(1, 9, true)));
        assert!(!base_wins(s(1, 5, false), s(1, 4, false)));
        assert!(base_wins(s(1, 4, false), s(1, 4, false)));
    }
}
