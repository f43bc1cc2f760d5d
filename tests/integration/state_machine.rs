//! Export runs on the local stack, as the design runs them: the real `statemachines/export.asl.json` executed
//! by aws-local-stepfunctions, invoking the real function binaries (served by cargo lambda), with moto server
//! for S3 and DynamoDB. The test command (scripts/test.sh) starts all of it; each test uses its own team,
//! export and destination bucket.

use std::sync::atomic::{AtomicI64, Ordering};

use batch_exports::batch_export::{BatchExport, Destination, ExportInterval};
use batch_exports::format::{Compression, FileFormat};
use batch_exports::runs::{Run, RunStatus};
use batch_exports::schedules::{schedule_name, ScheduleSettings, Schedules};
use batch_exports::sources::synthetic::SyntheticEvents;
use batch_exports::store::{Begin, ExportStore, RunStore};
use batch_exports::{Interval, S3DestinationConfig};
use chrono::{DateTime, Duration, Utc};
use integration_tests::{
    assert_files_hold, execute_definition, execute_machine, function_logs, get_bytes, list_keys, local_stack,
    new_bucket, open_uploads, raw_export_item, s3, secret_box, settings, Api, Execution, ExportedRow, Fault,
    FaultProxy, Functions, Lake,
};
use serde_json::{json, Value};

/// The interval every test exports: one hour, a day ago (interval ends in the future are refused).
fn hour() -> DateTime<Utc> {
    let day_ago = Utc::now() - Duration::days(1);
    day_ago.date_naive().and_hms_opt(10, 0, 0).unwrap().and_utc()
}

static NEXT: AtomicI64 = AtomicI64::new(0);

/// A team id and an export id no other test (or earlier run against the same stack) uses.
fn unique_ids() -> (i64, String) {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let stamp = Utc::now().timestamp_millis() % 1_000_000_000;
    (stamp * 100 + n, format!("export-{stamp}-{n}"))
}

struct Stack {
    s3: aws_sdk_s3::Client,
    exports: ExportStore,
    runs: RunStore,
}

async fn stack() -> Stack {
    let base = local_stack().await;
    assert!(
        std::env::var_os("AWS_ENDPOINT_URL_LAMBDA").is_some(),
        "AWS_ENDPOINT_URL_LAMBDA is not set: run the tests with scripts/test.sh, which serves the functions"
    );
    let dynamodb = aws_sdk_dynamodb::Client::new(&base);
    let tables = settings().tables;
    Stack {
        s3: s3(&base),
        exports: ExportStore::new(dynamodb.clone(), tables.exports, secret_box(aws_sdk_kms::Client::new(&base))),
        runs: RunStore::new(dynamodb, tables.runs),
    }
}

impl Stack {
    /// Seeds `objects` lake objects of `per_object` events each (plus 1% repeats) in the hour's partition.
    async fn seed(&self, team: i64, objects: usize, per_object: usize) -> Lake {
        let bucket = std::env::var("BATCH_EXPORT_LAKE_BUCKET").expect("the local stack sets BATCH_EXPORT_LAKE_BUCKET");
        let mut lake = Lake::new(&self.s3, &bucket);
        let mut events = SyntheticEvents::new(team as u64, team);
        for i in 0..objects {
            let mut rows = events.events_between(hour(), Duration::hours(1), per_object);
            let repeats: Vec<_> = rows.iter().step_by(100).cloned().collect();
            rows.extend(repeats);
            lake.add(team, hour(), &format!("batch-{i:03}.jsonl.zst"), rows).await;
        }
        lake
    }

    async fn create_export(&self, team: i64, id: &str, config: S3DestinationConfig) {
        let export =
            BatchExport::new(id, team, format!("test export {id}"), Destination::S3(config), ExportInterval::Hour);
        self.exports.put(&export).await.unwrap();
    }

    async fn run(&self, export_id: &str) -> Run {
        self.runs.get(export_id, hour() + Duration::hours(1)).await.unwrap().expect("a run record")
    }
}

/// Executes the export state machine on the local stack for one scheduled hour.
async fn execute(name: &str, team: i64, export_id: &str) -> Execution {
    execute_input(name, scheduled_input(team, export_id)).await
}

/// The execution input of a schedule's firing a minute after the tests' hour ended.
fn scheduled_input(team: i64, export_id: &str) -> Value {
    let scheduled = hour() + Duration::hours(1) + Duration::minutes(1);
    json!({"team_id": team, "export_id": export_id, "scheduled_time": scheduled})
}

/// The export state machine's definition.
const EXPORT_DEFINITION: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../statemachines/export.asl.json");

async fn execute_input(name: &str, input: Value) -> Execution {
    execute_machine("export", name, input).await
}

fn interval() -> Interval {
    Interval::new(hour(), hour() + Duration::hours(1)).unwrap()
}

fn expected(lake: &Lake, team: i64) -> Vec<ExportedRow> {
    lake.expected(team, &interval(), |_| true)
}

