//! The export of one run: the library entry point the Lambdas and the CLI call.
//!
//! [`export_events`] lists the lake objects of the interval, plans the rows (filters and repeated uuids), then
//! streams the rows through an encoder on a blocking thread while the async side uploads each file's parts as
//! they fill. Files are split at `max_file_size_mb`; when splitting is on, the manifest is written after every
//! file is complete (an empty interval writes no data file, and a manifest listing none). Errors stop the run:
//! an upload in progress is aborted and no manifest is written; files completed before the error stay and are
//! overwritten, key for key, when the run is retried.

use std::io::{self, Write};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc::{self, Receiver, Sender};

use crate::config::S3DestinationConfig;
use crate::encode::{new_encoder, Encoder, ParquetSettings};
use crate::error::{ExportError, Result};
use crate::keys::{data_file_key, manifest_key, KeyTemplate};
use crate::lake::dedupe::DedupeSettings;
use crate::lake::{plan_rows, read_rows, LakeStore, RowFilter};
use crate::model::{EventRow, Interval, Model};
use crate::plan::{split_into_chunks, ChunkLimits, ChunkPlan};
use crate::s3::{upload_file, FileMessage, PartBuffers, S3Target, UploadSettings, MIN_PART_SIZE_BYTES};

/// Tuning of the engine, from the environment (see the README for the variables and defaults).
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// Rows per batch read from the lake and handed to the encoder.
    pub batch_size: usize,
    pub upload: UploadSettings,
    pub parquet: ParquetSettings,
    pub dedupe: DedupeSettings,
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            batch_size: 8192,
            upload: UploadSettings::default(),
            parquet: ParquetSettings::default(),
            dedupe: DedupeSettings::default(),
        }
    }
}

impl EngineSettings {
    pub fn validate(&self) -> Result<()> {
        if self.upload.part_size < MIN_PART_SIZE_BYTES {
            return Err(ExportError::config(
                "BATCH_EXPORT_PART_SIZE_MB",
                "must be at least 5 (S3's minimum part size)",
            ));
        }
        for (name, value) in [
            ("BATCH_EXPORT_BATCH_SIZE", self.batch_size),
            ("BATCH_EXPORT_MAX_PARTS_IN_FLIGHT", self.upload.max_parts_in_flight),
            ("BATCH_EXPORT_ROW_GROUP_MB", self.parquet.max_row_group_bytes),
            ("BATCH_EXPORT_DEDUPE_BUFFER_ROWS", self.dedupe.buffer_rows),
        ] {
            if value == 0 {
                return Err(ExportError::config(name, "must be greater than 0"));
            }
        }
        Ok(())
    }
}

/// Where a run's files go.
#[derive(Debug, Clone)]
pub enum FileSink {
    S3(S3Target),
    /// Counts the bytes and keeps nothing: the benchmark's way to measure the engine without a network.
    Discard,
}

impl FileSink {
    async fn put(&self, key: &str, body: Bytes) -> Result<()> {
        match self {
            FileSink::S3(target) => target.put(key, body).await,
            FileSink::Discard => Ok(()),
        }
    }
}

/// One file a run wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrittenFile {
    pub key: String,
    pub bytes: u64,
    pub records: u64,
}

/// What a run exported.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportOutcome {
    pub records: u64,
    /// Bytes of the data files (the manifest not included).
    pub bytes: u64,
    pub files: Vec<WrittenFile>,
    pub manifest_key: Option<String>,
}

impl ExportOutcome {
    pub fn new(files: Vec<WrittenFile>, manifest_key: Option<String>) -> Self {
        ExportOutcome {
            records: files.iter().map(|f| f.records).sum(),
            bytes: files.iter().map(|f| f.bytes).sum(),
            files,
            manifest_key,
        }
    }

    pub fn keys(&self) -> Vec<&str> {
        self.files.iter().map(|f| f.key.as_str()).collect()
    }
}

/// Exports the events of `team_id` in `interval` from the lake to the destination, in one process: plans the
/// rows, writes them as one chunk, then the manifest. (On Step Functions the same steps run as separate Lambdas,
/// with the interval split into chunks: see [`crate::steps`].)
pub async fn export_events(
    lake: &LakeStore,
    sink: &FileSink,
    team_id: i64,
    interval: Interval,
    config: &S3DestinationConfig,
    settings: &EngineSettings,
) -> Result<ExportOutcome> {
    config.validate()?;
    settings.validate()?;
    let filter = RowFilter::new(team_id, interval, &config.include_events, &config.exclude_events);
    let chunks = plan_chunks(lake, &filter, settings, None).await?;
    let mut files = Vec::new();
    for chunk in &chunks {
        files.extend(export_chunk(lake, sink, &filter, chunk, config, settings).await?);
    }
    let manifest_key = write_manifest(sink, interval, Model::Events, config, &files).await?;
    Ok(ExportOutcome::new(files, manifest_key))
}

