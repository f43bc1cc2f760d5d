//! The persons model's files: its Parquet schema (the seed's columns) and one file of person rows in either
//! format.

use std::sync::Arc;

use arrow_array::{ArrayRef, BooleanArray, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use chrono::{DateTime, Utc};

use super::{writer_properties, ParquetSettings};
use crate::error::{InternalContext, Result};
use crate::format::CompressedWriter;
use crate::format::{Compression, FileFormat};
use crate::person::PersonRow;

/// The persons model's Parquet schema (the seed's columns; properties as JSON text).
pub fn persons_schema() -> SchemaRef {
    let time = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    Arc::new(Schema::new(vec![
        Field::new("team_id", DataType::Int64, false),
        Field::new("distinct_id", DataType::Utf8, false),
        Field::new("person_id", DataType::Utf8, false),
        Field::new("properties", DataType::Utf8, true),
        Field::new("person_distinct_id_version", DataType::Int64, false),
        Field::new("person_version", DataType::Int64, false),
        Field::new("created_at", time.clone(), false),
        Field::new("_inserted_at", time, false),
        Field::new("is_deleted", DataType::Boolean, false),
    ]))
}

/// Encodes person rows as one file of `format`, compressed as asked.
pub fn encode_persons(rows: &[PersonRow], format: FileFormat, compression: Option<Compression>) -> Result<Vec<u8>> {
    match format {
        FileFormat::JSONLines => {
            let mut out = CompressedWriter::new(Vec::new(), compression)?;
            for row in rows {
                serde_json::to_writer(&mut out, row).internal("person JSON")?;
                std::io::Write::write_all(&mut out, b"\n")?;
            }
            Ok(out.finish()?)
        }
        FileFormat::Parquet => {
            let schema = persons_schema();
            let time = |f: fn(&PersonRow) -> DateTime<Utc>| {
                Arc::new(
                    TimestampMicrosecondArray::from(rows.iter().map(|r| f(r).timestamp_micros()).collect::<Vec<_>>())
                        .with_timezone("UTC"),
                ) as ArrayRef
            };
            let columns: Vec<ArrayRef> = vec![
                Arc::new(Int64Array::from(rows.iter().map(|r| r.team_id).collect::<Vec<_>>())),
                Arc::new(StringArray::from(rows.iter().map(|r| r.distinct_id.as_str()).collect::<Vec<_>>())),
                Arc::new(StringArray::from(rows.iter().map(|r| r.person_id.as_str()).collect::<Vec<_>>())),
                Arc::new(StringArray::from(rows.iter().map(|r| Some(r.properties.to_string())).collect::<Vec<_>>())),
                Arc::new(Int64Array::from(rows.iter().map(|r| r.person_distinct_id_version).collect::<Vec<_>>())),
                Arc::new(Int64Array::from(rows.iter().map(|r| r.person_version).collect::<Vec<_>>())),
                time(|r| r.created_at),
                time(|r| r.inserted_at),
                Arc::new(BooleanArray::from(rows.iter().map(|r| r.is_deleted).collect::<Vec<_>>())),
            ];
            let batch = RecordBatch::try_new(schema.clone(), columns).internal("persons record batch")?;
            let properties = writer_properties(compression, &ParquetSettings::default());
            let mut writer = parquet::arrow::ArrowWriter::try_new(Vec::new(), schema, Some(properties))
                .internal("parquet writer")?;
            writer.write(&batch).internal("parquet write")?;
            writer.into_inner().internal("parquet finish")
        }
    }
}
