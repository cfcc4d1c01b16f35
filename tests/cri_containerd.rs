//! Against a real containerd (1.6, Debian's package, CRI plugin built in),
//! started privately by tests/peers/start-containerd.sh with a `kata` runtime
//! handler that is really runc: real pod sandboxes are created through CRI
//! (`RunPodSandbox`, hostNetwork), fake shims are put under a sandbox root
//! with the same ids, and `/metrics` must carry each pod's real uid, name and
//! namespace; removing the pod and its directory drops them.
//!
//! Needs root and containerd (tests/peers/install.sh); otherwise skipped
//! visibly, or failed under `KATA_MONITOR_CI=1` (`common::peer`).

mod common;

use common::containerd::Containerd;
use common::cri_client::CriClient;
use common::expo_check::check_exposition;
use common::node::{FakeShim, Monitor};
use common::peer::require_peer;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// (cri_uid, cri_name, cri_namespace) of sandbox `id`'s series.
fn pod_labels(m: &Monitor, id: &str) -> Option<(String, String, String)> {
    let r = m.get("/metrics");
    let e = check_exposition(&r.body).unwrap_or_else(|e| panic!("invalid /metrics: {e}"));
    let s = e
        .samples()
        .find(|s| s.name == "x_up" && s.label("sandbox_id") == Some(id))?;
    Some((
        s.label("cri_uid")?.into(),
        s.label("cri_name")?.into(),
        s.label("cri_namespace")?.into(),
    ))
}

fn wait_for(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn real_containerd_pod_metadata() {
    if require_peer("containerd", common::peer::containerd()).is_none() {
        return;
    }
    // Short: unix socket paths are limited to 108 bytes.
    let ctd = Containerd::start(Path::new(&format!(
        "/tmp/kmctd{}",
        std::process::id() % 100_000
    )));
    let mut cri = CriClient::connect(&ctd.socket).expect("connect to containerd's CRI");
    let version = cri.version().expect("CRI Version");
    assert!(version.contains("containerd"), "{version}");

    let tag = std::process::id();
    let (pods, ids) = common::containerd::two_kata_pods(&mut cri, tag);
    let listed = cri.list_pod_sandbox(true).unwrap();
    for id in &ids {
        assert!(
            listed.iter().any(|r| &r.0 == id && r.4 == "kata"),
            "{id} not READY with handler kata: {listed:?}"
        );
    }

    // Fake shims with the real ids, under a short sandbox root.
    let root = PathBuf::from(format!("/tmp/kmsb{}", tag % 100_000));
    let _ = std::fs::remove_dir_all(&root);
    let shims: Vec<FakeShim> = ids
        .iter()
        .map(|id| FakeShim::start(&root.join(id), b"# TYPE x_up gauge\nx_up 1\n"))
        .collect();
    let m = Monitor::start(
        &root.display().to_string(),
        &[
            "--runtime-endpoint",
            &format!("unix://{}", ctd.socket.display()),
        ],
    );

    for (id, (name, uid, ns)) in ids.iter().zip(&pods) {
        wait_for(10, &format!("labels of {name}"), || {
            pod_labels(&m, id) == Some((uid.clone(), name.clone(), ns.to_string()))
        });
    }
    let text = m.get("/metrics").text();
    assert!(text.contains("kata_monitor_cri_connected 1"));
    assert!(text.contains("kata_monitor_cri_pending_sandboxes 0"));

    // The first pod goes: stopped and removed through CRI, its directory
    // removed as the shim would. Its series and metadata go with it.
    cri.stop_pod_sandbox(&ids[0]).unwrap();
    cri.remove_pod_sandbox(&ids[0]).unwrap();
    let mut shims = shims.into_iter();
    drop(shims.next());
    std::fs::remove_dir_all(root.join(&ids[0])).unwrap();
    wait_for(10, "the removed pod's series to go", || {
        pod_labels(&m, &ids[0]).is_none()
    });
    let text = m.get("/metrics").text();
    assert!(
        !text.contains(&pods[0].0),
        "removed pod's name still served"
    );
    assert_eq!(
        pod_labels(&m, &ids[1]),
        Some((pods[1].1.clone(), pods[1].0.clone(), pods[1].2.to_string()))
    );

    // Idle, the connection stays up. containerd (grpc-go) answers PINGs sent
    // on a connection without open streams with GOAWAY `too_many_pings`; a
    // monitor that pinged when idle (every 30 s, as it once did) lost its
    // connection here and redialled.
    std::thread::sleep(std::time::Duration::from_secs(35));
    let text = m.get("/metrics").text();
    assert!(text.contains("kata_monitor_cri_connected 1"));
    assert!(
        text.contains("kata_monitor_cri_connections_total 1\n"),
        "reconnected while idle: {}",
        m.log_text()
    );
    assert!(!m.log_text().contains("CRI connection lost"));

    // Clean up the remaining pod (containerd itself is torn down on drop).
    let _ = cri.stop_pod_sandbox(&ids[1]);
    let _ = cri.remove_pod_sandbox(&ids[1]);
    drop(m);
    drop(shims);
    let _ = std::fs::remove_dir_all(&root);
    let _ = Path::new(&root);
}
