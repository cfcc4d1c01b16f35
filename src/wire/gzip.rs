//! Streaming gzip (RFC 1952) framing around `miniz_oxide`'s raw deflate.
//!
//! Owns: the 10-byte header, the deflate stream, the CRC-32 and size trailer,
//! and a pull adapter ([`GzipPump`]) that reads plain bytes from any `fill`
//! source and produces compressed bytes into the caller's buffer. Encoders are
//! meant to be reused across responses (`reset` keeps the ~300 KB of
//! compressor tables). No I/O.

use miniz_oxide::DataFormat;
use miniz_oxide::deflate::core::{CompressorOxide, TDEFLFlush, TDEFLStatus, compress};

/// Default level: fast. Metrics text compresses ~25x even at level 1.
pub const DEFAULT_LEVEL: u8 = 1;

/// Header: magic, CM=deflate, no flags, mtime 0, XFL 4 (fastest), OS 3 (unix).
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 4, 3];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Header(u8),
    Body,
    Trailer(u8),
    Done,
}

/// A gzip member encoder.
pub struct GzipEncoder {
    comp: Box<CompressorOxide>,
    crc: crc32fast::Hasher,
    size: u32,
    state: State,
    level: u8,
}

impl GzipEncoder {
    /// `level` 0 (store) to 9 (best); 1 is fast.
    pub fn new(level: u8) -> GzipEncoder {
        let level = level.min(9);
        let mut comp = Box::new(CompressorOxide::new(0));
        comp.set_format_and_level(DataFormat::Raw, level);
        GzipEncoder {
            comp,
            crc: crc32fast::Hasher::new(),
            size: 0,
            state: State::Header(0),
            level,
        }
    }

    pub fn level(&self) -> u8 {
        self.level
    }

    /// Start a new member, keeping the allocations.
    pub fn reset(&mut self) {
        self.comp.reset();
        self.comp.set_format_and_level(DataFormat::Raw, self.level);
        self.crc = crc32fast::Hasher::new();
        self.size = 0;
        self.state = State::Header(0);
    }

    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Compress `input` into `out`; `finish` says no input follows `input`.
    /// Returns `(consumed, written)`. Call again (with the unconsumed rest) while
    /// it makes progress; the member is complete when [`is_done`](Self::is_done).
    pub fn encode(&mut self, input: &[u8], out: &mut [u8], finish: bool) -> (usize, usize) {
        let mut consumed = 0;
        let mut w = 0;
        loop {
            match self.state {
                State::Done => return (consumed, w),
                State::Header(p) => {
                    let n = (HEADER.len() - p as usize).min(out.len() - w);
                    out[w..w + n].copy_from_slice(&HEADER[p as usize..p as usize + n]);
                    w += n;
                    let p = p as usize + n;
                    if p < HEADER.len() {
                        self.state = State::Header(p as u8);
                        return (consumed, w);
                    }
                    self.state = State::Body;
                }
                State::Body => {
                    let inp = &input[consumed..];
                    let flush = if finish {
                        TDEFLFlush::Finish
                    } else {
                        TDEFLFlush::None
                    };
                    let (status, used, wrote) = compress(&mut self.comp, inp, &mut out[w..], flush);
                    self.crc.update(&inp[..used]);
                    self.size = self.size.wrapping_add(used as u32);
                    consumed += used;
                    w += wrote;
                    match status {
                        TDEFLStatus::Done => self.state = State::Trailer(0),
                        TDEFLStatus::Okay if used == 0 && wrote == 0 => return (consumed, w),
                        TDEFLStatus::Okay => {
                            if w == out.len() || (consumed == input.len() && !finish) {
                                return (consumed, w);
                            }
                        }
                        // BadParam/PutBufFailed cannot happen with our arguments;
                        // end the member rather than loop.
                        _ => self.state = State::Trailer(0),
                    }
                }
                State::Trailer(p) => {
                    let crc = self.crc.clone().finalize();
                    let mut t = [0u8; 8];
                    t[..4].copy_from_slice(&crc.to_le_bytes());
                    t[4..].copy_from_slice(&self.size.to_le_bytes());
                    let n = (8 - p as usize).min(out.len() - w);
                    out[w..w + n].copy_from_slice(&t[p as usize..p as usize + n]);
                    w += n;
                    let p = p as usize + n;
                    self.state = if p == 8 {
                        State::Done
                    } else {
                        State::Trailer(p as u8)
                    };
                    if p < 8 {
                        return (consumed, w);
                    }
                }
            }
        }
    }
}

