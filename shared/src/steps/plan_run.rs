//! Step 2: plan the run. Lists the lake objects of the interval, finds the rows it exports (filters, repeated
//! uuids), splits them into chunks of bounded rows and bytes, keeps each chunk's plan in the work area, and
//! records the total on the run. A persons run is one chunk, its total the number of distinct ids changed.
//!
//! The state machine plans a run again when a chunk finds a lake object replaced since planning (the repeated
//! uuids are found over the whole interval, so one changed object changes every chunk's plan): each plan counts
//! on the run, a plan after the first as a retry, and an attempt stops after [`MAX_PLANS`] plans.

use chrono::Utc;
use serde::{Deserialize, Serialize};

use super::Services;
use crate::engine::chunks::plan_chunks;
use crate::error::{ExportError, InternalContext, Result};
use crate::model::Model;
use crate::network::EndpointPolicy;
use crate::runs::RunRef;
use crate::sources::lake::persons::read_persons;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanOutput {
    pub records_total_count: u64,
    /// Chunk numbers `0..n`: the Map state's items (S3 destinations).
    pub chunks: Vec<usize>,
    /// `S3` or `BigQuery`: which branch of the state machine exports the run.
    pub destination: String,
}

/// How many times one attempt plans a run (the first plan, plans after a lake object changed under a chunk,
/// and retries after planning failed) before it ends `FailedRetryable`.
pub const MAX_PLANS: u32 = 10;

pub async fn plan_run(services: &Services, run: RunRef) -> Result<PlanOutput> {
    let plan = services.runs.start_plan(&run, Utc::now()).await?;
    if plan > MAX_PLANS {
        return Err(ExportError::LakeUnsettled { plans: plan - 1 });
    }
    if plan > 1 {
        tracing::info!(run_id = %run.run_id, plan, "planning the run again");
    }
    let export = services.export(&run, false).await?;
    let destination = export.destination.type_name().to_string();
    if export.model == Model::Persons {
        // Persons runs are one chunk: the latest row per distinct id needs every change of the interval.
        let rows = read_persons(&services.lake, run.team_id, &run.interval, services.engine.dedupe.spill_dir.clone());
        let mut rows = rows.await?;
        let total = tokio::task::spawn_blocking(move || rows.try_fold(0u64, |n, row| row.map(|_| n + 1)))
            .await
            .internal("counting person rows")??;
        services.runs.set_total(&run, total, Utc::now()).await?;
        return Ok(PlanOutput { records_total_count: total, chunks: vec![0], destination });
    }
    // Without a file size limit the reference writes one file per run, so the run is one chunk; a BigQuery run
    // is one chunk, loaded in load jobs of bounded size.
    // The config is checked before any reading: a stored item the API would refuse fails the run here (its
    // secrets are sealed, so not read here).
    let sealed: Vec<String> = export.destination.secret_fields().iter().map(|f| f.to_string()).collect();
    export.destination.validate_with_stored(&sealed, EndpointPolicy::PRIVATE_ALLOWED)?;
    let limits = export.destination.runs_in_chunks().then_some(services.chunks);
    let chunks = plan_chunks(&services.lake, &super::row_filter(&run, &export), &services.engine, limits).await?;
    for chunk in &chunks {
        services.work.save_chunk_plan(&run, chunk).await?;
    }
    let total = chunks.iter().map(|c| c.rows.records).sum();
    services.runs.set_total(&run, total, Utc::now()).await?;
    tracing::info!(run_id = %run.run_id, records = total, chunks = chunks.len(), "run planned");
    Ok(PlanOutput { records_total_count: total, chunks: (0..chunks.len()).collect(), destination })
}
