//! The BigQuery destination against bqemulator, authenticated with the service-account JWT-bearer flow at a
//! local token endpoint (tests/token_stub.py, which also fronts the emulator and refuses unknown tokens): the
//! final table created with the seed's schema, events loaded through a stage table holding exactly the source
//! rows, `use_json_type` on and off, a denied permission and a bad key as non-retryable errors naming what was
//! refused, and no stage table left behind.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use batch_exports::bigquery::schema::stage_table;
use batch_exports::bigquery::{load_events, BigQuery, BigQueryDestinationConfig, TokenSource};
use batch_exports::synthetic::SyntheticEvents;
use batch_exports::{ExportError, Interval};
use chrono::{Duration, Utc};
use serde_json::{json, Value};

/// The token endpoint and authenticating front, stopped when dropped.
struct TokenStub {
    child: Child,
    url: String,
    key: String,
    _dir: tempfile::TempDir,
}

impl TokenStub {
    fn start() -> TokenStub {
        let emulator = std::env::var("BATCH_EXPORT_BIGQUERY_EMULATOR")
            .expect("BATCH_EXPORT_BIGQUERY_EMULATOR is not set: run the tests with scripts/test.sh");
        let python = std::env::var("BATCH_EXPORT_BQ_PYTHON").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (key, public) = (dir.path().join("key.pem"), dir.path().join("public.pem"));
        let ok = Command::new("openssl")
            .args(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out"])
            .arg(&key)
            .status()
            .unwrap()
            .success()
            && Command::new("openssl")
                .args(["pkey", "-pubout", "-in"])
                .arg(&key)
                .arg("-out")
                .arg(&public)
                .status()
                .unwrap()
                .success();
        assert!(ok, "openssl made a key pair");
        let mut child = Command::new(python)
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/token_stub.py"))
            .arg(&public)
            .arg(&emulator)
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the token stub");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        TokenStub {
            child,
            url: format!("http://127.0.0.1:{}", line.trim()),
            key: std::fs::read_to_string(&key).unwrap(),
            _dir: dir,
        }
    }

    fn config(&self, dataset: &str, email: &str, use_json_type: bool) -> BigQueryDestinationConfig {
        serde_json::from_value(json!({
            "project_id": "test-proj", "dataset_id": dataset, "table_id": "events", "use_json_type": use_json_type,
            "private_key": self.key, "private_key_id": "key-1", "client_email": email,
            "token_uri": format!("{}/token", self.url),
        }))
        .unwrap()
    }

    fn client(&self, config: &BigQueryDestinationConfig) -> BigQuery {
        let http = reqwest::Client::new();
        BigQuery::new(http.clone(), &self.url, "test-proj", TokenSource::new(http, config).unwrap())
    }
}

impl Drop for TokenStub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The emulator itself (no auth): what a user looking at the dataset sees.
struct Emulator {
    http: reqwest::Client,
    base: String,
}

impl Emulator {
    fn new() -> Emulator {
        let base =
            format!("{}/bigquery/v2/projects/test-proj", std::env::var("BATCH_EXPORT_BIGQUERY_EMULATOR").unwrap());
        Emulator { http: reqwest::Client::new(), base }
    }

    async fn create_dataset(&self) -> String {
        let dataset = format!("exports_{}", uuid_suffix());
        let body = json!({"datasetReference": {"projectId": "test-proj", "datasetId": dataset}});
        let response = self.http.post(format!("{}/datasets", self.base)).json(&body).send().await.unwrap();
        assert!(response.status().is_success());
        dataset
    }

