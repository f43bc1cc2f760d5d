//! The sink seam the engine owns: what a destination implements to receive the engine's files ([`FileSink`]),
//! and the messages a file's bytes arrive in. The engine encodes on a blocking thread and streams each file as
//! parts of `part_size` bytes; the sink writes them (S3: a multipart upload, see `destinations::s3`).

use std::future::Future;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::mpsc::Receiver;

use crate::error::Result;

/// Part sizing and concurrency of multipart uploads.
#[derive(Debug, Clone)]
pub struct UploadSettings {
    /// Bytes per part (S3's minimum of 5 MiB applies to every part but the last).
    pub part_size: usize,
    /// Parts uploading at once per file.
    pub max_parts_in_flight: usize,
}

pub const MIN_PART_SIZE_BYTES: usize = 5 * 1024 * 1024;

impl Default for UploadSettings {
    fn default() -> Self {
        UploadSettings { part_size: 50 * 1024 * 1024, max_parts_in_flight: 5 }
    }
}

/// What the encoding thread sends for one file: parts of `part_size` bytes, then the rest.
#[derive(Debug)]
pub enum FileMessage {
    Begin { key: String },
    Part(Bytes),
    End { tail: Bytes, records: u64 },
}

/// Part buffers handed back once their part is written, so the next part reuses the memory instead of
/// faulting in a fresh `part_size` allocation. Holds at most `MAX_SPARE` buffers.
#[derive(Debug, Clone, Default)]
pub struct PartBuffers(Arc<Mutex<Vec<Vec<u8>>>>);

impl PartBuffers {
    const MAX_SPARE: usize = 1;

    /// An empty buffer with room for `capacity` bytes.
    pub fn take(&self, capacity: usize) -> Vec<u8> {
        let spare = self.0.lock().expect("part buffers").pop();
        match spare {
            Some(buffer) if buffer.capacity() >= capacity => buffer,
            _ => Vec::with_capacity(capacity),
        }
    }

    /// Keeps a written part's memory for reuse, if nothing else holds it.
    pub fn give_back(&self, part: Bytes) {
        if !part.is_unique() {
            return;
        }
        let mut buffer = Vec::from(part);
        buffer.clear();
        let mut spare = self.0.lock().expect("part buffers");
        if spare.len() < Self::MAX_SPARE {
            spare.push(buffer);
        }
    }
}

/// Where the engine's files go: the one seam a destination implements.
pub trait FileSink: Sync {
    /// Puts a whole object in one request (a manifest, a small file).
    fn put(&self, key: &str, body: Bytes) -> impl Future<Output = Result<()>> + Send;

    /// Writes the file a [`FileMessage::Begin`] opened, from the parts that follow on `parts` (returning the
    /// emptied part buffers to `buffers`). Returns `(bytes, records)` once the file exists, or `None` if the
    /// stream ended before [`FileMessage::End`] (the encoder failed); a failure leaves no partial file.
    fn write_file(
        &self,
        key: &str,
        parts: &mut Receiver<FileMessage>,
        settings: &UploadSettings,
        buffers: &PartBuffers,
    ) -> impl Future<Output = Result<Option<(u64, u64)>>> + Send;
}

/// Counts the bytes and keeps nothing: the benchmark's way to measure the engine without a network.
#[derive(Debug, Clone, Copy, Default)]
pub struct DiscardSink;

impl FileSink for DiscardSink {
    async fn put(&self, _key: &str, _body: Bytes) -> Result<()> {
        Ok(())
    }

    async fn write_file(
        &self,
        _key: &str,
        parts: &mut Receiver<FileMessage>,
        _settings: &UploadSettings,
        buffers: &PartBuffers,
    ) -> Result<Option<(u64, u64)>> {
        let mut bytes = 0;
        while let Some(message) = parts.recv().await {
            match message {
                FileMessage::Part(part) => {
                    bytes += part.len() as u64;
                    buffers.give_back(part);
                }
                FileMessage::End { tail, records } => return Ok(Some((bytes + tail.len() as u64, records))),
                FileMessage::Begin { .. } => return Ok(None),
            }
        }
        Ok(None)
    }
}
