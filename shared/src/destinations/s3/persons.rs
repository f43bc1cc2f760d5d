//! A persons run to an S3 destination: one file of the interval's person rows.

use crate::destinations::s3::keys::{data_file_key, KeyTemplate};
use crate::destinations::s3::S3DestinationConfig;
use std::sync::Arc;

use crate::engine::pipeline::{write_files, FileSpec};
use crate::engine::sink::FileSink;
use crate::engine::EngineSettings;
use crate::error::Result;
use crate::model::Model;
use crate::person::PersonRow;
use crate::runs::ExportOutcome;
use crate::sources::lake::persons::read_persons;
use crate::sources::lake::LakeStore;
use crate::time::Interval;

/// A persons run to an S3 destination: reads the interval's person changes, writes one file of the latest row
/// per `(team_id, distinct_id)` (named as an events file is, under the prefix rendered with `{table}` =
/// `persons`), and returns what it wrote. An interval without changes writes nothing.
pub async fn export_persons(
    lake: &LakeStore,
    target: &impl FileSink,
    team_id: i64,
    interval: &Interval,
    config: &S3DestinationConfig,
    settings: &EngineSettings,
) -> Result<ExportOutcome> {
    config.validate()?;
    let mut rows = read_persons(lake, team_id, interval, settings.dedupe.spill_dir.clone()).await?.peekable();
    if rows.peek().is_none() {
        return Ok(ExportOutcome::new(Vec::new(), None));
    }
    // One file, whatever its size: `-0` when the config splits files (the reference's name of a first file).
    let prefix = KeyTemplate::parse(&config.prefix)?.render(interval, Model::Persons);
    let (interval, format, compression) = (*interval, config.file_format, config.compression);
    let file_n = config.max_file_size_mb.map(|_| 0);
    let spec = FileSpec {
        format,
        compression,
        max_file_bytes: None,
        key: Arc::new(move |_| data_file_key(&prefix, &interval, None, file_n, format, compression)),
    };
    let batch_size = settings.batch_size;
    let source = move |on_batch: &mut dyn FnMut(&[PersonRow]) -> Result<()>| {
        let mut batch = Vec::with_capacity(batch_size);
        for row in rows {
            batch.push(row?);
            if batch.len() == batch_size {
                on_batch(&batch)?;
                batch.clear();
            }
        }
        if batch.is_empty() {
            Ok(())
        } else {
            on_batch(&batch)
        }
    };
    let files = write_files(source, target, &spec, settings).await?;
    Ok(ExportOutcome::new(files, None))
}
