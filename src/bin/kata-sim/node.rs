//! The simulated node: directory layout and sandbox lifecycle.
//!
//! Layout, as on a real node but under one directory `DIR`:
//! `DIR/vc/sbs/<id>/shim-monitor.sock` (Go runtime) and
//! `DIR/kata/<id>/shim-monitor.sock` (runtime-rs).  The sandbox directory is
//! created first, then the socket is bound, like a starting shim; removal
//! stops the listener, closes live connections and deletes the directory.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fmt::Write;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::body::{Bodies, BodyKind};
use crate::faults::{Fault, Rng};
use crate::shim::{Listening, Shim, ShimConfig};

/// `sun_path` holds 108 bytes including the terminating NUL.
const MAX_SOCK_PATH: usize = 107;
const SOCK_NAME: &str = "shim-monitor.sock";
/// Longest root suffix (`/vc/sbs`) + `/<64 hex>/shim-monitor.sock`.
const PATH_OVERHEAD: usize = "/vc/sbs".len() + 1 + 64 + 1 + SOCK_NAME.len();
/// Longest usable `--dir`.
pub const MAX_DIR_LEN: usize = MAX_SOCK_PATH - PATH_OVERHEAD;

pub struct Sandbox {
    pub index: usize,
    pub root: PathBuf,
    dir: PathBuf,
    sock: PathBuf,
    shim: Arc<Shim>,
    listening: Option<Listening>,
}

pub struct Node {
    pub dir: PathBuf,
    pub go_root: PathBuf,
    pub rs_root: PathBuf,
    /// We created `dir`: remove it whole on exit.
    owns_dir: bool,
    bodies: Bodies,
    cfg: Arc<ShimConfig>,
    next_index: usize,
    /// `--ids`: the ids of the first sandboxes (by index), e.g. pod sandbox
    /// ids a real CRI runtime handed out; later ones get generated ids.
    ids: Vec<String>,
    /// By id, so `list` is sorted.
    sandboxes: BTreeMap<String, Sandbox>,
}

impl Node {
    /// Creates the directory (`dir`, or a fresh temporary one) and both roots.
    pub fn create(dir: Option<PathBuf>, bodies: Bodies, cfg: ShimConfig) -> Result<Node, String> {
        let (dir, owns_dir) = match dir {
            Some(d) => {
                check_dir_len(&d)?;
                let existed = d.exists();
                fs::create_dir_all(&d)
                    .map_err(|e| format!("cannot create {}: {e}", d.display()))?;
                (d, !existed)
            }
            None => (temp_dir()?, true),
        };
        let node = Node {
            go_root: dir.join("vc/sbs"),
            rs_root: dir.join("kata"),
            dir,
            owns_dir,
            bodies,
            cfg: Arc::new(cfg),
            next_index: 0,
            ids: Vec::new(),
            sandboxes: BTreeMap::new(),
        };
        for root in [&node.go_root, &node.rs_root] {
            if let Err(e) = fs::create_dir_all(root) {
                node.cleanup();
                return Err(format!("cannot create {}: {e}", root.display()));
            }
        }
        Ok(node)
    }

    /// Names the sandboxes with indices `0..ids.len()` (each checked by
    /// [`check_id`]).
    pub fn set_ids(&mut self, ids: Vec<String>) -> Result<(), String> {
        for id in &ids {
            check_id(id)?;
        }
        self.ids = ids;
        Ok(())
    }

