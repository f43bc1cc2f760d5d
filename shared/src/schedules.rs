//! EventBridge Scheduler schedules: one per export, in the exports' own schedule group, firing at each
//! interval end plus a small delay for late data, and passing the firing time on as `scheduled_time`.
//!
//! - Expression: a cron at minute `delay` of every hour (`hour`), day (`day`, 00:MM), Monday (`week`), or every
//!   5 / 15 minutes from minute `delay` (`every 5 minutes`, `every 15 minutes`).
//! - Time zone: the export's for `day` and `week` (they start at local midnight), UTC for the others.
//! - Dates: a future `start_at` becomes the start date (a past one does not: EventBridge Scheduler refuses
//!   start dates in the past, and the schedule starts now; the intervals before now are a backfill's job);
//!   `end_at` plus the delay the end date (so the last interval, which ends at `end_at`, still fires).
//! - State: disabled while the export is paused, and once its end date has passed (no firing is left).
//! - Target: the run trigger (`BATCH_EXPORT_SCHEDULE_TARGET_ARN`), assumed with `BATCH_EXPORT_SCHEDULER_ROLE_ARN`,
//!   with the input `{"team_id", "export_id", "scheduled_time": "<aws.scheduler.scheduled-time>"}`: ids and the
//!   time only, never the destination config.

use aws_sdk_scheduler::types::{FlexibleTimeWindow, FlexibleTimeWindowMode, RetryPolicy, ScheduleState, Target};
use chrono::{DateTime, Duration, Utc};

use crate::aws_error::classify_sdk_error;
use crate::batch_export::{parse_timezone, BatchExport, ExportInterval};
use crate::error::{ExportError, InternalContext, Result};
use crate::store::{ExportStore, StoredExport};

/// Where schedules go and what they start (from [`crate::settings::Settings::schedule_settings`]).
#[derive(Debug, Clone)]
pub struct ScheduleSettings {
    /// `BATCH_EXPORT_SCHEDULE_GROUP` (default `batch-exports`).
    pub group: String,
    /// `BATCH_EXPORT_SCHEDULE_TARGET_ARN`: what each firing invokes.
    pub target_arn: String,
    /// `BATCH_EXPORT_SCHEDULER_ROLE_ARN`: the role EventBridge Scheduler assumes to invoke it.
    pub role_arn: String,
    /// `BATCH_EXPORT_SCHEDULE_DELAY_MINUTES` (default 1, at most 4): minutes after each interval end.
    pub delay_minutes: u32,
}

/// A schedule's name: `batch-export-{export id}`.
pub fn schedule_name(export_id: &str) -> String {
    format!("batch-export-{export_id}")
}

/// The schedule expression of an interval, firing `delay` minutes after each interval end.
pub fn schedule_expression(interval: ExportInterval, delay: u32) -> String {
    match interval {
        ExportInterval::Hour => format!("cron({delay} * * * ? *)"),
        ExportInterval::Day => format!("cron({delay} 0 * * ? *)"),
        ExportInterval::Week => format!("cron({delay} 0 ? * MON *)"),
        ExportInterval::Every5Minutes => format!("cron({delay}/5 * * * ? *)"),
        ExportInterval::Every15Minutes => format!("cron({delay}/15 * * * ? *)"),
    }
}

/// The time zone a schedule's expression is read in.
pub fn schedule_timezone(export: &BatchExport) -> Result<String> {
    Ok(match export.interval {
        ExportInterval::Day | ExportInterval::Week => parse_timezone(&export.timezone)?.name().to_string(),
        _ => "UTC".to_string(),
    })
}

/// The target input of an export's schedule.
pub fn schedule_input(export: &BatchExport) -> String {
    serde_json::json!({
        "team_id": export.team_id,
        "export_id": export.id,
        "scheduled_time": "<aws.scheduler.scheduled-time>",
    })
    .to_string()
}

/// A schedule's start and end dates as of `now`: the export's `start_at` when it is still ahead, and its
/// `end_at` plus the delay when that is still ahead (EventBridge Scheduler refuses dates in the past).
pub fn schedule_dates(
    export: &BatchExport,
    delay: u32,
    now: DateTime<Utc>,
) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
    let start = export.start_at.filter(|s| *s > now);
    let end = export.end_at.map(|t| t + Duration::minutes(delay as i64)).filter(|e| *e > now);
    (start, end)
}

fn smithy_time(t: DateTime<Utc>) -> aws_smithy_types::DateTime {
    aws_smithy_types::DateTime::from_secs(t.timestamp())
}

/// The exports' schedules.
#[derive(Debug, Clone)]
pub struct Schedules {
    client: aws_sdk_scheduler::Client,
    settings: ScheduleSettings,
}

impl Schedules {
    pub fn new(client: aws_sdk_scheduler::Client, settings: ScheduleSettings) -> Self {
        Schedules { client, settings }
    }

    pub fn settings(&self) -> &ScheduleSettings {
        &self.settings
    }

