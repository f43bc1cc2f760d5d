//! Faults on the live local stack, end to end through the real state machines started by schedule firings: each
//! test asserts that the final files hold every source row exactly once, that no multipart upload is left open
//! and that the run history tells the truth. (The other rows of the fault matrix, README "Faults, tested end to
//! end", live beside what they break: a killed chunk, a timed-out Task, S3 503s and resets, DynamoDB throttling and
//! a replaced lake object in `state_machine`, backfills beside live runs in `live`.)

use aws_sdk_sfn::types::ExecutionStatus;
use batch_exports::schedules::schedule_name;
use batch_exports::sources::synthetic::SyntheticEvents;
use batch_exports::{Interval, S3DestinationConfig};
use chrono::{Duration, DurationRound, Utc};
use integration_tests::{
    assert_files_hold, fire_schedules, list_keys, local_stack, open_uploads, s3, settings, wait_for_execution, Api,
    Fault, FaultProxy, Lake,
};
use serde_json::{json, Value};

use crate::api::unique_team;

/// Two hours a day ago, seeded with events for the API's team; returns the lake and the hours.
async fn seed(api: &Api, client: &aws_sdk_s3::Client) -> (Lake, [Interval; 2]) {
    let start = (Utc::now() - Duration::days(1)).duration_trunc(Duration::days(1)).unwrap() + Duration::hours(16);
    let hours = [0, 1].map(|h| Interval::new(start + Duration::hours(h), start + Duration::hours(h + 1)).unwrap());
    let mut lake = Lake::new(client, settings().lake_bucket().unwrap());
    let mut events = SyntheticEvents::new(api.team as u64, api.team);
    for hour in &hours {
        lake.add(api.team, hour.start, "events.jsonl", events.events_between(hour.start, Duration::hours(1), 500))
            .await;
    }
    (lake, hours)
}

/// Creates an hourly export over the API into `bucket` (at `endpoint_url` if given), one folder per interval;
/// returns its id.
async fn create_export(api: &Api, bucket: &str, endpoint_url: Option<&str>) -> String {
    let mut config = json!({"bucket_name": bucket, "prefix": "{year}{month}{day}{hour}/"});
    if let Some(url) = endpoint_url {
        config["endpoint_url"] = json!(url);
    }
    let body = json!({"name": "faults", "interval": "hour", "destination": {"type": "S3", "config": config}});
    let (status, created) = api.call("POST", &api.path(""), Some(body)).await;
    assert_eq!(status, 201, "{created}");
    created["id"].as_str().unwrap().to_string()
}

/// The execution a firing started (or found started).
fn execution_of(firing: &Value) -> Option<String> {
    let answer: Value = serde_json::from_str(firing["answer"].as_str()?).ok()?;
    answer["execution_arn"].as_str().map(str::to_string)
}

/// A schedule firing twice for the same time, and two schedulers racing (two firings at once): one execution,
/// one run, one set of files holding every row once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_fired_twice_and_racing_schedulers_run_the_interval_once() {
    let api = Api::new_team(unique_team()).await;
    let client = s3(&local_stack().await);
    let (lake, [hour, _]) = seed(&api, &client).await;
    let bucket = integration_tests::new_bucket(&client, "fired-twice").await;
    let export_id = create_export(&api, &bucket, None).await;
    let names = [schedule_name(&export_id)];
    let window = (hour.end, hour.end + Duration::minutes(1));

    let (first, second) =
        tokio::join!(fire_schedules(&names, window.0, window.1), fire_schedules(&names, window.0, window.1));
    let started: Vec<String> = first.iter().chain(&second).filter_map(execution_of).collect();
    assert!(!started.is_empty(), "{first:?} {second:?}");
    assert!(started.iter().all(|e| e == &started[0]), "one execution: {started:?}");
    let ended = wait_for_execution(&started[0]).await;
    assert_eq!(ended.status(), &ExecutionStatus::Succeeded, "{:?}", ended.cause());
    // Fired once more after it ended: nothing starts.
    let again = fire_schedules(&names, window.0, window.1).await;
    assert!(again[0]["answer"].as_str().unwrap().contains("\"already_started\":true"), "{again:?}");

    let sfn = aws_sdk_sfn::Client::new(&local_stack().await);
    let machine = std::env::var("BATCH_EXPORT_STATE_MACHINE_ARN").unwrap();
    let listed = sfn.list_executions().state_machine_arn(machine).max_results(1000).send().await.unwrap();
    let mine = listed.executions().iter().filter(|e| e.name().starts_with(&export_id)).count();
    assert_eq!(mine, 1, "one execution of the export");
    let runs = api.runs(&export_id).await;
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!((runs[0]["status"].as_str(), runs[0]["attempt"].as_u64()), (Some("Completed"), Some(1)));
    let keys = list_keys(&client, &bucket).await;
    assert_eq!(keys.len(), 1, "{keys:?}");
    let config = S3DestinationConfig::new(&bucket);
    assert_files_hold(&client, &bucket, &[keys[0].as_str()], &config, &lake.expected(api.team, &hour, |_| true)).await;
    assert_eq!(open_uploads(&client, &bucket).await, [], "no incomplete upload is left");
}

