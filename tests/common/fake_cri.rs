//! An in-process fake CRI server on a unix socket, for fast tests of the monitor's
//! CRI client: an `h2` server on a current-thread tokio runtime in a background
//! thread.
//!
//! It answers `/runtime.v1.RuntimeService/ListPodSandbox` from a shared, mutable
//! table of pods, honouring `filter.id` (prefix match, as containerd does),
//! `filter.state` and `filter.label_selector`. Every other path gets
//! UNIMPLEMENTED (grpc-status 12) in Trailers-Only form. The [`Mode`] makes
//! `ListPodSandbox` misbehave on purpose. It records every request (method path;
//! for `ListPodSandbox` the decoded filter) and counts accepted connections.
//!
//! Listed pods carry `runtime_handler: "kata"` (unless set with `set_handler`), `attempt: 0`, a `created_at` in
//! nanoseconds and kubelet-style labels (`io.kubernetes.pod.name`, `.namespace`,
//! `.uid`).
//!
//! Needs its sibling module `cri_client` (for the messages): include both.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::os::unix::net::UnixListener as StdUnixListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use prost::Message;

use super::cri_client::proto::{
    ListPodSandboxRequest, ListPodSandboxResponse, PodSandbox, PodSandboxFilter,
    PodSandboxMetadata, SANDBOX_NOTREADY, SANDBOX_READY,
};
use super::cri_client::{SERVICE, grpc_frame, grpc_message_encode, grpc_unframe};

/// The path the fake implements.
pub const LIST_POD_SANDBOX: &str = "/runtime.v1.RuntimeService/ListPodSandbox";

/// How `ListPodSandbox` calls are answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    /// From the pod table.
    Normal,
    /// Accept the call (and the connection keeps working) but never answer it.
    Hang,
    /// HTTP 200 and a gRPC frame whose payload is not a valid protobuf, grpc-status 0.
    Garbage,
    /// HTTP 200, headers, no message, then trailers with this grpc-status/message.
    Status(u32, String),
    /// Trailers-Only: grpc-status/message in the response headers, no body.
    TrailersOnly(u32, String),
    /// Answer normally after this delay (the pod table is read after the delay).
    Slow(Duration),
}

#[derive(Clone, Debug)]
struct Pod {
    name: String,
    uid: String,
    namespace: String,
    ready: bool,
    created_at: i64,
    handler: String,
}

struct State {
    pods: BTreeMap<String, Pod>,
    mode: Mode,
    calls: usize,
    connections: usize,
    filters: Vec<(String, bool)>,
    requests: Vec<String>,
}

type Shared = Arc<Mutex<State>>;

fn lock(s: &Shared) -> MutexGuard<'_, State> {
    s.lock().unwrap_or_else(|e| e.into_inner())
}

struct Running {
    shutdown: tokio::sync::oneshot::Sender<()>,
    thread: JoinHandle<()>,
}

/// The fake server. Dropping it stops it and removes the socket.
pub struct FakeCri {
    socket: PathBuf,
    shared: Shared,
    running: Option<Running>,
}

impl FakeCri {
    /// Binds `socket` (a stale file there is removed) and serves in the background.
    /// The socket accepts connections when this returns. Panics if it cannot bind.
    pub fn start(socket: &Path) -> FakeCri {
        let shared = Arc::new(Mutex::new(State {
            pods: BTreeMap::new(),
            mode: Mode::Normal,
            calls: 0,
            connections: 0,
            filters: Vec::new(),
            requests: Vec::new(),
        }));
        let mut fake = FakeCri {
            socket: socket.to_path_buf(),
            shared,
            running: None,
        };
        fake.start_again();
        fake
    }

