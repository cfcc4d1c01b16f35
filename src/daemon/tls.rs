//! TLS on the listener: the certificate files, their reloading, and the
//! figures behind the `kata_monitor_tls_*` metrics.
//!
//! The files are read at start (a bad file stops the monitor, exit 1) and
//! stat'ed every second after ([`crate::state::tls::reload`] says when a
//! change is loaded, and why stat rather than inotify). A new certificate
//! is used by connections accepted after it loaded; connections already
//! open keep theirs. A file that cannot be used keeps the previous
//! configuration serving, with a warning and
//! `kata_monitor_tls_certificate_reload_errors_total`.

use super::config::TlsFiles;
use crate::state::tls::reload::{Rotation, Stamp, Stamps};
use crate::state::tls::setup::{self, Material, Server};
use crate::state::tls::{FailureKind, Session};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

/// Handshake failures and timeouts, by reason; `FailureKind::ALL` order,
/// then `handshake_timeout`.
pub(super) const FAILURE_LABELS: [&str; 6] = [
    FailureKind::ALL[0].as_label(),
    FailureKind::ALL[1].as_label(),
    FailureKind::ALL[2].as_label(),
    FailureKind::ALL[3].as_label(),
    FailureKind::ALL[4].as_label(),
    "handshake_timeout",
];

pub(super) struct Tls {
    files: TlsFiles,
    server: Server,
    rotation: Rotation,
    /// Successful reloads since start.
    pub(super) reloads: u64,
    pub(super) reload_errors: u64,
    /// By [`FAILURE_LABELS`].
    pub(super) failures: [u64; 6],
}

impl Tls {
    /// Read and check the files; the error is for the operator.
    pub(super) fn load(files: &TlsFiles) -> std::io::Result<Tls> {
        let stamps = stamps(files);
        let server = build(files).map_err(std::io::Error::other)?;
        let t = Tls {
            files: files.clone(),
            server,
            rotation: Rotation::new(stamps),
            reloads: 0,
            reload_errors: 0,
            failures: [0; 6],
        };
        log::info!(
            cert:% = files.cert.display(),
            min_version = files.policy.min_version.as_str(),
            client_ca:% = files.client_ca.as_ref().map_or("none".into(), |p| p.display().to_string()),
            client_cas = t.server.client_cas,
            chain = t.server.chain_len,
            not_after = t.not_after().unwrap_or(0);
            "TLS on: HTTPS only"
        );
        Ok(t)
    }

    /// Client certificates are required.
    pub(super) fn client_auth(&self) -> bool {
        self.server.client_cas > 0
    }

    /// The serving certificate's notAfter (Unix seconds).
    pub(super) fn not_after(&self) -> Option<i64> {
        self.server.validity.map(|v| v.not_after)
    }

    /// A session for a connection just accepted.
    pub(super) fn session(&self) -> Option<Box<Session>> {
        match Session::new(self.server.config.clone()) {
            Ok(s) => Some(Box::new(s)),
            Err(e) => {
                log::warn!(error:% = e; "cannot start a TLS session");
                None
            }
        }
    }

    pub(super) fn count_failure(&mut self, kind: FailureKind) {
        let i = FailureKind::ALL
            .iter()
            .position(|k| *k == kind)
            .unwrap_or(3);
        self.failures[i] += 1;
    }

    pub(super) fn count_timeout(&mut self) {
        self.failures[5] += 1;
    }

    /// The periodic check: reload the files when they changed and settled.
    pub(super) fn check(&mut self) {
        if !self.rotation.check(stamps(&self.files)) {
            return;
        }
        match build(&self.files) {
            Ok(server) => {
                self.server = server;
                self.reloads += 1;
                log::info!(
                    cert:% = self.files.cert.display(),
                    not_after = self.not_after().unwrap_or(0),
                    client_cas = self.server.client_cas;
                    "TLS certificate files changed: new connections use the new ones"
                );
            }
            Err(e) => {
                self.reload_errors += 1;
                log::warn!(
                    error:% = e,
                    cert:% = self.files.cert.display();
                    "TLS certificate files changed but cannot be used: still serving the previous certificate"
                );
            }
        }
    }
}

fn paths(f: &TlsFiles) -> impl Iterator<Item = &PathBuf> {
    [Some(&f.cert), Some(&f.key), f.client_ca.as_ref()]
        .into_iter()
        .flatten()
}

/// What stat says of each file, following symlinks.
fn stamps(f: &TlsFiles) -> Stamps {
    paths(f)
        .map(|p| {
            std::fs::metadata(p).ok().map(|m| Stamp {
                dev: m.dev(),
                ino: m.ino(),
                size: m.size(),
                mtime: (m.mtime(), m.mtime_nsec()),
                ctime: (m.ctime(), m.ctime_nsec()),
            })
        })
        .collect()
}

fn build(f: &TlsFiles) -> Result<Server, String> {
    let read = |p: &PathBuf| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
    let cert = read(&f.cert)?;
    let key = read(&f.key)?;
    let ca = f.client_ca.as_ref().map(read).transpose()?;
    setup::build(
        &f.policy,
        &Material {
            cert_pem: &cert,
            key_pem: &key,
            client_ca_pem: ca.as_deref(),
        },
    )
    .map_err(|e| {
        let which = if e.starts_with("client CA") {
            f.client_ca.as_ref().unwrap_or(&f.cert)
        } else if e.starts_with("key") {
            &f.key
        } else {
            &f.cert
        };
        format!("{}: {e}", which.display())
    })
}
