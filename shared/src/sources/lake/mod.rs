//! The event lake: where events land, and how a run reads exactly the rows of its interval.
//!
//! Layout (documented in the README): one object per batch of landed events, under an hourly partition of the
//! time the events landed (`_inserted_at`, UTC):
//!
//! ```text
//! {lake prefix}events/team_id={team_id}/date={YYYY-MM-DD}/hour={HH}/{any name}.{jsonl|jsonl.gz|jsonl.zst|parquet}
//! ```
//!
//! A run over `[start, end)` lists the hour partitions the interval touches (objects sorted by key; names
//! starting with `_` or `.` are markers and skipped), and reads them in two passes:
//! 1. [`plan_rows`] reads only the key fields (`team_id`, `uuid`, `event`, `_inserted_at`) of every row, keeps
//!    rows with `start <= _inserted_at < end` that pass `include_events`/`exclude_events`, and finds repeated
//!    uuids with a bounded-memory external sort ([`dedupe`]);
//! 2. [`read_rows`] reads the full rows again, skips the repeats found in pass 1 (the first occurrence in key
//!    and row order is kept), and hands them on in batches of `batch_size`.
//!
//! Memory is bounded by the batch size, the de-duplication buffer and one Parquet lake object (Parquet objects
//! are read whole; newline-delimited JSON is streamed). A row that cannot be read, whose `team_id` differs from
//! its partition's, or whose `_inserted_at` is outside its partition's hour fails the run with an error naming
//! the object key and line (JSON) or row (Parquet): nothing is skipped silently.

pub mod dedupe;
mod ndjson;
mod parquet;
pub mod persons;
mod scan;
mod sorted_runs;
mod store;
pub mod writer;

use std::collections::HashSet;

use chrono::{DateTime, Duration, DurationRound, Utc};
use serde::{Deserialize, Serialize};

pub(crate) use self::store::read_error;
pub use self::store::{LakeObject, LakeStore};
use crate::error::{ExportError, Result, RowLocation};
use crate::event::EventRow;
use crate::format::Compression;
use crate::time::Interval;

/// The encoding of a lake object, from its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LakeFormat {
    Ndjson(Option<Compression>),
    Parquet,
}

impl LakeFormat {
    /// The format of an object name, or `None` for a name the lake does not hold.
    pub fn from_key(key: &str) -> Option<Self> {
        let name = key.rsplit('/').next().unwrap_or(key);
        if name.ends_with(".parquet") {
            Some(LakeFormat::Parquet)
        } else if name.ends_with(".jsonl") || name.ends_with(".ndjson") {
            Some(LakeFormat::Ndjson(None))
        } else if name.ends_with(".jsonl.gz") || name.ends_with(".ndjson.gz") {
            Some(LakeFormat::Ndjson(Some(Compression::Gzip)))
        } else if name.ends_with(".jsonl.zst") || name.ends_with(".ndjson.zst") {
            Some(LakeFormat::Ndjson(Some(Compression::Zstd)))
        } else {
            None
        }
    }
}

/// The key prefix of one hour partition of a team's events.
pub fn partition_prefix(lake_prefix: &str, team_id: i64, hour: DateTime<Utc>) -> String {
    table_partition_prefix(lake_prefix, "events", team_id, hour)
}

/// The partition of a table of the lake (`events`, `persons`) for a team's hour.
pub fn table_partition_prefix(lake_prefix: &str, table: &str, team_id: i64, hour: DateTime<Utc>) -> String {
    format!("{lake_prefix}{table}/team_id={team_id}/date={}/hour={}/", hour.format("%Y-%m-%d"), hour.format("%H"))
}

/// The hours (partition starts) an interval touches.
pub fn partition_hours(interval: &Interval) -> Vec<DateTime<Utc>> {
    let mut hour = interval.start.duration_trunc(Duration::hours(1)).expect("hour truncation of a valid time");
    let mut hours = Vec::new();
    while hour < interval.end {
        hours.push(hour);
        hour += Duration::hours(1);
    }
    hours
}

/// Which rows of the lake belong to a run.
#[derive(Debug, Clone)]
pub struct RowFilter {
    pub team_id: i64,
    pub interval: Interval,
    pub include_events: Option<HashSet<String>>,
    pub exclude_events: HashSet<String>,
}

