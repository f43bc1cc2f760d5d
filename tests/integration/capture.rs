//! Events in through capture on the local stack: the capture function behind its function URL, the SQS queue in
//! moto, the lake writer fed by the local SQS event source (localstack/sqs_poller.py), the lake, and an export of
//! the lake through the engine. Each test uses a project of its own.

use std::collections::HashMap;
use std::time::{Duration as StdDuration, Instant};

use batch_exports::destinations::s3::persons::export_persons;
use batch_exports::destinations::s3::{destination_client, S3Target};
use batch_exports::store::ApiKeyStore;
use batch_exports::{export_events, EngineSettings, Interval, LakeStore, S3DestinationConfig};
use chrono::{Duration, DurationRound, Utc};
use integration_tests::{
    get_bytes, list_keys, local_stack, new_bucket, read_exported, s3, settings, Api, ExportedRow, Fault, FaultProxy,
    Functions,
};
use serde_json::{json, Value};

use crate::api::unique_team;

/// A project with its token, and a client of a capture endpoint.
struct Project {
    team: i64,
    token: String,
    capture: Api,
}

impl Project {
    async fn new(capture_url: &str) -> Project {
        let team = unique_team();
        let keys = ApiKeyStore::new(aws_sdk_dynamodb::Client::new(&local_stack().await), settings().tables.api_keys);
        let token = keys.ensure_project_token(team, Utc::now()).await.unwrap();
        Project { team, token, capture: Api { url: capture_url.to_string(), team, key: String::new() } }
    }

    async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.capture.send(None, "POST", path, Some("application/json"), body.to_string().into_bytes()).await
    }

    fn batch(&self, events: &[Value]) -> Value {
        json!({"api_key": self.token, "batch": events})
    }

    /// The events the lake holds for the project, once there are at least `count` (waiting at most a minute).
    async fn lake_events(&self, count: usize) -> Vec<Value> {
        let client = s3(&local_stack().await);
        let bucket = settings().lake_bucket.unwrap();
        let deadline = Instant::now() + StdDuration::from_secs(60);
        loop {
            let mut events = Vec::new();
            let prefix = format!("events/team_id={}/", self.team);
            for key in list_keys(&client, &bucket).await.into_iter().filter(|k| k.starts_with(&prefix)) {
                let text = zstd::stream::decode_all(get_bytes(&client, &bucket, &key).await.as_slice()).unwrap();
                events.extend(
                    text.split(|&b| b == b'\n')
                        .filter(|l| !l.is_empty())
                        .map(|l| serde_json::from_slice::<Value>(l).unwrap_or_else(|e| panic!("{key}: {e}"))),
                );
            }
            if events.len() >= count {
                return events;
            }
            assert!(Instant::now() < deadline, "the lake holds {} of {count} events after a minute", events.len());
            tokio::time::sleep(StdDuration::from_millis(200)).await;
        }
    }

    /// Exports the project's events of the hours around now through the engine into a new bucket, as a run of
    /// that interval does; returns the exported rows.
    async fn export(&self) -> Vec<ExportedRow> {
        let (client, lake, interval, config, target) = export_setup("captured").await;
        let settings = EngineSettings::default();
        let outcome = export_events(&lake, &target, self.team, interval, &config, &settings).await.unwrap();
        let mut rows = Vec::new();
        for file in &outcome.files {
            let body = get_bytes(&client, &config.bucket_name, &file.key).await;
            rows.extend(read_exported(body, config.file_format, config.compression));
        }
        rows
    }

    /// The persons export once `done` holds of it (the lake writer writes person changes after the events that
    /// made them; waiting at most a minute).
    async fn export_persons_when(&self, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + StdDuration::from_secs(60);
        loop {
            let rows = self.export_persons().await;
            if done(&rows) {
                return rows;
            }
            assert!(Instant::now() < deadline, "the persons export is still {rows:?} after a minute");
            tokio::time::sleep(StdDuration::from_millis(300)).await;
        }
    }

    /// Exports the project's person changes of the hours around now through the engine (the persons model, as
    /// JSON lines); returns the rows, one per distinct id.
    async fn export_persons(&self) -> Vec<Value> {
        let (client, lake, interval, config, target) = export_setup("captured-persons").await;
        let settings = EngineSettings::default();
        let outcome = export_persons(&lake, &target, self.team, &interval, &config, &settings).await.unwrap();
        let mut rows = Vec::new();
        for file in &outcome.files {
            let text = String::from_utf8(get_bytes(&client, &config.bucket_name, &file.key).await).unwrap();
            rows.extend(text.lines().map(|line| serde_json::from_str::<Value>(line).unwrap()));
        }
        rows
    }
}

