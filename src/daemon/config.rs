//! Command line: drop-in for upstream's Go flags.
//!
//! Upstream's DaemonSets pass Go-style flags (`-listen-address=0.0.0.0:8090`);
//! every long flag is accepted as `-name value`, `-name=value`, `--name value`
//! and `--name=value`. Errors are one line for stderr (exit code 2).

use crate::state::tls::policy::{MinVersion, Policy, parse_cipher_suites};
use crate::wire::expo::{Limits, lex, limits::MAX_BODY};
use std::ffi::OsString;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

pub const NAME: &str = "kata-monitor";
/// Sandbox roots are a bit set in the registry (one `u32` per sandbox).
pub const MAX_SANDBOX_DIRS: usize = 32;
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// Set by `build.rs` from git, or by the builder through `KATA_MONITOR_COMMIT`.
pub const COMMIT: &str = match option_env!("KATA_MONITOR_COMMIT") {
    Some(c) => c,
    None => "unknown",
};

/// What `--gzip-level` chose.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gzip {
    Off,
    /// The renderer-led encoder (`wire::deflate`), the default.
    Guided,
    /// miniz_oxide at this level (1-9).
    Level(u8),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub listen: SocketAddr,
    /// Path of the CRI runtime's unix socket.
    pub runtime_endpoint: PathBuf,
    pub log_level: log::LevelFilter,
    pub sandbox_dirs: Vec<PathBuf>,
    pub shim_timeout: Duration,
    pub max_connections: usize,
    /// How gzip responses are compressed (or not at all).
    pub gzip: Gzip,
    /// 0 disables zstd responses.
    pub zstd_level: u8,
    /// Largest shim body accepted (fetch fails above it); also what the
    /// engine indexes at most.
    pub max_shim_body: u64,
    /// Series kept per sandbox body; later ones are dropped and counted.
    pub max_series: u32,
    /// Longest line of a shim body; longer ones are dropped and counted.
    pub max_line: u32,
    /// Most labels on a sample line (injected ones not counted).
    pub max_labels: u8,
    /// `/debug/*` and `/agent-url`: `None` serves them only on a loopback
    /// listener or when client certificates are required.
    pub debug_proxy: Option<bool>,
    /// Longest pprof profile or trace (`seconds=`) a request may ask for.
    pub max_profile: Duration,
    /// Time allowed to send a complete request head once it started.
    pub header_timeout: Duration,
    /// Idle keep-alive connections are closed after this.
    pub idle_timeout: Duration,
    /// Sandboxes never scraped: by CRI runtime handler (globs) and by root.
    pub exclude_runtime_handlers: Vec<String>,
    pub exclude_sandbox_dirs: Vec<PathBuf>,
    /// Roots of runtime-rs sandboxes (no Go debug endpoints); `None`: the
    /// sandbox dirs named `kata` (as upstream's `/run/kata`).
    pub runtime_rs_dirs: Option<Vec<PathBuf>>,
    /// Serve HTTPS (`--tls-cert-file` and `--tls-key-file` given).
    pub tls: Option<TlsFiles>,
}

/// The TLS flags.
#[derive(Clone, Debug, PartialEq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Require client certificates signed by these CAs.
    pub client_ca: Option<PathBuf>,
    pub policy: Policy,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:8090".parse().expect("valid"),
            runtime_endpoint: "/run/containerd/containerd.sock".into(),
            log_level: log::LevelFilter::Info,
            sandbox_dirs: vec!["/run/vc/sbs".into(), "/run/kata".into()],
            shim_timeout: Duration::from_secs(3),
            max_connections: 128,
            gzip: Gzip::Guided,
            zstd_level: if cfg!(feature = "zstd") { 1 } else { 0 },
            max_shim_body: 32 << 20,
            max_series: Limits::DEFAULT.max_series,
            max_line: Limits::DEFAULT.max_line,
            max_labels: Limits::DEFAULT.max_labels,
            debug_proxy: None,
            max_profile: Duration::from_secs(30),
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(120),
            tls: None,
            exclude_runtime_handlers: Vec::new(),
            exclude_sandbox_dirs: Vec::new(),
            runtime_rs_dirs: None,
        }
    }
}

