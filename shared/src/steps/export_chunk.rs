//! Step 3 (one per chunk, in the Map state): encode and upload one chunk's files, with deterministic keys,
//! and keep the list of files in the work area. Each start of a chunk is recorded on the run, so a chunk started
//! again by the state machine's `Retry` counts as a retry — also when the invocation before it crashed or timed
//! out with no process left to record it; a retryable failure's message is kept as the run's latest error.

use chrono::Utc;
use serde::{Deserialize, Serialize};

use super::Services;
use crate::destinations::s3::export::file_spec;
use crate::destinations::s3::persons::export_persons;
use crate::destinations::s3::{destination_client, S3Target};
use crate::engine::chunks::write_chunk;
use crate::error::Result;
use crate::model::Model;
use crate::runs::RunRef;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkInput {
    pub run: RunRef,
    pub chunk: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkOutput {
    pub chunk: usize,
    pub records: u64,
    pub bytes: u64,
    pub files: usize,
}

pub async fn export_chunk(services: &Services, input: ChunkInput) -> Result<ChunkOutput> {
    let run = &input.run;
    let started = std::time::Instant::now();
    if services.runs.start_chunk(run, input.chunk, Utc::now()).await? {
        tracing::info!(run_id = %run.run_id, chunk = input.chunk, "chunk retried");
    }
    let result: Result<ChunkOutput> = async {
        let (model, config, filter) = services.destination(run, true).await?;
        let target = S3Target::new(destination_client(&services.aws, &config, services.endpoints), &config);
        let files = match model {
            Model::Persons => {
                export_persons(&services.lake, &target, run.team_id, &run.interval, &config, &services.engine)
                    .await?
                    .files
            }
            Model::Events => {
                let plan = services.work.load_chunk_plan(run, input.chunk).await?;
                let spec = file_spec(&config, run.interval, model, plan.file_label())?;
                write_chunk(&services.lake, &target, &filter, &plan, &spec, &services.engine).await?
            }
        };
        // On the run before anything else refers to them: a later attempt deletes what it does not write again.
        let keys: Vec<String> = files.iter().map(|f| f.key.clone()).collect();
        if !keys.is_empty() {
            services.runs.record_written(run, &keys, Utc::now()).await?;
        }
        services.work.save_chunk_files(run, input.chunk, &files).await?;
        let output = ChunkOutput {
            chunk: input.chunk,
            records: files.iter().map(|f| f.records).sum(),
            bytes: files.iter().map(|f| f.bytes).sum(),
            files: files.len(),
        };
        let seconds = started.elapsed().as_secs_f64();
        tracing::info!(run_id = %run.run_id, chunk = input.chunk, records = output.records, bytes = output.bytes, seconds, "chunk exported");
        Ok(output)
    }
    .await;
    if let Err(e) = &result {
        if e.is_retryable() {
            let message = format!("chunk {}: {e}", input.chunk);
            if let Err(record) = services.runs.record_error(run, &message, Utc::now()).await {
                tracing::warn!(run_id = %run.run_id, error = %record, "could not record the error");
            }
        }
    }
    result
}
