//! The rustls server configuration built from the certificate files' bytes.
//!
//! Owns: building a [`Server`] (the shared `ServerConfig`, whether client
//! certificates are required, the certificate's validity) from PEM bytes
//! and a [`Policy`], and the crypto provider. The reactor reads the files.
//! Must not: touch files or sockets, read the clock, log.

use super::policy::{MinVersion, Policy};
use crate::wire::der::{self, Validity};
use rustls::crypto::{CryptoProvider, ring};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, SupportedProtocolVersion, version};
use std::sync::Arc;

/// The certificate files' contents.
pub struct Material<'a> {
    pub cert_pem: &'a [u8],
    pub key_pem: &'a [u8],
    /// Client certificates are required and checked against these CAs.
    pub client_ca_pem: Option<&'a [u8]>,
}

/// A server configuration new connections start from.
#[derive(Clone)]
pub struct Server {
    pub config: Arc<ServerConfig>,
    /// The serving certificate's validity (`None` if it could not be read).
    pub validity: Option<Validity>,
    /// Certificates in the served chain.
    pub chain_len: usize,
    /// Trust anchors for client certificates (0: none required).
    pub client_cas: usize,
}

/// Build a server configuration, or say what is wrong with the files.
pub fn build(policy: &Policy, m: &Material) -> Result<Server, String> {
    let provider = Arc::new(provider(policy));
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(m.cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("certificate file: {e}"))?;
    if certs.is_empty() {
        return Err("certificate file: no CERTIFICATE block".into());
    }
    let key = PrivateKeyDer::from_pem_slice(m.key_pem).map_err(|e| format!("key file: {e}"))?;
    let validity = der::validity(&certs[0]);
    let chain_len = certs.len();
    let versions: &[&SupportedProtocolVersion] = match policy.min_version {
        MinVersion::Tls12 => &[&version::TLS13, &version::TLS12],
        MinVersion::Tls13 => &[&version::TLS13],
    };
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|e| format!("TLS settings: {e}"))?;
    let (builder, client_cas) = match m.client_ca_pem {
        Some(pem) => {
            let mut roots = RootCertStore::empty();
            for c in CertificateDer::pem_slice_iter(pem) {
                let c = c.map_err(|e| format!("client CA file: {e}"))?;
                roots.add(c).map_err(|e| format!("client CA file: {e}"))?;
            }
            if roots.is_empty() {
                return Err("client CA file: no CERTIFICATE block".into());
            }
            let n = roots.len();
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| format!("client CA file: {e}"))?;
            (builder.with_client_cert_verifier(verifier), n)
        }
        None => (builder.with_no_client_auth(), 0),
    };
    let config = builder
        .with_single_cert(certs, key)
        .map_err(|e| format!("certificate and key: {e}"))?;
    Ok(Server {
        config: Arc::new(config),
        validity,
        chain_len,
        client_cas,
    })
}

/// ring's provider with the TLS 1.2 suites the policy allows.
///
/// ring, not aws-lc-rs: in the static musl binary it costs about half the
/// size, builds with any C compiler for every architecture Kata ships
/// (aws-lc needs cmake or pregenerated bindings per target), and is as
/// fast for a scrape's few hundred kilobytes (BENCHMARKS.md).
fn provider(policy: &Policy) -> CryptoProvider {
    let mut p = ring::default_provider();
    if let Some(allowed) = &policy.tls12_suites {
        p.cipher_suites
            .retain(|s| s.version() == &version::TLS13 || allowed.contains(&u16::from(s.suite())));
    }
    p
}

#[cfg(test)]
mod tests {
    use super::super::policy::{SUITES, Support};
    use super::*;

    #[test]
    fn every_tls12_name_is_a_ring_suite() {
        let all: Vec<u16> = ring::ALL_CIPHER_SUITES
            .iter()
            .map(|s| u16::from(s.suite()))
            .collect();
        for (name, id, support) in SUITES {
            let implemented = all.contains(id);
            let expected = matches!(support, Support::Tls12 | Support::Tls13);
            assert_eq!(implemented, expected, "{name}");
        }
        let p = provider(&Policy {
            min_version: MinVersion::Tls12,
            tls12_suites: Some(vec![0xc02f]),
        });
        let ids: Vec<u16> = p
            .cipher_suites
            .iter()
            .map(|s| u16::from(s.suite()))
            .collect();
        assert_eq!(
            ids.len(),
            4,
            "three TLS 1.3 suites and the one named: {ids:x?}"
        );
        assert!(ids.contains(&0xc02f));
    }
}
