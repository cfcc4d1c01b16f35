//! The TLS session against a rustls client over in-memory byte pipes, with
//! a real connection machine behind it and a virtual clock.

use super::*;
use crate::state::body::Body;
use crate::state::conn::{CloseReason, Event, Timeouts};
use crate::state::tls::policy::Policy;
use crate::state::tls::setup::{self, Material};
use crate::wire::http::response::Framing;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore};
use std::time::Duration;

/// A CA and what it signed.
pub(super) struct Ca {
    pub(super) cert: rcgen::Certificate,
    key: KeyPair,
}

impl Ca {
    pub(super) fn new(name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(DnType::CommonName, name);
        Ca {
            cert: p.self_signed(&key).unwrap(),
            key,
        }
    }

    /// A leaf for `name` (a server's DNS name or a client's CN): (cert, key) PEM.
    pub(super) fn issue(&self, name: &str) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(vec![name.to_string()]).unwrap();
        p.distinguished_name.push(DnType::CommonName, name);
        let cert = p.signed_by(&key, &self.cert, &self.key).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

pub(super) fn server(ca: &Ca, client_ca: Option<&Ca>) -> setup::Server {
    let (cert, key) = ca.issue("localhost");
    let client_ca_pem = client_ca.map(|c| c.cert.pem());
    setup::build(
        &Policy::default(),
        &Material {
            cert_pem: cert.as_bytes(),
            key_pem: key.as_bytes(),
            client_ca_pem: client_ca_pem.as_deref().map(str::as_bytes),
        },
    )
    .unwrap()
}

fn client(ca: &Ca, identity: Option<(String, String)>) -> ClientConnection {
    let mut roots = RootCertStore::empty();
    roots.add(ca.cert.der().clone()).unwrap();
    let b = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let cfg = match identity {
        Some((cert, key)) => {
            let chain = CertificateDer::pem_slice_iter(cert.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
            b.with_client_auth_cert(chain, key).unwrap()
        }
        None => b.with_no_client_auth(),
    };
    ClientConnection::new(Arc::new(cfg), ServerName::try_from("localhost").unwrap()).unwrap()
}

/// The server side (session and connection) and a rustls client, joined by
/// two byte pipes. `room`: how many bytes the server's "socket" takes per
/// step (a slow reader); `client_reads`: whether the client reads at all.
struct Pair {
    s: Session,
    conn: Conn,
    c: ClientConnection,
    to_server: Vec<u8>,
    to_client: Vec<u8>,
    room: usize,
    client_reads: bool,
    plain: Vec<u8>,
    client_eof: bool,
    client_error: Option<rustls::Error>,
    requests: Vec<String>,
    shut: bool,
    closed: Option<CloseReason>,
    failure: Option<Failure>,
    now: Instant,
}

impl Pair {
    fn new(server: &setup::Server, c: ClientConnection) -> Pair {
        let now = Instant::now();
        Pair {
            s: Session::new(server.config.clone()).unwrap(),
            conn: Conn::new(Timeouts::default(), now),
            c,
            to_server: Vec::new(),
            to_client: Vec::new(),
            room: usize::MAX,
            client_reads: true,
            plain: Vec::new(),
            client_eof: false,
            client_error: None,
            requests: Vec::new(),
            shut: false,
            closed: None,
            failure: None,
            now,
        }
    }

    /// Move bytes until nothing moves.
    fn run(&mut self) {
        for _ in 0..10_000 {
            if !self.step() {
                return;
            }
        }
        panic!("no quiescence");
    }

    fn step(&mut self) -> bool {
        let mut progress = false;
        while self.c.wants_write() {
            self.c.write_tls(&mut self.to_server).unwrap();
        }
        while !self.to_server.is_empty() {
            let Some(buf) = self.s.recv_buf() else { break };
            let n = buf.len().min(self.to_server.len());
            buf[..n].copy_from_slice(&self.to_server[..n]);
            self.to_server.drain(..n);
            self.s.handle_read(n);
            progress = true;
        }
        progress |= self.s.pump(&mut self.conn, self.now);
        if let Some(f) = self.s.poll_failure() {
            self.failure = Some(f);
            progress = true;
        }
        while let Some(ev) = self.conn.poll_event() {
            progress = true;
            match ev {
                Event::Request(r) => self.requests.push(r.target.clone()),
                Event::ShutdownWrite => self.s.close_notify(),
                Event::Close(r) => self.closed = Some(r),
                Event::Spent(_) | Event::Refused(_) => {}
            }
        }
        let out = self.s.poll_transmit();
        let n = out.len().min(self.room);
        if n > 0 {
            self.to_client.extend_from_slice(&out[..n]);
            self.s.handle_written(n);
            progress = true;
        }
        if self.s.take_shutdown() {
            self.shut = true;
            progress = true;
        }
        if self.client_reads && !self.to_client.is_empty() {
            let mut rd = &self.to_client[..];
            let n = self.c.read_tls(&mut rd).unwrap();
            self.to_client.drain(..n);
            progress |= n > 0;
            if let Err(e) = self.c.process_new_packets() {
                self.client_error = Some(e);
                self.client_reads = false;
            }
            let mut buf = [0u8; 65536];
            loop {
                match self.c.reader().read(&mut buf) {
                    Ok(0) => {
                        self.client_eof = true;
                        break;
                    }
                    Ok(n) => self.plain.extend_from_slice(&buf[..n]),
                    Err(_) => break,
                }
            }
        }
        progress
    }

    fn send(&mut self, req: &str) {
        self.c.writer().write_all(req.as_bytes()).unwrap();
        self.run();
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.plain).into_owned()
    }
}

#[test]
fn handshake_request_and_keep_alive_response() {
    let ca = Ca::new("ca");
    let srv = server(&ca, None);
    let mut p = Pair::new(&srv, client(&ca, None));
    p.run();
    assert!(!p.s.is_handshaking() && !p.c.is_handshaking());
    assert!(p.s.negotiated().unwrap().0.contains("TLSv1_3"));
    p.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(p.requests, ["/healthz"]);
    p.conn.respond(200, &[], b"ok\n", false, p.now);
    p.run();
    assert!(p.text().starts_with("HTTP/1.1 200 OK\r\n"), "{}", p.text());
    assert!(p.text().ends_with("\r\n\r\nok\n"));
    // Kept alive: a second request on the same session.
    p.plain.clear();
    p.send("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(p.requests, ["/healthz", "/metrics"]);
    p.conn.respond(200, &[], b"two\n", false, p.now);
    p.run();
    assert!(p.text().ends_with("two\n"));
    assert!(!p.shut && p.closed.is_none());
}

#[test]
fn pipelined_requests_wait_in_rustls_and_are_answered_in_turn() {
    let ca = Ca::new("ca");
    let srv = server(&ca, None);
    let mut p = Pair::new(&srv, client(&ca, None));
    p.send("GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n");
    assert_eq!(p.requests, ["/a"]);
    p.conn.respond(200, &[], b"a\n", false, p.now);
    p.run();
    assert_eq!(p.requests, ["/a", "/b"]);
    p.conn.respond(200, &[], b"b\n", false, p.now);
    p.run();
    assert!(p.text().ends_with("b\n") && p.text().contains("a\n"));
}

#[test]
fn close_notify_precedes_the_shutdown_after_the_last_answer() {
    let ca = Ca::new("ca");
    let srv = server(&ca, None);
    let mut p = Pair::new(&srv, client(&ca, None));
    p.send("GET /x HTTP/1.1\r\nConnection: close\r\n\r\n");
    p.conn.respond(200, &[], b"bye\n", false, p.now);
    p.run();
    assert!(p.text().ends_with("bye\n"));
    assert!(p.shut, "write side shut after close_notify");
    assert!(p.client_eof, "the client saw close_notify, a clean end");
    // The client closes too: the lingering connection ends.
    p.c.send_close_notify();
    p.run();
    assert_eq!(p.closed, Some(CloseReason::Done));
}

#[test]
fn a_slow_reader_holds_bounded_buffers_and_gets_every_byte() {
    let ca = Ca::new("ca");
    let srv = server(&ca, None);
    let mut p = Pair::new(&srv, client(&ca, None));
    p.send("GET /big HTTP/1.1\r\n\r\n");
    p.conn.start(
        200,
        &[],
        Framing::Length(4 << 20),
        Body::Relay {
            chunked: false,
            ended: false,
        },
        false,
        p.now,
    );
    // The client stops reading; the "socket" takes 1 KiB a step.
    p.client_reads = false;
    p.room = 1024;
    let chunk = vec![b'x'; 60_000];
    let mut pushed = 0usize;
    let mut max_held = 0;
    for _ in 0..200 {
        if p.conn.wants_relay() && pushed < 4 << 20 {
            let n = chunk.len().min((4 << 20) - pushed);
            p.conn.relay_push(&chunk[..n]);
            pushed += n;
        }
        p.step();
        // Ciphertext held by the session plus what rustls holds is bounded
        // by about two output buffers, however long the client stalls.
        let held = p.s.buffered() + p.s.tls.wants_write() as usize * OUT_BUF;
        max_held = max_held.max(held);
    }
    assert!(pushed < 1 << 20, "the relay was held back: {pushed}");
    assert!(max_held <= 2 * OUT_BUF + 4096, "{max_held}");
    // The client reads again: everything arrives.
    p.client_reads = true;
    p.room = usize::MAX;
    for _ in 0..100_000 {
        if p.conn.wants_relay() && pushed < 4 << 20 {
            let n = chunk.len().min((4 << 20) - pushed);
            p.conn.relay_push(&chunk[..n]);
            pushed += n;
            if pushed == 4 << 20 {
                p.conn.relay_end();
            }
        }
        if !p.step() && pushed == 4 << 20 {
            break;
        }
    }
    let head_end = p.plain.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert_eq!(p.plain.len() - head_end, 4 << 20);
}

#[test]
fn client_certificates_required_and_checked() {
    let ca = Ca::new("server ca");
    let clients = Ca::new("client ca");
    let other = Ca::new("other ca");
    let srv = server(&ca, Some(&clients));
    assert_eq!(srv.client_cas, 1);

    let mut p = Pair::new(&srv, client(&ca, Some(clients.issue("prometheus"))));
    p.send("GET /metrics HTTP/1.1\r\n\r\n");
    assert_eq!(p.requests, ["/metrics"]);

    let mut p = Pair::new(&srv, client(&ca, None));
    p.send("GET /metrics HTTP/1.1\r\n\r\n");
    assert!(p.requests.is_empty());
    assert_eq!(p.failure.unwrap().kind, FailureKind::ClientCertMissing);
    assert!(p.client_error.is_some(), "the client got an alert");

    let mut p = Pair::new(&srv, client(&ca, Some(other.issue("prometheus"))));
    p.send("GET /metrics HTTP/1.1\r\n\r\n");
    assert!(p.requests.is_empty());
    let f = p.failure.unwrap();
    assert_eq!(f.kind, FailureKind::ClientCertInvalid, "{}", f.detail);
}

#[test]
fn plain_http_gets_a_plain_400_and_nothing_else() {
    let ca = Ca::new("ca");
    let srv = server(&ca, None);
    let mut s = Session::new(srv.config.clone()).unwrap();
    let mut conn = Conn::new(Timeouts::default(), Instant::now());
    let req = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
    let buf = s.recv_buf().unwrap();
    buf[..req.len()].copy_from_slice(req);
    s.handle_read(req.len());
    assert!(!s.pump(&mut conn, Instant::now()));
    let f = s.poll_failure().unwrap();
    assert_eq!(f.kind, FailureKind::PlainHttp);
    assert_eq!(s.poll_failure(), None, "reported once");
    assert_eq!(s.poll_transmit(), PLAIN_HTTP_ANSWER);
    assert!(s.recv_buf().is_none());
    assert!(
        conn.poll_event().is_none(),
        "no request reached the connection"
    );
}

#[test]
fn garbage_gets_an_alert() {
    let ca = Ca::new("ca");
    let srv = server(&ca, None);
    let mut s = Session::new(srv.config.clone()).unwrap();
    // A record of no known content type (and no HTTP method either).
    let junk = b"\x99\x03\x03\x00\x02ab";
    let buf = s.recv_buf().unwrap();
    buf[..junk.len()].copy_from_slice(junk);
    s.handle_read(junk.len());
    let f = s.poll_failure().unwrap();
    assert_eq!(f.kind, FailureKind::Handshake);
    // An alert record: content type 21.
    assert_eq!(s.poll_transmit().first(), Some(&21));
}

#[test]
fn a_stalled_handshake_is_cut_by_the_header_timeout() {
    let ca = Ca::new("ca");
    let srv = server(&ca, None);
    let mut p = Pair::new(&srv, client(&ca, None));
    // Half a ClientHello, then nothing.
    p.c.write_tls(&mut p.to_server).unwrap();
    p.to_server.truncate(20);
    let stalled = std::mem::take(&mut p.to_server);
    let buf = p.s.recv_buf().unwrap();
    buf[..stalled.len()].copy_from_slice(&stalled);
    p.s.handle_read(stalled.len());
    p.s.pump(&mut p.conn, p.now);
    assert!(p.s.is_handshaking());
    let deadline = p.conn.deadline().unwrap();
    assert_eq!(deadline, p.now + Duration::from_secs(10));
    p.conn.handle_timeout(deadline);
    assert!(matches!(
        p.conn.poll_event(),
        Some(Event::Close(CloseReason::HeaderTimeout))
    ));
}

#[test]
fn eof_mid_handshake_closes_and_eof_after_a_request_still_gets_the_answer() {
    let ca = Ca::new("ca");
    let srv = server(&ca, None);
    let mut p = Pair::new(&srv, client(&ca, None));
    p.c.write_tls(&mut p.to_server).unwrap();
    p.to_server.clear();
    p.s.handle_eof();
    p.s.pump(&mut p.conn, p.now);
    assert!(matches!(
        p.conn.poll_event(),
        Some(Event::Close(CloseReason::PeerClosed))
    ));
    assert_eq!(p.s.poll_failure(), None, "not a failed handshake");

    // A TCP probe (kubelet's tcpSocket): connected, closed, no byte sent.
    let mut p = Pair::new(&srv, client(&ca, None));
    p.s.handle_eof();
    p.s.pump(&mut p.conn, p.now);
    assert!(matches!(
        p.conn.poll_event(),
        Some(Event::Close(CloseReason::PeerClosed))
    ));
    assert_eq!(
        p.s.poll_failure(),
        None,
        "a probe is not a failed handshake"
    );
    assert!(p.s.poll_transmit().is_empty(), "and gets no alert");

    // A client that sends its request and close_notify at once.
    let mut p = Pair::new(&srv, client(&ca, None));
    p.run();
    p.c.writer().write_all(b"GET /x HTTP/1.1\r\n\r\n").unwrap();
    p.c.send_close_notify();
    p.run();
    assert_eq!(p.requests, ["/x"]);
    p.conn.respond(200, &[], b"late\n", false, p.now);
    p.run();
    assert!(p.text().ends_with("late\n"));
    assert!(p.shut);
    assert_eq!(p.closed, Some(CloseReason::Done));
}