    /// Starts a new sandbox; returns its id.
    pub fn add(&mut self, kind: BodyKind, fault: Fault) -> Result<String, String> {
        let body = self.bodies.get(kind).ok_or_else(|| match kind {
            BodyKind::File(i) => format!(
                "body file:{i} needs {} --body-file (there are {})",
                i + 1,
                self.bodies.file_count()
            ),
            _ => "no such body".to_string(),
        })?;
        let index = self.next_index;
        self.next_index += 1;
        let id = self
            .ids
            .get(index)
            .cloned()
            .unwrap_or_else(|| sandbox_id(index));
        if self.sandboxes.contains_key(&id) {
            return Err(format!("sandbox {id} exists"));
        }
        let root = if self.bodies.is_rs(kind) {
            &self.rs_root
        } else {
            &self.go_root
        };
        let dir = root.join(&id);
        let sock = dir.join(SOCK_NAME);
        fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        // As the shim makes it: only its owner (root on a real node) may
        // enter, so a monitor reaches the socket through the owner bits.
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o750))
            .map_err(|e| format!("cannot chmod {}: {e}", dir.display()))?;
        let shim = Shim::new(
            id.clone(),
            3 + index as u64,
            index as u64,
            body,
            Arc::clone(&self.cfg),
            fault,
        );
        let mut sb = Sandbox {
            index,
            root: root.clone(),
            dir,
            sock,
            shim: Arc::new(shim),
            listening: None,
        };
        if let Err(e) = sb.apply_socket(fault) {
            let _ = fs::remove_dir_all(&sb.dir);
            return Err(format!("cannot listen on {}: {e}", sb.sock.display()));
        }
        self.sandboxes.insert(id.clone(), sb);
        Ok(id)
    }

    /// Finds a sandbox by id or by decimal index.
    pub fn find(&self, key: &str) -> Option<&Sandbox> {
        self.sandboxes.get(key).or_else(|| {
            key.parse()
                .ok()
                .and_then(|i: usize| self.sandboxes.values().find(|s| s.index == i))
        })
    }

    fn find_id(&self, key: &str) -> Result<String, String> {
        self.find(key)
            .map(|s| s.shim.id.clone())
            .ok_or_else(|| format!("unknown sandbox {key}"))
    }

    /// Stops a sandbox's shim and deletes its directory.
    pub fn remove(&mut self, key: &str) -> Result<(), String> {
        let id = self.find_id(key)?;
        let mut sb = self.sandboxes.remove(&id).ok_or("vanished")?;
        sb.shim.set_removed();
        sb.stop_listening();
        fs::remove_dir_all(&sb.dir).map_err(|e| format!("cannot remove {}: {e}", sb.dir.display()))
    }

    pub fn set_fault(&mut self, key: &str, fault: Fault) -> Result<(), String> {
        let id = self.find_id(key)?;
        let sb = self.sandboxes.get_mut(&id).ok_or("vanished")?;
        sb.shim.set_fault(fault);
        sb.apply_socket(fault)
            .map_err(|e| format!("cannot listen on {}: {e}", sb.sock.display()))
    }

    pub fn scrapes(&self, key: &str) -> Result<u64, String> {
        self.find(key)
            .map(|s| s.shim.scrapes())
            .ok_or_else(|| format!("unknown sandbox {key}"))
    }

    /// Sandbox ids, sorted.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.sandboxes.keys().map(String::as_str)
    }

    /// Sandboxes in creation order.
    pub fn by_index(&self) -> Vec<(&str, &Sandbox)> {
        let mut v: Vec<_> = self
            .sandboxes
            .iter()
            .map(|(id, sb)| (id.as_str(), sb))
            .collect();
        v.sort_by_key(|(_, sb)| sb.index);
        v
    }

    /// Removes what we created.  Serving threads may still run; the process
    /// is about to exit.
    pub fn cleanup(&self) {
        if self.owns_dir {
            let _ = fs::remove_dir_all(&self.dir);
            return;
        }
        for sb in self.sandboxes.values() {
            let _ = fs::remove_dir_all(&sb.dir);
        }
        // Only if empty: a user-given --dir may hold other things.
        for d in [self.go_root.as_path(), &self.dir.join("vc"), &self.rs_root] {
            let _ = fs::remove_dir(d);
        }
    }
}

impl Sandbox {
    /// Makes the socket match `fault`: listening, absent (`refuse`) or a
    /// stale file nobody listens on (`stale-socket`).
    fn apply_socket(&mut self, fault: Fault) -> io::Result<()> {
        match fault {
            f if f.listens() => {
                if self.listening.is_none() {
                    let _ = fs::remove_file(&self.sock);
                    let listener = UnixListener::bind(&self.sock)?;
                    self.listening = Some(Listening::start(Arc::clone(&self.shim), listener)?);
                }
            }
            Fault::StaleSocket => {
                self.stop_listening();
                if fs::symlink_metadata(&self.sock).is_err() {
                    // Closing a bound socket leaves its file behind.
                    drop(UnixListener::bind(&self.sock)?);
                }
            }
            _ => {
                self.stop_listening();
                let _ = fs::remove_file(&self.sock);
            }
        }
        Ok(())
    }

