//! The persons model's reader: the person changes of a team that landed in an interval (the lake's `persons/`
//! table), reduced to the run's rows by the persons rule ([`crate::person`]).

use std::io::BufRead;

use crate::error::{ExportError, InternalContext, Result, RowLocation};
use crate::format::CompressedReader;
use crate::person::{latest_per_distinct_id, PersonChange, PersonRow};
use crate::sources::lake::{LakeFormat, LakeStore};
use crate::time::Interval;

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
                let line = line.map_err(|e| crate::sources::lake::read_error(&object.key, e))?;
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
    .internal("persons reader")?
}