    /// The shared convergence loop (`converge`) with [`Schedules::put`]: the schedule follows the export's final state.
    pub async fn converge(&self, exports: &ExportStore, written: StoredExport) -> Result<BatchExport> {
        converge(exports, &self.client, &self.settings.group, written, |export| async move { self.put(&export).await })
            .await
    }

    /// Creates the schedule group unless it exists.
    pub async fn ensure_group(&self) -> Result<()> {
        match self.client.create_schedule_group().name(&self.settings.group).send().await {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_conflict_exception()) => Ok(()),
            Err(e) => Err(classify_sdk_error(e, "CreateScheduleGroup", &self.settings.group, None)),
        }
    }

    /// Creates the export's schedule, or updates it to match the export (interval, time zone, dates, paused).
    pub async fn put(&self, export: &BatchExport) -> Result<()> {
        self.put_at(export, Utc::now()).await
    }

    /// [`Schedules::put`] as of `now` (dates before it are left out, as EventBridge Scheduler refuses them).
    pub async fn put_at(&self, export: &BatchExport, now: DateTime<Utc>) -> Result<()> {
        let name = schedule_name(&export.id);
        let delay = self.settings.delay_minutes;
        let expression = schedule_expression(export.interval, delay);
        let timezone = schedule_timezone(export)?;
        let window =
            FlexibleTimeWindow::builder().mode(FlexibleTimeWindowMode::Off).build().internal("schedule window")?;
        let target = Target::builder()
            .arn(&self.settings.target_arn)
            .role_arn(&self.settings.role_arn)
            .input(schedule_input(export))
            .retry_policy(
                RetryPolicy::builder().maximum_event_age_in_seconds(86_400).maximum_retry_attempts(20).build(),
            )
            .build()
            .internal("schedule target")?;
        let (start, end) = schedule_dates(export, delay, now);
        let ended = export.end_at.is_some() && end.is_none();
        let state = if export.paused || ended { ScheduleState::Disabled } else { ScheduleState::Enabled };
        let (start, end) = (start.map(smithy_time), end.map(smithy_time));
        // Create, or update the one that exists; one deleted between the two (a racing delete of the export) is
        // created again, and the caller's re-read of the item ([`converge`]) then finds the export gone.
        // CreateSchedule and UpdateSchedule take the same fields (their builders are different types).
        macro_rules! schedule {
            ($request:expr) => {
                $request
                    .name(&name)
                    .group_name(&self.settings.group)
                    .schedule_expression(&expression)
                    .schedule_expression_timezone(&timezone)
                    .set_start_date(start)
                    .set_end_date(end)
                    .flexible_time_window(window.clone())
                    .target(target.clone())
                    .state(state.clone())
                    .send()
                    .await
            };
        }
        for _ in 0..PUT_ATTEMPTS {
            match schedule!(self.client.create_schedule()) {
                Ok(_) => return Ok(()),
                Err(e) if e.as_service_error().is_some_and(|s| s.is_conflict_exception()) => {}
                Err(e) => return Err(classify_sdk_error(e, "CreateSchedule", &name, None)),
            }
            match schedule!(self.client.update_schedule()) {
                Ok(_) => return Ok(()),
                Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_not_found_exception()) => {}
                Err(e) => return Err(classify_sdk_error(e, "UpdateSchedule", &name, None)),
            }
        }
        Err(ExportError::Transient {
            operation: "CreateSchedule",
            resource: name,
            message: format!("the schedule was created and deleted by others {PUT_ATTEMPTS} times"),
        })
    }

    /// Deletes the export's schedule (a missing one is fine: deleting is idempotent).
    pub async fn delete(&self, export_id: &str) -> Result<()> {
        delete_schedule(&self.client, &self.settings.group, export_id).await
    }
}

/// How many times a schedule put tries create-then-update while others create and delete it (503 after).
const PUT_ATTEMPTS: usize = 3;

/// How many times a schedule is written again because its export changed meanwhile, before giving up (503).
const CONVERGE_ATTEMPTS: usize = 8;

/// Makes an export's schedule agree with its item, whatever other writers do meanwhile: `write` writes the
/// schedule from `written` (the item as this caller wrote it), then the item is read again; if it changed (its
/// version moved: a concurrent patch, pause or unpause), the schedule is written again from what it is now, and
/// if it is gone (a concurrent delete), the schedule is deleted and the export is [`ExportError::NotFound`].
/// The last writer of the schedule has therefore always written it from the item's final state. Returns the
/// export as it is now.
async fn converge<F, Fut>(
    exports: &ExportStore,
    client: &aws_sdk_scheduler::Client,
    group: &str,
    mut written: StoredExport,
    write: F,
) -> Result<BatchExport>
where
    F: Fn(BatchExport) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let (team_id, id) = (written.export.team_id, written.export.id.clone());
    for _ in 0..CONVERGE_ATTEMPTS {
        write(written.export.clone()).await?;
        match exports.get_stored(team_id, &id).await {
            Ok(now) if now.version == written.version => return Ok(now.export),
            Ok(now) => written = now,
            Err(e @ ExportError::NotFound { .. }) => {
                delete_schedule(client, group, &id).await?;
                return Err(e);
            }
            Err(e) => return Err(e),
        }
    }
    Err(ExportError::Transient {
        operation: "UpdateSchedule",
        resource: schedule_name(&id),
        message: format!("the export changed {CONVERGE_ATTEMPTS} times while its schedule was written"),
    })
}

