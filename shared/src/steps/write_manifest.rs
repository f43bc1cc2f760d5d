//! Step 4: gather the files of every chunk (in chunk order), write the manifest when `max_file_size_mb` is
//! set (only now, after every file is complete), sum records and bytes, and keep the outcome for the last step.

use serde::{Deserialize, Serialize};

use super::Services;
use crate::error::Result;
use crate::export::{write_manifest as put_manifest, ExportOutcome, FileSink};
use crate::runs::RunRef;
use crate::s3::{destination_client, S3Target};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManifestInput {
    pub run: RunRef,
    /// How many chunks the run has.
    pub chunks: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManifestOutput {
    pub records: u64,
    pub bytes: u64,
    pub files: usize,
    pub manifest_key: Option<String>,
}

pub async fn write_manifest(services: &Services, input: ManifestInput) -> Result<ManifestOutput> {
    let run = &input.run;
    let (model, config, _) = services.destination(run, true).await?;
    let mut files = Vec::new();
    for chunk in 0..input.chunks {
        files.extend(services.work.load_chunk_files(run, chunk).await?);
    }
    let sink = FileSink::S3(S3Target::new(destination_client(&services.aws, &config), &config));
    let manifest_key = put_manifest(&sink, run.interval, model, &config, &files).await?;
    let outcome = ExportOutcome::new(files, manifest_key);
    services.work.save_outcome(run, &outcome).await?;
    Ok(ManifestOutput {
        records: outcome.records,
        bytes: outcome.bytes,
        files: outcome.files.len(),
        manifest_key: outcome.manifest_key,
    })
}