/// Lists the lake objects of the filter's interval, plans the rows (filters and repeated uuids) and splits them
/// into chunks (`limits` is `None` for a single chunk).
pub async fn plan_chunks(
    lake: &LakeStore,
    filter: &RowFilter,
    settings: &EngineSettings,
    limits: Option<ChunkLimits>,
) -> Result<Vec<ChunkPlan>> {
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
        "planned run"
    );
    Ok(split_into_chunks(objects, plan, limits))
}

/// Reads one chunk's rows from the lake and writes its files (no manifest).
pub async fn export_chunk(
    lake: &LakeStore,
    sink: &FileSink,
    filter: &RowFilter,
    chunk: &ChunkPlan,
    config: &S3DestinationConfig,
    settings: &EngineSettings,
) -> Result<Vec<WrittenFile>> {
    let (lake, objects, filter_owned, rows) = (lake.clone(), chunk.objects.clone(), filter.clone(), chunk.rows.clone());
    let batch_size = settings.batch_size;
    let source = move |on_batch: &mut dyn FnMut(&[EventRow]) -> Result<()>| {
        read_rows(&lake, &objects, &filter_owned, &rows, batch_size, on_batch).map(|_| ())
    };
    write_files(source, sink, filter.interval, config, settings, chunk.file_label()).await
}

/// Runs a blocking closure on Tokio's blocking pool.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| ExportError::Internal(format!("blocking task: {e}")))?
}

/// Encodes the rows that `source` produces into files and writes them; `chunk` goes into the file names when
/// the run has several chunks. `source` runs on a blocking thread and calls its argument with each batch.
pub async fn write_files<S>(
    source: S,
    sink: &FileSink,
    interval: Interval,
    config: &S3DestinationConfig,
    settings: &EngineSettings,
    chunk: Option<usize>,
) -> Result<Vec<WrittenFile>>
where
    S: FnOnce(&mut dyn FnMut(&[EventRow]) -> Result<()>) -> Result<()> + Send + 'static,
{
    config.validate()?;
    let prefix = KeyTemplate::parse(&config.prefix)?.render(&interval, Model::Events);
    // One queued part: with the part being filled and one spare buffer, memory stays at most at
    // (parts in flight + 3) × part size, whatever the file size.
    let (tx, rx) = mpsc::channel(1);
    let buffers = PartBuffers::default();
    let encoding = {
        let (config, settings, buffers) = (config.clone(), settings.clone(), buffers.clone());
        let naming = FileNaming { prefix, interval, chunk };
        tokio::task::spawn_blocking(move || encode_files(source, tx, buffers, &naming, &config, &settings))
    };
    let uploaded = receive_files(sink, rx, &settings.upload, &buffers).await;
    let encoded = encoding.await.map_err(|e| ExportError::Internal(format!("encoding task: {e}")))?;
    // An upload failure stops the encoder (its channel closes), so the upload's error is the cause.
    let files = uploaded?;
    encoded?;
    Ok(files)
}

/// The key of a run's manifest: one when the config splits files, none otherwise.
pub fn manifest_key_of(interval: Interval, model: Model, config: &S3DestinationConfig) -> Result<Option<String>> {
    if config.max_file_size_bytes().is_none() {
        return Ok(None);
    }
    let prefix = KeyTemplate::parse(&config.prefix)?.render(&interval, model);
    Ok(Some(manifest_key(&prefix, &interval)))
}

/// Writes the manifest `{"files": [...]}` listing `files` when the config splits files; returns its key.
/// Call only once every file of the run is complete.
pub async fn write_manifest(
    sink: &FileSink,
    interval: Interval,
    model: Model,
    config: &S3DestinationConfig,
    files: &[WrittenFile],
) -> Result<Option<String>> {
    let Some(key) = manifest_key_of(interval, model, config)? else { return Ok(None) };
    let manifest = serde_json::json!({ "files": files.iter().map(|f| &f.key).collect::<Vec<_>>() });
    sink.put(&key, Bytes::from(manifest.to_string())).await?;
    Ok(Some(key))
}

