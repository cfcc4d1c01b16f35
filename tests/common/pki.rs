//! Test certificates (made in-process with rcgen, so no openssl CLI and no
//! fixed expiry dates) and a blocking HTTPS client on rustls.

#![allow(dead_code)]

use super::node::{Resp, read_response_from};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// A certificate authority and the leaves it signs.
pub struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

/// A certificate and its key, PEM.
#[derive(Clone)]
pub struct Leaf {
    pub cert: String,
    pub key: String,
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(DnType::CommonName, name);
        Ca {
            cert: p.self_signed(&key).unwrap(),
            key,
        }
    }

    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    /// A server certificate for `localhost` and 127.0.0.1.
    pub fn server(&self) -> Leaf {
        self.leaf("kata-monitor", &["localhost", "127.0.0.1"])
    }

    /// A client certificate (its CN only).
    pub fn client(&self, cn: &str) -> Leaf {
        self.leaf(cn, &[])
    }

    fn leaf(&self, cn: &str, names: &[&str]) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut p = CertificateParams::new(names).unwrap();
        p.distinguished_name.push(DnType::CommonName, cn);
        let cert = p.signed_by(&key, &self.cert, &self.key).unwrap();
        Leaf {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }
}

impl Leaf {
    /// Write `cert.pem` and `key.pem` into `dir`; their paths.
    pub fn write(&self, dir: &Path) -> (PathBuf, PathBuf) {
        std::fs::create_dir_all(dir).unwrap();
        let (c, k) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&c, &self.cert).unwrap();
        std::fs::write(&k, &self.key).unwrap();
        (c, k)
    }

    /// The certificate's DER.
    pub fn der(&self) -> Vec<u8> {
        CertificateDer::from_pem_slice(self.cert.as_bytes())
            .unwrap()
            .to_vec()
    }
}

/// A client configuration trusting `ca`, presenting `identity` if given.
pub fn client_config(ca: &Ca, identity: Option<&Leaf>) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.add(ca.cert.der().clone()).unwrap();
    let b = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let cfg = match identity {
        Some(l) => {
            let chain = CertificateDer::pem_slice_iter(l.cert.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            let key = PrivateKeyDer::from_pem_slice(l.key.as_bytes()).unwrap();
            b.with_client_auth_cert(chain, key).unwrap()
        }
        None => b.with_no_client_auth(),
    };
    Arc::new(cfg)
}

/// A blocking TLS connection to the monitor (for server name `localhost`).
pub struct Https {
    pub s: StreamOwned<ClientConnection, TcpStream>,
    pending: Vec<u8>,
}

impl Https {
    pub fn connect(addr: SocketAddr, cfg: Arc<ClientConfig>) -> Https {
        let sock = TcpStream::connect(addr).expect("connect");
        sock.set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let conn = ClientConnection::new(cfg, ServerName::try_from("localhost").unwrap()).unwrap();
        Https {
            s: StreamOwned::new(conn, sock),
            pending: Vec::new(),
        }
    }

    /// Complete the handshake (the server's verdict on a client
    /// certificate comes after it, on the first read, in TLS 1.3).
    pub fn handshake(&mut self) -> Result<(), String> {
        while self.s.conn.is_handshaking() {
            self.s
                .conn
                .complete_io(&mut self.s.sock)
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// The server's end-entity certificate (DER).
    pub fn server_cert(&mut self) -> Vec<u8> {
        self.handshake().expect("handshake");
        self.s.conn.peer_certificates().unwrap()[0].to_vec()
    }

    /// One request on this connection; `Err` with what failed.
    pub fn request(&mut self, target: &str, headers: &[(&str, &str)]) -> Result<Resp, String> {
        let mut req = format!("GET {target} HTTP/1.1\r\nHost: localhost\r\n");
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        self.s
            .write_all(req.as_bytes())
            .map_err(|e| e.to_string())?;
        self.s.flush().map_err(|e| e.to_string())?;
        let mut err = None;
        let r = read_response_from(
            &mut ErrSaver {
                s: &mut self.s,
                err: &mut err,
            },
            &mut self.pending,
            false,
        );
        r.ok_or_else(|| err.unwrap_or_else(|| "connection closed without an answer".into()))
    }
}

/// Keeps the reason a read failed (the TLS alert), which the response
/// reader turns into `None`.
struct ErrSaver<'a> {
    s: &'a mut StreamOwned<ClientConnection, TcpStream>,
    err: &'a mut Option<String>,
}

impl std::io::Read for ErrSaver<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.s
            .read(buf)
            .inspect_err(|e| *self.err = Some(e.to_string()))
    }
}

/// One GET on a new TLS connection.
pub fn https_get(addr: SocketAddr, cfg: Arc<ClientConfig>, target: &str) -> Result<Resp, String> {
    Https::connect(addr, cfg).request(target, &[])
}
