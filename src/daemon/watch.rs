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

use super::registry::{Registry, scan};
use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// How often a missing root is looked for.
pub const POLL: Duration = Duration::from_secs(2);
/// Full rescan period (belt and braces next to inotify).
pub const RESYNC: Duration = Duration::from_secs(30);

struct Root {
    wd: Option<WatchDescriptor>,
    /// (device, inode) of the watched directory.
    id: Option<(u64, u64)>,
}

fn dir_id(path: &std::path::Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    m.is_dir().then(|| (m.dev(), m.ino()))
}

pub struct Watcher {
    inotify: Inotify,
    roots: Vec<Root>,
    buf: Vec<u8>,
    next_poll: Instant,
    next_resync: Instant,
}

/// Sandboxes that appeared or vanished, for logging and follow-up work.
#[derive(Debug, Default)]
pub struct Changes {
    pub added: Vec<String>,
    pub removed: Vec<String>,
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
    pub fn new(roots: usize, now: Instant) -> std::io::Result<Watcher> {
        Ok(Watcher {
            inotify: Inotify::init()?,
            roots: (0..roots).map(|_| Root { wd: None, id: None }).collect(),
            buf: vec![0; 64 * 1024],
            next_poll: now,
            next_resync: now + RESYNC,
        })
    }

    pub fn fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsRawFd;
        self.inotify.as_raw_fd()
    }

    /// Roots currently watched (others are polled).
    pub fn watched(&self) -> usize {
        self.roots.iter().filter(|r| r.wd.is_some()).count()
    }

    /// Check watched roots are still the same directory, and try to watch
    /// and scan every root that is not watched.
    pub fn poll_missing(&mut self, reg: &mut Registry, now: Instant) -> Changes {
        self.next_poll = now + POLL;
        let mut ch = Changes::default();
        for i in 0..self.roots.len() {
            if self.roots[i].wd.is_some() && dir_id(&reg.roots()[i]) != self.roots[i].id {
                log::info!(root:% = reg.roots()[i].display(); "sandbox root replaced or gone, re-watching");
                self.lose(i);
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
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => {
                        log::warn!(root:% = path.display(), error:% = e; "cannot watch sandbox root, will retry")
                    }
                }
            }
        }
        ch
    }

    fn rescan_root(&mut self, reg: &mut Registry, i: usize) -> (Vec<String>, Vec<String>) {
        let ids = if self.roots[i].wd.is_some() {
            scan(&reg.roots()[i]).unwrap_or_default()
        } else {
            BTreeSet::new()
        };
        reg.reconcile(i, &ids)
    }

    /// Rescan every root (queue overflow, periodic resync).
    pub fn rescan(&mut self, reg: &mut Registry, now: Instant) -> Changes {
        self.next_resync = now + RESYNC;
        let mut ch = Changes::default();
        for i in 0..self.roots.len() {
            if self.roots[i].wd.is_some() && !reg.roots()[i].is_dir() {
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
    pub fn handle(&mut self, reg: &mut Registry, now: Instant) -> Changes {
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
                    if reg.add(root, name) == super::registry::Change::Added {
                        ch.added.push(name.to_string());
                    }
                } else if ev
                    .mask
                    .intersects(EventMask::DELETE | EventMask::MOVED_FROM)
                    && reg.remove(root, name) == super::registry::Change::Removed
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
    pub fn deadline(&self) -> Instant {
        self.next_poll.min(self.next_resync)
    }

    /// Timer work: check and poll roots, periodic resync.
    pub fn on_timer(&mut self, reg: &mut Registry, now: Instant) -> Changes {
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
