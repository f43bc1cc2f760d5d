//! The steps of a run to BigQuery, chosen by the state machine for BigQuery destinations:
//! [`bigquery_load`] creates the final table when missing and a fresh stage table, and loads the run's rows
//! into the stage with load jobs of at most ~100 MiB (events read from the planned chunk in bounded batches,
//! persons as the latest row per distinct id); [`bigquery_merge`] moves the stage's rows into the final table
//! (`INSERT … SELECT` or `MERGE`), drops the stage and records the outcome. On failure the state machine calls
//! [`bigquery_merge`] with `cleanup` to drop the stage table before recording the run `Failed`.

use serde::{Deserialize, Serialize};

use super::Services;
use crate::destinations::bigquery::rows::person_stage_row;
use crate::destinations::bigquery::{
    drop_stage, load_chunk_into_stage, merge_stage, prepare_stage, BigQuery, BigQueryDestinationConfig, LoadTarget,
    StageLoader, TokenSource, MAX_JOB_BYTES,
};
use crate::error::Result;
use crate::model::Model;
use crate::network::guarded_reqwest_client;
use crate::runs::ExportOutcome;
use crate::runs::RunRef;
use crate::sources::lake::persons::read_persons;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BigQueryInput {
    pub run: RunRef,
    /// Only drop the stage table (the failure path).
    #[serde(default)]
    pub cleanup: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BigQueryOutput {
    pub records: u64,
    pub bytes: u64,
    pub load_jobs: u32,
}

fn client(services: &Services, config: &BigQueryDestinationConfig) -> Result<BigQuery> {
    let http = reqwest::Client::new();
    // The token endpoint is the user's (`token_uri`): it connects only where the endpoint policy allows.
    let tokens = TokenSource::new(guarded_reqwest_client(services.endpoints), config)?;
    Ok(BigQuery::new(http, &services.bigquery_endpoint, &config.project_id, tokens))
}

fn target<'a>(config: &'a BigQueryDestinationConfig, run: &'a RunRef, job_prefix: &'a str) -> LoadTarget<'a> {
    LoadTarget { config, interval: &run.interval, team_id: run.team_id, job_prefix, max_job_bytes: MAX_JOB_BYTES }
}

pub async fn bigquery_load(services: &Services, run: RunRef) -> Result<BigQueryOutput> {
    let export = services.export(&run, true).await?;
    let config = export.bigquery_config()?;
    let bq = client(services, config)?;
    // This invocation recreates the stage table, so its load jobs need ids of their own: BigQuery keeps job ids
    // forever, and reusing one would skip the load into the new stage.
    let job_prefix = format!("batch_export_{}_{}_{}", run.run_id, run.attempt, uuid::Uuid::new_v4().simple());
    let target = target(config, &run, &job_prefix);
    prepare_stage(&bq, target, export.model).await?;
    let outcome = match export.model {
        Model::Persons => {
            let spill_dir = services.engine.dedupe.spill_dir.clone();
            let rows = read_persons(&services.lake, run.team_id, &run.interval, spill_dir).await?;
            let mut loader = StageLoader::new(&bq, target, Model::Persons);
            for row in rows {
                loader.push(&person_stage_row(&row?)).await?;
            }
            loader.finish().await?
        }
        Model::Events => {
            let plan = services.work.load_chunk_plan(&run, 0).await?;
            let filter = super::row_filter(&run, &export);
            let batch_size = services.engine.batch_size;
            load_chunk_into_stage(&bq, target, &services.lake, plan, filter, batch_size).await?
        }
    };
    Ok(BigQueryOutput { records: outcome.rows, bytes: outcome.bytes, load_jobs: outcome.load_jobs })
}

pub async fn bigquery_merge(services: &Services, input: BigQueryInput) -> Result<BigQueryOutput> {
    let run = &input.run;
    let export = services.export(run, true).await?;
    let config = export.bigquery_config()?;
    let bq = client(services, config)?;
    // The statement's request id is the run attempt's: a retried merge whose statement already ran is not run
    // twice (BigQuery de-duplicates query requests by id).
    let job_prefix = format!("batch_export_{}_{}", run.run_id, run.attempt);
    let target = target(config, run, &job_prefix);
    if input.cleanup {
        drop_stage(&bq, target).await?;
        return Ok(BigQueryOutput { records: 0, bytes: 0, load_jobs: 0 });
    }
    let total = services.runs.get(&run.export_id, run.interval.end).await?.and_then(|r| r.records_total_count);
    let merged = merge_stage(&bq, target, export.model).await;
    let dropped = drop_stage(&bq, target).await;
    merged?;
    dropped?;
    let records = total.unwrap_or(0);
    let outcome = ExportOutcome { records, bytes: 0, files: Vec::new(), manifest_key: None };
    services.work.save_outcome(run, &outcome).await?;
    Ok(BigQueryOutput { records, bytes: 0, load_jobs: 0 })
}
