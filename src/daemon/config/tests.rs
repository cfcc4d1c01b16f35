//! Flag parsing: Go and GNU spellings, values, and the one-line errors.

use super::*;

fn run(args: &[&str]) -> Result<Config, String> {
    match parse(args.iter().map(OsString::from))? {
        Command::Run(c) => Ok(*c),
        other => Err(format!("{other:?}")),
    }
}

#[test]
fn defaults() {
    assert_eq!(run(&[]).unwrap(), Config::default());
}

#[test]
fn go_style_and_gnu_style_flags() {
    for args in [
        &["-listen-address=0.0.0.0:9000", "-shim-timeout", "5s"][..],
        &["--listen-address", "0.0.0.0:9000", "--shim-timeout=5s"][..],
        &["-listen-address", "0.0.0.0:9000", "-shim-timeout=5000ms"][..],
    ] {
        let c = run(args).unwrap();
        assert_eq!(c.listen, "0.0.0.0:9000".parse().unwrap());
        assert_eq!(c.shim_timeout, Duration::from_secs(5));
    }
    let c = run(&[
        "-runtime-endpoint=unix:///run/crio/crio.sock",
        "-log-level=fatal",
        "-sandbox-dirs=/a,/b",
        "-max-connections=4",
        "-enable-debug-proxy=false",
        "-gzip-level=0",
        "-zstd-level=0",
        "-max-shim-body=1MiB",
        "-max-series-per-sandbox=5000",
        "-max-line-length=4KiB",
        "-max-labels-per-series=8",
    ])
    .unwrap();
    assert_eq!(c.runtime_endpoint, PathBuf::from("/run/crio/crio.sock"));
    assert_eq!(c.log_level, log::LevelFilter::Error);
    assert_eq!(
        c.sandbox_dirs,
        vec![PathBuf::from("/a"), PathBuf::from("/b")]
    );
    assert_eq!(c.max_connections, 4);
    assert_eq!(c.debug_proxy, Some(false));
    assert_eq!(c.gzip, Gzip::Off);
    assert_eq!(c.zstd_level, 0);
    assert_eq!(c.max_shim_body, 1 << 20);
    assert_eq!(
        c.limits(),
        Limits {
            max_series: 5000,
            max_line: 4096,
            max_labels: 8,
            max_body: 1 << 20,
        }
    );
    assert_eq!(Config::default().limits().max_body, 32 << 20);
    assert_eq!(
        run(&["--max-shim-body", "128MiB", "--max-line-length", "64KiB"])
            .unwrap()
            .limits(),
        Limits {
            max_body: 128 << 20,
            max_line: 64 << 10,
            ..Limits::DEFAULT
        }
    );
    assert_eq!(
        run(&["-enable-debug-proxy"]).unwrap().debug_proxy,
        Some(true)
    );
    assert_eq!(
        run(&["--enable-debug-proxy", "false"]).unwrap().debug_proxy,
        Some(false)
    );
    let c = run(&["-enable-debug-proxy", "-shim-timeout", "5s"]).unwrap();
    assert_eq!(c.debug_proxy, Some(true));
    assert_eq!(c.shim_timeout, Duration::from_secs(5));
    assert_eq!(
        run(&[":8091"]).unwrap_err(),
        "unexpected argument \":8091\""
    );
    assert_eq!(
        run(&["-listen-address", ":8091"]).unwrap().listen,
        "0.0.0.0:8091".parse().unwrap()
    );
}

#[test]
#[cfg(feature = "tls")]
fn tls_flags_as_upstream_spells_them() {
    assert_eq!(run(&[]).unwrap().tls, None);
    assert_eq!(
        run(&["-tls-cert-file=", "-tls-key-file="]).unwrap().tls,
        None,
        "empty means unset, as for Go's string flags"
    );
    let c = run(&[
        "-tls-cert-file=/etc/kata-monitor/certs/cert.pem",
        "-tls-key-file=/etc/kata-monitor/certs/key.pem",
        "-tls-min-version=VersionTLS12",
        "-tls-cipher-suites=TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        "--tls-client-ca-file",
        "/ca.pem",
        "--max-profile-duration=10s",
    ])
    .unwrap();
    assert_eq!(c.max_profile, Duration::from_secs(10));
    let t = c.tls.unwrap();
    assert_eq!(t.cert, PathBuf::from("/etc/kata-monitor/certs/cert.pem"));
    assert_eq!(t.client_ca, Some(PathBuf::from("/ca.pem")));
    assert_eq!(t.policy.min_version, MinVersion::Tls12);
    assert_eq!(t.policy.tls12_suites, Some(vec![0xc02f, 0xc030]));
    let t = run(&[
        "--tls-cert-file=/c",
        "--tls-key-file=/k",
        "--tls-min-version",
        "1.3",
    ])
    .unwrap()
    .tls
    .unwrap();
    assert_eq!(t.policy.min_version, MinVersion::Tls13);
    assert_eq!(t.policy.tls12_suites, None);
}

#[test]
#[cfg(not(feature = "tls"))]
fn tls_flags_refused_without_tls() {
    let e = run(&["-tls-cert-file=/c", "-tls-key-file=/k"]).unwrap_err();
    assert!(e.contains("built without TLS"), "{e}");
}

#[test]
fn version_and_help() {
    let p = |a: &[&str]| parse(a.iter().map(OsString::from)).unwrap();
    assert_eq!(p(&["version"]), Command::Version);
    assert_eq!(p(&["--version"]), Command::Version);
    assert_eq!(p(&["-version"]), Command::Version);
    assert_eq!(p(&["--help"]), Command::Help);
    assert_eq!(p(&["-h"]), Command::Help);
    assert!(version_text().contains(VERSION));
}

