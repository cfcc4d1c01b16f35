//! Which sandboxes must not be scraped, and why.
//!
//! runtime-rs shims for QEMU and Firecracker implement hypervisor metrics as
//! `todo!()` (kata-containers #13708): one GET of `/metrics` panics the shim
//! and takes the pod down. Operators exclude such sandboxes by CRI runtime
//! handler (`kata-qemu-runtime-rs`, `kata-fc-rs`, globs) or, on nodes
//! without a CRI, by sandbox root. An excluded sandbox is still listed;
//! it is never sent a request that reaches its metrics.
//!
//! While handler rules are set, a sandbox whose handler is not known yet is
//! *pending*: not scraped until the CRI runtime answers, so no scrape can
//! race the rule.
//!
//! Also owns which roots hold runtime-rs sandboxes (no Go debug endpoints
//! there). Pure: no I/O, no clock, no logging.

use std::path::{Path, PathBuf};

/// The operator's rules.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rules {
    /// Glob patterns (`*`, `?`) on the CRI runtime handler.
    pub handlers: Vec<String>,
    /// Roots (bit i: sandbox dir i) whose sandboxes are all excluded.
    pub roots: u32,
    /// Roots (bit i) that hold runtime-rs sandboxes.
    pub runtime_rs: u32,
}

/// Why a sandbox is not scraped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Excluded {
    /// Its CRI runtime handler matches `pattern`.
    RuntimeHandler { handler: String, pattern: String },
    /// It lives under an excluded sandbox root.
    SandboxDir(PathBuf),
    /// Handler rules are set and its handler is not known yet (or the CRI
    /// runtime does not know it).
    HandlerUnknown,
}

impl Excluded {
    /// The `reason` label of `kata_monitor_sandbox_excluded`.
    pub fn as_label(&self) -> &'static str {
        match self {
            Excluded::RuntimeHandler { .. } => "runtime_handler",
            Excluded::SandboxDir(_) => "sandbox_dir",
            Excluded::HandlerUnknown => "runtime_handler_unknown",
        }
    }

    /// One sentence for a 403 answer and the sandbox list.
    pub fn explain(&self) -> String {
        match self {
            Excluded::RuntimeHandler { handler, pattern } => {
                format!("runtime handler {handler:?} matches --exclude-runtime-handler {pattern:?}")
            }
            Excluded::SandboxDir(dir) => {
                format!(
                    "its sandbox dir {} is excluded (--exclude-sandbox-dir)",
                    dir.display()
                )
            }
            Excluded::HandlerUnknown => {
                "its runtime handler is not known yet (--exclude-runtime-handler is set)".into()
            }
        }
    }
}

impl Rules {
    /// Whether a sandbox under root `root` with CRI runtime handler
    /// `handler` (`None`: not known) may be scraped.
    pub fn verdict(
        &self,
        root: usize,
        root_path: &Path,
        handler: Option<&str>,
    ) -> Result<(), Excluded> {
        if root < 32 && self.roots & (1 << root) != 0 {
            return Err(Excluded::SandboxDir(root_path.to_path_buf()));
        }
        if self.handlers.is_empty() {
            return Ok(());
        }
        let Some(handler) = handler else {
            return Err(Excluded::HandlerUnknown);
        };
        match self.handlers.iter().find(|p| glob(p, handler)) {
            Some(p) => Err(Excluded::RuntimeHandler {
                handler: handler.to_string(),
                pattern: p.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Whether root `root` holds runtime-rs sandboxes.
    pub fn is_runtime_rs(&self, root: usize) -> bool {
        root < 32 && self.runtime_rs & (1 << root) != 0
    }
}

/// Shell-style glob: `*` any run of characters, `?` one character, anything
/// else literally. Iterative with one backtrack point: linear in practice,
/// never exponential.
pub fn glob(pattern: &str, s: &str) -> bool {
    let (p, s): (Vec<char>, Vec<char>) = (pattern.chars().collect(), s.chars().collect());
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == s[si]) {
            pi += 1;
            si += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, si));
            pi += 1;
        } else if let Some((sp, ss)) = star {
            pi = sp + 1;
            si = ss + 1;
            star = Some((sp, ss + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        for (p, s, want) in [
            ("kata-qemu-runtime-rs", "kata-qemu-runtime-rs", true),
            ("kata-*-rs", "kata-qemu-runtime-rs", true),
            ("kata-*-rs", "kata-fc-rs", true),
            ("kata-*-rs", "kata-qemu", false),
            ("*rs", "kata-fc-rs", true),
            ("kata-??", "kata-fc", true),
            ("kata-??", "kata-qemu", false),
            ("*", "", true),
            ("", "", true),
            ("", "x", false),
            ("a*b*c", "aXbYc", true),
            ("a*b*c", "aXbY", false),
            ("**", "anything", true),
        ] {
            assert_eq!(glob(p, s), want, "{p} vs {s}");
        }
        // Pathological patterns stay cheap.
        let s = "a".repeat(10_000);
        assert!(!glob(&format!("{}b", "a*".repeat(50)), &s));
    }

    #[test]
    fn verdicts() {
        let root = Path::new("/run/kata");
        let none = Rules::default();
        assert_eq!(
            none.verdict(1, root, None),
            Ok(()),
            "no rules: everything is scraped"
        );
        let by_root = Rules {
            roots: 0b10,
            ..Rules::default()
        };
        assert_eq!(by_root.verdict(0, root, None), Ok(()));
        assert_eq!(
            by_root
                .verdict(1, root, Some("kata"))
                .unwrap_err()
                .as_label(),
            "sandbox_dir"
        );
        let by_handler = Rules {
            handlers: vec!["kata-qemu-runtime-rs".into(), "kata-fc-rs".into()],
            ..Rules::default()
        };
        assert_eq!(by_handler.verdict(0, root, Some("kata-qemu")), Ok(()));
        let e = by_handler.verdict(0, root, Some("kata-fc-rs")).unwrap_err();
        assert_eq!(e.as_label(), "runtime_handler");
        assert!(e.explain().contains("\"kata-fc-rs\""), "{}", e.explain());
        assert_eq!(
            by_handler.verdict(0, root, None),
            Err(Excluded::HandlerUnknown),
            "no scrape may race the rule"
        );
        assert!(!by_handler.is_runtime_rs(0));
        assert!(
            Rules {
                runtime_rs: 0b10,
                ..Rules::default()
            }
            .is_runtime_rs(1)
        );
    }
}
