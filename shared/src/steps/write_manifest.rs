//! Step 4: gather the files of every chunk (in chunk order), write the manifest when `max_file_size_mb` is
//! set (only now, after every file is complete), sum records and bytes, and keep the outcome for the last step.
//!
//! First, the multipart uploads still open under this interval's keys (a chunk that crashed mid-file never
//! aborts its own) are aborted: only keys of this run's interval, never another upload under the prefix.
//!
//! Then the prefix is made to hold exactly this attempt's files: the keys earlier attempts of the interval wrote
//! (recorded on the run: their files, manifests and chunk outputs) that this attempt did not write again are
//! deleted — a re-run that makes fewer files (late data, a larger `max_file_size_mb`) leaves none of the earlier
//! ones beside its own. Only keys recorded on the run are deleted, never anything else under the prefix, and
//! only while this attempt holds the run.

use std::collections::BTreeSet;

use chrono::Utc;
use serde::{Deserialize, Serialize};

use super::Services;
use crate::destinations::s3::keys::{interval_keys_prefix, KeyTemplate};
use crate::destinations::s3::manifest::{manifest_key_of, put_manifest};
use crate::destinations::s3::{destination_client, S3Target};
use crate::error::{ExportError, Result};
use crate::runs::{ExportOutcome, RunRef, RunStatus};

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
    /// Files of earlier attempts of the interval that this one did not write again, deleted.
    #[serde(default)]
    pub earlier_files_deleted: usize,
}

pub async fn write_manifest(services: &Services, input: ManifestInput) -> Result<ManifestOutput> {
    let run = &input.run;
    let (model, config, _) = services.destination(run, true).await?;
    let mut files = Vec::new();
    for chunk in 0..input.chunks {
        files.extend(services.work.load_chunk_files(run, chunk).await?);
    }
    if let Some(key) = manifest_key_of(run.interval, model, &config)? {
        // Recorded first: a manifest this attempt leaves behind is an earlier attempt's for the next one.
        services.runs.record_written(run, &[key], Utc::now()).await?;
    }
    let target = S3Target::new(destination_client(&services.aws, &config, services.endpoints), &config);
    // Every chunk is done: an upload still open under this interval's keys is a crashed writer's.
    let prefix = KeyTemplate::parse(&config.prefix)?.render(&run.interval, model);
    let aborted = target.abort_uploads_under(&interval_keys_prefix(&prefix, &run.interval)).await?;
    if aborted > 0 {
        tracing::warn!(run_id = %run.run_id, aborted, "aborted the uploads crashed writers left");
    }
    let manifest_key = put_manifest(&target, run.interval, model, &config, &files).await?;
    let outcome = ExportOutcome::new(files, manifest_key);
    let earlier_files_deleted = delete_earlier_files(services, run, &target, &outcome).await?;
    services.work.save_outcome(run, &outcome).await?;
    Ok(ManifestOutput {
        records: outcome.records,
        bytes: outcome.bytes,
        files: outcome.files.len(),
        manifest_key: outcome.manifest_key,
        earlier_files_deleted,
    })
}

/// Deletes the keys recorded on the run that this attempt's outcome does not keep; returns how many.
async fn delete_earlier_files(
    services: &Services,
    run: &RunRef,
    target: &S3Target,
    outcome: &ExportOutcome,
) -> Result<usize> {
    let record = services.runs.get(&run.export_id, run.interval.end).await?;
    let record = record.filter(|r| r.attempt == run.attempt && r.status == RunStatus::Running).ok_or_else(|| {
        ExportError::Superseded {
            run_id: run.run_id.clone(),
            message: format!("attempt {} no longer holds the run: it deletes no earlier files", run.attempt),
        }
    })?;
    let kept: BTreeSet<&str> = outcome.keys().into_iter().chain(outcome.manifest_key.as_deref()).collect();
    let stale = record.stale_files(&kept);
    for key in &stale {
        target.delete(key).await?;
    }
    if !stale.is_empty() {
        tracing::info!(run_id = %run.run_id, deleted = stale.len(), "deleted the files of earlier attempts");
    }
    Ok(stale.len())
}
