//! Fake bodies of the shim's Go debug endpoints (`expvar` and `net/http/pprof`).
//!
//! Shapes follow Go's handlers closely enough for a proxy to be tested (link
//! rewriting in the pprof index, binary downloads, streamed traces); contents
//! are deterministic filler.  Binary profiles are real gzip files (stored
//! deflate blocks) around pseudo-random bytes, like Go's gzipped protobufs.

use std::fmt::Write;
use std::sync::OnceLock;

use crate::faults::Rng;

/// Bytes per streamed trace chunk.
pub const TRACE_CHUNK: usize = 32 * 1024;

/// Named profiles served by `/debug/pprof/<name>`.
pub const PROFILES: [&str; 6] = [
    "allocs",
    "block",
    "goroutine",
    "heap",
    "mutex",
    "threadcreate",
];

/// The fake argv of a shim.
pub fn argv(id: &str) -> [String; 9] {
    [
        "/usr/bin/containerd-shim-kata-v2",
        "-namespace",
        "k8s.io",
        "-address",
        "/run/containerd/containerd.sock",
        "-publish-binary",
        "/usr/bin/containerd",
        "-id",
        id,
    ]
    .map(String::from)
}

/// `/debug/pprof/cmdline`: argv joined by NUL, like Go.
pub fn cmdline(id: &str) -> Vec<u8> {
    argv(id).join("\0").into_bytes()
}

/// `/debug/vars`: an expvar-shaped JSON object.
pub fn expvar(id: &str, scrapes: u64) -> Vec<u8> {
    let args: Vec<String> = argv(id).iter().map(|a| format!("\"{a}\"")).collect();
    let alloc = 9_100_517 + scrapes * 4096;
    format!(
        "{{\n\"cmdline\": [{}],\n\"memstats\": {{\"Alloc\":{alloc},\"TotalAlloc\":{},\
\"Sys\":25908240,\"Lookups\":0,\"Mallocs\":{},\"Frees\":{},\"HeapAlloc\":{alloc},\
\"HeapSys\":15925248,\"HeapIdle\":4358144,\"HeapInuse\":11567104,\"HeapReleased\":3506176,\
\"HeapObjects\":41235,\"StackInuse\":917504,\"NumGC\":{},\"PauseTotalNs\":355780,\
\"EnableGC\":true,\"DebugGC\":false}}\n}}\n",
        args.join(", "),
        alloc * 3,
        120_000 + scrapes * 50,
        80_000 + scrapes * 45,
        4 + scrapes / 10,
    )
    .into_bytes()
}

/// `/debug/pprof/`: Go's index page, with its mix of quote styles.
pub fn index() -> &'static [u8] {
    static INDEX: OnceLock<Vec<u8>> = OnceLock::new();
    INDEX.get_or_init(|| {
        let mut s = String::from(
            "<html>\n<head>\n<title>/debug/pprof/</title>\n<style>\n.profile-name{\n\
\tdisplay:inline-block;\n\twidth:6rem;\n}\n</style>\n</head>\n<body>\n/debug/pprof/\n\
<br>\n<p>Set debug=1 as a query parameter to export in legacy text format</p>\n<br>\n\
Types of profiles available:\n<table>\n<thead><td>Count</td><td>Profile</td></thead>\n",
        );
        let rows: [(u32, &str, &str); 10] = [
            (2, "allocs", "'allocs?debug=1'"),
            (0, "block", "'block?debug=1'"),
            (0, "cmdline", "'cmdline'"),
            (35, "goroutine", "'goroutine?debug=1'"),
            (2, "heap", "\"heap?debug=1\""),
            (0, "mutex", "'mutex?debug=1'"),
            (0, "profile", "'profile?seconds=30'"),
            (0, "symbol", "\"symbol\""),
            (12, "threadcreate", "'threadcreate?debug=1'"),
            (0, "trace", "'trace?seconds=5'"),
        ];
        for (count, name, href) in rows {
            let _ = writeln!(s, "<tr><td>{count}</td><td><a href={href}>{name}</a></td></tr>");
        }
        s.push_str(
            "</table>\n<a href='goroutine?debug=2'>full goroutine stack dump</a>\n<br>\n<p>\n\
Profile Descriptions:\n<ul>\n\
<li><div class=profile-name>allocs: </div> A sampling of all past memory allocations</li>\n\
<li><div class=profile-name>block: </div> Stack traces that led to blocking on synchronization primitives</li>\n\
<li><div class=profile-name>goroutine: </div> Stack traces of all current goroutines. Use debug=2 as a query parameter to export in the same format as an unrecovered panic.</li>\n\
<li><div class=profile-name>heap: </div> A sampling of memory allocations of live objects. You can specify the gc GET parameter to run GC before taking the heap sample.</li>\n\
<li><div class=profile-name>mutex: </div> Stack traces of holders of contended mutexes</li>\n\
<li><div class=profile-name>profile: </div> CPU profile. You can specify the duration in the seconds GET parameter. After you get the profile file, use the go tool pprof command to investigate the profile.</li>\n\
<li><div class=profile-name>threadcreate: </div> Stack traces that led to the creation of new OS threads</li>\n\
<li><div class=profile-name>trace: </div> A trace of execution of the current program. You can specify the duration in the seconds GET parameter. After you get the trace file, use the go tool trace command to investigate the trace.</li>\n\
</ul>\n</p>\n</body>\n</html>\n",
        );
        s.into_bytes()
    })
}