/// The async side: writes each file the encoder streams.
async fn receive_files(
    sink: &FileSink,
    mut rx: Receiver<FileMessage>,
    upload: &UploadSettings,
    buffers: &PartBuffers,
) -> Result<Vec<WrittenFile>> {
    let mut files = Vec::new();
    while let Some(message) = rx.recv().await {
        let FileMessage::Begin { key } = message else {
            return Err(ExportError::Internal("file data outside a file".into()));
        };
        let written = match sink {
            FileSink::S3(target) => upload_file(target, &key, &mut rx, upload, buffers).await?,
            FileSink::Discard => discard_file(&mut rx, buffers).await,
        };
        match written {
            Some((bytes, records)) => files.push(WrittenFile { key, bytes, records }),
            None => break,
        }
    }
    Ok(files)
}

async fn discard_file(rx: &mut Receiver<FileMessage>, buffers: &PartBuffers) -> Option<(u64, u64)> {
    let mut bytes = 0;
    while let Some(message) = rx.recv().await {
        match message {
            FileMessage::Part(part) => {
                bytes += part.len() as u64;
                buffers.give_back(part);
            }
            FileMessage::End { tail, records } => return Some((bytes + tail.len() as u64, records)),
            FileMessage::Begin { .. } => return None,
        }
    }
    None
}

/// The blocking side: encodes rows into files, split at the size limit, and streams their bytes.
/// How the files of one `write_files` call are named.
struct FileNaming {
    prefix: String,
    interval: Interval,
    chunk: Option<usize>,
}

fn encode_files<S>(
    source: S,
    tx: Sender<FileMessage>,
    buffers: PartBuffers,
    naming: &FileNaming,
    config: &S3DestinationConfig,
    settings: &EngineSettings,
) -> Result<()>
where
    S: FnOnce(&mut dyn FnMut(&[EventRow]) -> Result<()>) -> Result<()>,
{
    let split = config.max_file_size_bytes();
    // With splitting on, the size is checked every `SPLIT_CHECK_ROWS` rows, so files end slightly above the limit.
    const SPLIT_CHECK_ROWS: usize = 1024;
    let mut current: Option<(Box<dyn Encoder<PartWriter>>, u64)> = None;
    let mut file_n = 0usize;
    let mut on_batch = |batch: &[EventRow]| -> Result<()> {
        let step = if split.is_some() { SPLIT_CHECK_ROWS } else { batch.len().max(1) };
        for rows in batch.chunks(step) {
            let (encoder, records) = match &mut current {
                Some(open) => open,
                None => {
                    let key = data_file_key(
                        &naming.prefix,
                        &naming.interval,
                        naming.chunk,
                        split.map(|_| file_n),
                        config.file_format,
                        config.compression,
                    );
                    send(&tx, FileMessage::Begin { key })?;
                    let out = PartWriter::new(tx.clone(), buffers.clone(), settings.upload.part_size);
                    let encoder = new_encoder(config.file_format, config.compression, &settings.parquet, out)?;
                    current.insert((encoder, 0))
                }
            };
            encoder.write_batch(rows)?;
            *records += rows.len() as u64;
            // The estimate may count buffered data at its uncompressed size; settle before splitting on it.
            if let Some(max) = split.filter(|max| encoder.size_estimate() >= *max) {
                if encoder.settle()? < max {
                    continue;
                }
                let (encoder, records) = current.take().expect("a file is open");
                encoder.finish()?.end(records)?;
                file_n += 1;
            }
        }
        Ok(())
    };
    source(&mut on_batch)?;
    if let Some((encoder, records)) = current.take() {
        encoder.finish()?.end(records)?;
    }
    Ok(())
}

fn send(tx: &Sender<FileMessage>, message: FileMessage) -> Result<()> {
    tx.blocking_send(message).map_err(|_| ExportError::Internal("the upload stopped".into()))
}

/// Collects encoded bytes into parts of `part_size` and sends each full part to the uploader.
struct PartWriter {
    tx: Sender<FileMessage>,
    buffers: PartBuffers,
    buffer: Vec<u8>,
    part_size: usize,
}

impl PartWriter {
    fn new(tx: Sender<FileMessage>, buffers: PartBuffers, part_size: usize) -> Self {
        PartWriter { tx, buffers, buffer: Vec::new(), part_size }
    }

