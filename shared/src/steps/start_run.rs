//! Step 1: claim the run of an interval. Loads the export, derives the interval from the scheduled time (or
//! takes the explicit interval of a backfill or retry), refuses an interval ending in the future or outside
//! the export's `start_at`/`end_at`, and creates the run record (`Starting`, then `Running`) with a conditional
//! write keyed by export and interval end: a second trigger of the same interval reuses the run.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::Services;
use crate::error::{ExportError, Result};
use crate::runs::{Run, RunRef};
use crate::store::Begin;
use crate::time::Interval;

/// The execution input: ids and times only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunRequest {
    pub team_id: i64,
    pub export_id: String,
    /// When the schedule fired (EventBridge Scheduler's `<aws.scheduler.scheduled-time>`); the run covers the
    /// interval that ended at or just before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_time: Option<DateTime<Utc>>,
    /// An explicit interval (backfills and retries), instead of `scheduled_time`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_interval_start: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_interval_end: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backfill_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StartInput {
    pub request: RunRequest,
    /// The Step Functions execution name (`$$.Execution.Name`).
    #[serde(default)]
    pub execution: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StartOutput {
    /// True when another execution is working on the run: this one stops without touching it.
    pub in_progress: bool,
    pub run: RunRef,
    /// How many chunks the Map state exports at once.
    pub max_concurrency: usize,
}

impl RunRequest {
    fn interval(&self, export: &crate::batch_export::BatchExport) -> Result<Interval> {
        match (self.data_interval_start, self.data_interval_end, self.scheduled_time) {
            (Some(start), Some(end), _) => Interval::new(start, end),
            (None, None, Some(at)) => export.interval_scheduled_at(at),
            (Some(_), None, _) => Err(ExportError::config("data_interval_end", "is required with data_interval_start")),
            (None, Some(_), _) => Err(ExportError::config("data_interval_start", "is required with data_interval_end")),
            (None, None, None) => {
                Err(ExportError::config("scheduled_time", "a run needs scheduled_time or data_interval_start/end"))
            }
        }
    }
}

pub async fn start_run(services: &Services, input: StartInput) -> Result<StartOutput> {
    let request = input.request;
    let export = services.exports.get(request.team_id, &request.export_id).await?;
    let interval = request.interval(&export)?;
    let now = Utc::now();
    export.check_run_interval(&interval, now)?;
    let new = Run::new(&export.id, export.team_id, interval, input.execution, request.backfill_id, now);
    match services.runs.begin(new, services.run_lease, now).await? {
        Begin::Started(run) => {
            let run = services.runs.mark_running(&run.reference(), Utc::now()).await?;
            tracing::info!(run_id = %run.run_id, attempt = run.attempt, "run started");
            Ok(StartOutput { in_progress: false, run: run.reference(), max_concurrency: services.chunk_concurrency })
        }
        Begin::InProgress(run) => {
            tracing::info!(run_id = %run.run_id, attempt = run.attempt, "run already in progress");
            Ok(StartOutput { in_progress: true, run: run.reference(), max_concurrency: services.chunk_concurrency })
        }
    }
}
