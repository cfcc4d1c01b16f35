//! The merge plan: every family of every sandbox under its output name, sorted,
//! with the sandboxes contributing to it, in sandbox-id order.
//!
//! Owns: cross-sandbox rules, decided by the votes in [`vote`] so that no
//! single sandbox decides for the others. A family's TYPE is the one most
//! sandboxes declare; a sandbox whose samples do not fit it is dropped from
//! that family ([`Reason::TypeConflict`]). Its HELP is the text of a sandbox
//! that kept its samples, by the same rule: the text most of them send (no
//! HELP line counts as a choice), a tie to the text Kata defines, then to
//! the oldest's. Of two families a parser would read as one (`x_bucket` beside
//! histogram `x`), the one more sandboxes send stays
//! ([`Reason::NameConflict`] for the other). Drops are booked to the sandbox
//! whose lines they were. Knows nothing about output buffers.

use super::Source;
use super::hash::{HashTable, hash_bytes};
use super::index::{Drops, Family};
use super::kata_types;
use super::labels::RENAME_PREFIX;
use super::lex::{Kind, Reason};
use super::vote::{self, Age, Ballot, Support};

#[derive(Clone, Copy, Debug)]
pub struct Member {
    pub src: u32,
    pub fam: u32,
    pub kept: bool,
}

/// A family of the merged output.
#[derive(Clone, Debug)]
pub struct Merged {
    /// Output name span in `Plan::names`.
    name: (u32, u32),
    /// Where the source name is: (source, family) of the first member.
    pub first: (u32, u32),
    pub kind: Kind,
    /// Source and family whose HELP text is used.
    pub help: Option<(u32, u32)>,
    pub members: (u32, u32),
    /// Output bytes: header plus kept sample lines.
    pub bytes: u64,
    pub kept: bool,
}

/// The plan for one set of sources. Reusable.
#[derive(Default)]
pub struct Plan {
    pub fams: Vec<Merged>,
    /// `fams` indices in output (name) order.
    pub sorted: Vec<u32>,
    pub members: Vec<Member>,
    /// Merge-level drops, per source.
    pub drops: Vec<Drops>,
    names: Vec<u8>,
    table: HashTable,
    scratch: Vec<u8>,
    tmp: Vec<(u32, Member)>,
    ballots: Vec<Ballot>,
}

/// Output name length of a source family.
pub fn out_name_len(f: &Family) -> u64 {
    u64::from(f.name.1 - f.name.0)
        + if f.renamed {
            RENAME_PREFIX.len() as u64
        } else {
            0
        }
}

/// `# HELP name text\n# TYPE name kind\n` size.
pub fn header_len(name_len: u64, help_len: Option<u64>, kind: Kind) -> u64 {
    let help = help_len.map_or(0, |h| 7 + name_len + 1 + h + 1);
    help + 7 + name_len + 1 + kind.as_str().len() as u64 + 1
}

impl Plan {
    /// Output name of merged family `g`.
    pub fn name(&self, g: &Merged) -> &[u8] {
        &self.names[g.name.0 as usize..g.name.1 as usize]
    }

    fn lookup(&self, name: &[u8], h: u64) -> Option<u32> {
        self.table
            .probe(h)
            .find(|&g| self.name(&self.fams[g as usize]) == name)
    }

    /// TYPE and HELP of family `gi`; drops the members that do not fit.
    fn decide(&mut self, gi: usize, sources: &[Source]) {
        let (a, b) = self.fams[gi].members;
        let ms = &mut self.members[a as usize..b as usize];
        let fam = |m: &Member| &sources[m.src as usize].index.fams[m.fam as usize];
        let first = fam(&ms[0]);
        // Nearly always: every member declares the same TYPE, or none does.
        let uniform = ms
            .iter()
            .all(|m| fam(m).typed == first.typed && fam(m).kind == first.kind);
        let kind = if uniform {
            first.kind
        } else {
            self.ballots.clear();
            for (i, m) in ms.iter().enumerate() {
                let f = fam(m);
                let same_src = i > 0 && ms[i - 1].src == m.src;
                if !same_src {
                    self.ballots.push(Ballot {
                        kind: f.kind,
                        age: age(sources, m.src),
                    });
                } else if f.typed && !fam(&ms[i - 1]).typed {
                    // A sandbox's ballot is its first declared TYPE.
                    let last = self.ballots.last_mut().expect("pushed");
                    if last.kind == Kind::Untyped {
                        last.kind = f.kind;
                    }
                }
            }
            let name = &self.names[self.fams[gi].name.0 as usize..self.fams[gi].name.1 as usize];
            let kind = vote::kind(&self.ballots, kata_types::lookup(name).map(|k| k.kind));
            for m in ms.iter_mut() {
                let f = fam(m);
                if !vote::fits(kind, f.typed, f.kind) {
                    m.kept = false;
                    self.drops[m.src as usize].add(Reason::TypeConflict, f.samples);
                }
            }
            kind
        };
        let g = &mut self.fams[gi];
        g.kind = kind;
        g.kept = ms.iter().any(|m| m.kept);
        g.help = help(
            &self.names[g.name.0 as usize..g.name.1 as usize],
            ms,
            sources,
        );
    }

