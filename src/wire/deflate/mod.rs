//! gzip for `/metrics` led by the renderer: deflate (RFC 1951) written
//! here, with copies found where the renderer says the text repeats instead
//! of by searching (the default gzip; `--gzip-level 1`-`9` use miniz_oxide,
//! [`super::gzip`]).
//!
//! * [`parse`]: the renderer's marks into hints, hints into literals and
//!   copies;
//! * [`block`]: literals and copies into blocks with their own Huffman codes;
//! * [`huffman`]: length-limited prefix codes from symbol counts;
//! * [`bits`]: the LSB-first bit writer;
//! * [`stream`]: the window the renderer fills and the gzip member around
//!   the blocks, pulled one output buffer at a time.
//!
//! Must not: allocate per line, hold more than its window and one block, do
//! I/O.

pub mod bits;
pub mod block;
pub mod huffman;
pub mod parse;
pub mod stream;

pub use stream::GzipStream;
