//! Requests forwarded to a shim (`/metrics?sandbox=`, `/agent-url`,
//! `/debug/*`): opening the shim connection, and moving the answer to the
//! client as the client accepts it (the shim is read only when the
//! client's output is empty: backpressure both ways). What the client is
//! answered is decided by [`crate::state::proxy`].

use super::fetch::{Flow, Purpose};
use super::io::Io;
use super::token::{Source, token};
use super::{Daemon, Ready, ShimSock};
use crate::state::body::Body;
use crate::state::conn::CloseReason;
use crate::state::outcome::FetchError;
use crate::state::proxy::{self, Deadlines, MAX_COLLECT, OnHead, ProxyKind, ProxyRequest};
use crate::state::shim::{Exchange, STREAM_BUF, Step};
use crate::state::slab::Key;
use crate::wire::http::response::Framing;
use mio::Interest;
use mio::net::UnixStream;
use std::time::Instant;

/// A shim connection answering a client.
pub(super) struct Proxy {
    pub(super) client: Key,
    kind: ProxyKind,
    head_only: bool,
    /// Collected body (agent URL, pprof index).
    acc: Vec<u8>,
    /// The client's answer has started; body bytes are relayed.
    streaming: bool,
    deadlines: Deadlines,
    /// A profile or trace, counted in `Daemon::profiling` until removed.
    pub(super) timed: bool,
}

impl Daemon {
    /// Forward `GET target` to the sandbox's shim for `client`.
    pub(super) fn start_proxy(&mut self, client: Key, r: ProxyRequest, now: Instant) {
        let deadlines = Deadlines::new(self.cfg.shim_timeout, r.extra, now);
        // One profile or trace per sandbox; the slot is taken below, once
        // the shim connection exists (remove_shim gives it back).
        if let Err(reply) = self.profiling.admit(&r.id, r.extra, r.head_only, now) {
            self.reply(client, &reply, now);
            return;
        }
        let conn = self
            .reg
            .socket_path(&r.id)
            .ok_or(FetchError::NoSocket)
            .and_then(|path| UnixStream::connect(path).map_err(|e| FetchError::from_connect(&e)));
        let mut sock = match conn {
            Ok(s) => s,
            Err(e) => {
                log::warn!(sandbox:% = r.id, reason = e.as_label(); "cannot reach shim");
                if e == FetchError::FdExhausted {
                    self.fd_pressure(now);
                }
                self.reply(client, &proxy::error_reply(&r.id, e, r.head_only), now);
                return;
            }
        };
        let key = self.shims.next_key();
        if self
            .poll
            .registry()
            .register(
                &mut sock,
                token(Source::Shim(key)),
                Interest::READABLE | Interest::WRITABLE,
            )
            .is_err()
        {
            let reply = proxy::error_reply(&r.id, FetchError::ConnectFailed, r.head_only);
            self.reply(client, &reply, now);
            return;
        }
        let limit = self.cfg.max_shim_body.max(MAX_COLLECT as u64);
        let timed = !r.extra.is_zero();
        if timed {
            self.profiling.begin(&r.id, deadlines.head());
        }
        self.shims.insert(ShimSock {
            io: Io::new(sock),
            x: Exchange::new(
                &r.target,
                true,
                limit,
                Vec::with_capacity(STREAM_BUF),
                0,
                now,
                deadlines.head(),
            ),
            id: r.id,
            purpose: Purpose::Proxy(Proxy {
                client,
                kind: r.kind,
                head_only: r.head_only,
                acc: Vec::new(),
                streaming: false,
                deadlines,
                timed,
            }),
        });
        if let Some(c) = self.clients.get_mut(client) {
            c.proxy = Some(key);
        }
        self.ready.push_back(Ready::Shim(key));
    }

    /// Act on a proxied exchange's step.
    pub(super) fn proxy_step(&mut self, key: Key, step: Step, now: Instant) -> Flow {
        let s = self.shims.get_mut(key).expect("driven");
        let Purpose::Proxy(p) = &mut s.purpose else {
            return Flow::Wait;
        };
        let client = p.client;
        let Some(c) = self
            .clients
            .get_mut(client)
            .filter(|c| c.proxy == Some(key))
        else {
            // The client went away.
            self.remove_shim(key, now);
            return Flow::Gone;
        };
        match step {
            Step::Pending => Flow::Wait,
            Step::Head => {
                s.x.set_deadline(p.deadlines.after_progress(now));
                let head = s.x.head().expect("head arrived");
                match proxy::on_head(p.kind, head, &s.id, p.head_only) {
                    OnHead::Collect => Flow::Continue,
                    OnHead::Stream {
                        status,
                        headers,
                        length,
                    } => {
                        let framing =
                            length.map_or_else(|| c.conn.stream_framing(), Framing::Length);
                        let body = Body::Relay {
                            chunked: framing == Framing::Chunked,
                            ended: false,
                        };
                        let hdrs: Vec<(&str, &str)> =
                            headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
                        c.conn.start(status, &hdrs, framing, body, p.head_only, now);
                        p.streaming = true;
                        self.ready.push_back(Ready::Client(client));
                        Flow::Continue
                    }
                    OnHead::Reply(r) => {
                        self.remove_shim(key, now);
                        self.reply(client, &r, now);
                        Flow::Gone
                    }
                }
            }
            Step::Data if p.kind.collects() => {
                let data = s.x.available();
                if p.acc.len() + data.len() > MAX_COLLECT {
                    return self.proxy_failed(key, FetchError::BodyTooLarge, now);
                }
                p.acc.extend_from_slice(data);
                let n = data.len();
                s.x.consume(n);
                Flow::Continue
            }
            Step::Data => {
                if !c.conn.wants_relay() {
                    return Flow::Wait;
                }
                let data = s.x.available();
                c.conn.relay_push(data);
                let n = data.len();
                s.x.consume(n);
                s.x.set_deadline(p.deadlines.after_progress(now));
                self.ready.push_back(Ready::Client(client));
                Flow::Continue
            }
            Step::Done if p.streaming => {
                c.conn.relay_end();
                c.proxy = None;
                self.ready.push_back(Ready::Client(client));
                self.remove_shim(key, now);
                Flow::Gone
            }
            Step::Done => {
                let head = s.x.head().expect("done after head");
                let body = std::mem::take(&mut p.acc);
                let reply = proxy::collected(p.kind, head, body, &s.id, p.head_only);
                self.remove_shim(key, now);
                self.reply(client, &reply, now);
                Flow::Gone
            }
            Step::Failed(e) => self.proxy_failed(key, e, now),
            Step::Closed => self.proxy_failed(key, FetchError::Reset, now),
        }
    }

    /// The shim failed: 502/504 when nothing was sent yet, else the
    /// client's answer is cut off (closed).
    fn proxy_failed(&mut self, key: Key, e: FetchError, now: Instant) -> Flow {
        let Some(s) = self.shims.get(key) else {
            return Flow::Gone;
        };
        let Purpose::Proxy(p) = &s.purpose else {
            return Flow::Gone;
        };
        let (client, streaming, head_only) = (p.client, p.streaming, p.head_only);
        let id = s.id.clone();
        log::warn!(sandbox:% = id, reason = e.as_label(), streaming = streaming; "shim proxy failed");
        self.remove_shim(key, now);
        if streaming {
            if let Some(c) = self.clients.get_mut(client) {
                c.conn.close(CloseReason::Reset);
                self.ready.push_back(Ready::Client(client));
            }
        } else {
            self.reply(client, &proxy::error_reply(&id, e, head_only), now);
        }
        Flow::Gone
    }
}