/// What an export of the hours around now needs: the S3 client, the lake, the interval (the hour before, this
/// one and the next, so that a write near an hour's end is not missed), a new destination bucket's config and
/// its sink.
async fn export_setup(bucket: &str) -> (aws_sdk_s3::Client, LakeStore, Interval, S3DestinationConfig, S3Target) {
    let base = local_stack().await;
    let client = s3(&base);
    let hour = Utc::now().duration_trunc(Duration::hours(1)).unwrap();
    let interval = Interval::new(hour - Duration::hours(1), hour + Duration::hours(2)).unwrap();
    let lake = LakeStore::S3 { client: client.clone(), bucket: settings().lake_bucket.unwrap(), prefix: String::new() };
    let config = S3DestinationConfig::new(&new_bucket(&client, bucket).await);
    let target = S3Target::new(destination_client(&base, &config, settings().endpoints), &config);
    (client, lake, interval, config, target)
}

/// `n` events of a few users, each with its own uuid.
fn events(n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| {
            json!({"event": "tested", "distinct_id": format!("user-{}", i % 7), "uuid": uuid::Uuid::now_v7().to_string(),
                   "properties": {"$lib": "tests", "n": i}})
        })
        .collect()
}

fn capture_url() -> String {
    std::env::var("BATCH_EXPORT_CAPTURE_URL").expect("BATCH_EXPORT_CAPTURE_URL: run the tests with scripts/test.sh")
}

/// Each event of `sent` exported exactly once, with its properties as sent.
fn assert_exported_once(sent: &[Value], rows: &[ExportedRow]) {
    let mut by_uuid: HashMap<&str, usize> = HashMap::new();
    for row in rows {
        *by_uuid.entry(row.uuid.as_str()).or_default() += 1;
    }
    assert_eq!(rows.len(), sent.len(), "one row per event sent");
    for event in sent {
        let uuid = event["uuid"].as_str().unwrap();
        assert_eq!(by_uuid.get(uuid), Some(&1), "{uuid} exported once");
    }
    let row = rows.iter().find(|r| r.uuid == sent[0]["uuid"].as_str().unwrap()).unwrap();
    assert_eq!((row.event.as_str(), row.distinct_id.as_str()), ("tested", "user-0"));
    assert_eq!(row.properties.as_ref().unwrap(), &sent[0]["properties"]);
}

/// Every client mistake gets its 4xx naming what is wrong, and nothing of a refused request is stored: once a
/// good request's events are in the lake, they are the only ones there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_their_4xx_and_store_nothing() {
    let project = Project::new(&capture_url()).await;
    let mut management = Api::new_team(project.team).await;
    management.url = capture_url();
    let cases: Vec<(&str, Value, u16, Option<&str>)> = vec![
        ("/batch/", json!({"batch": events(2)}), 400, Some("api_key")),
        ("/batch/", json!({"api_key": management.key, "batch": events(1)}), 400, Some("api_key")),
        ("/batch/", project.batch(&[events(1)[0].clone(), json!({"distinct_id": "d"})]), 400, Some("batch.1.event")),
        ("/batch/", project.batch(&[json!({"event": "e"})]), 400, Some("batch.0.distinct_id")),
        (
            "/batch/",
            project.batch(&[json!({"event": "e", "distinct_id": "d", "timestamp": "yesterday"})]),
            400,
            Some("batch.0.timestamp"),
        ),
        (
            "/batch/",
            project.batch(&[json!({"event": "e", "distinct_id": "d", "uuid": "x"})]),
            400,
            Some("batch.0.uuid"),
        ),
        ("/batch/", json!({"api_key": project.token, "batch": []}), 400, None),
        ("/batch/", json!({"api_key": "phc_nobody", "batch": events(1)}), 401, Some("api_key")),
        (
            "/e/",
            json!({"event": "e", "distinct_id": "d", "token": project.token, "properties": {"x": "y".repeat(2 << 20)}}),
            413,
            None,
        ),
        ("/decide/", json!({}), 404, None),
    ];
    for (path, body, status, attr) in cases {
        let (got, answer) = project.post(path, &body).await;
        assert_eq!(got, status, "{path}: {answer}");
        assert_eq!(answer["attr"].as_str(), attr, "{answer}");
        assert!(answer["detail"].as_str().is_some_and(|d| !d.is_empty()), "{answer}");
    }
    let (status, answer) =
        project.capture.send(None, "POST", "/batch/", Some("application/json"), b"{\"batch\": [".to_vec()).await;
    assert_eq!((status, answer["code"].as_str()), (400, Some("invalid_payload")), "{answer}");
    assert!(answer["detail"].as_str().unwrap().contains("line 1"), "names where: {answer}");

    let good = events(3);
    assert_eq!(project.post("/batch/", &project.batch(&good)).await, (200, json!({"status": 1})));
    let stored = project.lake_events(3).await;
    tokio::time::sleep(StdDuration::from_secs(2)).await;
    assert_eq!(project.lake_events(3).await.len(), 3, "only the good request's events: {stored:?}");
}

