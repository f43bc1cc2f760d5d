//! Rows → encoded files → the sink: the rows a source produces are encoded on a blocking thread (one
//! [`Encoder`] per file, split at the destination's size limit) while the async side hands each file's parts to
//! the sink as they fill, so memory stays bounded however large the interval. Errors stop the run: the file in
//! progress is not completed, and files completed before the error are written again, key for key, when the
//! run is retried.

use std::io::{self, Write};
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc::{self, Receiver, Sender};

use super::encode::{new_encoder, Encoder, ExportRow};
use super::sink::{FileMessage, FileSink, PartBuffers, UploadSettings};
use super::EngineSettings;
use crate::error::{ExportError, InternalContext, Result};
use crate::format::{Compression, FileFormat};
use crate::runs::WrittenFile;

/// What files the engine writes for one chunk, as the destination wants them.
#[derive(Clone)]
pub struct FileSpec {
    pub format: FileFormat,
    pub compression: Option<Compression>,
    /// A new file starts once one passes this many bytes; `None`: one file.
    pub max_file_bytes: Option<u64>,
    /// The key of file `n` (`None` when files are not split).
    pub key: Arc<dyn Fn(Option<usize>) -> String + Send + Sync>,
}

impl std::fmt::Debug for FileSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileSpec")
            .field("format", &self.format)
            .field("compression", &self.compression)
            .field("max_file_bytes", &self.max_file_bytes)
            .field("first_key", &(self.key)(self.max_file_bytes.map(|_| 0)))
            .finish()
    }
}

/// Encodes the rows that `source` produces into the files `spec` describes and writes them to `sink`.
/// `source` runs on a blocking thread and calls its argument with each batch.
pub async fn write_files<S, R: ExportRow>(
    source: S,
    sink: &impl FileSink,
    spec: &FileSpec,
    settings: &EngineSettings,
) -> Result<Vec<WrittenFile>>
where
    S: FnOnce(&mut dyn FnMut(&[R]) -> Result<()>) -> Result<()> + Send + 'static,
{
    // One queued part: with the part being filled and one spare buffer, memory stays at most at
    // (parts in flight + 3) × part size, whatever the file size.
    let (tx, rx) = mpsc::channel(1);
    let buffers = PartBuffers::default();
    let encoding = {
        let (spec, settings, buffers) = (spec.clone(), settings.clone(), buffers.clone());
        tokio::task::spawn_blocking(move || encode_files(source, tx, buffers, &spec, &settings))
    };
    let uploaded = receive_files(sink, rx, &settings.upload, &buffers).await;
    let encoded = encoding.await.internal("encoding task")?;
    // An upload failure stops the encoder (its channel closes), so the upload's error is the cause.
    let files = uploaded?;
    encoded?;
    Ok(files)
}

/// The async side: writes each file the encoder streams.
async fn receive_files(
    sink: &impl FileSink,
    mut rx: Receiver<FileMessage>,
    upload: &UploadSettings,
    buffers: &PartBuffers,
) -> Result<Vec<WrittenFile>> {
    let mut files = Vec::new();
    while let Some(message) = rx.recv().await {
        let FileMessage::Begin { key } = message else {
            return Err(ExportError::internal("file data outside a file"));
        };
        match sink.write_file(&key, &mut rx, upload, buffers).await? {
            Some((bytes, records)) => files.push(WrittenFile { key, bytes, records }),
            None => break,
        }
    }
    Ok(files)
}

/// The blocking side: encodes rows into files, split at the size limit, and streams their bytes.
fn encode_files<S, R: ExportRow>(
    source: S,
    tx: Sender<FileMessage>,
    buffers: PartBuffers,
    spec: &FileSpec,
    settings: &EngineSettings,
) -> Result<()>
where
    S: FnOnce(&mut dyn FnMut(&[R]) -> Result<()>) -> Result<()>,
{
    let split = spec.max_file_bytes;
    // With splitting on, the size is checked every `SPLIT_CHECK_ROWS` rows, so files end slightly above the limit.
    const SPLIT_CHECK_ROWS: usize = 1024;
    let mut current: Option<(Box<dyn Encoder<PartWriter, R>>, u64)> = None;
    let mut file_n = 0usize;
    let mut on_batch = |batch: &[R]| -> Result<()> {
        let step = if split.is_some() { SPLIT_CHECK_ROWS } else { batch.len().max(1) };
        for rows in batch.chunks(step) {
            let (encoder, records) = match &mut current {
                Some(open) => open,
                None => {
                    let key = (spec.key)(split.map(|_| file_n));
                    send(&tx, FileMessage::Begin { key })?;
                    let out = PartWriter::new(tx.clone(), buffers.clone(), settings.upload.part_size);
                    let encoder = new_encoder(spec.format, spec.compression, &settings.parquet, out)?;
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
    tx.blocking_send(message).map_err(|_| ExportError::internal("the upload stopped"))
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
