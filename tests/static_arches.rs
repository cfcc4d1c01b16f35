//! The static binaries for every architecture Kata ships
//! (`deploy/build-static.sh all`: target/static/<arch>/kata-monitor), each
//! run under qemu-user (natively on the host's own architecture):
//!
//! * `version` names the architecture and the same version as this build
//!   (a binary of another commit is noted);
//! * one `/metrics` scrape of a simulated node (four sandboxes, every body
//!   kind, both sandbox roots) equals, byte for byte, what this crate's own
//!   monitor answers for the same node: the exposition engine gives the same
//!   output on big-endian s390x and on ppc64le, aarch64 and x86_64 musl;
//! * its gzip and zstd answers decode (with the host's tools) to that text;
//! * `/healthz` answers 200;
//! * over HTTPS with a client certificate required (ring's ECDSA P-256,
//!   X25519 and AES-GCM, webpki's client certificate check, on each
//!   architecture), `/healthz` answers 200, and a client without a
//!   certificate is refused.
//!
//! The library's unit tests and the engine's property and golden tests run
//! per target under qemu-user too: tests/peers/cross-test.sh.
//!
//! Without the binaries or qemu-user: skipped visibly, or failed under
//! `KATA_MONITOR_CI=1` (`.ci/run` builds them and installs qemu-user).

mod common;

use common::decode::{decode_with, decoder};
use common::node::{MONITOR, Monitor, Sim};
use common::peer::{in_path, require_peer};
use std::path::{Path, PathBuf};
use std::process::Command;

/// (uname -m, OCI architecture, qemu-user emulator).
const ARCHES: [(&str, &str, &str); 4] = [
    ("x86_64", "amd64", "qemu-x86_64"),
    ("aarch64", "arm64", "qemu-aarch64"),
    ("s390x", "s390x", "qemu-s390x"),
    ("ppc64le", "ppc64le", "qemu-ppc64le"),
];

/// How to run `arch`'s binary: (program, leading args).
fn runner(arch: &str) -> Option<(PathBuf, Vec<String>)> {
    let (_, _, qemu) = ARCHES.iter().find(|a| a.0 == arch).unwrap();
    let bin = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/static")
        .join(arch)
        .join("kata-monitor");
    let bin = require_peer(
        &format!("{arch} static binary"),
        if bin.is_file() {
            Ok(bin)
        } else {
            Err(format!("no {} (deploy/build-static.sh all)", bin.display()))
        },
    )?;
    if arch == std::env::consts::ARCH {
        return Some((bin, Vec::new()));
    }
    let qemu = require_peer(
        qemu,
        in_path(qemu).map_err(|e| format!("{e} (apt-get install qemu-user)")),
    )?;
    Some((qemu, vec![bin.display().to_string()]))
}

