//! One encoder interface for exported files of every model, with JSONLines and Parquet behind it.
//!
//! An encoder takes batches of rows and writes one file's bytes, already compressed, to any `Write`; it reports
//! how large the file has grown so the engine can split files at `max_file_size_mb`. What a model's row must
//! provide for that is [`ExportRow`] (its JSON line and its Arrow form): events ([`events`]) and persons
//! ([`persons`]).

pub mod events;
mod jsonl;
mod parquet;
pub mod persons;

use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

pub use self::jsonl::JsonLinesEncoder;
pub use self::parquet::{writer_properties, ParquetEncoder, ParquetSettings};

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;

use crate::error::Result;
use crate::format::{Compression, FileFormat};

/// A model's exported row: what the encoders need to write it.
pub trait ExportRow: Send + Sync + 'static {
    /// The model's Arrow schema, in the seed's column order (Parquet files).
    fn schema() -> SchemaRef;
    /// A record batch of `rows` in that schema.
    fn record_batch(schema: &SchemaRef, rows: &[Self]) -> Result<RecordBatch>
    where
        Self: Sized;
    /// Appends the row's JSONLines object (without the newline).
    fn write_json(&self, out: &mut Vec<u8>) -> Result<()>;
}

/// Writes rows of one model into one file.
pub trait Encoder<W: Write, R>: Send {
    /// Encodes a batch of rows.
    fn write_batch(&mut self, rows: &[R]) -> Result<()>;
    /// The file's size if it were finished now: bytes written out plus what is buffered (an estimate).
    fn size_estimate(&self) -> u64;
    /// Writes out what is buffered where that makes the size exact (a Parquet row group) and returns the size.
    fn settle(&mut self) -> Result<u64> {
        Ok(self.size_estimate())
    }
    /// Finishes the file (footer, compression trailer) and returns the writer.
    fn finish(self: Box<Self>) -> Result<W>;
}

/// The encoder for a format and compression; the pair must have been validated
/// ([`Compression::supported_by`]).
pub fn new_encoder<W: Write + Send + 'static, R: ExportRow>(
    format: FileFormat,
    compression: Option<Compression>,
    parquet: &ParquetSettings,
    out: W,
) -> Result<Box<dyn Encoder<W, R>>> {
    Ok(match format {
        FileFormat::JSONLines => Box::new(JsonLinesEncoder::new(out, compression)?),
        FileFormat::Parquet => Box::new(ParquetEncoder::new(out, compression, parquet)?),
    })
}

/// A writer that counts the bytes passing through it; the count is shared so it can be read while an encoder
/// owns the writer.
pub struct CountingWriter<W> {
    inner: W,
    count: Arc<AtomicU64>,
}

impl<W> CountingWriter<W> {
    pub fn new(inner: W) -> Self {
        CountingWriter { inner, count: Arc::new(AtomicU64::new(0)) }
    }

    pub fn counter(&self) -> Arc<AtomicU64> {
        self.count.clone()
    }

    pub fn into_inner(self) -> W {
        self.inner
    }
}

