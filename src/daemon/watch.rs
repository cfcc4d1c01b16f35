//! Sandbox discovery: inotify on every sandbox root, with rescans.
//!
//! Owns: the inotify fd and per-root watch state. A root that does not exist
//! (yet), or disappears, is polled for every [`POLL`]; the same poll checks
//! that a watched root is still the directory (device, inode) that was
//! watched, because a deleted directory that something still pins (a bound
//! socket inside it) sends no `IN_DELETE_SELF`, and a re-created one would
//! otherwise go unseen. Queue overflow and a periodic [`RESYNC`] trigger a
//! full rescan, so the list cannot go stale. Reads are drained to
//! `WouldBlock` (edge-triggered).
//!
//! A root that cannot be read (out of descriptors, permissions) is not an
//! empty root: its sandboxes stay listed and the scan is retried at the
//! next poll. Only a root that is gone empties its part of the list.

use crate::state::registry::{Registry, valid_id};
use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask};
use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

/// Valid sandbox ids that are directories directly under `root`.
pub(super) fn scan(root: &Path) -> std::io::Result<BTreeSet<String>> {
    let mut ids = BTreeSet::new();
    for entry in std::fs::read_dir(root)? {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if valid_id(&name) && entry.file_type().is_ok_and(|t| t.is_dir()) {
            ids.insert(name);
        }
    }
    Ok(ids)
}

/// How often a missing root is looked for.
pub(super) const POLL: Duration = Duration::from_secs(2);
/// Full rescan period (belt and braces next to inotify).
pub(super) const RESYNC: Duration = Duration::from_secs(30);

struct Root {
    wd: Option<WatchDescriptor>,
    /// (device, inode) of the watched directory.
    id: Option<(u64, u64)>,
    /// The last scan failed (not for the root being gone): retry at the
    /// next poll, keeping the sandboxes listed.
    rescan: bool,
}

fn dir_id(path: &std::path::Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    m.is_dir().then(|| (m.dev(), m.ino()))
}

/// The watched directory was removed or replaced (a failed `stat` for any
/// other reason than "not found" proves neither).
fn replaced(path: &std::path::Path, id: Option<(u64, u64)>) -> bool {
    match std::fs::metadata(path) {
        Err(e) => e.kind() == std::io::ErrorKind::NotFound,
        Ok(_) => dir_id(path) != id,
    }
}

pub(super) struct Watcher {
    inotify: Inotify,
    roots: Vec<Root>,
    buf: Vec<u8>,
    next_poll: Instant,
    next_resync: Instant,
}

/// Sandboxes that appeared or vanished, for logging and follow-up work.
#[derive(Debug, Default)]
pub(super) struct Changes {
    pub(super) added: Vec<String>,
    pub(super) removed: Vec<String>,
}

impl Changes {
    fn extend(&mut self, (a, r): (Vec<String>, Vec<String>)) {
        self.added.extend(a);
        self.removed.extend(r);
    }
}

fn mask() -> WatchMask {
    WatchMask::CREATE
        | WatchMask::DELETE
        | WatchMask::MOVED_FROM
        | WatchMask::MOVED_TO
        | WatchMask::DELETE_SELF
        | WatchMask::MOVE_SELF
        | WatchMask::ONLYDIR
}

impl Watcher {
    pub(super) fn new(roots: usize, now: Instant) -> std::io::Result<Watcher> {
        Ok(Watcher {
            inotify: Inotify::init()?,
            roots: (0..roots)
                .map(|_| Root {
                    wd: None,
                    id: None,
                    rescan: false,
                })
                .collect(),
            buf: vec![0; 64 * 1024],
            next_poll: now,
            next_resync: now + RESYNC,
        })
    }

