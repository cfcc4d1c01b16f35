//! The exposition engine: index, relabel and merge shim `/metrics` bodies.
//!
//! Given N sandboxes' raw bodies and each sandbox's injected labels, produce the
//! merged Prometheus text that `/metrics` serves, as a stream of byte chunks:
//!
//! * [`lex`]: checked classification of one line (the grammar), with
//!   [`number`] for values and timestamps;
//! * [`index`]: one pass over a body: families, runs of kept lines, insertion
//!   points (labels, `kata_shim_` renames, `exported_` renames), drop counters;
//! * [`merge`]: the cross-sandbox plan (sorted families, HELP/TYPE choice,
//!   type and name conflicts), deciding by the votes in [`vote`] with ties
//!   broken by [`kata_types`] (the families Kata itself emits);
//! * [`render`]: the pull cursor that copies body spans and pre-rendered label
//!   bytes into the caller's buffer;
//! * [`text`]: a writer for the monitor's own metrics (same escaping rules).
//!
//! Sans-IO: no fds, no clock, no logging. Never panics on body bytes, and never
//! emits a line that is not valid for expfmt and Prometheus.
//!
//! ```
//! use kata_monitor::wire::expo::{Exposition, Filter, Labels};
//! let mut expo = Exposition::new(7);
//! expo.add("sb1", Labels::new(["sb1", "uid", "pod", "ns"]), b"# TYPE up gauge\nup 1\n".to_vec());
//! expo.finish();
//! let mut cur = expo.cursor(&Filter::all(), Vec::new());
//! let mut out = vec![0; cur.len() as usize];
//! let n = cur.fill(&expo, &mut out);
//! assert_eq!(n as u64, cur.len());
//! assert_eq!(
//!     std::str::from_utf8(&out).unwrap(),
//!     "# TYPE up gauge\nup{sandbox_id=\"sb1\",cri_uid=\"uid\",cri_name=\"pod\",cri_namespace=\"ns\"} 1\n"
//! );
//! ```

mod fast;
pub mod hash;
pub mod index;
pub mod kata_types;
pub mod labels;
pub mod lex;
pub mod limits;
pub mod merge;
pub mod number;
pub mod render;
mod replay;
mod swar;
pub mod text;
pub mod vote;

pub use index::{BodyIndex, Drops, Scratch};
pub use labels::Labels;
pub use lex::{Kind, Reason};
pub use limits::Limits;
pub use render::{Cursor, Filter, Marks};

/// One sandbox's input: id, injected labels, raw body and its index.
pub struct Source {
    pub id: String,
    pub labels: Labels,
    /// Lower is known longer: breaks the merge's tied votes (see `vote`).
    pub rank: u64,
    /// The buffer the body was read into; the body is `buf[range]`.
    buf: Vec<u8>,
    range: std::ops::Range<usize>,
    pub index: BodyIndex,
}

impl Source {
    /// The raw body bytes.
    #[inline]
    pub fn body(&self) -> &[u8] {
        &self.buf[self.range.clone()]
    }
}

/// A set of indexed sources and their merge plan: what one fetch round of the
/// daemon produces, shared read-only by every response rendered from it.
pub struct Exposition {
    sources: Vec<Source>,
    /// Reusable sources (their index allocations) from a previous round.
    spare: Vec<Source>,
    plan: merge::Plan,
    scratch: Scratch,
    seed: u64,
    limits: Limits,
}

impl Exposition {
    /// `seed` keys the engine's hashes (use a random value per process).
    pub fn new(seed: u64) -> Exposition {
        Exposition::with_limits(seed, Limits::default())
    }

    pub fn with_limits(seed: u64, limits: Limits) -> Exposition {
        Exposition {
            sources: Vec::new(),
            spare: Vec::new(),
            plan: merge::Plan::default(),
            scratch: Scratch::default(),
            seed,
            limits,
        }
    }

    /// Forget all sources, keeping allocations for the next round.
    pub fn clear(&mut self) {
        self.spare.append(&mut self.sources);
    }

