//! One function per route: load, check, write, answer. Schedules follow their export (created with it, disabled
//! while it is paused, updated with it, removed with it); backfills and run retries start the backfill state
//! machine with the backfill's ids only.

use chrono::Utc;
use serde_json::{json, Value};

use super::bodies::{
    backfill_view, export_view, merge_patch, parse, query_time, run_view, CreateBackfill, CreateExport, Shape, Unpause,
};
use super::error::ApiError;
use super::{ApiRequest, ApiServices, Route};
use crate::aws_error::classify_sdk_error;
use crate::backfills::{Backfill, BackfillStatus};
use crate::batch_export::{BatchExport, Destination};
use crate::error::ExportError;
use crate::runs::{Run, RunStatus};
use crate::time::Interval;
use crate::S3DestinationConfig;

type Answer = Result<(u16, Value), ApiError>;

/// Runs listed per page, by default and at most.
const RUNS_PAGE: i32 = 100;

pub(super) async fn serve(services: &ApiServices, team_id: i64, route: Route, request: &ApiRequest) -> Answer {
    match route {
        Route::GetProject => {
            let token = services.api_keys.project_token(team_id).await?;
            Ok((200, json!({"id": team_id, "api_token": token})))
        }
        Route::ListExports => {
            let exports = services.exports.list(team_id).await?;
            Ok((200, json!({"results": exports.iter().map(export_view).collect::<Vec<_>>(), "next": null})))
        }
        Route::CreateExport => create_export(services, team_id, &request.body).await,
        Route::GetExport(id) => Ok((200, export_view(&services.exports.get(team_id, &id).await?))),
        Route::PatchExport(id) => patch_export(services, team_id, &id, &request.body).await,
        Route::DeleteExport(id) => {
            // The item first: a change racing the delete then finds it gone and deletes the schedule it wrote.
            services.exports.delete(team_id, &id).await?;
            services.schedules.delete(&id).await?;
            Ok((204, Value::Null))
        }
        Route::Pause(id) => {
            let written = services.exports.pause(team_id, &id, "paused through the API", Utc::now()).await?;
            Ok((200, export_view(&services.schedules.converge(&services.exports, written).await?)))
        }
        Route::Unpause(id) => unpause(services, team_id, &id, &request.body).await,
        Route::ListBackfills(id) => {
            services.exports.get(team_id, &id).await?;
            let backfills = services.backfills.list(&id, 100).await?;
            Ok((200, json!({"results": backfills.iter().map(backfill_view).collect::<Vec<_>>(), "next": null})))
        }
        Route::CreateBackfill(id) => {
            let export = services.exports.get(team_id, &id).await?;
            let body: CreateBackfill = parse(&request.body, Shape::FLAT)?;
            let (range, concurrency) = body.check(Utc::now())?;
            let backfill = start_backfill(services, &export, range, concurrency).await?;
            Ok((201, backfill_view(&backfill)))
        }
        Route::GetBackfill(id, backfill_id) => {
            services.exports.get(team_id, &id).await?;
            Ok((200, backfill_view(&services.backfills.get(&id, &backfill_id).await?)))
        }
        Route::CancelBackfill(id, backfill_id) => {
            services.exports.get(team_id, &id).await?;
            let backfill = services.backfills.get(&id, &backfill_id).await?;
            let backfill =
                services.backfills.finish(&backfill.reference(), BackfillStatus::Cancelled, None, Utc::now()).await?;
            if backfill.status != BackfillStatus::Cancelled {
                return Err(ApiError::Conflict(format!(
                    "backfill `{backfill_id}` already ended {}",
                    backfill.status.as_str()
                )));
            }
            Ok((200, backfill_view(&backfill)))
        }
        Route::ListRuns(id) => list_runs(services, team_id, &id, request).await,
        Route::GetRun(id, run_id) => Ok((200, run_view(&find_run(services, team_id, &id, &run_id).await?))),
        Route::RetryRun(id, run_id) => {
            let run = find_run(services, team_id, &id, &run_id).await?;
            let export = services.exports.get(team_id, &id).await?;
            let backfill = start_backfill(services, &export, run.interval(), 1).await?;
            Ok((201, backfill_view(&backfill)))
        }
        Route::CancelRun(id, run_id) => cancel_run(services, team_id, &id, &run_id).await,
    }
}

