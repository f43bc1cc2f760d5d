//! The local stack as the tests reach it: the SDK config, S3 helpers, the functions' settings and secrets box,
//! raw table items and the functions' logs.

use std::sync::atomic::{AtomicU32, Ordering};

use aws_config::{BehaviorVersion, SdkConfig};

/// The settings the functions of the local stack run with (the same environment).
pub fn settings() -> batch_exports::settings::Settings {
    batch_exports::settings::Settings::from_env().expect("the local stack's settings")
}

/// The secrets box of the local stack's KMS key.
pub fn secret_box(kms: aws_sdk_kms::Client) -> batch_exports::secrets::SecretBox {
    batch_exports::secrets::SecretBox::new(kms, settings().kms_key_id().expect("BATCH_EXPORT_KMS_KEY_ID"))
}

/// The SDK config for the local stack; the test command sets `AWS_ENDPOINT_URL`.
pub async fn local_stack() -> SdkConfig {
    assert!(
        std::env::var_os("AWS_ENDPOINT_URL").is_some(),
        "AWS_ENDPOINT_URL is not set: run the tests with scripts/test.sh, which starts the local stack"
    );
    aws_config::load_defaults(BehaviorVersion::latest()).await
}

/// A path-style S3 client for the local stack.
pub fn s3(base: &SdkConfig) -> aws_sdk_s3::Client {
    batch_exports::destinations::s3::lake_client(base)
}

static BUCKETS: AtomicU32 = AtomicU32::new(0);

/// Creates a bucket with a name unique to this test process.
pub async fn new_bucket(client: &aws_sdk_s3::Client, name: &str) -> String {
    let bucket = format!("{name}-{}-{}", std::process::id(), BUCKETS.fetch_add(1, Ordering::Relaxed));
    client.create_bucket().bucket(&bucket).send().await.expect("create bucket");
    bucket
}

pub async fn get_bytes(client: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Vec<u8> {
    let out = client.get_object().bucket(bucket).key(key).send().await.unwrap_or_else(|e| panic!("get {key}: {e:?}"));
    out.body.collect().await.expect("object body").into_bytes().to_vec()
}

pub async fn list_keys(client: &aws_sdk_s3::Client, bucket: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut pages = client.list_objects_v2().bucket(bucket).into_paginator().send();
    while let Some(page) = pages.next().await {
        keys.extend(page.expect("list").contents().iter().filter_map(|o| o.key().map(str::to_string)));
    }
    keys
}

/// The multipart uploads open in `bucket`, as (key, upload id): an export leaves none behind.
pub async fn open_uploads(client: &aws_sdk_s3::Client, bucket: &str) -> Vec<(String, String)> {
    let open = client.list_multipart_uploads().bucket(bucket).send().await.expect("list multipart uploads");
    open.uploads()
        .iter()
        .map(|u| (u.key().unwrap_or_default().to_string(), u.upload_id().unwrap_or_default().to_string()))
        .collect()
}

/// Everything the functions of the local stack logged so far (localstack/lib.sh writes .local/function-*.log).
pub fn function_logs() -> String {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../.local");
    let mut text = String::new();
    for entry in std::fs::read_dir(dir).expect(".local exists") {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("function-") && name.ends_with(".log") {
            text.push_str(&std::fs::read_to_string(&path).unwrap());
        }
    }
    text
}

/// An export's item exactly as the exports table holds it (what a leak of plaintext secrets would show in).
pub async fn raw_export_item(
    team: i64,
    id: &str,
) -> std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue> {
    use aws_sdk_dynamodb::types::AttributeValue;
    aws_sdk_dynamodb::Client::new(&local_stack().await)
        .get_item()
        .table_name(settings().tables.exports)
        .key("team_id", AttributeValue::N(team.to_string()))
        .key("id", AttributeValue::S(id.to_string()))
        .send()
        .await
        .unwrap()
        .item
        .expect("the export item")
}

/// Invokes a schedule's target as EventBridge Scheduler does when it fires: the Lambda Invoke API (cargo lambda
/// serving the real function), with the target's input and the firing time `at` substituted; returns what the target answered.
pub async fn fire_schedule(
    schedule: &aws_sdk_scheduler::operation::get_schedule::GetScheduleOutput,
    at: chrono::DateTime<chrono::Utc>,
) -> serde_json::Value {
    let target = schedule.target().expect("a target");
    let function = target.arn().rsplit(':').next().unwrap().to_string();
    let input = target.input().unwrap().replace("<aws.scheduler.scheduled-time>", &at.to_rfc3339());
    let url = format!(
        "{}/2015-03-31/functions/{function}/invocations",
        std::env::var("AWS_ENDPOINT_URL_LAMBDA").expect("AWS_ENDPOINT_URL_LAMBDA: run with scripts/test.sh")
    );
    tokio::task::spawn_blocking(move || {
        let mut response = ureq::post(&url).send(input.as_bytes()).unwrap_or_else(|e| panic!("invoke {url}: {e}"));
        let failed = response.headers().get("X-Amz-Function-Error").is_some();
        let text = response.body_mut().read_to_string().unwrap();
        assert!(!failed, "{function} failed: {text}");
        serde_json::from_str(&text).unwrap()
    })
    .await
    .unwrap()
}

/// Asks the local scheduler (localstack/scheduler.py) to fire the named schedules' occurrences in
/// `(after, until]` now, as its clock would have; returns each firing (schedule, scheduled time, the target's
/// answer), in time order.
pub async fn fire_schedules(
    names: &[String],
    after: chrono::DateTime<chrono::Utc>,
    until: chrono::DateTime<chrono::Utc>,
) -> Vec<serde_json::Value> {
    let url = format!(
        "{}/fire",
        std::env::var("LOCAL_SCHEDULER_URL").expect("LOCAL_SCHEDULER_URL: run with scripts/test.sh")
    );
    let body = serde_json::json!({"schedules": names, "after": after.to_rfc3339(), "until": until.to_rfc3339()});
    tokio::task::spawn_blocking(move || {
        let mut response = ureq::post(&url).send(body.to_string().as_bytes()).unwrap_or_else(|e| panic!("{url}: {e}"));
        serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap()
    })
    .await
    .unwrap()
}