    /// Index `body` and add it, ranked by insertion (the first added counts
    /// as known longest). Returns a recycled buffer (stale contents,
    /// possibly empty) the caller can read the next body into.
    pub fn add(&mut self, id: &str, labels: Labels, body: Vec<u8>) -> Vec<u8> {
        let n = body.len();
        let rank = self.sources.len() as u64;
        self.add_range(id, labels, rank, body, 0..n)
    }

    /// Like [`add`](Self::add) for a body that is `buf[range]` (e.g. after
    /// the HTTP head it was read with): nothing is copied. `rank` orders
    /// sources by how long they have been known (lower: longer; the daemon
    /// passes a first-seen sequence number): it breaks tied votes between
    /// sandboxes in the merge.
    pub fn add_range(
        &mut self,
        id: &str,
        labels: Labels,
        rank: u64,
        buf: Vec<u8>,
        range: std::ops::Range<usize>,
    ) -> Vec<u8> {
        let range = range.start.min(buf.len())..range.end.min(buf.len());
        // The same sandbox's index from the last round, if there is one:
        // its memo lets an unchanged body skip indexing (see `replay`).
        let same = self.spare.iter().rposition(|s| s.id == id);
        let spare = match same {
            Some(i) => Some(self.spare.swap_remove(i)),
            None => self.spare.pop(),
        };
        let (mut index, old_buf, mut old_id) = match spare {
            Some(s) => (s.index, s.buf, s.id),
            None => (BodyIndex::default(), Vec::new(), String::new()),
        };
        index.build(
            &buf[range.clone()],
            &labels,
            self.seed,
            self.limits,
            &mut self.scratch,
        );
        old_id.clear();
        old_id.push_str(id);
        self.sources.push(Source {
            id: old_id,
            labels,
            rank,
            buf,
            range,
            index,
        });
        old_buf
    }

    /// Withdraw the source added last (before [`finish`](Self::finish)):
    /// its buffer comes back (stale contents, for reuse), its index is kept
    /// for reuse.
    pub fn reject_last(&mut self) -> Option<Vec<u8>> {
        let mut s = self.sources.pop()?;
        let buf = std::mem::take(&mut s.buf);
        self.spare.push(s);
        Some(buf)
    }

    /// The source added last.
    pub fn last(&self) -> Option<&Source> {
        self.sources.last()
    }

    /// Take every body buffer back (stale contents, for reuse), leaving the
    /// exposition empty.
    pub fn take_buffers(&mut self, out: &mut Vec<Vec<u8>>) {
        self.clear();
        for s in &mut self.spare {
            let b = std::mem::take(&mut s.buf);
            if b.capacity() > 0 {
                out.push(b);
            }
        }
    }

    /// Sort sources by id and build the merge plan. Call after the last `add`.
    pub fn finish(&mut self) {
        self.sources.sort_by(|a, b| a.id.cmp(&b.id));
        self.plan.build(&self.sources, self.seed);
    }

    /// Memory held: body buffers' capacity and index entries (for the
    /// monitor's debug log; not exact, but tracks growth).
    pub fn held_bytes(&self) -> usize {
        self.sources
            .iter()
            .chain(&self.spare)
            .map(|s| s.buf.capacity() + s.index.held_bytes())
            .sum()
    }

    pub fn sources(&self) -> &[Source] {
        &self.sources
    }

    /// All drops of source `i`: its own lines plus merge-level drops.
    pub fn drops(&self, i: usize) -> Drops {
        let mut d = self.sources[i].index.drops;
        if let Some(m) = self.plan.drops.get(i) {
            d.merge(m);
        }
        d
    }

    /// Number of families in the merged output.
    pub fn families(&self) -> usize {
        self.plan.fams.iter().filter(|f| f.kept).count()
    }

    /// A cursor over `head` then the families `filter` selects.
    pub fn cursor(&self, filter: &Filter, head: Vec<u8>) -> Cursor {
        Cursor::new(self, filter, head)
    }

    /// The whole output in one buffer (tests, tools; the daemon streams).
    pub fn render_to_vec(&self, filter: &Filter) -> Vec<u8> {
        let mut c = self.cursor(filter, Vec::new());
        let mut out = vec![0; c.len() as usize];
        let n = c.fill(self, &mut out);
        debug_assert_eq!(n, out.len());
        out
    }
}
