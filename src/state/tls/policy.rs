//! What the TLS flags mean, as upstream spells them.
//!
//! Owns: the minimum version (`VersionTLS12`, `VersionTLS13`, as Go's
//! constants are named and upstream's `--tls-min-version` takes them, plus
//! `1.2`/`1.3`) and cipher suites (IANA names, as Go's `crypto/tls` lists
//! them), and which of those rustls implements. Needs no TLS library: flags
//! are checked the same way in a build without TLS.

/// The lowest protocol version accepted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MinVersion {
    #[default]
    Tls12,
    Tls13,
}

impl MinVersion {
    /// Upstream's spelling (Go's constant names) or the plain number.
    pub fn parse(v: &str) -> Result<MinVersion, String> {
        match v.trim() {
            "VersionTLS12" | "1.2" => Ok(MinVersion::Tls12),
            "VersionTLS13" | "1.3" => Ok(MinVersion::Tls13),
            "VersionTLS10" | "VersionTLS11" | "1.0" | "1.1" => {
                Err("TLS 1.0 and 1.1 are not supported; use VersionTLS12 or VersionTLS13".into())
            }
            _ => Err("expected VersionTLS12, VersionTLS13, 1.2 or 1.3".into()),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            MinVersion::Tls12 => "VersionTLS12",
            MinVersion::Tls13 => "VersionTLS13",
        }
    }
}

/// How an IANA cipher suite name fares here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Support {
    /// A TLS 1.3 suite: always on, not configurable (as in Go).
    Tls13,
    /// A TLS 1.2 suite rustls implements.
    Tls12,
    /// In Go's secure list, but rustls has no CBC or RSA-key-exchange suites.
    Missing,
    /// In Go's insecure list: refused, as upstream refuses it.
    Insecure,
}

/// The suites Go's `tls.CipherSuites()` and `tls.InsecureCipherSuites()`
/// name: IANA name, code point, and what rustls makes of it.
pub(super) const SUITES: &[(&str, u16, Support)] = &[
    ("TLS_AES_128_GCM_SHA256", 0x1301, Support::Tls13),
    ("TLS_AES_256_GCM_SHA384", 0x1302, Support::Tls13),
    ("TLS_CHACHA20_POLY1305_SHA256", 0x1303, Support::Tls13),
    (
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        0xc02b,
        Support::Tls12,
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        0xc02c,
        Support::Tls12,
    ),
    (
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        0xc02f,
        Support::Tls12,
    ),
    (
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        0xc030,
        Support::Tls12,
    ),
    (
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        0xcca8,
        Support::Tls12,
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        0xcca9,
        Support::Tls12,
    ),
    ("TLS_RSA_WITH_AES_128_CBC_SHA", 0x002f, Support::Missing),
    ("TLS_RSA_WITH_AES_256_CBC_SHA", 0x0035, Support::Missing),
    ("TLS_RSA_WITH_AES_128_GCM_SHA256", 0x009c, Support::Missing),
    ("TLS_RSA_WITH_AES_256_GCM_SHA384", 0x009d, Support::Missing),
    (
        "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
        0xc009,
        Support::Missing,
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
        0xc00a,
        Support::Missing,
    ),
    (
        "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
        0xc013,
        Support::Missing,
    ),
    (
        "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
        0xc014,
        Support::Missing,
    ),
    ("TLS_RSA_WITH_RC4_128_SHA", 0x0005, Support::Insecure),
    ("TLS_RSA_WITH_3DES_EDE_CBC_SHA", 0x000a, Support::Insecure),
    ("TLS_RSA_WITH_AES_128_CBC_SHA256", 0x003c, Support::Insecure),
    (
        "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA",
        0xc007,
        Support::Insecure,
    ),
    ("TLS_ECDHE_RSA_WITH_RC4_128_SHA", 0xc011, Support::Insecure),
    (
        "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA",
        0xc012,
        Support::Insecure,
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
        0xc023,
        Support::Insecure,
    ),
    (
        "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
        0xc027,
        Support::Insecure,
    ),
];

/// The TLS 1.2 suites that can be named, for error messages.
fn supported_tls12() -> String {
    SUITES
        .iter()
        .filter(|s| s.2 == Support::Tls12)
        .map(|s| s.0)
        .collect::<Vec<_>>()
        .join(",")
}

/// `--tls-cipher-suites`: comma-separated IANA names; the TLS 1.2 code
/// points they select (TLS 1.3 names are accepted and, as in Go, change
/// nothing: TLS 1.3 suites are not configurable).
pub fn parse_cipher_suites(v: &str, min: MinVersion) -> Result<Vec<u16>, String> {
    if min == MinVersion::Tls13 {
        return Err("must not be set with --tls-min-version=VersionTLS13: \
                    TLS 1.3 cipher suites are not configurable"
            .into());
    }
    let mut ids = Vec::new();
    let mut named = 0;
    for name in v.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        named += 1;
        let Some(&(_, id, support)) = SUITES.iter().find(|s| s.0 == name) else {
            return Err(format!(
                "unknown cipher suite {name:?} (IANA names, e.g. TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256)"
            ));
        };
        match support {
            Support::Tls13 => {}
            Support::Tls12 if !ids.contains(&id) => ids.push(id),
            Support::Tls12 => {}
            Support::Missing => {
                return Err(format!(
                    "cipher suite {name} is not implemented by rustls (no CBC or RSA key \
                     exchange suites); TLS 1.2 suites available: {}",
                    supported_tls12()
                ));
            }
            Support::Insecure => {
                return Err(format!("cipher suite {name} is insecure and not allowed"));
            }
        }
    }
    if named == 0 {
        return Err("no cipher suite named".into());
    }
    Ok(ids)
}

/// What the TLS flags ask of every connection.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    pub min_version: MinVersion,
    /// TLS 1.2 suites allowed (code points); `None`: rustls's defaults.
    pub tls12_suites: Option<Vec<u16>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn min_version_spellings() {
        assert_eq!(MinVersion::parse("VersionTLS12"), Ok(MinVersion::Tls12));
        assert_eq!(MinVersion::parse("1.3"), Ok(MinVersion::Tls13));
        assert!(
            MinVersion::parse("VersionTLS11")
                .unwrap_err()
                .contains("1.1")
        );
        assert!(MinVersion::parse("tls13").is_err());
    }

    #[test]
    fn cipher_suites_by_iana_name() {
        let ok = parse_cipher_suites(
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, TLS_AES_128_GCM_SHA256,TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
            MinVersion::Tls12,
        );
        assert_eq!(ok, Ok(vec![0xc02f, 0xcca9]));
        let e = parse_cipher_suites("TLS_RSA_WITH_AES_128_CBC_SHA", MinVersion::Tls12);
        assert!(e.unwrap_err().contains("not implemented by rustls"));
        let e = parse_cipher_suites("TLS_RSA_WITH_RC4_128_SHA", MinVersion::Tls12);
        assert!(e.unwrap_err().contains("insecure"));
        let e = parse_cipher_suites("TLS_FOO", MinVersion::Tls12);
        assert!(e.unwrap_err().contains("unknown"));
        assert!(parse_cipher_suites(" , ", MinVersion::Tls12).is_err());
        let e = parse_cipher_suites("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", MinVersion::Tls13);
        assert!(e.unwrap_err().contains("VersionTLS13"));
    }
}
