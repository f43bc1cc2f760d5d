//! The local stack live, as on AWS: a schedule's firing starts an execution that runs by itself on the local
//! Step Functions endpoint (`localstack/sfn/server.mjs`) to a Completed run with its files, and a run cancelled
//! over the API stops its live execution (no later step runs) and its retry completes the interval. (A backfill
//! running by itself, nested executions included, is `backfills`'s.)

use aws_sdk_scheduler::types::ScheduleState;
use aws_sdk_sfn::types::ExecutionStatus;
use batch_exports::schedules::schedule_name;
use batch_exports::sources::synthetic::SyntheticEvents;
use batch_exports::{FileFormat, Interval, S3DestinationConfig};
use chrono::{DateTime, Duration, Utc};
use integration_tests::{
    assert_files_hold, execution_arn, fire_schedule, list_keys, local_stack, new_bucket, open_uploads, s3, settings,
    wait_for_execution, Api, FaultProxy, Lake,
};
use serde_json::{json, Value};

use crate::api::unique_team;

/// The hour every test here exports: 14:00 UTC a day ago.
fn hour() -> Interval {
    let start = (Utc::now() - Duration::days(1)).date_naive().and_hms_opt(14, 0, 0).unwrap().and_utc();
    Interval::new(start, start + Duration::hours(1)).unwrap()
}

/// Seeds the hour with events for the API's team; returns the lake.
async fn seed(api: &Api, client: &aws_sdk_s3::Client, events: usize) -> Lake {
    let mut lake = Lake::new(client, settings().lake_bucket().unwrap());
    let rows = SyntheticEvents::new(api.team as u64, api.team).events_between(hour().start, Duration::hours(1), events);
    lake.add(api.team, hour().start, "events.jsonl.zst", rows).await;
    lake
}

/// Creates an hourly export over the API; returns its id.
async fn create_export(api: &Api, config: Value) -> String {
    let body = json!({"name": "live", "interval": "hour", "destination": {"type": "S3", "config": config}});
    let (status, created) = api.call("POST", &api.path(""), Some(body)).await;
    assert_eq!(status, 201, "{created}");
    created["id"].as_str().unwrap().to_string()
}