/// `kata-monitor version` lines, keyed.
fn version(program: &Path, lead: &[String]) -> Vec<(String, String)> {
    let out = Command::new(program)
        .args(lead)
        .arg("version")
        .output()
        .expect("run version");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// Sandbox families of a fresh node: the first scrape of each simulated shim
/// serves its fixture body byte for byte, so two fresh nodes give the same
/// input. The monitor's own families (timings) are left out by the filter.
fn scrape(program: &str, lead: &[String]) -> Vec<u8> {
    let sim = Sim::start(&[
        "--sandboxes",
        "4",
        "--bodies",
        "default,small,large,rs",
        "--frozen",
    ]);
    let roots = sim.roots_arg();
    let mut args: Vec<&str> = lead.iter().map(String::as_str).collect();
    args.extend([
        "-listen-address=127.0.0.1:0",
        "-log-level=debug",
        "-runtime-endpoint=unix:///nonexistent/kata-monitor-test.sock",
        "-sandbox-dirs",
        &roots,
    ]);
    let m = Monitor::start_bin(program, &args);
    // Every sandbox found before the one scrape (/sandboxes fetches nothing).
    m.wait_for("/sandboxes", 30, |r| {
        r.text().lines().filter(|l| !l.is_empty()).count() == 4
    });
    assert_eq!(m.get("/healthz").status, 200);
    let r = m.get("/metrics?filter_family=kata_");
    assert_eq!(r.status, 200, "{}", m.log_text());
    for id in &sim.ids {
        assert!(
            r.text().contains(&format!("sandbox_id=\"{id}\"")),
            "{id} missing"
        );
    }
    // This build's encoders (libzstd compiled for the target, miniz_oxide)
    // decode, with the host's tools, to the same text (the node is frozen).
    for coding in ["zstd", "gzip"] {
        let Some(tool) = decoder(coding) else {
            continue;
        };
        let z = m.get_with(
            "/metrics?filter_family=kata_",
            &[("Accept-Encoding", coding)],
        );
        assert_eq!(z.header("content-encoding"), Some(coding));
        assert!(
            decode_with(&tool, &z.body) == r.body,
            "{program}: {coding} answer does not decode to the plain one"
        );
    }
    r.body
}

fn check_arch(arch: &str) {
    let Some((program, lead)) = runner(arch) else {
        return;
    };
    let oci = ARCHES.iter().find(|a| a.0 == arch).unwrap().1;
    let theirs = version(&program, &lead);
    let ours = version(Path::new(MONITOR), &[]);
    let get = |v: &[(String, String)], k: &str| {
        v.iter()
            .find(|(key, _)| key == k)
            .map(|(_, val)| val.clone())
            .unwrap_or_else(|| panic!("no {k} in {v:?}"))
    };
    assert_eq!(get(&theirs, "OS/Arch"), format!("linux/{oci}"));
    assert_eq!(get(&theirs, "Version"), get(&ours, "Version"));
    // The commit: the static build embeds the short one, this build 12
    // digits. A binary from another commit is still compared (the /metrics
    // check below is what matters), but say so: it may be stale.
    let (c1, c2) = (get(&theirs, "Git commit"), get(&ours, "Git commit"));
    if !(c1.starts_with(&c2) || c2.starts_with(&c1)) {
        common::peer::visible(&format!(
            "NOTE static_{arch}: binary from commit {c1}, this build from {c2} \
             (deploy/build-static.sh all rebuilds it)"
        ));
    }

    #[cfg(feature = "tls")]
    https(&program, &lead);

    let expected = scrape(MONITOR, &[]);
    let got = scrape(&program.display().to_string(), &lead);
    assert!(expected.len() > 100_000, "{} bytes", expected.len());
    if got != expected {
        let pos = got
            .iter()
            .zip(&expected)
            .position(|(a, b)| a != b)
            .unwrap_or(got.len().min(expected.len()));
        let show = |b: &[u8]| {
            String::from_utf8_lossy(&b[pos.saturating_sub(100)..(pos + 100).min(b.len())])
                .into_owned()
        };
        panic!(
            "{arch}: /metrics differs at byte {pos} ({} vs {} bytes)\n{arch}: {}\nhost: {}",
            got.len(),
            expected.len(),
            show(&got),
            show(&expected)
        );
    }
}

#[test]
fn static_x86_64() {
    check_arch("x86_64");
}

#[test]
fn static_aarch64() {
    check_arch("aarch64");
}

#[test]
fn static_s390x() {
    check_arch("s390x");
}

#[test]
fn static_ppc64le() {
    check_arch("ppc64le");
}

/// HTTPS with client certificates on `program`: what ring and webpki do
/// on this architecture (byte order, assembly or C fallbacks).
#[cfg(feature = "tls")]
fn https(program: &Path, lead: &[String]) {
    use common::pki::{Ca, client_config, https_get};
    let (ca, clients) = (Ca::new("server ca"), Ca::new("client ca"));
    let dir = common::node::tmpdir("arch-tls");
    let (cert, key) = ca.server().write(&dir);
    std::fs::write(dir.join("client-ca.pem"), clients.pem()).unwrap();
    let (cert, key) = (cert.display().to_string(), key.display().to_string());
    let client_ca = dir.join("client-ca.pem").display().to_string();
    let empty = dir.join("sbs");
    std::fs::create_dir_all(&empty).unwrap();
    let mut args: Vec<&str> = lead.iter().map(String::as_str).collect();
    let empty = empty.display().to_string();
    args.extend([
        "-listen-address=127.0.0.1:0",
        "-runtime-endpoint=unix:///nonexistent/kata-monitor-test.sock",
        "-sandbox-dirs",
        &empty,
        "-tls-cert-file",
        &cert,
        "-tls-key-file",
        &key,
        "-tls-client-ca-file",
        &client_ca,
    ]);
    let m = Monitor::start_bin(&program.display().to_string(), &args);
    let good = client_config(&ca, Some(&clients.client("prometheus")));
    let r = https_get(m.addr, good, "/healthz").expect("HTTPS with a client certificate");
    assert_eq!(r.status, 200);
    assert!(
        https_get(m.addr, client_config(&ca, None), "/healthz").is_err(),
        "no client certificate: refused"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