async fn create_export(services: &ApiServices, team_id: i64, body: &[u8]) -> Answer {
    let body: CreateExport = parse(body, Shape::EXPORT)?;
    let paused = body.paused;
    let placeholder = Destination::S3(S3DestinationConfig::new("placeholder"));
    let mut export = BatchExport::new(
        uuid::Uuid::now_v7().to_string(),
        team_id,
        "",
        placeholder,
        crate::batch_export::ExportInterval::Hour,
    );
    body.apply(&mut export, &[], services.endpoints)?;
    if paused {
        export.paused = true;
        export.last_paused_at = Some(export.created_at);
    }
    let written = services.exports.create(&export).await?;
    let export = match services.schedules.converge(&services.exports, written).await {
        Ok(export) => export,
        Err(e) => {
            // No export without its schedule: undo the create, so a retried request starts clean.
            services.exports.delete(team_id, &export.id).await.ok();
            services.schedules.delete(&export.id).await.ok();
            return Err(e.into());
        }
    };
    tracing::info!(export_id = %export.id, team_id, "export created");
    Ok((201, export_view(&export)))
}

/// Times a patch is merged again because the export changed between its read and its write.
const PATCH_ATTEMPTS: usize = 8;

async fn patch_export(services: &ApiServices, team_id: i64, id: &str, body: &[u8]) -> Answer {
    for _ in 0..PATCH_ATTEMPTS {
        let stored = services.exports.get_stored(team_id, id).await?;
        let mut export = stored.export.clone();
        let merged = merge_patch(&export, body)?;
        // The stored secrets the patch leaves alone stay; the ones it sets or nulls are replaced or removed.
        let keep: Vec<String> =
            stored.sealed_fields().into_iter().filter(|f| !merged.mentioned_secrets.contains(f)).collect();
        merged.body.apply(&mut export, &keep, services.endpoints)?;
        if let Some(written) = services.exports.replace(&export, &stored, &keep).await? {
            return Ok((200, export_view(&services.schedules.converge(&services.exports, written).await?)));
        }
    }
    Err(ExportError::Transient {
        operation: "PutItem",
        resource: format!("batch export `{id}`"),
        message: format!("the export changed {PATCH_ATTEMPTS} times during the patch"),
    }
    .into())
}

async fn unpause(services: &ApiServices, team_id: i64, id: &str, body: &[u8]) -> Answer {
    let body: Unpause =
        if body.iter().all(u8::is_ascii_whitespace) { Unpause::default() } else { parse(body, Shape::FLAT)? };
    let before = services.exports.get(team_id, id).await?;
    let written = services.exports.unpause(team_id, id).await?;
    let export = services.schedules.converge(&services.exports, written).await?;
    let mut view = export_view(&export);
    // What was missed while paused: the intervals that ended between the pause and now.
    if let (true, true, Some(paused_at)) = (body.backfill, before.paused, before.last_paused_at) {
        let now = Utc::now();
        if paused_at < now {
            let backfill = start_backfill(services, &export, Interval { start: paused_at, end: now }, 1).await?;
            view["backfill"] = backfill_view(&backfill);
        }
    }
    Ok((200, view))
}

