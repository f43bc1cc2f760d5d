//! The persons model's reader: the person changes of a team that landed in an interval (the lake's `persons/`
//! table), reduced to the run's rows by the persons rule ([`crate::person`]) in bounded memory.
//!
//! The rule needs two groupings: by person (its latest properties) and by distinct id (its latest person). Both
//! are external sorts ([`super::sorted_runs`]), so memory stays at their budget however many changes landed:
//! 1. the changes, sorted by person and then newest first (`person_version`, landing time, read order): the first
//!    change of each person is its state, and every change of the person becomes a candidate row of its
//!    distinct id with that state;
//! 2. the candidates, sorted by distinct id and then newest mapping first (`person_distinct_id_version`,
//!    landing time, read order): the first candidate of each distinct id is its row.
//!
//! Rows come out sorted by distinct id, as a stream.

use std::cmp::Reverse;
use std::io::BufRead;
use std::path::PathBuf;

use crate::error::{ExportError, InternalContext, Result, RowLocation};
use crate::format::CompressedReader;
use crate::person::{PersonChange, PersonRow};
use crate::sources::lake::sorted_runs::ExternalSort;
use crate::sources::lake::{LakeFormat, LakeStore};
use crate::time::Interval;

/// The memory each of the two sorts may buffer (records as JSON) before it spills a sorted run.
pub const SORT_BUDGET_BYTES: usize = 32 << 20;

/// Newest first: the higher version, then the later landed, then the later read.
type Newest = Reverse<(i64, i64, u64)>;

/// The run's person rows, in distinct id order, streamed from the sorts (blocking reads: iterate on a blocking
/// thread, or accept short reads of local temporary files).
pub type PersonRows = Box<dyn Iterator<Item = Result<PersonRow>> + Send>;

/// Reads the person changes of a team that landed in an interval and returns the run's rows.
pub async fn read_persons(
    lake: &LakeStore,
    team_id: i64,
    interval: &Interval,
    spill_dir: Option<PathBuf>,
) -> Result<PersonRows> {
    let objects = lake.list_table("persons", team_id, interval).await?;
    let lake = lake.clone();
    let interval = *interval;
    tokio::task::spawn_blocking(move || {
        let mut objects_and_formats = Vec::with_capacity(objects.len());
        for object in objects {
            let LakeFormat::Ndjson(compression) = object.format else {
                return Err(ExportError::UnreadableObject {
                    key: object.key,
                    reason: "person changes must be newline-delimited JSON (.jsonl, .jsonl.gz, .jsonl.zst)".into(),
                });
            };
            objects_and_formats.push((object, compression));
        }
        // Objects are opened one at a time, as the sort reaches them.
        let lines = objects_and_formats.into_iter().flat_map(move |(object, compression)| {
            let reader = lake.open(&object).and_then(|input| Ok(CompressedReader::open(input, compression)?));
            let (reader, opened) = match reader {
                Ok(reader) => (Some(reader), None),
                Err(e) => (None, Some(Err(e))),
            };
            let key = object.key;
            let changes =
                reader.into_iter().flat_map(|reader| reader.lines().enumerate()).filter_map(move |(n, line)| {
                    let at = RowLocation::Line(n as u64 + 1);
                    match line {
                        Ok(line) if line.trim().is_empty() => None,
                        Ok(line) => Some(
                            serde_json::from_str::<PersonChange>(&line)
                                .map_err(|e| ExportError::malformed(&key, at, e.to_string())),
                        ),
                        Err(e) => Some(Err(crate::sources::lake::read_error(&key, e))),
                    }
                });
            opened.into_iter().chain(changes)
        });
        let in_run = lines.filter(|c| {
            c.as_ref()
                .map_or(true, |c| c.team_id == team_id && interval.contains_micros(c.inserted_at.timestamp_micros()))
        });
        latest_per_distinct_id(in_run, SORT_BUDGET_BYTES, spill_dir)
    })
    .await
    .internal("persons reader")?
}

/// The persons rule over changes in bounded memory: the latest state per distinct id (see the module doc),
/// sorted by distinct id. Changes must all be of one team.
pub fn latest_per_distinct_id(
    changes: impl Iterator<Item = Result<PersonChange>>,
    budget_bytes: usize,
    spill_dir: Option<PathBuf>,
) -> Result<PersonRows> {
    let newest =
        |version: i64, change: &PersonChange, seq: u64| Reverse((version, change.inserted_at.timestamp_micros(), seq));
    let mut by_person: ExternalSort<(String, Newest), PersonChange> =
        ExternalSort::new(budget_bytes, spill_dir.clone());
    for (seq, change) in changes.enumerate() {
        let change = change?;
        let key = (change.person_id.clone(), newest(change.person_version, &change, seq as u64));
        by_person.push(key, &change)?;
    }
    let mut by_distinct_id: ExternalSort<(String, Newest), PersonRow> = ExternalSort::new(budget_bytes, spill_dir);
    let mut person: Option<PersonChange> = None;
    for record in by_person.finish()? {
        let ((person_id, Reverse((_, _, seq))), mapping) = record?;
        let state = match person.as_ref().filter(|p| p.person_id == person_id) {
            Some(state) => state,
            None => person.insert(mapping.clone()),
        };
        let row = PersonRow {
            team_id: mapping.team_id,
            distinct_id: mapping.distinct_id.clone(),
            person_id: mapping.person_id.clone(),
            properties: state.properties.clone(),
            person_version: state.person_version,
            person_distinct_id_version: mapping.person_distinct_id_version,
            created_at: state.created_at,
            is_deleted: state.is_deleted,
            inserted_at: mapping.inserted_at.max(state.inserted_at),
        };
        let key = (mapping.distinct_id.clone(), newest(mapping.person_distinct_id_version, &mapping, seq));
        by_distinct_id.push(key, &row)?;
    }
    let mut previous: Option<String> = None;
    let rows = by_distinct_id.finish()?.filter_map(move |record| match record {
        Ok(((distinct_id, _), row)) => {
            if previous.as_ref() == Some(&distinct_id) {
                return None;
            }
            previous = Some(distinct_id);
            Some(Ok(row))
        }
        Err(e) => Some(Err(e)),
    });
    Ok(Box::new(rows))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};

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

    /// The rule with every budget: in memory, and spilling a run per change.
    fn rows(changes: &[PersonChange]) -> Vec<PersonRow> {
        let all: Vec<Vec<PersonRow>> = [1 << 30, 1]
            .into_iter()
            .map(|budget| {
                let input = changes.iter().map(|c| Ok(c.clone()));
                latest_per_distinct_id(input, budget, None).unwrap().map(Result::unwrap).collect()
            })
            .collect();
        assert_eq!(all[0], all[1], "spilled runs give the in-memory answer");
        all[0].clone()
    }

    #[test]
    fn each_distinct_id_takes_its_latest_person_and_that_persons_latest_properties() {
        let rows = rows(&[
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
        let rows = rows(&[
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

    #[test]
    fn equal_versions_landed_at_once_go_to_the_later_read() {
        let mut second = change("a", "p1", 1, 1, "2026-11-20T10:00:00Z");
        second.properties = serde_json::json!({"v": "second"});
        let rows = rows(&[change("a", "p1", 1, 1, "2026-11-20T10:00:00Z"), second]);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].properties, serde_json::json!({"v": "second"}));
    }
}