/// How a destination refuses us.
enum Refusal {
    /// Its bucket was deleted.
    BucketGone,
    /// It answers `403 AccessDenied` (a bucket policy, a revoked key), through a proxy in front of it.
    AccessDenied,
}

/// A destination that refuses us: the run fails at once, without retrying, naming the bucket; once the bucket
/// is back (created again, access granted again), the next scheduled run succeeds with every row once.
async fn a_refused_run_and_the_next_one_once_the_destination_is_back(refusal: Refusal) {
    let api = Api::new_team(unique_team()).await;
    let client = s3(&local_stack().await);
    let (lake, [first, second]) = seed(&api, &client).await;
    let (bucket, proxy) = match refusal {
        Refusal::BucketGone => (format!("refusing-{}", unique_team()), None),
        Refusal::AccessDenied => {
            let bucket = integration_tests::new_bucket(&client, "denying").await;
            let proxy = FaultProxy::with(&[Fault::deny("", &format!("/{bucket}"))]);
            (bucket, Some(proxy))
        }
    };
    let export_id = create_export(&api, &bucket, proxy.as_ref().map(|p| p.url.as_str())).await;
    let names = [schedule_name(&export_id)];

    let fired = fire_schedules(&names, first.end, first.end + Duration::minutes(1)).await;
    let ended = wait_for_execution(&execution_of(&fired[0]).expect("an execution")).await;
    assert_eq!(ended.status(), &ExecutionStatus::Failed);
    let failed = api.runs(&export_id).await;
    assert_eq!(failed.len(), 1);
    assert_eq!((failed[0]["status"].as_str(), failed[0]["retries"].as_u64()), (Some("Failed"), Some(0)), "no retry");
    let error = failed[0]["latest_error"].as_str().unwrap();
    assert!(error.contains(&bucket), "names the bucket: {error}");
    if let Some(proxy) = &proxy {
        assert!(error.contains("access denied"), "{error}");
        assert!(proxy.injected().await[0] >= 1);
    }

    match &proxy {
        None => drop(client.create_bucket().bucket(&bucket).send().await.unwrap()),
        Some(proxy) => proxy.set(&[]).await,
    }
    let fired = fire_schedules(&names, second.end, second.end + Duration::minutes(1)).await;
    let ended = wait_for_execution(&execution_of(&fired[0]).expect("an execution")).await;
    assert_eq!(ended.status(), &ExecutionStatus::Succeeded, "{:?}", ended.cause());
    let runs = api.runs(&export_id).await;
    let statuses: Vec<&str> = runs.iter().map(|r| r["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["Completed", "Failed"], "newest first");
    let keys = list_keys(&client, &bucket).await;
    assert_eq!(keys.len(), 1, "{keys:?}");
    let config = S3DestinationConfig::new(&bucket);
    assert_files_hold(&client, &bucket, &[keys[0].as_str()], &config, &lake.expected(api.team, &second, |_| true))
        .await;
    assert_eq!(open_uploads(&client, &bucket).await, [], "no incomplete upload is left");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_destination_bucket_fails_the_run_without_retrying_and_the_next_run_succeeds_once_it_is_back() {
    a_refused_run_and_the_next_one_once_the_destination_is_back(Refusal::BucketGone).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destination_denying_access_fails_the_run_without_retrying_and_the_next_run_succeeds_once_it_allows() {
    a_refused_run_and_the_next_one_once_the_destination_is_back(Refusal::AccessDenied).await;
}
