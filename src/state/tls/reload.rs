//! When to reload the certificate files.
//!
//! The reactor stats the files (following symlinks) every
//! [`CHECK_EVERY`] and reports what it saw; a change is acted on once the
//! files have stayed the same for one more check, so a rotation caught
//! half way (a new certificate beside the old key, a file being written)
//! is not loaded and reported as broken. A load that fails keeps the
//! serving configuration, and is not retried until the files change again.
//!
//! Why stat and not inotify: cert-manager, kubelet's secret volumes
//! (`cert.pem -> ..data/cert.pem`, with `..data` a symlink swapped to a
//! new directory), `cp` over the file and bind mounts all change what
//! `stat` of the configured path returns (inode, size, times), whereas an
//! inotify watch sees only what happens in the directory it watches, not
//! in the symlink's target directory nor under a new mount. Three `stat`
//! calls a second cost nothing next to a scrape.
//!
//! Must not: touch files, read the clock, log.

use std::time::Duration;

/// How often the files are checked.
pub const CHECK_EVERY: Duration = Duration::from_secs(1);

/// What `stat` says about one file's contents.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime: (i64, i64),
    pub ctime: (i64, i64),
}

/// The certificate, key and client CA files, in that order (`None`: the
/// file could not be stat'ed).
pub type Stamps = Vec<Option<Stamp>>;

pub struct Rotation {
    /// The files as they were at the last load (successful or not).
    loaded: Stamps,
    /// A change seen at the last check.
    pending: Option<Stamps>,
}

impl Rotation {
    pub fn new(loaded: Stamps) -> Rotation {
        Rotation {
            loaded,
            pending: None,
        }
    }

    /// One check's findings. True: load the files now.
    pub fn check(&mut self, now: Stamps) -> bool {
        if now == self.loaded {
            self.pending = None;
            return false;
        }
        if self.pending.as_ref() == Some(&now) {
            self.pending = None;
            self.loaded = now;
            return true;
        }
        self.pending = Some(now);
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(ino: u64, size: u64) -> Option<Stamp> {
        Some(Stamp {
            dev: 1,
            ino,
            size,
            mtime: (0, 0),
            ctime: (0, 0),
        })
    }

    #[test]
    fn a_change_is_loaded_once_stable() {
        let mut r = Rotation::new(vec![st(1, 10), st(2, 10)]);
        assert!(!r.check(vec![st(1, 10), st(2, 10)]));
        // The certificate changed; the key not yet.
        assert!(!r.check(vec![st(3, 10), st(2, 10)]));
        // Now the key too: still moving.
        assert!(!r.check(vec![st(3, 10), st(4, 10)]));
        // Stable for one check: load.
        assert!(r.check(vec![st(3, 10), st(4, 10)]));
        assert!(!r.check(vec![st(3, 10), st(4, 10)]));
    }

    #[test]
    fn a_failed_load_waits_for_the_next_change() {
        let mut r = Rotation::new(vec![st(1, 10)]);
        assert!(!r.check(vec![None]));
        assert!(r.check(vec![None]), "a vanished file is loaded (and fails)");
        assert!(
            !r.check(vec![None]),
            "and not retried while nothing changes"
        );
        assert!(!r.check(vec![st(5, 10)]));
        assert!(r.check(vec![st(5, 10)]));
    }

    #[test]
    fn a_change_reverted_before_it_settles_is_nothing() {
        let mut r = Rotation::new(vec![st(1, 10)]);
        assert!(!r.check(vec![st(1, 11)]));
        assert!(!r.check(vec![st(1, 10)]));
        assert!(!r.check(vec![st(1, 10)]));
    }
}