impl RowFilter {
    pub fn new(team_id: i64, interval: Interval, include: &[String], exclude: &[String]) -> Self {
        RowFilter {
            team_id,
            interval,
            include_events: (!include.is_empty()).then(|| include.iter().cloned().collect()),
            exclude_events: exclude.iter().cloned().collect(),
        }
    }

    /// Whether a row belongs to the run; an error when it does not belong where it was found.
    fn keep(&self, object: &LakeObject, at: RowLocation, team_id: i64, event: &str, inserted_at: i64) -> Result<bool> {
        if team_id != self.team_id {
            return Err(ExportError::malformed(
                &object.key,
                at,
                format!("team_id {team_id} in the partition of team {}", self.team_id),
            ));
        }
        if !object.partition_contains(inserted_at) {
            return Err(ExportError::malformed(
                &object.key,
                at,
                format!("_inserted_at {} is outside its partition hour", crate::time::IsoMicros(inserted_at)),
            ));
        }
        Ok(self.interval.contains_micros(inserted_at)
            && self.include_events.as_ref().is_none_or(|inc| inc.contains(event))
            && !self.exclude_events.contains(event))
    }
}

/// The key fields of a row, read by the planning pass.
pub struct RowKey<'a> {
    pub team_id: i64,
    pub uuid: &'a str,
    pub event: &'a str,
    pub inserted_at: i64,
}

/// What the planning pass found: how many rows the run exports and which to skip as repeats.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RowPlan {
    /// Rows to export (after filters and de-duplication).
    pub records: u64,
    /// Rows kept by the filters, per object (objects with none are not read again).
    pub kept_per_object: Vec<u64>,
    /// Ordinals (among kept rows, in read order) of repeated uuids, ascending.
    pub duplicates: Vec<u64>,
}

fn parse_uuid(object: &LakeObject, at: RowLocation, uuid: &str) -> Result<u128> {
    uuid::Uuid::try_parse(uuid)
        .map(|u| u.as_u128())
        .map_err(|e| ExportError::malformed(&object.key, at, format!("uuid `{uuid}` is not a UUID: {e}")))
}

/// Pass 1: reads the key fields of every row of `objects`, applies the filter and finds repeated uuids.
/// Blocking: call from a blocking thread.
pub fn plan_rows(
    store: &LakeStore,
    objects: &[LakeObject],
    filter: &RowFilter,
    dedupe: &dedupe::DedupeSettings,
) -> Result<RowPlan> {
    let mut finder = dedupe::DuplicateFinder::new(dedupe)?;
    let mut ordinal = 0u64;
    let mut kept_per_object = Vec::with_capacity(objects.len());
    for object in objects {
        let before = ordinal;
        let mut visit = |at: RowLocation, key: RowKey<'_>| -> Result<()> {
            if filter.keep(object, at, key.team_id, key.event, key.inserted_at)? {
                finder.push(parse_uuid(object, at, key.uuid)?, ordinal)?;
                ordinal += 1;
            }
            Ok(())
        };
        match object.format {
            LakeFormat::Ndjson(c) => ndjson::visit_keys(store.open(object)?, c, object, &mut visit)?,
            LakeFormat::Parquet => parquet::visit_keys(store.read_whole(object)?, object, &mut visit)?,
        }
        kept_per_object.push(ordinal - before);
    }
    let duplicates = finder.finish()?;
    Ok(RowPlan { records: ordinal - duplicates.len() as u64, kept_per_object, duplicates })
}