impl Config {
    /// The engine's per-sandbox limits.
    pub fn limits(&self) -> Limits {
        Limits {
            max_series: self.max_series,
            max_line: self.max_line,
            max_labels: self.max_labels,
            // Checked at parse time: at most MAX_BODY, which fits.
            max_body: u32::try_from(self.max_shim_body).unwrap_or(u32::MAX),
        }
    }
}

/// Largest `--max-series-per-sandbox`.
pub const MAX_SERIES: u32 = 10_000_000;

/// What the command line asks for.
#[derive(Debug, PartialEq)]
pub enum Command {
    Run(Box<Config>),
    Version,
    Help,
}

pub const HELP: &str = "\
Usage: kata-monitor [FLAGS]
       kata-monitor version

Prometheus exporter for Kata Containers sandboxes. Flags may be written
-name value, -name=value, --name value or --name=value.

  --listen-address ADDR      address to serve HTTP on [default: 127.0.0.1:8090]
  --runtime-endpoint EP      CRI runtime socket, unix:///path or /path
                             [default: /run/containerd/containerd.sock]
  --log-level LEVEL          trace, debug, info, warn, error (fatal, panic: error)
                             [default: info]
  --sandbox-dirs D1,D2       sandbox roots, first wins for an id in both
                             [default: /run/vc/sbs,/run/kata]
  --shim-timeout DUR         per-shim deadline, e.g. 3s, 500ms [default: 3s]
  --max-connections N        concurrent HTTP connections; more get 503 [default: 128]
  --gzip-level auto|N        gzip: `auto` is the monitor's own deflate, led by
                             the renderer (about level 6's size for less CPU than
                             level 1); 1-9 is a general compressor at that level;
                             0 disables gzip [default: auto]
  --zstd-level N             zstd level 1-19, 0 disables zstd [default: 1]
  --max-shim-body SIZE       largest shim response body, e.g. 32MiB, at most 128MiB
                             (what the engine indexes); a larger body fails its
                             sandbox [default: 32MiB]
  --max-series-per-sandbox N series kept per sandbox, 1 to 10000000; the rest
                             is dropped and counted (too_many_series) [default: 100000]
  --max-line-length SIZE     longest shim metrics line, 1KiB to 64KiB; longer
                             lines are dropped (line_too_long) [default: 16KiB]
  --max-labels-per-series N  labels on a shim sample line, 1 to 32; lines with
                             more are dropped (too_many_labels) [default: 32]
  --enable-debug-proxy BOOL  serve /debug/* and /agent-url (shim pprof, command
                             lines, agent URLs) [default: only on a loopback
                             listener or with --tls-client-ca-file; else 403]
  --max-profile-duration DUR longest pprof profile or trace a request may ask
                             for (seconds=); one per sandbox at a time [default: 30s]
  --http-header-timeout DUR  time a client has to send a request head [default: 10s]
  --http-idle-timeout DUR    idle keep-alive connections are closed [default: 2m]
  --tls-cert-file FILE       serve HTTPS with this PEM certificate (chain); needs
                             --tls-key-file; reloaded when the files change
  --tls-key-file FILE        its PEM private key (PKCS#8, PKCS#1 or SEC1)
  --tls-client-ca-file FILE  require client certificates signed by these PEM CAs
  --tls-min-version V        VersionTLS12 or VersionTLS13 (1.2, 1.3) [default: VersionTLS12]
  --tls-cipher-suites LIST   TLS 1.2 cipher suites, comma-separated IANA names
                             [default: rustls's ECDHE AES-GCM and ChaCha20 suites]
  --exclude-runtime-handler PATTERN
                             never scrape sandboxes whose CRI runtime handler
                             matches PATTERN (glob: * and ?; repeatable), e.g.
                             kata-qemu-runtime-rs, kata-fc-rs
  --exclude-sandbox-dir DIR  never scrape the sandboxes under DIR, one of
                             --sandbox-dirs (repeatable; for nodes without CRI)
  --runtime-rs-sandbox-dirs D1,D2
                             sandbox dirs of runtime-rs (no /debug/vars or
                             /debug/pprof there) [default: those named kata]
  --version                  print version and exit
  --help                     print this help and exit
";

/// The optional parts built in (cargo features), as `version` and
/// `kata_monitor_build_info{features=...}` report them.
pub const FEATURES: &str = match (cfg!(feature = "tls"), cfg!(feature = "zstd")) {
    (true, true) => "tls,zstd",
    (true, false) => "tls",
    (false, true) => "zstd",
    (false, false) => "",
};

pub fn version_text() -> String {
    format!(
        "{NAME}\n Version:\t{VERSION}\n Git commit:\t{COMMIT}\n OS/Arch:\t{}/{}\n Features:\t{FEATURES}\n",
        std::env::consts::OS,
        go_arch(),
    )
}

/// Architecture names as Go (and Kata's tooling) spell them.
fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// Go's single-dash long flags become double-dash ones for lexopt.
fn normalize(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    args.into_iter()
        .map(|a| match a.to_str() {
            Some(s) if s.len() > 2 && s.starts_with('-') && !s.starts_with("--") => {
                OsString::from(format!("-{s}"))
            }
            _ => a,
        })
        .collect()
}

/// Parse the arguments after the program name.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Command, String> {
    use lexopt::prelude::*;
    let args = normalize(args);
    if args.len() == 1 && args[0] == "version" {
        return Ok(Command::Version);
    }
    let mut cfg = Config::default();
    let mut tls = TlsArgs::default();
    let mut p = lexopt::Parser::from_args(args);
    while let Some(arg) = p.next().map_err(|e| e.to_string())? {
        let flag: String = match &arg {
            Long(f) => f.to_string(),
            Short('h') => "help".into(),
            Short(c) => return Err(format!("unknown flag -{c}")),
            Value(v) => return Err(format!("unexpected argument {:?}", v.to_string_lossy())),
        };
        match flag.as_str() {
            "help" => return Ok(Command::Help),
            "version" => return Ok(Command::Version),
            "enable-debug-proxy" => cfg.debug_proxy = Some(bool_value(&mut p, &flag)?),
            _ => {
                let mut value = || -> Result<String, String> {
                    p.value()
                        .map_err(|_| format!("flag --{flag} needs a value"))?
                        .into_string()
                        .map_err(|v| format!("invalid value for --{flag}: {v:?}"))
                };
                let known = node_flag(&mut cfg, &flag, &mut value)?
                    || limit_flag(&mut cfg, &flag, &mut value)?
                    || server_flag(&mut cfg, &mut tls, &flag, &mut value)?;
                if !known {
                    return Err(format!("unknown flag --{flag} (see --help)"));
                }
            }
        }
    }
    cfg.tls = tls.check()?;
    cfg.rules()?;
    Ok(Command::Run(Box::new(cfg)))
}

/// A Go bool flag: `-flag` alone means true, `-flag=false`. The monitor
/// takes no positional arguments, so a following bare `true`/`false` is
/// unambiguous and is taken as the value too.
fn bool_value(p: &mut lexopt::Parser, flag: &str) -> Result<bool, String> {
    let bad = |v: &str| invalid(flag, v, "true or false");
    let v = match p.optional_value() {
        Some(v) => v.into_string().map_err(|_| bad("?"))?,
        None => {
            let mut raw = p.raw_args().map_err(|e| e.to_string())?;
            let next = raw.peek().and_then(|n| n.to_str()).and_then(parse_bool);
            match next {
                Some(b) => {
                    raw.next();
                    b.to_string()
                }
                None => "true".into(),
            }
        }
    };
    parse_bool(&v).ok_or_else(|| bad(&v))
}

/// Where to listen, the CRI, the sandbox roots and which sandboxes to leave out:
/// applies `flag` if it is one of them (`Ok(false)` if not), reading its
/// value through `value` only then.
fn node_flag(
    cfg: &mut Config,
    flag: &str,
    value: &mut dyn FnMut() -> Result<String, String>,
) -> Result<bool, String> {
    let bad = |v: &str, what: &str| invalid(flag, v, what);
    match flag {
        "listen-address" => {
            let v = value()?;
            cfg.listen = parse_listen(&v).ok_or_else(|| bad(&v, "expected HOST:PORT"))?;
        }
        "runtime-endpoint" => {
            let v = value()?;
            cfg.runtime_endpoint = parse_endpoint(&v).map_err(|e| bad(&v, &e))?;
        }
        "log-level" => {
            let v = value()?;
            cfg.log_level = parse_level(&v)
                .ok_or_else(|| bad(&v, "trace, debug, info, warn, error, fatal, panic"))?;
        }
        "sandbox-dirs" => {
            let v = value()?;
            let dirs = absolute_dirs(&v)
                .filter(|d| !d.is_empty())
                .ok_or_else(|| bad(&v, "comma-separated absolute paths"))?;
            if dirs.len() > MAX_SANDBOX_DIRS {
                return Err(bad(&v, "at most 32 directories"));
            }
            cfg.sandbox_dirs = dirs;
        }
        "exclude-runtime-handler" => {
            let v = value()?;
            for pat in v.split(',').map(str::trim) {
                if pat.is_empty() || pat.chars().any(|c| c.is_whitespace() || c.is_control()) {
                    return Err(bad(&v, "a runtime handler name or glob, e.g. kata-*-rs"));
                }
                cfg.exclude_runtime_handlers.push(pat.to_string());
            }
        }
        "exclude-sandbox-dir" => {
            let v = value()?;
            if !v.starts_with('/') {
                return Err(bad(&v, "an absolute path, one of --sandbox-dirs"));
            }
            cfg.exclude_sandbox_dirs.push(PathBuf::from(v));
        }
        "runtime-rs-sandbox-dirs" => {
            let v = value()?;
            let dirs =
                absolute_dirs(&v).ok_or_else(|| bad(&v, "comma-separated absolute paths"))?;
            cfg.runtime_rs_dirs = Some(dirs);
        }
        _ => return Ok(false),
    }
    Ok(true)
}

/// Per-shim deadline, compression and per-sandbox limits:
/// applies `flag` if it is one of them (`Ok(false)` if not), reading its
/// value through `value` only then.
fn limit_flag(
    cfg: &mut Config,
    flag: &str,
    value: &mut dyn FnMut() -> Result<String, String>,
) -> Result<bool, String> {
    let bad = |v: &str, what: &str| invalid(flag, v, what);
    match flag {
        "shim-timeout" => {
            let v = value()?;
            cfg.shim_timeout = parse_duration(&v)
                .filter(|d| !d.is_zero() && *d <= Duration::from_secs(3600))
                .ok_or_else(|| bad(&v, "a duration like 3s or 500ms, up to 1h"))?;
        }
        "max-connections" => {
            let v = value()?;
            cfg.max_connections = number(&v, 1..=65536).ok_or_else(|| bad(&v, "1 to 65536"))?;
        }
        "gzip-level" => {
            let v = value()?;
            cfg.gzip = match v.as_str() {
                "auto" => Gzip::Guided,
                _ => match number(&v, 0..=9).ok_or_else(|| bad(&v, "auto or 0 to 9"))? {
                    0 => Gzip::Off,
                    n => Gzip::Level(n),
                },
            };
        }
        "zstd-level" => {
            let v = value()?;
            cfg.zstd_level = number(&v, 0..=19).ok_or_else(|| bad(&v, "0 to 19"))?;
            if cfg.zstd_level > 0 && !cfg!(feature = "zstd") {
                return Err(format!(
                    "--zstd-level {v}: this build has no zstd (cargo feature `zstd`); 0 or leave it out"
                ));
            }
        }
        "max-shim-body" => {
            let v = value()?;
            cfg.max_shim_body = parse_size(&v)
                .filter(|n| (1024..=MAX_BODY as u64).contains(n))
                .ok_or_else(|| {
                    bad(
                        &v,
                        "a size like 32MiB, 1KiB to 128MiB (what the engine indexes)",
                    )
                })?;
        }
        "max-series-per-sandbox" => {
            let v = value()?;
            cfg.max_series = number(&v, 1..=MAX_SERIES).ok_or_else(|| bad(&v, "1 to 10000000"))?;
        }
        "max-line-length" => {
            let v = value()?;
            cfg.max_line = parse_size(&v)
                .filter(|n| (1024..=lex::MAX_LINE as u64).contains(n))
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| bad(&v, "a size like 16KiB, 1KiB to 64KiB"))?;
        }
        "max-labels-per-series" => {
            let v = value()?;
            cfg.max_labels =
                number(&v, 1..=lex::MAX_LABELS as u8).ok_or_else(|| bad(&v, "1 to 32"))?;
        }
        _ => return Ok(false),
    }
    Ok(true)
}

/// HTTP timeouts, the debug proxy's profile cap and TLS:
/// applies `flag` if it is one of them (`Ok(false)` if not), reading its
/// value through `value` only then.
fn server_flag(
    cfg: &mut Config,
    tls: &mut TlsArgs,
    flag: &str,
    value: &mut dyn FnMut() -> Result<String, String>,
) -> Result<bool, String> {
    let bad = |v: &str, what: &str| invalid(flag, v, what);
    match flag {
        "http-header-timeout" | "http-idle-timeout" => {
            let v = value()?;
            let d = parse_duration(&v)
                .filter(|d| !d.is_zero() && *d <= Duration::from_secs(86400))
                .ok_or_else(|| bad(&v, "a duration like 10s, up to 24h"))?;
            if flag == "http-header-timeout" {
                cfg.header_timeout = d;
            } else {
                cfg.idle_timeout = d;
            }
        }
        "max-profile-duration" => {
            let v = value()?;
            cfg.max_profile = parse_duration(&v)
                .filter(|d| *d >= Duration::from_secs(1) && *d <= Duration::from_secs(3600))
                .ok_or_else(|| bad(&v, "a duration like 30s, 1s to 1h"))?;
        }
        "tls-cert-file" => tls.cert = non_empty(value()?),
        "tls-key-file" => tls.key = non_empty(value()?),
        "tls-client-ca-file" => tls.client_ca = non_empty(value()?),
        "tls-min-version" => tls.min_version = non_empty(value()?),
        "tls-cipher-suites" => tls.cipher_suites = non_empty(value()?),
        _ => return Ok(false),
    }
    Ok(true)
}

impl Config {
    /// The exclusion rules over the sandbox dirs, or why the flags do not
    /// make sense together.
    pub fn rules(&self) -> Result<crate::state::exclusion::Rules, String> {
        let index = |d: &PathBuf, flag: &str| {
            self.sandbox_dirs
                .iter()
                .position(|s| s == d)
                .ok_or_else(|| format!("--{flag} {}: not one of --sandbox-dirs", d.display()))
        };
        let mut rules = crate::state::exclusion::Rules {
            handlers: self.exclude_runtime_handlers.clone(),
            ..Default::default()
        };
        for d in &self.exclude_sandbox_dirs {
            rules.roots |= 1 << index(d, "exclude-sandbox-dir")?;
        }
        match &self.runtime_rs_dirs {
            Some(dirs) => {
                for d in dirs {
                    rules.runtime_rs |= 1 << index(d, "runtime-rs-sandbox-dirs")?;
                }
            }
            None => {
                for (i, d) in self.sandbox_dirs.iter().enumerate() {
                    if d.file_name().is_some_and(|n| n == "kata") {
                        rules.runtime_rs |= 1 << i;
                    }
                }
            }
        }
        Ok(rules)
    }
}

/// An empty value means unset, as with Go's string flags.
fn non_empty(v: String) -> Option<String> {
    (!v.is_empty()).then_some(v)
}

/// The TLS flags as given, checked together once all are read.
#[derive(Default)]
struct TlsArgs {
    cert: Option<String>,
    key: Option<String>,
    client_ca: Option<String>,
    min_version: Option<String>,
    cipher_suites: Option<String>,
}

impl TlsArgs {
    fn check(self) -> Result<Option<TlsFiles>, String> {
        let (cert, key) = match (self.cert, self.key) {
            (Some(c), Some(k)) => (c, k),
            (None, None) => {
                // TLS settings without TLS would leave plain HTTP running
                // while the operator believes otherwise.
                let stray = [
                    ("tls-client-ca-file", &self.client_ca),
                    ("tls-min-version", &self.min_version),
                    ("tls-cipher-suites", &self.cipher_suites),
                ]
                .into_iter()
                .find(|(_, v)| v.is_some());
                return match stray {
                    Some((flag, _)) => Err(format!(
                        "--{flag} needs --tls-cert-file and --tls-key-file (TLS is off without them)"
                    )),
                    None => Ok(None),
                };
            }
            _ => return Err("--tls-cert-file and --tls-key-file must be set together".into()),
        };
        let min_version = match &self.min_version {
            Some(v) => MinVersion::parse(v)
                .map_err(|e| format!("invalid value for --tls-min-version: {v:?} ({e})"))?,
            None => MinVersion::default(),
        };
        let tls12_suites = match &self.cipher_suites {
            Some(v) => Some(
                parse_cipher_suites(v, min_version)
                    .map_err(|e| format!("invalid value for --tls-cipher-suites: {e}"))?,
            ),
            None => None,
        };
        if cfg!(not(feature = "tls")) {
            return Err(
                "--tls-cert-file: this kata-monitor was built without TLS (cargo feature \"tls\")"
                    .into(),
            );
        }
        Ok(Some(TlsFiles {
            cert: cert.into(),
            key: key.into(),
            client_ca: self.client_ca.map(PathBuf::from),
            policy: Policy {
                min_version,
                tls12_suites,
            },
        }))
    }
}

fn parse_listen(v: &str) -> Option<SocketAddr> {
    // Go's ":8090" listens on every interface.
    let v = if v.starts_with(':') {
        format!("0.0.0.0{v}")
    } else {
        v.to_string()
    };
    v.to_socket_addrs().ok()?.next()
}

/// `unix:///path`, `unix:/path` or `/path`; anything else is refused.
pub fn parse_endpoint(v: &str) -> Result<PathBuf, String> {
    let path = if let Some(rest) = v.strip_prefix("unix://") {
        rest
    } else if let Some(rest) = v.strip_prefix("unix:") {
        rest
    } else if v.contains("://") {
        return Err("only unix sockets are supported (unix:///path or /path)".into());
    } else {
        v
    };
    if !path.starts_with('/') {
        return Err("expected an absolute socket path".into());
    }
    Ok(PathBuf::from(path))
}

pub fn parse_level(v: &str) -> Option<log::LevelFilter> {
    use log::LevelFilter::*;
    Some(match v.to_ascii_lowercase().as_str() {
        "trace" => Trace,
        "debug" => Debug,
        "info" => Info,
        "warn" | "warning" => Warn,
        "error" | "fatal" | "panic" => Error,
        _ => return None,
    })
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "t" | "true" | "yes" | "on" => Some(true),
        "0" | "f" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// Go-style durations (`3s`, `500ms`, `1m30s`, `1.5s`); a bare number is seconds.
pub fn parse_duration(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<f64>() {
        return (secs.is_finite() && (0.0..1e9).contains(&secs))
            .then(|| Duration::from_secs_f64(secs));
    }
    let mut total = 0f64;
    let mut rest = v;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let n: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += n * scale;
    }
    (total.is_finite() && total < 1e9).then(|| Duration::from_secs_f64(total))
}

/// The one-line error for a flag's value.
fn invalid(flag: &str, v: &str, what: &str) -> String {
    format!("invalid value for --{flag}: {v:?} ({what})")
}

/// `/a, /b,` as absolute paths (empty items ignored), or `None` when one
/// is relative.
fn absolute_dirs(v: &str) -> Option<Vec<PathBuf>> {
    let dirs: Vec<PathBuf> = v
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .collect();
    dirs.iter().all(|d| d.is_absolute()).then_some(dirs)
}

/// A decimal number within `range`.
fn number<T: std::str::FromStr + PartialOrd>(
    v: &str,
    range: std::ops::RangeInclusive<T>,
) -> Option<T> {
    v.parse().ok().filter(|n| range.contains(n))
}

/// `32MiB`, `32M`, `1048576`, `64KiB`, `1GiB` (binary units).
pub fn parse_size(v: &str) -> Option<u64> {
    let v = v.trim();
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let n: u64 = v[..split].parse().ok()?;
    let mul = match v[split..].trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(mul)
}

#[cfg(test)]
mod tests;