#[test]
fn errors_are_one_clear_line() {
    let many: String = (0..33)
        .map(|i| format!("/r{i}"))
        .collect::<Vec<_>>()
        .join(",");
    for (args, needle) in [
        (&["--nope"][..], "unknown flag --nope"),
        (&["--shim-timeout", "abc"][..], "--shim-timeout"),
        (&["--shim-timeout", "0s"][..], "--shim-timeout"),
        (&["--log-level", "loud"][..], "--log-level"),
        (
            &["--runtime-endpoint", "tcp://1.2.3.4:1"][..],
            "only unix sockets",
        ),
        (&["--runtime-endpoint", "relative.sock"][..], "absolute"),
        (&["--listen-address", "nope"][..], "HOST:PORT"),
        (&["--max-connections", "0"][..], "--max-connections"),
        (&["--sandbox-dirs", "rel"][..], "absolute"),
        (&["--sandbox-dirs", &many][..], "at most 32"),
        (&["--listen-address"][..], "needs a value"),
        (&["--max-profile-duration", "2h"][..], "1s to 1h"),
        (&["--tls-cert-file", "/c"][..], "must be set together"),
        (&["--tls-key-file", "/k"][..], "must be set together"),
        (
            &["--tls-client-ca-file", "/ca"][..],
            "needs --tls-cert-file",
        ),
        (
            &["--tls-min-version=VersionTLS13"][..],
            "needs --tls-cert-file",
        ),
        (
            &[
                "-tls-cert-file=/c",
                "-tls-key-file=/k",
                "-tls-min-version=VersionTLS11",
            ][..],
            "not supported",
        ),
        (
            &[
                "-tls-cert-file=/c",
                "-tls-key-file=/k",
                "-tls-cipher-suites=TLS_RSA_WITH_AES_128_CBC_SHA",
            ][..],
            "not implemented by rustls",
        ),
        (
            &[
                "-tls-cert-file=/c",
                "-tls-key-file=/k",
                "-tls-min-version=VersionTLS13",
                "-tls-cipher-suites=TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
            ][..],
            "VersionTLS13",
        ),
        // What the engine cannot index is refused, not cut.
        (&["--max-shim-body", "129MiB"][..], "128MiB"),
        (&["--max-shim-body", "1GiB"][..], "what the engine indexes"),
        (&["--max-shim-body", "100"][..], "--max-shim-body"),
        (&["--max-series-per-sandbox", "0"][..], "1 to 10000000"),
        (&["--max-series-per-sandbox", "-5"][..], "1 to 10000000"),
        (
            &["--max-series-per-sandbox", "20000000"][..],
            "1 to 10000000",
        ),
        (&["--max-line-length", "65537"][..], "1KiB to 64KiB"),
        (&["--max-line-length", "100"][..], "1KiB to 64KiB"),
        (&["--max-line-length", "1TB"][..], "--max-line-length"),
        (&["--max-labels-per-series", "0"][..], "1 to 32"),
        (&["--max-labels-per-series", "33"][..], "1 to 32"),
        (&["--max-labels-per-series", "x"][..], "1 to 32"),
    ] {
        let e = run(args).unwrap_err();
        assert!(e.contains(needle), "{args:?}: {e}");
        assert!(!e.contains('\n'));
    }
}

#[test]
fn exclusions() {
    let c = run(&[
        "-sandbox-dirs=/run/vc/sbs,/run/kata",
        "-exclude-runtime-handler=kata-qemu-runtime-rs",
        "--exclude-runtime-handler",
        "kata-fc-rs,kata-*-x",
        "--exclude-sandbox-dir=/run/kata",
    ])
    .unwrap();
    assert_eq!(
        c.exclude_runtime_handlers,
        ["kata-qemu-runtime-rs", "kata-fc-rs", "kata-*-x"]
    );
    let r = c.rules().unwrap();
    assert_eq!(
        (r.roots, r.runtime_rs),
        (0b10, 0b10),
        "/run/kata is runtime-rs by default"
    );
    let c = run(&["-sandbox-dirs=/a,/b", "-runtime-rs-sandbox-dirs=/a"]).unwrap();
    assert_eq!(c.rules().unwrap().runtime_rs, 0b01);
    for (args, needle) in [
        (
            &["--exclude-sandbox-dir", "/elsewhere"][..],
            "not one of --sandbox-dirs",
        ),
        (&["--exclude-sandbox-dir", "rel"][..], "absolute"),
        (&["--exclude-runtime-handler", ""][..], "glob"),
        (&["--exclude-runtime-handler", "a b"][..], "glob"),
        (
            &["--runtime-rs-sandbox-dirs", "/x"][..],
            "not one of --sandbox-dirs",
        ),
    ] {
        let e = run(args).unwrap_err();
        assert!(e.contains(needle), "{args:?}: {e}");
    }
}

#[test]
fn durations_and_sizes() {
    assert_eq!(parse_duration("3s"), Some(Duration::from_secs(3)));
    assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
    assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
    assert_eq!(parse_duration("2"), Some(Duration::from_secs(2)));
    assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
    assert_eq!(parse_duration("3x"), None);
    assert_eq!(parse_duration("1e300"), None);
    assert_eq!(parse_duration("-1"), None);
    assert_eq!(parse_duration("1e300s"), None);
    assert_eq!(parse_duration(""), None);
    assert_eq!(parse_size("32MiB"), Some(32 << 20));
    assert_eq!(parse_size("64k"), Some(64 << 10));
    assert_eq!(parse_size("100"), Some(100));
    assert_eq!(parse_size("1TB"), None);
}
