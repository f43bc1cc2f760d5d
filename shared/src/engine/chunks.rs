//! Chunks: a run's lake rows, planned (filters and repeated uuids over the whole interval) and split into chunks
//! that one Lambda invocation each exports.
//!
//! Chunks are runs of whole lake objects, in key order, closed before the next object would take them past
//! `max_rows` kept rows or `max_bytes` of lake objects (an object larger than a chunk is a chunk of its own).
//! Repeated uuids are found over the whole interval by the planning pass, so de-duplication holds across
//! chunks. Files are split only when `max_file_size_mb` is set; without it the reference writes one file per
//! run, so such a run is one chunk.

use serde::{Deserialize, Serialize};

use super::pipeline::{write_files, FileSpec};
use super::sink::FileSink;
use super::EngineSettings;
use crate::error::{InternalContext, Result};
use crate::event::EventRow;
use crate::runs::WrittenFile;
use crate::sources::lake::{plan_rows, read_rows, LakeObject, LakeStore, RowFilter, RowPlan};

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

/// Lists the lake objects of the filter's interval, plans the rows (filters and repeated uuids) and splits them
/// into chunks (`limits` is `None` for a single chunk).
pub async fn plan_chunks(
    lake: &LakeStore,
    filter: &RowFilter,
    settings: &EngineSettings,
    limits: Option<ChunkLimits>,
) -> Result<Vec<ChunkPlan>> {
    let started = std::time::Instant::now();
    let objects = lake.list(filter.team_id, &filter.interval).await?;
    let plan = {
        let (lake, objects, filter, dedupe) = (lake.clone(), objects.clone(), filter.clone(), settings.dedupe.clone());
        blocking(move || plan_rows(&lake, &objects, &filter, &dedupe)).await?
    };
    tracing::info!(
        team_id = filter.team_id,
        objects = objects.len(),
        records = plan.records,
        repeats = plan.duplicates.len(),
        seconds = started.elapsed().as_secs_f64(),
        "planned run"
    );
    Ok(split_into_chunks(objects, plan, limits))
}

/// Reads one chunk's rows from the lake and writes them as the files `spec` describes (the destination names
/// them after [`ChunkPlan::file_label`]).
pub async fn write_chunk(
    lake: &LakeStore,
    sink: &impl FileSink,
    filter: &RowFilter,
    chunk: &ChunkPlan,
    spec: &FileSpec,
    settings: &EngineSettings,
) -> Result<Vec<WrittenFile>> {
    let (lake, objects, filter_owned, rows) = (lake.clone(), chunk.objects.clone(), filter.clone(), chunk.rows.clone());
    let batch_size = settings.batch_size;
    let source = move |on_batch: &mut dyn FnMut(&[EventRow]) -> Result<()>| {
        read_rows(&lake, &objects, &filter_owned, &rows, batch_size, on_batch).map(|_| ())
    };
    write_files(source, sink, spec, settings).await
}

/// Runs a blocking closure on Tokio's blocking pool.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await.internal("blocking task")?
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::lake::LakeFormat;

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
