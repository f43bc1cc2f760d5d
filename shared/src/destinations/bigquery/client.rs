//! A small BigQuery REST client: the calls a load-and-merge export needs (tables get/insert/delete, load jobs by
//! multipart upload, query jobs), each authenticated with the service account's token, and every failure mapped
//! to the export's error taxonomy ([`classify`]).
//!
//! The endpoint is `BATCH_EXPORT_BIGQUERY_ENDPOINT` (default `https://bigquery.googleapis.com`; the tests point
//! it at bqemulator). Where the emulator answers differently from BigQuery, the client accepts both: query
//! errors in an HTTP 200 body, a repeated job id answered 200 instead of 409.

use std::time::Duration;

use serde_json::{json, Value};

use super::auth::TokenSource;
use crate::error::{ExportError, Result};

/// BigQuery's public endpoint.
pub const BIGQUERY_ENDPOINT: &str = "https://bigquery.googleapis.com";

/// Maps a BigQuery error answer (status and `error.errors[].reason`) to the taxonomy: quota, rate limits and
/// 5xx are retryable; access denied, not found, invalid requests are not.
pub fn classify(operation: &'static str, resource: &str, status: u16, body: &Value) -> ExportError {
    let reasons: Vec<&str> = body["error"]["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(body["errors"].as_array().into_iter().flatten())
        .chain(std::iter::once(&body["status"]["errorResult"]))
        .filter_map(|e| e["reason"].as_str())
        .collect();
    let message = body["error"]["message"]
        .as_str()
        .or_else(|| body["status"]["errorResult"]["message"].as_str())
        .or_else(|| body["errors"][0]["message"].as_str())
        .unwrap_or("no message")
        .to_string();
    let message = match reasons.first() {
        Some(reason) => format!("{reason}: {message} (HTTP {status})"),
        None => format!("{message} (HTTP {status})"),
    };
    let resource = resource.to_string();
    let retryable_reason =
        reasons.iter().any(|r| matches!(*r, "quotaExceeded" | "rateLimitExceeded" | "backendError" | "internalError"));
    if retryable_reason || status >= 500 || status == 429 {
        return ExportError::Transient { operation, resource, message };
    }
    match status {
        401 | 403 => ExportError::AccessDenied { operation, resource, message },
        404 => ExportError::Rejected { operation, resource, message: format!("not found: {message}") },
        _ => ExportError::Rejected { operation, resource, message },
    }
}

/// One project's BigQuery, as one service account.
#[derive(Debug)]
pub struct BigQuery {
    http: reqwest::Client,
    base: String,
    pub project: String,
    tokens: TokenSource,
}

impl BigQuery {
    pub fn new(http: reqwest::Client, base: &str, project: &str, tokens: TokenSource) -> Self {
        BigQuery { http, base: base.trim_end_matches('/').to_string(), project: project.to_string(), tokens }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/bigquery/v2/projects/{}/{path}", self.base, self.project)
    }

    async fn send(
        &self,
        operation: &'static str,
        resource: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<(u16, Value)> {
        let token = self.tokens.token().await?;
        let response = request.bearer_auth(token).send().await.map_err(|e| ExportError::Transient {
            operation,
            resource: resource.to_string(),
            message: e.to_string(),
        })?;
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        let body =
            if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
        Ok((status, body))
    }

    async fn call(&self, operation: &'static str, resource: &str, request: reqwest::RequestBuilder) -> Result<Value> {
        let (status, body) = self.send(operation, resource, request).await?;
        if !(200..300).contains(&status) {
            return Err(classify(operation, resource, status, &body));
        }
        Ok(body)
    }

    /// Whether a dataset exists (checked before anything is created in it: bqemulator answers a table insert into
    /// a missing dataset with a 500, where BigQuery answers 404).
    pub async fn dataset_exists(&self, dataset: &str) -> Result<bool> {
        let resource = format!("{}:{dataset}", self.project);
        let (status, body) =
            self.send("datasets.get", &resource, self.http.get(self.url(&format!("datasets/{dataset}")))).await?;
        match status {
            200..=299 => Ok(true),
            404 => Ok(false),
            _ => Err(classify("datasets.get", &resource, status, &body)),
        }
    }

    /// The table's metadata, or `None` if it does not exist.
    pub async fn get_table(&self, dataset: &str, table: &str) -> Result<Option<Value>> {
        let resource = format!("{}.{dataset}.{table}", self.project);
        let (status, body) = self
            .send("tables.get", &resource, self.http.get(self.url(&format!("datasets/{dataset}/tables/{table}"))))
            .await?;
        match status {
            200..=299 => Ok(Some(body)),
            404 => Ok(None),
            _ => Err(classify("tables.get", &resource, status, &body)),
        }
    }

    /// Creates a table with a schema (and day partitioning on `partition_field`); an existing one is left as is.
    pub async fn create_table(
        &self,
        dataset: &str,
        table: &str,
        schema: &Value,
        partition_field: Option<&str>,
    ) -> Result<()> {
        let resource = format!("{}.{dataset}.{table}", self.project);
        let mut body = json!({
            "tableReference": {"projectId": self.project, "datasetId": dataset, "tableId": table},
            "schema": {"fields": schema},
        });
        if let Some(field) = partition_field {
            body["timePartitioning"] = json!({"type": "DAY", "field": field});
        }
        let request = self.http.post(self.url(&format!("datasets/{dataset}/tables"))).json(&body);
        let (status, answer) = self.send("tables.insert", &resource, request).await?;
        match status {
            200..=299 | 409 => Ok(()),
            _ => Err(classify("tables.insert", &resource, status, &answer)),
        }
    }

    /// Deletes a table; a missing one is fine.
    pub async fn delete_table(&self, dataset: &str, table: &str) -> Result<()> {
        let resource = format!("{}.{dataset}.{table}", self.project);
        let request = self.http.delete(self.url(&format!("datasets/{dataset}/tables/{table}")));
        let (status, body) = self.send("tables.delete", &resource, request).await?;
        match status {
            200..=299 | 404 => Ok(()),
            _ => Err(classify("tables.delete", &resource, status, &body)),
        }
    }

    /// Loads newline-delimited JSON into a table (appending) with a load job by multipart upload, and waits for
    /// the job. `job_id` makes a retried load the same job.
    pub async fn load_json(
        &self,
        dataset: &str,
        table: &str,
        schema: &Value,
        job_id: &str,
        data: Vec<u8>,
    ) -> Result<()> {
        let resource = format!("{}.{dataset}.{table}", self.project);
        let job = json!({
            "jobReference": {"projectId": self.project, "jobId": job_id},
            "configuration": {"load": {
                "destinationTable": {"projectId": self.project, "datasetId": dataset, "tableId": table},
                "sourceFormat": "NEWLINE_DELIMITED_JSON",
                "writeDisposition": "WRITE_APPEND",
                "createDisposition": "CREATE_NEVER",
                "schema": {"fields": schema},
            }},
        });
        let boundary = format!("batch_exports_{}", uuid::Uuid::new_v4().simple());
        let mut body = format!(
            "--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n{job}\r\n--{boundary}\r\nContent-Type: application/octet-stream\r\n\r\n"
        )
        .into_bytes();
        body.extend_from_slice(&data);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let url = format!("{}/upload/bigquery/v2/projects/{}/jobs?uploadType=multipart", self.base, self.project);
        let request =
            self.http.post(url).header("Content-Type", format!("multipart/related; boundary={boundary}")).body(body);
        let (status, answer) = self.send("jobs.insert (load)", &resource, request).await?;
        match status {
            200..=299 => {}
            // The same job id again (a retried step): wait for that job.
            409 => {}
            _ => return Err(classify("jobs.insert (load)", &resource, status, &answer)),
        }
        self.wait_for_job("jobs.insert (load)", &resource, job_id, answer).await.map(|_| ())
    }

    /// Runs a query (standard SQL) and waits for it; returns the result rows as BigQuery returns them
    /// (`[{"f": [{"v": …}]}]`, timestamps as int64 microseconds).
    pub async fn query(&self, sql: &str, job_id: &str) -> Result<Vec<Value>> {
        let body = json!({
            "query": sql,
            "useLegacySql": false,
            // At most 36 characters: a UUID derived from the job id (a retried step sends the same one).
            "requestId": uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, job_id.as_bytes()).to_string(),
            "timeoutMs": 60_000,
            "formatOptions": {"useInt64Timestamp": true},
        });
        let resource = format!("query {}", sql.chars().take(80).collect::<String>());
        let answer = self.call("jobs.query", &resource, self.http.post(self.url("queries")).json(&body)).await?;
        // The emulator reports query errors in a 200 body.
        if answer["errors"].as_array().is_some_and(|e| !e.is_empty()) {
            return Err(classify("jobs.query", &resource, 400, &answer));
        }
        let mut answer = answer;
        while answer["jobComplete"] == false {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let id = answer["jobReference"]["jobId"].as_str().unwrap_or_default().to_string();
            answer =
                self.call("jobs.getQueryResults", &resource, self.http.get(self.url(&format!("queries/{id}")))).await?;
        }
        Ok(answer["rows"].as_array().cloned().unwrap_or_default())
    }

    async fn wait_for_job(
        &self,
        operation: &'static str,
        resource: &str,
        job_id: &str,
        mut job: Value,
    ) -> Result<Value> {
        loop {
            if job["status"]["state"] == "DONE" {
                if job["status"]["errorResult"].is_object() {
                    return Err(classify(operation, resource, 400, &job));
                }
                return Ok(job);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            job = self.call("jobs.get", resource, self.http.get(self.url(&format!("jobs/{job_id}")))).await?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_classified_by_reason_and_status() {
        let quota = json!({"error": {"errors": [{"reason": "quotaExceeded", "message": "Quota exceeded"}], "message": "Quota exceeded"}});
        assert!(classify("jobs.insert", "p.d.t", 403, &quota).is_retryable(), "quotaExceeded comes as 403");
        let rate = json!({"error": {"errors": [{"reason": "rateLimitExceeded"}], "message": "slow down"}});
        assert!(classify("jobs.insert", "p.d.t", 403, &rate).is_retryable());
        assert!(classify("jobs.insert", "p.d.t", 503, &json!({})).is_retryable());
        let denied = json!({"error": {"errors": [{"reason": "accessDenied"}], "message": "Access Denied: Table p:d.t: Permission bigquery.tables.updateData denied"}});
        let e = classify("jobs.insert", "p.d.t", 403, &denied);
        assert!(!e.is_retryable());
        assert!(e.to_string().contains("bigquery.tables.updateData"), "{e}");
        assert!(!classify("tables.get", "p.d.t", 404, &json!({"error": {"message": "Not found: Dataset p:d"}}))
            .is_retryable());
        assert!(!classify("jobs.query", "q", 400, &json!({"error": {"errors": [{"reason": "invalidQuery"}]}}))
            .is_retryable());
    }

    #[test]
    fn emulator_answers_are_read_like_bigquery_ones() {
        // bqemulator: a failed query is HTTP 200 with `errors`; a failed job carries `status.errorResult`.
        let query = json!({"jobComplete": true, "errors": [{"reason": "invalidQuery", "message": "Table not found"}]});
        let e = classify("jobs.query", "q", 400, &query);
        assert!(!e.is_retryable() && e.to_string().contains("Table not found"), "{e}");
        let job =
            json!({"status": {"state": "DONE", "errorResult": {"reason": "backendError", "message": "try again"}}});
        assert!(classify("jobs.get", "p.d.t", 400, &job).is_retryable());
    }
}
