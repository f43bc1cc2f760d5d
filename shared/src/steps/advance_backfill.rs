//! The one step of the backfill state machine (`statemachines/backfill.asl.json`), called before the first
//! batch of runs, after each batch, and on failure.
//!
//! - First call (backfill `Starting`): plans the range ([`crate::backfills::effective_range`]: clipped to the
//!   export's dates, start moved to the earliest data in the lake), records it with the number of runs expected,
//!   and returns the first batch; an empty range completes the backfill at once.
//! - After a batch (`ran` holds it): reads the batch's runs from the runs table, adds the ended ones and their
//!   records to the backfill's progress (naming the intervals whose run did not complete), and returns the next
//!   batch. A run another execution still holds (the scheduled run of the interval, another backfill) is
//!   `waiting`: the state machine waits `wait_seconds`, then calls this again with those runs as `ran`, until
//!   they end. When no interval is left, the backfill ends `Completed` if every run completed, else `Failed`
//!   naming the intervals that did not.
//! - A cancelled backfill returns `done` without another batch: cancelling stops it before its next interval.
//! - With `error` (the state machine's `Catch`): records the backfill `Failed` with the error.
//!
//! A batch holds `concurrency` intervals (1 by default: one run after another), each as the input of one
//! execution of the export state machine, named `{backfill_id}-{interval end}` so a retried start cannot run an
//! interval twice.

use chrono::Utc;
use serde::{Deserialize, Serialize};

use super::{execution_name, RunRequest, Services, StepFailure};
use crate::backfills::{count_intervals, effective_range, intervals_after, Backfill, BackfillRef, BackfillStatus};
use crate::error::{ExportError, Result};
use crate::runs::RunStatus;
use crate::store::Progress;
use crate::time::iso;
use crate::time::Interval;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdvanceInput {
    pub backfill: BackfillRef,
    /// The batch that just ran.
    #[serde(default)]
    pub ran: Option<Vec<BatchRun>>,
    /// The failure that stopped the backfill state machine.
    #[serde(default)]
    pub error: Option<StepFailure>,
}

/// One run of a batch: the export state machine's execution name and input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchRun {
    pub name: String,
    pub request: RunRequest,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdvanceOutput {
    pub backfill: BackfillRef,
    pub status: BackfillStatus,
    /// True when nothing is left to run (completed, cancelled or failed).
    pub done: bool,
    pub batch: Vec<BatchRun>,
    /// The Map state's `MaxConcurrencyPath`.
    pub concurrency: u32,
    pub finished_runs: u64,
    pub expected_runs: Option<u64>,
    pub total_records: u64,
    /// Runs of the last batch that another execution still holds: looked at again after `wait_seconds`.
    #[serde(default)]
    pub waiting: Vec<BatchRun>,
    pub wait_seconds: u32,
}