impl<W: Write> Write for CountingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, Read};

    use ::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use arrow_array::cast::AsArray;
    use arrow_array::types::TimestampMicrosecondType;
    use arrow_array::Array;
    use arrow_schema::{DataType, TimeUnit};

    use super::*;
    use crate::event::EventRow;
    use crate::format::{CompressedReader, FORMAT_COMPRESSIONS};
    use crate::sources::synthetic::SyntheticEvents;

    fn rows(n: usize) -> Vec<EventRow> {
        let start = chrono::DateTime::parse_from_rfc3339("2024-03-01T10:00:00Z").unwrap().to_utc();
        let mut rows = SyntheticEvents::new(42, 1).events_between(start, chrono::Duration::hours(1), n);
        rows[1].person_id = None;
        rows[1].properties = None;
        rows[2].created_at = None;
        rows
    }

    fn encode(format: FileFormat, compression: Option<Compression>, rows: &[EventRow]) -> Vec<u8> {
        let mut encoder = new_encoder(format, compression, &ParquetSettings::default(), Vec::new()).unwrap();
        for batch in rows.chunks(700) {
            encoder.write_batch(batch).unwrap();
        }
        if compression.is_none() {
            assert!(encoder.size_estimate() > 0);
        }
        encoder.finish().unwrap()
    }

    #[test]
    fn jsonlines_round_trips_in_every_compression() {
        let rows = rows(2000);
        for (_, compression) in FORMAT_COMPRESSIONS.into_iter().filter(|(f, _)| *f == FileFormat::JSONLines) {
            let bytes = encode(FileFormat::JSONLines, compression, &rows);
            // Arrow's JSON reader sees the JSONLines columns: strings, nested objects, ISO timestamp strings.
            let mut text = Vec::new();
            CompressedReader::open(&bytes[..], compression).unwrap().read_to_end(&mut text).unwrap();
            let (schema, _) = arrow_json::reader::infer_json_schema(&text[..], None).unwrap();
            // (Inference sorts columns by name; the order within a line is pinned by model.rs's tests.)
            let mut columns: Vec<(&str, String)> = schema
                .fields()
                .iter()
                .map(|f| {
                    let kind = match f.data_type() {
                        DataType::Struct(_) => "object".to_string(),
                        other => other.to_string(),
                    };
                    (f.name().as_str(), kind)
                })
                .collect();
            let mut expected_columns: Vec<(&str, String)> = [
                ("uuid", "Utf8"),
                ("event", "Utf8"),
                ("distinct_id", "Utf8"),
                ("person_id", "Utf8"),
                ("properties", "object"),
                ("person_properties", "object"),
                ("elements_chain", "Utf8"),
                ("timestamp", "Utf8"),
                ("created_at", "Utf8"),
                ("_inserted_at", "Utf8"),
            ]
            .into_iter()
            .map(|(n, t)| (n, t.to_string()))
            .collect();
            columns.sort();
            expected_columns.sort();
            assert_eq!(columns, expected_columns, "{compression:?}");
            let arrow_rows: usize = arrow_json::ReaderBuilder::new(std::sync::Arc::new(schema))
                .build(&text[..])
                .unwrap()
                .map(|b| b.unwrap().num_rows())
                .sum();
            assert_eq!(arrow_rows, rows.len());
            let reader = CompressedReader::open(&bytes[..], compression).unwrap();
            let lines: Vec<serde_json::Value> =
                reader.lines().map(|l| serde_json::from_str(&l.unwrap()).unwrap()).collect();
            assert_eq!(lines.len(), rows.len(), "{compression:?}");
            for (line, row) in lines.iter().zip(&rows) {
                let expected = serde_json::to_value(row.as_export_json()).unwrap();
                assert_eq!(line, &expected);
                let keys: Vec<&str> = line.as_object().unwrap().keys().map(String::as_str).collect();
                assert_eq!(keys.len(), 10);
                assert!(line["properties"].is_object() || (line["properties"].is_null() && row.properties.is_none()));
                assert!(line["timestamp"].as_str().unwrap().ends_with('Z'));
            }
        }
    }

    #[test]
    fn parquet_round_trips_in_every_compression() {
        let rows = rows(2000);
        let utc = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
        let expected_schema = [
            ("uuid", DataType::Utf8),
            ("event", DataType::Utf8),
            ("distinct_id", DataType::Utf8),
            ("person_id", DataType::Utf8),
            ("properties", DataType::Utf8),
            ("person_properties", DataType::Utf8),
            ("elements_chain", DataType::Utf8),
            ("timestamp", utc.clone()),
            ("created_at", utc.clone()),
            ("_inserted_at", utc),
        ];
        for (_, compression) in FORMAT_COMPRESSIONS.into_iter().filter(|(f, _)| *f == FileFormat::Parquet) {
            let bytes = bytes::Bytes::from(encode(FileFormat::Parquet, compression, &rows));
            let builder = ParquetRecordBatchReaderBuilder::try_new(bytes).unwrap();
            let codec = builder.metadata().row_group(0).column(0).compression();
            let expected_codec = match compression {
                None => "UNCOMPRESSED",
                Some(Compression::Zstd) => "ZSTD",
                Some(Compression::Lz4) => "LZ4_RAW",
                Some(Compression::Snappy) => "SNAPPY",
                Some(Compression::Gzip) => "GZIP",
                Some(Compression::Brotli) => "BROTLI",
            };
            assert!(codec.to_string().starts_with(expected_codec), "{codec} for {compression:?}");
            let schema = builder.schema().clone();
            let got: Vec<(&str, DataType)> =
                schema.fields().iter().map(|f| (f.name().as_str(), f.data_type().clone())).collect();
            assert_eq!(got, expected_schema.to_vec(), "{compression:?}");
            let mut i = 0;
            for batch in builder.build().unwrap() {
                let batch = batch.unwrap();
                let s = |c: usize| batch.column(c).as_string::<i32>().clone();
                let t = |c: usize| batch.column(c).as_primitive::<TimestampMicrosecondType>().clone();
                let (uuid, props, person) = (s(0), s(4), s(3));
                let (ts, created, inserted) = (t(7), t(8), t(9));
                for j in 0..batch.num_rows() {
                    let row = &rows[i];
                    assert_eq!(uuid.value(j), row.uuid);
                    assert_eq!(person.is_null(j), row.person_id.is_none());
                    match &row.properties {
                        Some(p) => assert_eq!(props.value(j), p.get()),
                        None => assert!(props.is_null(j)),
                    }
                    assert_eq!(ts.value(j), row.timestamp);
                    assert_eq!(created.is_null(j), row.created_at.is_none());
                    assert_eq!(inserted.value(j), row.inserted_at);
                    i += 1;
                }
            }
            assert_eq!(i, rows.len());
        }
    }

    #[test]
    fn counting_writer_counts() {
        let mut w = CountingWriter::new(Vec::new());
        let counter = w.counter();
        w.write_all(b"hello").unwrap();
        assert_eq!(counter.load(Ordering::Relaxed), 5);
        let mut back = String::new();
        (&w.into_inner()[..]).read_to_string(&mut back).unwrap();
        assert_eq!(back, "hello");
    }
}
