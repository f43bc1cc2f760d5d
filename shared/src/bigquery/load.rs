//! One interval into BigQuery: make sure the final table exists (created with the model's schema, events
//! partitioned by day on `timestamp`), load the rows into a fresh stage table with load jobs of at most
//! `max_job_bytes` each (newline-delimited JSON by multipart upload), move them into the final table with one
//! statement, and drop the stage table — after success and after failure alike.

use super::client::BigQuery;
use super::config::BigQueryDestinationConfig;
use super::rows::event_stage_row;
use super::schema::{final_schema, insert_statement, partition_field, qualified, stage_schema, stage_table};
use crate::error::Result;
use crate::model::{EventRow, Interval, Model};

/// BigQuery's documented load-job ceiling is far above this; the reference keeps each job near 100 MiB.
pub const MAX_JOB_BYTES: usize = 100 * 1024 * 1024;

/// What a load did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadOutcome {
    pub rows: u64,
    pub bytes: u64,
    pub load_jobs: u32,
}

/// Exports an interval's events (in batches) to the configured table. `job_prefix` names the load jobs
/// (`{job_prefix}-{n}`), so a retried step reuses them.
pub async fn load_events<I>(
    bq: &BigQuery,
    config: &BigQueryDestinationConfig,
    interval: &Interval,
    team_id: i64,
    job_prefix: &str,
    max_job_bytes: usize,
    batches: I,
) -> Result<LoadOutcome>
where
    I: IntoIterator<Item = Vec<EventRow>>,
{
    let model = Model::Events;
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
        for batch in batches {
            for row in &batch {
                serde_json::to_writer(&mut pending, &event_stage_row(row)).expect("a JSON value serializes");
                pending.push(b'\n');
                outcome.rows += 1;
                if pending.len() >= max_job_bytes {
                    outcome.bytes += pending.len() as u64;
                    let job = format!("{job_prefix}-{}", outcome.load_jobs);
                    bq.load_json(dataset, &stage, &stage_schema(model), &job, std::mem::take(&mut pending)).await?;
                    outcome.load_jobs += 1;
                }
            }
        }
        if !pending.is_empty() {
            outcome.bytes += pending.len() as u64;
            let job = format!("{job_prefix}-{}", outcome.load_jobs);
            bq.load_json(dataset, &stage, &stage_schema(model), &job, pending).await?;
            outcome.load_jobs += 1;
        }
        if outcome.rows > 0 {
            let statement = insert_statement(
                model,
                &qualified(&bq.project, dataset, &config.table_id),
                &qualified(&bq.project, dataset, &stage),
                config.use_json_type,
            );
            bq.query(&statement, &format!("{job_prefix}-insert")).await?;
        }
        Ok::<_, crate::error::ExportError>(outcome)
    }
    .await;
    let dropped = bq.delete_table(dataset, &stage).await;
    let outcome = result?;
    dropped?;
    Ok(outcome)
}