/// Records a backfill and starts its state machine (input: the backfill's ids), named after the backfill.
async fn start_backfill(
    services: &ApiServices,
    export: &BatchExport,
    range: Interval,
    concurrency: u32,
) -> Result<Backfill, ApiError> {
    let machine = services
        .backfill_state_machine_arn
        .as_deref()
        .ok_or_else(|| ExportError::internal("BATCH_EXPORT_BACKFILL_STATE_MACHINE_ARN is not set"))?;
    let backfill = Backfill::new(export, range, concurrency, Utc::now());
    services.backfills.create(&backfill).await?;
    let input = json!({"backfill": backfill.reference()}).to_string();
    let started =
        services.sfn.start_execution().state_machine_arn(machine).name(&backfill.id).input(input).send().await;
    if let Err(e) = started {
        let error = classify_sdk_error(e, "StartExecution", machine, None);
        services
            .backfills
            .finish(&backfill.reference(), BackfillStatus::Failed, Some(&error.to_string()), Utc::now())
            .await?;
        return Err(error.into());
    }
    tracing::info!(backfill_id = %backfill.id, export_id = %export.id, "backfill started");
    Ok(services.backfills.get(&export.id, &backfill.id).await?)
}

async fn list_runs(services: &ApiServices, team_id: i64, id: &str, request: &ApiRequest) -> Answer {
    services.exports.get(team_id, id).await?;
    let limit = match request.query("limit") {
        None => RUNS_PAGE,
        Some(v) => v
            .parse::<i32>()
            .ok()
            .filter(|l| (1..=RUNS_PAGE).contains(l))
            .ok_or_else(|| ApiError::validation("limit", format!("must be a number from 1 to {RUNS_PAGE}")))?,
    };
    let cursor = query_time("cursor", request.query("cursor"))?;
    let after = query_time("after", request.query("after"))?;
    let before = query_time("before", request.query("before"))?;
    let within = match (after, before) {
        (None, None) => None,
        (after, before) => {
            let start = after.unwrap_or(chrono::DateTime::UNIX_EPOCH);
            let end = before.unwrap_or_else(|| Utc::now() + chrono::Duration::days(36_500));
            if start >= end {
                return Err(ApiError::validation("after", "must be before `before`"));
            }
            Some(Interval { start, end })
        }
    };
    let page = services.runs.page(id, limit, cursor, within).await?;
    let next = page.next.map(|next| {
        let mut query = vec![format!("limit={limit}"), format!("cursor={}", zulu(next))];
        query.extend(after.map(|a| format!("after={}", zulu(a))));
        query.extend(before.map(|b| format!("before={}", zulu(b))));
        format!("/api/projects/{team_id}/batch_exports/{id}/runs/?{}", query.join("&"))
    });
    Ok((200, json!({"results": page.runs.iter().map(run_view).collect::<Vec<_>>(), "next": next})))
}

/// A run of an export of this team (another export's run is not found).
async fn find_run(services: &ApiServices, team_id: i64, id: &str, run_id: &str) -> Result<Run, ApiError> {
    services.exports.get(team_id, id).await?;
    match services.runs.get_by_id(run_id).await? {
        Some(run) if run.export_id == id && run.team_id == team_id => Ok(run),
        _ => Err(ApiError::NotFound(format!("run `{run_id}` does not exist"))),
    }
}

async fn cancel_run(services: &ApiServices, team_id: i64, id: &str, run_id: &str) -> Answer {
    let run = find_run(services, team_id, id, run_id).await?;
    let cancelled = services.runs.cancel(&run, Utc::now()).await?;
    if cancelled.status != RunStatus::Cancelled {
        return Err(ApiError::Conflict(format!("run `{run_id}` already ended {}", cancelled.status.as_str())));
    }
    // Stop the execution too, when it is known; the record is cancelled either way, and the execution's next
    // step finds it so and stops.
    if let (Some(machine), Some(name)) = (&services.export_state_machine_arn, &run.execution) {
        let execution = format!("{}:{name}", machine.replacen(":stateMachine:", ":execution:", 1));
        if let Err(e) =
            services.sfn.stop_execution().execution_arn(&execution).cause("cancelled through the API").send().await
        {
            tracing::warn!(execution = %execution, error = %classify_sdk_error(e, "StopExecution", &execution, None), "could not stop the execution");
        }
    }
    Ok((200, run_view(&cancelled)))
}

/// A time as a query parameter: RFC 3339 with `Z` (a `+` would need escaping).
fn zulu(t: chrono::DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}
