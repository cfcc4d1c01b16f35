//! A blocking CRI (`runtime.v1.RuntimeService`) client for tests, to drive a real
//! containerd (see `tests/peers/`) or to check `fake_cri`.
//!
//! It owns a current-thread tokio runtime and one HTTP/2 connection (`h2`) on the
//! runtime's unix socket; every call is a `block_on`. gRPC framing is done by hand
//! (5-byte prefix: compressed flag 0, big-endian length, then the protobuf) and the
//! messages below are hand-written `prost` structs with the field numbers of
//! `k8s.io/cri-api/pkg/apis/runtime/v1/api.proto` (only the fields tests need;
//! prost skips the others).
//!
//! Errors are `String`s: transport errors, timeouts (`"... timed out after ..."`),
//! non-zero gRPC statuses (`"grpc-status 12 (UNIMPLEMENTED): <grpc-message>"`,
//! from the trailers or, for Trailers-Only responses, from the headers) and
//! undecodable responses (`"decode <Message>: ..."`).
//!
//! After the server went away (restart), make a new client with [`CriClient::connect`].

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use prost::Message;

/// The CRI messages tests use (proto3, `runtime.v1`).
pub mod proto {
    use std::collections::HashMap;

    /// `NamespaceMode`.
    pub const NAMESPACE_POD: i32 = 0;
    pub const NAMESPACE_CONTAINER: i32 = 1;
    pub const NAMESPACE_NODE: i32 = 2;
    pub const NAMESPACE_TARGET: i32 = 3;

