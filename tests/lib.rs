//! Helpers of the integration tests: clients for the local stack, lake seeding, and an independent reader of
//! exported files (decoded with the compression crates, serde_json and the Parquet reader directly, not with the
//! engine's own code), so the tests compare what a user downloads with the source rows.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use arrow_array::cast::AsArray;
use arrow_array::types::TimestampMicrosecondType;
use arrow_array::Array;
use aws_config::{BehaviorVersion, SdkConfig};
use batch_exports::event::EventRow;
use batch_exports::format::{Compression, FileFormat};
use batch_exports::sources::lake::writer::{lake_object_key, ndjson_bytes, parquet_bytes, put_object};
use batch_exports::{Interval, LakeStore, S3DestinationConfig};
use chrono::{DateTime, Utc};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::Value;

/// The settings the functions of the local stack run with (the same environment).
pub fn settings() -> batch_exports::settings::Settings {
    batch_exports::settings::Settings::from_env().expect("the local stack's settings")
}

/// The secrets box of the local stack's KMS key.
pub fn secret_box(kms: aws_sdk_kms::Client) -> batch_exports::secrets::SecretBox {
    batch_exports::secrets::SecretBox::new(kms, settings().kms_key_id().expect("BATCH_EXPORT_KMS_KEY_ID"))
}

/// A new RSA private key of `bits` bits, PKCS#8 PEM, made by openssl.
pub fn rsa_key_pem(bits: u32) -> String {
    let out = Command::new("openssl")
        .args(["genpkey", "-algorithm", "RSA", "-pkeyopt", &format!("rsa_keygen_bits:{bits}")])
        .stderr(Stdio::null())
        .output()
        .expect("run openssl");
    assert!(out.status.success(), "openssl made a key");
    String::from_utf8(out.stdout).unwrap()
}

/// The public key of a PEM private key, PEM.
pub fn public_key_pem(private: &str) -> String {
    let mut child = Command::new("openssl")
        .args(["pkey", "-pubout"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run openssl");
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), private.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "openssl wrote the public key");
    String::from_utf8(out.stdout).unwrap()
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

/// A row as a user sees it in an exported file, normalised for comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportedRow {
    pub uuid: String,
    pub event: String,
    pub distinct_id: String,
    pub person_id: Option<String>,
    pub properties: Option<Value>,
    pub person_properties: Option<Value>,
    pub elements_chain: Option<String>,
    pub timestamp: i64,
    pub created_at: Option<i64>,
    pub inserted_at: i64,
}

impl From<&EventRow> for ExportedRow {
    fn from(r: &EventRow) -> Self {
        let json = |v: &Option<Box<serde_json::value::RawValue>>| {
            v.as_ref().map(|raw| serde_json::from_str(raw.get()).expect("source JSON"))
        };
        ExportedRow {
            uuid: r.uuid.clone(),
            event: r.event.clone(),
            distinct_id: r.distinct_id.clone(),
            person_id: r.person_id.clone(),
            properties: json(&r.properties),
            person_properties: json(&r.person_properties),
            elements_chain: r.elements_chain.clone(),
            timestamp: r.timestamp,
            created_at: r.created_at,
            inserted_at: r.inserted_at,
        }
    }
}

fn iso_micros(v: &Value) -> Option<i64> {
    v.as_str().map(|s| chrono::DateTime::parse_from_rfc3339(s).expect("ISO 8601 timestamp").timestamp_micros())
}

fn decompress(bytes: &[u8], compression: Option<Compression>) -> Box<dyn Read + '_> {
    match compression {
        None => Box::new(bytes),
        Some(Compression::Gzip) => Box::new(flate2::read::MultiGzDecoder::new(bytes)),
        Some(Compression::Zstd) => Box::new(zstd::Decoder::new(bytes).expect("zstd")),
        Some(Compression::Brotli) => Box::new(brotli::Decompressor::new(bytes, 4096)),
        Some(other) => panic!("{other:?} is not a JSONLines compression"),
    }
}

