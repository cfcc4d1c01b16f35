//! Streaming zstd (RFC 8878) frames through libzstd's streaming compressor.
//!
//! Owns: the compression context (reused across responses: `reset` keeps
//! its allocations) and a pull adapter ([`ZstdPump`]) with the same shape as
//! [`GzipPump`](super::gzip::GzipPump): it reads plain bytes from any `fill`
//! source and produces compressed bytes into the caller's buffer. No I/O.
//!
//! Why zstd here: the merged text repeats each sandbox's label block and each
//! family's lines at distances of 100 KB to a few MB, beyond deflate's 32 KB
//! window. A 2 MiB window (`WINDOW_LOG`) reaches them at level 1 speed:
//! at 100 sandboxes it halves the level-6 gzip bytes (BENCHMARKS.md).
//! Memory per context: the window, one 128 KiB block of staging and
//! level 1's small tables, ~3 MB in all ([`ZstdPump::memory`]).

use zstd_safe::{CCtx, CParameter, InBuffer, OutBuffer, ResetDirective, zstd_sys};

/// Default level. Levels 1 to 3 give the same size on metrics text with the
/// same window; 1 is the fastest. (The build keeps only libzstd's `fast`
/// strategy, see `.cargo/config.toml`: higher levels use it with larger
/// tables.)
pub const DEFAULT_LEVEL: i32 = 1;

/// 2 MiB: a whole family of 100 sandboxes' lines is within reach.
pub const WINDOW_LOG: u32 = 21;

/// Pulls plain bytes from a source and pushes one zstd frame into the
/// caller's buffer, with a small staging buffer in between.
pub struct ZstdPump {
    cctx: CCtx<'static>,
    level: i32,
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    src_done: bool,
    done: bool,
}

impl ZstdPump {
    pub const STAGING: usize = 32 * 1024;

    /// `level`: zstd's levels (1 fast, 3 zstd's default, up to 19; negative:
    /// faster still). Clamped by libzstd.
    pub fn new(level: i32) -> ZstdPump {
        let mut pump = ZstdPump {
            cctx: CCtx::create(),
            level,
            buf: vec![0; Self::STAGING].into_boxed_slice(),
            start: 0,
            end: 0,
            src_done: false,
            done: false,
        };
        pump.configure();
        pump
    }

    fn configure(&mut self) {
        // Neither call can fail with these values (levels are clamped, the
        // window log is within every platform's bounds); a failure would
        // leave libzstd's defaults, still a valid stream.
        let _ = self
            .cctx
            .set_parameter(CParameter::CompressionLevel(self.level));
        let _ = self.cctx.set_parameter(CParameter::WindowLog(WINDOW_LOG));
    }

    pub fn level(&self) -> i32 {
        self.level
    }

    /// Prepare for a new response, keeping the allocations.
    pub fn reset(&mut self) {
        let _ = self.cctx.reset(ResetDirective::SessionOnly);
        self.start = 0;
        self.end = 0;
        self.src_done = false;
        self.done = false;
    }

    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Bytes the context holds (after a response: its window and tables).
    pub fn memory(&self) -> usize {
        self.cctx.sizeof() + self.buf.len()
    }

    /// Fill `out` with compressed bytes; `src` fills a buffer with plain bytes
    /// and returns 0 at the end. Returns 0 only when the frame is complete
    /// (or `out` is empty).
    pub fn fill(&mut self, out: &mut [u8], mut src: impl FnMut(&mut [u8]) -> usize) -> usize {
        let mut w = 0;
        while w < out.len() && !self.done {
            if self.start == self.end && !self.src_done {
                let n = src(&mut self.buf);
                self.start = 0;
                self.end = n;
                self.src_done = n == 0;
            }
            let mut input = InBuffer::around(&self.buf[self.start..self.end]);
            let mut output = OutBuffer::around(&mut out[w..]);
            let op = if self.src_done {
                zstd_sys::ZSTD_EndDirective::ZSTD_e_end
            } else {
                zstd_sys::ZSTD_EndDirective::ZSTD_e_continue
            };
            let res = self.cctx.compress_stream2(&mut output, &mut input, op);
            let (used, wrote) = (input.pos(), output.pos());
            self.start += used;
            w += wrote;
            match res {
                Ok(0) if self.src_done => self.done = true,
                Ok(_) => {}
                // Only an allocation failure can get here: end the body (the
                // client sees a truncated frame) rather than loop.
                Err(_) => self.done = true,
            }
            if used == 0 && wrote == 0 && !self.done && self.start < self.end {
                break;
            }
        }
        w
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::test_util::{drain, feed};

    fn pump_all(pump: &mut ZstdPump, plain: &[u8], src_chunk: usize, out_chunk: usize) -> Vec<u8> {
        let mut src = feed(plain, src_chunk);
        let z = drain(out_chunk, |b| pump.fill(b, &mut src));
        assert!(pump.is_done());
        assert_eq!(src(&mut [0u8; 1]), 0, "every byte was taken");
        z
    }

    #[test]
    fn frames_start_with_the_magic_and_shrink_repetitive_text() {
        let text: Vec<u8> = (0..50_000)
            .flat_map(|i| format!("metric{{i=\"{}\"}} {}\n", i % 97, i).into_bytes())
            .collect();
        let mut pump = ZstdPump::new(DEFAULT_LEVEL);
        for (src_chunk, out_chunk) in [(1 << 20, 1 << 20), (7, 3), (4096, 1), (100, 65536)] {
            let z = pump_all(&mut pump, &text, src_chunk, out_chunk);
            assert_eq!(&z[..4], &[0x28, 0xb5, 0x2f, 0xfd]);
            assert!(z.len() * 10 < text.len(), "{} of {}", z.len(), text.len());
            pump.reset();
        }
        // Window, one block of staging, level 1's tables.
        assert!(pump.memory() < 4 << 20, "{}", pump.memory());
    }

    #[test]
    fn empty_input_is_a_frame() {
        let mut pump = ZstdPump::new(DEFAULT_LEVEL);
        let z = pump_all(&mut pump, b"", 10, 10);
        assert_eq!(&z[..4], &[0x28, 0xb5, 0x2f, 0xfd]);
    }
}
