//! The manifest of a run that splits files: `{prefix}{start}-{end}_manifest.json` = `{"files": [every key]}`,
//! written once every file of the run is complete.

use bytes::Bytes;

use super::keys::{manifest_key, KeyTemplate};
use super::S3DestinationConfig;
use crate::engine::sink::FileSink;
use crate::error::Result;
use crate::model::Model;
use crate::runs::WrittenFile;
use crate::time::Interval;

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
pub async fn put_manifest(
    sink: &impl FileSink,
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
