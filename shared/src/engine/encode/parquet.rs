//! Parquet files with the model's schema ([`ExportRow::schema`]; for events: strings,
//! `properties`/`person_properties` as JSON-encoded strings, timestamps as `TIMESTAMP(MICROS)` in UTC). The compression is Parquet's own (per page); the levels
//! are Arrow's defaults (zstd 1, gzip 6, brotli 1), as the reference's pyarrow writer uses.

use std::io::Write;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arrow_schema::SchemaRef;
use parquet::arrow::ArrowWriter;
use parquet::basic::{BrotliLevel, Compression as PqCompression, GzipLevel, ZstdLevel};
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;

use super::{CountingWriter, Encoder, ExportRow};
use crate::error::{ExportError, Result};
use crate::format::Compression;

/// Row-group sizing: a row group is flushed at whichever limit comes first, which bounds the memory a
/// Parquet file holds before it is written out.
#[derive(Debug, Clone)]
pub struct ParquetSettings {
    pub max_row_group_rows: usize,
    pub max_row_group_bytes: usize,
}

impl Default for ParquetSettings {
    fn default() -> Self {
        ParquetSettings { max_row_group_rows: 1_000_000, max_row_group_bytes: 32 * 1024 * 1024 }
    }
}

/// Writer properties for a compression; dictionaries are off for the columns that are unique per row.
pub fn writer_properties(compression: Option<Compression>, settings: &ParquetSettings) -> WriterProperties {
    let codec = match compression {
        None => PqCompression::UNCOMPRESSED,
        Some(Compression::Zstd) => PqCompression::ZSTD(ZstdLevel::default()),
        Some(Compression::Lz4) => PqCompression::LZ4_RAW,
        Some(Compression::Snappy) => PqCompression::SNAPPY,
        Some(Compression::Gzip) => PqCompression::GZIP(GzipLevel::default()),
        Some(Compression::Brotli) => PqCompression::BROTLI(BrotliLevel::default()),
    };
    let mut builder = WriterProperties::builder()
        .set_compression(codec)
        .set_max_row_group_row_count(Some(settings.max_row_group_rows.max(1)))
        .set_max_row_group_bytes(Some(settings.max_row_group_bytes.max(1)));
    for column in ["uuid", "properties", "person_properties"] {
        builder = builder.set_column_dictionary_enabled(ColumnPath::from(column), false);
    }
    builder.build()
}

pub struct ParquetEncoder<W: Write + Send, R> {
    writer: ArrowWriter<CountingWriter<W>>,
    schema: SchemaRef,
    written: Arc<AtomicU64>,
    rows: PhantomData<fn(&R)>,
}

impl<W: Write + Send, R: ExportRow> ParquetEncoder<W, R> {
    pub fn new(out: W, compression: Option<Compression>, settings: &ParquetSettings) -> Result<Self> {
        let counting = CountingWriter::new(out);
        let written = counting.counter();
        let schema = R::schema();
        let writer = ArrowWriter::try_new(counting, schema.clone(), Some(writer_properties(compression, settings)))
            .map_err(parquet_error)?;
        Ok(ParquetEncoder { writer, schema, written, rows: PhantomData })
    }
}

fn parquet_error(e: parquet::errors::ParquetError) -> ExportError {
    match e {
        parquet::errors::ParquetError::External(inner) => match inner.downcast::<std::io::Error>() {
            Ok(io) => ExportError::LocalIo(*io),
            Err(other) => ExportError::Internal { context: "parquet".into(), source: Some(other) },
        },
        other => ExportError::Internal { context: "parquet".into(), source: Some(Box::new(other)) },
    }
}

impl<W: Write + Send, R: ExportRow> Encoder<W, R> for ParquetEncoder<W, R> {
    fn write_batch(&mut self, rows: &[R]) -> Result<()> {
        let batch = R::record_batch(&self.schema, rows)?;
        self.writer.write(&batch).map_err(parquet_error)
    }

    fn size_estimate(&self) -> u64 {
        self.written.load(Ordering::Relaxed) + self.writer.in_progress_size() as u64
    }

    fn settle(&mut self) -> Result<u64> {
        self.writer.flush().map_err(parquet_error)?;
        Ok(self.written.load(Ordering::Relaxed))
    }

    fn finish(self: Box<Self>) -> Result<W> {
        Ok(self.writer.into_inner().map_err(parquet_error)?.into_inner())
    }
}
