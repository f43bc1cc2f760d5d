//! The persons model: a mutable model, exported as one row per `(team_id, distinct_id)`.
//!
//! **Lake layout.** Person changes land beside the events, under
//! `{lake prefix}persons/team_id={team}/date={YYYY-MM-DD}/hour={HH}/{name}.jsonl[.gz|.zst]`, partitioned by the
//! hour they landed, one JSON object per line:
//! `{"team_id", "distinct_id", "person_id", "properties": {…}, "person_version", "person_distinct_id_version",
//! "created_at", "is_deleted", "_inserted_at"}` (times RFC 3339). A change to a person's properties carries its
//! new `person_version`; a change of the person a distinct id maps to carries its new
//! `person_distinct_id_version`.
//!
//! **A run** takes the changes that landed in its interval and exports, per `(team_id, distinct_id)`, the pair
//! "mapped to their corresponding person_id and latest properties" (the seed): `person_id` and
//! `person_distinct_id_version` from the distinct id's change with the highest `person_distinct_id_version`;
//! `properties`, `person_version`, `created_at` and `is_deleted` from the change **of that person** (any of its
//! distinct ids) with the highest `person_version` (ties: the later landed). Versions of different persons are
//! never compared: a distinct id that moved to a person with a lower `person_version` takes that person's
//! properties. `_inserted_at` is the latest of the two changes. Destinations then merge these rows by the same
//! rule (BigQuery `MERGE`), so an older change never overwrites a newer one.

use std::collections::HashMap;
use std::io::BufRead;
use std::sync::Arc;

use arrow_array::{ArrayRef, BooleanArray, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::{Compression, FileFormat};
use crate::encode::{writer_properties, CompressedReader, CompressedWriter, ParquetSettings};
use crate::error::{ExportError, Result, RowLocation};
use crate::lake::{LakeFormat, LakeStore};
use crate::model::Interval;

/// One person change as the lake holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PersonChange {
    pub team_id: i64,
    pub distinct_id: String,
    pub person_id: String,
    #[serde(default)]
    pub properties: serde_json::Value,
    pub person_version: i64,
    pub person_distinct_id_version: i64,
    pub created_at: DateTime<Utc>,
    #[serde(default)]
    pub is_deleted: bool,
    #[serde(rename = "_inserted_at")]
    pub inserted_at: DateTime<Utc>,
}

/// One exported person row (the seed's persons model), as JSONLines writes it.
pub type PersonRow = PersonChange;

/// The latest state per `(team_id, distinct_id)` of the changes given (see the module doc), sorted by key.
pub fn latest_per_distinct_id(changes: impl IntoIterator<Item = PersonChange>) -> Vec<PersonRow> {
    // Later wins on equal versions: the one that landed later (then the later in the input).
    fn keep_newer(slot: &mut PersonChange, change: &PersonChange, version: fn(&PersonChange) -> i64) {
        if (version(change), change.inserted_at) >= (version(slot), slot.inserted_at) {
            *slot = change.clone();
        }
    }
    let mut mappings: HashMap<(i64, String), PersonChange> = HashMap::new();
    let mut persons: HashMap<(i64, String), PersonChange> = HashMap::new();
    for change in changes {
        let person_key = (change.team_id, change.person_id.clone());
        match persons.get_mut(&person_key) {
            Some(person) => keep_newer(person, &change, |c| c.person_version),
            None => {
                persons.insert(person_key, change.clone());
            }
        }
        let key = (change.team_id, change.distinct_id.clone());
        match mappings.get_mut(&key) {
            Some(mapping) => keep_newer(mapping, &change, |c| c.person_distinct_id_version),
            None => {
                mappings.insert(key, change);
            }
        }
    }
    let mut rows: Vec<PersonRow> = mappings
        .into_values()
        .map(|mapping| {
            let person = &persons[&(mapping.team_id, mapping.person_id.clone())];
            PersonRow {
                team_id: mapping.team_id,
                distinct_id: mapping.distinct_id,
                person_id: mapping.person_id,
                properties: person.properties.clone(),
                person_version: person.person_version,
                person_distinct_id_version: mapping.person_distinct_id_version,
                created_at: person.created_at,
                is_deleted: person.is_deleted,
                inserted_at: mapping.inserted_at.max(person.inserted_at),
            }
        })
        .collect();
    rows.sort_by(|a, b| (a.team_id, &a.distinct_id).cmp(&(b.team_id, &b.distinct_id)));
    rows
}