/// Reads an exported file as a user would.
pub fn read_exported(bytes: Vec<u8>, format: FileFormat, compression: Option<Compression>) -> Vec<ExportedRow> {
    match format {
        FileFormat::JSONLines => BufReader::new(decompress(&bytes, compression))
            .lines()
            .map(|line| {
                let v: Value = serde_json::from_str(&line.expect("line")).expect("JSON line");
                let obj = v.as_object().expect("object per line");
                assert_eq!(obj.len(), 10, "JSONLines columns: {:?}", obj.keys().collect::<Vec<_>>());
                let text = |k: &str| v[k].as_str().map(str::to_string);
                let nested = |k: &str| {
                    assert!(v[k].is_object() || v[k].is_null(), "{k} must be a nested object");
                    (!v[k].is_null()).then(|| v[k].clone())
                };
                ExportedRow {
                    uuid: text("uuid").expect("uuid"),
                    event: text("event").expect("event"),
                    distinct_id: text("distinct_id").expect("distinct_id"),
                    person_id: text("person_id"),
                    properties: nested("properties"),
                    person_properties: nested("person_properties"),
                    elements_chain: text("elements_chain"),
                    timestamp: iso_micros(&v["timestamp"]).expect("timestamp"),
                    created_at: iso_micros(&v["created_at"]),
                    inserted_at: iso_micros(&v["_inserted_at"]).expect("_inserted_at"),
                }
            })
            .collect(),
        FileFormat::Parquet => {
            let reader = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes))
                .expect("parquet")
                .build()
                .expect("reader");
            let mut rows = Vec::new();
            for batch in reader {
                let batch = batch.expect("batch");
                let col = |name: &str| batch.column_by_name(name).unwrap_or_else(|| panic!("column {name}")).clone();
                let strings: HashMap<&str, _> =
                    ["uuid", "event", "distinct_id", "person_id", "properties", "person_properties", "elements_chain"]
                        .into_iter()
                        .map(|n| (n, col(n).as_string::<i32>().clone()))
                        .collect();
                let times: HashMap<&str, _> = ["timestamp", "created_at", "_inserted_at"]
                    .into_iter()
                    .map(|n| (n, col(n).as_primitive::<TimestampMicrosecondType>().clone()))
                    .collect();
                for i in 0..batch.num_rows() {
                    let text = |n: &str| (!strings[n].is_null(i)).then(|| strings[n].value(i).to_string());
                    let json =
                        |n: &str| text(n).map(|s| serde_json::from_str::<Value>(&s).expect("JSON-encoded string"));
                    let time = |n: &str| (!times[n].is_null(i)).then(|| times[n].value(i));
                    rows.push(ExportedRow {
                        uuid: text("uuid").expect("uuid"),
                        event: text("event").expect("event"),
                        distinct_id: text("distinct_id").expect("distinct_id"),
                        person_id: text("person_id"),
                        properties: json("properties"),
                        person_properties: json("person_properties"),
                        elements_chain: text("elements_chain"),
                        timestamp: time("timestamp").expect("timestamp"),
                        created_at: time("created_at"),
                        inserted_at: time("_inserted_at").expect("_inserted_at"),
                    });
                }
            }
            rows
        }
    }
}

/// A lake being written: objects are uploaded as added, and the rows are remembered in key order.
pub struct Lake {
    pub client: aws_sdk_s3::Client,
    pub bucket: String,
    pub objects: Vec<(String, Vec<EventRow>)>,
}

impl Lake {
    /// A lake in `bucket` (which exists).
    pub fn new(client: &aws_sdk_s3::Client, bucket: &str) -> Lake {
        Lake { client: client.clone(), bucket: bucket.to_string(), objects: Vec::new() }
    }

    pub async fn add(&mut self, team: i64, hour: DateTime<Utc>, name: &str, rows: Vec<EventRow>) {
        let key = lake_object_key("", team, hour, name);
        let body = if name.ends_with(".parquet") {
            parquet_bytes(&rows).unwrap()
        } else if name.ends_with(".jsonl.zst") {
            ndjson_bytes(&rows, Some(Compression::Zstd)).unwrap()
        } else if name.ends_with(".jsonl.gz") {
            ndjson_bytes(&rows, Some(Compression::Gzip)).unwrap()
        } else {
            ndjson_bytes(&rows, None).unwrap()
        };
        put_object(&self.client, &self.bucket, &key, body).await.unwrap();
        self.objects.push((key, rows));
    }

    pub async fn add_raw(&mut self, team: i64, hour: DateTime<Utc>, name: &str, body: Vec<u8>) -> String {
        let key = lake_object_key("", team, hour, name);
        put_object(&self.client, &self.bucket, &key, body).await.unwrap();
        key
    }

