//! Test helpers for the compressors: draining a pump, feeding it in
//! chunks, reading gzip back. The lib's unit tests use it as
//! `wire::test_util`; tests/common/oracle.rs includes this same file.
//!
//! Test code only: never built into the monitor.

use std::io::Read;

/// Everything `fill` produces, `chunk` bytes at a time, until it gives 0.
pub fn drain(chunk: usize, mut fill: impl FnMut(&mut [u8]) -> usize) -> Vec<u8> {
    let mut all = Vec::new();
    let mut buf = vec![0u8; chunk.max(1)];
    loop {
        let n = fill(&mut buf);
        if n == 0 {
            return all;
        }
        all.extend_from_slice(&buf[..n]);
    }
}

/// A source that hands out `plain` at most `chunk` bytes per call.
pub fn feed(plain: &[u8], chunk: usize) -> impl FnMut(&mut [u8]) -> usize + '_ {
    let mut pos = 0;
    move |b: &mut [u8]| {
        let n = (plain.len() - pos).min(b.len()).min(chunk.max(1));
        b[..n].copy_from_slice(&plain[pos..pos + n]);
        pos += n;
        n
    }
}

/// flate2's reading of a gzip member.
pub fn gunzip(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(data)
        .read_to_end(&mut out)
        .expect("valid gzip");
    out
}