    /// Families named `x_bucket`/`x_sum`/`x_count` beside family `gi` = `x`,
    /// a histogram or summary: of each such pair the one with fewer
    /// sandboxes behind it goes (see [`vote::base_wins`]).
    fn name_conflicts(&mut self, gi: usize, sources: &[Source], seed: u64) {
        let g = &self.fams[gi];
        if !g.kept || !matches!(g.kind, Kind::Histogram | Kind::Summary) {
            return;
        }
        let suffixes: &[&[u8]] = if g.kind == Kind::Histogram {
            &[b"_bucket", b"_sum", b"_count"]
        } else {
            &[b"_sum", b"_count"]
        };
        let base_kata =
            kata_types::lookup(self.name(g)).is_some_and(|k| k.kind == self.fams[gi].kind);
        let (s0, s1) = self.fams[gi].name;
        for suffix in suffixes {
            self.scratch.clear();
            self.scratch
                .extend_from_slice(&self.names[s0 as usize..s1 as usize]);
            self.scratch.extend_from_slice(suffix);
            let Some(c) = self.lookup(&self.scratch, hash_bytes(seed, &self.scratch)) else {
                continue;
            };
            let c = c as usize;
            if !self.fams[c].kept {
                continue;
            }
            let base = Support {
                kata: base_kata,
                ..self.support(gi, sources)
            };
            let other = Support {
                kata: kata_types::lookup(&self.scratch).is_some(),
                ..self.support(c, sources)
            };
            if vote::base_wins(base, other) {
                self.drop_family(c, sources);
            } else {
                self.drop_family(gi, sources);
                return;
            }
        }
    }

    /// Sandboxes with kept samples in family `gi`.
    fn support(&self, gi: usize, sources: &[Source]) -> Support {
        let (a, b) = self.fams[gi].members;
        let mut s = Support {
            sandboxes: 0,
            oldest: (u64::MAX, u32::MAX),
            kata: false,
        };
        let mut last = None;
        for m in self.members[a as usize..b as usize]
            .iter()
            .filter(|m| m.kept)
        {
            if last != Some(m.src) {
                s.sandboxes += 1;
                s.oldest = s.oldest.min(age(sources, m.src));
                last = Some(m.src);
            }
        }
        s
    }

    fn drop_family(&mut self, gi: usize, sources: &[Source]) {
        let g = &mut self.fams[gi];
        g.kept = false;
        for m in &mut self.members[g.members.0 as usize..g.members.1 as usize] {
            if m.kept {
                m.kept = false;
                let f = &sources[m.src as usize].index.fams[m.fam as usize];
                self.drops[m.src as usize].add(Reason::NameConflict, f.samples);
            }
        }
    }

