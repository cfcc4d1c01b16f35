//! The shipped image (`deploy/mkimage.py`: target/image/kata-monitor.tar) in a
//! real containerd, run the way kubelet runs upstream's kata-deploy chart
//! (templates/kata-monitor.yaml) with our /run/kata patch and the DaemonSet's
//! securityContext:
//!
//! * `ctr images import` of the multi-arch OCI archive;
//! * a hostNetwork pod through the CRI (`RunPodSandbox`), and in it the
//!   monitor container (`CreateContainer`/`StartContainer`) with the image's
//!   own entrypoint and exactly the chart's three Go-style args, the two
//!   sandbox roots of a simulated node (kata-sim, named after real
//!   containerd pod sandboxes) and containerd's socket directory mounted
//!   read-only, a read-only root file system, every capability dropped,
//!   uid 0, no privilege escalation;
//! * from the host: `/healthz` 200, and `/metrics` carries both simulated
//!   sandboxes' series with the pod uid, name and namespace containerd's CRI
//!   reported; the container's process has no capabilities and a read-only
//!   root.
//!
//! Needs root, containerd and the image (`.ci/run` builds it:
//! `deploy/build-static.sh all && python3 deploy/mkimage.py`); otherwise
//! skipped visibly, or failed under `KATA_MONITOR_CI=1`.

mod common;

use common::containerd::Containerd;
use common::cri_client::CriClient;
use common::cri_container::ContainerSpec;
use common::cri_container::proto::{PROPAGATION_HOST_TO_CONTAINER, PROPAGATION_PRIVATE};
use common::expo_check::check_exposition;
use common::node::{Resp, Sim, http};
use common::peer::{self, require_peer};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn image_tar() -> Result<PathBuf, String> {
    let tar = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/image/kata-monitor.tar");
    if tar.is_file() {
        Ok(tar)
    } else {
        Err(format!(
            "no {} (deploy/build-static.sh all && python3 deploy/mkimage.py)",
            tar.display()
        ))
    }
}

/// The image name mkimage.py gives by default.
fn image_name() -> String {
    let cargo = include_str!("../Cargo.toml");
    let version = cargo
        .lines()
        .find_map(|l| l.strip_prefix("version = \""))
        .and_then(|v| v.strip_suffix('"'))
        .expect("package version");
    format!("localhost/kata-monitor:{version}")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn wait_for(secs: u64, what: &str, mut f: impl FnMut() -> Option<Resp>) -> Resp {
    let until = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(r) = f() {
            return r;
        }
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Pid of the process whose command line has `needle` as an argument.
fn pid_with_arg(needle: &str) -> Option<u32> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid = e.file_name().to_string_lossy().parse::<u32>().ok()?;
        let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
        cmd.split(|&b| b == 0)
            .any(|a| a == needle.as_bytes())
            .then_some(pid)
    })
}

fn status_field(pid: u32, key: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .unwrap_or_else(|| panic!("no {key} in /proc/{pid}/status"))
        .trim()
        .to_string()
}

/// `dir` bind-mounted on itself and made shared, for the lifetime of the
/// guard. A HostToContainer (rslave) mount needs a shared or slave source
/// mount: systemd makes `/` shared on a real node; a build container's `/`
/// is often private.
struct SharedMount(PathBuf);

impl SharedMount {
    fn new(dir: &Path) -> SharedMount {
        let run = |args: &[&str]| {
            let st = std::process::Command::new("mount")
                .args(args)
                .arg(dir)
                .arg(dir)
                .status()
                .expect("run mount");
            assert!(st.success(), "mount {args:?} {}", dir.display());
        };
        run(&["--bind"]);
        let guard = SharedMount(dir.to_path_buf());
        let st = std::process::Command::new("mount")
            .arg("--make-rshared")
            .arg(dir)
            .status()
            .expect("run mount");
        assert!(st.success(), "mount --make-rshared {}", dir.display());
        guard
    }
}

impl Drop for SharedMount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