/// Pass 2: reads the full rows of `objects` that the plan keeps and calls `on_batch` with batches of at most
/// `batch_size` rows. Returns the number of rows handed on.
/// Blocking: call from a blocking thread.
pub fn read_rows(
    store: &LakeStore,
    objects: &[LakeObject],
    filter: &RowFilter,
    plan: &RowPlan,
    batch_size: usize,
    on_batch: &mut dyn FnMut(&[EventRow]) -> Result<()>,
) -> Result<u64> {
    let mut rows = RowSink {
        filter,
        duplicates: plan.duplicates.iter().copied().peekable(),
        ordinal: 0,
        batch: Vec::new(),
        len: 0,
        batch_size: batch_size.max(1),
        handed_on: 0,
        on_batch,
    };
    for (object, kept) in objects.iter().zip(&plan.kept_per_object) {
        if *kept == 0 {
            continue;
        }
        match object.format {
            LakeFormat::Ndjson(c) => ndjson::visit_rows(store.open(object)?, c, object, &mut rows)?,
            LakeFormat::Parquet => parquet::visit_rows(store.read_whole(object)?, object, &mut |at, row| {
                let key =
                    RowKey { team_id: row.team_id, uuid: &row.uuid, event: &row.event, inserted_at: row.inserted_at };
                if rows.admit(object, at, &key)? {
                    *rows.slot() = row;
                    rows.commit()?;
                }
                Ok(())
            })?,
        }
    }
    rows.flush()?;
    if rows.handed_on != plan.records {
        return Err(ExportError::Transient {
            operation: "ReadLake",
            resource: "lake".into(),
            message: format!(
                "planned {} rows but read {}: the lake changed during the run",
                plan.records, rows.handed_on
            ),
        });
    }
    Ok(rows.handed_on)
}

/// Where the reading pass puts rows: it applies the filter and the plan's repeats, fills the rows of a batch
/// that it reuses (their strings keep their capacity, so reading allocates little once the first batch is
/// full) and hands each full batch on.
pub(super) struct RowSink<'a> {
    filter: &'a RowFilter,
    duplicates: std::iter::Peekable<std::iter::Copied<std::slice::Iter<'a, u64>>>,
    /// The ordinal the next row the filter keeps gets (as in the planning pass).
    ordinal: u64,
    batch: Vec<EventRow>,
    /// Rows of `batch` filled since the last hand-on.
    len: usize,
    batch_size: usize,
    handed_on: u64,
    on_batch: &'a mut dyn FnMut(&[EventRow]) -> Result<()>,
}

impl RowSink<'_> {
    /// Whether the row with this key is exported: the filter keeps it and it is not a repeat. Every row read
    /// must be asked, in order. When it answers `true`, fill [`Self::slot`] and [`Self::commit`] it.
    pub(super) fn admit(&mut self, object: &LakeObject, at: RowLocation, key: &RowKey<'_>) -> Result<bool> {
        if !self.filter.keep(object, at, key.team_id, key.event, key.inserted_at)? {
            return Ok(false);
        }
        let this = self.ordinal;
        self.ordinal += 1;
        Ok(self.duplicates.next_if_eq(&this).is_none())
    }

    /// The row to fill: a reused one, holding an earlier batch's values.
    pub(super) fn slot(&mut self) -> &mut EventRow {
        if self.len == self.batch.len() {
            self.batch.push(EventRow::default());
        }
        &mut self.batch[self.len]
    }

    /// Adds the filled slot to the batch.
    pub(super) fn commit(&mut self) -> Result<()> {
        self.len += 1;
        if self.len >= self.batch_size {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if self.len > 0 {
            self.handed_on += self.len as u64;
            (self.on_batch)(&self.batch[..self.len])?;
            self.len = 0;
        }
        Ok(())
    }
}

/// Turns a lake JSON value for `properties`/`person_properties` into the JSON text of an object: an object is
/// kept as is, a string holding an object's JSON (as ClickHouse stores it) is unwrapped, `null` is absent.
pub(crate) fn json_object_text(
    raw: Option<&serde_json::value::RawValue>,
    field: &str,
) -> std::result::Result<Option<Box<serde_json::value::RawValue>>, String> {
    let Some(raw) = raw else { return Ok(None) };
    match raw.get().as_bytes().first() {
        Some(b'{') => Ok(Some(raw.to_owned())),
        Some(b'"') => {
            let text: String = serde_json::from_str(raw.get()).map_err(|e| format!("`{field}`: {e}"))?;
            object_from_text(text, field)
        }
        _ => Err(format!("`{field}` must be a JSON object, got `{}`", raw.get())),
    }
}