async fn data_keys(client: &aws_sdk_s3::Client, bucket: &str) -> Vec<String> {
    let mut keys: Vec<String> =
        list_keys(client, bucket).await.into_iter().filter(|k| !k.ends_with("_manifest.json")).collect();
    keys.sort();
    keys
}

async fn stored_bytes(client: &aws_sdk_s3::Client, bucket: &str, keys: &[String]) -> u64 {
    let mut total = 0;
    for key in keys {
        total += client.head_object().bucket(bucket).key(key).send().await.unwrap().content_length().unwrap() as u64;
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_exports_200k_events_of_one_hour() {
    let stack = stack().await;
    let (team, export_id) = unique_ids();
    let lake = stack.seed(team, 8, 25_000).await;
    let destination = new_bucket(&stack.s3, "run-200k").await;
    let mut config = S3DestinationConfig::new(&destination);
    config.compression = Some(Compression::Gzip);
    config.prefix = "{year}-{month}-{day}_{table}/".into();
    // Static credentials (moto accepts any): they must not appear in any state's input or output.
    let (key_id, secret) = (format!("AKIDSECRET{team}"), format!("secret-value-{team}"));
    config.aws_access_key_id = Some(key_id.clone());
    config.aws_secret_access_key = Some(secret.clone());
    stack.create_export(team, &export_id, config.clone()).await;
    // At rest the credentials are KMS ciphertexts; only `get_with_secrets` decrypts them.
    let raw = format!("{:?}", raw_export_item(team, &export_id).await);
    assert!(raw.contains("encrypted_secrets") && !raw.contains(&key_id) && !raw.contains(&secret), "{raw}");
    let Destination::S3(stored) = stack.exports.get(team, &export_id).await.unwrap().destination else { panic!("S3") };
    assert_eq!((stored.aws_access_key_id, stored.aws_secret_access_key), (None, None));
    let Destination::S3(opened) = stack.exports.get_with_secrets(team, &export_id).await.unwrap().destination else {
        panic!("S3")
    };
    assert_eq!(opened.aws_secret_access_key.as_deref(), Some(secret.as_str()));

    let execution = execute(&format!("{export_id}-1"), team, &export_id).await;
    assert_eq!(execution.status, "SUCCEEDED", "{execution:?}");
    assert_eq!(execution.output["status"], "Completed");
    assert!(execution.history.contains("StateExited") && execution.history.contains(&export_id));
    let logs = function_logs();
    assert!(logs.contains("run finished"), "the functions log to .local/function-*.log");
    for s in [&key_id, &secret] {
        assert!(!execution.history.contains(s.as_str()), "a credential is in the execution history");
        assert!(!logs.contains(s.as_str()), "a credential is in a function's log");
    }

    let want = expected(&lake, team);
    assert_eq!(want.len(), 200_000);
    let keys = data_keys(&stack.s3, &destination).await;
    assert_eq!(keys.len(), 1, "without max_file_size_mb a run writes one file: {keys:?}");
    assert!(keys[0].starts_with(&hour().format("%Y-%m-%d_events/").to_string()), "{}", keys[0]);
    assert!(keys[0].ends_with(".jsonl.gz"), "{}", keys[0]);
    assert_files_hold(&stack.s3, &destination, &[keys[0].as_str()], &config, &want).await;

    let run = stack.run(&export_id).await;
    assert_eq!(run.status, RunStatus::Completed);
    assert_eq!(run.records_completed, Some(200_000));
    assert_eq!(run.records_total_count, Some(200_000));
    assert_eq!(run.bytes_exported, Some(stored_bytes(&stack.s3, &destination, &keys).await));
    assert_eq!(run.files, keys);
    assert_eq!(run.manifest_key, None);
    assert_eq!((run.attempt, run.retries, run.latest_error.as_deref()), (1, 0, None));
    assert!(run.finished_at.is_some());
    assert_eq!(run.execution.as_deref(), Some(format!("{export_id}-1").as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_interval_runs_in_chunks_through_the_map_state() {
    let stack = stack().await;
    let (team, export_id) = unique_ids();
    // The local stack closes chunks at 50,000 rows: 8 objects of 24,240 rows make 4 chunks.
    let lake = stack.seed(team, 8, 24_000).await;
    let destination = new_bucket(&stack.s3, "run-chunks").await;
    let mut config = S3DestinationConfig::new(&destination);
    config.file_format = FileFormat::Parquet;
    config.compression = Some(Compression::Zstd);
    config.max_file_size_mb = Some(2);
    stack.create_export(team, &export_id, config.clone()).await;

    let execution = execute(&format!("{export_id}-1"), team, &export_id).await;
    assert_eq!(execution.status, "SUCCEEDED", "{execution:?}");

    let keys = data_keys(&stack.s3, &destination).await;
    let chunks: std::collections::BTreeSet<&str> =
        keys.iter().map(|k| k.rsplit('-').nth(1).expect("a chunk label")).collect();
    assert!(chunks.len() >= 3, "files of {} chunks: {keys:?}", chunks.len());
    assert!(keys.len() > chunks.len(), "files split within chunks too: {keys:?}");

    let run = stack.run(&export_id).await;
    assert_eq!(run.status, RunStatus::Completed);
    let manifest_key = run.manifest_key.clone().expect("a manifest");
    let manifest: Value = serde_json::from_slice(&get_bytes(&stack.s3, &destination, &manifest_key).await).unwrap();
    let mut listed: Vec<String> =
        manifest["files"].as_array().unwrap().iter().map(|f| f.as_str().unwrap().to_string()).collect();
    listed.sort();
    assert_eq!(listed, keys, "the manifest lists every file");
    let mut recorded = run.files.clone();
    recorded.sort();
    assert_eq!(recorded, keys);

    let want = expected(&lake, team);
    let key_refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    assert_files_hold(&stack.s3, &destination, &key_refs, &config, &want).await;
    assert_eq!(run.records_completed, Some(want.len() as u64));
    assert_eq!(run.bytes_exported, Some(stored_bytes(&stack.s3, &destination, &keys).await));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retryable_failure_of_one_chunk_is_retried_by_the_state_machine() {
    let stack = stack().await;
    let (team, export_id) = unique_ids();
    let lake = stack.seed(team, 6, 24_000).await;
    let destination = new_bucket(&stack.s3, "run-retry").await;
    // The destination refuses chunk 1's first file for as long as the SDK's own retries (3 attempts) last, so
    // the chunk's first invocation fails with a retryable error and the state machine's Retry runs it again.
    let proxy = FaultProxy::start("PUT", "-1-0.parquet", 3);
    let mut config = S3DestinationConfig::new(&destination);
    config.file_format = FileFormat::Parquet;
    config.max_file_size_mb = Some(50);
    config.endpoint_url = Some(proxy.url.clone());
    stack.create_export(team, &export_id, config.clone()).await;

    let execution = execute(&format!("{export_id}-1"), team, &export_id).await;
    assert_eq!(execution.status, "SUCCEEDED", "{execution:?}");
    let retried: Vec<&Value> = execution.retries.iter().filter(|r| r["state"] == "ExportChunk").collect();
    assert_eq!(retried.len(), 1, "one retry of one chunk: {:?}", execution.retries);
    assert_eq!(retried[0]["index"], 1);

    let run = stack.run(&export_id).await;
    assert_eq!(run.status, RunStatus::Completed);
    assert_eq!(run.retries, 1);
    assert_eq!(run.latest_error, None, "a completed run carries no error");
    let keys = data_keys(&stack.s3, &destination).await;
    assert_eq!(keys.len(), 3, "{keys:?}");
    let key_refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    assert_files_hold(&stack.s3, &destination, &key_refs, &config, &expected(&lake, team)).await;
    assert_eq!(open_uploads(&stack.s3, &destination).await, [], "no incomplete upload is left");
    drop(proxy);
}

/// A connection reset half-way through a part's upload, and DynamoDB throttling the write that records the
/// chunk's files, each for as long as the SDK's own retries (3 attempts, with backoff) last: each fails the chunk
/// with a retryable error, the state machine's `Retry` runs it again, and the run completes with every row once,
/// both retries counted on the run and no upload left open. The run's functions reach S3 and DynamoDB through
/// the proxy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_reset_mid_part_and_dynamodb_throttling_are_retried_and_counted() {
    let stack = stack().await;
    let (team, export_id) = unique_ids();
    let lake = stack.seed(team, 2, 12_000).await;
    let destination = new_bucket(&stack.s3, "run-reset").await;
    let config = S3DestinationConfig::new(&destination);
    stack.create_export(team, &export_id, config.clone()).await;
    let proxy = FaultProxy::with(&[
        Fault::reset("PUT", "partNumber=2").times(3),
        Fault::throttle("UpdateItem").when_body_has("written_files").times(3),
    ]);
    let names = ["start-run", "plan-run", "export-chunk", "write-manifest", "finish-run"];
    let env = [
        ("AWS_ENDPOINT_URL_S3", proxy.url.clone()),
        ("AWS_ENDPOINT_URL_DYNAMODB", proxy.url.clone()),
        ("BATCH_EXPORT_PART_SIZE_MB", "5".to_string()),
    ];
    let functions = Functions::start(&names, &env);

    let input = scheduled_input(team, &export_id);
    let execution =
        execute_definition(EXPORT_DEFINITION, &format!("{export_id}-1"), input, Some(functions.port())).await;
    assert_eq!(execution.status, "SUCCEEDED", "{execution:?}");
    assert_eq!(proxy.injected().await, [3, 3], "each fault outlasted the SDK's own three attempts");
    let retried = execution.retries.iter().filter(|r| r["state"] == "ExportChunk").count();
    assert_eq!(retried, 2, "{:?}", execution.retries);
    let run = stack.run(&export_id).await;
    assert_eq!((run.status, run.retries), (RunStatus::Completed, 2), "both retries are counted");
    assert_eq!(run.latest_error, None, "a completed run carries no error");
    let keys: Vec<&str> = run.files.iter().map(String::as_str).collect();
    assert_eq!(keys.len(), 1);
    assert_files_hold(&stack.s3, &destination, &keys, &config, &expected(&lake, team)).await;
    assert_eq!(list_keys(&stack.s3, &destination).await, run.files, "one file, nothing else");
    assert_eq!(open_uploads(&stack.s3, &destination).await, [], "no incomplete upload is left");
}

/// A chunk that outlives its Task's `TimeoutSeconds` (the destination holds its upload longer) times out with
/// `States.Timeout`, which is retried like a crash (`Lambda.Unknown`): the retry completes the run, and the
/// files hold every row once. The definition is the real one with that Task's timeout cut to 2 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_that_times_out_is_retried_and_the_run_completes() {
    let stack = stack().await;
    let (team, export_id) = unique_ids();
    let lake = stack.seed(team, 2, 2_000).await;
    let destination = new_bucket(&stack.s3, "run-timeout").await;
    let proxy = FaultProxy::delaying("PUT", &format!("/{destination}/"), 1, 5.0);
    let mut config = S3DestinationConfig::new(&destination);
    config.endpoint_url = Some(proxy.url.clone());
    stack.create_export(team, &export_id, config.clone()).await;
    let path = export_definition_with_chunk_timeout(&export_id, 2);

    let input = scheduled_input(team, &export_id);
    let execution = execute_definition(path.to_str().unwrap(), &format!("{export_id}-1"), input, None).await;
    assert_eq!(execution.status, "SUCCEEDED", "{execution:?}");
    assert!(execution.history.contains("States.Timeout"), "the first attempt timed out");
    assert!(execution.retries.iter().any(|r| r["state"] == "ExportChunk"), "{:?}", execution.retries);
    let run = stack.run(&export_id).await;
    assert_eq!((run.status, run.retries), (RunStatus::Completed, 1), "the timed-out chunk counts as a retry");
    let keys: Vec<&str> = run.files.iter().map(String::as_str).collect();
    assert_files_hold(&stack.s3, &destination, &keys, &config, &expected(&lake, team)).await;
    assert_eq!(open_uploads(&stack.s3, &destination).await, [], "no incomplete upload is left");
    let _ = std::fs::remove_file(path);
}

/// The definition of the export state machine with the chunk Task's timeout cut to `seconds`, in a file of
/// its own.
fn export_definition_with_chunk_timeout(name: &str, seconds: u64) -> std::path::PathBuf {
    let mut definition: Value = serde_json::from_str(&std::fs::read_to_string(EXPORT_DEFINITION).unwrap()).unwrap();
    definition["States"]["ExportChunks"]["ItemProcessor"]["States"]["ExportChunk"]["TimeoutSeconds"] = json!(seconds);
    let path = std::env::temp_dir().join(format!("{name}.asl.json"));
    std::fs::write(&path, definition.to_string()).unwrap();
    path
}

/// `kill -9` of the export-chunk process in the middle of a multipart upload (its second part held by the
/// destination): the Task times out, is retried by a fresh process, and the run completes with every row once;
/// the crashed upload is aborted (only it: an upload the user started under the same prefix stays), and the run
/// record counts the retry. The run's functions are served apart from the stack's (5 MiB parts), so the kill
/// touches no other test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunk_killed_mid_upload_is_retried_and_leaves_no_upload_behind() {
    let stack = stack().await;
    let (team, export_id) = unique_ids();
    let lake = stack.seed(team, 2, 12_000).await;
    let destination = new_bucket(&stack.s3, "run-killed").await;
    let users = stack.s3.create_multipart_upload().bucket(&destination).key("exports/user-upload.bin").send().await;
    let users = users.unwrap().upload_id.unwrap();
    let proxy = FaultProxy::delaying("PUT", "partNumber=2", 1, 20.0);
    let mut config = S3DestinationConfig::new(&destination);
    config.prefix = "exports/".into();
    config.endpoint_url = Some(proxy.url.clone());
    stack.create_export(team, &export_id, config.clone()).await;
    let names = ["start-run", "plan-run", "export-chunk", "write-manifest", "finish-run"];
    let mut functions = Functions::start(&names, &[("BATCH_EXPORT_PART_SIZE_MB", "5".into())]);
    let path = export_definition_with_chunk_timeout(&export_id, 8);

    let input = scheduled_input(team, &export_id);
    let (definition, name, port) = (path.to_str().unwrap().to_string(), format!("{export_id}-1"), functions.port());
    let execution = tokio::spawn(async move { execute_definition(&definition, &name, input, Some(port)).await });
    // The chunk's upload is open (its first part sent, the second held): crash the process writing it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let open = stack.s3.list_multipart_uploads().bucket(&destination).prefix("exports/2").send().await.unwrap();
        if !open.uploads().is_empty() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the chunk never started its upload");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    functions.kill("export-chunk");
    functions.spawn("export-chunk");

    let execution = execution.await.unwrap();
    assert_eq!(execution.status, "SUCCEEDED", "{execution:?}");
    assert!(execution.retries.iter().any(|r| r["state"] == "ExportChunk"), "{:?}", execution.retries);
    let run = stack.run(&export_id).await;
    assert_eq!((run.status, run.retries), (RunStatus::Completed, 1), "the crashed chunk counts as a retry");
    let keys: Vec<&str> = run.files.iter().map(String::as_str).collect();
    assert_files_hold(&stack.s3, &destination, &keys, &config, &expected(&lake, team)).await;
    let left = open_uploads(&stack.s3, &destination).await;
    assert_eq!(left, [("exports/user-upload.bin".to_string(), users)], "only the user's upload is still open");
    let _ = std::fs::remove_file(path);
}

/// A lake object replaced while a chunk is about to read it (late data rewriting an object of the hour): the
/// chunk's read finds it changed (S3 answers its `If-Match` with 412), the run is planned again once every chunk
/// of the first plan has ended, and the final files hold exactly the new lake — the new object's rows, and
/// the later object's rows that the new one now repeats, once. The replanning counts as one retry. The proxy
/// holds the chunk's read (the object's second GET: planning reads it first) while the test replaces it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lake_object_replaced_under_a_chunk_plans_the_run_again_and_the_files_match_it() {
    let stack = stack().await;
    let (team, export_id) = unique_ids();
    let mut lake = stack.seed(team, 3, 2_000).await;
    let destination = new_bucket(&stack.s3, "run-replaced").await;
    let mut config = S3DestinationConfig::new(&destination);
    config.max_file_size_mb = Some(50);
    stack.create_export(team, &export_id, config.clone()).await;
    let proxy = FaultProxy::with(&[Fault::delay("GET", "batch-001", 4.0).after(1).times(1)]);
    let names = ["start-run", "plan-run", "export-chunk", "write-manifest", "finish-run"];
    let env = [("AWS_ENDPOINT_URL_S3", proxy.url.clone()), ("BATCH_EXPORT_CHUNK_MAX_ROWS", "2500".to_string())];
    let functions = Functions::start(&names, &env);

    let input = scheduled_input(team, &export_id);
    let (name, port) = (format!("{export_id}-1"), functions.port());
    let execution = tokio::spawn(async move { execute_definition(EXPORT_DEFINITION, &name, input, Some(port)).await });
    proxy.wait_for(0, 1).await;
    // Replaced while chunk 1's read is held: new rows, and 100 of the next object's rows, which now come first.
    let mut rows = SyntheticEvents::new(team as u64 + 1, team).events_between(hour(), Duration::hours(1), 1_500);
    rows.extend(lake.objects[2].1.iter().take(100).cloned());
    lake.add(team, hour(), "batch-001.jsonl.zst", rows).await;

    let execution = execution.await.unwrap();
    assert_eq!(execution.status, "SUCCEEDED", "{execution:?}");
    assert!(execution.history.contains("LakeChangedError"), "chunk 1 found the object changed");
    let run = stack.run(&export_id).await;
    assert_eq!((run.status, run.plans, run.retries), (RunStatus::Completed, 2, 1), "planned twice, one retry");
    let want = expected(&lake, team);
    assert_eq!(run.records_completed, Some(want.len() as u64));
    let keys = data_keys(&stack.s3, &destination).await;
    let mut files = run.files.clone();
    files.sort();
    assert_eq!(keys, files, "the bucket holds the run's files and its manifest only");
    let key_refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    assert_files_hold(&stack.s3, &destination, &key_refs, &config, &want).await;
    assert_eq!(open_uploads(&stack.s3, &destination).await, [], "no incomplete upload is left");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_destination_bucket_fails_the_run_without_a_manifest() {
    let stack = stack().await;
    let (team, export_id) = unique_ids();
    stack.seed(team, 2, 1000).await;
    let missing = format!("no-such-bucket-{}", team);
    let mut config = S3DestinationConfig::new(&missing);
    config.max_file_size_mb = Some(10);
    stack.create_export(team, &export_id, config).await;

    let execution = execute(&format!("{export_id}-1"), team, &export_id).await;
    assert_eq!(execution.status, "FAILED", "{execution:?}");
    assert_eq!(execution.error.as_deref(), Some("RunFailed"));
    assert!(
        execution.retries.iter().all(|r| r["state"] != "ExportChunk"),
        "a non-retryable error is not retried: {:?}",
        execution.retries
    );
    let run = stack.run(&export_id).await;
    assert_eq!(run.status, RunStatus::Failed);
    let error = run.latest_error.clone().unwrap();
    assert!(error.contains(&missing) && error.contains("does not exist"), "{error}");
    assert_eq!(run.manifest_key, None);
    assert!(run.files.is_empty());
    assert!(run.finished_at.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interval_in_the_future_or_an_unknown_export_starts_no_run() {
    let stack = stack().await;
    let (team, export_id) = unique_ids();
    stack.create_export(team, &export_id, S3DestinationConfig::new("anything")).await;
    let future = Utc::now() + Duration::hours(2);
    let execution = execute_input(
        &format!("{export_id}-future"),
        json!({"team_id": team, "export_id": export_id, "scheduled_time": future}),
    )
    .await;
    assert_eq!(execution.status, "FAILED");
    assert_eq!(execution.error.as_deref(), Some("NonRetryableError"));
    let end = ExportInterval::Hour.interval_ending_at_or_before(future, chrono_tz::Tz::UTC).unwrap().end;
    assert!(stack.runs.get(&export_id, end).await.unwrap().is_none(), "no run record for a refused interval");

    let execution = execute_input(
        &format!("{export_id}-unknown"),
        json!({"team_id": team, "export_id": "nope", "scheduled_time": Utc::now()}),
    )
    .await;
    assert_eq!(execution.status, "FAILED");
    assert_eq!(execution.error.as_deref(), Some("NonRetryableError"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn triggering_an_interval_twice_keeps_one_run_and_the_same_keys() {
    let stack = stack().await;
    let (team, export_id) = unique_ids();
    stack.seed(team, 4, 20_000).await;
    let destination = new_bucket(&stack.s3, "run-twice").await;
    let mut config = S3DestinationConfig::new(&destination);
    config.file_format = FileFormat::Parquet;
    config.compression = Some(Compression::Snappy);
    config.max_file_size_mb = Some(3);
    stack.create_export(team, &export_id, config).await;

    let mut contents = Vec::new();
    for n in 1..=2 {
        let execution = execute(&format!("{export_id}-{n}"), team, &export_id).await;
        assert_eq!(execution.status, "SUCCEEDED", "{execution:?}");
        let mut files = Vec::new();
        for key in list_keys(&stack.s3, &destination).await {
            files.push((key.clone(), get_bytes(&stack.s3, &destination, &key).await));
        }
        files.sort();
        contents.push(files);
    }
    assert_eq!(contents[0].len(), contents[1].len());
    assert!(contents[0] == contents[1], "the second run wrote the same keys with the same content");

    let runs = stack.runs.list(&export_id, 10).await.unwrap();
    assert_eq!(runs.len(), 1, "one run record");
    assert_eq!((runs[0].status, runs[0].attempt), (RunStatus::Completed, 2));
    assert_eq!(runs[0].execution.as_deref(), Some(format!("{export_id}-2").as_str()));
}

/// Re-runs of an interval that make fewer files leave exactly the latest run's files under the prefix: 1 MB files
/// (several, and a manifest), then 4 MB files (fewer), then no split (one file, no manifest). The earlier
/// attempts' extra files and manifest are deleted; an object the user keeps under the same prefix, and one named
/// like our files but never written by a run, are untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_re_run_with_fewer_files_leaves_exactly_its_own_files_under_the_prefix() {
    let stack = stack().await;
    let (team, export_id) = unique_ids();
    let lake = stack.seed(team, 2, 10_000).await;
    let destination = new_bucket(&stack.s3, "re-run").await;
    let mut config = S3DestinationConfig::new(&destination);
    config.prefix = "exports/".into();
    let lookalike = batch_exports::destinations::s3::keys::data_file_key(
        "exports/",
        &interval(),
        None,
        Some(99),
        FileFormat::JSONLines,
        None,
    );
    let users = ["exports/README.txt".to_string(), lookalike];
    for key in &users {
        stack.s3.put_object().bucket(&destination).key(key).body(b"the user's".to_vec().into()).send().await.unwrap();
    }
    let mut counts = Vec::new();
    for (attempt, size) in [(1, Some(1)), (2, Some(4)), (3, None)] {
        config.max_file_size_mb = size;
        stack.create_export(team, &export_id, config.clone()).await;
        let execution = execute(&format!("{export_id}-{attempt}"), team, &export_id).await;
        assert_eq!(execution.status, "SUCCEEDED", "{execution:?}");
        let run = stack.run(&export_id).await;
        assert_eq!((run.status, run.attempt), (RunStatus::Completed, attempt));
        assert!(run.written_files.is_empty() && run.earlier_files.is_empty(), "bookkeeping is cleared: {run:?}");
        let mut want: Vec<String> = run.files.iter().chain(&run.manifest_key).chain(&users).cloned().collect();
        want.sort();
        let mut got = list_keys(&stack.s3, &destination).await;
        got.sort();
        assert_eq!(got, want, "attempt {attempt}: the prefix holds the run's files, its manifest and the user's");
        assert_files_hold(
            &stack.s3,
            &destination,
            &run.files.iter().map(String::as_str).collect::<Vec<_>>(),
            &config,
            &expected(&lake, team),
        )
        .await;
        counts.push(run.files.len());
    }
    assert!(counts[0] > counts[1] && counts[1] > counts[2], "each re-run makes fewer files: {counts:?}");
    assert_eq!(counts[2], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_records_change_only_by_conditional_transitions() {
    let stack = stack().await;
    let (team, export_id) = unique_ids();
    let now = Utc::now();
    let new = Run::new(&export_id, team, interval(), Some("first".into()), None, now);
    let lease = Duration::hours(3);
    let Begin::Started(first) = stack.runs.begin(new.clone(), lease, now).await.unwrap() else { panic!("not started") };
    // A second trigger while the first is in flight does nothing.
    let second = stack.runs.begin(Run { execution: Some("second".into()), ..new.clone() }, lease, now).await.unwrap();
    assert!(matches!(second, Begin::InProgress(ref r) if r.execution.as_deref() == Some("first")), "{second:?}");
    let first = first.reference();
    // Completing needs Running; failing with another attempt's number is refused.
    assert!(stack.runs.complete(&first, &Default::default(), now).await.is_err());
    stack.runs.mark_running(&first, now).await.unwrap();
    let stale = batch_exports::runs::RunRef { attempt: 7, ..first.clone() };
    let e = stack.runs.fail(&stale, RunStatus::Failed, "late", now).await.unwrap_err().to_string();
    assert!(e.contains("attempt 7") && e.contains("attempt 1 holds it"), "{e}");
    let ended = stack.runs.fail(&first, RunStatus::FailedRetryable, "503", now).await.unwrap();
    assert_eq!((ended.status, ended.latest_error.as_deref()), (RunStatus::FailedRetryable, Some("503")));
    // An ended run is taken over by the next trigger, as attempt 2.
    let Begin::Started(again) = stack.runs.begin(new.clone(), lease, now).await.unwrap() else {
        panic!("not restarted")
    };
    assert_eq!((again.attempt, again.status), (2, RunStatus::Starting));
    // A run whose execution stopped writing longer ago than the lease is taken over too.
    let later = now + Duration::hours(4);
    let Begin::Started(third) = stack.runs.begin(new, lease, later).await.unwrap() else { panic!("not taken over") };
    assert_eq!(third.attempt, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_interval_completes_with_an_empty_manifest() {
    let stack = stack().await;
    let (team, export_id) = unique_ids();
    let destination = new_bucket(&stack.s3, "run-empty").await;
    let mut config = S3DestinationConfig::new(&destination);
    config.max_file_size_mb = Some(10);
    stack.create_export(team, &export_id, config).await;

    let execution = execute(&format!("{export_id}-1"), team, &export_id).await;
    assert_eq!(execution.status, "SUCCEEDED", "{execution:?}");
    let run = stack.run(&export_id).await;
    assert_eq!((run.status, run.records_completed, run.records_total_count), (RunStatus::Completed, Some(0), Some(0)));
    assert!(run.files.is_empty());
    let manifest = get_bytes(&stack.s3, &destination, run.manifest_key.as_deref().expect("a manifest")).await;
    assert_eq!(serde_json::from_slice::<Value>(&manifest).unwrap(), json!({"files": []}));
    assert_eq!(list_keys(&stack.s3, &destination).await.len(), 1, "only the manifest");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_lake_row_fails_the_run_naming_the_object_and_line() {
    let stack = stack().await;
    let (team, export_id) = unique_ids();
    let mut lake = stack.seed(team, 1, 500).await;
    let mut body = batch_exports::sources::lake::writer::ndjson_bytes(
        &SyntheticEvents::new(9, team).events_between(hour(), Duration::hours(1), 3),
        None,
    )
    .unwrap();
    body.extend_from_slice(b"{\"uuid\": \"not json\n");
    let bad_key = lake.add_raw(team, hour(), "batch-999.jsonl", body).await;
    let destination = new_bucket(&stack.s3, "run-malformed").await;
    stack.create_export(team, &export_id, S3DestinationConfig::new(&destination)).await;

    let execution = execute(&format!("{export_id}-1"), team, &export_id).await;
    assert_eq!(execution.status, "FAILED", "{execution:?}");
    let run = stack.run(&export_id).await;
    assert_eq!(run.status, RunStatus::Failed);
    let error = run.latest_error.unwrap();
    assert!(error.contains(&bad_key) && error.contains("line 4"), "{error}");
    assert!(list_keys(&stack.s3, &destination).await.is_empty(), "nothing is written for a run that cannot be read");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_failed_runs_pause_the_export_and_disable_its_schedule() {
    let stack = stack().await;
    let (team, export_id) = unique_ids();
    stack.seed(team, 1, 100).await;
    let missing = format!("no-such-bucket-{team}");
    stack.create_export(team, &export_id, S3DestinationConfig::new(&missing)).await;
    // The export's schedule, in the group the functions use.
    let base = local_stack().await;
    let settings = ScheduleSettings {
        group: std::env::var("BATCH_EXPORT_SCHEDULE_GROUP").unwrap_or_else(|_| "batch-exports".into()),
        target_arn: "arn:aws:lambda:us-east-1:123456789012:function:trigger-run".into(),
        role_arn: "arn:aws:iam::123456789012:role/scheduler".into(),
        delay_minutes: 1,
    };
    let scheduler = aws_sdk_scheduler::Client::new(&base);
    let schedules = Schedules::new(scheduler.clone(), settings.clone());
    schedules.ensure_group().await.unwrap();
    let export = stack.exports.get(team, &export_id).await.unwrap();
    schedules.put(&export).await.unwrap();

    // Nine earlier hours failed already.
    let now = Utc::now();
    for h in 1..=9 {
        let end = hour() - Duration::hours(h);
        let interval = Interval::new(end - Duration::hours(1), end).unwrap();
        let Begin::Started(run) = stack
            .runs
            .begin(Run::new(&export_id, team, interval, None, None, now), Duration::hours(3), now)
            .await
            .unwrap()
        else {
            panic!("not started")
        };
        stack.runs.mark_running(&run.reference(), now).await.unwrap();
        stack.runs.fail(&run.reference(), RunStatus::Failed, "bucket does not exist", now).await.unwrap();
    }
    assert!(!stack.exports.get(team, &export_id).await.unwrap().paused);

    // The tenth failure, through the state machine, pauses it.
    let execution = execute(&format!("{export_id}-1"), team, &export_id).await;
    assert_eq!(execution.status, "FAILED", "{:?}", execution.error);
    let export = stack.exports.get(team, &export_id).await.unwrap();
    assert!(export.paused && export.last_paused_at.is_some());
    let reason = export.paused_reason.unwrap();
    assert!(reason.contains("10 of the last 24 runs failed") && reason.contains(&missing), "{reason}");
    let schedule =
        scheduler.get_schedule().name(schedule_name(&export_id)).group_name(&settings.group).send().await.unwrap();
    assert_eq!(schedule.state(), Some(&aws_sdk_scheduler::types::ScheduleState::Disabled));
    assert_eq!(schedule.schedule_expression(), Some("cron(1 * * * ? *)"), "the rest of the schedule is kept");
}

/// A `max_file_size_mb` past S3's largest object (the API refuses it; an item written by hand or before that
/// bound may hold one) fails the run at planning, naming the field, without retries and without a panic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_max_file_size_past_the_bound_fails_the_run_naming_the_field() {
    let stack = stack().await;
    let (team, export_id) = unique_ids();
    stack.seed(team, 1, 100).await;
    let destination = new_bucket(&stack.s3, "run-huge-split").await;
    let mut config = S3DestinationConfig::new(&destination);
    config.max_file_size_mb = Some(u64::MAX);
    stack.create_export(team, &export_id, config).await;

    let execution = execute(&format!("{export_id}-1"), team, &export_id).await;
    assert_eq!(execution.status, "FAILED", "{execution:?}");
    assert!(execution.retries.is_empty(), "an invalid config is not retried: {:?}", execution.retries);
    let run = stack.run(&export_id).await;
    assert_eq!(run.status, RunStatus::Failed);
    let error = run.latest_error.unwrap();
    assert!(error.contains("max_file_size_mb"), "{error}");
    assert!(list_keys(&stack.s3, &destination).await.is_empty());
}

/// Secrets of any legitimate size: a 4,097-byte `aws_secret_access_key` (one byte past what KMS `Encrypt` takes)
/// is accepted by the API, stored sealed and never returned, and opened by the run's steps, which sign their S3
/// requests with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_s3_secret_round_trips_through_the_api_and_a_run() {
    let stack = stack().await;
    let (team, _) = unique_ids();
    let api = Api::new_team(team).await;
    let lake = stack.seed(team, 1, 500).await;
    let destination = new_bucket(&stack.s3, "run-big-secret").await;
    let secret = format!("{team}-{}", "s".repeat(4097)).chars().take(4097).collect::<String>();
    let body = json!({"name": "big secret", "interval": "hour", "destination": {"type": "S3", "config": {
        "bucket_name": destination, "aws_access_key_id": format!("AKIDBIG{team}"), "aws_secret_access_key": secret}}});
    let (status, created) = api.call("POST", &api.path(""), Some(body)).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    let (_, got) = api.call("GET", &api.path(&format!("{id}/")), None).await;
    let marker = &secret[..64];
    assert!(!format!("{created}{got}").contains(marker), "the API returned the secret");
    let item = raw_export_item(team, &id).await;
    assert!(!format!("{item:?}").contains(marker), "the item holds the secret in plain text");
    let Destination::S3(opened) = stack.exports.get_with_secrets(team, &id).await.unwrap().destination else {
        panic!("S3")
    };
    assert_eq!(opened.aws_secret_access_key.as_deref(), Some(secret.as_str()));

    let execution = execute(&format!("{id}-1"), team, &id).await;
    assert_eq!(execution.status, "SUCCEEDED", "{execution:?}");
    assert!(!execution.history.contains(marker), "the secret is in the execution history");
    let run = stack.run(&id).await;
    assert_eq!(run.status, RunStatus::Completed);
    let keys: Vec<&str> = run.files.iter().map(String::as_str).collect();
    assert_files_hold(&stack.s3, &destination, &keys, &opened, &expected(&lake, team)).await;
}
