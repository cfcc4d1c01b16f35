//! Per-sandbox fault kinds and the odd bodies some of them serve.
//!
//! A fault is stored in the sandbox as an atomic byte and read at every
//! request, so `fault <ID> <KIND>` on the control channel takes effect on the
//! next request of every connection (a `hang` connection stays hung).
//!
//! Where faults apply: `hang`, `http500` and `bad-http` hit every endpoint;
//! `close-mid-body` and `slow` hit every response with a complete body (all
//! but the streamed pprof `trace`); `garbage` and `huge` replace the
//! `/metrics` body only.  `refuse` / `stale-socket` are not served at all:
//! the node closes the listener (see `node.rs`).

use std::io;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Fault {
    /// Serve normally.
    Ok = 0,
    /// Read the request, never answer, keep the socket open.
    Hang,
    /// `500 Internal Server Error`, body `internal error\n`.
    Http500,
    /// 200 with 20 KB of binary junk and almost-metrics lines.
    Garbage,
    /// 200 with the full `Content-Length`, about half the body, then close.
    CloseMidBody,
    /// 200, `Content-Length`, body trickled in 1 KB pieces (`--slow-ms` apart).
    Slow,
    /// No socket file: connecting fails with `ENOENT`.
    Refuse,
    /// Socket file left behind with nobody listening: `ECONNREFUSED`.
    StaleSocket,
    /// Malformed status line `HTTP/1.1 2OO OK`, then close.
    BadHttp,
    /// 200, a valid-looking 40 MiB body generated on the fly.
    Huge,
}

const ALL: [Fault; 10] = [
    Fault::Ok,
    Fault::Hang,
    Fault::Http500,
    Fault::Garbage,
    Fault::CloseMidBody,
    Fault::Slow,
    Fault::Refuse,
    Fault::StaleSocket,
    Fault::BadHttp,
    Fault::Huge,
];

/// Every accepted fault name, for help and error messages.
pub const NAMES: &str =
    "ok hang http500 garbage close-mid-body slow refuse no-socket-yet stale-socket bad-http huge";

impl Fault {
    pub fn parse(s: &str) -> Option<Fault> {
        Some(match s {
            "ok" | "none" => Fault::Ok,
            "hang" => Fault::Hang,
            "http500" | "500" => Fault::Http500,
            "garbage" => Fault::Garbage,
            "close-mid-body" => Fault::CloseMidBody,
            "slow" => Fault::Slow,
            "refuse" | "no-socket-yet" => Fault::Refuse,
            "stale-socket" => Fault::StaleSocket,
            "bad-http" => Fault::BadHttp,
            "huge" => Fault::Huge,
            _ => return None,
        })
    }

    pub fn from_u8(v: u8) -> Fault {
        ALL.get(usize::from(v)).copied().unwrap_or(Fault::Ok)
    }

    /// Whether the shim accepts connections under this fault.
    pub fn listens(self) -> bool {
        !matches!(self, Fault::Refuse | Fault::StaleSocket)
    }
}

/// splitmix64: tiny deterministic generator for all fake bytes.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix64(self.0)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    pub fn fill(&mut self, out: &mut Vec<u8>, len: usize) {
        while out.len() < len {
            let take = (len - out.len()).min(8);
            out.extend_from_slice(&self.next_u64().to_le_bytes()[..take]);
        }
    }
}

/// The splitmix64 finaliser.
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Lines that look almost like metrics, to trip lenient parsers.
const ALMOST: &[&[u8]] = &[
    b"kata_guest_load{cpu=\"0\" 1.5\n",
    b"kata_guest_load{cpu=\"0\"} 1.5.5\n",
    b"kata_shim_fds 12 34 56\n",
    b"kata_shim_threads{} NaNx\n",
    b"# TYPE kata_shim_rpc bogus\n",
    b"# HELP\n",
    b"{le=\"+Inf\"} 3\n",
    b"kata_agent_x{a=\"\\q\"} 1\n",
    b"kata_agent_y{a=\"unterminated} 1\n",
    b"kata agent z 1\n",
    b"kata_agent_w 1e99999\n",
    b"kata_agent_v{a=\"b\",,c=\"d\"} 2\n",
    b"kata_agent_u\t\t\t3\r\n",
    b"9starts_with_digit 1\n",
    b"kata_agent_t{a=\"\xff\xfe\"} 1\n",
    b"kata_agent_s{a=\"b\"}\n",
    b"kata_hypervisor_fds 7\x00\n",
    b"go_goroutines 35",
];

