//! One interval into BigQuery: make sure the final table exists (created with the model's schema, events
//! partitioned by day on `timestamp`), load the rows into a fresh stage table with load jobs of at most
//! `max_job_bytes` each (newline-delimited JSON by multipart upload), move them into the final table with one
//! statement (`INSERT … SELECT` for events, `MERGE` for persons), and drop the stage table — after success and
//! after failure alike.

use serde_json::Value;

use super::client::BigQuery;
use super::config::BigQueryDestinationConfig;
use super::rows::{event_stage_row, person_stage_row};
use super::schema::{
    final_schema, insert_statement, merge_statement, partition_field, qualified, stage_schema, stage_table,
};
use crate::error::{ExportError, Result};
use crate::model::{EventRow, Interval, Model};
use crate::persons::PersonRow;

/// The reference keeps each load job near 100 MiB.
pub const MAX_JOB_BYTES: usize = 100 * 1024 * 1024;

/// What a load did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadOutcome {
    pub rows: u64,
    pub bytes: u64,
    pub load_jobs: u32,
}

/// Where and how one interval is loaded.
#[derive(Debug, Clone, Copy)]
pub struct LoadTarget<'a> {
    pub config: &'a BigQueryDestinationConfig,
    pub interval: &'a Interval,
    pub team_id: i64,
    /// Names the load and query jobs (`{job_prefix}-{n}`), so a retried step reuses them.
    pub job_prefix: &'a str,
    pub max_job_bytes: usize,
}

/// Exports an interval's events (in batches) to the configured table.
pub async fn load_events<I>(bq: &BigQuery, target: LoadTarget<'_>, batches: I) -> Result<LoadOutcome>
where
    I: IntoIterator<Item = Vec<EventRow>>,
{
    let rows = batches.into_iter().flat_map(|batch| batch.into_iter().map(|row| event_stage_row(&row)));
    load(bq, target, Model::Events, rows).await
}

/// Merges an interval's person rows into the configured table.
pub async fn load_persons(bq: &BigQuery, target: LoadTarget<'_>, rows: &[PersonRow]) -> Result<LoadOutcome> {
    load(bq, target, Model::Persons, rows.iter().map(person_stage_row)).await
}

async fn load(
    bq: &BigQuery,
    target: LoadTarget<'_>,
    model: Model,
    rows: impl Iterator<Item = Value>,
) -> Result<LoadOutcome> {
    let LoadTarget { config, interval, team_id, job_prefix, max_job_bytes } = target;
    let dataset = &config.dataset_id;
    if bq.get_table(dataset, &config.table_id).await?.is_none() {
        bq.create_table(dataset, &config.table_id, &final_schema(model, config.use_json_type), partition_field(model))
            .await?;
    }
    let stage = stage_table(&config.table_id, interval, team_id);
    // A stage table left by an earlier, failed attempt holds rows of that attempt: start clean.
    bq.delete_table(dataset, &stage).await?;
    bq.create_table(dataset, &stage, &stage_schema(model), None).await?;
    let result = async {
        let mut outcome = LoadOutcome { rows: 0, bytes: 0, load_jobs: 0 };
        let mut pending = Vec::new();
        let mut rows = rows.peekable();
        while let Some(row) = rows.next() {
            serde_json::to_writer(&mut pending, &row).expect("a JSON value serializes");
            pending.push(b'\n');
            outcome.rows += 1;
            if pending.len() >= max_job_bytes || (rows.peek().is_none() && !pending.is_empty()) {
                outcome.bytes += pending.len() as u64;
                let job = format!("{job_prefix}-{}", outcome.load_jobs);
                bq.load_json(dataset, &stage, &stage_schema(model), &job, std::mem::take(&mut pending)).await?;
                outcome.load_jobs += 1;
            }
        }
        if outcome.rows > 0 {
            let (final_table, stage) =
                (qualified(&bq.project, dataset, &config.table_id), qualified(&bq.project, dataset, &stage));
            let statement = match model {
                Model::Events => insert_statement(model, &final_table, &stage, config.use_json_type),
                Model::Persons => merge_statement(&final_table, &stage, config.use_json_type),
            };
            bq.query(&statement, &format!("{job_prefix}-statement")).await?;
        }
        Ok::<_, ExportError>(outcome)
    }
    .await;
    let dropped = bq.delete_table(dataset, &stage).await;
    let outcome = result?;
    dropped?;
    Ok(outcome)
}
