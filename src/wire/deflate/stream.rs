//! The gzip member (RFC 1952) around renderer-led deflate, pulled by the
//! caller one output buffer at a time.
//!
//! Owns: the window the renderer fills (32 KiB of history plus room for new
//! text), the CRC-32 and size trailer, the hand-off of finished blocks.
//! Memory: the window, one block of tokens and its compressed bytes.

use super::block::{Block, MAX_DIST};
use super::parse::{Hinter, Parser};

/// History kept for copies plus room for new text.
const WINDOW: usize = 128 * 1024;

/// gzip header: magic, deflate, no flags, mtime 0, XFL 0, OS 3 (unix).
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];

pub struct GzipStream {
    win: Box<[u8]>,
    end: usize,
    /// Absolute position of `win[0]`.
    base: u64,
    hinter: Hinter,
    parser: Parser,
    block: Block,
    crc: crc32fast::Hasher,
    size: u32,
    /// Bytes of `block.out.buf` already handed out.
    sent: usize,
    header_sent: bool,
    src_done: bool,
    trailer: Option<([u8; 8], usize)>,
    done: bool,
}

impl Default for GzipStream {
    fn default() -> Self {
        GzipStream {
            win: vec![0; WINDOW].into_boxed_slice(),
            end: 0,
            base: 0,
            hinter: Hinter::default(),
            parser: Parser::default(),
            block: Block::default(),
            crc: crc32fast::Hasher::new(),
            size: 0,
            sent: 0,
            header_sent: false,
            src_done: false,
            trailer: None,
            done: false,
        }
    }
}

impl GzipStream {
    /// Prepare for a new response, keeping the allocations.
    pub fn reset(&mut self) {
        self.end = 0;
        self.base = 0;
        self.hinter.reset();
        self.parser.reset();
        self.block.reset();
        self.crc = crc32fast::Hasher::new();
        self.size = 0;
        self.sent = 0;
        self.header_sent = false;
        self.src_done = false;
        self.trailer = None;
        self.done = false;
    }

    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Fill `out` with compressed bytes; `src` renders plain text into a
    /// buffer, telling the hinter where it came from, and returns 0 at the
    /// end. Returns 0 only when the member is complete (or `out` is empty).
    pub fn fill(
        &mut self,
        out: &mut [u8],
        mut src: impl FnMut(&mut [u8], &mut Hinter) -> usize,
    ) -> usize {
        let mut w = 0;
        if !self.header_sent {
            // Queued like compressed bytes (the bit writer is empty).
            self.block.out.buf.extend_from_slice(&HEADER);
            self.header_sent = true;
        }
        while w < out.len() && !self.done {
            let pending = &self.block.out.buf[self.sent..];
            if !pending.is_empty() {
                let n = pending.len().min(out.len() - w);
                out[w..w + n].copy_from_slice(&pending[..n]);
                w += n;
                self.sent += n;
                continue;
            }
            self.block.out.buf.clear();
            self.sent = 0;
            if let Some((t, at)) = &mut self.trailer {
                let n = (8 - *at).min(out.len() - w);
                out[w..w + n].copy_from_slice(&t[*at..*at + n]);
                w += n;
                *at += n;
                self.done = *at == 8;
                continue;
            }
            if self.src_done {
                self.block.flush(true);
                let mut t = [0u8; 8];
                t[..4].copy_from_slice(&self.crc.clone().finalize().to_le_bytes());
                t[4..].copy_from_slice(&self.size.to_le_bytes());
                self.trailer = Some((t, 0));
                continue;
            }
            self.step(&mut src);
        }
        w
    }