    /// Closes the listener and every live connection (the shim is "gone").
    fn stop_listening(&mut self) {
        if let Some(l) = self.listening.take() {
            l.stop();
        }
        self.shim.close_connections();
    }
}

/// 64 lowercase hex chars, a pure function of `index`.
/// A sandbox id given with `--ids`: a plain directory name of at most 64
/// bytes (a CRI pod sandbox id is 64 hex digits).
pub fn check_id(id: &str) -> Result<(), String> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && !id.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "bad sandbox id {id:?}: want 1-64 of [0-9A-Za-z_-], not starting with -"
        ))
    }
}

pub fn sandbox_id(index: usize) -> String {
    let mut rng = Rng(0x6b61_7461_2d73_696d ^ (index as u64).wrapping_mul(0x2545_f491_4f6c_dd1d));
    let mut id = String::with_capacity(64);
    for _ in 0..4 {
        let _ = write!(id, "{:016x}", rng.next_u64());
    }
    id
}

fn check_dir_len(dir: &Path) -> Result<(), String> {
    let len = dir.as_os_str().len();
    if len > MAX_DIR_LEN {
        return Err(format!(
            "--dir {} is {len} bytes: socket paths DIR/vc/sbs/<64-hex-id>/{SOCK_NAME} must stay under \
             108 bytes, so DIR may be at most {MAX_DIR_LEN} bytes (try --dir /tmp/ks)",
            dir.display()
        ));
    }
    Ok(())
}

/// A new private directory for this run.  `$TMPDIR/kata-sim.<pid>` when that
/// is short enough for socket paths (see `MAX_DIR_LEN`), else a short name
/// under /tmp.
fn temp_dir() -> Result<PathBuf, String> {
    let pid = std::process::id();
    let tmp = std::env::var_os("TMPDIR")
        .filter(|t| !t.is_empty())
        .map_or_else(|| "/tmp".into(), PathBuf::from);
    let candidates = [
        tmp.join(format!("kata-sim.{pid}")),
        format!("/tmp/kata-sim.{pid}").into(),
        format!("/tmp/ksim.{pid}").into(),
    ];
    for c in candidates {
        if c.as_os_str().len() <= MAX_DIR_LEN
            && fs::DirBuilder::new().mode(0o700).create(&c).is_ok()
        {
            return Ok(c);
        }
    }
    let template = CString::new("/tmp/ksim.XXXXXX").map_err(|e| e.to_string())?;
    let mut bytes = template.into_bytes_with_nul();
    // SAFETY: `bytes` is a writable NUL-terminated template, as mkdtemp wants.
    let p = unsafe { libc::mkdtemp(bytes.as_mut_ptr().cast()) };
    if p.is_null() {
        return Err(format!(
            "cannot create a temporary directory: {}",
            io::Error::last_os_error()
        ));
    }
    bytes.pop();
    Ok(PathBuf::from(std::ffi::OsStr::from_bytes(&bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_hex() {
        let a = sandbox_id(0);
        assert_eq!(a.len(), 64);
        assert!(
            a.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        );
        assert_eq!(a, sandbox_id(0));
        assert_ne!(a, sandbox_id(1));
    }

    #[test]
    fn given_ids_are_plain_names() {
        assert!(check_id(&sandbox_id(0)).is_ok());
        assert!(check_id("pod_a-1").is_ok());
        for bad in ["", "-x", "a/b", "..", "a b", &"f".repeat(65)] {
            assert!(check_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn dir_budget() {
        assert_eq!(MAX_DIR_LEN, 17);
        assert!(check_dir_len(Path::new("/tmp/ksim.1234567")).is_ok());
        assert!(check_dir_len(Path::new("/tmp/kata-sim.12345")).is_err());
    }
}
