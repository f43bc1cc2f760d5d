//! JSONLines files: one JSON object per line (the row's [`ExportRow::write_json`]: for events ISO 8601
//! timestamps, `properties` and `person_properties` as nested objects), compressed as a whole stream (gzip,
//! brotli, zstd or none).

use std::io::Write;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::{CountingWriter, Encoder, ExportRow};
use crate::error::Result;
use crate::format::{CompressedWriter, Compression};

pub struct JsonLinesEncoder<W: Write, R> {
    out: CompressedWriter<CountingWriter<W>>,
    written: Arc<AtomicU64>,
    line_buf: Vec<u8>,
    rows: PhantomData<fn(&R)>,
}

impl<W: Write, R> JsonLinesEncoder<W, R> {
    pub fn new(out: W, compression: Option<Compression>) -> Result<Self> {
        let counting = CountingWriter::new(out);
        let written = counting.counter();
        let out = CompressedWriter::new(counting, compression)?;
        Ok(JsonLinesEncoder { out, written, line_buf: Vec::with_capacity(1 << 20), rows: PhantomData })
    }
}

impl<W: Write + Send, R: ExportRow> Encoder<W, R> for JsonLinesEncoder<W, R> {
    fn write_batch(&mut self, rows: &[R]) -> Result<()> {
        self.line_buf.clear();
        for row in rows {
            row.write_json(&mut self.line_buf)?;
            self.line_buf.push(b'\n');
        }
        self.out.write_all(&self.line_buf)?;
        Ok(())
    }

    fn size_estimate(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    fn finish(self: Box<Self>) -> Result<W> {
        Ok(self.out.finish()?.into_inner())
    }
}
