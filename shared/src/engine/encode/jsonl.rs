//! JSONLines files: one JSON object per line, ISO 8601 timestamps, `properties` and `person_properties` as
//! nested objects, compressed as a whole stream (gzip, brotli, zstd or none).

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::{CountingWriter, Encoder};
use crate::error::{InternalContext, Result};
use crate::event::EventRow;
use crate::format::CompressedWriter;
use crate::format::Compression;

pub struct JsonLinesEncoder<W: Write> {
    out: CompressedWriter<CountingWriter<W>>,
    written: Arc<AtomicU64>,
    line_buf: Vec<u8>,
}

impl<W: Write> JsonLinesEncoder<W> {
    pub fn new(out: W, compression: Option<Compression>) -> Result<Self> {
        let counting = CountingWriter::new(out);
        let written = counting.counter();
        let out = CompressedWriter::new(counting, compression)?;
        Ok(JsonLinesEncoder { out, written, line_buf: Vec::with_capacity(1 << 20) })
    }
}

impl<W: Write + Send> Encoder<W> for JsonLinesEncoder<W> {
    fn write_batch(&mut self, rows: &[EventRow]) -> Result<()> {
        self.line_buf.clear();
        for row in rows {
            serde_json::to_writer(&mut self.line_buf, &row.as_export_json())
                .internal(format!("serializing event {}", row.uuid))?;
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