/// A capture instance over its token's rate answers 429 and stores nothing of the request; one whose queue
/// refuses it (SQS answering 503 past the SDK's retries) answers 503 and stores nothing; the requests that pass
/// are stored, and exported once each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_rate_limit_is_429_and_a_failing_queue_is_503() {
    // The queue refuses the second request's sends (its three attempts).
    let refused = Fault::slow_down("POST", "").when_target("AmazonSQS.SendMessageBatch").after(1).times(3);
    let proxy = FaultProxy::with(&[refused]);
    let env = [("BATCH_EXPORT_CAPTURE_RATE_LIMIT", "10".to_string()), ("AWS_ENDPOINT_URL_SQS", proxy.url.clone())];
    let functions = Functions::start(&["capture"], &env);
    let project = Project::new(&format!("{}/lambda-url/capture", functions.url())).await;

    // Ten events a second: the first request empties the bucket, and the second, sent right after it, would need
    // a second of refill.
    let first = events(10);
    assert_eq!(project.post("/batch/", &project.batch(&first)).await.0, 200);
    let (status, answer) = project.post("/batch/", &project.batch(&events(10))).await;
    assert_eq!((status, answer["code"].as_str()), (429, Some("rate_limited")), "{answer}");
    tokio::time::sleep(StdDuration::from_millis(1100)).await;
    let (status, answer) = project.post("/batch/", &project.batch(&events(10))).await;
    assert_eq!((status, answer["code"].as_str()), (503, Some("unavailable")), "{answer}");
    assert_eq!(proxy.injected().await, [3], "refused past the SDK's three attempts");
    tokio::time::sleep(StdDuration::from_millis(1100)).await;
    let last = events(10);
    assert_eq!(project.post("/batch/", &project.batch(&last)).await.0, 200);
    let stored = project.lake_events(20).await;
    tokio::time::sleep(StdDuration::from_secs(2)).await;
    assert_eq!(project.lake_events(20).await.len(), stored.len(), "nothing of the refused requests");
    assert_exported_once(&[first, last].concat(), &project.export().await);
}

/// The queue takes a request's events but its answer is lost (three times: the SDK's attempts), so capture
/// answers 503; the client sends the same batch again and gets 200. The lake then holds every event four times,
/// and the export holds each once (de-duplicated by uuid).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_retried_after_a_503_between_the_queue_and_the_answer_is_exported_once() {
    let proxy = FaultProxy::with(&[Fault::lose_answer("POST", "").when_target("AmazonSQS.SendMessageBatch").times(3)]);
    let functions = Functions::start(&["capture"], &[("AWS_ENDPOINT_URL_SQS", proxy.url.clone())]);
    let project = Project::new(&format!("{}/lambda-url/capture", functions.url())).await;

    let sent = events(250);
    let (status, answer) = project.post("/batch/", &project.batch(&sent)).await;
    assert_eq!(status, 503, "{answer}");
    assert_eq!(project.post("/batch/", &project.batch(&sent)).await, (200, json!({"status": 1})));
    let stored = project.lake_events(4 * sent.len()).await;
    assert_eq!(stored.len(), 4 * sent.len(), "three lost answers and the retry");
    assert_exported_once(&sent, &project.export().await);
}

/// Runs an SDK's sender script (tests/sdk) against `host` with `token`; returns the uuids of the events it
/// captured.
async fn send_with_sdk(program: &str, script: &str, host: &str, token: &str, count: usize) -> Vec<String> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let (program, script) = (format!("{root}/{program}"), format!("{root}/tests/sdk/{script}"));
    let args = [script.clone(), host.to_string(), token.to_string(), count.to_string()];
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(&program)
            .args(&args)
            .output()
            .unwrap_or_else(|e| panic!("{program}: {e} (installed by scripts/test.sh)"))
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{script}: {}{stdout}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{script} printed {stdout}: {e}"))
}