    async fn tables(&self, dataset: &str) -> Vec<String> {
        let list: Value = self
            .http
            .get(format!("{}/datasets/{dataset}/tables", self.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        list["tables"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|t| t["tableReference"]["tableId"].as_str().unwrap().to_string())
            .collect()
    }

    async fn table(&self, dataset: &str, table: &str) -> Value {
        self.http
            .get(format!("{}/datasets/{dataset}/tables/{table}", self.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn query(&self, sql: &str) -> Vec<Vec<Value>> {
        let body = json!({"query": sql, "useLegacySql": false, "formatOptions": {"useInt64Timestamp": true}});
        let answer: Value =
            self.http.post(format!("{}/queries", self.base)).json(&body).send().await.unwrap().json().await.unwrap();
        assert!(answer["errors"].is_null(), "{sql}: {answer}");
        answer["rows"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| r["f"].as_array().unwrap().iter().map(|c| c["v"].clone()).collect())
            .collect()
    }
}

fn uuid_suffix() -> String {
    format!("{}_{}", Utc::now().timestamp_millis(), std::process::id())
}

fn hour() -> Interval {
    let start = (Utc::now() - Duration::days(1)).date_naive().and_hms_opt(10, 0, 0).unwrap().and_utc();
    Interval::new(start, start + Duration::hours(1)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_land_in_the_final_table_through_a_stage_table_with_json_or_string_columns() {
    let stub = TokenStub::start();
    let emulator = Emulator::new();
    let interval = hour();
    let rows = SyntheticEvents::new(5, 77).events_between(interval.start, Duration::hours(1), 2_500);
    for use_json_type in [false, true] {
        let dataset = emulator.create_dataset().await;
        let config = stub.config(&dataset, "exports@test-proj.iam.gserviceaccount.com", use_json_type);
        let bq = stub.client(&config);
        // Small jobs: several load jobs into the one stage table.
        let batches = rows.chunks(1_000).map(|c| c.to_vec());
        let outcome =
            load_events(&bq, &config, &interval, 77, &format!("job-{dataset}"), 400_000, batches).await.unwrap();
        assert_eq!(outcome.rows, 2_500);
        assert!(outcome.load_jobs >= 2, "{outcome:?}");

        // Exactly the source rows, once each.
        let table = format!("`test-proj.{dataset}.events`");
        let got = emulator.query(&format!("SELECT COUNT(*), COUNT(DISTINCT uuid), SUM(team_id) FROM {table}")).await;
        assert_eq!(got[0], [json!("2500"), json!("2500"), json!((2_500 * 77).to_string())]);
        let first = &rows[0];
        let got = emulator
            .query(&format!(
                "SELECT event, distinct_id, timestamp, bq_ingested_timestamp FROM {table} WHERE uuid = '{}'",
                first.uuid
            ))
            .await;
        assert_eq!(got[0][0], json!(first.event));
        assert_eq!(got[0][1], json!(first.distinct_id));
        assert_eq!(got[0][2], json!(first.timestamp.to_string()));
        assert!(got[0][3].as_str().is_some(), "bq_ingested_timestamp is set");

        // The seed's schema, JSON or STRING, partitioned by day on timestamp; no stage table left.
        let meta = emulator.table(&dataset, "events").await;
        let kinds: Vec<(String, String)> = meta["schema"]["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| (f["name"].as_str().unwrap().to_string(), f["type"].as_str().unwrap().to_string()))
            .collect();
        let json_kind = if use_json_type { "JSON" } else { "STRING" };
        for column in ["properties", "set", "set_once"] {
            assert!(kinds.contains(&(column.to_string(), json_kind.to_string())), "{column}: {kinds:?}");
        }
        assert!(kinds.contains(&("bq_ingested_timestamp".to_string(), "TIMESTAMP".to_string())));
        assert_eq!(meta["timePartitioning"], json!({"type": "DAY", "field": "timestamp"}));
        assert_eq!(emulator.tables(&dataset).await, ["events"]);

        // A second run of the interval reloads the stage from scratch (the final table gets the rows again:
        // events are append-only, as in the reference).
        let again =
            load_events(&bq, &config, &interval, 77, &format!("job2-{dataset}"), 400_000, [rows[..10].to_vec()]).await;
        assert_eq!(again.unwrap().rows, 10);
        assert_eq!(emulator.tables(&dataset).await, ["events"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_permission_or_a_bad_key_fails_without_retry_naming_what_was_refused() {
    let stub = TokenStub::start();
    let emulator = Emulator::new();
    let interval = hour();
    let rows = SyntheticEvents::new(6, 78).events_between(interval.start, Duration::hours(1), 10);

    let dataset = emulator.create_dataset().await;
    let config = stub.config(&dataset, "denied@test-proj.iam.gserviceaccount.com", false);
    let error = load_events(&stub.client(&config), &config, &interval, 78, "denied", 1 << 20, [rows.clone()])
        .await
        .unwrap_err();
    assert!(!error.is_retryable(), "{error}");
    assert!(matches!(error, ExportError::AccessDenied { .. }), "{error:?}");
    assert!(error.to_string().contains("bigquery.tables.create"), "{error}");
    assert!(emulator.tables(&dataset).await.is_empty(), "nothing created");

    // A key the token endpoint does not know (another key pair): the exchange is refused.
    let other = TokenStub::start();
    let mut config = other.config(&dataset, "exports@test-proj.iam.gserviceaccount.com", false);
    config.token_uri = format!("{}/token", stub.url);
    let error =
        load_events(&stub.client(&config), &config, &interval, 78, "bad-key", 1 << 20, [rows]).await.unwrap_err();
    assert!(!error.is_retryable(), "{error}");
    assert!(error.to_string().contains("invalid_grant"), "{error}");
    assert!(!emulator.tables(&dataset).await.contains(&stage_table("events", &interval, 78)));
}
