//! Backfills end to end on the local stack: a backfill created over HTTP (the API records it and starts the
//! backfill state machine), whose execution runs by itself on the local Step Functions endpoint — the real
//! `statemachines/backfill.asl.json`, which runs `export.asl.json` once per interval as a nested execution of
//! its own, all invoking the real function binaries. The tests only wait for it.

use aws_sdk_sfn::types::ExecutionStatus;
use batch_exports::sources::synthetic::SyntheticEvents;
use batch_exports::{FileFormat, Interval, S3DestinationConfig};
use chrono::{DateTime, Duration, Utc};
use integration_tests::{
    assert_files_hold, execution_arn, list_keys, local_stack, new_bucket, s3, wait_for_execution, Api, FaultProxy, Lake,
};
use serde_json::{json, Value};

use crate::api::unique_team;

/// The first of the six hours every test backfills: 02:00 UTC a day ago.
fn first_hour() -> DateTime<Utc> {
    (Utc::now() - Duration::days(1)).date_naive().and_hms_opt(2, 0, 0).unwrap().and_utc()
}

fn zulu(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Six hours of events for a team in the lake, one object per hour.
async fn seed_six_hours(s3: &aws_sdk_s3::Client, team: i64, per_hour: usize) -> Lake {
    let bucket = std::env::var("BATCH_EXPORT_LAKE_BUCKET").unwrap();
    let mut lake = Lake::new(s3, &bucket);
    let mut events = SyntheticEvents::new(team as u64, team);
    for h in 0..6 {
        let hour = first_hour() + Duration::hours(h);
        lake.add(team, hour, "events.jsonl.zst", events.events_between(hour, Duration::hours(1), per_hour)).await;
    }
    lake
}

/// Creates an hourly export over the API; files go under `bf/{interval end as YYYYMMDDHH}/`.
async fn create_export(api: &Api, config: &S3DestinationConfig) -> String {
    let mut body = json!({"name": "backfilled", "interval": "hour", "destination": {"type": "S3", "config": {
        "bucket_name": config.bucket_name, "prefix": config.prefix}}});
    if let Some(url) = &config.endpoint_url {
        body["destination"]["config"]["endpoint_url"] = json!(url);
    }
    let (status, created) = api.call("POST", &api.path(""), Some(body)).await;
    assert_eq!(status, 201, "{created}");
    created["id"].as_str().unwrap().to_string()
}

/// Creates a backfill over the API and returns it with the input the API started its execution with, and that
/// execution's ARN (it runs by itself).
async fn create_backfill(api: &Api, export_id: &str, body: Value) -> (Value, Value, String) {
    let (status, backfill) = api.call("POST", &api.path(&format!("{export_id}/backfills/")), Some(body)).await;
    assert_eq!(status, 201, "{backfill}");
    let execution = execution_arn("BATCH_EXPORT_BACKFILL_STATE_MACHINE_ARN", backfill["id"].as_str().unwrap());
    let sfn = aws_sdk_sfn::Client::new(&local_stack().await);
    let described = sfn.describe_execution().execution_arn(&execution).send().await.unwrap();
    (backfill, serde_json::from_str(described.input().unwrap()).unwrap(), execution)
}

/// Waits for a backfill's execution to end, and asserts it succeeded.
async fn assert_runs_to_success(execution: &str) {
    let ended = wait_for_execution(execution).await;
    assert_eq!(ended.status(), &ExecutionStatus::Succeeded, "{:?}: {:?}", ended.error(), ended.cause());
}

async fn get_backfill(api: &Api, export_id: &str, backfill: &Value) -> Value {
    let path = api.path(&format!("{export_id}/backfills/{}/", backfill["id"].as_str().unwrap()));
    let (status, got) = api.call("GET", &path, None).await;
    assert_eq!(status, 200, "{got}");
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_six_hour_backfill_runs_six_runs_and_records_its_progress() {
    let api = Api::new_team(unique_team()).await;
    let s3 = s3(&local_stack().await);
    let lake = seed_six_hours(&s3, api.team, 3_000).await;
    let mut config = S3DestinationConfig::new(new_bucket(&s3, "backfill").await);
    config.prefix = "bf/{year}{month}{day}{hour}/".into();
    let export_id = create_export(&api, &config).await;

    // Asked from three hours before the first data: the start moves forward to the earliest data.
    let start = first_hour() - Duration::hours(3);
    let end = first_hour() + Duration::hours(6);
    let (backfill, input, execution) =
        create_backfill(&api, &export_id, json!({"start_at": zulu(start), "end_at": zulu(end)})).await;
    assert_eq!(
        input,
        json!({"backfill": {"team_id": api.team, "export_id": export_id, "backfill_id": backfill["id"]}})
    );
    assert_runs_to_success(&execution).await;
    // Each interval ran as a nested execution of the export state machine, listed there, each succeeded.
    let sfn = aws_sdk_sfn::Client::new(&local_stack().await);
    let machine = std::env::var("BATCH_EXPORT_STATE_MACHINE_ARN").unwrap();
    let children = sfn.list_executions().state_machine_arn(machine).max_results(1000).send().await.unwrap();
    let children: Vec<_> =
        children.executions().iter().filter(|e| e.name().starts_with(backfill["id"].as_str().unwrap())).collect();
    assert_eq!(children.len(), 6, "{children:?}");
    assert!(children.iter().all(|e| e.status() == &ExecutionStatus::Succeeded), "{children:?}");

    let done = get_backfill(&api, &export_id, &backfill).await;
    assert_eq!(done["status"], "Completed", "{done}");
    assert_eq!((done["expected_runs"].as_u64(), done["finished_runs"].as_u64()), (Some(6), Some(6)));
    assert_eq!(done["progress"], 1.0);
    assert_eq!(done["effective_start_at"].as_str(), Some(zulu(first_hour()).as_str()));
    let runs = api.runs(&export_id).await;
    assert_eq!(runs.len(), 6);
    assert!(runs.iter().all(|r| r["status"] == "Completed" && r["backfill_id"] == backfill["id"]), "{runs:?}");
    let sum: u64 = runs.iter().map(|r| r["records_completed"].as_u64().unwrap()).sum();
    assert_eq!(done["total_records"].as_u64(), Some(sum));
    assert_eq!(sum, 6 * 3_000);

    // Each hour's file holds exactly that hour's events.
    let keys = list_keys(&s3, &config.bucket_name).await;
    assert_eq!(keys.len(), 6, "{keys:?}");
    for h in 0..6 {
        let interval = Interval::new(first_hour() + Duration::hours(h), first_hour() + Duration::hours(h + 1)).unwrap();
        let folder = format!("bf/{}/", interval.end.format("%Y%m%d%H"));
        let key = keys.iter().find(|k| k.starts_with(&folder)).unwrap_or_else(|| panic!("no file in {folder}"));
        assert_eq!(config.file_format, FileFormat::JSONLines);
        let expected = lake.expected(api.team, &interval, |_| true);
        assert_files_hold(&s3, &config.bucket_name, &[key], &config, &expected).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_backfill_during_its_second_run_leaves_the_later_intervals_unrun() {
    let api = Api::new_team(unique_team()).await;
    let s3 = s3(&local_stack().await);
    seed_six_hours(&s3, api.team, 500).await;
    let bucket = new_bucket(&s3, "backfill-cancel").await;
    // The destination is slow for the second run's file (interval ending at first hour + 2), so the test can
    // cancel while that run is under way.
    let second_end = first_hour() + Duration::hours(2);
    let proxy = FaultProxy::delaying("PUT", &format!("/bf/{}/", second_end.format("%Y%m%d%H")), 1, 4.0);
    let mut config = S3DestinationConfig::new(&bucket);
    config.prefix = "bf/{year}{month}{day}{hour}/".into();
    config.endpoint_url = Some(proxy.url.clone());
    let export_id = create_export(&api, &config).await;

    let range = json!({"start_at": zulu(first_hour()), "end_at": zulu(first_hour() + Duration::hours(6))});
    let (backfill, _, execution) = create_backfill(&api, &export_id, range).await;

    // Wait for the second run to be under way, then cancel.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let runs = api.runs(&export_id).await;
        if runs.iter().any(|r| r["data_interval_end"] == zulu(second_end) && r["status"] == "Running") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the second run never started: {runs:?}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let path = api.path(&format!("{export_id}/backfills/{}/cancel/", backfill["id"].as_str().unwrap()));
    let (status, cancelled) = api.call("POST", &path, None).await;
    assert_eq!((status, &cancelled["status"]), (200, &json!("Cancelled")), "{cancelled}");
    assert_runs_to_success(&execution).await;

    let done = get_backfill(&api, &export_id, &backfill).await;
    assert_eq!(done["status"], "Cancelled");
    assert_eq!((done["expected_runs"].as_u64(), done["finished_runs"].as_u64()), (Some(6), Some(2)), "{done}");
    let runs = api.runs(&export_id).await;
    let ends: Vec<_> = runs.iter().map(|r| r["data_interval_end"].as_str().unwrap().to_string()).collect();
    assert_eq!(ends, [zulu(second_end), zulu(first_hour() + Duration::hours(1))], "only the first two intervals ran");
    assert!(runs.iter().all(|r| r["status"] == "Completed"));
    assert_eq!(list_keys(&s3, &bucket).await.len(), 2);
    // Cancelling again changes nothing; a completed backfill cannot be cancelled.
    let (status, again) = api.call("POST", &path, None).await;
    assert_eq!((status, &again["finished_runs"]), (200, &json!(2)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_of_a_range_without_data_completes_at_once() {
    let api = Api::new_team(unique_team()).await;
    let s3 = s3(&local_stack().await);
    let config = S3DestinationConfig::new(new_bucket(&s3, "backfill-empty").await);
    let export_id = create_export(&api, &config).await;
    let (backfill, _, execution) = create_backfill(
        &api,
        &export_id,
        json!({"start_at": zulu(first_hour()), "end_at": zulu(first_hour() + Duration::hours(6))}),
    )
    .await;
    assert_runs_to_success(&execution).await;
    let done = get_backfill(&api, &export_id, &backfill).await;
    assert_eq!((done["status"].as_str(), done["expected_runs"].as_u64()), (Some("Completed"), Some(0)), "{done}");
    assert_eq!(done["progress"], 1.0);
    assert!(api.runs(&export_id).await.is_empty());
    assert!(list_keys(&s3, &config.bucket_name).await.is_empty());
    let path = api.path(&format!("{export_id}/backfills/{}/cancel/", backfill["id"].as_str().unwrap()));
    let (status, error) = api.call("POST", &path, None).await;
    assert_eq!(status, 409, "{error}");
}

/// A team with person changes and no events: a persons export's backfill ranges over the persons data (its
/// start moves to the first hour with person changes) and runs each of its hours.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persons_backfill_of_a_team_without_events_ranges_over_its_persons_data() {
    let api = Api::new_team(unique_team()).await;
    let s3 = s3(&local_stack().await);
    let moved = crate::persons::MovedIds::land(&s3, api.team).await;
    let bucket = new_bucket(&s3, "backfill-persons").await;
    let body = json!({"name": "persons", "model": "persons", "interval": "hour",
                      "destination": {"type": "S3", "config": {"bucket_name": bucket, "prefix": "{table}/"}}});
    let (status, created) = api.call("POST", &api.path(""), Some(body)).await;
    assert_eq!(status, 201, "{created}");
    let export_id = created["id"].as_str().unwrap();

    let first = moved.hours[0].start;
    let range = json!({"start_at": zulu(first - Duration::hours(3)), "end_at": zulu(first + Duration::hours(5))});
    let (backfill, _, execution) = create_backfill(&api, export_id, range).await;
    assert_runs_to_success(&execution).await;
    let done = get_backfill(&api, export_id, &backfill).await;
    assert_eq!(done["status"], "Completed", "{done}");
    assert_eq!(done["effective_start_at"].as_str(), Some(zulu(first).as_str()), "{done}");
    assert_eq!((done["expected_runs"].as_u64(), done["finished_runs"].as_u64()), (Some(5), Some(5)), "{done}");
    let mut runs = api.runs(export_id).await;
    runs.reverse();
    let records: Vec<u64> = runs.iter().map(|r| r["records_completed"].as_u64().unwrap()).collect();
    // Hour 1: d1–d3 and d9; hour 2: the three moves; hour 3: d9's change; then two hours without changes.
    assert_eq!(records, [4, 3, 1, 0, 0], "{runs:?}");
    assert_eq!(done["total_records"].as_u64(), Some(8));
    let keys = list_keys(&s3, &bucket).await;
    assert_eq!(keys.len(), 3, "a file per hour with changes: {keys:?}");
    assert!(keys.iter().all(|k| k.starts_with("persons/")), "{keys:?}");
}
