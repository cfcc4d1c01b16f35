//! The CRI client: pod metadata (uid, name, namespace) for the `cri_*`
//! labels, from the runtime's `ListPodSandbox` over one long-lived HTTP/2
//! connection (`h2`) on its unix socket, driven by the mio loop. No async
//! runtime: the socket is a non-blocking mio stream behind tokio's
//! `AsyncRead`/`AsyncWrite` traits (`WouldBlock` is `Pending`), futures are
//! polled with a waker that only sets a flag, and everything is polled again
//! while the flag is set (h2 wakes its connection task on `send_request`,
//! `send_data`, dropped streams...). Deadlines and reconnects are ours: h2
//! has no timers.
//!
//! No keepalive PINGs: the runtime is a local unix socket, so a runtime that
//! exits or restarts closes it (seen at once as EOF), and one that hangs is
//! caught by the call deadline. Idle pings would also get the connection
//! closed: gRPC servers (containerd, CRI-O) answer PINGs without an open
//! stream, more often than every 5 minutes, with GOAWAY `too_many_pings`.
//!
//! Owns: the connection, the call in flight and the [`policy`]. Never
//! blocks; a slow, hung or broken runtime only delays metadata, never a
//! scrape (sandboxes without metadata are served with empty `cri_*`).

use crate::state::cri_policy::{self as policy, CallResult, Policy};
use crate::state::registry::PodMeta;
use crate::wire::{cri, grpc};
use bytes::Bytes;
use h2::RecvStream;
use h2::client::{Connection, ResponseFuture, SendRequest};
use mio::net::UnixStream;
use std::collections::BTreeMap;
use std::future::Future;
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

/// Time allowed for one `ListPodSandbox` call.
pub(super) const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// Time allowed for the connection preface and SETTINGS exchange.
pub(super) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// A non-blocking unix stream as tokio I/O: `WouldBlock` becomes `Pending`
/// (the mio loop re-polls on readiness, so no waker is registered here).
pub(super) struct Io(UnixStream);

impl tokio::io::AsyncRead for Io {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            match self.0.read(buf.initialize_unfilled()) {
                Ok(n) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Poll::Pending,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl tokio::io::AsyncWrite for Io {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            match self.0.write(buf) {
                Ok(n) => return Poll::Ready(Ok(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Poll::Pending,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.0.shutdown(std::net::Shutdown::Write))
    }
}

/// A waker that records that something asked to be polled again.
struct Flag(AtomicBool);

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::Relaxed);
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.store(true, Ordering::Relaxed);
    }
}

type Handshake =
    Pin<Box<dyn Future<Output = Result<(SendRequest<Bytes>, Connection<Io, Bytes>), h2::Error>>>>;

enum Conn {
    /// Not connected; the next attempt is due at `retry`.
    Down {
        retry: Instant,
    },
    Handshaking {
        fut: Handshake,
        deadline: Instant,
    },
    Up {
        send: SendRequest<Bytes>,
        conn: Box<Connection<Io, Bytes>>,
    },
}

enum Stage {
    Head(ResponseFuture),
    Body {
        recv: RecvStream,
        dec: grpc::Decoder,
    },
    Trailers {
        recv: RecvStream,
        msg: Option<Bytes>,
    },
}

struct Call {
    /// `None` only while a stage is being advanced.
    stage: Option<Stage>,
    started: Instant,
    deadline: Instant,
}

/// Pod metadata by sandbox id, from one answer.
pub(super) type Listing = BTreeMap<String, PodMeta>;

/// Counters for the monitor's own metrics.
#[derive(Debug, Default, Clone)]
pub(super) struct Stats {
    /// Calls by result.
    pub(super) requests: [u64; CallResult::ALL.len()],
    pub(super) connected: bool,
    /// Connections established (handshake done) since start: 1 on a healthy
    /// node; growth means the runtime keeps closing the connection.
    pub(super) connections: u64,
    /// Completed calls (any result) and their total time, request sent to
    /// answer decoded.
    pub(super) call_count: u64,
    pub(super) call_seconds: f64,
}

