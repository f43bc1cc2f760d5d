//! The persons model's rows as the encoders write them: the row as JSON (`properties` nested) and the seed's
//! columns in Parquet (`properties` as JSON text).

use std::sync::Arc;

use arrow_array::{ArrayRef, BooleanArray, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use chrono::{DateTime, Utc};

use super::ExportRow;
use crate::error::{InternalContext, Result};
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

impl ExportRow for PersonRow {
    fn schema() -> SchemaRef {
        persons_schema()
    }

    fn record_batch(schema: &SchemaRef, rows: &[Self]) -> Result<RecordBatch> {
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
        RecordBatch::try_new(schema.clone(), columns).internal("persons record batch")
    }

    fn write_json(&self, out: &mut Vec<u8>) -> Result<()> {
        serde_json::to_writer(out, self).internal(format!("serializing person row `{}`", self.distinct_id))
    }
}