/// Reads the person changes of a team that landed in an interval and returns the run's rows.
pub async fn read_persons(lake: &LakeStore, team_id: i64, interval: &Interval) -> Result<Vec<PersonRow>> {
    let objects = lake.list_table("persons", team_id, interval).await?;
    let lake = lake.clone();
    let interval = *interval;
    tokio::task::spawn_blocking(move || {
        let mut changes = Vec::new();
        for object in objects {
            let LakeFormat::Ndjson(compression) = object.format else {
                return Err(ExportError::UnreadableObject {
                    key: object.key,
                    reason: "person changes must be newline-delimited JSON (.jsonl, .jsonl.gz, .jsonl.zst)".into(),
                });
            };
            let reader = CompressedReader::open(lake.open(&object)?, compression)?;
            for (n, line) in reader.lines().enumerate() {
                let line = line.map_err(|e| crate::lake::read_error(&object.key, e))?;
                if line.trim().is_empty() {
                    continue;
                }
                let change: PersonChange = serde_json::from_str(&line)
                    .map_err(|e| ExportError::malformed(&object.key, RowLocation::Line(n as u64 + 1), e.to_string()))?;
                let at = change.inserted_at.timestamp_micros();
                if change.team_id == team_id && interval.contains_micros(at) {
                    changes.push(change);
                }
            }
        }
        Ok(latest_per_distinct_id(changes))
    })
    .await
    .map_err(|e| ExportError::Internal(format!("persons reader: {e}")))?
}

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
                serde_json::to_writer(&mut out, row).map_err(|e| ExportError::Internal(format!("person JSON: {e}")))?;
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
            let batch = RecordBatch::try_new(schema.clone(), columns)
                .map_err(|e| ExportError::Internal(format!("persons record batch: {e}")))?;
            let properties = writer_properties(compression, &ParquetSettings::default());
            let mut writer = parquet::arrow::ArrowWriter::try_new(Vec::new(), schema, Some(properties))
                .map_err(|e| ExportError::Internal(format!("parquet writer: {e}")))?;
            writer.write(&batch).map_err(|e| ExportError::Internal(format!("parquet write: {e}")))?;
            writer.into_inner().map_err(|e| ExportError::Internal(format!("parquet finish: {e}")))
        }
    }
}

/// A persons run to an S3 destination: reads the interval's person changes, writes one file of the latest row
/// per `(team_id, distinct_id)` (named as an events file is, under the prefix rendered with `{table}` =
/// `persons`), and returns what it wrote. An interval without changes writes nothing.
pub async fn export_persons(
    lake: &LakeStore,
    target: &crate::s3::S3Target,
    team_id: i64,
    interval: &Interval,
    config: &crate::S3DestinationConfig,
) -> Result<crate::ExportOutcome> {
    config.validate()?;
    let rows = read_persons(lake, team_id, interval).await?;
    if rows.is_empty() {
        return Ok(crate::ExportOutcome::new(Vec::new(), None));
    }
    let prefix = crate::keys::KeyTemplate::parse(&config.prefix)?.render(interval, crate::model::Model::Persons);
    let file_n = config.max_file_size_mb.map(|_| 0);
    let key = crate::keys::data_file_key(&prefix, interval, None, file_n, config.file_format, config.compression);
    let body = encode_persons(&rows, config.file_format, config.compression)?;
    let bytes = body.len() as u64;
    target.put(&key, bytes::Bytes::from(body)).await?;
    let file = crate::export::WrittenFile { key, bytes, records: rows.len() as u64 };
    Ok(crate::ExportOutcome::new(vec![file], None))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    fn change(distinct_id: &str, person: &str, pv: i64, dv: i64, landed: &str) -> PersonChange {
        PersonChange {
            team_id: 1,
            distinct_id: distinct_id.into(),
            person_id: person.into(),
            properties: serde_json::json!({"v": pv}),
            person_version: pv,
            person_distinct_id_version: dv,
            created_at: t("2026-01-01T00:00:00Z"),
            is_deleted: false,
            inserted_at: t(landed),
        }
    }

    #[test]
    fn each_distinct_id_takes_its_latest_person_and_that_persons_latest_properties() {
        let rows = latest_per_distinct_id([
            change("a", "p1", 3, 1, "2026-11-20T10:00:00Z"),
            change("a", "p1", 2, 1, "2026-11-20T10:01:00Z"),
            change("b", "p3", 1, 1, "2026-11-20T10:01:00Z"),
        ]);
        assert_eq!(rows.len(), 2);
        let a = &rows[0];
        assert_eq!((a.person_id.as_str(), a.person_version, a.person_distinct_id_version), ("p1", 3, 1));
        assert_eq!(a.properties, serde_json::json!({"v": 3}));
        assert_eq!(a.inserted_at, t("2026-11-20T10:01:00Z"));
        assert_eq!(rows[1].distinct_id, "b");
    }

    #[test]
    fn a_distinct_id_moved_to_another_person_takes_that_persons_properties() {
        // `a` moves from p1 (person_version 5) to p2 (person_version 1); p2's latest properties came in on `c`.
        let rows = latest_per_distinct_id([
            change("a", "p1", 5, 1, "2026-11-20T10:00:00Z"),
            change("a", "p2", 1, 2, "2026-11-20T10:05:00Z"),
            change("c", "p2", 4, 1, "2026-11-20T10:02:00Z"),
        ]);
        let a = &rows[0];
        assert_eq!((a.person_id.as_str(), a.person_distinct_id_version), ("p2", 2));
        assert_eq!((a.person_version, a.properties.clone()), (4, serde_json::json!({"v": 4})), "p2's latest, not p1's");
        let c = &rows[1];
        assert_eq!((c.person_id.as_str(), c.person_version), ("p2", 4));
    }
}