    // The messages the monitor itself decodes are its own (src/wire/cri.rs,
    // checked against known bytes there and against real containerd here).
    pub use kata_monitor::wire::cri::{
        ListPodSandboxRequest, ListPodSandboxResponse, PodSandbox, PodSandboxFilter,
        PodSandboxMetadata, PodSandboxStateValue, SANDBOX_NOTREADY, SANDBOX_READY,
    };

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct NamespaceOption {
        #[prost(int32, tag = "1")]
        pub network: i32,
        #[prost(int32, tag = "2")]
        pub pid: i32,
        #[prost(int32, tag = "3")]
        pub ipc: i32,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct LinuxSandboxSecurityContext {
        #[prost(message, optional, tag = "1")]
        pub namespace_options: Option<NamespaceOption>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct LinuxPodSandboxConfig {
        #[prost(string, tag = "1")]
        pub cgroup_parent: String,
        #[prost(message, optional, tag = "2")]
        pub security_context: Option<LinuxSandboxSecurityContext>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PodSandboxConfig {
        #[prost(message, optional, tag = "1")]
        pub metadata: Option<PodSandboxMetadata>,
        #[prost(string, tag = "2")]
        pub hostname: String,
        #[prost(string, tag = "3")]
        pub log_directory: String,
        #[prost(map = "string, string", tag = "6")]
        pub labels: HashMap<String, String>,
        #[prost(map = "string, string", tag = "7")]
        pub annotations: HashMap<String, String>,
        #[prost(message, optional, tag = "8")]
        pub linux: Option<LinuxPodSandboxConfig>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct RunPodSandboxRequest {
        #[prost(message, optional, tag = "1")]
        pub config: Option<PodSandboxConfig>,
        #[prost(string, tag = "2")]
        pub runtime_handler: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct RunPodSandboxResponse {
        #[prost(string, tag = "1")]
        pub pod_sandbox_id: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct StopPodSandboxRequest {
        #[prost(string, tag = "1")]
        pub pod_sandbox_id: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct StopPodSandboxResponse {}

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct RemovePodSandboxRequest {
        #[prost(string, tag = "1")]
        pub pod_sandbox_id: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct RemovePodSandboxResponse {}

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct VersionRequest {
        #[prost(string, tag = "1")]
        pub version: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct VersionResponse {
        #[prost(string, tag = "1")]
        pub version: String,
        #[prost(string, tag = "2")]
        pub runtime_name: String,
        #[prost(string, tag = "3")]
        pub runtime_version: String,
        #[prost(string, tag = "4")]
        pub runtime_api_version: String,
    }
}

use proto::*;

/// The service prefix of every method path.
pub const SERVICE: &str = "/runtime.v1.RuntimeService/";

/// Wraps one protobuf message into a gRPC length-prefixed frame (uncompressed).
pub fn grpc_frame(msg: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + msg.len());
    out.push(0);
    out.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    out.extend_from_slice(msg);
    out
}

/// Unwraps exactly one uncompressed gRPC frame.
pub fn grpc_unframe(body: &[u8]) -> Result<&[u8], String> {
    if body.len() < 5 {
        return Err(format!("gRPC body too short ({} bytes)", body.len()));
    }
    if body[0] != 0 {
        return Err(format!("compressed gRPC message (flag {})", body[0]));
    }
    let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
    if body.len() != 5 + len {
        return Err(format!(
            "gRPC frame length {len} but {} body bytes follow the prefix",
            body.len() - 5
        ));
    }
    Ok(&body[5..])
}

/// The canonical name of a gRPC status code.
pub fn grpc_code_name(code: u32) -> &'static str {
    match code {
        0 => "OK",
        1 => "CANCELLED",
        2 => "UNKNOWN",
        3 => "INVALID_ARGUMENT",
        4 => "DEADLINE_EXCEEDED",
        5 => "NOT_FOUND",
        6 => "ALREADY_EXISTS",
        7 => "PERMISSION_DENIED",
        8 => "RESOURCE_EXHAUSTED",
        9 => "FAILED_PRECONDITION",
        10 => "ABORTED",
        11 => "OUT_OF_RANGE",
        12 => "UNIMPLEMENTED",
        13 => "INTERNAL",
        14 => "UNAVAILABLE",
        15 => "DATA_LOSS",
        16 => "UNAUTHENTICATED",
        _ => "?",
    }
}

/// Percent-encoding of `grpc-message` (gRPC over HTTP/2 spec): bytes outside
/// printable ASCII, and `%`, become `%XX`.
pub fn grpc_message_encode(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    for &b in msg.as_bytes() {
        if (0x20..=0x7e).contains(&b) && b != b'%' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Inverse of [`grpc_message_encode`] (lenient: bad escapes are kept as is).
pub fn grpc_message_decode(raw: &[u8]) -> String {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'%' && i + 2 < raw.len() {
            let hex = std::str::from_utf8(&raw[i + 1..i + 3]).ok();
            if let Some(v) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(raw[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The gRPC status of a header or trailer map, if it carries one.
fn grpc_status(map: &http::HeaderMap) -> Option<Result<(u32, String), String>> {
    let code = map.get("grpc-status")?;
    let code = match code.to_str().ok().and_then(|c| c.parse::<u32>().ok()) {
        Some(c) => c,
        None => return Some(Err(format!("bad grpc-status {code:?}"))),
    };
    let msg = map
        .get("grpc-message")
        .map(|m| grpc_message_decode(m.as_bytes()))
        .unwrap_or_default();
    Some(Ok((code, msg)))
}

/// One listed sandbox: (id, name, uid, namespace, runtime_handler).
pub type SandboxRow = (String, String, String, String, String);

/// Blocking CRI client over a unix socket.
pub struct CriClient {
    socket: PathBuf,
    rt: tokio::runtime::Runtime,
    send: h2::client::SendRequest<Bytes>,
    timeout: Duration,
    log_root: PathBuf,
}

impl CriClient {
    /// Connects (unix socket + HTTP/2 handshake), within 5 s.
    pub fn connect(socket: &Path) -> Result<CriClient, String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("tokio runtime: {e}"))?;
        let send = rt.block_on(async {
            let setup = async {
                let io = tokio::net::UnixStream::connect(socket)
                    .await
                    .map_err(|e| format!("connect {}: {e}", socket.display()))?;
                let (send, conn) = h2::client::handshake(io)
                    .await
                    .map_err(|e| format!("HTTP/2 handshake on {}: {e}", socket.display()))?;
                // Driven whenever the runtime runs, i.e. during every call's block_on.
                tokio::spawn(async move {
                    let _ = conn.await;
                });
                Ok::<_, String>(send)
            };
            tokio::time::timeout(Duration::from_secs(5), setup)
                .await
                .map_err(|_| format!("connect {}: timed out after 5s", socket.display()))?
        })?;
        Ok(CriClient {
            socket: socket.to_path_buf(),
            rt,
            send,
            timeout: Duration::from_secs(10),
            log_root: std::env::temp_dir().join("kmc-podlogs"),
        })
    }

    /// The socket this client is connected to.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Deadline for each call (default 10 s). A timed-out call resets its stream;
    /// the connection stays usable.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Where `run_pod_sandbox` points pods' `log_directory` (default
    /// `$TMPDIR/kmc-podlogs`); a per-pod subdirectory is used.
    pub fn set_log_root(&mut self, dir: &Path) {
        self.log_root = dir.to_path_buf();
    }

    /// One unary call: `method` is the bare method name (`"ListPodSandbox"`) or a
    /// full path (`"/runtime.v1.RuntimeService/ListPodSandbox"`).
    pub fn call<Req: Message, Resp: Message + Default>(
        &mut self,
        method: &str,
        req: &Req,
    ) -> Result<Resp, String> {
        let path = if method.starts_with('/') {
            method.to_string()
        } else {
            format!("{SERVICE}{method}")
        };
        let body = Bytes::from(grpc_frame(&req.encode_to_vec()));
        let timeout = self.timeout;
        let send = self.send.clone();
        let name = path.rsplit('/').next().unwrap_or_default().to_string();
        let raw = self.rt.block_on(async {
            tokio::time::timeout(timeout, unary(send, &path, body))
                .await
                .map_err(|_| format!("{name}: timed out after {timeout:?}"))?
        });
        let raw = raw.map_err(|e| format!("{name}: {e}"))?;
        let msg = grpc_unframe(&raw).map_err(|e| format!("{name}: {e}"))?;
        Resp::decode(msg).map_err(|e| {
            format!(
                "{name}: decode {}: {e}",
                std::any::type_name::<Resp>().rsplit("::").next().unwrap()
            )
        })
    }

    /// `Version`: "runtime_name runtime_version" (e.g. "containerd 1.6.20~ds1").
    pub fn version(&mut self) -> Result<String, String> {
        let resp: VersionResponse = self.call(
            "Version",
            &VersionRequest {
                version: "v1".into(),
            },
        )?;
        Ok(format!("{} {}", resp.runtime_name, resp.runtime_version))
    }

    /// The config `run_pod_sandbox` sends (`CreateContainer` repeats it):
    /// hostNetwork, kubelet-style labels, a log directory under the log root.
    pub fn pod_sandbox_config(
        &self,
        name: &str,
        uid: &str,
        namespace: &str,
        attempt: u32,
    ) -> Result<PodSandboxConfig, String> {
        let log_dir = self.log_root.join(format!("{namespace}_{name}_{uid}"));
        std::fs::create_dir_all(&log_dir)
            .map_err(|e| format!("create {}: {e}", log_dir.display()))?;
        let labels = [
            ("io.kubernetes.pod.name", name),
            ("io.kubernetes.pod.namespace", namespace),
            ("io.kubernetes.pod.uid", uid),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        Ok(PodSandboxConfig {
            metadata: Some(PodSandboxMetadata {
                name: name.into(),
                uid: uid.into(),
                namespace: namespace.into(),
                attempt,
            }),
            hostname: String::new(),
            log_directory: log_dir.to_string_lossy().into_owned(),
            labels,
            annotations: Default::default(),
            linux: Some(LinuxPodSandboxConfig {
                cgroup_parent: String::new(),
                security_context: Some(LinuxSandboxSecurityContext {
                    namespace_options: Some(NamespaceOption {
                        network: NAMESPACE_NODE,
                        pid: NAMESPACE_POD,
                        ipc: NAMESPACE_POD,
                    }),
                }),
            }),
        })
    }

    /// `RunPodSandbox` of a hostNetwork pod (network namespace NODE, hence no
    /// hostname, no CNI) with the given runtime handler (e.g. "kata"); returns the
    /// sandbox id. Kubelet-style labels (`io.kubernetes.pod.*`) are set too.
    /// A failed run may leave a NOTREADY sandbox holding the name: use unique
    /// names/uids, or bump `attempt`.
    pub fn run_pod_sandbox(
        &mut self,
        name: &str,
        uid: &str,
        namespace: &str,
        attempt: u32,
        runtime_handler: &str,
    ) -> Result<String, String> {
        let req = RunPodSandboxRequest {
            config: Some(self.pod_sandbox_config(name, uid, namespace, attempt)?),
            runtime_handler: runtime_handler.into(),
        };
        let resp: RunPodSandboxResponse = self.call("RunPodSandbox", &req)?;
        Ok(resp.pod_sandbox_id)
    }

    /// `StopPodSandbox`.
    pub fn stop_pod_sandbox(&mut self, id: &str) -> Result<(), String> {
        let _: StopPodSandboxResponse = self.call(
            "StopPodSandbox",
            &StopPodSandboxRequest {
                pod_sandbox_id: id.into(),
            },
        )?;
        Ok(())
    }

    /// `RemovePodSandbox`.
    pub fn remove_pod_sandbox(&mut self, id: &str) -> Result<(), String> {
        let _: RemovePodSandboxResponse = self.call(
            "RemovePodSandbox",
            &RemovePodSandboxRequest {
                pod_sandbox_id: id.into(),
            },
        )?;
        Ok(())
    }

    /// `ListPodSandbox` with any filter; the full items.
    pub fn list_pod_sandbox_raw(
        &mut self,
        filter: Option<PodSandboxFilter>,
    ) -> Result<Vec<PodSandbox>, String> {
        let resp: ListPodSandboxResponse =
            self.call("ListPodSandbox", &ListPodSandboxRequest { filter })?;
        Ok(resp.items)
    }

    /// `ListPodSandbox`, READY sandboxes only when `ready_only` (no filter otherwise);
    /// rows are (id, name, uid, namespace, runtime_handler), sorted by id.
    pub fn list_pod_sandbox(&mut self, ready_only: bool) -> Result<Vec<SandboxRow>, String> {
        let filter = ready_only.then(|| PodSandboxFilter {
            state: Some(PodSandboxStateValue {
                state: SANDBOX_READY,
            }),
            ..Default::default()
        });
        let mut rows: Vec<SandboxRow> = self
            .list_pod_sandbox_raw(filter)?
            .into_iter()
            .map(|p| {
                let m = p.metadata.unwrap_or_default();
                (p.id, m.name, m.uid, m.namespace, p.runtime_handler)
            })
            .collect();
        rows.sort();
        Ok(rows)
    }
}

/// Sends one request and returns the response body once the status is OK.
async fn unary(
    send: h2::client::SendRequest<Bytes>,
    path: &str,
    body: Bytes,
) -> Result<Vec<u8>, String> {
    let mut send = send
        .ready()
        .await
        .map_err(|e| format!("connection not ready: {e}"))?;
    let req = http::Request::builder()
        .method("POST")
        .uri(format!("http://localhost{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .map_err(|e| format!("request: {e}"))?;
    let (resp, mut stream) = send
        .send_request(req, false)
        .map_err(|e| format!("send request: {e}"))?;
    stream
        .send_data(body, true)
        .map_err(|e| format!("send body: {e}"))?;
    let resp = resp.await.map_err(|e| format!("response: {e}"))?;
    if resp.status() != http::StatusCode::OK {
        return Err(format!("HTTP status {}", resp.status()));
    }
    // Trailers-Only: the status is in the headers and there is no body.
    let head_status = grpc_status(resp.headers());
    let mut recv = resp.into_body();
    let mut data = Vec::new();
    while let Some(chunk) = recv.data().await {
        let chunk = chunk.map_err(|e| format!("response body: {e}"))?;
        let _ = recv.flow_control().release_capacity(chunk.len());
        data.extend_from_slice(&chunk);
    }
    let trailers = recv
        .trailers()
        .await
        .map_err(|e| format!("response trailers: {e}"))?;
    let status = match (head_status, trailers.as_ref().and_then(grpc_status)) {
        (_, Some(s)) | (Some(s), None) => s?,
        (None, None) => return Err("no grpc-status in trailers or headers".into()),
    };
    if status.0 != 0 {
        return Err(format!(
            "grpc-status {} ({}): {}",
            status.0,
            grpc_code_name(status.0),
            status.1
        ));
    }
    Ok(data)
}