/// About 20 KB of junk for the `garbage` fault (same bytes for a given seed).
pub fn garbage_body(seed: u64) -> Vec<u8> {
    const LEN: usize = 20 * 1024;
    let mut rng = Rng(seed);
    let mut out = Vec::with_capacity(LEN + 64);
    out.extend_from_slice(b"# TYPE kata_shim_threads gauge\nkata_shim_threads 42\n");
    while out.len() < LEN {
        match rng.below(10) {
            0..=3 => out.extend_from_slice(ALMOST[rng.below(ALMOST.len())]),
            4..=6 => {
                let n = out.len() + 1 + rng.below(64);
                rng.fill(&mut out, n);
            }
            7 => out.extend_from_slice(b"\x00\x00\r\r\n\xc3\x28\xed\xa0\x80"),
            _ => out.extend_from_slice(b"kata_shim_fds 12\n"),
        }
    }
    out.truncate(LEN);
    out
}

const HUGE_HEADER: &[u8] =
    b"# HELP kata_sim_huge_series A huge family from the kata-sim huge fault.\n\
# TYPE kata_sim_huge_series gauge\n";
const HUGE_LINE: &[u8] = b"kata_sim_huge_series{line=\"0000000000\"} 1\n";
/// Offset of the 10 zero-padded digits in `HUGE_LINE`.
const HUGE_DIGITS: usize = 27;
const HUGE_TARGET: usize = 40 << 20;
const HUGE_BLOCK_LINES: usize = 1560;

fn huge_lines() -> usize {
    (HUGE_TARGET - HUGE_HEADER.len()).div_ceil(HUGE_LINE.len())
}

/// Exact size of the `huge` body (a little over 40 MiB).
pub fn huge_len() -> usize {
    HUGE_HEADER.len() + huge_lines() * HUGE_LINE.len()
}

/// Generates the `huge` body in blocks of about 64 KB, passing each to `sink`.
pub fn huge_body(mut sink: impl FnMut(&[u8]) -> io::Result<()>) -> io::Result<()> {
    sink(HUGE_HEADER)?;
    let total = huge_lines();
    let mut block = HUGE_LINE.repeat(HUGE_BLOCK_LINES);
    let mut line = 0;
    while line < total {
        let n = HUGE_BLOCK_LINES.min(total - line);
        for (k, chunk) in block.chunks_mut(HUGE_LINE.len()).take(n).enumerate() {
            let mut v = line + k;
            for d in chunk[HUGE_DIGITS..HUGE_DIGITS + 10].iter_mut().rev() {
                *d = b'0' + (v % 10) as u8;
                v /= 10;
            }
        }
        sink(&block[..n * HUGE_LINE.len()])?;
        line += n;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for f in ALL {
            assert_eq!(Fault::from_u8(f as u8), f);
        }
        for name in NAMES.split(' ') {
            assert!(Fault::parse(name).is_some(), "{name}");
        }
    }

    #[test]
    fn huge_is_over_forty_mib_and_exact() {
        let mut n = 0;
        let mut last = Vec::new();
        huge_body(|b| {
            n += b.len();
            last = b.to_vec();
            Ok(())
        })
        .unwrap();
        assert_eq!(n, huge_len());
        assert!(n > 40 << 20 && n < (40 << 20) + 100);
        assert!(last.ends_with(b"\"} 1\n"));
    }

    #[test]
    fn garbage_has_nasty_bytes() {
        let g = garbage_body(7);
        assert_eq!(g.len(), 20 * 1024);
        assert!(g.contains(&0) && g.contains(&b'\r') && std::str::from_utf8(&g).is_err());
    }
}
