//! Parquet files with the events model's schema: strings, `properties`/`person_properties` as JSON-encoded
//! strings, timestamps as `TIMESTAMP(MICROS)` in UTC. The compression is Parquet's own (per page); the levels
//! are Arrow's defaults (zstd 1, gzip 6, brotli 1), as the reference's pyarrow writer uses.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arrow_array::builder::{StringBuilder, TimestampMicrosecondBuilder};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::basic::{BrotliLevel, Compression as PqCompression, GzipLevel, ZstdLevel};
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;

use super::{CountingWriter, Encoder};
use crate::config::Compression;
use crate::error::{ExportError, Result};
use crate::model::EventRow;

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

fn utc_micros() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// The events model's Parquet/Arrow schema, in the seed's column order.
pub fn events_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("uuid", DataType::Utf8, false),
        Field::new("event", DataType::Utf8, false),
        Field::new("distinct_id", DataType::Utf8, false),
        Field::new("person_id", DataType::Utf8, true),
        Field::new("properties", DataType::Utf8, true),
        Field::new("person_properties", DataType::Utf8, true),
        Field::new("elements_chain", DataType::Utf8, true),
        Field::new("timestamp", utc_micros(), false),
        Field::new("created_at", utc_micros(), true),
        Field::new("_inserted_at", utc_micros(), false),
    ]))
}

/// Builds one record batch of the events schema from rows.
pub fn events_record_batch(schema: &SchemaRef, rows: &[EventRow]) -> Result<RecordBatch> {
    let n = rows.len();
    let strings = |f: &dyn Fn(&EventRow) -> Option<&str>, bytes_per_row: usize| -> ArrayRef {
        let mut b = StringBuilder::with_capacity(n, n * bytes_per_row);
        for r in rows {
            b.append_option(f(r));
        }
        Arc::new(b.finish())
    };
    let times = |f: &dyn Fn(&EventRow) -> Option<i64>| -> ArrayRef {
        let mut b = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
        for r in rows {
            b.append_option(f(r));
        }
        Arc::new(b.finish())
    };
    let columns = vec![
        strings(&|r| Some(&r.uuid), 36),
        strings(&|r| Some(&r.event), 16),
        strings(&|r| Some(&r.distinct_id), 36),
        strings(&|r| r.person_id.as_deref(), 36),
        strings(&|r| r.properties.as_deref().map(|p| p.get()), 600),
        strings(&|r| r.person_properties.as_deref().map(|p| p.get()), 200),
        strings(&|r| r.elements_chain.as_deref(), 8),
        times(&|r| Some(r.timestamp)),
        times(&|r| r.created_at),
        times(&|r| Some(r.inserted_at)),
    ];
    RecordBatch::try_new(schema.clone(), columns).map_err(|e| ExportError::Internal(format!("record batch: {e}")))
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

pub struct ParquetEncoder<W: Write + Send> {
    writer: ArrowWriter<CountingWriter<W>>,
    schema: SchemaRef,
    written: Arc<AtomicU64>,
}

impl<W: Write + Send> ParquetEncoder<W> {
    pub fn new(out: W, compression: Option<Compression>, settings: &ParquetSettings) -> Result<Self> {
        let counting = CountingWriter::new(out);
        let written = counting.counter();
        let schema = events_schema();
        let writer = ArrowWriter::try_new(counting, schema.clone(), Some(writer_properties(compression, settings)))
            .map_err(parquet_error)?;
        Ok(ParquetEncoder { writer, schema, written })
    }
}

fn parquet_error(e: parquet::errors::ParquetError) -> ExportError {
    match e {
        parquet::errors::ParquetError::External(inner) => match inner.downcast::<std::io::Error>() {
            Ok(io) => ExportError::LocalIo(*io),
            Err(other) => ExportError::Internal(format!("parquet: {other}")),
        },
        other => ExportError::Internal(format!("parquet: {other}")),
    }
}

impl<W: Write + Send> Encoder<W> for ParquetEncoder<W> {
    fn write_batch(&mut self, rows: &[EventRow]) -> Result<()> {
        let batch = events_record_batch(&self.schema, rows)?;
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