/// Pulls plain bytes from a source and pushes gzip bytes into the caller's
/// buffer, with a small staging buffer in between.
pub struct GzipPump {
    enc: GzipEncoder,
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    src_done: bool,
}

impl GzipPump {
    pub const STAGING: usize = 32 * 1024;

    pub fn new(enc: GzipEncoder) -> GzipPump {
        GzipPump {
            enc,
            buf: vec![0; Self::STAGING].into_boxed_slice(),
            start: 0,
            end: 0,
            src_done: false,
        }
    }

    /// Prepare for a new response, keeping the allocations.
    pub fn reset(&mut self) {
        self.enc.reset();
        self.start = 0;
        self.end = 0;
        self.src_done = false;
    }

    pub fn is_done(&self) -> bool {
        self.enc.is_done()
    }

    /// Fill `out` with compressed bytes; `src` fills a buffer with plain bytes
    /// and returns 0 at the end. Returns 0 only when the member is complete
    /// (or `out` is empty).
    pub fn fill(&mut self, out: &mut [u8], mut src: impl FnMut(&mut [u8]) -> usize) -> usize {
        let mut w = 0;
        while w < out.len() && !self.enc.is_done() {
            if self.start == self.end && !self.src_done {
                let n = src(&mut self.buf);
                self.start = 0;
                self.end = n;
                self.src_done = n == 0;
            }
            let (used, wrote) = self.enc.encode(
                &self.buf[self.start..self.end],
                &mut out[w..],
                self.src_done,
            );
            self.start += used;
            w += wrote;
            if used == 0 && wrote == 0 && (self.start < self.end || self.src_done) {
                // No progress with input pending: output full (or done).
                break;
            }
        }
        w
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::test_util::{drain, feed, gunzip};

    fn pump_all(plain: &[u8], level: u8, src_chunk: usize, out_chunk: usize) -> Vec<u8> {
        let mut pump = GzipPump::new(GzipEncoder::new(level));
        let mut src = feed(plain, src_chunk);
        let gz = drain(out_chunk, |b| pump.fill(b, &mut src));
        assert!(pump.is_done());
        assert_eq!(src(&mut [0u8; 1]), 0, "every byte was taken");
        gz
    }

    #[test]
    fn roundtrip_sizes_and_levels() {
        let text: Vec<u8> = (0..20_000)
            .flat_map(|i| format!("metric{{i=\"{}\"}} {}\n", i % 97, i).into_bytes())
            .collect();
        for level in [0, 1, 6, 9] {
            for (src_chunk, out_chunk) in [(1 << 20, 1 << 20), (7, 3), (4096, 1), (100, 65536)] {
                let gz = pump_all(&text, level, src_chunk, out_chunk);
                assert_eq!(gunzip(&gz), text, "level {level} {src_chunk}/{out_chunk}");
            }
        }
    }

    #[test]
    fn empty_input_is_a_valid_member() {
        let gz = pump_all(b"", 1, 10, 10);
        assert_eq!(gunzip(&gz), b"");
        assert_eq!(&gz[..3], &[0x1f, 0x8b, 8]);
    }

    #[test]
    fn encoder_reuse() {
        let mut pump = GzipPump::new(GzipEncoder::new(1));
        for round in 0..3 {
            let plain = format!("round {round}\n").repeat(1000).into_bytes();
            let mut fed = false;
            let mut out = vec![0u8; 1 << 16];
            let n = pump.fill(&mut out, |b| {
                if fed {
                    return 0;
                }
                fed = true;
                b[..plain.len()].copy_from_slice(&plain);
                plain.len()
            });
            assert_eq!(gunzip(&out[..n]), plain);
            pump.reset();
        }
    }
}