/// Validates JSON text as an object (empty text is absent).
pub(crate) fn object_from_text(
    text: String,
    field: &str,
) -> std::result::Result<Option<Box<serde_json::value::RawValue>>, String> {
    if text.is_empty() {
        return Ok(None);
    }
    let raw = serde_json::value::RawValue::from_string(text).map_err(|e| format!("`{field}` is not JSON: {e}"))?;
    if raw.get().trim_start().starts_with('{') {
        Ok(Some(raw))
    } else {
        Err(format!("`{field}` must hold a JSON object, got `{}`", raw.get()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_from_keys() {
        assert_eq!(LakeFormat::from_key("a/b.jsonl"), Some(LakeFormat::Ndjson(None)));
        assert_eq!(LakeFormat::from_key("a/b.jsonl.zst"), Some(LakeFormat::Ndjson(Some(Compression::Zstd))));
        assert_eq!(LakeFormat::from_key("a/b.ndjson.gz"), Some(LakeFormat::Ndjson(Some(Compression::Gzip))));
        assert_eq!(LakeFormat::from_key("a/b.parquet"), Some(LakeFormat::Parquet));
        assert_eq!(LakeFormat::from_key("a/b.csv"), None);
    }

    #[test]
    fn partitions_of_intervals() {
        let i = Interval::parse("2024-01-01T23:55:00Z", "2024-01-02T01:00:00Z").unwrap();
        let hours = partition_hours(&i);
        assert_eq!(hours.len(), 2);
        assert_eq!(partition_prefix("lake/", 2, hours[0]), "lake/events/team_id=2/date=2024-01-01/hour=23/");
        assert_eq!(partition_prefix("", 2, hours[1]), "events/team_id=2/date=2024-01-02/hour=00/");
        let five = Interval::parse("2024-01-01T10:05:00Z", "2024-01-01T10:10:00Z").unwrap();
        assert_eq!(partition_hours(&five).len(), 1);
    }

    /// The reading pass reuses its rows from batch to batch: a row read into a slot that held another row
    /// must come out exactly as the lake has it (optional fields absent where the slot had them), repeats skipped.
    #[tokio::test]
    async fn rows_read_into_reused_slots_are_exactly_the_lakes() {
        let dir = tempfile::tempdir().unwrap();
        let hour = chrono::DateTime::from_timestamp(1_700_000_000 / 3600 * 3600, 0).unwrap();
        let mut rows =
            crate::sources::synthetic::SyntheticEvents::new(3, 1).events_between(hour, Duration::hours(1), 50);
        for (i, row) in rows.iter_mut().enumerate() {
            if i % 3 == 0 {
                (row.person_id, row.elements_chain, row.created_at) = (None, None, None);
                row.person_properties = None;
            }
            if i % 4 == 0 {
                row.properties = None;
            }
        }
        let mut lake = rows.clone();
        lake.extend(rows.iter().step_by(10).cloned()); // repeats, later in the hour
        for (n, part) in lake.chunks(20).enumerate() {
            let path = dir.path().join(writer::lake_object_key("", 1, hour, &format!("o{n}.jsonl")));
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            writer::write_ndjson(&mut std::fs::File::create(&path).unwrap(), part).unwrap();
        }
        let store = LakeStore::Local { root: dir.path().to_path_buf() };
        let interval = Interval::new(hour, hour + Duration::hours(1)).unwrap();
        let objects = store.list(1, &interval).await.unwrap();
        let filter = RowFilter::new(1, interval, &[], &[]);
        let plan = plan_rows(&store, &objects, &filter, &dedupe::DedupeSettings::default()).unwrap();
        assert_eq!((plan.records, plan.duplicates.len()), (50, 5));
        let mut read = Vec::new();
        let n = read_rows(&store, &objects, &filter, &plan, 3, &mut |batch| {
            assert!(batch.len() <= 3);
            read.extend(batch.iter().cloned());
            Ok(())
        })
        .unwrap();
        assert_eq!(n, 50);
        assert!(read == rows, "the rows read differ from the lake's");
    }

    #[test]
    fn property_values() {
        let raw = |s: &str| Some(serde_json::value::RawValue::from_string(s.into()).unwrap());
        let raw = |s: &str| raw(s).map(|r| Box::leak(r) as &_);
        assert_eq!(json_object_text(raw(r#"{"a":1}"#), "p").unwrap().unwrap().get(), r#"{"a":1}"#);
        assert_eq!(json_object_text(raw(r#""{\"a\":1}""#), "p").unwrap().unwrap().get(), r#"{"a":1}"#);
        assert!(json_object_text(None, "p").unwrap().is_none());
        assert!(json_object_text(raw("[1]"), "p").unwrap_err().contains("JSON object"));
        assert!(json_object_text(raw(r#""not json""#), "p").unwrap_err().contains("not JSON"));
    }
}
