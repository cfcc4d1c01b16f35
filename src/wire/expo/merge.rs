//! The merge plan: every family of every sandbox under its output name, sorted,
//! with the sandboxes contributing to it, in sandbox-id order.
//!
//! Owns: cross-sandbox rules. HELP and TYPE come from the first sandbox that
//! has them; a sandbox whose TYPE disagrees is dropped from that family; a
//! family that a parser would read as part of an earlier histogram/summary
//! (`x_bucket` after histogram `x`) is dropped. Drops are booked to the
//! sandbox whose lines they were. Knows nothing about output buffers.

use super::Source;
use super::hash::{HashTable, hash_bytes};
use super::index::{Drops, Family};
use super::labels::RENAME_PREFIX;
use super::lex::{Kind, Reason};

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

        // 3. Type and help per family; drop sources that disagree.
        for g in &mut self.fams {
            let ms = &mut self.members[g.members.0 as usize..g.members.1 as usize];
            let fam = |m: &Member| &sources[m.src as usize].index.fams[m.fam as usize];
            g.kind = ms
                .iter()
                .map(fam)
                .find(|f| f.typed)
                .map_or(Kind::Untyped, |f| f.kind);
            for m in ms.iter_mut() {
                let f = fam(m);
                let agrees = if f.typed {
                    f.kind == g.kind
                } else {
                    // Samples of an undeclared family are plain `name` lines:
                    // fine in a counter/gauge, not part of a histogram/summary.
                    !matches!(g.kind, Kind::Histogram | Kind::Summary)
                };
                if !agrees {
                    m.kept = false;
                    self.drops[m.src as usize].add(Reason::TypeConflict, f.samples);
                }
            }
            g.help = ms
                .iter()
                .filter(|m| m.kept && fam(m).help.is_some())
                .map(|m| (m.src, m.fam))
                .next();
            g.kept = ms.iter().any(|m| m.kept);
        }

        // 4. Output order.
        self.sorted.extend(0..nf as u32);
        let (names, fams) = (&self.names, &self.fams);
        let name = |g: u32| {
            let s = fams[g as usize].name;
            &names[s.0 as usize..s.1 as usize]
        };
        self.sorted.sort_unstable_by(|&a, &b| name(a).cmp(name(b)));

        // 5. `x_sum` etc. after histogram/summary `x`: a parser would file its
        //    HELP/TYPE/samples under `x` (expfmt: "second TYPE line"). Drop it.
        for gi in 0..nf {
            if !self.fams[gi].kept {
                continue;
            }
            let n = self.name(&self.fams[gi]).to_vec();
            let mut conflict = false;
            for (suffix, hist_only) in [
                (&b"_bucket"[..], true),
                (b"_sum", false),
                (b"_count", false),
            ] {
                if n.len() > suffix.len() && n.ends_with(suffix) {
                    let base = &n[..n.len() - suffix.len()];
                    if let Some(b) = self.lookup(base, hash_bytes(seed, base)) {
                        let b = &self.fams[b as usize];
                        conflict |= b.kept
                            && (b.kind == Kind::Histogram
                                || (b.kind == Kind::Summary && !hist_only));
                    }
                }
            }
            if conflict {
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