pub async fn advance_backfill(services: &Services, input: AdvanceInput) -> Result<AdvanceOutput> {
    let reference = &input.backfill;
    let now = Utc::now();
    if let Some(error) = &input.error {
        let backfill =
            services.backfills.finish(reference, BackfillStatus::Failed, Some(&error.message()), now).await?;
        return Ok(output(backfill, Vec::new()));
    }
    let mut backfill = services.backfills.get(&reference.export_id, &reference.backfill_id).await?;
    let mut waiting = Vec::new();
    let export = services.exports.get(reference.team_id, &reference.export_id).await?;
    if backfill.status == BackfillStatus::Starting {
        let requested = Interval::new(backfill.start_at, backfill.end_at)?;
        let earliest = services.lake.earliest_hour(export.model.table(), reference.team_id).await?;
        let range = effective_range(&export, requested, earliest);
        let expected = match range {
            Some(range) => count_intervals(&export, range)?,
            None => 0,
        };
        let range = range.filter(|_| expected > 0);
        backfill = services.backfills.plan(reference, range, expected, now).await?;
        tracing::info!(backfill_id = %backfill.id, expected, status = backfill.status.as_str(), "backfill planned");
    } else if let Some(ran) = &input.ran {
        let mut progress = Progress::default();
        let mut failures = Vec::new();
        let mut ran_until = backfill.ran_until;
        for run in ran {
            let end = run
                .request
                .data_interval_end
                .ok_or_else(|| ExportError::config("ran", "a batch run has no data_interval_end"))?;
            ran_until = ran_until.max(Some(end));
            match services.runs.get(&reference.export_id, end).await? {
                // Another execution holds the interval (the scheduled run, another backfill): wait for it to end,
                // and count how it ended.
                Some(record) if record.status.is_in_flight() => waiting.push(run.clone()),
                Some(record) => {
                    progress.finished += 1;
                    progress.records += record.records_completed.unwrap_or(0);
                    if record.status != RunStatus::Completed {
                        progress.failed += 1;
                        let error = record.latest_error.as_deref().unwrap_or("no error recorded");
                        failures.push(format!("{} ended {}: {error}", iso(end), record.status.as_str()));
                    }
                }
                // The run was refused before it had a record (its export changed under the backfill, say).
                None => {
                    progress.finished += 1;
                    progress.failed += 1;
                    failures.push(format!("{} was not run", iso(end)));
                }
            }
        }
        if !failures.is_empty() {
            progress.error = Some(format!("the run of the interval ending {}", failures.join("; the run ending ")));
        }
        if let Some(ran_until) = ran_until {
            backfill = services.backfills.record_progress(reference, progress, ran_until, now).await?;
        }
    }
    if backfill.status != BackfillStatus::Running {
        return Ok(output(backfill, Vec::new()));
    }
    if !waiting.is_empty() {
        // Look again after a while; nothing new starts meanwhile.
        tracing::info!(backfill_id = %backfill.id, waiting = waiting.len(), "waiting for runs held by others");
        return Ok(AdvanceOutput { done: false, waiting, ..output(backfill, Vec::new()) });
    }
    let range = Interval::new(
        backfill.effective_start_at.unwrap_or(backfill.start_at),
        backfill.effective_end_at.unwrap_or(backfill.end_at),
    )?;
    let next = intervals_after(&export, range, backfill.ran_until, backfill.concurrency as usize)?;
    if next.is_empty() {
        // Completed only when every interval's run is; otherwise Failed, naming the intervals that failed.
        let backfill = if backfill.failed_runs > 0 {
            let error = format!(
                "{} of {} runs failed: {}",
                backfill.failed_runs,
                backfill.finished_runs,
                backfill.latest_error.as_deref().unwrap_or("see the runs")
            );
            services.backfills.finish(reference, BackfillStatus::Failed, Some(&error), Utc::now()).await?
        } else {
            services.backfills.finish(reference, BackfillStatus::Completed, None, Utc::now()).await?
        };
        tracing::info!(backfill_id = %backfill.id, status = backfill.status.as_str(), "backfill ended");
        return Ok(output(backfill, Vec::new()));
    }
    let batch = next
        .into_iter()
        .map(|interval| BatchRun {
            name: execution_name(&backfill.id, interval.end),
            request: RunRequest {
                team_id: backfill.team_id,
                export_id: backfill.export_id.clone(),
                scheduled_time: None,
                data_interval_start: Some(interval.start),
                data_interval_end: Some(interval.end),
                backfill_id: Some(backfill.id.clone()),
            },
        })
        .collect();
    Ok(output(backfill, batch))
}

/// How long a backfill waits before it looks again at intervals another execution holds.
const WAIT_SECONDS: u32 = 5;

fn output(backfill: Backfill, batch: Vec<BatchRun>) -> AdvanceOutput {
    AdvanceOutput {
        waiting: Vec::new(),
        wait_seconds: WAIT_SECONDS,
        backfill: backfill.reference(),
        status: backfill.status,
        done: batch.is_empty(),
        batch,
        concurrency: backfill.concurrency,
        finished_runs: backfill.finished_runs,
        expected_runs: backfill.expected_runs,
        total_records: backfill.total_records,
    }
}