    /// The socket path.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Adds or updates a pod (an update keeps its `created_at`).
    pub fn set_pod(&self, id: &str, name: &str, uid: &str, namespace: &str, ready: bool) {
        let mut st = lock(&self.shared);
        let created_at = st.pods.get(id).map(|p| p.created_at).unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos() as i64)
                .unwrap_or(0)
        });
        let handler = st
            .pods
            .get(id)
            .map_or_else(|| "kata".into(), |p| p.handler.clone());
        st.pods.insert(
            id.to_string(),
            Pod {
                name: name.into(),
                uid: uid.into(),
                namespace: namespace.into(),
                ready,
                created_at,
                handler,
            },
        );
    }

    /// Sets a listed pod's runtime handler (`kata` unless set).
    pub fn set_handler(&self, id: &str, handler: &str) {
        if let Some(p) = lock(&self.shared).pods.get_mut(id) {
            p.handler = handler.into();
        }
    }

    /// Removes a pod (no-op if absent).
    pub fn remove_pod(&self, id: &str) {
        lock(&self.shared).pods.remove(id);
    }

    /// How the next `ListPodSandbox` calls are answered.
    pub fn set_mode(&self, m: Mode) {
        lock(&self.shared).mode = m;
    }

    /// `ListPodSandbox` calls received, answered or not (also undecodable ones).
    pub fn calls(&self) -> usize {
        lock(&self.shared).calls
    }

    /// Connections accepted so far (across restarts).
    pub fn connections(&self) -> usize {
        lock(&self.shared).connections
    }

    /// The filter of every decoded `ListPodSandbox` call, oldest first:
    /// (`filter.id`, "" when unset; whether `filter.state` was set to READY).
    pub fn last_filters(&self) -> Vec<(String, bool)> {
        lock(&self.shared).filters.clone()
    }

    /// Every request's `:path`, oldest first.
    pub fn requests(&self) -> Vec<String> {
        lock(&self.shared).requests.clone()
    }

    /// Forgets recorded calls, filters and requests (not the connection count).
    pub fn clear_records(&self) {
        let mut st = lock(&self.shared);
        st.calls = 0;
        st.filters.clear();
        st.requests.clear();
    }

    /// Drops every connection and the listener, then binds the same path again.
    /// Pods, mode and counters are kept.
    pub fn restart(&mut self) {
        self.stop();
        self.start_again();
    }

    /// Stops serving: every connection is closed, the listener closed and the
    /// socket file removed, until [`FakeCri::start_again`]. Idempotent.
    pub fn stop(&mut self) {
        if let Some(r) = self.running.take() {
            let _ = r.shutdown.send(());
            let _ = r.thread.join();
        }
        let _ = std::fs::remove_file(&self.socket);
    }

    /// Serves again on the same path (no-op if serving).
    pub fn start_again(&mut self) {
        if self.running.is_some() {
            return;
        }
        let _ = std::fs::remove_file(&self.socket);
        let listener = StdUnixListener::bind(&self.socket)
            .unwrap_or_else(|e| panic!("fake CRI: bind {}: {e}", self.socket.display()));
        listener
            .set_nonblocking(true)
            .expect("fake CRI: set_nonblocking");
        let (tx, rx) = tokio::sync::oneshot::channel();
        let shared = self.shared.clone();
        let thread = std::thread::Builder::new()
            .name("fake-cri".into())
            .spawn(move || serve(listener, shared, rx))
            .expect("fake CRI: spawn thread");
        self.running = Some(Running {
            shutdown: tx,
            thread,
        });
    }
}

impl Drop for FakeCri {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The server thread: accepts until shut down; dropping the runtime then drops
/// every connection task, closing their sockets.
fn serve(
    listener: StdUnixListener,
    shared: Shared,
    mut shutdown: tokio::sync::oneshot::Receiver<()>,
) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("fake CRI: tokio runtime");
    rt.block_on(async {
        let listener =
            tokio::net::UnixListener::from_std(listener).expect("fake CRI: tokio listener");
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                accepted = listener.accept() => {
                    if let Ok((io, _)) = accepted {
                        lock(&shared).connections += 1;
                        tokio::spawn(serve_conn(io, shared.clone()));
                    }
                }
            }
        }
    });
    drop(rt);
}

async fn serve_conn(io: tokio::net::UnixStream, shared: Shared) {
    let Ok(mut conn) = h2::server::handshake(io).await else {
        return;
    };
    while let Some(Ok((req, respond))) = conn.accept().await {
        tokio::spawn(handle(req, respond, shared.clone()));
    }
}

type Respond = h2::server::SendResponse<Bytes>;