    pub fn store(&self) -> LakeStore {
        LakeStore::S3 { client: self.client.clone(), bucket: self.bucket.clone(), prefix: String::new() }
    }

    /// What a run of `interval` must export, computed independently: the team's rows landed in the interval,
    /// passing the event filter, first occurrence of each uuid in key and row order.
    pub fn expected(&self, team: i64, interval: &Interval, keep_event: impl Fn(&str) -> bool) -> Vec<ExportedRow> {
        let mut objects: Vec<_> = self.objects.iter().collect();
        objects.sort_by(|a, b| a.0.cmp(&b.0));
        let mut seen = HashSet::new();
        objects
            .into_iter()
            .flat_map(|(_, rows)| rows.iter())
            .filter(|r| r.team_id == team && interval.contains_micros(r.inserted_at) && keep_event(&r.event))
            .filter(|r| seen.insert(r.uuid.clone()))
            .map(ExportedRow::from)
            .collect()
    }
}

/// Reads the files at `keys` as a user would and checks them against the expected rows: same uuids, none
/// missing, none twice, every field equal. Returns the row count of each file.
pub async fn assert_files_hold(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    keys: &[&str],
    config: &S3DestinationConfig,
    expected: &[ExportedRow],
) -> Vec<usize> {
    let mut got = Vec::new();
    let mut counts = Vec::new();
    for key in keys {
        let rows = read_exported(get_bytes(client, bucket, key).await, config.file_format, config.compression);
        counts.push(rows.len());
        got.extend(rows);
    }
    assert_eq!(got.len(), expected.len(), "row count for {:?}/{:?}", config.file_format, config.compression);
    let by_uuid: HashMap<&str, &ExportedRow> = got.iter().map(|r| (r.uuid.as_str(), r)).collect();
    assert_eq!(by_uuid.len(), got.len(), "a uuid was exported twice");
    for want in expected {
        let have = by_uuid.get(want.uuid.as_str()).unwrap_or_else(|| panic!("uuid {} is missing", want.uuid));
        assert_eq!(*have, want);
    }
    counts
}

/// What the local interpreter printed for one execution.
#[derive(Debug)]
pub struct Execution {
    pub status: String,
    pub output: Value,
    pub error: Option<String>,
    /// States retried, with their Map index.
    pub retries: Vec<Value>,
    /// Every event of the execution (each state's input and output), as JSON text.
    pub history: String,
}

