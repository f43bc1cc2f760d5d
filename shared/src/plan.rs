//! Run plans: the lake rows a run exports, split into chunks that one Lambda invocation each exports, and the
//! work area (an S3 prefix) where a run keeps its plan and chunk results between steps, so that step payloads
//! stay small ids and counts.
//!
//! Chunks are runs of whole lake objects, in key order, closed before the next object would take them past
//! `max_rows` kept rows or `max_bytes` of lake objects (an object larger than a chunk is a chunk of its own).
//! Repeated uuids are found over the whole interval by the planning pass, so de-duplication holds across
//! chunks. Files are split only when `max_file_size_mb` is set; without it the reference writes one file per
//! run, so such a run is one chunk.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::aws_error::classify_sdk_error;
use crate::error::{ExportError, Result};
use crate::export::{ExportOutcome, WrittenFile};
use crate::lake::{LakeObject, RowPlan};
use crate::runs::RunRef;

/// How large a chunk may grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkLimits {
    /// Rows kept by the filters (before de-duplication).
    pub max_rows: u64,
    /// Bytes of lake objects, as stored.
    pub max_bytes: u64,
}

impl Default for ChunkLimits {
    fn default() -> Self {
        ChunkLimits { max_rows: 10_000_000, max_bytes: 2048 << 20 }
    }
}

/// One chunk: the lake objects it reads and which of their rows it skips as repeats.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkPlan {
    pub index: usize,
    /// Whether the run has more than one chunk: then the chunk's files carry its index in their names.
    pub of_many: bool,
    pub objects: Vec<LakeObject>,
    /// Duplicates are ordinals among this chunk's kept rows.
    pub rows: RowPlan,
}

impl ChunkPlan {
    /// The chunk index that goes into file names, if any.
    pub fn file_label(&self) -> Option<usize> {
        self.of_many.then_some(self.index)
    }
}

/// Splits a planned interval into chunks; `limits` is `None` when the run must be one chunk.
pub fn split_into_chunks(objects: Vec<LakeObject>, plan: RowPlan, limits: Option<ChunkLimits>) -> Vec<ChunkPlan> {
    let limits = limits.unwrap_or(ChunkLimits { max_rows: u64::MAX, max_bytes: u64::MAX });
    let mut chunks: Vec<ChunkPlan> = Vec::new();
    let mut duplicates = plan.duplicates.iter().copied().peekable();
    let mut base = 0u64; // ordinal of the first kept row of the current chunk
    let (mut rows, mut bytes) = (0u64, 0u64);
    let mut current = ChunkPlan { index: 0, of_many: false, objects: Vec::new(), rows: RowPlan::default() };
    let close = |current: &mut ChunkPlan,
                 chunks: &mut Vec<ChunkPlan>,
                 base: &mut u64,
                 duplicates: &mut std::iter::Peekable<_>| {
        let kept: u64 = current.rows.kept_per_object.iter().sum();
        let end = *base + kept;
        let mut own = Vec::new();
        while let Some(d) = duplicates.next_if(|d: &u64| *d < end) {
            own.push(d - *base);
        }
        current.rows.records = kept - own.len() as u64;
        current.rows.duplicates = own;
        current.index = chunks.len();
        *base = end;
        chunks.push(std::mem::replace(
            current,
            ChunkPlan { index: 0, of_many: false, objects: Vec::new(), rows: RowPlan::default() },
        ));
    };
    for (object, kept) in objects.into_iter().zip(plan.kept_per_object) {
        if kept == 0 {
            continue;
        }
        if !current.objects.is_empty()
            && (rows.saturating_add(kept) > limits.max_rows || bytes.saturating_add(object.size) > limits.max_bytes)
        {
            close(&mut current, &mut chunks, &mut base, &mut duplicates);
            (rows, bytes) = (0, 0);
        }
        rows += kept;
        bytes += object.size;
        current.objects.push(object);
        current.rows.kept_per_object.push(kept);
    }
    if !current.objects.is_empty() {
        close(&mut current, &mut chunks, &mut base, &mut duplicates);
    }
    let many = chunks.len() > 1;
    for chunk in &mut chunks {
        chunk.of_many = many;
    }
    chunks
}

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
        let body = serde_json::to_vec(value).map_err(|e| ExportError::Internal(format!("encoding {key}: {e}")))?;
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
        serde_json::from_slice(&body.into_bytes())
            .map_err(|e| ExportError::Internal(format!("decoding {resource}: {e}")))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lake::LakeFormat;

    fn object(i: usize, size: u64) -> LakeObject {
        LakeObject { key: format!("o{i}"), size, etag: None, format: LakeFormat::Parquet, partition_start: 0 }
    }

    #[test]
    fn chunks_close_at_row_and_byte_limits_and_own_their_duplicates() {
        let objects = (0..6).map(|i| object(i, 100)).collect();
        // Kept rows per object: 40, 0, 40, 40, 30, 10; repeats at ordinals 5 (object 0), 45 (object 2),
        // 85 and 119 (objects 3 and 4).
        let plan =
            RowPlan { records: 156, kept_per_object: vec![40, 0, 40, 40, 30, 10], duplicates: vec![5, 45, 85, 119] };
        let chunks = split_into_chunks(objects, plan, Some(ChunkLimits { max_rows: 80, max_bytes: 10_000 }));
        let shape: Vec<(Vec<&str>, u64, Vec<u64>)> = chunks
            .iter()
            .map(|c| (c.objects.iter().map(|o| o.key.as_str()).collect(), c.rows.records, c.rows.duplicates.clone()))
            .collect();
        assert_eq!(shape, vec![(vec!["o0", "o2"], 78, vec![5, 45]), (vec!["o3", "o4", "o5"], 78, vec![5, 39]),]);
        assert!(chunks.iter().all(|c| c.of_many));
        assert_eq!(chunks.iter().map(|c| c.file_label()).collect::<Vec<_>>(), [Some(0), Some(1)]);

        let by_bytes = split_into_chunks(
            (0..3).map(|i| object(i, 600)).collect(),
            RowPlan { records: 3, kept_per_object: vec![1, 1, 1], duplicates: vec![] },
            Some(ChunkLimits { max_rows: 100, max_bytes: 1000 }),
        );
        assert_eq!(by_bytes.len(), 3, "an object larger than half the byte limit fills a chunk");
    }

    #[test]
    fn one_chunk_without_limits_and_none_for_an_empty_interval() {
        let objects: Vec<_> = (0..3).map(|i| object(i, 1 << 40)).collect();
        let plan = RowPlan { records: 29, kept_per_object: vec![10, 10, 10], duplicates: vec![12] };
        let chunks = split_into_chunks(objects.clone(), plan, None);
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].rows.records, 29);
        assert_eq!(chunks[0].file_label(), None);
        let empty = RowPlan { records: 0, kept_per_object: vec![0, 0, 0], duplicates: vec![] };
        assert!(split_into_chunks(objects, empty, Some(ChunkLimits::default())).is_empty());
    }
}
