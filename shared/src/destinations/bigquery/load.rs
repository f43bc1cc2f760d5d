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
use crate::engine::chunks::ChunkPlan;
use crate::error::{ExportError, InternalContext, Result};
use crate::event::EventRow;
use crate::model::Model;
use crate::person::PersonRow;
use crate::sources::lake::{read_rows, LakeStore, RowFilter};
use crate::time::Interval;

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

/// Loads a planned chunk's events into the stage: read from the lake on a blocking thread in batches of at most
/// `batch_size` rows, and loaded as they come (memory stays at a few batches and one load job's buffer). A load
/// failure stops the reader.
pub async fn load_chunk_into_stage(
    bq: &BigQuery,
    target: LoadTarget<'_>,
    lake: &LakeStore,
    plan: ChunkPlan,
    filter: RowFilter,
    batch_size: usize,
) -> Result<LoadOutcome> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<Value>>(2);
    let lake = lake.clone();
    let reader = tokio::task::spawn_blocking(move || {
        read_rows(&lake, &plan.objects, &filter, &plan.rows, batch_size.min(BATCH), &mut |batch| {
            tx.blocking_send(batch.iter().map(event_stage_row).collect())
                .map_err(|_| ExportError::internal("the loader stopped"))
        })
    });
    let mut loader = StageLoader::new(bq, target, Model::Events);
    let mut loaded = Ok(());
    while let Some(batch) = rx.recv().await {
        for row in &batch {
            loaded = loader.push(row).await;
            if loaded.is_err() {
                break;
            }
        }
        if loaded.is_err() {
            // Dropping the receiver stops the reader.
            break;
        }
    }
    drop(rx);
    let read = reader.await.internal("reader")?;
    loaded?;
    read?;
    loader.finish().await
}

/// Rows sent to the loader per message (the stage rows are serialized into load jobs as they arrive).
const BATCH: usize = 8192;

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
    prepare_stage(bq, target, model).await?;
    let result = async {
        let outcome = load_stage(bq, target, model, rows).await?;
        if outcome.rows > 0 {
            merge_stage(bq, target, model).await?;
        }
        Ok::<_, ExportError>(outcome)
    }
    .await;
    let dropped = drop_stage(bq, target).await;
    let outcome = result?;
    dropped?;
    Ok(outcome)
}

/// Creates the final table when missing and a fresh stage table (a stage left by an earlier, failed attempt
/// holds that attempt's rows: it is dropped first).
pub async fn prepare_stage(bq: &BigQuery, target: LoadTarget<'_>, model: Model) -> Result<()> {
    let config = target.config;
    let dataset = &config.dataset_id;
    if !bq.dataset_exists(dataset).await? {
        return Err(ExportError::Rejected {
            operation: "datasets.get",
            resource: format!("{}:{dataset}", bq.project),
            message: format!("not found: dataset `{dataset}` does not exist in project `{}`", bq.project),
        });
    }
    if bq.get_table(dataset, &config.table_id).await?.is_none() {
        bq.create_table(dataset, &config.table_id, &final_schema(model, config.use_json_type), partition_field(model))
            .await?;
    }
    let stage = stage_table(&config.table_id, target.interval, target.team_id);
    bq.delete_table(dataset, &stage).await?;
    bq.create_table(dataset, &stage, &stage_schema(model), None).await
}

/// Loads stage rows into the stage table, in load jobs of at most `max_job_bytes`.
pub async fn load_stage(
    bq: &BigQuery,
    target: LoadTarget<'_>,
    model: Model,
    rows: impl Iterator<Item = Value>,
) -> Result<LoadOutcome> {
    let mut loader = StageLoader::new(bq, target, model);
    for row in rows {
        loader.push(&row).await?;
    }
    loader.finish().await
}

/// Collects stage rows as newline-delimited JSON and loads them whenever `max_job_bytes` have gathered, so at
/// most one job's bytes are held at a time.
pub struct StageLoader<'a> {
    bq: &'a BigQuery,
    target: LoadTarget<'a>,
    model: Model,
    stage: String,
    pending: Vec<u8>,
    outcome: LoadOutcome,
}

impl<'a> StageLoader<'a> {
    pub fn new(bq: &'a BigQuery, target: LoadTarget<'a>, model: Model) -> Self {
        let stage = stage_table(&target.config.table_id, target.interval, target.team_id);
        StageLoader {
            bq,
            target,
            model,
            stage,
            pending: Vec::new(),
            outcome: LoadOutcome { rows: 0, bytes: 0, load_jobs: 0 },
        }
    }

    pub async fn push(&mut self, row: &Value) -> Result<()> {
        serde_json::to_writer(&mut self.pending, row).expect("a JSON value serializes");
        self.pending.push(b'\n');
        self.outcome.rows += 1;
        if self.pending.len() >= self.target.max_job_bytes {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.outcome.bytes += self.pending.len() as u64;
        let job = format!("{}-{}", self.target.job_prefix, self.outcome.load_jobs);
        let data = std::mem::take(&mut self.pending);
        self.bq.load_json(&self.target.config.dataset_id, &self.stage, &stage_schema(self.model), &job, data).await?;
        self.outcome.load_jobs += 1;
        Ok(())
    }

    /// Loads what is left and reports what was loaded.
    pub async fn finish(mut self) -> Result<LoadOutcome> {
        self.flush().await?;
        Ok(self.outcome)
    }
}

/// Moves the stage's rows into the final table: `INSERT … SELECT` (events) or `MERGE` (persons).
pub async fn merge_stage(bq: &BigQuery, target: LoadTarget<'_>, model: Model) -> Result<()> {
    let config = target.config;
    let stage = stage_table(&config.table_id, target.interval, target.team_id);
    let final_table = qualified(&bq.project, &config.dataset_id, &config.table_id);
    let stage = qualified(&bq.project, &config.dataset_id, &stage);
    let statement = match model {
        Model::Events => insert_statement(model, &final_table, &stage, config.use_json_type),
        Model::Persons => merge_statement(&final_table, &stage, config.use_json_type),
    };
    bq.query(&statement, &format!("{}-statement", target.job_prefix)).await.map(|_| ())
}

/// Drops the stage table (a missing one is fine).
pub async fn drop_stage(bq: &BigQuery, target: LoadTarget<'_>) -> Result<()> {
    let stage = stage_table(&target.config.table_id, target.interval, target.team_id);
    bq.delete_table(&target.config.dataset_id, &stage).await
}
