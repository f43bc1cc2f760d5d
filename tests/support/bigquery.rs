//! The BigQuery stubs: a local token endpoint that verifies service-account JWTs and fronts bqemulator
//! (tests/token_stub.py), the emulator as a user queries it, and RSA keys for the service accounts (openssl).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use batch_exports::destinations::bigquery::{BigQuery, BigQueryDestinationConfig, TokenSource};
use chrono::Utc;
use serde_json::{json, Value};

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

/// The token endpoint and authenticating front, stopped when dropped.
pub struct TokenStub {
    child: Child,
    pub url: String,
    pub key: String,
    _dir: tempfile::TempDir,
}

impl TokenStub {
    pub fn start() -> TokenStub {
        TokenStub::start_with(rsa_key_pem(2048))
    }

    /// A stub that accepts the JWTs signed by `key` (a PEM private key).
    pub fn start_with(key: String) -> TokenStub {
        let emulator = std::env::var("BATCH_EXPORT_BIGQUERY_EMULATOR")
            .expect("BATCH_EXPORT_BIGQUERY_EMULATOR is not set: run the tests with scripts/test.sh");
        let python = std::env::var("BATCH_EXPORT_BQ_PYTHON").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let public = dir.path().join("public.pem");
        std::fs::write(&public, public_key_pem(&key)).unwrap();
        let mut child = Command::new(python)
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/token_stub.py"))
            .arg(&public)
            .arg(&emulator)
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the token stub");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        TokenStub { child, url: format!("http://127.0.0.1:{}", line.trim()), key, _dir: dir }
    }

    pub fn config(&self, dataset: &str, email: &str, use_json_type: bool) -> BigQueryDestinationConfig {
        serde_json::from_value(json!({
            "project_id": "test-proj", "dataset_id": dataset, "table_id": "events", "use_json_type": use_json_type,
            "private_key": self.key, "private_key_id": "key-1", "client_email": email,
            "token_uri": format!("{}/token", self.url),
        }))
        .unwrap()
    }

    pub fn client(&self, config: &BigQueryDestinationConfig) -> BigQuery {
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
pub struct Emulator {
    http: reqwest::Client,
    base: String,
}

impl Emulator {
    pub fn new() -> Emulator {
        let base =
            format!("{}/bigquery/v2/projects/test-proj", std::env::var("BATCH_EXPORT_BIGQUERY_EMULATOR").unwrap());
        Emulator { http: reqwest::Client::new(), base }
    }

    pub async fn create_dataset(&self) -> String {
        let dataset = format!("exports_{}", uuid_suffix());
        let body = json!({"datasetReference": {"projectId": "test-proj", "datasetId": dataset}});
        let response = self.http.post(format!("{}/datasets", self.base)).json(&body).send().await.unwrap();
        assert!(response.status().is_success());
        dataset
    }

    pub async fn tables(&self, dataset: &str) -> Vec<String> {
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

    pub async fn table(&self, dataset: &str, table: &str) -> Value {
        self.http
            .get(format!("{}/datasets/{dataset}/tables/{table}", self.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn query(&self, sql: &str) -> Vec<Vec<Value>> {
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

pub fn uuid_suffix() -> String {
    format!("{}_{}", Utc::now().timestamp_millis(), std::process::id())
}
