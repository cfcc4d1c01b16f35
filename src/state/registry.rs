//! The sandbox list: which ids exist under which roots, their injected labels
//! and per-sandbox bookkeeping.
//!
//! Owns: id validation and socket paths. Only ids in this list are ever used
//! to build a path (a request's `?sandbox=../..` cannot reach anything).
//! Must not: read directories (the watcher scans and reports), log.

use super::exclusion::{Excluded, Rules};
use crate::wire::expo::{Drops, Labels};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

/// Longest sandbox id accepted.
pub const MAX_ID: usize = 128;

/// Letters, digits, `-`, `_`, `.`; not `.` or `..`; at most 128 bytes.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID
        && id != "."
        && id != ".."
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

/// Pod metadata from the CRI runtime.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodMeta {
    pub uid: String,
    pub name: String,
    pub namespace: String,
    /// The CRI runtime handler (`kata`, `kata-qemu-runtime-rs`, ...).
    pub runtime_handler: String,
}

#[derive(Debug)]
pub struct Sandbox {
    /// Bit i: present under root i.
    roots: u32,
    pub meta: Option<PodMeta>,
    pub labels: Labels,
    /// Lines dropped from this sandbox's bodies since it appeared.
    pub drops_total: Drops,
    /// Size of the last body, to size the next read buffer.
    pub size_hint: usize,
    /// When it appeared (a sequence number, lower: known longer): breaks
    /// tied votes between sandboxes in the merge (`wire::expo::vote`).
    pub first_seen: u64,
}

#[derive(Debug, Default)]
pub struct Registry {
    roots: Vec<PathBuf>,
    map: BTreeMap<String, Sandbox>,
    rules: Rules,
    /// The next sandbox's `first_seen`.
    next_seen: u64,
}

/// What a change did to the list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    Added,
    Removed,
    None,
}

impl Registry {
    pub fn new(roots: Vec<PathBuf>) -> Registry {
        Registry::with_rules(roots, Rules::default())
    }

    /// A registry whose sandboxes are judged by `rules`.
    pub fn with_rules(roots: Vec<PathBuf>, rules: Rules) -> Registry {
        Registry {
            roots,
            map: BTreeMap::new(),
            rules,
            next_seen: 0,
        }
    }

    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// The root a listed sandbox is served from (the first that has it).
    pub fn root_of(&self, id: &str) -> Option<usize> {
        let s = self.map.get(id)?;
        (s.roots != 0).then(|| s.roots.trailing_zeros() as usize)
    }

    /// Whether a listed sandbox may be scraped (`None`: not listed).
    pub fn verdict(&self, id: &str) -> Option<Result<(), Excluded>> {
        let s = self.map.get(id)?;
        let root = self.root_of(id)?;
        let handler = s.meta.as_ref().map(|m| m.runtime_handler.as_str());
        Some(self.rules.verdict(root, &self.roots[root], handler))
    }

    /// Whether a listed sandbox is a runtime-rs one (by its root).
    pub fn is_runtime_rs(&self, id: &str) -> bool {
        self.root_of(id)
            .is_some_and(|r| self.rules.is_runtime_rs(r))
    }

    pub fn roots(&self) -> &[PathBuf] {
        &self.roots
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Ids in order.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.map.keys().map(String::as_str)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Sandbox)> {
        self.map.iter().map(|(k, v)| (k.as_str(), v))
    }

    pub fn get(&self, id: &str) -> Option<&Sandbox> {
        self.map.get(id)
    }

    pub fn get_mut(&mut self, id: &str) -> Option<&mut Sandbox> {
        self.map.get_mut(id)
    }

    /// `id` appeared under root `root`.
    pub fn add(&mut self, root: usize, id: &str) -> Change {
        if !valid_id(id) || root >= 32 {
            return Change::None;
        }
        let bit = 1u32 << root;
        match self.map.get_mut(id) {
            Some(s) => {
                s.roots |= bit;
                Change::None
            }
            None => {
                self.map.insert(
                    id.to_string(),
                    Sandbox {
                        roots: bit,
                        meta: None,
                        labels: Labels::new([id, "", "", ""]),
                        drops_total: Drops::default(),
                        size_hint: 0,
                        first_seen: self.next_seen,
                    },
                );
                self.next_seen += 1;
                Change::Added
            }
        }
    }

    /// `id` vanished from root `root`.
    pub fn remove(&mut self, root: usize, id: &str) -> Change {
        let Some(s) = self.map.get_mut(id) else {
            return Change::None;
        };
        s.roots &= !(1u32 << root);
        if s.roots == 0 {
            self.map.remove(id);
            Change::Removed
        } else {
            Change::None
        }
    }

    /// Make root `root` hold exactly `ids` (after a scan, or empty when the
    /// root itself is gone). Returns (added, removed) ids.
    pub fn reconcile(&mut self, root: usize, ids: &BTreeSet<String>) -> (Vec<String>, Vec<String>) {
        let bit = 1u32 << root;
        let gone: Vec<String> = self
            .map
            .iter()
            .filter(|(id, s)| s.roots & bit != 0 && !ids.contains(*id))
            .map(|(id, _)| id.clone())
            .collect();
        let mut removed = Vec::new();
        for id in gone {
            if self.remove(root, &id) == Change::Removed {
                removed.push(id);
            }
        }
        let mut added = Vec::new();
        for id in ids {
            if self.add(root, id) == Change::Added {
                added.push(id.clone());
            }
        }
        (added, removed)
    }