    pub(super) fn fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsRawFd;
        self.inotify.as_raw_fd()
    }

    /// Roots currently watched (others are polled).
    pub(super) fn watched(&self) -> usize {
        self.roots.iter().filter(|r| r.wd.is_some()).count()
    }

    /// Check watched roots are still the same directory, and try to watch
    /// and scan every root that is not watched.
    pub(super) fn poll_missing(&mut self, reg: &mut Registry, now: Instant) -> Changes {
        self.next_poll = now + POLL;
        let mut ch = Changes::default();
        for i in 0..self.roots.len() {
            if self.roots[i].wd.is_some() && replaced(&reg.roots()[i], self.roots[i].id) {
                // Re-watched below; sandboxes found again in the new
                // directory stay listed (their counters survive).
                log::info!(root:% = reg.roots()[i].display(); "sandbox root replaced or gone, re-watching");
                self.lose(i);
            }
            if self.roots[i].wd.is_some() && self.roots[i].rescan {
                ch.extend(self.rescan_root(reg, i));
            }
            if self.roots[i].wd.is_none() {
                let path = reg.roots()[i].clone();
                let id = dir_id(&path);
                match self.inotify.watches().add(&path, mask()) {
                    Ok(wd) => {
                        log::info!(root:% = path.display(); "watching sandbox root");
                        self.roots[i].wd = Some(wd);
                        self.roots[i].id = id;
                        ch.extend(self.rescan_root(reg, i));
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        ch.extend(self.rescan_root(reg, i));
                    }
                    Err(e) => {
                        log::warn!(root:% = path.display(), error:% = e; "cannot watch sandbox root, will retry")
                    }
                }
            }
        }
        ch
    }

    fn rescan_root(&mut self, reg: &mut Registry, i: usize) -> (Vec<String>, Vec<String>) {
        if self.roots[i].wd.is_none() {
            return reg.reconcile(i, &BTreeSet::new());
        }
        let scanned = scan(&reg.roots()[i]);
        self.apply_scan(reg, i, scanned)
    }

    /// Make root `i` hold what a scan found. A root that is gone empties
    /// its part of the list; a scan that failed otherwise (EMFILE, EACCES)
    /// changes nothing and is retried at the next poll.
    fn apply_scan(
        &mut self,
        reg: &mut Registry,
        i: usize,
        scanned: std::io::Result<BTreeSet<String>>,
    ) -> (Vec<String>, Vec<String>) {
        let path = reg.roots()[i].display().to_string();
        match scanned {
            Ok(ids) => {
                if std::mem::take(&mut self.roots[i].rescan) {
                    log::info!(root:% = path; "sandbox root readable again");
                }
                reg.reconcile(i, &ids)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.lose(i);
                reg.reconcile(i, &BTreeSet::new())
            }
            Err(e) => {
                if !self.roots[i].rescan {
                    log::warn!(root:% = path, error:% = e; "cannot read sandbox root, keeping its sandboxes listed; retrying");
                }
                self.roots[i].rescan = true;
                (Vec::new(), Vec::new())
            }
        }
    }

    /// Rescan every root (queue overflow, periodic resync).
    pub(super) fn rescan(&mut self, reg: &mut Registry, now: Instant) -> Changes {
        self.next_resync = now + RESYNC;
        let mut ch = Changes::default();
        for i in 0..self.roots.len() {
            if self.roots[i].wd.is_some() && replaced(&reg.roots()[i], self.roots[i].id) {
                self.lose(i);
            }
            ch.extend(self.rescan_root(reg, i));
        }
        ch
    }

    fn lose(&mut self, i: usize) {
        self.roots[i].id = None;
        if let Some(wd) = self.roots[i].wd.take() {
            let _ = self.inotify.watches().remove(wd);
        }
    }

    /// Drain inotify (readable event).
    pub(super) fn handle(&mut self, reg: &mut Registry, now: Instant) -> Changes {
        let mut ch = Changes::default();
        let mut overflow = false;
        let mut lost = Vec::new();
        loop {
            let events = match self.inotify.read_events(&mut self.buf) {
                Ok(ev) => ev,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    log::warn!(error:% = e; "inotify read failed, rescanning");
                    overflow = true;
                    break;
                }
            };
            for ev in events {
                if ev.mask.contains(EventMask::Q_OVERFLOW) {
                    overflow = true;
                    continue;
                }
                let Some(root) = self
                    .roots
                    .iter()
                    .position(|r| r.wd.as_ref() == Some(&ev.wd))
                else {
                    continue;
                };
                if ev.mask.intersects(
                    EventMask::DELETE_SELF
                        | EventMask::MOVE_SELF
                        | EventMask::IGNORED
                        | EventMask::UNMOUNT,
                ) {
                    lost.push(root);
                    continue;
                }
                let Some(name) = ev.name.and_then(|n| n.to_str()) else {
                    continue;
                };
                if !ev.mask.contains(EventMask::ISDIR) {
                    continue;
                }
                if ev.mask.intersects(EventMask::CREATE | EventMask::MOVED_TO) {
                    if reg.add(root, name) == crate::state::registry::Change::Added {
                        ch.added.push(name.to_string());
                    }
                } else if ev
                    .mask
                    .intersects(EventMask::DELETE | EventMask::MOVED_FROM)
                    && reg.remove(root, name) == crate::state::registry::Change::Removed
                {
                    ch.removed.push(name.to_string());
                }
            }
        }
        for root in lost {
            log::info!(root:% = reg.roots()[root].display(); "sandbox root gone, polling for it");
            self.lose(root);
            ch.extend(self.rescan_root(reg, root));
        }
        if overflow {
            log::warn!("inotify queue overflow, rescanning sandbox roots");
            let more = self.rescan(reg, now);
            ch.added.extend(more.added);
            ch.removed.extend(more.removed);
        }
        ch
    }

    /// When `on_timer` next needs to run.
    pub(super) fn deadline(&self) -> Instant {
        self.next_poll.min(self.next_resync)
    }

    /// Timer work: check and poll roots, periodic resync.
    pub(super) fn on_timer(&mut self, reg: &mut Registry, now: Instant) -> Changes {
        let mut ch = Changes::default();
        if now >= self.next_poll {
            let c = self.poll_missing(reg, now);
            ch.added.extend(c.added);
            ch.removed.extend(c.removed);
        }
        if now >= self.next_resync {
            let c = self.rescan(reg, now);
            ch.added.extend(c.added);
            ch.removed.extend(c.removed);
        }
        ch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_scan_is_not_an_empty_root() {
        let dir = std::env::temp_dir().join(format!("km-watch-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for id in ["a", "b"] {
            std::fs::create_dir_all(dir.join(id)).unwrap();
        }
        let now = Instant::now();
        let mut reg = Registry::new(vec![dir.clone()]);
        let mut w = Watcher::new(1, now).unwrap();
        let ch = w.poll_missing(&mut reg, now);
        assert_eq!(ch.added, ["a", "b"]);
        // Out of descriptors: read_dir fails, the sandboxes stay.
        let emfile = Err(std::io::Error::from_raw_os_error(libc::EMFILE));
        assert_eq!(w.apply_scan(&mut reg, 0, emfile), (vec![], vec![]));
        assert_eq!(reg.len(), 2);
        assert!(w.roots[0].rescan, "retried at the next poll");
        // The next poll rescans it (and finds a new one).
        std::fs::create_dir_all(dir.join("c")).unwrap();
        let ch = w.poll_missing(&mut reg, now + POLL);
        assert!(ch.added.contains(&"c".to_string()) && ch.removed.is_empty());
        assert!(!w.roots[0].rescan);
        // A root that is gone empties its part of the list.
        let gone = Err(std::io::Error::from_raw_os_error(libc::ENOENT));
        let (_, removed) = w.apply_scan(&mut reg, 0, gone);
        assert_eq!(removed.len(), 3);
        assert_eq!(w.watched(), 0, "polled for again");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