    /// Render one more piece of text into the window and parse it.
    #[inline(never)]
    fn step(&mut self, src: &mut impl FnMut(&mut [u8], &mut Hinter) -> usize) {
        if self.end == WINDOW {
            let keep = MAX_DIST;
            self.win.copy_within(self.end - keep..self.end, 0);
            self.base += (self.end - keep) as u64;
            self.end = keep;
        }
        self.hinter.base = self.base + self.end as u64;
        let from = self.end;
        let n = src(&mut self.win[from..], &mut self.hinter);
        if n == 0 {
            self.src_done = true;
            return;
        }
        self.crc.update(&self.win[from..from + n]);
        self.size = self.size.wrapping_add(n as u32);
        self.end += n;
        self.parser.parse(
            &self.win[..self.end],
            from,
            self.end,
            self.base,
            &self.hinter.hints,
            &mut self.block,
        );
        self.hinter.parsed(self.base + self.end as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::expo::{Exposition, Filter, Labels};
    use crate::wire::test_util::{drain, gunzip};

    /// The whole member through output buffers of `out_len` bytes.
    fn compress(s: &mut GzipStream, expo: &Exposition, head: Vec<u8>, out_len: usize) -> Vec<u8> {
        let mut cur = expo.cursor(&Filter::all(), head);
        let gz = drain(out_len, |b| s.fill(b, |w, h| cur.fill_marked(expo, w, h)));
        assert!(s.is_done());
        gz
    }

    fn node(body: &[u8], sandboxes: usize) -> Exposition {
        let mut expo = Exposition::new(3);
        for i in 0..sandboxes {
            let id = format!("{i:064x}");
            let name = format!("pod-{}", "x".repeat(i % 7));
            expo.add(&id, Labels::new([&id, "u", &name, "ns"]), body.to_vec());
        }
        expo.finish();
        expo
    }

    #[test]
    fn roundtrip_small_node_any_output_buffer() {
        let body = b"# TYPE a gauge\na{x=\"1\"} 1\na{x=\"2\"} 2\n# TYPE b counter\nb 5\n";
        let expo = node(body, 5);
        let plain = expo.render_to_vec(&Filter::all());
        let mut s = GzipStream::default();
        for out_len in [1usize, 7, 64 * 1024] {
            s.reset();
            let gz = compress(&mut s, &expo, b"# own\nx 1\n".to_vec(), out_len);
            let mut want = b"# own\nx 1\n".to_vec();
            want.extend_from_slice(&plain);
            assert_eq!(gunzip(&gz), want, "out_len {out_len}");
        }
    }

    #[test]
    fn roundtrip_sample_node_beyond_the_window() {
        let body = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/default.prom"
        ))
        .expect("fixture");
        let expo = node(&body, 12);
        let plain = expo.render_to_vec(&Filter::all());
        assert!(plain.len() > 4 * WINDOW);
        let mut s = GzipStream::default();
        let gz = compress(&mut s, &expo, Vec::new(), 16 * 1024);
        assert_eq!(gunzip(&gz), plain);
        // Twelve copies of one body: the copies, not literals, carry it.
        assert!(
            gz.len() * 30 < plain.len(),
            "{} of {}",
            gz.len(),
            plain.len()
        );
        // Reused for a second response.
        s.reset();
        assert_eq!(gunzip(&compress(&mut s, &expo, Vec::new(), 4096)), plain);
    }

    #[test]
    fn empty_output_is_a_valid_member() {
        let expo = node(b"", 0);
        let mut s = GzipStream::default();
        let gz = compress(&mut s, &expo, Vec::new(), 64);
        assert_eq!(gunzip(&gz), b"");
    }

    use proptest::prelude::any;

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 48, ..Default::default() })]

        /// Sandboxes whose bodies are the same sample with lines dropped,
        /// doubled or edited at random: the hints then point at bytes that
        /// differ, which copies must not trust.
        #[test]
        fn edited_bodies_round_trip(
            edits in proptest::collection::vec(
                proptest::collection::vec((0usize..1300, 0u8..4, any::<u8>()), 0..40),
                1..6,
            ),
            out_len in 1usize..70_000,
        ) {
            let base = include_bytes!("../../../tests/fixtures/default.prom");
            let lines: Vec<&[u8]> = base.split_inclusive(|&b| b == b'\n').collect();
            let mut expo = Exposition::new(9);
            for (k, e) in edits.iter().enumerate() {
                let mut body: Vec<Vec<u8>> = lines.iter().map(|l| l.to_vec()).collect();
                for &(at, op, byte) in e {
                    let at = at % body.len();
                    match op {
                        0 => drop(body.remove(at)),
                        1 => body.insert(at, body[at].clone()),
                        2 => {
                            let n = body[at].len();
                            body[at][n / 2] = byte;
                        }
                        _ => body[at].insert(0, byte),
                    }
                }
                let id = format!("{:064x}", k * 7 + 1);
                let name = "p".repeat(k * 3);
                expo.add(&id, Labels::new([&id, "u", &name, "ns"]), body.concat());
            }
            expo.finish();
            let plain = expo.render_to_vec(&Filter::all());
            let mut s = GzipStream::default();
            let gz = compress(&mut s, &expo, Vec::new(), out_len);
            proptest::prop_assert!(gunzip(&gz) == plain);
        }
    }
}
