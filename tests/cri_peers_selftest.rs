//! Self-test of the CRI test peers: the test CRI client (`common/cri_client.rs`)
//! against the in-process fake CRI server (`common/fake_cri.rs`), every fake
//! [`Mode`], restarts; and the client against a real containerd started with
//! `tests/peers/start-containerd.sh` (needs root and containerd:
//! `tests/peers/install.sh`; skipped visibly without, failed under
//! `KATA_MONITOR_CI=1`, as `common/peer.rs` does for every real peer).

#[path = "common/containerd.rs"]
mod containerd;
#[path = "common/cri_client.rs"]
mod cri_client;
#[path = "common/fake_cri.rs"]
mod fake_cri;
#[path = "common/peer.rs"]
mod peer;

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use containerd::Containerd;
use cri_client::CriClient;
use cri_client::proto::{PodSandboxFilter, SANDBOX_NOTREADY, SANDBOX_READY};
use fake_cri::{FakeCri, Mode};

/// A short, unique path under /tmp (unix socket paths are limited to 107 bytes).
fn short_path(prefix: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    PathBuf::from(format!(
        "/tmp/{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
}

fn row(id: &str, name: &str, uid: &str, ns: &str) -> cri_client::SandboxRow {
    (id.into(), name.into(), uid.into(), ns.into(), "kata".into())
}

#[test]
fn fake_lists_pods_and_records_filters() {
    let sock = short_path("kmf").with_extension("sock");
    let fake = FakeCri::start(&sock);
    fake.set_pod("aaa111", "pod-a", "uid-a", "ns1", true);
    fake.set_pod("aab222", "pod-b", "uid-b", "ns2", true);
    fake.set_pod("ccc333", "pod-c", "uid-c", "ns1", false);

    let mut c = CriClient::connect(&sock).unwrap();
    assert_eq!(
        c.list_pod_sandbox(true).unwrap(),
        vec![
            row("aaa111", "pod-a", "uid-a", "ns1"),
            row("aab222", "pod-b", "uid-b", "ns2")
        ]
    );
    assert_eq!(c.list_pod_sandbox(false).unwrap().len(), 3);

    // id prefix, state NOTREADY, label selector
    let by_id = |id: &str| PodSandboxFilter {
        id: id.into(),
        ..Default::default()
    };
    let ids = |v: Vec<cri_client::proto::PodSandbox>| -> Vec<String> {
        v.into_iter().map(|p| p.id).collect()
    };
    assert_eq!(
        ids(c.list_pod_sandbox_raw(Some(by_id("aa"))).unwrap()),
        ["aaa111", "aab222"]
    );
    assert_eq!(
        ids(c.list_pod_sandbox_raw(Some(by_id("aab222"))).unwrap()),
        ["aab222"]
    );
    assert!(c.list_pod_sandbox_raw(Some(by_id("x"))).unwrap().is_empty());
    let notready = c
        .list_pod_sandbox_raw(Some(PodSandboxFilter {
            state: Some(cri_client::proto::PodSandboxStateValue {
                state: SANDBOX_NOTREADY,
            }),
            ..Default::default()
        }))
        .unwrap();
    assert_eq!(ids(notready.clone()), ["ccc333"]);
    assert_eq!(notready[0].state, SANDBOX_NOTREADY);
    assert!(notready[0].created_at > 0);
    let by_label = c
        .list_pod_sandbox_raw(Some(PodSandboxFilter {
            label_selector: [("io.kubernetes.pod.namespace".into(), "ns1".into())].into(),
            ..Default::default()
        }))
        .unwrap();
    assert_eq!(ids(by_label), ["aaa111", "ccc333"]);

    // table updates are seen by the next call
    fake.remove_pod("aaa111");
    fake.set_pod("ccc333", "pod-c", "uid-c", "ns1", true);
    let ready = c.list_pod_sandbox_raw(Some(by_id("ccc"))).unwrap();
    assert_eq!(ready[0].state, SANDBOX_READY);
    assert_eq!(
        c.list_pod_sandbox(true).unwrap(),
        vec![
            row("aab222", "pod-b", "uid-b", "ns2"),
            row("ccc333", "pod-c", "uid-c", "ns1")
        ]
    );

    assert_eq!(fake.calls(), 9);
    assert_eq!(
        fake.last_filters(),
        [
            ("", true),
            ("", false),
            ("aa", false),
            ("aab222", false),
            ("x", false),
            ("", false),
            ("", false),
            ("ccc", false),
            ("", true),
        ]
        .map(|(id, r)| (id.to_string(), r))
    );
    assert_eq!(fake.connections(), 1);

    // other methods: UNIMPLEMENTED, Trailers-Only; not counted as ListPodSandbox calls
    let err = c.version().unwrap_err();
    assert!(err.contains("grpc-status 12 (UNIMPLEMENTED)"), "{err}");
    assert!(err.contains("unknown method Version"), "{err}");
    let err = c.stop_pod_sandbox("aab222").unwrap_err();
    assert!(err.contains("grpc-status 12"), "{err}");
    assert_eq!(fake.calls(), 9);
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 11);
    assert_eq!(reqs[0], "/runtime.v1.RuntimeService/ListPodSandbox");
    assert_eq!(reqs[9], "/runtime.v1.RuntimeService/Version");
    assert_eq!(reqs[10], "/runtime.v1.RuntimeService/StopPodSandbox");

    fake.clear_records();
    assert_eq!((fake.calls(), fake.last_filters().len()), (0, 0));
    drop(fake);
    assert!(!sock.exists(), "socket left behind");
}

#[test]
fn fake_modes() {
    let sock = short_path("kmf").with_extension("sock");
    let fake = FakeCri::start(&sock);
    fake.set_pod("p1", "pod-1", "uid-1", "default", true);
    let mut c = CriClient::connect(&sock).unwrap();

    fake.set_mode(Mode::Garbage);
    let err = c.list_pod_sandbox(true).unwrap_err();
    assert!(err.contains("decode ListPodSandboxResponse"), "{err}");

    fake.set_mode(Mode::Status(14, "runtime is down".into()));
    let err = c.list_pod_sandbox(true).unwrap_err();
    assert!(
        err.contains("grpc-status 14 (UNAVAILABLE): runtime is down"),
        "{err}"
    );

    // the message is percent-encoded on the wire and decoded back
    fake.set_mode(Mode::TrailersOnly(7, "denied: 100% ünicode".into()));
    let err = c.list_pod_sandbox(true).unwrap_err();
    assert!(
        err.contains("grpc-status 7 (PERMISSION_DENIED): denied: 100% ünicode"),
        "{err}"
    );

    fake.set_mode(Mode::Hang);
    c.set_timeout(Duration::from_millis(300));
    let t = Instant::now();
    let err = c.list_pod_sandbox(true).unwrap_err();
    assert!(err.contains("timed out"), "{err}");
    assert!(t.elapsed() >= Duration::from_millis(300));
    assert!(t.elapsed() < Duration::from_secs(3));

    // the same connection still works after the hung call was abandoned
    fake.set_mode(Mode::Slow(Duration::from_millis(200)));
    c.set_timeout(Duration::from_secs(5));
    let t = Instant::now();
    assert_eq!(c.list_pod_sandbox(true).unwrap().len(), 1);
    assert!(t.elapsed() >= Duration::from_millis(200));

    fake.set_mode(Mode::Slow(Duration::from_millis(500)));
    c.set_timeout(Duration::from_millis(100));
    let err = c.list_pod_sandbox(true).unwrap_err();
    assert!(err.contains("timed out"), "{err}");

    fake.set_mode(Mode::Normal);
    assert_eq!(
        c.list_pod_sandbox(true).unwrap(),
        vec![row("p1", "pod-1", "uid-1", "default")]
    );
    assert_eq!(fake.calls(), 7);
    assert_eq!(fake.last_filters().len(), 7);
    assert_eq!(fake.connections(), 1);
}

#[test]
fn fake_restart_stop_start_again() {
    let sock = short_path("kmf").with_extension("sock");
    let mut fake = FakeCri::start(&sock);
    fake.set_pod("p1", "pod-1", "uid-1", "default", true);
    let mut c = CriClient::connect(&sock).unwrap();
    c.set_timeout(Duration::from_secs(2));
    assert_eq!(c.list_pod_sandbox(true).unwrap().len(), 1);

    // restart drops the connection, even one with a hung call on it
    fake.set_mode(Mode::Hang);
    c.set_timeout(Duration::from_millis(100));
    assert!(c.list_pod_sandbox(true).is_err());
    fake.set_mode(Mode::Normal);
    fake.restart();
    c.set_timeout(Duration::from_secs(2));
    let err = c.list_pod_sandbox(true).unwrap_err();
    assert!(
        !err.contains("timed out"),
        "old connection should fail: {err}"
    );
    let mut c = CriClient::connect(&sock).unwrap();
    assert_eq!(
        c.list_pod_sandbox(true).unwrap(),
        vec![row("p1", "pod-1", "uid-1", "default")]
    );
    assert_eq!(fake.connections(), 2);

    fake.stop();
    assert!(!sock.exists());
    assert!(CriClient::connect(&sock).is_err());
    assert!(c.list_pod_sandbox(true).is_err());
    fake.stop(); // idempotent

    fake.start_again();
    fake.start_again(); // no-op while serving
    let mut c = CriClient::connect(&sock).unwrap();
    assert_eq!(c.list_pod_sandbox(true).unwrap().len(), 1);
    assert_eq!(fake.connections(), 3);
    assert_eq!(fake.calls(), 4);
}

// ---------------------------------------------------------------------------
// real containerd

/// Pids of processes whose command line mentions `needle`.
fn pids_mentioning(needle: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let Ok(status) = std::fs::read_to_string(e.path().join("status")) else {
            continue;
        };
        let zombie = status
            .lines()
            .any(|l| l.starts_with("State:") && l.contains('Z'));
        if !zombie && String::from_utf8_lossy(&cmd).contains(needle) {
            pids.push(pid);
        }
    }
    pids
}

