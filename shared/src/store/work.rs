//! The run's work area (an S3 prefix) where a run keeps its chunk plans and results between steps, so that step
//! payloads stay small ids and counts.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::aws_error::classify_sdk_error;
use crate::engine::chunks::ChunkPlan;
use crate::error::{ExportError, InternalContext, Result};
use crate::runs::{ExportOutcome, RunRef, WrittenFile};

/// Where runs keep their working state: `s3://{bucket}/{prefix}{export_id}/{run_id}/attempt-{n}/`, holding
/// `chunk-{i}/plan.json`, `chunk-{i}/files.json` and `outcome.json`. Nothing in it is secret.
#[derive(Debug, Clone)]
pub struct WorkStore {
    pub client: aws_sdk_s3::Client,
    pub bucket: String,
    pub prefix: String,
}

impl WorkStore {
    fn key(&self, run: &RunRef, name: &str) -> String {
        format!("{}{}/{}/attempt-{}/{name}", self.prefix, run.export_id, run.run_id, run.attempt)
    }

    async fn put_json<T: Serialize>(&self, run: &RunRef, name: &str, value: &T) -> Result<()> {
        let key = self.key(run, name);
        let body = serde_json::to_vec(value).internal(format!("encoding {key}"))?;
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(&key)
            .content_type("application/json")
            .body(body.into())
            .send()
            .await
            .map_err(|e| classify_sdk_error(e, "PutObject", &format!("{}/{key}", self.bucket), None))?;
        Ok(())
    }

    async fn get_json<T: DeserializeOwned>(&self, run: &RunRef, name: &str) -> Result<T> {
        let key = self.key(run, name);
        let resource = format!("{}/{key}", self.bucket);
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&key)
            .send()
            .await
            .map_err(|e| classify_sdk_error(e, "GetObject", &resource, None))?;
        let body = out.body.collect().await.map_err(|e| ExportError::Transient {
            operation: "GetObject",
            resource: resource.clone(),
            message: e.to_string(),
        })?;
        serde_json::from_slice(&body.into_bytes()).internal(format!("decoding {resource}"))
    }

    pub async fn save_chunk_plan(&self, run: &RunRef, chunk: &ChunkPlan) -> Result<()> {
        self.put_json(run, &format!("chunk-{}/plan.json", chunk.index), chunk).await
    }

    pub async fn load_chunk_plan(&self, run: &RunRef, chunk: usize) -> Result<ChunkPlan> {
        self.get_json(run, &format!("chunk-{chunk}/plan.json")).await
    }

    pub async fn save_chunk_files(&self, run: &RunRef, chunk: usize, files: &[WrittenFile]) -> Result<()> {
        self.put_json(run, &format!("chunk-{chunk}/files.json"), &files).await
    }

    pub async fn load_chunk_files(&self, run: &RunRef, chunk: usize) -> Result<Vec<WrittenFile>> {
        self.get_json(run, &format!("chunk-{chunk}/files.json")).await
    }

    pub async fn save_outcome(&self, run: &RunRef, outcome: &ExportOutcome) -> Result<()> {
        self.put_json(run, "outcome.json", outcome).await
    }

    pub async fn load_outcome(&self, run: &RunRef) -> Result<ExportOutcome> {
        self.get_json(run, "outcome.json").await
    }
}