#[test]
fn image_runs_in_containerd_as_the_chart_runs_it() {
    if require_peer("containerd", peer::containerd()).is_none() {
        return;
    }
    let Some(tar) = require_peer("image", image_tar()) else {
        return;
    };
    let tag = std::process::id() % 100_000;
    let ctd = Containerd::start(Path::new(&format!("/tmp/kmimg{tag}")));
    let image = image_name();
    let imported = ctd.ctr(&["images", "import", &tar.display().to_string()]);
    assert!(imported.contains(&image), "{imported}");
    let listed = ctd.ctr(&["images", "ls"]);
    let row = listed
        .lines()
        .find(|l| l.starts_with(&format!("{image} ")))
        .unwrap_or_else(|| panic!("{image} not listed:\n{listed}"));
    for platform in ["linux/amd64", "linux/arm64", "linux/ppc64le", "linux/s390x"] {
        assert!(row.contains(platform), "{platform} missing: {row}");
    }

    let mut cri = CriClient::connect(&ctd.socket).expect("connect to containerd's CRI");
    cri.set_timeout(Duration::from_secs(30));
    cri.set_log_root(&ctd.dir.join("podlogs"));

    // Two "Kata" pods (really runc) whose sandbox ids the simulated shims use.
    let (pods, ids) = common::containerd::two_kata_pods(&mut cri, tag);
    // One Go-runtime sandbox (/run/vc/sbs), one runtime-rs one (/run/kata).
    let sim = Sim::start(&[
        "--sandboxes",
        "2",
        "--bodies",
        "default,rs",
        "--ids",
        &ids.join(","),
    ]);
    assert_eq!(sim.ids.len(), 2);
    let _shared = SharedMount::new(&sim.dir);

    // The monitor's own pod and container, as the chart's DaemonSet has it.
    let port = free_port();
    let listen = format!("-listen-address=127.0.0.1:{port}");
    let (mname, muid) = (format!("kata-monitor-{tag}"), format!("uid-mon-{tag}"));
    let pod_cfg = cri
        .pod_sandbox_config(&mname, &muid, "kata-system", 0)
        .unwrap();
    let mpod = cri
        .run_pod_sandbox(&mname, &muid, "kata-system", 0, "")
        .expect("RunPodSandbox for the monitor");
    let host = |p: &Path| p.display().to_string();
    let spec = ContainerSpec {
        name: "kata-monitor",
        image: &image,
        // templates/kata-monitor.yaml's args with its default values, but a
        // free port on loopback (the pod shares this machine's network).
        args: vec![
            listen.clone(),
            "-log-level=info".into(),
            "-runtime-endpoint=unix:///run/containerd/containerd.sock".into(),
        ],
        mounts: vec![
            (
                host(&ctd.dir),
                "/run/containerd".into(),
                true,
                PROPAGATION_PRIVATE,
            ),
            (
                host(&sim.roots[0]),
                "/run/vc/sbs".into(),
                true,
                PROPAGATION_HOST_TO_CONTAINER,
            ),
            (
                host(&sim.roots[1]),
                "/run/kata".into(),
                true,
                PROPAGATION_HOST_TO_CONTAINER,
            ),
        ],
        locked_down: true,
    };
    let log = ctd
        .dir
        .join("podlogs")
        .join(format!("kata-system_{mname}_{muid}/kata-monitor.log"));
    let container = cri
        .run_container(&mpod, &pod_cfg, &spec)
        .unwrap_or_else(|e| panic!("run the monitor container: {e}"));

    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let container_log = || std::fs::read_to_string(&log).unwrap_or_default();
    let get = |path: &str| {
        std::net::TcpStream::connect(addr)
            .is_ok()
            .then(|| http(addr, "GET", path, &[]))
    };
    wait_for(30, "/healthz 200", || {
        get("/healthz").filter(|r| r.status == 200)
    });

    // Every sandbox's series, labelled with what containerd's CRI says.
    let labelled = |r: &Resp| {
        let e = check_exposition(&r.body).unwrap_or_else(|e| panic!("invalid /metrics: {e}"));
        ids.iter().zip(&pods).all(|(id, (name, uid, ns))| {
            e.samples().any(|s| {
                s.name.starts_with("kata_")
                    && !s.name.starts_with("kata_monitor_")
                    && s.label("sandbox_id") == Some(id)
                    && s.label("cri_uid") == Some(uid)
                    && s.label("cri_name") == Some(name)
                    && s.label("cri_namespace") == Some(ns)
            })
        })
    };
    let until = Instant::now() + Duration::from_secs(30);
    let metrics = loop {
        let r = get("/metrics");
        if let Some(r) = r.filter(|r| r.status == 200 && labelled(r)) {
            break r;
        }
        assert!(
            Instant::now() < until,
            "pod labels never arrived; container log:\n{}",
            container_log()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let text = metrics.text();
    assert!(text.contains("kata_monitor_cri_connected 1"), "{text}");
    assert!(text.contains("kata_monitor_running_shim_count 2"), "{text}");
    let e = check_exposition(&metrics.body).unwrap();
    let up: Vec<_> = e
        .samples()
        .filter(|s| s.name == "kata_monitor_sandbox_up")
        .map(|s| {
            (
                s.label("sandbox_id").unwrap_or_default().to_string(),
                s.value.clone(),
            )
        })
        .collect();
    assert_eq!(up.len(), 2, "{up:?}");
    assert!(
        up.iter().all(|(id, v)| ids.contains(id) && v == "1"),
        "{up:?}"
    );

    // The process in the container: uid 0, no capabilities at all, and a
    // read-only root file system.
    let pid = pid_with_arg(&listen).expect("the monitor's process");
    for key in ["CapInh:", "CapPrm:", "CapEff:", "CapBnd:", "CapAmb:"] {
        assert_eq!(status_field(pid, key), "0000000000000000", "{key}");
    }
    assert!(status_field(pid, "Uid:").starts_with("0\t"));
    assert_eq!(status_field(pid, "NoNewPrivs:"), "1");
    let mounts = std::fs::read_to_string(format!("/proc/{pid}/mounts")).unwrap();
    let root = mounts
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some("/"))
        .expect("a root mount");
    let opts = root.split_whitespace().nth(3).unwrap();
    assert!(
        opts.split(',').any(|o| o == "ro"),
        "root not read-only: {root}"
    );
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    assert_eq!(exe, Path::new("/usr/bin/kata-monitor"));

    // Stopped as kubelet stops it: SIGTERM, a clean exit well within 10 s.
    cri.stop_and_remove_container(&container, 10)
        .expect("stop and remove the monitor container");
    let log_text = container_log();
    assert!(log_text.contains("listening"), "{log_text}");
    for id in ids.iter().chain([&mpod]) {
        let _ = cri.stop_pod_sandbox(id);
        let _ = cri.remove_pod_sandbox(id);
    }
}

/// Upstream's chart passes exactly three Go-style args (no -sandbox-dirs):
/// they start this monitor as they are, natively too, with the CRI endpoint
/// in its `unix://` form and the default sandbox roots.
#[test]
fn chart_args_run_the_monitor() {
    let dir = common::node::tmpdir("chart");
    let sock = dir.join("cri.sock");
    let cri = common::fake_cri::FakeCri::start(&sock);
    cri.set_pod("abc", "pod-a", "uid-a", "ns", true);
    let m = common::node::Monitor::start_args(&[
        "-listen-address=127.0.0.1:0",
        "-log-level=info",
        &format!("-runtime-endpoint=unix://{}", sock.display()),
    ]);
    assert_eq!(m.get("/healthz").status, 200);
    m.wait_for("/metrics", 10, |r| {
        r.text().contains("kata_monitor_cri_connected 1")
    });
    let log = m.log_text();
    assert!(
        !log.contains("level=debug"),
        "-log-level=info ignored:\n{log}"
    );
    drop(m);
    let _ = std::fs::remove_dir_all(&dir);
}
