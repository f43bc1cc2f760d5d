//! Step 5: end the run. Without an error: `Completed` with records_completed, bytes_exported, the file keys and
//! finished_at. With the error a `Catch` caught: `Failed` when it is not retryable, `TimedOut` when a step ran
//! out of time, `FailedRetryable` when retries ran out on a retryable one, with the error text as latest_error.

use chrono::Utc;
use serde::{Deserialize, Serialize};

use super::Services;
use crate::autopause::{check_window, pause_reason};
use crate::error::{Result, NON_RETRYABLE_ERROR_TYPE};
use crate::runs::{RunRef, RunStatus};

/// What a Step Functions `Catch` puts at its `ResultPath`: the error name and its cause (for a Lambda error,
/// the JSON `{"errorType": ..., "errorMessage": ...}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepFailure {
    #[serde(rename = "Error")]
    pub error: String,
    #[serde(rename = "Cause", default)]
    pub cause: Option<String>,
}

impl StepFailure {
    /// The run status the failure leads to: `Failed` for a non-retryable error, `TimedOut` for a step that
    /// ran out of time, else `FailedRetryable` (retries ran out).
    pub fn status(&self) -> RunStatus {
        match self.error.as_str() {
            NON_RETRYABLE_ERROR_TYPE => RunStatus::Failed,
            "States.Timeout" => RunStatus::TimedOut,
            _ => RunStatus::FailedRetryable,
        }
    }

    /// The error text for the run record: a Lambda error's message, else the cause or the error name.
    pub fn message(&self) -> String {
        let Some(cause) = &self.cause else { return self.error.clone() };
        match serde_json::from_str::<serde_json::Value>(cause) {
            Ok(v) => match v.get("errorMessage").and_then(|m| m.as_str()) {
                Some(message) => message.to_string(),
                None => cause.clone(),
            },
            Err(_) => cause.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FinishInput {
    pub run: RunRef,
    #[serde(default)]
    pub error: Option<StepFailure>,
}

/// The run as it ended (no config, no secrets).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FinishOutput {
    pub run_id: String,
    pub status: RunStatus,
    pub records_completed: Option<u64>,
    pub bytes_exported: Option<u64>,
    pub files: usize,
    pub latest_error: Option<String>,
    /// Set when this failure paused the export ([`crate::autopause`]).
    #[serde(default)]
    pub paused_reason: Option<String>,
}

pub async fn finish_run(services: &Services, input: FinishInput) -> Result<FinishOutput> {
    let run = &input.run;
    let (ended, paused_reason) = match &input.error {
        None => {
            let outcome = services.work.load_outcome(run).await?;
            (services.runs.complete(run, &outcome, Utc::now()).await?, None)
        }
        Some(failure) => {
            let ended = services.runs.fail(run, failure.status(), &failure.message(), Utc::now()).await?;
            // The failure is recorded; a failing check is logged and made again after the next failure.
            let paused = pause_if_failing(services, run).await.unwrap_or_else(|e| {
                tracing::warn!(export_id = %run.export_id, error = %e, "could not check the export for auto-pause");
                None
            });
            (ended, paused)
        }
    };
    tracing::info!(run_id = %ended.run_id, status = ended.status.as_str(), "run finished");
    Ok(FinishOutput {
        run_id: ended.run_id,
        status: ended.status,
        records_completed: ended.records_completed,
        bytes_exported: ended.bytes_exported,
        files: ended.files.len(),
        latest_error: ended.latest_error,
        paused_reason,
    })
}

/// Pauses the run's export (and disables its schedule) when its latest runs fail too often.
async fn pause_if_failing(services: &Services, run: &RunRef) -> Result<Option<String>> {
    let export = services.exports.get(run.team_id, &run.export_id).await?;
    if export.paused {
        return Ok(None);
    }
    let latest = services.runs.list(&run.export_id, check_window(export.interval) as i32).await?;
    let Some(reason) = pause_reason(export.interval, &latest) else { return Ok(None) };
    let written = services.exports.pause(export.team_id, &export.id, &reason, Utc::now()).await?;
    // The schedule follows the item's final state (an unpause through the API may land meanwhile).
    services.schedules.converge(&services.exports, written).await?;
    tracing::warn!(export_id = %export.id, reason = %reason, "export paused");
    Ok(Some(reason))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_map_to_statuses_and_messages() {
        let lambda = StepFailure {
            error: "NonRetryableError".into(),
            cause: Some(r#"{"errorType":"NonRetryableError","errorMessage":"bucket `x` does not exist"}"#.into()),
        };
        assert_eq!(lambda.status(), RunStatus::Failed);
        assert_eq!(lambda.message(), "bucket `x` does not exist");
        let exhausted =
            StepFailure { error: "RetryableError".into(), cause: Some("{\"errorMessage\":\"503\"}".into()) };
        assert_eq!(exhausted.status(), RunStatus::FailedRetryable);
        let unsettled = StepFailure { error: "LakeUnsettledError".into(), cause: None };
        assert_eq!(unsettled.status(), RunStatus::FailedRetryable, "a later retry may succeed");
        let timeout = StepFailure { error: "States.Timeout".into(), cause: None };
        assert_eq!(timeout.status(), RunStatus::TimedOut);
        assert_eq!(timeout.message(), "States.Timeout");
        let plain = StepFailure { error: "States.TaskFailed".into(), cause: Some("not json".into()) };
        assert_eq!(plain.message(), "not json");
    }
}
