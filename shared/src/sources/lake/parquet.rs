//! Reading Parquet lake objects: the events columns plus `team_id`, in any string and timestamp encoding Arrow
//! can cast (Utf8/LargeUtf8/Utf8View; timestamps in any unit, or ISO 8601 strings).

use arrow_array::cast::AsArray;
use arrow_array::types::{Int64Type, TimestampMicrosecondType};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, TimeUnit};
use bytes::Bytes;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ProjectionMask;

use super::{object_from_text, LakeObject, RowKey};
use crate::error::{ExportError, Result, RowLocation};
use crate::event::EventRow;

const BATCH_ROWS: usize = 8192;
const KEY_COLUMNS: [&str; 4] = ["team_id", "uuid", "event", "_inserted_at"];
const ALL_COLUMNS: [&str; 11] = [
    "team_id",
    "uuid",
    "event",
    "distinct_id",
    "person_id",
    "properties",
    "person_properties",
    "elements_chain",
    "timestamp",
    "created_at",
    "_inserted_at",
];
const REQUIRED: [&str; 6] = ["team_id", "uuid", "event", "distinct_id", "timestamp", "_inserted_at"];

fn unreadable(object: &LakeObject, reason: impl std::fmt::Display) -> ExportError {
    ExportError::UnreadableObject { key: object.key.clone(), reason: reason.to_string() }
}

/// Reads the wanted columns batch by batch, cast to Int64 / Utf8 / Timestamp(µs); absent optional columns are
/// all-null. Calls `visit` with the batch's columns in `wanted` order and the row offset of the batch.
fn for_each_batch(
    bytes: Bytes,
    object: &LakeObject,
    wanted: &[&str],
    visit: &mut dyn FnMut(u64, &[ArrayRef]) -> Result<()>,
) -> Result<()> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(|e| unreadable(object, e))?;
    let schema = builder.schema().clone();
    for required in REQUIRED.iter().filter(|r| wanted.contains(r)) {
        if schema.column_with_name(required).is_none() {
            return Err(unreadable(object, format!("missing required column `{required}`")));
        }
    }
    let present: Vec<&str> = wanted.iter().copied().filter(|c| schema.column_with_name(c).is_some()).collect();
    let mask = ProjectionMask::columns(builder.parquet_schema(), present.iter().copied());
    let reader =
        builder.with_projection(mask).with_batch_size(BATCH_ROWS).build().map_err(|e| unreadable(object, e))?;
    let mut offset = 0u64;
    for batch in reader {
        let batch: RecordBatch = batch.map_err(|e| unreadable(object, e))?;
        let columns = wanted.iter().map(|name| column_as(object, &batch, name)).collect::<Result<Vec<_>>>()?;
        visit(offset, &columns)?;
        offset += batch.num_rows() as u64;
    }
    Ok(())
}

fn column_as(object: &LakeObject, batch: &RecordBatch, name: &str) -> Result<ArrayRef> {
    let target = match name {
        "team_id" => DataType::Int64,
        "timestamp" | "created_at" | "_inserted_at" => DataType::Timestamp(TimeUnit::Microsecond, None),
        _ => DataType::Utf8,
    };
    match batch.column_by_name(name) {
        Some(column) => arrow_cast::cast(column, &target)
            .map_err(|e| unreadable(object, format!("column `{name}` cannot be read as {target}: {e}"))),
        None => Ok(arrow_array::new_null_array(&target, batch.num_rows())),
    }
}

fn required_null(object: &LakeObject, at: RowLocation, column: &str) -> ExportError {
    ExportError::malformed(&object.key, at, format!("`{column}` is null"))
}

pub(super) fn visit_keys(
    bytes: Bytes,
    object: &LakeObject,
    visit: &mut dyn FnMut(RowLocation, RowKey<'_>) -> Result<()>,
) -> Result<()> {
    for_each_batch(bytes, object, &KEY_COLUMNS, &mut |offset, cols| {
        let team = cols[0].as_primitive::<Int64Type>();
        let (uuid, event) = (cols[1].as_string::<i32>(), cols[2].as_string::<i32>());
        let inserted = cols[3].as_primitive::<TimestampMicrosecondType>();
        for i in 0..team.len() {
            let at = RowLocation::Row(offset + i as u64);
            for (col, name) in cols.iter().zip(KEY_COLUMNS) {
                if col.is_null(i) {
                    return Err(required_null(object, at, name));
                }
            }
            visit(
                at,
                RowKey {
                    team_id: team.value(i),
                    uuid: uuid.value(i),
                    event: event.value(i),
                    inserted_at: inserted.value(i),
                },
            )?;
        }
        Ok(())
    })
}

pub(super) fn visit_rows(
    bytes: Bytes,
    object: &LakeObject,
    visit: &mut dyn FnMut(RowLocation, EventRow) -> Result<()>,
) -> Result<()> {
    for_each_batch(bytes, object, &ALL_COLUMNS, &mut |offset, cols| {
        let team = cols[0].as_primitive::<Int64Type>();
        let s: Vec<_> = cols[1..8].iter().map(|c| c.as_string::<i32>()).collect();
        let t: Vec<_> = cols[8..11].iter().map(|c| c.as_primitive::<TimestampMicrosecondType>()).collect();
        for i in 0..team.len() {
            let at = RowLocation::Row(offset + i as u64);
            for (col, name) in cols.iter().zip(ALL_COLUMNS) {
                if REQUIRED.contains(&name) && col.is_null(i) {
                    return Err(required_null(object, at, name));
                }
            }
            let text = |j: usize| (!s[j].is_null(i)).then(|| s[j].value(i).to_string());
            let time = |j: usize| (!t[j].is_null(i)).then(|| t[j].value(i));
            let json = |j: usize, field: &str| {
                text(j)
                    .map(|v| object_from_text(v, field))
                    .transpose()
                    .map(Option::flatten)
                    .map_err(|e| ExportError::malformed(&object.key, at, e))
            };
            let row = EventRow {
                team_id: team.value(i),
                uuid: s[0].value(i).to_string(),
                event: s[1].value(i).to_string(),
                distinct_id: s[2].value(i).to_string(),
                person_id: text(3),
                properties: json(4, "properties")?,
                person_properties: json(5, "person_properties")?,
                elements_chain: text(6),
                timestamp: t[0].value(i),
                created_at: time(1),
                inserted_at: t[2].value(i),
            };
            visit(at, row)?;
        }
        Ok(())
    })
}