/// Deletes an export's schedule; a missing one is fine (deleting is idempotent).
async fn delete_schedule(client: &aws_sdk_scheduler::Client, group: &str, export_id: &str) -> Result<()> {
    let name = schedule_name(export_id);
    match client.delete_schedule().name(&name).group_name(group).send().await {
        Ok(_) => Ok(()),
        Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_not_found_exception()) => Ok(()),
        Err(e) => Err(classify_sdk_error(e, "DeleteSchedule", &name, None)),
    }
}

/// The schedules as the run steps see them (auto-pause in finish-run, the run trigger): they know the group but
/// not the schedules' target, which they keep as each schedule has it; everything else is written from the
/// export, as [`Schedules::put`] writes it.
#[derive(Debug, Clone)]
pub struct ExistingSchedules {
    client: aws_sdk_scheduler::Client,
    group: String,
    delay_minutes: u32,
}

impl ExistingSchedules {
    pub fn new(client: aws_sdk_scheduler::Client, group: impl Into<String>, delay_minutes: u32) -> Self {
        ExistingSchedules { client, group: group.into(), delay_minutes }
    }

    /// Makes the export's schedule agree with its item (the same convergence loop as [`Schedules::converge`]), keeping the schedule's target; a missing
    /// schedule stays missing.
    pub async fn converge(&self, exports: &ExportStore, written: StoredExport) -> Result<BatchExport> {
        converge(exports, &self.client, &self.group, written, |export| async move { self.follow(&export).await }).await
    }

    /// Writes the export's schedule from the export, keeping its target.
    async fn follow(&self, export: &BatchExport) -> Result<()> {
        let name = schedule_name(&export.id);
        let current = match self.client.get_schedule().name(&name).group_name(&self.group).send().await {
            Ok(current) => current,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_not_found_exception()) => return Ok(()),
            Err(e) => return Err(classify_sdk_error(e, "GetSchedule", &name, None)),
        };
        let target = current.target.ok_or_else(|| ExportError::internal(format!("schedule `{name}` has no target")))?;
        let settings = ScheduleSettings {
            group: self.group.clone(),
            target_arn: target.arn,
            role_arn: target.role_arn,
            delay_minutes: self.delay_minutes,
        };
        Schedules::new(self.client.clone(), settings).put(export).await
    }

    /// Deletes the export's schedule (a missing one is fine).
    pub async fn delete(&self, export_id: &str) -> Result<()> {
        delete_schedule(&self.client, &self.group, export_id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expressions_fire_after_each_interval_end() {
        let cases = [
            (ExportInterval::Hour, "cron(1 * * * ? *)"),
            (ExportInterval::Day, "cron(1 0 * * ? *)"),
            (ExportInterval::Week, "cron(1 0 ? * MON *)"),
            (ExportInterval::Every5Minutes, "cron(1/5 * * * ? *)"),
            (ExportInterval::Every15Minutes, "cron(1/15 * * * ? *)"),
        ];
        for (interval, expression) in cases {
            assert_eq!(schedule_expression(interval, 1), expression);
        }
        assert_eq!(schedule_expression(ExportInterval::Hour, 0), "cron(0 * * * ? *)");
    }

    #[test]
    fn dates_in_the_past_are_left_out() {
        let now = Utc::now();
        let mut export = BatchExport::new(
            "e",
            1,
            "e",
            crate::batch_export::Destination::S3(crate::S3DestinationConfig::new("bucket")),
            ExportInterval::Hour,
        );
        export.start_at = Some(now - Duration::days(7));
        export.end_at = Some(now + Duration::days(7));
        assert_eq!(schedule_dates(&export, 1, now), (None, Some(now + Duration::days(7) + Duration::minutes(1))));
        export.start_at = Some(now + Duration::hours(1));
        assert_eq!(schedule_dates(&export, 1, now).0, Some(now + Duration::hours(1)));
        // An end a minute ago still has its delayed firing ahead; an end long past has none.
        export.end_at = Some(now - Duration::seconds(30));
        assert!(schedule_dates(&export, 1, now).1.is_some());
        export.start_at = None;
        export.end_at = Some(now - Duration::days(1));
        assert_eq!(schedule_dates(&export, 1, now), (None, None));
    }

    #[test]
    fn every_firing_maps_back_to_the_interval_that_just_ended() {
        // A firing at minute `delay` after a boundary covers the interval ending at that boundary.
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().to_utc();
        let berlin = parse_timezone("Europe/Berlin").unwrap();
        let five = ExportInterval::Every5Minutes.interval_ending_at_or_before(at("2026-11-21T10:06:00Z"), berlin);
        assert_eq!(five.unwrap().end, at("2026-11-21T10:05:00Z"));
        let day = ExportInterval::Day.interval_ending_at_or_before(at("2026-11-20T23:01:00Z"), berlin);
        assert_eq!(day.unwrap().end, at("2026-11-20T23:00:00Z"));
    }
}