    /// Sends the rest of the file.
    fn end(self, records: u64) -> Result<()> {
        send(&self.tx, FileMessage::End { tail: Bytes::from(self.buffer), records })
    }
}

impl Write for PartWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.buffer.capacity() == 0 {
            self.buffer = self.buffers.take(self.part_size);
        }
        let room = self.part_size - self.buffer.len();
        let n = buf.len().min(room);
        self.buffer.extend_from_slice(&buf[..n]);
        if self.buffer.len() >= self.part_size {
            let part = Bytes::from(std::mem::take(&mut self.buffer));
            self.tx
                .blocking_send(FileMessage::Part(part))
                .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the upload stopped"))?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Compression, FileFormat};
    use crate::synthetic::SyntheticEvents;

    fn interval() -> Interval {
        Interval::parse("2024-03-01T10:00:00Z", "2024-03-01T11:00:00Z").unwrap()
    }

    async fn run(config: &S3DestinationConfig, n: usize) -> ExportOutcome {
        let rows = SyntheticEvents::new(7, 1).events_between(interval().start, chrono::Duration::hours(1), n);
        let source =
            move |on_batch: &mut dyn FnMut(&[EventRow]) -> Result<()>| rows.chunks(3000).try_for_each(&mut *on_batch);
        let files = write_files(source, &FileSink::Discard, interval(), config, &EngineSettings::default(), None)
            .await
            .unwrap();
        let manifest = write_manifest(&FileSink::Discard, interval(), Model::Events, config, &files).await.unwrap();
        ExportOutcome::new(files, manifest)
    }

    #[tokio::test]
    async fn files_split_just_above_the_limit() {
        for (format, compression) in [(FileFormat::JSONLines, None), (FileFormat::Parquet, Some(Compression::Zstd))] {
            let mut config = S3DestinationConfig::new("bucket");
            config.file_format = format;
            config.compression = compression;
            config.max_file_size_mb = Some(1);
            config.prefix = "p/".into();
            let n = if format == FileFormat::Parquet { 40_000 } else { 6000 };
            let out = run(&config, n).await;
            let limit = 1024 * 1024;
            assert!(out.files.len() >= 3, "{format:?}: {} files", out.files.len());
            let (last, full) = out.files.split_last().unwrap();
            for f in full {
                assert!(f.bytes >= limit, "{format:?}: {} is below the limit", f.bytes);
                // One size check covers 1024 rows of ~1.1 KB before compression.
                assert!(f.bytes < limit + 1024 * 1300, "{format:?}: {} is far above the limit", f.bytes);
            }
            assert!(last.bytes > 0);
            assert_eq!(out.records, n as u64);
            let names: Vec<String> = (0..out.files.len())
                .map(|i| data_file_key("p/", &interval(), None, Some(i), format, compression))
                .collect();
            assert_eq!(out.keys(), names.iter().map(String::as_str).collect::<Vec<_>>());
            assert_eq!(out.manifest_key.as_deref(), Some(manifest_key("p/", &interval()).as_str()));
        }
    }

    #[tokio::test]
    async fn no_splitting_without_a_limit() {
        let out = run(&S3DestinationConfig::new("bucket"), 6000).await;
        assert_eq!(out.files.len(), 1);
        assert_eq!(out.files[0].key, data_file_key("", &interval(), None, None, FileFormat::JSONLines, None));
        assert!(out.files[0].bytes > 6000 * 900, "{}", out.files[0].bytes);
        assert_eq!(out.manifest_key, None);
    }

    #[tokio::test]
    async fn an_empty_interval_writes_no_file_but_a_manifest_when_splitting() {
        let mut config = S3DestinationConfig::new("bucket");
        assert!(run(&config, 0).await.files.is_empty());
        config.max_file_size_mb = Some(10);
        let out = run(&config, 0).await;
        assert!(out.files.is_empty());
        assert!(out.manifest_key.is_some());
    }

    #[test]
    fn settings_from_the_environment_are_validated() {
        let mut s = EngineSettings::default();
        s.upload.part_size = 4 << 20;
        let e = s.validate().unwrap_err().to_string();
        assert!(e.contains("BATCH_EXPORT_PART_SIZE_MB"), "{e}");
        let mut s = EngineSettings::default();
        s.batch_size = 0;
        assert!(s.validate().unwrap_err().to_string().contains("BATCH_EXPORT_BATCH_SIZE"));
    }
}
