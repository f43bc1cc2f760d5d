//! The engine's in-process run (the CLI's and the benchmark's): plan the interval's rows, then write them as
//! one chunk.

use super::chunks::{plan_chunks, write_chunk};
use super::pipeline::FileSpec;
use super::sink::FileSink;
use super::EngineSettings;
use crate::error::Result;
use crate::runs::WrittenFile;
use crate::sources::lake::{LakeStore, RowFilter};

/// Exports the rows `filter` keeps from the lake as one chunk, with the files `spec` describes.
pub async fn export_interval(
    lake: &LakeStore,
    sink: &impl FileSink,
    filter: &RowFilter,
    spec: &FileSpec,
    settings: &EngineSettings,
) -> Result<Vec<WrittenFile>> {
    settings.validate()?;
    let mut files = Vec::new();
    for chunk in &plan_chunks(lake, filter, settings, None).await? {
        files.extend(write_chunk(lake, sink, filter, chunk, spec, settings).await?);
    }
    Ok(files)
}