#[test]
fn real_containerd() {
    if peer::require_peer("containerd", peer::containerd()).is_none() {
        return;
    }
    let t0 = Instant::now();
    let dir = short_path("kmc");
    let sock;
    {
        let ctd = Containerd::start(&dir);
        sock = ctd.socket.clone();
        assert_eq!(sock, dir.join("containerd.sock"));
        let mut c = CriClient::connect(&sock).unwrap();
        c.set_timeout(Duration::from_secs(20));
        c.set_log_root(&dir.join("podlogs"));
        let v = c.version().unwrap();
        assert!(v.starts_with("containerd "), "{v}");

        // unique names/uids: a failed run may leave a NOTREADY sandbox holding the name
        let tag = format!("{}-{}", std::process::id(), t0.elapsed().as_nanos());
        let (ua, ub) = (format!("uid-a-{tag}"), format!("uid-b-{tag}"));
        let a = c
            .run_pod_sandbox("pod-a", &ua, "kmc-ns1", 0, "kata")
            .unwrap();
        let b = c
            .run_pod_sandbox("pod-b", &ub, "kmc-ns2", 1, "kata")
            .unwrap();
        assert_eq!(a.len(), 64, "{a}");

        let mut want = vec![
            (
                a.clone(),
                "pod-a".into(),
                ua.clone(),
                "kmc-ns1".into(),
                "kata".into(),
            ),
            (
                b.clone(),
                "pod-b".into(),
                ub.clone(),
                "kmc-ns2".into(),
                "kata".into(),
            ),
        ];
        want.sort();
        assert_eq!(c.list_pod_sandbox(true).unwrap(), want);
        let raw = c.list_pod_sandbox_raw(None).unwrap();
        assert_eq!(raw.len(), 2);
        assert!(
            raw.iter()
                .all(|p| p.state == SANDBOX_READY && p.created_at > 0)
        );
        let pb = raw.iter().find(|p| p.id == b).unwrap();
        assert_eq!(pb.metadata.as_ref().unwrap().attempt, 1);
        assert_eq!(pb.labels["io.kubernetes.pod.uid"], ub);
        // containerd filters by id prefix
        let by_prefix = c
            .list_pod_sandbox_raw(Some(PodSandboxFilter {
                id: a[..12].into(),
                ..Default::default()
            }))
            .unwrap();
        assert_eq!(by_prefix.len(), 1);
        assert_eq!(by_prefix[0].id, a);

        // stopped: NOTREADY, still listed without the filter; removed: gone
        c.stop_pod_sandbox(&a).unwrap();
        let ready = c.list_pod_sandbox(true).unwrap();
        assert_eq!(ready.len(), 1);
        assert_eq!(ready[0].0, b);
        let all = c.list_pod_sandbox_raw(None).unwrap();
        let pa = all.iter().find(|p| p.id == a).expect("stopped pod listed");
        assert_eq!(pa.state, SANDBOX_NOTREADY);
        c.remove_pod_sandbox(&a).unwrap();
        let all = c.list_pod_sandbox(false).unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].0, b);

        // unknown id: an error with a gRPC status
        let err = c.stop_pod_sandbox("0123456789abcdef").unwrap_err();
        assert!(err.contains("grpc-status"), "{err}");

        let needle = format!("{}/", dir.display());
        assert!(
            pids_mentioning(&needle).len() >= 2,
            "expected containerd and a shim mentioning {needle}"
        );
        // pod-b is left running: the guard's stop-containerd.sh must cope
    }
    assert!(!dir.exists(), "stop-containerd.sh left {}", dir.display());
    let left = pids_mentioning(&format!("{}/", dir.display()));
    assert!(left.is_empty(), "processes left behind: {left:?}");
    eprintln!("real containerd test took {:?}", t0.elapsed());
}