    pub fn build(&mut self, sources: &[Source], seed: u64) {
        self.fams.clear();
        self.sorted.clear();
        self.members.clear();
        self.names.clear();
        self.table.clear();
        self.tmp.clear();
        self.drops.clear();
        self.drops.resize(sources.len(), Drops::default());

        // 1. Global families by output name, first seen in source order.
        for (si, src) in sources.iter().enumerate() {
            let body = src.body();
            for (fi, f) in src.index.fams.iter().enumerate() {
                if f.samples == 0 {
                    continue;
                }
                self.scratch.clear();
                if f.renamed {
                    self.scratch.extend_from_slice(RENAME_PREFIX.as_bytes());
                }
                self.scratch
                    .extend_from_slice(&body[f.name.0 as usize..f.name.1 as usize]);
                let h = hash_bytes(seed, &self.scratch);
                let g = match self.lookup(&self.scratch, h) {
                    Some(g) => g,
                    None => {
                        let g = self.fams.len() as u32;
                        let s = self.names.len() as u32;
                        self.names.extend_from_slice(&self.scratch);
                        self.fams.push(Merged {
                            name: (s, self.names.len() as u32),
                            first: (si as u32, fi as u32),
                            kind: Kind::Untyped,
                            help: None,
                            members: (0, 0),
                            bytes: 0,
                            kept: true,
                        });
                        self.table.insert(h, g);
                        g
                    }
                };
                self.tmp.push((
                    g,
                    Member {
                        src: si as u32,
                        fam: fi as u32,
                        kept: true,
                    },
                ));
            }
        }

        // 2. Group members by family (stable counting sort keeps source order).
        let nf = self.fams.len();
        let mut counts = vec![0u32; nf + 1];
        for &(g, _) in &self.tmp {
            counts[g as usize + 1] += 1;
        }
        for g in 0..nf {
            counts[g + 1] += counts[g];
            self.fams[g].members = (counts[g], counts[g + 1]);
        }
        self.members.resize(
            self.tmp.len(),
            Member {
                src: 0,
                fam: 0,
                kept: false,
            },
        );
        for &(g, m) in &self.tmp {
            let slot = &mut counts[g as usize];
            self.members[*slot as usize] = m;
            *slot += 1;
        }

        // 3. TYPE and HELP per family, by vote; members that do not fit go.
        for gi in 0..nf {
            self.decide(gi, sources);
        }

        // 4. Output order.
        self.sorted.extend(0..nf as u32);
        let (names, fams) = (&self.names, &self.fams);
        let name = |g: u32| {
            let s = fams[g as usize].name;
            &names[s.0 as usize..s.1 as usize]
        };
        self.sorted.sort_unstable_by(|&a, &b| name(a).cmp(name(b)));

        // 5. `x_sum` etc. beside histogram/summary `x`: a parser would file
        //    its HELP/TYPE/samples under `x` (expfmt: "second TYPE line").
        //    One of the two goes, by vote.
        for k in 0..nf {
            let gi = self.sorted[k] as usize;
            self.name_conflicts(gi, sources, seed);
        }

        // 6. Sizes.
        for g in &mut self.fams {
            if !g.kept {
                continue;
            }
            let (s, f) = g.first;
            let src = &sources[s as usize];
            let name_len = out_name_len(&src.index.fams[f as usize]);
            let help_len = g.help.map(|(s, f)| {
                let h = sources[s as usize].index.fams[f as usize]
                    .help
                    .unwrap_or((0, 0));
                u64::from(h.1 - h.0)
            });
            let mut bytes = header_len(name_len, help_len, g.kind);
            for m in &self.members[g.members.0 as usize..g.members.1 as usize] {
                if m.kept {
                    bytes += sources[m.src as usize].index.fams[m.fam as usize].bytes;
                }
            }
            g.bytes = bytes;
        }
    }
}

/// Tie-break age of source `src` (sources are in id order).
fn age(sources: &[Source], src: u32) -> Age {
    (sources[src as usize].rank, src)
}

/// The HELP of a family (output name `name`, members `ms` in source order):
/// (source, family) whose text is used, `None` for no HELP line. Only
/// members that kept their samples have a say, one per sandbox (its first
/// member with a HELP line, else "no HELP"); see [`vote::pick`].
fn help(name: &[u8], ms: &[Member], sources: &[Source]) -> Option<(u32, u32)> {
    let text = |m: &Member| {
        let src = &sources[m.src as usize];
        src.index.fams[m.fam as usize]
            .help
            .map(|(a, b)| &src.body()[a as usize..b as usize])
    };
    let mut kept = ms.iter().filter(|m| m.kept);
    let first = kept.next()?;
    let t0 = text(first);
    if kept.all(|m| text(m) == t0) {
        // Nearly always: every sandbox sends the same text.
        return t0.map(|_| (first.src, first.fam));
    }
    // One candidate per sandbox: (text, age, member).
    let mut cands: Vec<(Option<&[u8]>, Age, &Member)> = Vec::new();
    for m in ms.iter().filter(|m| m.kept) {
        match cands.last_mut() {
            Some(c) if c.2.src == m.src => {
                if c.0.is_none() && text(m).is_some() {
                    *c = (text(m), c.1, m);
                }
            }
            _ => cands.push((text(m), age(sources, m.src), m)),
        }
    }
    // Group equal texts (sorted by age within a group: a group's first
    // candidate is its oldest); then the same rule as for TYPE: most
    // sandboxes, ties to Kata's text, then to the oldest.
    cands.sort_by(|x, y| x.0.cmp(&y.0).then(x.1.cmp(&y.1)));
    let kata = kata_types::lookup(name).map(|k| k.help.as_bytes());
    let (mut count, mut oldest, mut first) = (Vec::new(), Vec::new(), Vec::new());
    let mut preferred = None;
    let mut i = 0;
    while i < cands.len() {
        let n = cands[i..].iter().take_while(|c| c.0 == cands[i].0).count();
        if cands[i].0.is_some() && cands[i].0 == kata {
            preferred = Some(count.len());
        }
        count.push(n as u32);
        oldest.push(cands[i].1);
        first.push(i);
        i += n;
    }
    let c = &cands[first[vote::pick(&count, &oldest, preferred)]];
    c.0.map(|_| (c.2.src, c.2.fam))
}