/// Fires the export's schedule as EventBridge Scheduler does a minute after the hour ended; returns the
/// execution it started.
async fn fire(export_id: &str, at: DateTime<Utc>) -> String {
    let scheduler = aws_sdk_scheduler::Client::new(&local_stack().await);
    let schedule = scheduler
        .get_schedule()
        .name(schedule_name(export_id))
        .group_name(settings().schedule_group)
        .send()
        .await
        .unwrap();
    assert_eq!(schedule.state(), Some(&ScheduleState::Enabled));
    let output = fire_schedule(&schedule, at).await;
    output["execution_arn"].as_str().unwrap_or_else(|| panic!("no execution started: {output}")).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_firing_runs_its_interval_to_completed_by_itself() {
    let api = Api::new_team(unique_team()).await;
    let client = s3(&local_stack().await);
    let lake = seed(&api, &client, 3_000).await;
    let bucket = new_bucket(&client, "live").await;
    let export_id = create_export(&api, json!({"bucket_name": bucket, "prefix": "live/"})).await;

    let execution = fire(&export_id, hour().end + Duration::minutes(1)).await;
    assert!(execution.ends_with(&format!("{export_id}-{}", hour().end.format("%Y%m%dT%H%M%SZ"))), "{execution}");
    let ended = wait_for_execution(&execution).await;
    assert_eq!(ended.status(), &ExecutionStatus::Succeeded, "{:?}: {:?}", ended.error(), ended.cause());

    let runs = api.runs(&export_id).await;
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!((runs[0]["status"].as_str(), runs[0]["records_completed"].as_u64()), (Some("Completed"), Some(3_000)));
    let keys = list_keys(&client, &bucket).await;
    assert_eq!(keys.len(), 1, "{keys:?}");
    let config = S3DestinationConfig::new(&bucket);
    assert_eq!(config.file_format, FileFormat::JSONLines);
    assert_files_hold(&client, &bucket, &[keys[0].as_str()], &config, &lake.expected(api.team, &hour(), |_| true))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_run_stops_its_execution_and_a_retry_completes_the_interval() {
    let api = Api::new_team(unique_team()).await;
    let client = s3(&local_stack().await);
    let lake = seed(&api, &client, 2_000).await;
    let bucket = new_bucket(&client, "live-cancel").await;
    // The destination holds the run's first file for 6 s, so the run is cancelled while its chunk uploads.
    let proxy = FaultProxy::delaying("PUT", &format!("/{bucket}/"), 1, 6.0);
    let config = json!({"bucket_name": bucket, "prefix": "live/", "endpoint_url": proxy.url, "max_file_size_mb": 10});
    let export_id = create_export(&api, config).await;

    let execution = fire(&export_id, hour().end + Duration::minutes(1)).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let run = loop {
        let runs = api.runs(&export_id).await;
        if let Some(run) = runs.iter().find(|r| r["status"] == "Running") {
            break run.clone();
        }
        assert!(std::time::Instant::now() < deadline, "the run never ran: {runs:?}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let run_path = api.path(&format!("{export_id}/runs/{}/", run["id"].as_str().unwrap()));
    let (status, cancelled) = api.call("POST", &format!("{run_path}cancel/"), None).await;
    assert_eq!((status, cancelled["status"].as_str()), (200, Some("Cancelled")), "{cancelled}");
    let ended = wait_for_execution(&execution).await;
    assert_eq!(ended.status(), &ExecutionStatus::Aborted, "the execution is stopped");
    // The held upload finishes (a Lambda in flight runs to its end, as on AWS), but no later step runs: no
    // manifest is written, and the run stays Cancelled.
    tokio::time::sleep(std::time::Duration::from_secs(7)).await;
    let keys = list_keys(&client, &bucket).await;
    assert!(!keys.iter().any(|k| k.ends_with("_manifest.json")), "a later step wrote the manifest: {keys:?}");
    let (_, after) = api.call("GET", &run_path, None).await;
    assert_eq!(after["status"], "Cancelled", "{after}");

    // A retry (a backfill of the run's interval) runs by itself and completes the interval.
    let (status, retry) = api.call("POST", &format!("{run_path}retry/"), None).await;
    assert_eq!(status, 201, "{retry}");
    let backfill = execution_arn("BATCH_EXPORT_BACKFILL_STATE_MACHINE_ARN", retry["id"].as_str().unwrap());
    let ended = wait_for_execution(&backfill).await;
    assert_eq!(ended.status(), &ExecutionStatus::Succeeded, "{:?}: {:?}", ended.error(), ended.cause());
    let (_, run) = api.call("GET", &run_path, None).await;
    assert_eq!((run["status"].as_str(), run["attempt"].as_u64()), (Some("Completed"), Some(2)), "{run}");
    let files: Vec<String> = run["files"].as_array().unwrap().iter().map(|f| f.as_str().unwrap().to_string()).collect();
    let mut want: Vec<String> = files.iter().cloned().chain(run["manifest_key"].as_str().map(String::from)).collect();
    want.sort();
    let mut got = list_keys(&client, &bucket).await;
    got.sort();
    assert_eq!(got, want, "the bucket holds the retry's files and manifest, nothing else");
    let mut s3_config = S3DestinationConfig::new(&bucket);
    s3_config.max_file_size_mb = Some(10);
    let keys: Vec<&str> = files.iter().map(String::as_str).collect();
    assert_files_hold(&client, &bucket, &keys, &s3_config, &lake.expected(api.team, &hour(), |_| true)).await;
}

/// The local Step Functions endpoint itself, through the SDK, on a small definition (a Wait, then a Pass): names
/// are unique per state machine as on AWS (the same name and input while running returns the execution; any
/// other repeat is `ExecutionAlreadyExists`), executions are listed, described, stopped and have a history, and
/// the control plane (CreateStateMachine) goes on to moto.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_step_functions_endpoint_answers_as_step_functions_does() {
    let sfn = aws_sdk_sfn::Client::new(&local_stack().await);
    let definition = json!({"StartAt": "Wait", "States": {
        "Wait": {"Type": "Wait", "Seconds": 2, "Next": "Done"},
        "Done": {"Type": "Pass", "Result": {"done": true}, "ResultPath": "$.result", "End": true}}});
    let machine = sfn
        .create_state_machine()
        .name(format!("local-endpoint-{}", unique_team()))
        .definition(definition.to_string())
        .role_arn("arn:aws:iam::123456789012:role/batch-exports-state-machine")
        .send()
        .await
        .unwrap()
        .state_machine_arn;
    let start =
        |name: &str, input: &str| sfn.start_execution().state_machine_arn(&machine).name(name).input(input).send();
    let first = start("one", r#"{"n": 1}"#).await.unwrap().execution_arn;
    assert_eq!(start("one", r#"{"n": 1}"#).await.unwrap().execution_arn, first, "the same request while it runs");
    let other = start("one", r#"{"n": 2}"#).await.unwrap_err();
    assert!(other.as_service_error().is_some_and(|e| e.is_execution_already_exists()), "{other:?}");

    let listed = sfn.list_executions().state_machine_arn(&machine).send().await.unwrap();
    assert_eq!(listed.executions().len(), 1);
    assert_eq!(listed.executions()[0].status(), &ExecutionStatus::Running);
    sfn.stop_execution().execution_arn(&first).cause("test").send().await.unwrap();
    let stopped = sfn.describe_execution().execution_arn(&first).send().await.unwrap();
    assert_eq!((stopped.status(), stopped.cause()), (&ExecutionStatus::Aborted, Some("test")));
    let again = start("one", r#"{"n": 1}"#).await.unwrap_err();
    assert!(again.as_service_error().is_some_and(|e| e.is_execution_already_exists()), "a closed name is taken");

    let second = start("two", r#"{"n": 2}"#).await.unwrap().execution_arn;
    let ended = wait_for_execution(&second).await;
    assert_eq!(ended.status(), &ExecutionStatus::Succeeded);
    let output: Value = serde_json::from_str(ended.output().unwrap()).unwrap();
    assert_eq!(output, json!({"n": 2, "result": {"done": true}}));
    let history = sfn.get_execution_history().execution_arn(&second).send().await.unwrap();
    let types: Vec<&str> = history.events().iter().map(|e| e.r#type().as_str()).collect();
    assert_eq!(types.first(), Some(&"ExecutionStarted"), "{types:?}");
    assert_eq!(types.last(), Some(&"ExecutionSucceeded"), "{types:?}");
    assert!(types.contains(&"WaitStateEntered") && types.contains(&"PassStateExited"), "{types:?}");

    let missing = sfn.describe_execution().execution_arn(format!("{first}-missing")).send().await.unwrap_err();
    assert!(missing.as_service_error().is_some_and(|e| e.is_execution_does_not_exist()), "{missing:?}");
}

/// Creates a backfill of `interval` over the API; returns it and its execution's ARN (it runs by itself).
async fn backfill(api: &Api, export_id: &str, interval: Interval) -> (Value, String) {
    let body = json!({"start_at": interval.start.to_rfc3339(), "end_at": interval.end.to_rfc3339()});
    let (status, created) = api.call("POST", &api.path(&format!("{export_id}/backfills/")), Some(body)).await;
    assert_eq!(status, 201, "{created}");
    let execution = execution_arn("BATCH_EXPORT_BACKFILL_STATE_MACHINE_ARN", created["id"].as_str().unwrap());
    (created, execution)
}

async fn backfill_now(api: &Api, export_id: &str, backfill: &Value) -> Value {
    let (status, got) =
        api.call("GET", &api.path(&format!("{export_id}/backfills/{}/", backfill["id"].as_str().unwrap())), None).await;
    assert_eq!(status, 200, "{got}");
    got
}

/// A backfill started while the scheduled run of the same hour is writing waits for that run: when the run then
/// fails (the destination bucket does not exist), the backfill ends Failed naming the interval; when it
/// completes, the backfill ends Completed with counts that add up. Two overlapping backfills both tell the
/// truth. The destination holds the scheduled run's first upload for 4 s, so the backfills start beside it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfills_beside_a_live_run_of_their_interval_wait_for_it_and_tell_the_truth() {
    let client = s3(&local_stack().await);
    for bucket_exists in [false, true] {
        let api = Api::new_team(unique_team()).await;
        let lake = seed(&api, &client, 1_000).await;
        let bucket = format!("beside-{}", unique_team());
        if bucket_exists {
            client.create_bucket().bucket(&bucket).send().await.unwrap();
        }
        let proxy = FaultProxy::delaying("PUT", &format!("/{bucket}/"), 1, 4.0);
        let export_id = create_export(&api, json!({"bucket_name": bucket, "endpoint_url": proxy.url})).await;
        let scheduled = fire(&export_id, hour().end + Duration::minutes(1)).await;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while !api.runs(&export_id).await.iter().any(|r| r["status"] == "Running") {
            assert!(std::time::Instant::now() < deadline, "the scheduled run never ran");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let (first, first_execution) = backfill(&api, &export_id, hour()).await;
        let (second, second_execution) = backfill(&api, &export_id, hour()).await;
        wait_for_execution(&scheduled).await;
        let ended = [wait_for_execution(&first_execution).await, wait_for_execution(&second_execution).await];
        let runs = api.runs(&export_id).await;
        assert_eq!(runs.len(), 1, "one run of the hour: {runs:?}");
        for (backfill, execution) in [(&first, &ended[0]), (&second, &ended[1])] {
            let got = backfill_now(&api, &export_id, backfill).await;
            let counts = (got["expected_runs"].as_u64(), got["finished_runs"].as_u64(), got["failed_runs"].as_u64());
            if bucket_exists {
                assert_eq!(execution.status(), &ExecutionStatus::Succeeded);
                assert_eq!(got["status"], "Completed", "{got}");
                assert_eq!(counts, (Some(1), Some(1), Some(0)), "{got}");
                assert_eq!((got["total_records"].as_u64(), got["progress"].as_f64()), (Some(1_000), Some(1.0)));
            } else {
                assert_eq!(got["status"], "Failed", "{got}");
                assert_eq!(counts, (Some(1), Some(1), Some(1)), "{got}");
                let error = got["latest_error"].as_str().unwrap();
                assert!(
                    error.contains(&hour().end.format("%Y-%m-%dT%H:%M:%S").to_string()),
                    "names the interval: {error}"
                );
                assert!(error.contains(&bucket), "says why: {error}");
            }
        }
        if bucket_exists {
            // One writer at a time: the run's one file holds every row once, and nothing else is left.
            let keys = list_keys(&client, &bucket).await;
            assert_eq!(runs[0]["files"].as_array().map(Vec::len), Some(1), "{runs:?}");
            assert_eq!(keys, [runs[0]["files"][0].as_str().unwrap()], "the bucket holds the run's file only");
            let config = S3DestinationConfig::new(&bucket);
            assert_files_hold(
                &client,
                &bucket,
                &[keys[0].as_str()],
                &config,
                &lake.expected(api.team, &hour(), |_| true),
            )
            .await;
            assert_eq!(open_uploads(&client, &bucket).await, [], "no incomplete upload is left");
        }
    }
}
