//! Streaming compression of whole files (JSONLines exports, lake objects) and its reading counterpart.
//!
//! Levels: gzip 6 (flate2's zlib-rs backend), zstd 3 (zstd's default), brotli quality 4 with a 4 MiB window
//! (brotli's default of 11 is about 20× slower for a few percent of size).

use std::io::{self, BufRead, BufReader, Read, Write};

use crate::format::Compression;

const ZSTD_LEVEL: i32 = 3;
const BROTLI_QUALITY: u32 = 4;
const BROTLI_LG_WINDOW: u32 = 22;
const BROTLI_BUFFER: usize = 64 * 1024;

/// A writer compressing with one of the stream compressions (or none).
pub enum CompressedWriter<W: Write> {
    Plain(W),
    Gzip(flate2::write::GzEncoder<W>),
    Zstd(zstd::Encoder<'static, W>),
    Brotli(Box<brotli::CompressorWriter<W>>),
}

impl<W: Write> CompressedWriter<W> {
    /// A compressing writer; `lz4` and `snappy` are Parquet-only and panic here (configs are validated first).
    pub fn new(out: W, compression: Option<Compression>) -> io::Result<Self> {
        Ok(match compression {
            None => CompressedWriter::Plain(out),
            Some(Compression::Gzip) => {
                CompressedWriter::Gzip(flate2::write::GzEncoder::new(out, flate2::Compression::new(6)))
            }
            Some(Compression::Zstd) => CompressedWriter::Zstd(zstd::Encoder::new(out, ZSTD_LEVEL)?),
            Some(Compression::Brotli) => CompressedWriter::Brotli(Box::new(brotli::CompressorWriter::new(
                out,
                BROTLI_BUFFER,
                BROTLI_QUALITY,
                BROTLI_LG_WINDOW,
            ))),
            Some(c @ (Compression::Lz4 | Compression::Snappy)) => {
                unreachable!("{} is only a Parquet compression", c.name())
            }
        })
    }

    /// Ends the compressed stream and returns the inner writer.
    pub fn finish(self) -> io::Result<W> {
        match self {
            CompressedWriter::Plain(w) => Ok(w),
            CompressedWriter::Gzip(w) => w.finish(),
            CompressedWriter::Zstd(w) => w.finish(),
            CompressedWriter::Brotli(w) => Ok(w.into_inner()),
        }
    }
}

impl<W: Write> Write for CompressedWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            CompressedWriter::Plain(w) => w.write(buf),
            CompressedWriter::Gzip(w) => w.write(buf),
            CompressedWriter::Zstd(w) => w.write(buf),
            CompressedWriter::Brotli(w) => w.write(buf),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            CompressedWriter::Plain(w) => w.write_all(buf),
            CompressedWriter::Gzip(w) => w.write_all(buf),
            CompressedWriter::Zstd(w) => w.write_all(buf),
            CompressedWriter::Brotli(w) => w.write_all(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            CompressedWriter::Plain(w) => w.flush(),
            CompressedWriter::Gzip(w) => w.flush(),
            CompressedWriter::Zstd(w) => w.flush(),
            CompressedWriter::Brotli(w) => w.flush(),
        }
    }
}

/// A buffered reader undoing one of the stream compressions (multi-member gzip included).
pub struct CompressedReader;

impl CompressedReader {
    pub fn open<'a, R: Read + Send + 'a>(
        input: R,
        compression: Option<Compression>,
    ) -> io::Result<Box<dyn BufRead + Send + 'a>> {
        const BUF: usize = 256 * 1024;
        Ok(match compression {
            None => Box::new(BufReader::with_capacity(BUF, input)),
            Some(Compression::Gzip) => {
                Box::new(BufReader::with_capacity(BUF, flate2::read::MultiGzDecoder::new(BufReader::new(input))))
            }
            Some(Compression::Zstd) => Box::new(BufReader::with_capacity(BUF, zstd::Decoder::new(input)?)),
            Some(Compression::Brotli) => {
                Box::new(BufReader::with_capacity(BUF, brotli::Decompressor::new(input, BROTLI_BUFFER)))
            }
            Some(c @ (Compression::Lz4 | Compression::Snappy)) => {
                return Err(io::Error::new(io::ErrorKind::Unsupported, format!("{} streams", c.name())))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_stream_compression_round_trips() {
        let text = "line one\nline two\n".repeat(1000);
        for c in [None, Some(Compression::Gzip), Some(Compression::Zstd), Some(Compression::Brotli)] {
            let mut w = CompressedWriter::new(Vec::new(), c).unwrap();
            w.write_all(text.as_bytes()).unwrap();
            let bytes = w.finish().unwrap();
            if c.is_some() {
                assert!(bytes.len() < text.len() / 10, "{c:?} compressed to {}", bytes.len());
            }
            let mut back = String::new();
            CompressedReader::open(&bytes[..], c).unwrap().read_to_string(&mut back).unwrap();
            assert_eq!(back, text, "{c:?}");
        }
    }
}