/// Legacy text form (`?debug=N`, N != 0) of a named profile.
pub fn profile_text(name: &str, debug: i64) -> Vec<u8> {
    const STACK: &str = "#\t0x6f1ab4\tgithub.com/containerd/ttrpc.(*Server).Serve+0x174\t\
/go/pkg/mod/github.com/containerd/ttrpc@v1.2.7/server.go:92\n\
#\t0x46c740\truntime.goexit+0x0\t/usr/local/go/src/runtime/asm_amd64.s:1700\n";
    let s = match (name, debug) {
        ("goroutine", d) if d >= 2 => "goroutine 1 [running]:\nmain.main()\n\
\t/go/src/github.com/kata-containers/kata-containers/src/runtime/cmd/containerd-shim-kata-v2/main.go:30 +0x1d\n\n\
goroutine 7 [select]:\ngithub.com/containerd/ttrpc.(*Server).Serve(0xc0001a2000)\n\
\t/go/pkg/mod/github.com/containerd/ttrpc@v1.2.7/server.go:92 +0x174\n\
created by main.main in goroutine 1\n\t/go/src/main.go:28 +0x9a\n"
            .to_string(),
        ("goroutine", _) => format!(
            "goroutine profile: total 35\n12 @ 0x43a2d6 0x4082cc 0x6f1ab5 0x46c741\n{STACK}\n"
        ),
        ("threadcreate", _) => format!("threadcreate profile: total 12\n11 @\n#\t0x0\n\n1 @ 0x46c741\n{STACK}\n"),
        ("block" | "mutex", _) => "--- contention:\ncycles/second=2400000000\n".to_string(),
        _ => format!(
            "heap profile: 3: 1234 [120: 56789] @ heap/524288\n1: 1024 [10: 10240] @ 0x6f1ab5 0x46c741\n\
{STACK}\n\n# runtime.MemStats\n# Alloc = 9100517\n# TotalAlloc = 27301551\n# Sys = 25908240\n\
# NumGC = 4\n"
        ),
    };
    s.into_bytes()
}

/// Binary form of a named profile: a small gzip file.
pub fn profile_binary(name: &str) -> Vec<u8> {
    let seed = name
        .bytes()
        .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    let mut raw = Vec::new();
    Rng(seed).fill(&mut raw, 700);
    gzip_stored(&raw)
}

/// The CPU profile (`/debug/pprof/profile`): about 64 KB of gzip.
pub fn cpu_profile() -> &'static [u8] {
    static PROFILE: OnceLock<Vec<u8>> = OnceLock::new();
    PROFILE.get_or_init(|| {
        let mut raw = Vec::new();
        Rng(0x7072_6f66).fill(&mut raw, 64 * 1024 - 64);
        gzip_stored(&raw)
    })
}

/// One chunk of the streamed execution trace (the same bytes every time).
pub fn trace_chunk() -> &'static [u8] {
    static CHUNK: OnceLock<Vec<u8>> = OnceLock::new();
    CHUNK.get_or_init(|| {
        let mut raw = b"go 1.23 trace\0\0\0".to_vec();
        Rng(0x7472_6163).fill(&mut raw, TRACE_CHUNK);
        raw
    })
}

/// Wraps `data` in a valid gzip member made of stored (uncompressed) blocks.
pub fn gzip_stored(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 32 + data.len() / 65535 * 5);
    out.extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]);
    let mut blocks = data.chunks(65535).peekable();
    if blocks.peek().is_none() {
        out.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
    }
    while let Some(block) = blocks.next() {
        out.push(u8::from(blocks.peek().is_none()));
        let len = block.len() as u16;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(block);
    }
    out.extend_from_slice(&crc32(data).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

/// Plain bitwise CRC-32 (IEEE); only used to build a few bodies once.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xedb8_8320 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_matches_reference() {
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
    }

    #[test]
    fn index_mixes_quotes() {
        let s = String::from_utf8(index().to_vec()).unwrap();
        assert!(s.contains("<a href='allocs?debug=1'>allocs</a>"));
        assert!(s.contains("<a href=\"heap?debug=1\">heap</a>"));
        assert!(s.contains("<a href='goroutine?debug=2'>full goroutine stack dump</a>"));
    }
}
