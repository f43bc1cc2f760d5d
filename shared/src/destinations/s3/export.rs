//! A run of the events model to S3 in one process (the CLI's and the tests'): the engine's in-process run with
//! this destination's files, then the manifest. On Step Functions the same parts run as separate steps.

use super::keys::{data_file_key, KeyTemplate};
use super::manifest::put_manifest;
use super::S3DestinationConfig;
use crate::engine::pipeline::FileSpec;
use crate::engine::run::export_interval;
use crate::engine::sink::FileSink;
use crate::engine::EngineSettings;
use crate::error::Result;
use crate::model::Model;
use crate::runs::ExportOutcome;
use crate::sources::lake::{LakeStore, RowFilter};
use crate::time::Interval;

/// The files of `model`'s run of `interval` written by chunk `chunk` (`Some` when the run has several), as the
/// config names and splits them.
pub fn file_spec(
    config: &S3DestinationConfig,
    interval: Interval,
    model: Model,
    chunk: Option<usize>,
) -> Result<FileSpec> {
    let prefix = KeyTemplate::parse(&config.prefix)?.render(&interval, model);
    let (format, compression) = (config.file_format, config.compression);
    Ok(FileSpec {
        format,
        compression,
        max_file_bytes: config.max_file_size_bytes(),
        key: std::sync::Arc::new(move |n| data_file_key(&prefix, &interval, chunk, n, format, compression)),
    })
}

/// Exports the events of `team_id` in `interval` from the lake to the destination, in one process: plans the
/// rows, writes them as one chunk, then the manifest. (On Step Functions the same steps run as separate Lambdas,
/// with the interval split into chunks: see [`crate::steps`].)
pub async fn export_events(
    lake: &LakeStore,
    sink: &impl FileSink,
    team_id: i64,
    interval: Interval,
    config: &S3DestinationConfig,
    settings: &EngineSettings,
) -> Result<ExportOutcome> {
    config.validate()?;
    let filter = RowFilter::new(team_id, interval, &config.include_events, &config.exclude_events);
    let spec = file_spec(config, interval, Model::Events, None)?;
    let files = export_interval(lake, sink, &filter, &spec, settings).await?;
    let manifest_key = put_manifest(sink, interval, Model::Events, config, &files).await?;
    Ok(ExportOutcome::new(files, manifest_key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::destinations::s3::keys::manifest_key;
    use crate::engine::pipeline::write_files;
    use crate::engine::sink::DiscardSink;
    use crate::event::EventRow;
    use crate::format::{Compression, FileFormat};
    use crate::sources::synthetic::SyntheticEvents;

    fn interval() -> Interval {
        Interval::parse("2024-03-01T10:00:00Z", "2024-03-01T11:00:00Z").unwrap()
    }

    async fn run(config: &S3DestinationConfig, n: usize) -> ExportOutcome {
        let rows = SyntheticEvents::new(7, 1).events_between(interval().start, chrono::Duration::hours(1), n);
        let source =
            move |on_batch: &mut dyn FnMut(&[EventRow]) -> Result<()>| rows.chunks(3000).try_for_each(&mut *on_batch);
        let spec = file_spec(config, interval(), Model::Events, None).unwrap();
        let files = write_files(source, &DiscardSink, &spec, &EngineSettings::default()).await.unwrap();
        let manifest = put_manifest(&DiscardSink, interval(), Model::Events, config, &files).await.unwrap();
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
}