pub(super) struct Cri {
    path: PathBuf,
    conn: Conn,
    call: Option<Call>,
    pub(super) policy: Policy,
    pub(super) stats: Stats,
    flag: Arc<Flag>,
    waker: Waker,
    /// "Unreachable" was logged since the last established connection.
    unreachable_logged: bool,
}

impl Cri {
    pub(super) fn new(path: PathBuf, now: Instant) -> Cri {
        let flag = Arc::new(Flag(AtomicBool::new(false)));
        Cri {
            path,
            conn: Conn::Down { retry: now },
            call: None,
            policy: Policy::default(),
            stats: Stats::default(),
            waker: Waker::from(flag.clone()),
            flag,
            unreachable_logged: false,
        }
    }

    /// Whether a scrape may hold sandbox `id` until the runtime names its
    /// handler: connected, and no answer about it yet.
    pub(super) fn holds(&self, id: &str) -> bool {
        self.stats.connected && self.policy.unanswered(id)
    }

    /// When [`on_timer`](Self::on_timer) must run next.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        let conn = match &self.conn {
            Conn::Down { retry } => Some(*retry),
            Conn::Handshaking { deadline, .. } => Some(*deadline),
            Conn::Up { .. } => None,
        };
        let call = self.call.as_ref().map(|c| c.deadline);
        let due = if matches!(self.conn, Conn::Up { .. }) {
            self.policy.next_due()
        } else {
            None
        };
        [conn, call, due].into_iter().flatten().min()
    }

    /// Timers: reconnects, deadlines, due calls.
    pub(super) fn on_timer(&mut self, registry: &mio::Registry, now: Instant) -> Option<Listing> {
        match &mut self.conn {
            Conn::Down { retry } if now >= *retry => self.connect(registry, now),
            Conn::Handshaking { deadline, .. } if now >= *deadline => {
                self.conn_lost("handshake timed out", now);
            }
            _ => {}
        }
        if self.call.as_ref().is_some_and(|c| now >= c.deadline) {
            log::warn!(endpoint:% = self.path.display(); "CRI ListPodSandbox timed out");
            self.end_call(CallResult::Timeout, now);
            self.policy.failed(now, policy::RETRY_BASE);
            // A runtime that does not answer in 5 s: start afresh.
            self.conn_lost("call timed out", now);
        }
        self.drive(now)
    }

    /// Readiness on the CRI socket.
    pub(super) fn on_event(&mut self, now: Instant) -> Option<Listing> {
        self.drive(now)
    }

    fn connect(&mut self, registry: &mio::Registry, now: Instant) {
        let mut sock = match UnixStream::connect(&self.path) {
            Ok(s) => s,
            Err(e) => {
                self.conn_lost(&format!("connect: {e}"), now);
                return;
            }
        };
        let token = super::token::token(super::token::Source::Cri);
        if let Err(e) = registry.register(
            &mut sock,
            token,
            mio::Interest::READABLE | mio::Interest::WRITABLE,
        ) {
            self.conn_lost(&format!("register: {e}"), now);
            return;
        }
        let fut = h2::client::Builder::new()
            .initial_window_size(1 << 20)
            .max_frame_size(1 << 16)
            .handshake::<_, Bytes>(Io(sock));
        self.conn = Conn::Handshaking {
            fut: Box::pin(fut),
            deadline: now + HANDSHAKE_TIMEOUT,
        };
    }

    fn conn_lost(&mut self, why: &str, now: Instant) {
        if self.stats.connected || !matches!(self.conn, Conn::Down { .. }) {
            log::warn!(endpoint:% = self.path.display(), error = why; "CRI connection lost, reconnecting");
        } else if !self.unreachable_logged {
            // Once until the next success: retries follow every few seconds.
            log::warn!(
                endpoint:% = self.path.display(), error = why;
                "CRI runtime unreachable, serving sandboxes without pod labels; retrying"
            );
        }
        self.unreachable_logged = true;
        if self.call.is_some() {
            self.end_call(CallResult::Connection, now);
            self.policy.failed(now, policy::RETRY_BASE);
        }
        let delay = self.policy.connection_failed();
        self.conn = Conn::Down { retry: now + delay };
        self.stats.connected = false;
    }

    /// The call in flight ended with `result`.
    fn end_call(&mut self, result: CallResult, now: Instant) {
        self.stats.requests[result as usize] += 1;
        if let Some(call) = self.call.take() {
            self.stats.call_count += 1;
            self.stats.call_seconds += now.saturating_duration_since(call.started).as_secs_f64();
        }
    }

    /// Poll everything until nothing asks to be polled again.
    fn drive(&mut self, now: Instant) -> Option<Listing> {
        let mut out = None;
        for _ in 0..64 {
            self.flag.0.store(false, Ordering::Relaxed);
            let waker = self.waker.clone();
            let mut cx = Context::from_waker(&waker);
            self.poll_conn(&mut cx, now);
            if let Some(l) = self.poll_call(&mut cx, now) {
                out = Some(l);
            }
            self.maybe_start_call(&mut cx, now);
            if !self.flag.0.load(Ordering::Relaxed) {
                break;
            }
        }
        out
    }

    fn poll_conn(&mut self, cx: &mut Context<'_>, now: Instant) {
        if let Conn::Handshaking { fut, .. } = &mut self.conn {
            match fut.as_mut().poll(cx) {
                Poll::Pending => return,
                Poll::Ready(Err(e)) => {
                    self.conn_lost(&format!("handshake: {e}"), now);
                    return;
                }
                Poll::Ready(Ok((send, conn))) => {
                    log::info!(endpoint:% = self.path.display(); "connected to the CRI runtime");
                    self.policy.connected();
                    self.stats.connected = true;
                    self.unreachable_logged = false;
                    self.stats.connections += 1;
                    self.conn = Conn::Up {
                        send,
                        conn: Box::new(conn),
                    };
                }
            }
        }
        let Conn::Up { conn, .. } = &mut self.conn else {
            return;
        };
        let lost = match Pin::new(conn.as_mut()).poll(cx) {
            Poll::Pending => None,
            Poll::Ready(Ok(())) => Some("closed by the runtime".to_string()),
            Poll::Ready(Err(e)) => Some(e.to_string()),
        };
        if let Some(why) = lost {
            self.conn_lost(&why, now);
        }
    }

    fn maybe_start_call(&mut self, cx: &mut Context<'_>, now: Instant) {
        if self.call.is_some() {
            return;
        }
        let Conn::Up { send, .. } = &mut self.conn else {
            return;
        };
        if self.policy.next_due().is_none_or(|d| d > now) {
            return;
        }
        match send.poll_ready(cx) {
            Poll::Pending => return,
            Poll::Ready(Err(e)) => {
                let why = format!("not ready: {e}");
                self.conn_lost(&why, now);
                return;
            }
            Poll::Ready(Ok(())) => {}
        }
        let req = http::Request::builder()
            .method("POST")
            .uri(format!("http://localhost{}", cri::LIST_POD_SANDBOX))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .header("user-agent", "kata-monitor")
            .body(())
            .expect("static request");
        match send.send_request(req, false) {
            Ok((resp, mut stream)) => {
                let body = grpc::frame(&cri::list_ready_request());
                if let Err(e) = stream.send_data(body, true) {
                    let why = format!("send: {e}");
                    self.conn_lost(&why, now);
                    return;
                }
                self.policy.start_call(now);
                self.call = Some(Call {
                    stage: Some(Stage::Head(resp)),
                    started: now,
                    deadline: now + CALL_TIMEOUT,
                });
            }
            Err(e) => {
                let why = format!("send_request: {e}");
                self.conn_lost(&why, now);
            }
        }
    }

    /// Advance the call; `Some` when it completed successfully.
    fn poll_call(&mut self, cx: &mut Context<'_>, now: Instant) -> Option<Listing> {
        loop {
            let call = self.call.as_mut()?;
            let Some(stage) = call.stage.take() else {
                self.call = None;
                return None;
            };
            let next = match stage {
                Stage::Head(mut resp) => match Pin::new(&mut resp).poll(cx) {
                    Poll::Pending => Err(Stage::Head(resp)),
                    Poll::Ready(Err(e)) => {
                        return self.call_failed(CallResult::Connection, &e.to_string(), now);
                    }
                    Poll::Ready(Ok(r)) => {
                        let (parts, recv) = r.into_parts();
                        if parts.status != http::StatusCode::OK {
                            let why = format!("HTTP status {}", parts.status);
                            return self.call_failed(CallResult::BadResponse, &why, now);
                        }
                        if let Some(s) = grpc::status(&parts.headers) {
                            // Trailers-Only: the status is all there is.
                            return self.call_status(s, None, now);
                        }
                        Ok(Stage::Body {
                            recv,
                            dec: grpc::Decoder::default(),
                        })
                    }
                },
                Stage::Body { mut recv, mut dec } => match recv.poll_data(cx) {
                    Poll::Pending => Err(Stage::Body { recv, dec }),
                    Poll::Ready(Some(Ok(chunk))) => {
                        // Give the window back, or big answers stall.
                        let _ = recv.flow_control().release_capacity(chunk.len());
                        if let Err(e) = dec.push(&chunk) {
                            return self.call_failed(CallResult::BadResponse, &e.to_string(), now);
                        }
                        Ok(Stage::Body { recv, dec })
                    }
                    Poll::Ready(Some(Err(e))) => {
                        return self.call_failed(CallResult::Connection, &e.to_string(), now);
                    }
                    Poll::Ready(None) => match dec.finish() {
                        Ok(msg) => Ok(Stage::Trailers { recv, msg }),
                        Err(e) => {
                            return self.call_failed(CallResult::BadResponse, &e.to_string(), now);
                        }
                    },
                },
                Stage::Trailers { mut recv, msg } => match recv.poll_trailers(cx) {
                    Poll::Pending => Err(Stage::Trailers { recv, msg }),
                    Poll::Ready(Err(e)) => {
                        return self.call_failed(CallResult::Connection, &e.to_string(), now);
                    }
                    Poll::Ready(Ok(trailers)) => {
                        let status = trailers.as_ref().and_then(grpc::status);
                        return match status {
                            Some(s) => self.call_status(s, msg, now),
                            None => {
                                self.call_failed(CallResult::BadResponse, "no grpc-status", now)
                            }
                        };
                    }
                },
            };
            let call = self.call.as_mut()?;
            match next {
                // Progress: keep going.
                Ok(stage) => call.stage = Some(stage),
                // Nothing more now.
                Err(stage) => {
                    call.stage = Some(stage);
                    return None;
                }
            }
        }
    }

    fn call_status(
        &mut self,
        s: grpc::Status,
        msg: Option<Bytes>,
        now: Instant,
    ) -> Option<Listing> {
        if !s.is_ok() {
            let result = CallResult::from_grpc(s.code);
            let why = format!("grpc-status {} {}", s.code, s.message);
            return self.call_failed(result, &why, now);
        }
        let msg = msg.unwrap_or_default();
        match cri::parse_list_response(&msg) {
            Ok(items) => {
                self.end_call(CallResult::Ok, now);
                let listing: Listing = items
                    .into_iter()
                    .map(|p| {
                        let meta = PodMeta {
                            uid: p.metadata.uid,
                            name: p.metadata.name,
                            namespace: p.metadata.namespace,
                            runtime_handler: p.runtime_handler,
                        };
                        (p.id, meta)
                    })
                    .collect();
                let gave_up = self.policy.answered(&|id| listing.contains_key(id), now);
                for id in gave_up {
                    log::info!(sandbox:% = id; "sandbox unknown to the CRI runtime, serving it without pod labels");
                }
                Some(listing)
            }
            Err(e) => self.call_failed(CallResult::BadResponse, &format!("decode: {e}"), now),
        }
    }

    fn call_failed(&mut self, result: CallResult, why: &str, now: Instant) -> Option<Listing> {
        log::warn!(endpoint:% = self.path.display(), result = result.as_label(), error = why; "CRI ListPodSandbox failed");
        self.end_call(result, now);
        self.policy.failed(now, policy::RETRY_BASE * 4);
        None
    }
}
