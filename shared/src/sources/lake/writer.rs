//! Writing events into the lake's layout: used by the sample-data command, the tests and the benchmark.

use std::io::Write;
use std::sync::Arc;

use arrow_array::{Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use chrono::{DateTime, Utc};
use parquet::arrow::ArrowWriter;

use super::partition_prefix;
use crate::aws_error::classify_sdk_error;
use crate::error::{InternalContext, Result};
use crate::event::EventRow;
use crate::event::{events_record_batch, events_schema};
use crate::format::CompressedWriter;
use crate::format::Compression;

/// The key of a lake object named `name` in the partition of `hour`.
pub fn lake_object_key(lake_prefix: &str, team_id: i64, hour: DateTime<Utc>, name: &str) -> String {
    format!("{}{name}", partition_prefix(lake_prefix, team_id, hour))
}

/// Newline-delimited JSON of the rows (with `team_id`), compressed as asked.
pub fn ndjson_bytes(rows: &[EventRow], compression: Option<Compression>) -> Result<Vec<u8>> {
    let mut out = CompressedWriter::new(Vec::new(), compression)?;
    write_ndjson(&mut out, rows)?;
    Ok(out.finish()?)
}

/// Appends rows as newline-delimited JSON to a writer.
pub fn write_ndjson(out: &mut impl Write, rows: &[EventRow]) -> Result<()> {
    let mut line = Vec::with_capacity(2048);
    for row in rows {
        line.clear();
        serde_json::to_writer(&mut line, &row.as_lake_json()).internal("lake sample data")?;
        line.push(b'\n');
        out.write_all(&line)?;
    }
    Ok(())
}

/// A Parquet lake object: `team_id` followed by the events columns.
pub fn parquet_bytes(rows: &[EventRow]) -> Result<Vec<u8>> {
    let events = events_record_batch(&events_schema(), rows)?;
    let mut fields = vec![Arc::new(Field::new("team_id", DataType::Int64, false))];
    fields.extend(events.schema().fields().iter().cloned());
    let mut columns: Vec<arrow_array::ArrayRef> =
        vec![Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.team_id)))];
    columns.extend(events.columns().iter().cloned());
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).internal("lake sample data")?;
    let mut writer = ArrowWriter::try_new(Vec::new(), batch.schema(), None).internal("lake sample data")?;
    writer.write(&batch).internal("lake sample data")?;
    writer.into_inner().internal("lake sample data")
}

/// Puts one lake object.
pub async fn put_object(client: &aws_sdk_s3::Client, bucket: &str, key: &str, body: Vec<u8>) -> Result<()> {
    client
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(body.into())
        .send()
        .await
        .map_err(|e| classify_sdk_error(e, "PutObject", bucket, None))?;
    Ok(())
}