/// The official posthog-python and posthog-node SDKs, pointed at capture with a project token, send 2,000 events
/// each (single `capture` calls the SDKs batch to `/batch/`, gzipped) and identify ten users each: the lake
/// then holds them, and an export of the interval holds every event exactly once, with the SDKs' own properties
/// (`$lib`, `$lib_version`) and the person properties of the identify events intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_sdks_events_are_exported_once_each() {
    let project = Project::new(&capture_url()).await;
    let python =
        send_with_sdk(".local/sdk-venv/bin/python", "send_python.py", &capture_url(), &project.token, 2_000).await;
    let node =
        send_with_sdk("localstack/sfn/node_modules/.bin/node", "send_node.mjs", &capture_url(), &project.token, 2_000)
            .await;
    let total = python.len() + node.len() + 20;
    project.lake_events(total).await;
    let rows = project.export().await;
    assert_eq!(rows.len(), total, "every event once, and one person event per identified user");
    let by_uuid: HashMap<&str, &ExportedRow> = rows.iter().map(|r| (r.uuid.as_str(), r)).collect();
    assert_eq!(by_uuid.len(), rows.len(), "no uuid twice");
    for (uuids, lib) in [(&python, "posthog-python"), (&node, "posthog-node")] {
        for uuid in uuids {
            let row = by_uuid.get(uuid.as_str()).unwrap_or_else(|| panic!("{lib}'s event {uuid} is missing"));
            let properties = row.properties.as_ref().unwrap();
            assert_eq!((row.event.as_str(), properties["$lib"].as_str()), ("sdk event", Some(lib)), "{properties}");
            assert!(properties["$lib_version"].is_string(), "{properties}");
            assert!(properties["n"].is_u64(), "{properties}");
        }
    }
    let identifies: Vec<&ExportedRow> = rows.iter().filter(|r| r.event != "sdk event").collect();
    assert_eq!(identifies.len(), 20, "python's $set and node's $identify events");
    for row in identifies {
        let set = &row.properties.as_ref().unwrap()["$set"];
        assert_eq!(set["email"].as_str(), Some(format!("{}@example.com", row.distinct_id).as_str()), "{row:?}");
    }
    // The persons model shows the identified users.
    let persons = project.export_persons_when(|rows| rows.len() >= 20).await;
    assert_eq!(persons.len(), 20, "{persons:?}");
    for person in &persons {
        let distinct_id = person["distinct_id"].as_str().unwrap();
        assert_eq!(person["properties"]["email"].as_str(), Some(format!("{distinct_id}@example.com").as_str()));
        assert!(person["person_id"].is_string(), "{person}");
    }
}

/// Person changes from events, in the persons layout: an anonymous visitor's `$set_once`, then `$identify`
/// joining it to a user with `$set`, then the user's top-level `$set` (a change) and the same `$set` again (none).
/// Both distinct ids end on one person holding every property, at version 2, and the identify moved nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_and_identify_make_person_changes_with_increasing_versions() {
    let project = Project::new(&capture_url()).await;
    let batches = [
        vec![
            json!({"event": "$pageview", "distinct_id": "anon-1", "properties": {"$set_once": {"first_seen": "home"}}}),
        ],
        vec![json!({"event": "$identify", "distinct_id": "user-1",
                    "properties": {"$anon_distinct_id": "anon-1", "$set": {"email": "user-1@example.com"}}})],
        vec![
            json!({"event": "upgraded", "distinct_id": "user-1", "$set": {"plan": "pro"}}),
            json!({"event": "upgraded again", "distinct_id": "user-1", "properties": {"$set": {"plan": "pro"}}}),
        ],
    ];
    let mut sent = 0;
    // One batch at a time: the writer applies person updates in the order it sees them.
    for batch in &batches {
        assert_eq!(project.post("/batch/", &project.batch(batch)).await.0, 200);
        sent += batch.len();
        project.lake_events(sent).await;
    }
    let persons = project
        .export_persons_when(|rows| rows.iter().any(|p| p["distinct_id"] == "user-1" && p["person_version"] == 2))
        .await;
    let by_id: HashMap<&str, &Value> = persons.iter().map(|p| (p["distinct_id"].as_str().unwrap(), p)).collect();
    assert_eq!(by_id.len(), 2, "{persons:?}");
    let (anon, user) = (by_id["anon-1"], by_id["user-1"]);
    assert_eq!(anon["person_id"], user["person_id"], "one person");
    let want = json!({"first_seen": "home", "email": "user-1@example.com", "plan": "pro"});
    assert_eq!((&user["properties"], user["person_version"].as_i64()), (&want, Some(2)), "{user}");
    assert_eq!(&anon["properties"], &want, "the anonymous id takes its person's latest properties");
    assert_eq!(
        (anon["person_distinct_id_version"].as_i64(), user["person_distinct_id_version"].as_i64()),
        (Some(0), Some(0))
    );
}