    /// The sandbox's directory under the first root that has it.
    pub fn dir(&self, id: &str) -> Option<PathBuf> {
        Some(self.roots.get(self.root_of(id)?)?.join(id))
    }

    /// `<root>/<id>/shim-monitor.sock` for a listed id.
    pub fn socket_path(&self, id: &str) -> Option<PathBuf> {
        Some(self.dir(id)?.join("shim-monitor.sock"))
    }

    /// Set (or clear) a sandbox's pod metadata; re-renders its labels.
    pub fn set_meta(&mut self, id: &str, meta: Option<PodMeta>) -> bool {
        let Some(s) = self.map.get_mut(id) else {
            return false;
        };
        if s.meta == meta {
            return false;
        }
        let (uid, name, ns) = meta.as_ref().map_or(("", "", ""), |m| {
            (&m.uid[..], &m.name[..], &m.namespace[..])
        });
        s.labels = Labels::new([id, uid, name, ns]);
        s.meta = meta;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn ids() {
        for ok in ["a", "fce476c3a73ac0ba", "a.b-c_D", "...", &"x".repeat(128)] {
            assert!(valid_id(ok), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "../x",
            "a b",
            "é",
            &"x".repeat(129),
            "a\0",
        ] {
            assert!(!valid_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn first_root_wins_and_removal_needs_all_roots() {
        let mut r = Registry::new(vec!["/r0".into(), "/r1".into()]);
        assert_eq!(r.add(1, "x"), Change::Added);
        assert_eq!(
            r.socket_path("x").unwrap(),
            Path::new("/r1/x/shim-monitor.sock")
        );
        assert_eq!(r.add(0, "x"), Change::None);
        assert_eq!(
            r.socket_path("x").unwrap(),
            Path::new("/r0/x/shim-monitor.sock")
        );
        assert_eq!(r.remove(0, "x"), Change::None);
        assert_eq!(
            r.socket_path("x").unwrap(),
            Path::new("/r1/x/shim-monitor.sock")
        );
        assert_eq!(r.remove(1, "x"), Change::Removed);
        assert!(r.socket_path("x").is_none());
        assert_eq!(r.add(0, "../etc"), Change::None);
        assert!(r.socket_path("../etc").is_none());
    }

    #[test]
    fn first_seen_orders_sandboxes_by_arrival() {
        let mut r = Registry::new(vec!["/r0".into(), "/r1".into()]);
        r.add(0, "z");
        r.add(0, "a");
        r.add(1, "z");
        let seen = |r: &Registry, id| r.get(id).unwrap().first_seen;
        assert!(seen(&r, "z") < seen(&r, "a"));
        // Gone and back: known since it came back.
        r.remove(0, "z");
        r.remove(1, "z");
        r.add(0, "z");
        assert!(seen(&r, "z") > seen(&r, "a"));
    }

    #[test]
    fn reconcile_and_meta() {
        let mut r = Registry::new(vec!["/r0".into()]);
        r.add(0, "a");
        r.add(0, "b");
        let set: BTreeSet<String> = ["b", "c"].iter().map(|s| s.to_string()).collect();
        let (added, removed) = r.reconcile(0, &set);
        assert_eq!(added, ["c"]);
        assert_eq!(removed, ["a"]);
        assert_eq!(r.ids().collect::<Vec<_>>(), ["b", "c"]);
        let meta = PodMeta {
            uid: "u".into(),
            name: "n".into(),
            namespace: "ns".into(),
            runtime_handler: "kata".into(),
        };
        assert!(r.set_meta("b", Some(meta.clone())));
        assert!(!r.set_meta("b", Some(meta)));
        assert_eq!(
            r.get("b").unwrap().labels.plain(),
            br#"sandbox_id="b",cri_uid="u",cri_name="n",cri_namespace="ns""#
        );
    }

    #[test]
    fn verdicts_follow_roots_and_metadata() {
        let rules = Rules {
            handlers: vec!["kata-*-rs".into()],
            roots: 0b10,
            runtime_rs: 0b10,
        };
        let mut r = Registry::with_rules(vec!["/r0".into(), "/r1".into()], rules);
        r.add(0, "go");
        r.add(1, "rs");
        assert_eq!(r.verdict("nope"), None);
        assert_eq!(
            r.verdict("rs").unwrap().unwrap_err().as_label(),
            "sandbox_dir"
        );
        assert!(r.is_runtime_rs("rs") && !r.is_runtime_rs("go"));
        assert_eq!(r.verdict("go").unwrap(), Err(Excluded::HandlerUnknown));
        let meta = |h: &str| PodMeta {
            uid: "u".into(),
            name: "n".into(),
            namespace: "ns".into(),
            runtime_handler: h.into(),
        };
        r.set_meta("go", Some(meta("kata-qemu")));
        assert_eq!(r.verdict("go").unwrap(), Ok(()));
        r.set_meta("go", Some(meta("kata-fc-rs")));
        assert_eq!(
            r.verdict("go").unwrap().unwrap_err().as_label(),
            "runtime_handler"
        );
        // The root an id is served from decides: here the first one.
        r.add(0, "rs");
        assert_eq!(r.verdict("rs").unwrap(), Err(Excluded::HandlerUnknown));
    }
}