/// Executes a state machine of `statemachines/` (`export`, `backfill`) on the local stack.
pub async fn execute_machine(machine: &str, name: &str, input: Value) -> Execution {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let name = name.to_string();
    let history = std::env::temp_dir().join(format!("{name}.history.json"));
    let history_path = history.clone();
    let machine = machine.to_string();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(format!("{root}/localstack/run-execution.sh"))
            .args(["--definition", &format!("{root}/statemachines/{machine}.asl.json"), "--name", &name])
            .args(["--input", &input.to_string()])
            .arg("--history")
            .arg(&history_path)
            .output()
            .expect("run localstack/run-execution.sh")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .last()
        .unwrap_or_else(|| panic!("no result from the interpreter; stderr: {}", String::from_utf8_lossy(&out.stderr)));
    let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    let history_text = std::fs::read_to_string(&history).unwrap_or_default();
    let _ = std::fs::remove_file(&history);
    Execution {
        status: v["status"].as_str().unwrap_or_default().to_string(),
        output: v["output"].clone(),
        error: v["error"].as_str().map(str::to_string),
        retries: v["retries"].as_array().cloned().unwrap_or_default(),
        history: history_text,
    }
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

/// A fault-injecting proxy in front of moto (tests/fault_proxy.py): S3 in most tests, EventBridge Scheduler in
/// one; stopped when dropped.
pub struct FaultProxy {
    child: Child,
    pub url: String,
}

impl FaultProxy {
    /// Answers the first `count` `method` requests whose path contains `path_part` with 503 SlowDown.
    pub fn start(method: &str, path_part: &str, count: u32) -> FaultProxy {
        FaultProxy::spawn(&[method, path_part, &count.to_string()])
    }

    /// Forwards the first `count` `method` requests whose path contains `path_part` after `seconds`.
    pub fn delaying(method: &str, path_part: &str, count: u32, seconds: f64) -> FaultProxy {
        FaultProxy::spawn(&[method, path_part, &count.to_string(), &seconds.to_string()])
    }

    fn spawn(args: &[&str]) -> FaultProxy {
        let upstream = std::env::var("AWS_ENDPOINT_URL").unwrap();
        let port = upstream.rsplit(':').next().unwrap().trim_end_matches('/').to_string();
        let mut child = Command::new("python3")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/fault_proxy.py"))
            .arg(&port)
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the fault proxy");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        FaultProxy { child, url: format!("http://127.0.0.1:{}", line.trim()) }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A client of the API function served by the local stack (`BATCH_EXPORT_API_URL`), with one team's API key.
#[derive(Clone)]
pub struct Api {
    pub url: String,
    pub team: i64,
    pub key: String,
}

impl Api {
    /// A new team with its own API key.
    pub async fn new_team(team: i64) -> Api {
        let base = local_stack().await;
        let keys =
            batch_exports::store::ApiKeyStore::new(aws_sdk_dynamodb::Client::new(&base), settings().tables.api_keys);
        let (key, _) = keys.create(team, "tests", Utc::now()).await.unwrap();
        let url = std::env::var("BATCH_EXPORT_API_URL")
            .expect("BATCH_EXPORT_API_URL is not set: run the tests with scripts/test.sh, which serves the API");
        Api { url, team, key }
    }

    /// The path of this team's exports, with `rest` appended.
    pub fn path(&self, rest: &str) -> String {
        format!("/api/projects/{}/batch_exports/{rest}", self.team)
    }

    /// Sends a request with this team's key; returns the status and the JSON body (null when empty).
    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.call_as(Some(&format!("Bearer {}", self.key)), method, path, body.map(|b| b.to_string())).await
    }

    /// Sends a request with any `Authorization` header (or none) and a raw body.
    pub async fn call_as(
        &self,
        authorization: Option<&str>,
        method: &str,
        path: &str,
        body: Option<String>,
    ) -> (u16, Value) {
        let body = body.unwrap_or_default().into_bytes();
        self.send(authorization, method, path, Some("application/json"), body).await
    }

    /// Sends any request: any `Authorization` and `Content-Type` header (or none), a raw body.
    pub async fn send(
        &self,
        authorization: Option<&str>,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> (u16, Value) {
        let url = format!("{}{path}", self.url);
        let (method, authorization) = (method.to_string(), authorization.map(str::to_string));
        let content_type = content_type.map(str::to_string);
        tokio::task::spawn_blocking(move || {
            let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
            let mut request = ureq::http::Request::builder().method(method.as_str()).uri(&url);
            if let Some(a) = &authorization {
                request = request.header("Authorization", a);
            }
            if let Some(c) = &content_type {
                request = request.header("Content-Type", c);
            }
            let request = request.body(body).unwrap();
            let mut response = agent.run(request).unwrap_or_else(|e| panic!("{method} {url}: {e}"));
            let status = response.status().as_u16();
            let text = response.body_mut().read_to_string().unwrap();
            let json =
                if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
            (status, json)
        })
        .await
        .unwrap()
    }
}

/// One more instance of the `api` function with some settings changed (`env`), behind a second `cargo lambda
/// watch` on a free port (cargo lambda serves only the project's binary names); both stopped when dropped.
pub struct ApiInstance {
    children: Vec<Child>,
    /// Its function URL, for [`Api::url`].
    pub url: String,
}

impl ApiInstance {
    pub fn start(env: &[(&str, String)]) -> ApiInstance {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
        let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| format!("{root}/target"));
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let watch = Command::new(format!("{root}/.local/venv/bin/cargo-lambda"))
            .args(["lambda", "watch", "--only-lambda-apis", "--ignore-changes", "-A", "127.0.0.1", "-P"])
            .arg(port.to_string())
            .current_dir(root)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cargo lambda (installed by scripts/test.sh)");
        let mut instance =
            ApiInstance { children: vec![watch], url: format!("http://127.0.0.1:{port}/lambda-url/api") };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "cargo lambda watch did not listen on {port}");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let api = Command::new(format!("{target}/debug/api"))
            .env("AWS_LAMBDA_FUNCTION_NAME", "api")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1769")
            .env("AWS_LAMBDA_RUNTIME_API", format!("http://127.0.0.1:{port}/.rt/api"))
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the api binary (cargo build --workspace --bins)");
        instance.children.push(api);
        instance
    }
}

impl Drop for ApiInstance {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
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
