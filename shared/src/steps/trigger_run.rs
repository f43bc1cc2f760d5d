//! The schedules' target: turns a schedule firing into one execution of the export state machine per interval.
//!
//! EventBridge Scheduler passes `{"team_id", "export_id", "scheduled_time"}`. The trigger derives the interval
//! (in the export's time zone), and starts the state machine with the explicit interval as input and an
//! execution name made of the export id and the interval end (`{export_id}-{YYYYMMDDTHHMMSSZ}`; Step Functions
//! names cannot hold the `:` of a timestamp). A repeated firing for the same interval therefore asks for the same
//! execution, which Step Functions refuses to start twice: the trigger reports it as already started.
//!
//! A firing for an export that no longer exists deletes its schedule (the export's delete raced a change that
//! wrote the schedule back) and starts nothing; a firing for a paused export starts nothing and writes the
//! schedule from the item, which disables it (the pause's own write may not have landed yet).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{RunRequest, Services};
use crate::aws_error::classify_sdk_error;
use crate::error::{ExportError, InternalContext, Result};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TriggerOutput {
    pub execution_name: String,
    /// The execution started (or found running with the same input); none when it had already run.
    pub execution_arn: Option<String>,
    pub already_started: bool,
    /// Why no run was started (the export is paused or gone), when none was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

impl TriggerOutput {
    fn skipped(why: &str) -> Self {
        TriggerOutput {
            execution_name: String::new(),
            execution_arn: None,
            already_started: false,
            skipped: Some(why.into()),
        }
    }
}

/// The execution name of an export's run of the interval ending at `end` (at most 80 characters, of the
/// characters Step Functions allows).
pub fn execution_name(export_id: &str, end: DateTime<Utc>) -> String {
    let id: String = export_id
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' })
        .take(80 - 17)
        .collect();
    format!("{id}-{}", end.format("%Y%m%dT%H%M%SZ"))
}

pub async fn trigger_run(services: &Services, request: RunRequest) -> Result<TriggerOutput> {
    let state_machine = services
        .state_machine_arn
        .as_deref()
        .ok_or_else(|| ExportError::config("BATCH_EXPORT_STATE_MACHINE_ARN", "is not set"))?;
    let scheduled = request
        .scheduled_time
        .ok_or_else(|| ExportError::config("scheduled_time", "a schedule firing carries scheduled_time"))?;
    let stored = match services.exports.get_stored(request.team_id, &request.export_id).await {
        Ok(stored) => stored,
        Err(ExportError::NotFound { .. }) => {
            tracing::warn!(export_id = %request.export_id, "the export is gone: deleting its schedule");
            services.schedules.delete(&request.export_id).await?;
            return Ok(TriggerOutput::skipped("the export does not exist"));
        }
        Err(e) => return Err(e),
    };
    if stored.export.paused {
        tracing::warn!(export_id = %stored.export.id, "the export is paused: no run; disabling its schedule");
        services.schedules.converge(&services.exports, stored).await?;
        return Ok(TriggerOutput::skipped("the export is paused"));
    }
    let export = stored.export;
    let interval = export.interval_scheduled_at(scheduled)?;
    let name = execution_name(&export.id, interval.end);
    let input = RunRequest {
        team_id: export.team_id,
        export_id: export.id.clone(),
        scheduled_time: None,
        data_interval_start: Some(interval.start),
        data_interval_end: Some(interval.end),
        backfill_id: None,
    };
    let input = serde_json::to_string(&input).internal("execution input")?;
    let started = services.sfn.start_execution().state_machine_arn(state_machine).name(&name).input(input).send().await;
    match started {
        Ok(out) => {
            tracing::info!(execution = %name, "run started");
            Ok(TriggerOutput {
                execution_name: name,
                execution_arn: Some(out.execution_arn),
                already_started: false,
                skipped: None,
            })
        }
        Err(e) if e.as_service_error().is_some_and(|s| s.is_execution_already_exists()) => {
            tracing::info!(execution = %name, "run already started");
            Ok(TriggerOutput { execution_name: name, execution_arn: None, already_started: true, skipped: None })
        }
        Err(e) => Err(classify_sdk_error(e, "StartExecution", state_machine, None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn execution_names_are_made_of_the_export_and_the_interval_end() {
        let end = DateTime::parse_from_rfc3339("2026-11-21T10:00:00Z").unwrap().to_utc();
        assert_eq!(execution_name("0193a1b2-c3d4", end), "0193a1b2-c3d4-20261121T100000Z");
        assert_eq!(execution_name("a b:c", end), "a_b_c-20261121T100000Z");
        assert_eq!(execution_name(&"x".repeat(200), end).len(), 80);
    }
}