async fn handle(req: http::Request<h2::RecvStream>, mut respond: Respond, shared: Shared) {
    let path = req.uri().path().to_string();
    let mut body = req.into_body();
    let mut buf = Vec::new();
    while let Some(chunk) = body.data().await {
        let Ok(chunk) = chunk else { return };
        let _ = body.flow_control().release_capacity(chunk.len());
        buf.extend_from_slice(&chunk);
    }
    lock(&shared).requests.push(path.clone());
    if path != LIST_POD_SANDBOX {
        let msg = match path.strip_prefix(SERVICE) {
            Some(method) => format!("unknown method {method}"),
            None => format!("unknown service path {path}"),
        };
        trailers_only(&mut respond, 12, &msg);
        return;
    }
    let decoded = grpc_unframe(&buf)
        .and_then(|m| ListPodSandboxRequest::decode(m).map_err(|e| e.to_string()));
    let mode = {
        let mut st = lock(&shared);
        st.calls += 1;
        if let Ok(req) = &decoded {
            let f = req.filter.clone().unwrap_or_default();
            let ready = f.state.as_ref().is_some_and(|s| s.state == SANDBOX_READY);
            st.filters.push((f.id, ready));
        }
        st.mode.clone()
    };
    let req = match decoded {
        Ok(r) => r,
        Err(e) => {
            trailers_only(&mut respond, 13, &format!("bad ListPodSandboxRequest: {e}"));
            return;
        }
    };
    match mode {
        Mode::Normal => answer(&mut respond, &shared, req.filter),
        Mode::Slow(d) => {
            tokio::time::sleep(d).await;
            answer(&mut respond, &shared, req.filter)
        }
        Mode::Hang => {
            // Keep the stream open (respond alive) until the server stops.
            std::future::pending::<()>().await;
        }
        Mode::Garbage => {
            // field 1 (items), length-delimited, claims 100 bytes but 7 follow
            let garbage = grpc_frame(b"\x0a\x64garbage");
            if let Some(mut s) = send_headers(&mut respond, false) {
                let _ = s.send_data(Bytes::from(garbage), false);
                let _ = s.send_trailers(status_map(0, ""));
            }
        }
        Mode::Status(code, msg) => {
            if let Some(mut s) = send_headers(&mut respond, false) {
                let _ = s.send_trailers(status_map(code, &msg));
            }
        }
        Mode::TrailersOnly(code, msg) => trailers_only(&mut respond, code, &msg),
    }
}

fn matches(id: &str, pod: &Pod, filter: &Option<PodSandboxFilter>) -> bool {
    let Some(f) = filter else { return true };
    if !id.starts_with(&f.id) {
        return false;
    }
    if let Some(s) = &f.state {
        let state = if pod.ready {
            SANDBOX_READY
        } else {
            SANDBOX_NOTREADY
        };
        if s.state != state {
            return false;
        }
    }
    f.label_selector
        .iter()
        .all(|(k, v)| labels(pod).iter().any(|(lk, lv)| lk == k && lv == v))
}

fn labels(pod: &Pod) -> Vec<(String, String)> {
    vec![
        ("io.kubernetes.pod.name".into(), pod.name.clone()),
        ("io.kubernetes.pod.namespace".into(), pod.namespace.clone()),
        ("io.kubernetes.pod.uid".into(), pod.uid.clone()),
    ]
}

fn answer(respond: &mut Respond, shared: &Shared, filter: Option<PodSandboxFilter>) {
    let items = lock(shared)
        .pods
        .iter()
        .filter(|(id, pod)| matches(id, pod, &filter))
        .map(|(id, pod)| PodSandbox {
            id: id.clone(),
            metadata: Some(PodSandboxMetadata {
                name: pod.name.clone(),
                uid: pod.uid.clone(),
                namespace: pod.namespace.clone(),
                attempt: 0,
            }),
            state: if pod.ready {
                SANDBOX_READY
            } else {
                SANDBOX_NOTREADY
            },
            created_at: pod.created_at,
            labels: labels(pod).into_iter().collect(),
            annotations: Default::default(),
            runtime_handler: pod.handler.clone(),
        })
        .collect();
    let body = grpc_frame(&ListPodSandboxResponse { items }.encode_to_vec());
    if let Some(mut s) = send_headers(respond, false) {
        let _ = s.send_data(Bytes::from(body), false);
        let _ = s.send_trailers(status_map(0, ""));
    }
}

fn response(extra: Option<http::HeaderMap>) -> http::Response<()> {
    let mut resp = http::Response::builder()
        .status(200)
        .header("content-type", "application/grpc")
        .body(())
        .expect("response head");
    if let Some(extra) = extra {
        resp.headers_mut().extend(extra);
    }
    resp
}

fn send_headers(respond: &mut Respond, end: bool) -> Option<h2::SendStream<Bytes>> {
    respond.send_response(response(None), end).ok()
}

fn trailers_only(respond: &mut Respond, code: u32, msg: &str) {
    let _ = respond.send_response(response(Some(status_map(code, msg))), true);
}

fn status_map(code: u32, msg: &str) -> http::HeaderMap {
    let mut map = http::HeaderMap::new();
    map.insert("grpc-status", code.to_string().parse().expect("status"));
    if !msg.is_empty() {
        map.insert(
            "grpc-message",
            grpc_message_encode(msg).parse().expect("message"),
        );
    }
    map
}
